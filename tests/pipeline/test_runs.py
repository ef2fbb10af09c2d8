"""Tests for pipeline.runs on a small ML Metadata store written here: opening it read-only, finding runs by id,
prefix or folder-safe name, reading a run's executions and artifacts (retries, keys, types, pipeline root), the run
summary and its terminal text, ExampleValidator anomalies, and the gate threshold texts.
"""

from __future__ import annotations

import re
import sqlite3

import pytest
from ml_metadata import errors
from ml_metadata.proto import metadata_store_pb2
from tensorflow_metadata.proto.v0 import anomalies_pb2
from tensorflow_model_analysis.proto import config_pb2

from pipeline.runs import data_health, gates, store
from pipeline.runs.record import RunRecord, read_run
from pipeline.runs.summary import RunSummary, latest_outputs, latest_run
from pipeline.runs.text import format_summary
from tests.pipeline.mlmd_runs import RunStore

RUNS = ("2026-01-01T10:00:00.000001", "2026-01-02T10:00:00.000002")


def _write_store(path, root):
    """Two runs of pipeline `vl`: the second has ImageExampleGen (with its ingest summary), a failed then retried
    ValidationGate with a verdict, and a Pusher that pushed."""
    runs_store = RunStore(path, ("Examples", "visionline.DataVerdict", "PushedModel"))
    runs = [runs_store.run(name) for name in RUNS]
    execute = runs_store.execute

    examples = root / "ImageExampleGen" / "examples" / "3"
    examples.mkdir(parents=True)
    (examples / "ingest_summary.json").write_text('{"files_seen": 5, "ingested": 4, "quarantined": 1, '
                                                  '"quarantined_by_reason": {"corrupt": 1}, '
                                                  '"quarantine_report": "/q.csv"}')
    verdict = root / "ValidationGate" / "verdict" / "5"
    verdict.mkdir(parents=True)
    (verdict / "verdict.json").write_text('{"accepted": true, "problems": [], "notes": ["first run"], '
                                          '"drift": null}')
    execute(runs[0], "ImageExampleGen", metadata_store_pb2.Execution.COMPLETE)
    execute(runs[1], "ImageExampleGen", metadata_store_pb2.Execution.CACHED,
            [("examples", "Examples", str(examples), {"files_seen": 5})])
    execute(runs[1], "ValidationGate", metadata_store_pb2.Execution.FAILED)
    execute(runs[1], "ValidationGate", metadata_store_pb2.Execution.COMPLETE,
            [("verdict", "visionline.DataVerdict", str(verdict), {})])
    execute(runs[1], "Pusher", metadata_store_pb2.Execution.COMPLETE,
            [("pushed_model", "PushedModel", str(root / "Pusher" / "pushed_model" / "6"),
              {"pushed": 1, "pushed_destination": "/serving/vl/17", "pushed_version": "17",
               "tflite": "TFLite shipped: float32; withheld int8: accuracy 0.5000 vs the SavedModel's 0.9000"})])


