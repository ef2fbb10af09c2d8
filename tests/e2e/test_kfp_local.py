"""The compiled Kubeflow pipeline executed end to end on this machine with kfp.local (`visionline kfp-local`), on
the tiny digits data with the demo preset, three times: the first run compiles, runs every task and pushes a model;
the second executes the same compiled spec with a runtime parameter and is evaluated against the model the first one
pushed (ServedModelBaseline: the no-regression gate without a Resolver), its label distribution compared with the
statistics the first run's ValidationGate accepted (AcceptedStatisticsBaseline: the drift gate without a Resolver);
the third, on data whose labels drifted, is stopped by the gate (exit 4) and never becomes a baseline."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from components.accepted_statistics import store
from components.pusher import serving_layout
from pipeline import cli, kubeflow_runner
from pipeline.cli import errors
from pipeline.demo_data import DEMO_SCHEMA
from pipeline.runs.evaluation import read_metrics

pytestmark = [pytest.mark.e2e, pytest.mark.heavy]  # ~4 min: `make test-heavy` (CI runs it after `make test`)

CONFIG = ["--preset", "demo", "--in-memory", "--set", "train.epochs=12", "--set", "train.batch_size=16",
          "--set", "train.conv_filters=[16, 32]", "--set", "transform.image_size=16",
          "--set", "eval.min_accuracy=0.3", "--set", "eval.min_kappa=0.2", "--set", f"data.schema_path={DEMO_SCHEMA}",
          "--set", "train.tflite=false"]  # TFLite: tests/components/test_tflite_export.py and the pipeline_run fixture


def _kfp_local(argv, capsys):
    code = cli.dispatch(cli.build_parser().parse_args(["kfp-local", *argv]))
    out = capsys.readouterr().out
    return code, out


def _run_dir(out):
    line = next(line for line in out.splitlines() if line.startswith("kfp.local: "))
    return line.split(": ", 1)[1]


def test_compiled_pipeline_runs_every_task_and_pushes_and_keeps_both_gates(digits_root, tmp_path, capsys):
    work, spec = tmp_path / "work", tmp_path / "visionline_pipeline.json"
    code, out = _kfp_local(["--data", str(digits_root), "--work-dir", str(work), "--out", str(spec), *CONFIG],
                           capsys)
    tasks = kubeflow_runner.load_spec(str(spec))["root"]["dag"]["tasks"]
    assert code == 0, out
    assert f"ran {len(tasks)} of {len(tasks)} tasks" in out
    base = os.path.join(work, "serving", "visionline")
    version, path = serving_layout.latest_complete_version(base)
    assert f"pushed model   {path}  (version {version})" in out
    assert "accuracy" in out.split("metrics", 1)[1]
    first_run = _run_dir(out)
    record = json.loads(open(os.path.join(path, serving_layout.PUSH_RECORD)).read())
    assert record["model_uri"] == os.path.join(first_run, "Trainer", "model")  # kfp.local's task folders
    first = json.loads(open(os.path.join(first_run, "ServedModelBaseline", "executor_output.json")).read())
    assert first["artifacts"]["baseline_model"]["artifacts"][0]["metadata"]["served"] == 0  # nothing served yet
    assert "baseline       none served yet" in out
    assert "data gate      accepted; label drift not checked: no earlier run passed this gate (first run)" in out
    accepted = store.store_root(os.path.join(work, "pipelines", "visionline"))
    first_entry = store.latest(accepted)
    assert first_entry.source_uri == os.path.join(first_run, "StatisticsGen", "statistics")

    # the same compiled spec again, with a runtime parameter: its baseline is the model the first run pushed
    code, out = _kfp_local(["--pipeline-json", str(spec), "--param", "train.epochs=6"], capsys)
    pushed_again = "pushed model   none" not in out  # exit 5 when not blessed, as `visionline run`
    assert code == (errors.OK if pushed_again else errors.NOT_BLESSED), out
    second_run = _run_dir(out)
    served = json.loads(open(os.path.join(second_run, "ServedModelBaseline", "executor_output.json")).read())
    metadata = served["artifacts"]["baseline_model"]["artifacts"][0]["metadata"]
    assert (metadata["served"], metadata["served_version"]) == (1, version)
    assert f"baseline       served version {version}" in out
    evaluation = read_metrics(os.path.join(second_run, "Evaluator", "evaluation"))
    assert evaluation.baselines and evaluation.diffs  # the candidate was compared with the served model
    trainer = json.loads(open(os.path.join(second_run, "Trainer", "executor_output.json")).read())
    assert trainer["artifacts"]["model"]["artifacts"][0]["uri"].startswith(second_run)
    # the same labels: the drift gate compared them with the first run's accepted statistics, and accepted them
    assert f"data gate      accepted, label drift L∞ 0.000 (bound 0.25) vs {first_entry.source_uri}" in out
    reader = json.loads(open(os.path.join(second_run, "AcceptedStatisticsBaseline", "executor_output.json")).read())
    assert reader["artifacts"]["baseline_statistics"]["artifacts"][0]["metadata"]["accepted_path"] == first_entry.path
    second_entry = store.latest(accepted)
    assert second_entry.source_uri == os.path.join(second_run, "StatisticsGen", "statistics")

    # labels drifted (mostly zeros): the gate stops the run before Transform, as `visionline run` does
    drifted = tmp_path / "drifted"
    for label in sorted(os.listdir(digits_root)):
        images = sorted(os.listdir(digits_root / label))
        os.makedirs(drifted / label)
        for image in images if label == "0" else images[:1]:
            shutil.copy(digits_root / label / image, drifted / label / image)
    code, out = _kfp_local(["--pipeline-json", str(spec), "--param", f"data.root={drifted}"], capsys)
    assert code == errors.DATA_STOPPED, out
    third_run = _run_dir(out)
    assert "Transform" not in os.listdir(third_run)
    log = open(os.path.join(third_run, "ValidationGate", "task.log"), encoding="utf-8").read()
    assert "label: distribution drift L∞=" in log and "vs the previous accepted run" in log, log[-3000:]
    assert store.latest(accepted) == second_entry  # stopped data never becomes the baseline
