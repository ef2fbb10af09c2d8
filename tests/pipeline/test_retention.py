"""Tests for pipeline.runs.retention and `visionline prune`, on an ML Metadata store written here run by run as
TFX records them (pipeline_run and node contexts, executions with input/output events, CACHED reuse)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2 as mlmd

from pipeline import cli
from pipeline.configs import PipelineConfig
from pipeline.runs import retention

INPUT, OUTPUT = mlmd.Event.INPUT, mlmd.Event.OUTPUT


class History:
    """Writes runs into a fresh SQLite store the way TFX's LocalDagRunner does, with real artifact folders."""

    def __init__(self, work_dir: Path) -> None:
        config = PipelineConfig().override([f"work_dir={work_dir}"])
        self.root = Path(config.pipeline_root)
        os.makedirs(os.path.dirname(config.metadata_path), exist_ok=True)
        connection = mlmd.ConnectionConfig()
        connection.sqlite.filename_uri = config.metadata_path
        connection.sqlite.connection_mode = mlmd.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
        self.store = metadata_store.MetadataStore(connection)
        self.metadata_path = config.metadata_path
        self._run_type = self.store.put_context_type(mlmd.ContextType(name="pipeline_run"))
        self._node_type = self.store.put_context_type(mlmd.ContextType(name="node"))
        self._execution_type = self.store.put_execution_type(mlmd.ExecutionType(name="component"))
        self._types: dict[str, int] = {}
        self._nodes: dict[str, mlmd.Context] = {}
        self.run: mlmd.Context | None = None

    def start_run(self, name: str) -> None:
        [run_id] = self.store.put_contexts([mlmd.Context(type_id=self._run_type, name=name)])
        self.run = self.store.get_contexts_by_id([run_id])[0]

    def artifact(self, type_name: str, node: str, *, outside: Path | None = None, **flags: int) -> mlmd.Artifact:
        if type_name not in self._types:
            self._types[type_name] = self.store.put_artifact_type(mlmd.ArtifactType(name=type_name))
        artifact = mlmd.Artifact(type_id=self._types[type_name], state=mlmd.Artifact.LIVE)
        [artifact.id] = self.store.put_artifacts([artifact])
        folder = (outside or self.root / node / type_name.lower()) / str(artifact.id)
        folder.mkdir(parents=True)
        (folder / "data.bin").write_bytes(b"x" * 1000)
        artifact.uri = str(folder)
        for key, value in flags.items():
            artifact.custom_properties[key].int_value = value
        self.store.put_artifacts([artifact])
        return self.store.get_artifacts_by_id([artifact.id])[0]

    def execute(self, node: str, inputs: list[mlmd.Artifact] = (), outputs: list[mlmd.Artifact] = (),
                cached: bool = False) -> None:
        if node not in self._nodes:
            [node_id] = self.store.put_contexts([mlmd.Context(type_id=self._node_type, name=f"visionline.{node}")])
            self._nodes[node] = self.store.get_contexts_by_id([node_id])[0]
        state = mlmd.Execution.CACHED if cached else mlmd.Execution.COMPLETE
        execution = mlmd.Execution(type_id=self._execution_type, last_known_state=state)
        events = [(a, self._event(INPUT, a)) for a in inputs] + [(a, self._event(OUTPUT, a)) for a in outputs]
        self.store.put_execution(execution, events, [self.run, self._nodes[node]])


    def _event(self, kind: int, artifact: mlmd.Artifact) -> mlmd.Event:
        """An event keyed by the artifact's type in lower case (`examples`, `model`, `dataverdict`…)."""
        event = mlmd.Event(type=kind)
        names = {type_id: name for name, type_id in self._types.items()}
        event.path.steps.add().key = names[artifact.type_id].rsplit(".", 1)[-1].lower()
        return event


