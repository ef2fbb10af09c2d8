"""Retention of a local pipeline's artifacts (`visionline prune`): which to keep, and pruning the rest.

Every run writes new artifacts under the pipeline root (Examples, statistics, the transform graph, models, the
evaluation…) and nothing removes them: a pipeline run every night fills its disk. TFX's own garbage-collection
policy (`GarbageCollectionPolicy` in its pipeline IR) is applied only by an orchestrator that LocalDagRunner is
not, so visionline keeps:

* every artifact an execution of the `keep_runs` newest runs read or wrote (CACHED executions included: an
  artifact an old run made and a kept run reused is kept);
* what the next run's resolvers would pick even when no kept run used it: the newest blessed model with its
  blessing (the Evaluator's baseline) and the newest statistics the ValidationGate accepted with its verdict (the
  drift baseline).

Everything else the older runs used whose folder lies under the pipeline root is pruned: first marked DELETED in
ML Metadata, then its folder removed. TFX's cache and its resolvers consider LIVE artifacts only, so a later run
never receives a pruned one (it recomputes instead); a prune stopped half-way leaves DELETED artifacts whose
folders remain, and the next prune removes them. Artifacts outside the pipeline root (an imported schema, a push
destination) are never touched; pushed model versions are the serving side's (their labels may pin old versions)
and stay too.

A run in progress may take an old artifact from the cache: `visionline prune` holds the pipeline's lock
(pipeline/run_lock.py), which every local run holds too, so the two never overlap.
"""

from __future__ import annotations

import os
import shutil
from collections import Counter
from dataclasses import dataclass, field

from ml_metadata import errors as mlmd_errors
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2

from pipeline.runs.store import mlmd_value, pipeline_runs

LIVE, DELETED = metadata_store_pb2.Artifact.LIVE, metadata_store_pb2.Artifact.DELETED
BLESSING_TYPE, BLESSED, BLESSED_MODEL_ID = "ModelBlessing", "blessed", "current_model_id"  # TFX's Evaluator
VERDICT_TYPE, ACCEPTED, ACCEPTED_STATISTICS_ID = "visionline.DataVerdict", "accepted", "statistics_id"  # the gate


@dataclass(frozen=True)
class PrunedArtifact:
    """One artifact to prune: its ML Metadata id and type, the node that produced it, its folder and size."""

    artifact_id: int
    type_name: str
    producer: str
    uri: str
    size_bytes: int
    leftover: bool = False  # already DELETED by an interrupted prune; only its folder is left to remove


@dataclass
class RetentionPlan:
    """What a prune keeps and removes (`plan`), before anything is touched."""

    pipeline_root: str
    kept_runs: list[str]
    pruned_runs: list[str]
    prune: list[PrunedArtifact] = field(default_factory=list)
    kept_for_next_run: list[str] = field(default_factory=list)  # why, for what no kept run used
    outside_root: int = 0  # LIVE artifacts of pruned runs left alone because their folder is elsewhere

    @property
    def freed_bytes(self) -> int:
        """Bytes the prune frees."""
        return sum(a.size_bytes for a in self.prune)

    def by_producer(self) -> list[tuple[str, int, int]]:
        """(node id, artifacts, bytes) of the prune, largest first."""
        counts: Counter[str] = Counter()
        sizes: Counter[str] = Counter()
        for a in self.prune:
            counts[a.producer] += 1
            sizes[a.producer] += a.size_bytes
        return sorted(((p, counts[p], sizes[p]) for p in counts), key=lambda row: (-row[2], row[0]))


def plan(store: metadata_store.MetadataStore, pipeline_root: str, keep_runs: int) -> RetentionPlan:
    """What pruning all but the `keep_runs` newest runs of the store removes (see the module docstring)."""
    if keep_runs < 1:
        raise ValueError(f"keep_runs must be at least 1 (the newest run), got {keep_runs}")
    runs = pipeline_runs(store)
    kept, pruned = runs[-keep_runs:], runs[:-keep_runs]
    result = RetentionPlan(os.path.realpath(pipeline_root), [r.name for r in kept], [r.name for r in pruned])
    if not pruned:
        return result
    keep = _used_by(store, [r.id for r in kept])
    for reason, ids in _next_run_baselines(store):
        if not ids <= keep:
            result.kept_for_next_run.append(reason)
        keep |= ids
    candidates = sorted(_used_by(store, [r.id for r in pruned]) - keep)  # only what the pruned runs used
    producers = _producers(store)
    type_names = {t.id: t.name for t in store.get_artifact_types()}
    for artifact in store.get_artifacts_by_id(candidates) if candidates else []:
        if artifact.state not in (LIVE, DELETED) or not artifact.uri:
            continue
        if not _under(artifact.uri, result.pipeline_root):
            result.outside_root += artifact.state == LIVE
            continue
        if artifact.state == DELETED and not os.path.exists(artifact.uri):
            continue  # pruned before
        result.prune.append(PrunedArtifact(artifact.id, type_names.get(artifact.type_id, str(artifact.type_id)),
                                           producers.get(artifact.id, "?"), artifact.uri, _size(artifact.uri),
                                           leftover=artifact.state == DELETED))
    return result


