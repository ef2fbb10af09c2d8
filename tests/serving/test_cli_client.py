"""`serve` / `predict` / `predict-batch` through register()/dispatch(), the client library and the Beam job."""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from serving import cli
from serving.clients.batch_prediction import predict_batch
from serving.clients.files import predict_files, predict_with_fallback
from serving.clients.predictors import PredictorSpec
from serving.clients.results import (
    FileResult,
    PredictionError,
    ServiceError,
    format_result,
    prediction_line,
    result_json,
    top_k_predictions,
)
from tests.serving.helpers import MODEL

REPO = Path(__file__).resolve().parents[2]


def parser() -> argparse.ArgumentParser:
    result = argparse.ArgumentParser(prog="visionline")
    sub = result.add_subparsers(dest="command", required=True)
    sub.add_parser("run")  # someone else's command
    cli.register(sub)
    return result


def test_register_adds_the_three_commands_and_dispatch_ignores_others():
    p = parser()
    assert cli.dispatch(p.parse_args(["run"])) is None
    assert cli.dispatch(argparse.Namespace(command="run")) is None
    args = p.parse_args(["serve", "--model-base", "/x/models/visionline", "--rest-port", "0", "--grpc-port", "9",
                         "--batching", "--max-batch-size", "4", "--version-policy", "latest", "--num-versions", "2"])
    config = cli.server_config(args)
    (model,) = config.models
    assert model.name == "visionline" and model.base_path == "/x/models/visionline"
    assert model.policy.num_versions == 2
    assert config.host == "127.0.0.1" and config.rest_port == 0 and config.grpc_port == 9
    assert config.batching is not None and config.batching.max_batch_size == 4
    assert cli.server_config(p.parse_args(["serve", "--model-base", "/m", "--no-grpc"])).grpc_port is None
    assert cli.server_config(p.parse_args(["serve", "--model-base", "/m"])).batching is None  # off by default
    assert cli.server_config(p.parse_args(["serve", "--model-base", "/m"])).monitoring_path is None  # off too
    monitored = cli.server_config(p.parse_args(["serve", "--model-base", "/m", "--monitoring"]))
    assert monitored.monitoring_path == "/monitoring/prometheus/metrics"
    assert (monitored.intra_op_threads, monitored.inter_op_threads) == (0, 0)  # TensorFlow's default
    threads = cli.server_config(p.parse_args(["serve", "--model-base", "/m", "--tensorflow-intra-op-parallelism", "1",
                                              "--tensorflow-inter-op-parallelism", "3"]))
    assert (threads.intra_op_threads, threads.inter_op_threads) == (1, 3)
    args = p.parse_args(["predict", "a.png", "b.png", "--grpc", "127.0.0.1:8500", "--model", "m", "--top-k", "3"])
    assert args.images == ["a.png", "b.png"] and args.grpc == "127.0.0.1:8500" and args.top_k == 3
    args = p.parse_args(["predict-batch", "folder", "--out", "p.csv"])
    assert args.folder == "folder" and args.out == "p.csv"
    with pytest.raises(SystemExit):
        p.parse_args(["predict", "a.png", "--url", "http://x", "--grpc", "y:1"])  # one transport only


def test_serve_reads_tf_serving_config_files(tmp_path):
    p = parser()
    args = p.parse_args(["serve", "--model-config-file", str(REPO / "serving" / "models.config"),
                         "--model-base", str(tmp_path), "--batching-parameters-file",
                         str(REPO / "serving" / "batching.config"), "--monitoring-config-file",
                         str(REPO / "serving" / "monitoring.config")])
    config = cli.server_config(args)
    assert config.models[0].name == "visionline" and config.models[0].base_path == str(tmp_path)
    assert config.batching is not None and config.batching.max_batch_size == 32
    assert config.monitoring_path == "/monitoring/prometheus/metrics"
    disabled = tmp_path / "monitoring.config"
    disabled.write_text("prometheus_config { enable: false }\n")
    args = p.parse_args(["serve", "--model-base", str(tmp_path), "--monitoring-config-file", str(disabled)])
    assert cli.server_config(args).monitoring_path is None


