"""The label-drift baseline of compiled pipelines without ML Metadata: the ValidationGate copies the statistics it
accepts into the accepted-statistics store, `AcceptedStatisticsBaseline` reads the newest complete entry back,
and the next gate compares with it — the local Resolver's semantics, on artifacts as TFX writes them."""

from __future__ import annotations

import datetime
import json
import os

import pytest
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx.types import artifact_utils, standard_artifacts

from components.accepted_statistics import executor as baseline_executor
from components.accepted_statistics import store
from components.validation_gate.checks import DataValidationError
from components.validation_gate.executor import (
    ACCEPTED,
    ACCEPTED_STATISTICS_PATH,
    ACCEPTED_STATISTICS_ROOT,
    VERDICT_FILE,
)
from pipeline.demo_data import DEMO_SCHEMA
from tests.components.test_validation import _gate_inputs, _run_gate

FIRST_RUN = "label drift not checked: no earlier run passed this gate (first run)"


@pytest.fixture(scope="module")
def digits_schema() -> schema_pb2.Schema:
    """The demo schema with just the image and label features (the examples these tests build)."""
    schema = text_format.Parse(open(DEMO_SCHEMA, encoding="utf-8").read(), schema_pb2.Schema())
    keep = [f for f in schema.feature if f.name in ("image", "label")]
    del schema.feature[:]
    schema.feature.extend(keep)
    return schema


def _read_baseline(root, out):
    statistics = standard_artifacts.ExampleStatistics()
    statistics.uri = str(out)
    baseline_executor.Executor().Do({}, {baseline_executor.OUTPUT: [statistics]}, {baseline_executor.STORE: root})
    return statistics


def _verdict(artifact):
    return json.loads(open(os.path.join(artifact.uri, VERDICT_FILE), encoding="utf-8").read())


def test_accepted_statistics_become_the_next_runs_baseline_and_drift_stops_it(tmp_path, digits_schema):
    root = str(tmp_path / "pipelines" / "visionline" / store.ROOT_NAME)
    first = _read_baseline(root, tmp_path / "b1")  # nothing accepted yet: no splits, and the gate says first run
    assert first.get_int_custom_property(baseline_executor.FOUND) == 0
    assert artifact_utils.decode_split_names(first.split_names) == []
    inputs = _gate_inputs(tmp_path / "run1", digits_schema, ["0", "1", "2"] * 4)
    verdict = _run_gate(tmp_path / "run1", {**inputs, "baseline_statistics": [first]},
                        **{ACCEPTED_STATISTICS_ROOT: root})
    record = _verdict(verdict)
    assert record["notes"] == [FIRST_RUN] and verdict.get_int_custom_property(ACCEPTED) == 1
    entry = store.latest(root)
    assert entry is not None and record[ACCEPTED_STATISTICS_PATH] == entry.path
    assert verdict.get_string_custom_property(ACCEPTED_STATISTICS_PATH) == entry.path
    assert (entry.split_names, entry.source_uri) == (["train", "eval"], str(tmp_path / "run1" / "stats"))

    second = _read_baseline(root, tmp_path / "b2")  # the snapshot: the accepted statistics, byte for byte
    assert second.get_int_custom_property(baseline_executor.FOUND) == 1
    assert second.get_string_custom_property(baseline_executor.SOURCE_URI) == str(tmp_path / "run1" / "stats")
    for split in ("train", "eval"):
        copied = os.path.join(artifact_utils.get_split_uri([second], split), "FeatureStats.pb")
        original = tmp_path / "run1" / "stats" / f"Split-{split}" / "FeatureStats.pb"
        assert open(copied, "rb").read() == original.read_bytes()
    drifted = _gate_inputs(tmp_path / "run2", digits_schema, ["0"] * 10 + ["1", "2"])
    with pytest.raises(DataValidationError) as stopped:  # 83% zeros against 33%: L∞ 0.5 > 0.25
        _run_gate(tmp_path / "run2", {**drifted, "baseline_statistics": [second]}, **{ACCEPTED_STATISTICS_ROOT: root})
    assert [p.kind for p in stopped.value.problems] == ["label_drift"]
    assert "train: label: distribution drift L∞=0.500 > 0.25 vs the previous accepted run" in str(stopped.value)
    assert store.latest(root) == entry  # stopped data never becomes the baseline: run 3 compares with run 1 again

    kept = _gate_inputs(tmp_path / "run3", digits_schema, ["0", "1", "zebra"])  # problems recorded, run continues
    verdict = _run_gate(tmp_path / "run3", kept, stop_on_anomalies=0, **{ACCEPTED_STATISTICS_ROOT: root})
    assert verdict.get_int_custom_property(ACCEPTED) == 0 and ACCEPTED_STATISTICS_PATH not in _verdict(verdict)
    assert store.latest(root) == entry  # not accepted: not published either


def test_local_gate_publishes_nothing(tmp_path, digits_schema):
    verdict = _run_gate(tmp_path, _gate_inputs(tmp_path, digits_schema, ["0", "1", "2"]))  # no store: the Resolver's
    assert ACCEPTED_STATISTICS_PATH not in _verdict(verdict)
    assert not verdict.has_custom_property(ACCEPTED_STATISTICS_PATH)


def _statistics(uri, splits):
    artifact = standard_artifacts.ExampleStatistics()
    artifact.uri = str(uri)
    artifact.split_names = artifact_utils.encode_split_names(splits)
    for split in splits:
        os.makedirs(uri / f"Split-{split}")
        (uri / f"Split-{split}" / "FeatureStats.pb").write_bytes(f"{uri.name} {split}".encode())
    return artifact


def test_the_newest_complete_entry_is_the_baseline(tmp_path):
    root = str(tmp_path / "store")
    assert store.latest(root) is None  # no store yet
    at = datetime.datetime(2026, 12, 7, 6, 0, tzinfo=datetime.UTC)
    older = store.publish(root, _statistics(tmp_path / "a", ["train"]), at)
    newer = store.publish(root, _statistics(tmp_path / "b", ["train", "eval"]), at + datetime.timedelta(seconds=1))
    same_time = store.publish(root, _statistics(tmp_path / "c", ["train"]), at)  # another run, same instant
    assert len({older, newer, same_time}) == 3
    assert os.path.basename(newer) == f"20261207T060001000000Z-{os.path.basename(newer)[-8:]}"
    half = os.path.join(root, "20261207T070000000000Z-0123abcd")  # a gate that died while copying: no marker
    os.makedirs(os.path.join(half, "Split-train"))
    os.makedirs(os.path.join(root, "99999999T999999999999Z-notanentry"))  # not an entry name
    entry = store.latest(root)
    assert (entry.path, entry.split_names, entry.source_uri) == (newer, ["train", "eval"], str(tmp_path / "b"))
    assert entry.accepted_at == "2026-12-07T06:00:01+00:00"
    assert open(os.path.join(newer, "Split-eval", "FeatureStats.pb"), "rb").read() == b"b eval"
