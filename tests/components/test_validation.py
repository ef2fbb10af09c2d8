"""Tests for components.validation_gate: the gate's checks on real TFDV statistics and anomalies, its executor on
real artifact folders, and the resolver strategy that picks the last accepted statistics."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_data_validation as tfdv
from google.protobuf import text_format
from tensorflow_data_validation.statistics import stats_impl
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx.types import artifact_utils, standard_artifacts
from tfx_bsl.coders import example_coder

from components.validation_gate.checks import DataValidationError, Problem, check
from components.validation_gate.component import DataVerdict
from components.validation_gate.executor import ACCEPTED, STATISTICS_ID, STOPPED_CODE, VERDICT_FILE, Executor
from components.validation_gate.resolver import LatestAcceptedStatisticsStrategy
from pipeline.demo_data import DEMO_SCHEMA
from tests.conftest import encode


def _example(image: bytes | None, label: str) -> bytes:
    feature = {"label": tf.train.Feature(bytes_list=tf.train.BytesList(value=[label.encode()]))}
    if image is not None:
        feature["image"] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[image]))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def _stats(labels: list[str], images: list[bytes | None] | None = None):
    """TFDV statistics of tf.Examples, computed by the same generators StatisticsGen runs (in memory, no Beam)."""
    images = images if images is not None else [encode(np.full((4, 4), i % 200, np.uint8), "PNG")
                                                for i in range(len(labels))]
    batch = example_coder.ExamplesToRecordBatchDecoder().DecodeBatch(
        [_example(image, label) for image, label in zip(images, labels)])
    return stats_impl.generate_statistics_in_memory(batch)


@pytest.fixture(scope="module")
def digits_schema() -> schema_pb2.Schema:
    schema = text_format.Parse(open(DEMO_SCHEMA, encoding="utf-8").read(), schema_pb2.Schema())
    # these tests build examples with an image and a label only
    keep = [f for f in schema.feature if f.name in ("image", "label")]
    del schema.feature[:]
    schema.feature.extend(keep)
    return schema


def _check(statistics, schema, **kwargs):
    anomalies = {split: tfdv.validate_statistics(stats, schema) for split, stats in statistics.items()}
    return check(statistics, anomalies, schema, label_feature="label", image_feature="image",
                 **{"max_label_drift": 0.25, **kwargs})


def test_unknown_label_is_named_with_exact_counts(digits_schema):
    labels = [str(i % 10) for i in range(60)] + ["zebra"] * 3 + ["Zebra"]
    verdict = _check({"train": _stats(labels)}, digits_schema)
    assert [(p.split, p.kind) for p in verdict.problems] == [("train", "unknown_label")]
    assert verdict.problems[0].message == "label: unexpected string values 'zebra' (3 examples), 'Zebra' (1 example)"
    assert str(verdict.problems[0]) == "train: " + verdict.problems[0].message


def test_missing_and_empty_images_are_found_in_the_statistics(digits_schema):
    png = encode(np.zeros((4, 4), np.uint8), "PNG")
    labels = [str(i % 10) for i in range(20)]
    images = [png] * 16 + [None, None, None, b""]
    verdict = _check({"eval": _stats(labels, images)}, digits_schema)
    messages = [p.message for p in verdict.problems]
    assert messages == ["image: missing in 3 of 20 examples", "image: empty image bytes in 1 of 20 examples"]
    assert {p.kind for p in verdict.problems} == {"missing_image"}  # TFDV's presence anomaly is not repeated
    inferred = tfdv.infer_schema(_stats(labels, images))  # an inferred schema accepts the gaps; the gate does not
    assert [p.message for p in _check({"eval": _stats(labels, images)}, inferred).problems] == messages


def test_label_drift_uses_tfdv_linf_against_the_baseline(digits_schema):
    baseline = _stats(["0", "1", "2"] * 10)
    drifted = _stats(["0"] * 30 + ["1"] * 10 + ["2"] * 10)  # '0' 1/3 -> 3/5: L-inf = 0.2667
    verdict = _check({"train": drifted}, digits_schema, baseline=baseline, max_label_drift=0.2, baseline_uri="/b")
    assert verdict.drift.distance == pytest.approx(0.6 - 1 / 3, abs=1e-6)
    assert verdict.drift.exceeded and verdict.drift.baseline_uri == "/b"
    (problem,) = verdict.problems
    assert (problem.split, problem.kind) == ("train", "label_drift")
    assert problem.message == ("label: distribution drift L∞=0.267 > 0.2 vs the previous accepted run "
                               "(largest change: '0' 33.3% → 60.0%)")

    within = _check({"train": drifted}, digits_schema, baseline=baseline, max_label_drift=0.3)
    assert within.problems == [] and not within.drift.exceeded
    same = _check({"train": baseline}, digits_schema, baseline=baseline)
    assert same.drift.distance == 0.0 and same.drift.largest_change == "none" and same.problems == []


def test_drift_check_off_or_without_baseline_says_so(digits_schema):
    stats = _stats(["0", "1"] * 5)
    assert _check({"train": stats}, digits_schema).notes == [
        "label drift not checked: no earlier run passed this gate (first run)"]
    off = _check({"train": stats}, digits_schema, baseline=stats, max_label_drift=0.0)
    assert off.drift is None and off.notes == ["label drift not checked: validation.max_label_drift is 0"]


def _artifact(cls, uri, splits=None):
    artifact = cls()
    artifact.uri = str(uri)
    if splits:
        artifact.split_names = artifact_utils.encode_split_names(splits)
    return artifact


def _gate_inputs(tmp_path, schema, train_labels, baseline_labels=None):
    stats = _artifact(standard_artifacts.ExampleStatistics, tmp_path / "stats", ["train", "eval"])
    stats.id = 7
    anomalies = _artifact(standard_artifacts.ExampleAnomalies, tmp_path / "anomalies", ["train", "eval"])
    for split, labels in (("train", train_labels), ("eval", ["0", "1"])):
        split_stats = _stats(labels)
        os.makedirs(tmp_path / "stats" / f"Split-{split}")
        (tmp_path / "stats" / f"Split-{split}" / "FeatureStats.pb").write_bytes(split_stats.SerializeToString())
        os.makedirs(tmp_path / "anomalies" / f"Split-{split}")
        with open(tmp_path / "anomalies" / f"Split-{split}" / "SchemaDiff.pb", "wb") as handle:
            handle.write(tfdv.validate_statistics(split_stats, schema).SerializeToString())
    os.makedirs(tmp_path / "schema")
    tfdv.write_schema_text(schema, str(tmp_path / "schema" / "schema.pbtxt"))
    inputs = {"statistics": [stats], "anomalies": [anomalies],
              "schema": [_artifact(standard_artifacts.Schema, tmp_path / "schema")]}
    if baseline_labels:
        base = _artifact(standard_artifacts.ExampleStatistics, tmp_path / "base", ["train"])
        os.makedirs(tmp_path / "base" / "Split-train")
        (tmp_path / "base" / "Split-train" / "FeatureStats.pb").write_bytes(_stats(baseline_labels).SerializeToString())
        inputs["baseline_statistics"] = [base]
    return inputs


def _run_gate(tmp_path, inputs, context=None, **props):
    verdict = _artifact(DataVerdict, tmp_path / "verdict")
    os.makedirs(verdict.uri, exist_ok=True)
    properties = {"label_feature": "label", "image_feature": "image", "stop_on_anomalies": 1,
                  "max_label_drift": 0.25, **props}
    output = Executor(context).Do(inputs, {"verdict": [verdict]}, properties)
    return output if context is not None else verdict


def test_executor_stops_the_run_on_artifacts_as_tfx_writes_them(tmp_path, digits_schema):
    # No executor output URI (as in Kubeflow's v2 container entrypoint): the gate raises.
    inputs = _gate_inputs(tmp_path, digits_schema, ["0", "1", "zebra"], baseline_labels=["0", "1", "2"])
    with pytest.raises(DataValidationError) as stopped:
        _run_gate(tmp_path, inputs)
    text = str(stopped.value)
    assert text.startswith("data validation failed: 2 problem(s), the run stopped before training")
    assert "train: label: unexpected string values 'zebra' (1 example)" in text
    assert "train: label: distribution drift L∞=0.333 > 0.25" in text
    assert {p.kind for p in stopped.value.problems} == {"unknown_label", "label_drift"}


def test_stopped_verdict_survives_in_ml_metadata_as_tfx_launcher_stores_it(tmp_path, digits_schema):
    """Under TFX's launcher (an executor output URI is set) the gate returns a failed ExecutorOutput; the launcher
    keeps its result on the execution, where `last-run` (data_health.stopped_verdict) finds the problems again."""
    from ml_metadata.proto import metadata_store_pb2
    from tfx.dsl.components.base import base_executor
    from tfx.orchestration.portable.mlmd import execution_lib

    from pipeline.runs.data_health import data_gate_lines, stopped_verdict

    inputs = _gate_inputs(tmp_path, digits_schema, ["0", "1", "zebra"], baseline_labels=["0", "1", "2"])
    context = base_executor.BaseExecutor.Context(executor_output_uri=str(tmp_path / "executor_output.pb"))
    output = _run_gate(tmp_path, inputs, context=context)
    assert output.execution_result.code == STOPPED_CODE
    execution = metadata_store_pb2.Execution()
    execution_lib.set_execution_result(output.execution_result, execution)
    verdict = stopped_verdict(execution)
    assert verdict["stopped"] is True and verdict["accepted"] is False
    again = DataValidationError.from_verdict(verdict)
    assert {p.kind for p in again.problems} == {"unknown_label", "label_drift"}
    assert "train: label: unexpected string values 'zebra' (1 example)" in str(again)
    assert data_gate_lines(verdict)[0] == "data gate: STOPPED the run before training, 2 problem(s)"
    assert stopped_verdict(metadata_store_pb2.Execution()) == {}  # any other execution


def test_executor_records_problems_and_continues_when_told_to(tmp_path, digits_schema):
    inputs = _gate_inputs(tmp_path, digits_schema, ["0", "1", "zebra"])
    verdict = _run_gate(tmp_path, inputs, stop_on_anomalies=0)
    assert verdict.get_int_custom_property(ACCEPTED) == 0
    assert verdict.get_int_custom_property(STATISTICS_ID) == 7
    record = json.loads(open(os.path.join(verdict.uri, VERDICT_FILE), encoding="utf-8").read())
    assert record["accepted"] is False and record["problems"][0]["kind"] == "unknown_label"
    assert record["statistics_uri"] == str(tmp_path / "stats")


def test_executor_accepts_clean_data_and_records_the_drift(tmp_path, digits_schema):
    inputs = _gate_inputs(tmp_path, digits_schema, ["0", "1", "2", "2"], baseline_labels=["0", "1", "2"])
    verdict = _run_gate(tmp_path, inputs)
    assert verdict.get_int_custom_property(ACCEPTED) == 1
    assert verdict.get_float_custom_property("label_drift") == pytest.approx(0.5 - 1 / 3, abs=1e-6)


def test_strategy_resolves_the_statistics_of_the_newest_accepted_verdict():
    def stats(artifact_id):
        artifact = standard_artifacts.ExampleStatistics()
        artifact.id = artifact_id
        return artifact

    def verdict(artifact_id, accepted, statistics_id):
        artifact = DataVerdict()
        artifact.id = artifact_id
        artifact.set_int_custom_property(ACCEPTED, accepted)
        artifact.set_int_custom_property(STATISTICS_ID, statistics_id)
        return artifact

    strategy = LatestAcceptedStatisticsStrategy()
    statistics = [stats(1), stats(2), stats(3)]
    verdicts = [verdict(10, 1, 1), verdict(11, 1, 2), verdict(12, 0, 3)]  # run 3 was let through with problems
    resolved = strategy.resolve_artifacts(None, {"statistics": statistics, "verdict": verdicts})
    assert [a.id for a in resolved["statistics"]] == [2] and [a.id for a in resolved["verdict"]] == [11]
    assert strategy.resolve_artifacts(None, {"statistics": statistics, "verdict": []}) == {
        "statistics": [], "verdict": []}


def test_run_summary_shows_the_gate_outcome():
    from pipeline.runs.record import ComponentRun
    from pipeline.runs.summary import RunSummary
    from pipeline.runs.text import format_stopped, format_summary

    passed = RunSummary(run_id="r", data_validation={
        "accepted": True, "problems": [], "notes": [],
        "drift": {"distance": 0.0123, "bound": 0.25, "largest_change": "'3' 10.0% → 11.2%", "baseline_uri": "/s"}})
    assert "data gate: passed (label drift L∞=0.012 ≤ 0.25 vs the previous accepted run; largest change '3' 10.0% → " \
           "11.2%)" in format_summary(passed)
    let_through = RunSummary(run_id="r", data_validation={
        "accepted": False, "drift": None, "notes": ["label drift not checked: validation.max_label_drift is 0"],
        "problems": [{"split": "eval", "feature": "image", "kind": "missing_image",
                      "message": "image: missing in 2 of 40 examples"}]})
    text = format_summary(let_through)
    assert "data gate: 1 problem(s) recorded, run continued (validation.stop_on_anomalies=false)" in text
    assert "  data problem (eval): image: missing in 2 of 40 examples" in text and "  note: label drift" in text

    stopped = RunSummary(run_id="r", components=[ComponentRun("ValidationGate", "FAILED", 0.1)])
    problem = Problem("train", "label", "unknown_label", "label: unexpected string values 'x' (1 example)")
    text = format_stopped(stopped, [problem], ["label drift not checked: no earlier run passed this gate"])
    assert text.splitlines()[1:4] == [
        "  ValidationGate                   FAILED        0.1 s",
        "STOPPED before training: the data validation gate found 1 problem(s)",
        "  train: label: unexpected string values 'x' (1 example)"]
    assert "pushed model: none (ValidationGate failed, the run stopped there)" in format_summary(stopped)


def test_three_splits_are_each_checked_and_listed_in_pipeline_order(digits_schema):
    png = encode(np.zeros((4, 4), np.uint8), "PNG")
    labels = [str(i % 10) for i in range(20)]
    statistics = {"eval": _stats(labels, [png] * 19 + [None]), "train": _stats(labels),
                  "val": _stats(labels[:-1] + ["zebra"])}
    verdict = _check(statistics, digits_schema, baseline=_stats(labels))
    assert [str(p) for p in verdict.problems] == ["val: label: unexpected string values 'zebra' (1 example)",
                                                  "eval: image: missing in 1 of 20 examples"]
    assert verdict.drift.distance < 0.25  # drift: the train split against the baseline's
