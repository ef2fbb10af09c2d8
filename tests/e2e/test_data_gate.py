"""The validation gate inside real pipeline runs (LocalDagRunner, Beam in memory, SQLite ML Metadata).

Run 1 (clean data, up to the gate) is accepted; run 2 (the CLI, on data with an unknown label and a skewed
class balance) stops before Transform with both problems named and exit code 4; run 3 repeats run 2's data and
must still compare it with run 1's statistics — not with its own, which were never accepted.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tfx import v1 as tfx
from tfx.orchestration import metadata
from tfx.orchestration.pipeline import RunOptions

from components.validation_gate.checks import DataValidationError
from pipeline import cli
from pipeline.component_ids import STATISTICS_GEN, VALIDATION_GATE
from pipeline.configs import PipelineConfig
from pipeline.demo_data import DEMO_SCHEMA, materialize_digits
from pipeline.local_runner import run_local
from pipeline.pipeline import create_pipeline
from pipeline.runs.summary import latest_outputs, latest_run

pytestmark = pytest.mark.e2e


def _subset(source: Path, dest: Path, counts: dict[str, int]) -> Path:
    for label, count in counts.items():
        (dest / label).mkdir(parents=True)
        for image in sorted((source / label).iterdir())[:count]:
            shutil.copy(image, dest / label / image.name)
    return dest


def _config(data: Path, work: Path) -> PipelineConfig:
    return PipelineConfig().override(["preset=demo", f"data.root={data}", f"work_dir={work}",
                                      f"data.schema_path={DEMO_SCHEMA}",
                                      "beam.direct_running_mode=in_memory"])


def _gate_baseline_ids(metadata_path: str) -> list[int]:
    """ExampleStatistics ids the gate executions read as `baseline_statistics`, oldest execution first."""
    store = metadata_store.MetadataStore(metadata.sqlite_metadata_connection_config(metadata_path))
    node = store.get_context_by_type_and_name("node", f"visionline.{VALIDATION_GATE}")
    ids = []
    for execution in sorted(store.get_executions_by_context(node.id), key=lambda e: e.id):
        events = store.get_events_by_execution_ids([execution.id])
        ids.append(next((e.artifact_id for e in events if e.type == metadata_store_pb2.Event.INPUT
                         and e.path.steps[0].key == "baseline_statistics"), None))
    return ids


def test_gate_stops_unknown_labels_and_drift_and_never_accepts_drift_by_rerunning(tmp_path, capsys):
    digits = materialize_digits(tmp_path / "digits", per_class=30)
    clean = _subset(digits, tmp_path / "clean", {"0": 8, "1": 8, "2": 8})
    bad = _subset(digits, tmp_path / "bad", {"0": 30, "1": 3, "2": 3})
    (bad / "zebra").mkdir()  # three sevens filed under a class the curated schema does not know
    for image in sorted((digits / "7").iterdir())[:3]:
        shutil.copy(image, bad / "zebra" / image.name)
    work = tmp_path / "work"

    config = _config(clean, work)
    tfx.orchestration.LocalDagRunner().run(create_pipeline(config), run_options=RunOptions(to_nodes=[VALIDATION_GATE]))
    first = latest_run(config.metadata_path)
    assert {c.node_id: c.state for c in first.components}[VALIDATION_GATE] == "COMPLETE"
    assert first.data_validation["accepted"] is True
    assert first.data_validation["notes"] == ["label drift not checked: no earlier run passed this gate (first run)"]
    (accepted_stats,) = latest_outputs(config.metadata_path, STATISTICS_GEN)["ExampleStatistics"]

    argv = ["run", "--data", str(bad), "--work-dir", str(work), "--in-memory",
            "--set", f"data.schema_path={DEMO_SCHEMA}"]
    assert cli.main(argv) == 4
    shown = capsys.readouterr()
    assert "Traceback" not in shown.err
    assert re.search(r"^STOPPED before training: the data validation gate found [23] problem\(s\)$", shown.err, re.M)
    assert re.search(r"^  (train|eval): label: unexpected string values 'zebra' \(\d examples?\)$", shown.err, re.M)
    drift = re.search(r"^  train: label: distribution drift L∞=(0\.\d{3}) > 0\.25 vs the previous accepted run "
                      r"\(largest change: '0' \d+\.\d% → \d+\.\d%\)$", shown.err, re.M)
    assert drift and float(drift.group(1)) > 0.25, shown.err
    assert re.search(rf"^  {VALIDATION_GATE} +FAILED ", shown.err, re.M)
    assert cli.main(["last-run", "--work-dir", str(work)]) == 0  # the reason is kept in ML Metadata
    last = capsys.readouterr().out
    assert re.search(r"^data gate: STOPPED the run before training, [23] problem\(s\)$", last, re.M), last
    assert re.search(r"^  data problem \((train|eval)\): label: unexpected string values 'zebra'", last, re.M), last
    assert not os.listdir(_config(bad, work).push_base)  # nothing pushed

    with pytest.raises(DataValidationError) as again:  # same data again: still judged against run 1's statistics
        run_local(_config(bad, work))
    states = {c.node_id: c.state for c in again.value.summary.components}
    assert states[VALIDATION_GATE] == "FAILED" and states["StatisticsGen"] == "CACHED"
    assert not {"Transform", "Tuner", "Trainer", "Evaluator", "Pusher"} & set(states)  # the gate blocks Transform
    assert any(p.kind == "label_drift" for p in again.value.problems)
    assert again.value.summary.data_validation["stopped"] is True
    bad_stats = latest_outputs(config.metadata_path, STATISTICS_GEN)["ExampleStatistics"][0]
    assert bad_stats.id != accepted_stats.id
    assert _gate_baseline_ids(config.metadata_path) == [None, accepted_stats.id, accepted_stats.id]