@pytest.fixture()
def history(tmp_path) -> tuple[History, dict[str, mlmd.Artifact]]:
    """Three runs: run 1 blessed its model and passed the gate; run 2 reused run 1's examples from the cache; run
    3 ingested anew. Runs 2 and 3 compared with run 1's model and were neither blessed nor accepted."""
    h = History(tmp_path / "work")
    a: dict[str, mlmd.Artifact] = {}
    h.start_run("2026-12-01T03:00:00.000001")
    a["schema"] = h.artifact("Schema", "ImportSchemaGen", outside=tmp_path / "curated")
    a["examples1"] = h.artifact("Examples", "ImageExampleGen")
    h.execute("ImageExampleGen", outputs=[a["examples1"]])
    a["stats1"] = h.artifact("ExampleStatistics", "StatisticsGen")
    h.execute("StatisticsGen", [a["examples1"]], [a["stats1"]])
    a["verdict1"] = h.artifact("visionline.DataVerdict", "ValidationGate", accepted=1, statistics_id=a["stats1"].id)
    h.execute("ValidationGate", [a["stats1"], a["schema"]], [a["verdict1"]])
    a["model1"] = h.artifact("Model", "Trainer")
    h.execute("Trainer", [a["examples1"]], [a["model1"]])
    a["blessing1"] = h.artifact("ModelBlessing", "Evaluator", blessed=1, current_model_id=a["model1"].id)
    h.execute("Evaluator", [a["model1"], a["examples1"]], [a["blessing1"]])

    h.start_run("2026-12-02T03:00:00.000001")
    h.execute("ImageExampleGen", outputs=[a["examples1"]], cached=True)
    a["stats2"] = h.artifact("ExampleStatistics", "StatisticsGen")
    h.execute("StatisticsGen", [a["examples1"]], [a["stats2"]])
    a["verdict2"] = h.artifact("visionline.DataVerdict", "ValidationGate", accepted=0, statistics_id=a["stats2"].id)
    h.execute("ValidationGate", [a["stats2"], a["stats1"]], [a["verdict2"]])
    a["model2"] = h.artifact("Model", "Trainer")
    h.execute("Trainer", [a["examples1"]], [a["model2"]])
    a["blessing2"] = h.artifact("ModelBlessing", "Evaluator", blessed=0, current_model_id=a["model2"].id)
    h.execute("Evaluator", [a["model2"], a["model1"], a["examples1"]], [a["blessing2"]])

    h.start_run("2026-12-03T03:00:00.000001")
    a["examples3"] = h.artifact("Examples", "ImageExampleGen")
    h.execute("ImageExampleGen", outputs=[a["examples3"]])
    a["model3"] = h.artifact("Model", "Trainer")
    h.execute("Trainer", [a["examples3"]], [a["model3"]])
    a["blessing3"] = h.artifact("ModelBlessing", "Evaluator", blessed=0, current_model_id=a["model3"].id)
    h.execute("Evaluator", [a["model3"], a["model1"], a["examples3"]], [a["blessing3"]])
    return h, a


def _ids(plan: retention.RetentionPlan) -> set[int]:
    return {p.artifact_id for p in plan.prune}


def test_keeps_what_the_newest_runs_used_and_the_next_runs_baselines(history):
    h, a = history
    plan = retention.plan(h.store, str(h.root), keep_runs=1)
    assert plan.kept_runs == ["2026-12-03T03:00:00.000001"] and len(plan.pruned_runs) == 2
    # run 1's examples go (run 3 ingested anew); its blessed model stays: run 3 compared with it, the next run will
    # too, with the blessing that names it; the statistics run 1's gate accepted stay as the drift baseline
    assert _ids(plan) == {a[k].id for k in ("examples1", "model2", "blessing2", "stats2", "verdict2")}
    assert plan.kept_for_next_run == [
        f"the newest blessed model (artifact {a['model1'].id}, the Evaluator's baseline)",
        f"the statistics the gate last accepted (artifact {a['stats1'].id}, the drift baseline)"]
    assert plan.outside_root == 1  # the curated schema: used by no kept run, but outside the root: left, counted
    assert plan.freed_bytes == 5 * 1000
    assert [(p, n, size) for p, n, size in plan.by_producer()] == [
        (node, 1, 1000) for node in ("Evaluator", "ImageExampleGen", "StatisticsGen", "Trainer", "ValidationGate")]


def test_an_artifact_a_kept_run_took_from_the_cache_is_kept(history):
    h, a = history
    plan = retention.plan(h.store, str(h.root), keep_runs=2)
    assert a["examples1"].id not in _ids(plan)  # run 2 (kept) reused it: CACHED executions count
    assert _ids(plan) == set()  # run 1's other artifacts: all used by run 2 or baselines
    with pytest.raises(ValueError, match="keep_runs must be at least 1"):
        retention.plan(h.store, str(h.root), keep_runs=0)


