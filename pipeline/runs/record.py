"""One pipeline run as ML Metadata recorded it: its components' executions (CACHED ones included, so a fully
cached run still leads to the artifacts it reused) with their input and output artifacts by key, read once.

`read_run` opens the store, finds the run (`store.find_run`) and reads it into a `RunRecord`; everything else
about a run (`summary`, `data_health`, `evaluation`, the report) is read from that record.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2

from pipeline.component_ids import TRAINER, TRANSFORM
from pipeline.runs.store import find_run, mlmd_value, open_store

_STATES = {v: k for k, v in metadata_store_pb2.Execution.State.items()}
_INPUTS = (metadata_store_pb2.Event.INPUT, metadata_store_pb2.Event.DECLARED_INPUT)
_OUTPUTS = (metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.DECLARED_OUTPUT)


@dataclass
class ComponentRun:
    """One component's execution in a run."""

    node_id: str
    state: str  # COMPLETE | CACHED | FAILED | RUNNING …
    seconds: float


@dataclass
class Node:
    """One execution of a component, with its input and output artifacts by key (e.g. `model`, `blessing`)."""

    node_id: str
    execution: Any
    state: str
    inputs: dict[str, list[Any]] = field(default_factory=dict)
    outputs: dict[str, list[Any]] = field(default_factory=dict)

    def output(self, key: str) -> Any:
        """The (last) output artifact under `key`, or None."""
        artifacts = self.outputs.get(key) or []
        return artifacts[-1] if artifacts else None

    def prop(self, name: str) -> Any:
        """An execution property (custom first) as Python, or None."""
        if name in self.execution.custom_properties:
            return mlmd_value(self.execution.custom_properties[name])
        if name in self.execution.properties:
            return mlmd_value(self.execution.properties[name])
        return None

    @property
    def component(self) -> ComponentRun:
        """Node id, state and wall-clock seconds of this execution."""
        seconds = (self.execution.last_update_time_since_epoch - self.execution.create_time_since_epoch) / 1000.0
        return ComponentRun(self.node_id, self.state, max(0.0, seconds))


