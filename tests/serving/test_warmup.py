"""Model warm-up: the local server replays `assets.extra/tf_serving_warmup_requests` (TF Serving's
`--enable_model_warmup`) before a version becomes AVAILABLE; a malformed file fails that version's load; readiness."""

from __future__ import annotations

import argparse
import base64
import shutil
import time
from pathlib import Path

import pytest
import requests
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from components import warmup
from serving import cli
from serving.server.config import ModelConfig, ServerConfig
from serving.server.manager import AVAILABLE, END
from serving.server.model_server import ServingServer
from tests.serving.helpers import MODEL, push_version


def _model_with_warmup(source: Path, target: Path, records: list[bytes] | None = None,
                       images: list[bytes] | None = None) -> Path:
    """A copy of the SavedModel `source` whose warm-up file holds `records` (raw TFRecord payloads) or, with
    `images`, the Trainer's requests for them."""
    shutil.copytree(source, target)
    if images is not None:
        warmup.write_warmup_requests(str(target), images)
    else:
        path = Path(warmup.warmup_path(str(target)))
        path.parent.mkdir(parents=True, exist_ok=True)
        with tf.io.TFRecordWriter(str(path)) as writer:
            for record in records or []:
                writer.write(record)
    return target


def _server(base: Path, **options) -> ServingServer:
    config = ServerConfig(models=(ModelConfig(MODEL, str(base)),), rest_port=0, grpc_port=None, poll_interval=0.2,
                          workers=2, **options)
    return ServingServer(config)


def _wait(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_every_warmup_record_is_replayed_through_the_signature_before_the_version_is_available(
        serving_model_dir, digit_pngs, tmp_path):
    model = _model_with_warmup(serving_model_dir, tmp_path / "model", images=digit_pngs[:3])
    base = tmp_path / MODEL
    with _server(base, warmup_iterations=2) as server:
        assert not server.manager.is_ready() and not server.manager.is_ready(MODEL)  # nothing loaded yet
        push_version(model, base, 5)
        _wait(lambda: server.manager.is_ready(MODEL))
        assert server.manager.is_ready() and not server.manager.is_ready("other")
        assert server.manager.status(MODEL)[0].state == AVAILABLE
        with server.manager.acquire(MODEL) as servable:
            assert (servable.warmup_result.records, servable.warmup_result.calls) == (3, 6)
        body = {"instances": [{"b64": base64.b64encode(digit_pngs[0]).decode()}]}
        reply = requests.post(f"{server.rest_url}/v1/models/{MODEL}:predict", json=body, timeout=30)
        assert reply.status_code == 200, reply.text


def test_a_version_without_a_warmup_file_loads_and_warmup_can_be_switched_off(serving_model_dir, tmp_path):
    base = tmp_path / MODEL
    push_version(serving_model_dir, base, 1)  # the fixture's export has no warm-up file
    garbage = _model_with_warmup(serving_model_dir, tmp_path / "garbage", records=[b"\x08\x01not a log"])
    push_version(garbage, tmp_path / "off" / MODEL, 2)
    with _server(base) as server:
        with server.manager.acquire(MODEL) as servable:
            assert servable.warmup_result.records == 0
    with _server(tmp_path / "off" / MODEL, enable_model_warmup=False) as server:  # the file is not even read
        with server.manager.acquire(MODEL) as servable:
            assert servable.version == 2 and servable.warmup_result is None


@pytest.mark.parametrize("content, code, message", [
    ("not a tfrecord", "DATA_LOSS", "not a valid TFRecord file after 0 record(s)"),
    ("not a log", "INVALID_ARGUMENT", "record 2 is not a tensorflow.serving.PredictionLog"),
    ("empty log", "INVALID_ARGUMENT", "record 2 is a PredictionLog without a log type"),
    ("wrong input", "INVALID_ARGUMENT", "warm-up record 2 of 2 failed: input size does not match"),
    ("not an image", "INVALID_ARGUMENT", "warm-up record 2 of 2 failed: "),
    ("regress", "INVALID_ARGUMENT", "log type regress_log is not supported"),
])
def test_a_malformed_warmup_file_fails_that_version_and_the_previous_one_keeps_serving(
        serving_model_dir, digit_pngs, tmp_path, content, code, message):
    good = warmup.predict_log([digit_pngs[0]]).SerializeToString()
    records = {"not a log": [good, b"\xff\xff\xff"],
               "empty log": [good, prediction_log_pb2.PredictionLog().SerializeToString()],
               "wrong input": [good, warmup.predict_log([digit_pngs[0]], input_key="pixels").SerializeToString()],
               "not an image": [good, warmup.predict_log([b"GIF89a garbage"]).SerializeToString()],
               "regress": [good, prediction_log_pb2.PredictionLog(
                   regress_log=prediction_log_pb2.RegressLog()).SerializeToString()]}.get(content)
    bad = _model_with_warmup(serving_model_dir, tmp_path / "bad", records=records or [])
    if content == "not a tfrecord":
        Path(warmup.warmup_path(str(bad))).write_bytes(b"this is not a TFRecord file at all" * 4)
    base = tmp_path / MODEL
    push_version(serving_model_dir, base, 1)
    with _server(base) as server:
        push_version(bad, base, 2)
        _wait(lambda: server.manager.status(MODEL)[0].state == END)
        status = server.manager.status(MODEL, 2)[0]
        assert "tf_serving_warmup_requests" in status.error_message and message in status.error_message, status
        assert status.error_code.name == code and "function_node" not in status.error_message
        assert server.manager.available_versions(MODEL) == [1] and server.manager.is_ready()


def test_more_than_tf_servings_maximum_of_records_is_refused(tmp_path):
    path = Path(warmup.warmup_path(str(tmp_path)))
    path.parent.mkdir(parents=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for _ in range(warmup.MAX_RECORDS + 1):
            writer.write(warmup.predict_log([b"x"]).SerializeToString())
    with pytest.raises(warmup.WarmupFileError, match=r"exceeds the maximum \(1000\)"):
        warmup.read_warmup_requests(str(tmp_path))


def test_serve_flags_for_warmup():
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers(dest="command"), default_model_base="/tmp/m")
    config = cli.server_config(parser.parse_args(["serve"]))
    assert config.enable_model_warmup and config.warmup_iterations == 1  # on by default, as TF Serving
    config = cli.server_config(parser.parse_args(["serve", "--no-enable-model-warmup",
                                                  "--num-request-iterations-for-warmup", "3"]))
    assert not config.enable_model_warmup and config.warmup_iterations == 3
    with pytest.raises(ValueError, match="warmup_iterations"):
        cli.server_config(parser.parse_args(["serve", "--num-request-iterations-for-warmup", "0"]))