def test_invalid_serve_configuration_is_exit_code_2(capsys):
    p = parser()
    assert cli.dispatch(p.parse_args(["serve", "--model-base", "/m", "--model-name", "../etc"])) == 2
    assert "invalid model name" in capsys.readouterr().err
    assert cli.dispatch(p.parse_args(["serve", "--model-base", "/m", "--version-policy", "specific"])) == 2


@pytest.fixture()
def restore_logging():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_busy_port_is_a_clean_error(server, model_base, capsys, restore_logging):
    port = int(server.rest_url.rsplit(":", 1)[1])
    args = parser().parse_args(["serve", "--model-base", str(model_base), "--rest-port", str(port), "--grpc-port", "0"])
    assert cli.dispatch(args) == 2
    assert "already in use" in capsys.readouterr().err
    assert requests.get(f"{server.rest_url}/v1/models/{MODEL}", timeout=10).status_code == 200


def test_predict_command_over_rest_and_grpc(server, digit_paths, tmp_path, capsys):
    label, path = sorted(digit_paths.items())[2]
    not_image = tmp_path / "notes.txt"
    not_image.write_text("hello")
    p = parser()
    code = cli.dispatch(p.parse_args(["predict", str(path), "--url", server.rest_url, "--top-k", "3"]))
    out = capsys.readouterr().out
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == str(path) and len(lines) == 4
    assert re.match(r"^\s+\S+\s+\d+\.\d\d%", lines[1])
    code = cli.dispatch(p.parse_args(["predict", str(path), str(not_image), "--grpc", server.grpc_target, "--json"]))
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 1  # one of the inputs could not be predicted
    assert rows[0]["path"] == str(path) and len(rows[0]["top_k"]) == 5
    assert rows[0]["top1"] in digit_paths and 0 <= rows[0]["probability"] <= 1
    assert rows[1] == {"path": str(not_image), "error": "not an image (format not recognised)", "stage": "validate"}


def test_predict_against_a_dead_server_is_exit_code_2(capsys, tmp_path, digit_paths):
    path = next(iter(digit_paths.values()))
    code = cli.dispatch(parser().parse_args(["predict", str(path), "--url", "http://127.0.0.1:9", "--timeout", "5"]))
    assert code == 2 and "cannot reach" in capsys.readouterr().err


def test_rest_and_grpc_predictors_agree(server, digit_pngs):
    rest = PredictorSpec("rest", server.rest_url, MODEL, top_k=3).create()
    grpc_ = PredictorSpec("grpc", server.grpc_target, MODEL, version=1, top_k=3).create()
    try:
        a, b = rest.predict(digit_pngs), grpc_.predict(digit_pngs)
    finally:
        rest.close()
        grpc_.close()
    assert [p.label for p in a] == [p.label for p in b]
    assert all(len(p.top_k) == 3 for p in a)
    with pytest.raises(ServiceError):
        PredictorSpec("rest", server.rest_url, "unknown").create().predict(digit_pngs[:1])


def test_fallback_quarantines_only_rejected_inputs():
    class Picky:
        def predict(self, images):
            if any(image.startswith(b"bad") for image in images):
                raise PredictionError("rejected")
            return top_k_predictions([[0.2, 0.8]] * len(images), [["a", "b"]] * len(images), 1)

    results = list(predict_with_fallback(Picky(), [("1", b"ok"), ("2", b"bad"), ("3", b"ok")]))
    assert [(r.path, r.prediction.label if r.prediction else r.reason) for r in results] == [
        ("1", "b"), ("2", "rejected"), ("3", "b")]


def test_multilabel_predictions_carry_the_predicted_label_set():
    probabilities = [[0.9, 0.2, 0.6], [0.1, 0.3, 0.2]]
    hot = [[1, 0, 1], [0, 0, 0]]
    first, second = top_k_predictions(probabilities, [["a", "b", "c"]] * 2, 1, hot)
    assert first.top_k == (("a", 0.9),) and first.labels == ("a", "c")  # most probable first, beyond top-k
    assert second.labels == ()
    assert top_k_predictions(probabilities, None, 2)[0].labels is None  # single-label models: no set
    with pytest.raises(ServiceError, match="predicted_labels has shape"):
        top_k_predictions(probabilities, None, 2, [[1, 0]])
    result = FileResult("x.png", first)
    assert format_result(result).endswith("predicted labels: a, c")
    assert format_result(FileResult("y.png", second)).endswith("predicted labels: (none)")
    assert result_json(result)["labels"] == ["a", "c"]
    assert prediction_line(result).endswith(',"[""a"", ""c""]"')
    assert "labels" not in result_json(FileResult("z.png", top_k_predictions(probabilities, None, 1)[0]))