@dataclass
class RunRecord:
    """The executions of one run (in start order) with their artifacts, and the store's artifact type names."""

    run: Any  # the pipeline_run Context
    pipeline_name: str = ""
    executions: list[Node] = field(default_factory=list)
    type_names: dict[int, str] = field(default_factory=dict)

    @classmethod
    def read(cls, store: metadata_store.MetadataStore, run: metadata_store_pb2.Context) -> RunRecord:
        """Every execution of `run` with the artifacts of its input and output events."""
        executions = sorted(store.get_executions_by_context(run.id), key=lambda e: (e.create_time_since_epoch, e.id))
        events = store.get_events_by_execution_ids([e.id for e in executions]) if executions else []
        artifacts = {a.id: a for a in store.get_artifacts_by_id(sorted({e.artifact_id for e in events}))}
        type_names = {t.id: t.name for t in store.get_artifact_types()}
        context_types = {t.id: t.name for t in store.get_context_types()}
        record = cls(run=run, type_names=type_names)
        for execution in executions:
            node_id = ""
            for context in store.get_contexts_by_execution(execution.id):
                if context_types.get(context.type_id) == "node":
                    record.pipeline_name, _, node_id = context.name.rpartition(".")
            if not node_id:
                component_id = execution.properties.get("component_id", metadata_store_pb2.Value()).string_value
                node_id = str(component_id or execution.id)
            node = Node(node_id, execution, _STATES.get(execution.last_known_state, "?"))
            for event in (e for e in events if e.execution_id == execution.id):
                artifact = artifacts.get(event.artifact_id)
                if artifact is None:
                    continue
                # One event per artifact; its path lists every key it was passed under (e.g. the same Model as
                # both `model` and `baseline_model` when the Trainer was cached).
                keys = [step.key for step in event.path.steps if step.HasField("key")] or [""]
                if event.type in _INPUTS:
                    target = node.inputs
                elif event.type in _OUTPUTS:
                    target = node.outputs
                else:
                    continue
                for key in keys:
                    target.setdefault(key, []).append(artifact)
            record.executions.append(node)
        return record

    @property
    def run_id(self) -> str:
        """The run's name (a timestamp)."""
        return self.run.name

    @property
    def created(self) -> str:
        """When the run started, local time ("2026-01-02 03:04:05")."""
        return local_time(self.run.create_time_since_epoch)

    @cached_property
    def nodes(self) -> dict[str, Node]:
        """Executions by node id, in first-start order; a retried node's last execution wins."""
        nodes: dict[str, Node] = {}
        for node in self.executions:
            nodes[node.node_id] = node
        return nodes

    @cached_property
    def pruned(self) -> list[str]:
        """`node.key` of this run's outputs that `visionline prune` deleted (ML Metadata keeps their records, their
        folders are gone), sorted; [] for a run whose artifacts are all there."""
        return sorted({f"{node.node_id}.{key}" for node in self.executions for key, artifacts in node.outputs.items()
                       if any(a.state == metadata_store_pb2.Artifact.DELETED for a in artifacts)})

    def node(self, node_id: str) -> Node | None:
        """The execution of `node_id`, or None when it did not run."""
        return self.nodes.get(node_id)

    def output(self, node_id: str, key: str) -> Any:
        """The output artifact `key` of `node_id`, or None."""
        node = self.nodes.get(node_id)
        return node.output(key) if node else None

    def by_type(self, type_name: str) -> Any:
        """The last output artifact of that type in the run (for DAGs with renamed components)."""
        found = [a for n in self.nodes.values() for arts in n.outputs.values() for a in arts
                 if self.type_names.get(a.type_id) == type_name]
        return found[-1] if found else None

    def feature(self, key: str = "label_feature", default: str = "label") -> str:
        """A feature name from the Trainer's (else Transform's) custom_config: the label (default) or image feature."""
        for node_id in (TRAINER, TRANSFORM):
            node = self.node(node_id)
            config = node.prop("custom_config") if node else None
            if isinstance(config, dict) and config.get(key):
                return str(config[key])
        return default

    def artifact(self, node_id: str, key: str, type_name: str) -> Any:
        """Output `key` of `node_id`, else the run's last output artifact of `type_name`; None when neither."""
        return self.output(node_id, key) or self.by_type(type_name)

    def outputs_by_type(self, node_id: str) -> dict[str, list[Any]]:
        """Output artifacts (ML Metadata protos) of `node_id` by type name; empty when it did not run."""
        node = self.nodes.get(node_id)
        unique = {a.id: a for arts in (node.outputs.values() if node else ()) for a in arts}
        by_type: dict[str, list[Any]] = {}
        for artifact_id in sorted(unique):
            artifact = unique[artifact_id]
            by_type.setdefault(self.type_names.get(artifact.type_id, "?"), []).append(artifact)
        return by_type

    def pipeline_root(self) -> str | None:
        """`<root>` from output URIs laid out as `<root>/<node id>/<output key>/<execution id>`."""
        for node in self.nodes.values():
            for key, artifacts in node.outputs.items():
                for artifact in artifacts:
                    parts = artifact.uri.rstrip("/").rsplit("/", 3)
                    if len(parts) == 4 and parts[1] == node.node_id and parts[2] == key:
                        return parts[0]
        return None


def read_run(metadata_path: str, run_id: str | None = None) -> RunRecord:
    """The latest (or given, see `store.find_run`) run recorded in the store at `metadata_path`."""
    store = open_store(metadata_path)
    return RunRecord.read(store, find_run(store, run_id, metadata_path))


def bool_prop(artifact: Any, name: str) -> bool | None:
    """An artifact's int custom property as a bool; None when the artifact or property is missing."""
    if artifact is None or name not in artifact.custom_properties:
        return None
    return bool(artifact.custom_properties[name].int_value)


def str_prop(artifact: Any, name: str) -> str:
    """An artifact's custom property as text; "" when the artifact or property is missing."""
    if artifact is None or name not in artifact.custom_properties:
        return ""
    return str(mlmd_value(artifact.custom_properties[name]))


def local_time(millis: int) -> str:
    """Milliseconds since the epoch as local time, "2026-01-02 03:04:05"."""
    return dt.datetime.fromtimestamp(millis / 1000.0).astimezone().strftime("%Y-%m-%d %H:%M:%S")