def test_apply_marks_deleted_then_removes_and_a_second_prune_finds_nothing(history):
    h, a = history
    plan = retention.plan(h.store, str(h.root), keep_runs=1)
    assert retention.apply(h.store, plan) == []
    for artifact in h.store.get_artifacts_by_id(sorted(_ids(plan))):
        assert artifact.state == mlmd.Artifact.DELETED and not os.path.exists(artifact.uri)
    kept = h.store.get_artifacts_by_id([a["model1"].id, a["blessing1"].id, a["examples3"].id, a["schema"].id])
    assert all(k.state == mlmd.Artifact.LIVE and os.path.isdir(k.uri) for k in kept)
    assert retention.plan(h.store, str(h.root), keep_runs=1).prune == []


def test_an_interrupted_prune_is_finished_by_the_next(history):
    h, a = history
    leftover = h.store.get_artifacts_by_id([a["model2"].id])[0]
    leftover.state = mlmd.Artifact.DELETED  # marked, but the folder was never removed
    h.store.put_artifacts([leftover])
    plan = retention.plan(h.store, str(h.root), keep_runs=1)
    [again] = [p for p in plan.prune if p.artifact_id == a["model2"].id]
    assert again.leftover
    retention.apply(h.store, plan)
    assert not os.path.exists(leftover.uri)


def test_cli_dry_run_changes_nothing_then_prune_frees_and_says_so(history, capsys):
    h, a = history
    work = str(h.root.parents[1])
    assert cli.main(["prune", "--work-dir", work, "--keep-runs", "1", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "runs kept: 1 (newest 2026-12-03T03:00:00.000001); runs pruned: 2" in out
    assert "would prune 5 artifacts under" in out and "also kept for the next run: the newest blessed model" in out
    assert os.path.isdir(a["examples1"].uri)
    assert cli.main(["prune", "--work-dir", work, "--keep-runs", "1", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["freed_bytes"] == 5000 and not document["dry_run"] and document["problems"] == []
    assert {x["id"] for x in document["artifacts"]} == {a[k].id for k in ("examples1", "model2", "blessing2",
                                                                          "stats2", "verdict2")}
    assert not os.path.exists(a["examples1"].uri)
    assert cli.main(["prune", "--work-dir", work, "--keep-runs", "1"]) == 0
    assert "nothing to prune under" in capsys.readouterr().out


def test_cli_without_a_store_is_a_usage_error_naming_it(tmp_path, capsys):
    assert cli.main(["prune", "--work-dir", str(tmp_path / "none")]) == 2
    assert "no ML Metadata store at" in capsys.readouterr().err
    assert not (tmp_path / "none").exists()  # nothing made there, not even the lock file


def test_a_pruned_run_is_listed_as_pruned_and_its_report_says_what_is_gone(history):
    from pipeline.report.collect import collect
    from pipeline.report.label_issues import LabelIssueSettings
    from pipeline.report.listing import run_row
    from pipeline.runs.record import RunRecord
    from pipeline.runs.store import pipeline_runs

    h, _ = history
    retention.apply(h.store, retention.plan(h.store, str(h.root), keep_runs=1))
    first, second, third = (RunRecord.read(h.store, run) for run in pipeline_runs(h.store))
    assert first.pruned == ["ImageExampleGen.examples"]  # its model, statistics, verdict, blessing: kept
    assert second.pruned == ["Evaluator.modelblessing", "ImageExampleGen.examples", "StatisticsGen.examplestatistics",
                              "Trainer.model", "ValidationGate.dataverdict"]
    assert third.pruned == [] and run_row(third).state == "COMPLETE"
    assert run_row(first).state == "PRUNED"
    data = collect(first, max_samples=0, label_issues=LabelIssueSettings(enabled=False))
    assert any(note.startswith("artifacts of this run were pruned by `visionline prune` (") for note in data.notes)


def test_only_what_pruned_runs_used_is_pruned_and_keeping_every_run_prunes_nothing(history):
    h, a = history
    orphan = h.artifact("Examples", "Elsewhere")  # under the root, LIVE, used by no run (e.g. written by hand)
    assert orphan.id not in _ids(retention.plan(h.store, str(h.root), keep_runs=1))
    everything = retention.plan(h.store, str(h.root), keep_runs=5)
    assert everything.prune == [] and everything.pruned_runs == [] and len(everything.kept_runs) == 3