def apply(store: metadata_store.MetadataStore, retention: RetentionPlan) -> list[str]:
    """Prune what `retention` lists: mark the artifacts DELETED (one ML Metadata update), then remove their
    folders. Returns the folders that could not be removed, each with the reason (they stay DELETED)."""
    live_ids = [a.artifact_id for a in retention.prune if not a.leftover]
    if live_ids:
        artifacts = store.get_artifacts_by_id(live_ids)
        for artifact in artifacts:
            artifact.state = DELETED
        store.put_artifacts(artifacts)
    problems = []
    for artifact in retention.prune:
        try:
            if os.path.isdir(artifact.uri):
                shutil.rmtree(artifact.uri)
            elif os.path.lexists(artifact.uri):
                os.remove(artifact.uri)
        except OSError as err:
            problems.append(f"{artifact.uri}: {err.strerror or err}")
    return problems


def _used_by(store: metadata_store.MetadataStore, context_ids: list[int]) -> set[int]:
    """Ids of every artifact an execution in these run contexts read or wrote."""
    execution_ids = [e.id for c in context_ids for e in store.get_executions_by_context(c)]
    if not execution_ids:
        return set()
    return {event.artifact_id for event in store.get_events_by_execution_ids(execution_ids)}


def _next_run_baselines(store: metadata_store.MetadataStore) -> list[tuple[str, set[int]]]:
    """What the next run's resolvers would pick: the newest blessed model (with its blessing) and the newest
    accepted statistics (with the gate's verdict), as (description, artifact ids)."""
    found = []
    blessing = _newest_with(store, BLESSING_TYPE, BLESSED)
    if blessing is not None:
        model_id = int(mlmd_value(blessing.custom_properties[BLESSED_MODEL_ID]) or 0)
        found.append((f"the newest blessed model (artifact {model_id}, the Evaluator's baseline)",
                      {blessing.id, model_id}))
    verdict = _newest_with(store, VERDICT_TYPE, ACCEPTED)
    if verdict is not None:
        statistics_id = int(mlmd_value(verdict.custom_properties[ACCEPTED_STATISTICS_ID]) or 0)
        found.append((f"the statistics the gate last accepted (artifact {statistics_id}, the drift baseline)",
                      {verdict.id, statistics_id}))
    return found


def _newest_with(store: metadata_store.MetadataStore, type_name: str, flag: str) -> metadata_store_pb2.Artifact | None:
    """The LIVE artifact of `type_name` with the highest id whose custom property `flag` is 1, or None."""
    try:
        candidates = store.get_artifacts_by_type(type_name)
    except mlmd_errors.NotFoundError:  # no such type was ever registered (no run got that far)
        return None
    flagged = [a for a in candidates if a.state == LIVE and flag in a.custom_properties
               and mlmd_value(a.custom_properties[flag]) == 1]
    return max(flagged, key=lambda a: a.id, default=None)


def _producers(store: metadata_store.MetadataStore) -> dict[int, str]:
    """Artifact id → the node id of the execution that wrote it (TFX names executions' node by a context)."""
    node_of: dict[int, str] = {}
    for context in store.get_contexts_by_type("node"):
        node = context.name.rsplit(".", 1)[-1]  # "<pipeline>.<node id>"
        for execution in store.get_executions_by_context(context.id):
            node_of[execution.id] = node
    outputs = (metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.DECLARED_OUTPUT)
    produced: dict[int, str] = {}
    if node_of:
        for event in store.get_events_by_execution_ids(list(node_of)):
            if event.type in outputs:
                produced.setdefault(event.artifact_id, node_of[event.execution_id])
    return produced


def _under(uri: str, root: str) -> bool:
    if "://" in uri:
        return False
    path = os.path.realpath(uri)
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _size(path: str) -> int:
    if os.path.isfile(path):
        return os.path.getsize(path)
    total = 0
    for folder, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(folder, name))
            except OSError:
                continue
    return total
