"""A hand-written ML Metadata store laid out as TFX records pipeline runs, for the run-record readers' tests: a
`pipeline_run` context per run, a `node` context per component (`vl.<node_id>`), executions in both, and their
output artifacts linked by OUTPUT events keyed by the output name."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2

Output = tuple[str, str, str, dict]  # (output key, artifact type name, uri, custom properties)


class RunStore:
    """A new SQLite store at `path` that knows the artifact types `artifact_types`."""

    def __init__(self, path: str | Path, artifact_types: Iterable[str]) -> None:
        config = metadata_store_pb2.ConnectionConfig()
        config.sqlite.filename_uri = str(path)
        config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
        self.mlmd = metadata_store.MetadataStore(config)
        self._run_type = self.mlmd.put_context_type(metadata_store_pb2.ContextType(name="pipeline_run"))
        self._node_type = self.mlmd.put_context_type(metadata_store_pb2.ContextType(name="node"))
        self._execution_type = self.mlmd.put_execution_type(metadata_store_pb2.ExecutionType(name="component"))
        self._types = {name: self.mlmd.put_artifact_type(metadata_store_pb2.ArtifactType(name=name))
                       for name in artifact_types}
        self._nodes: dict[str, metadata_store_pb2.Context] = {}

    def _context(self, type_id: int, name: str) -> metadata_store_pb2.Context:
        found = metadata_store_pb2.Context(type_id=type_id, name=name)
        found.id = self.mlmd.put_contexts([found])[0]
        return found

    def run(self, name: str) -> metadata_store_pb2.Context:
        """A new pipeline run."""
        return self._context(self._run_type, name)

    def execute(self, run: metadata_store_pb2.Context, node_id: str, state: int,
                outputs: Iterable[Output] = ()) -> None:
        """One execution of `node_id` in `run`, in `state`, with its output artifacts."""
        if node_id not in self._nodes:
            self._nodes[node_id] = self._context(self._node_type, f"vl.{node_id}")
        execution = metadata_store_pb2.Execution(type_id=self._execution_type, last_known_state=state)
        pairs = []
        for key, type_name, uri, props in outputs:
            artifact = metadata_store_pb2.Artifact(type_id=self._types[type_name], uri=uri)
            for name, value in props.items():
                if isinstance(value, int):
                    artifact.custom_properties[name].int_value = value
                else:
                    artifact.custom_properties[name].string_value = value
            event = metadata_store_pb2.Event(type=metadata_store_pb2.Event.OUTPUT)
            event.path.steps.add().key = key
            pairs.append((artifact, event))
        self.mlmd.put_execution(execution, pairs, [run, self._nodes[node_id]])