@pytest.fixture(scope="module")
def metadata_path(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    path = root / "metadata.sqlite"
    _write_store(path, root / "pipelines")
    return str(path)


def test_store_is_opened_read_only_and_runs_are_found_by_id_prefix_or_folder_name(metadata_path):
    mlmd = store.open_store(metadata_path)
    assert [r.name for r in store.pipeline_runs(mlmd)] == list(RUNS)
    assert store.find_run(mlmd, None, metadata_path).name == RUNS[1]
    assert store.find_run(mlmd, RUNS[0], metadata_path).name == RUNS[0]
    assert store.find_run(mlmd, "2026-01-01", metadata_path).name == RUNS[0]
    assert store.find_run(mlmd, store.sanitize_run_id(RUNS[1]), metadata_path).name == RUNS[1]
    with pytest.raises(LookupError, match="several runs match '2026-01'"):
        store.find_run(mlmd, "2026-01", metadata_path)
    with pytest.raises(LookupError, match="no run named 'nope'; latest runs: "):
        store.find_run(mlmd, "nope", metadata_path)
    with pytest.raises(errors.InternalError, match="readonly database"):  # nothing can be written through it
        mlmd.put_context_type(metadata_store_pb2.ContextType(name="other"))
    assert store.sanitize_run_id("2026-01-02T10:00:00.5") == "2026-01-02T10_00_00.5"


def test_missing_or_uninitialised_stores_are_errors_the_cli_reports(tmp_path):
    with pytest.raises(FileNotFoundError, match="has the pipeline run yet"):
        store.open_store(str(tmp_path / "none.sqlite"))
    empty = tmp_path / "empty.sqlite"
    sqlite3.connect(empty).close()
    with pytest.raises(LookupError, match="read-only"):
        store.open_store(str(empty))


def test_record_keeps_every_execution_and_the_last_one_per_node(metadata_path):
    record = read_run(metadata_path)
    assert isinstance(record, RunRecord) and record.run_id == RUNS[1] and record.pipeline_name == "vl"
    assert [(n.node_id, n.state) for n in record.executions] == [
        ("ImageExampleGen", "CACHED"), ("ValidationGate", "FAILED"), ("ValidationGate", "COMPLETE"),
        ("Pusher", "COMPLETE")]
    assert {k: n.state for k, n in record.nodes.items()} == {
        "ImageExampleGen": "CACHED", "ValidationGate": "COMPLETE", "Pusher": "COMPLETE"}
    assert record.executions[0].component.seconds >= 0.0
    assert record.artifact("Pusher", "nope", "PushedModel").uri.endswith("/Pusher/pushed_model/6")
    assert record.output("Pusher", "pushed_model") is record.by_type("PushedModel")
    assert record.pipeline_root().endswith("/pipelines")
    assert list(latest_outputs(metadata_path, "ImageExampleGen")) == ["Examples"]
    assert latest_outputs(metadata_path, "Trainer") == {}
    assert read_run(metadata_path, RUNS[0]).outputs_by_type("ImageExampleGen") == {}


def test_summary_and_its_terminal_text(metadata_path):
    summary = latest_run(metadata_path)
    assert summary.ingest["examples_uri"].endswith("/examples/3") and summary.ingest["ingested"] == 4
    assert summary.data_validation["accepted"] is True
    assert summary.pushed and summary.pushed_model == "/serving/vl/17" and summary.blessed is None
    text = format_summary(summary).splitlines()
    assert text[0] == f"run {RUNS[1]}"
    assert re.fullmatch(r"  ValidationGate {19}FAILED {6,8}\d+\.\d s", text[2]), text[2]
    assert "ingest: 5 files seen, 4 ingested, 1 quarantined" in text
    assert "        1 × corrupt" in text
    assert "data gate: passed" in text and "  note: first run" in text
    assert text[-2:] == ["pushed model: /serving/vl/17",  # and the Pusher's TFLite gate under it
                         "  TFLite shipped: float32; withheld int8: accuracy 0.5000 vs the SavedModel's 0.9000"]
    assert summary.tflite.startswith("TFLite shipped: float32")


def test_anomalies_are_read_per_split_with_the_dataset_level_finding_last(tmp_path):
    anomalies = anomalies_pb2.Anomalies()
    info = anomalies.anomaly_info["label"]
    info.severity = anomalies_pb2.AnomalyInfo.ERROR
    info.short_description = "Unexpected string values"
    info.description = "Examples contain values missing from the schema: zebra."
    anomalies.dataset_anomaly_info.short_description = "Low count"
    (tmp_path / "Split-eval").mkdir()
    (tmp_path / "Split-eval" / "SchemaDiff.pb").write_bytes(anomalies.SerializeToString())
    (tmp_path / "Split-train").mkdir()
    (tmp_path / "Split-train" / "SchemaDiff.pb").write_bytes(anomalies_pb2.Anomalies().SerializeToString())
    found = data_health.read_anomalies(str(tmp_path))
    assert [a.feature for a in found["eval"]] == ["label", data_health.DATASET] and found["train"] == []
    assert found["eval"][0].severity == "ERROR"
    assert data_health.anomaly_lines(found) == {
        "eval": ["label: Examples contain values missing from the schema: zebra."], "train": []}


def test_gate_threshold_texts():
    threshold = config_pb2.MetricThreshold()
    threshold.value_threshold.lower_bound.value = 0.4
    assert gates.threshold_text(threshold) == "≥ 0.4000"
    threshold.change_threshold.direction = config_pb2.MetricDirection.LOWER_IS_BETTER
    threshold.change_threshold.absolute.value = 0.01
    threshold.change_threshold.relative.value = 0.1
    assert gates.threshold_text(threshold) == ("≥ 0.4000 and change vs baseline ≤ +0.0100 and relative change vs "
                                               "baseline ≤ +0.1000")
    assert gates.value_ok(threshold.value_threshold, 0.3) is False and gates.value_ok(threshold.value_threshold, None) \
        is None
    assert gates.change_ok(threshold.change_threshold, 0.005, 1.0) is True
    assert gates.failure_text(0.3, threshold) == "0.3000 is below the lower bound 0.4000"


def test_files_left_out_by_the_class_selection_are_on_the_console():
    summary = RunSummary(run_id="r1", ingest={"files_seen": 25, "ingested": 20, "quarantined": 0, "excluded": 5,
                                              "excluded_report": "/x/excluded_files.csv"})
    text = format_summary(summary).splitlines()
    assert text[1:3] == ["ingest: 25 files seen, 20 ingested, 0 quarantined",
                         "  left out by the class selection: 5 file(s), listed in /x/excluded_files.csv"]
