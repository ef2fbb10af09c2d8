"""What `visionline run` and `last-run` say about a run, on a small ML Metadata store written here (the real CLI,
in-process): every data warning of ingestion and the Trainer printed from one list, the not-blessed exit code and
its documentation, and failed gates named as the config names their metric.
"""

from __future__ import annotations

import json

import pytest
from ml_metadata.proto import metadata_store_pb2

from components.evaluator import catalogue
from pipeline import cli
from pipeline.cli import errors
from pipeline.cli.run import run_exit_code
from pipeline.configs import PipelineConfig
from pipeline.runs import data_health
from pipeline.runs.summary import RunSummary, latest_run
from pipeline.runs.text import format_stopped, format_summary
from tests.pipeline.mlmd_runs import RunStore

COMPLETE = metadata_store_pb2.Execution.COMPLETE
INGEST_WARNINGS = [
    "empty class folder 'train/owl': class 'owl' gets no images from it",
    "folder 'extra' is not used: its 3 file(s) are not read",  # any listing warning, whoever adds it
    "class 'cat' has only one image in split 'train' (too few to learn the class from)",
    "class 'dog' has no images in split 'eval' (not evaluated)",
]
TINY = ("the validation set is tiny (4 images for 3 classes, fewer than 20): early stopping is off and the last "
        "epoch's weights are kept")


def _store(work, blessed):
    """One run: ImageExampleGen with warnings and a quarantined file, a Trainer whose two phases kept their last
    epoch (tiny validation set), an Evaluator that blessed the model or not."""
    path = PipelineConfig().override([f"work_dir={work}"]).metadata_path
    (work / "metadata").mkdir(parents=True)
    runs = RunStore(path, ("Examples", "ModelRun", "ModelBlessing"))
    run = runs.run("2026-03-01T10:00:00.000001")
    examples = work / "examples"
    examples.mkdir()
    (examples / "ingest_summary.json").write_text(json.dumps({
        "files_seen": 9, "ingested": 8, "quarantined": 1, "quarantined_by_reason": {"not an image": 1},
        "quarantine_report": "/q.csv", "warnings": INGEST_WARNINGS}))
    model_run = work / "model_run"
    model_run.mkdir()
    (model_run / "history.json").write_text(json.dumps({"phases": [
        {"name": "head", "kept_because": "the last epoch: " + TINY},
        {"name": "fine_tune", "kept_because": "the last epoch: " + TINY}]}))
    runs.execute(run, "ImageExampleGen", COMPLETE, [("examples", "Examples", str(examples), {})])
    runs.execute(run, "Trainer", COMPLETE, [("model_run", "ModelRun", str(model_run), {})])
    runs.execute(run, "Evaluator", COMPLETE, [("blessing", "ModelBlessing", str(work / "blessing"),
                                               {"blessed": int(blessed)})])
    return path


def test_last_run_prints_every_data_warning_once(tmp_path, capsys):
    _store(tmp_path, blessed=False)
    assert cli.main(["last-run", "--work-dir", str(tmp_path)]) == errors.OK
    lines = capsys.readouterr().out.splitlines()
    shown = [line for line in lines if line.startswith("warning: ")]
    assert shown == [f"warning: {w}" for w in INGEST_WARNINGS] + [f"warning: training: {TINY}"]
    assert lines.index(shown[0]) > lines.index("ingest: 9 files seen, 8 ingested, 1 quarantined")
    assert "        1 × not an image" in lines


def test_run_json_and_a_stopped_run_carry_the_same_warnings(tmp_path):
    summary = latest_run(_store(tmp_path, blessed=True))
    assert json.loads(summary.to_json())["warnings"] == summary.warnings == data_health.run_warnings(
        summary.ingest, {"phases": [{"kept_because": "the last epoch: " + TINY}]})
    stopped = format_stopped(summary, ["label: drift"]).splitlines()
    assert stopped.index(f"warning: {INGEST_WARNINGS[0]}") < stopped.index("  label: drift")
    assert data_health.run_warnings({}, {"phases": [{"kept_because": "the best val_accuracy (0.9; early stopping)"}]}) \
        == []


@pytest.mark.parametrize("blessed, report_code, expected", [
    (False, errors.OK, errors.NOT_BLESSED),
    (False, errors.REPORT_FAILED, errors.NOT_BLESSED),
    (True, errors.OK, errors.OK),
    (True, errors.REPORT_FAILED, errors.REPORT_FAILED),
])
def test_a_model_that_failed_a_gate_has_its_own_exit_code(tmp_path, blessed, report_code, expected):
    summary = latest_run(_store(tmp_path, blessed))
    assert summary.blessed is blessed
    assert run_exit_code(summary, report_code) == expected
    assert run_exit_code(RunSummary(run_id="not evaluated"), report_code) == report_code
    assert len({errors.OK, errors.API_ERROR, errors.USAGE_ERROR, errors.REPORT_FAILED, errors.DATA_STOPPED,
                errors.NOT_BLESSED}) == 6


def test_run_help_documents_the_exit_codes(capsys):
    with pytest.raises(SystemExit):
        cli.main(["run", "--help"])
    text = capsys.readouterr().out
    assert f"{errors.NOT_BLESSED}  the model failed an Evaluator gate: not blessed, nothing pushed" in text
    assert f"{errors.DATA_STOPPED}  the data validation gate stopped the run before training" in text
    assert "5  the run finished but its model was not blessed" in errors.__doc__


def test_gate_failures_are_named_as_the_config_names_them():
    summary = RunSummary(run_id="r", blessed=False)
    assert catalogue.config_name("sparse_categorical_accuracy") == "accuracy"
    assert catalogue.config_name("subset_accuracy") == "accuracy"
    assert catalogue.config_name("cohen_kappa") == catalogue.config_name("cohen_kappa_quadratic") == "kappa"
    assert catalogue.config_name("top_3_accuracy") == "top_k_accuracy"
    assert catalogue.config_name("f1_score") == "f1" and catalogue.config_name("auc_precision_recall") == "auc_pr"
    assert catalogue.config_name("hamming_loss") == "hamming_loss" and catalogue.config_name("other") == "other"
    for task in catalogue.TASKS:  # every name resolves to a gate the config accepts for its task
        gateable = catalogue.gate_metrics(task, top_k=3, kappa_weighting="linear")
        for info in catalogue.task_metrics(task, top_k=3, kappa_weighting="linear"):
            assert gateable[catalogue.config_name(info.key)] == info
    assert "gate failed" not in format_summary(summary)