def test_predict_files_keeps_order_and_reasons(tmp_path, digit_paths, server):
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    paths = [str(empty), str(next(iter(digit_paths.values()))), str(tmp_path / "missing.png")]
    predictor = PredictorSpec("rest", server.rest_url, MODEL).create()
    results = predict_files(paths, predictor)
    assert [r.path for r in results] == paths
    assert results[0].stage == "validate" and "empty" in results[0].reason
    assert results[1].prediction is not None
    assert results[2].stage == "read"


def test_predict_batch_beam_job_quarantines_bad_files(server, digit_paths, tmp_path, capsys):
    folder = tmp_path / "unlabelled"
    (folder / "nested").mkdir(parents=True)
    good = sorted(digit_paths.items())
    for label, path in good[:4]:
        (folder / f"digit_{label}.png").write_bytes(path.read_bytes())
    (folder / "nested" / "digit,with,commas.png").write_bytes(good[5][1].read_bytes())
    truncated = good[6][1].read_bytes()[:60]
    (folder / "truncated.png").write_bytes(truncated)  # corrupt: valid signature, cut short
    (folder / "readme.txt").write_text("not an image")
    (folder / "empty.jpg").write_bytes(b"")
    out = tmp_path / "out" / "predictions.csv"
    code = cli.dispatch(parser().parse_args(["predict-batch", str(folder), "--out", str(out), "--url",
                                             server.rest_url, "--batch-size", "2", "--top-k", "3"]))
    assert code == 0
    summary = capsys.readouterr().out
    assert "8 files: 5 predicted" in summary and "3 quarantined" in summary
    with open(out, newline="") as handle:
        predictions = list(csv.DictReader(handle))
    with open(tmp_path / "out" / "predictions.quarantine.csv", newline="") as handle:
        quarantined = list(csv.DictReader(handle))
    assert len(predictions) + len(quarantined) == 8  # nothing silently lost
    assert {r["path"] for r in predictions} == {f"digit_{label}.png" for label, _ in good[:4]} | {
        "nested/digit,with,commas.png"}
    for row in predictions:
        assert row["top1"] in digit_paths
        top_k = json.loads(row["top_k"])
        assert len(top_k) == 3 and top_k[0][0] == row["top1"]
        assert abs(float(row["probability"]) - top_k[0][1]) < 1e-5
        assert row["labels"] == ""  # a single-label model has no label set
    reasons = {r["path"]: (r["stage"], r["reason"]) for r in quarantined}
    assert set(reasons) == {"truncated.png", "readme.txt", "empty.jpg"}
    assert reasons["readme.txt"] == ("validate", "not an image (format not recognised)")
    assert reasons["empty.jpg"] == ("validate", "empty file (0 bytes)")
    assert reasons["truncated.png"][1].startswith("corrupt or truncated image")


def test_predict_batch_in_process_from_the_model_base(model_base, digit_paths, tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for label, path in sorted(digit_paths.items())[:3]:
        (folder / f"{label}.png").write_bytes(path.read_bytes())
    summary = predict_batch(str(folder), str(tmp_path / "p.csv"), PredictorSpec("saved_model", str(model_base)))
    assert (summary.files, summary.predicted, summary.quarantined) == (3, 3, 0)


def test_serve_subprocess_starts_answers_and_stops_on_sigterm(model_base):
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(
        [sys.executable, "-m", "serving", "serve", "--model-base", str(model_base), "--rest-port", "0",
         "--grpc-port", "0", "--poll-interval", "0.5"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = ""
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and "REST http" not in line:
            line = process.stdout.readline()
            if not line and process.poll() is not None:
                pytest.fail("serve exited early")
        match = re.search(r"REST (http://127\.0\.0\.1:\d+)\s+gRPC (127\.0\.0\.1:\d+)\s+model visionline versions \[1\]",
                          line)
        assert match, line
        status = requests.get(f"{match.group(1)}/v1/models/{MODEL}", timeout=10).json()
        assert status["model_version_status"][0]["state"] == "AVAILABLE"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
