"""The compiled Kubeflow pipeline executed end to end on this machine with kfp.local (`visionline kfp-local`), on
the tiny digits data with the demo preset, twice: the first run compiles, runs every task and pushes a model; the
second executes the same compiled spec with a runtime parameter and is evaluated against the model the first one
pushed (ServedModelBaseline: the no-regression gate without a Resolver)."""

from __future__ import annotations

import json
import os

import pytest

from components.pusher import serving_layout
from pipeline import cli, kubeflow_runner
from pipeline.cli import errors
from pipeline.demo_data import DEMO_SCHEMA
from pipeline.runs.evaluation import read_metrics

pytestmark = pytest.mark.e2e

CONFIG = ["--preset", "demo", "--in-memory", "--set", "train.epochs=12", "--set", "train.batch_size=16",
          "--set", "train.conv_filters=[16, 32]", "--set", "transform.image_size=16",
          "--set", "eval.min_accuracy=0.3", "--set", "eval.min_kappa=0.2", "--set", f"data.schema_path={DEMO_SCHEMA}"]


def _kfp_local(argv, capsys):
    code = cli.dispatch(cli.build_parser().parse_args(["kfp-local", *argv]))
    out = capsys.readouterr().out
    return code, out


def _run_dir(out):
    line = next(line for line in out.splitlines() if line.startswith("kfp.local: "))
    return line.split(": ", 1)[1]


def test_compiled_pipeline_runs_every_task_and_pushes(digits_root, tmp_path, capsys):
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
