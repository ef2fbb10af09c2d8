"""Read what a pipeline run produced from ML Metadata: ingestion counts, metrics (the task's headline metrics of
components/evaluator/catalogue.py), failed gates with their value and threshold, blessing, pushed model, and
per-component timings.

The latest `pipeline_run` context is the run; cached components appear in it as CACHED executions linked to
the artifacts they reused, so a fully cached run still reports the metrics of the model it reused.
"""

from __future__ import annotations

import glob
import json
import math
import os
from dataclasses import asdict, dataclass, field
from typing import Any

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tfx.orchestration import metadata

from components.evaluator import metric_keys as metric_names
from components.evaluator.catalogue import headline_order

_STATES = {v: k for k, v in metadata_store_pb2.Execution.State.items()}
# Where TFX's launcher keeps a failed execution's ExecutionResult (JSON) — the validation gate's stopped verdict.
EXECUTION_RESULT = "__execution_result__"
# Short names in the terminal summary (others print under their TFMA name).
SUMMARY_LABELS = {metric_names.ACCURACY: "accuracy", metric_names.EXAMPLE_COUNT: "eval examples",
                  metric_names.F1_SCORE: "f1", metric_names.AUC_PR: "auc_pr"}


@dataclass
class ComponentRun:
    """One component's execution in a run."""

    node_id: str
    state: str  # COMPLETE | CACHED | FAILED | RUNNING …
    seconds: float


@dataclass
class GateResult:
    """A threshold the Evaluator checked and the candidate failed."""

    metric: str
    value: float | None
    threshold: str


@dataclass
class RunSummary:
    """Headline facts of one pipeline run."""

    run_id: str
    components: list[ComponentRun] = field(default_factory=list)
    ingest: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    baseline_metrics: dict[str, float] = field(default_factory=dict)
    blessed: bool | None = None
    failed_gates: list[GateResult] = field(default_factory=list)
    anomalies: dict[str, list[str]] = field(default_factory=dict)  # split -> "feature: description"
    data_validation: dict[str, Any] = field(default_factory=dict)  # the ValidationGate's verdict.json
    pushed: bool = False
    pushed_model: str | None = None
    evaluation_uri: str | None = None

    def to_json(self) -> str:
        """JSON for machines (`visionline run --json`)."""
        return json.dumps(asdict(self), indent=2, default=str)


def _store(metadata_path: str) -> metadata_store.MetadataStore:
    if not os.path.exists(metadata_path):
        raise FileNotFoundError(f"no ML Metadata store at {metadata_path}: has the pipeline run yet?")
    return metadata_store.MetadataStore(metadata.sqlite_metadata_connection_config(metadata_path))


def latest_run(metadata_path: str, evaluator_id: str = "Evaluator", pusher_id: str = "Pusher",
               example_gen_id: str = "ImageExampleGen", validator_id: str = "ExampleValidator",
               gate_id: str = "ValidationGate") -> RunSummary:
    """Summary of the most recent pipeline run recorded in `metadata_path`."""
    store = _store(metadata_path)
    runs = store.get_contexts_by_type("pipeline_run")
    if not runs:
        raise LookupError(f"ML Metadata store {metadata_path} records no pipeline run")
    run = max(runs, key=lambda c: (c.create_time_since_epoch, c.id))
    summary = RunSummary(run_id=run.name)
    for execution in sorted(store.get_executions_by_context(run.id), key=lambda e: e.create_time_since_epoch):
        node_id = _node_id(store, execution)
        seconds = max(0.0, (execution.last_update_time_since_epoch - execution.create_time_since_epoch) / 1000.0)
        summary.components.append(ComponentRun(node_id, _STATES.get(execution.last_known_state, "?"), seconds))
        outputs = _output_artifacts(store, execution.id)
        if node_id == example_gen_id:
            for artifact in outputs.get("Examples", []):
                summary.ingest = _ingest_facts(artifact)
        elif node_id == validator_id:
            for artifact in outputs.get("ExampleAnomalies", []):
                summary.anomalies = _read_anomalies(artifact.uri)
        elif node_id == gate_id:
            for artifact in outputs.get("visionline.DataVerdict", []):
                summary.data_validation = read_verdict(artifact.uri)
            stopped = stopped_verdict(execution)
            if stopped:
                summary.data_validation = stopped
        elif node_id == evaluator_id:
            for artifact in outputs.get("ModelBlessing", []):
                summary.blessed = bool(artifact.custom_properties["blessed"].int_value) \
                    if "blessed" in artifact.custom_properties else None
            for artifact in outputs.get("ModelEvaluation", []):
                summary.evaluation_uri = artifact.uri
                _read_evaluation(artifact.uri, summary)
        elif node_id == pusher_id:
            for artifact in outputs.get("PushedModel", []):
                props = artifact.custom_properties
                summary.pushed = bool(props["pushed"].int_value) if "pushed" in props else False
                if summary.pushed and "pushed_destination" in props:
                    summary.pushed_model = props["pushed_destination"].string_value
    return summary


def latest_outputs(metadata_path: str, node_id: str) -> dict[str, list[Any]]:
    """Output artifacts (MLMD protos by type name) of `node_id` in the latest run; empty when it did not run."""
    store = _store(metadata_path)
    runs = store.get_contexts_by_type("pipeline_run")
    if not runs:
        raise LookupError(f"ML Metadata store {metadata_path} records no pipeline run")
    run = max(runs, key=lambda c: (c.create_time_since_epoch, c.id))
    for execution in store.get_executions_by_context(run.id):
        if _node_id(store, execution) == node_id:
            return _output_artifacts(store, execution.id)
    return {}


def _node_id(store: metadata_store.MetadataStore, execution: metadata_store_pb2.Execution) -> str:
    for context in store.get_contexts_by_execution(execution.id):
        context_type = store.get_context_types_by_id([context.type_id])[0].name
        if context_type == "node":
            return context.name.split(".", 1)[-1]
    return str(execution.properties.get("component_id", metadata_store_pb2.Value()).string_value or execution.id)


def _output_artifacts(store: metadata_store.MetadataStore, execution_id: int) -> dict[str, list[Any]]:
    events = [e for e in store.get_events_by_execution_ids([execution_id])
              if e.type in (metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.DECLARED_OUTPUT)]
    artifacts = store.get_artifacts_by_id(sorted({e.artifact_id for e in events}))
    type_names = {t.id: t.name for t in store.get_artifact_types_by_id(sorted({a.type_id for a in artifacts}))}
    by_type: dict[str, list[Any]] = {}
    for artifact in artifacts:
        by_type.setdefault(type_names[artifact.type_id], []).append(artifact)
    return by_type


def _ingest_facts(artifact: Any) -> dict[str, Any]:
    facts: dict[str, Any] = {"examples_uri": artifact.uri}
    summary_path = os.path.join(artifact.uri, "ingest_summary.json")
    if os.path.exists(summary_path):
        with open(summary_path, encoding="utf-8") as handle:
            facts.update(json.load(handle))
    return facts


def _read_anomalies(uri: str) -> dict[str, list[str]]:
    from tensorflow_data_validation.utils import anomalies_util

    found: dict[str, list[str]] = {}
    for path in sorted(glob.glob(os.path.join(uri, "Split-*", "SchemaDiff.pb"))):
        split = os.path.basename(os.path.dirname(path)).removeprefix("Split-")
        anomalies = anomalies_util.load_anomalies_binary(path)
        found[split] = [f"{name}: {info.description or info.short_description}"
                        for name, info in sorted(anomalies.anomaly_info.items())]
    return found


def stopped_verdict(execution: metadata_store_pb2.Execution) -> dict[str, Any]:
    """The verdict a validation gate execution failed with (kept by TFX's launcher in `__execution_result__`,
    see components.validation_gate.executor), or {} for any other execution."""
    if EXECUTION_RESULT not in execution.custom_properties:
        return {}
    try:
        result = json.loads(execution.custom_properties[EXECUTION_RESULT].string_value)
        verdict = json.loads(result.get("resultMessage", ""))
    except (json.JSONDecodeError, AttributeError):
        return {}
    return verdict if isinstance(verdict, dict) and verdict.get("stopped") else {}


def read_verdict(uri: str) -> dict[str, Any]:
    """The ValidationGate's `verdict.json` in a DataVerdict artifact folder (written by
    components.validation_gate; read here without importing TFDV), or {} when there is none."""
    path = os.path.join(uri, "verdict.json")
    if not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def data_gate_lines(verdict: dict[str, Any]) -> list[str]:
    """What the validation gate decided, for a run it let through: drift figure, notes, recorded problems."""
    if not verdict:
        return []
    drift = verdict.get("drift")
    if verdict.get("accepted"):
        text = "data gate: passed"
        if drift:
            change = drift["largest_change"]
            text += (f" (label drift L∞={drift['distance']:.3f} ≤ {drift['bound']:g} vs the previous accepted run"
                     + ("" if change == "none" else f"; largest change {change}") + ")")
        lines = [text]
    elif verdict.get("stopped"):
        lines = [f"data gate: STOPPED the run before training, {len(verdict.get('problems', []))} problem(s)"]
        lines += [f"  data problem ({p['split']}): {p['message']}" for p in verdict.get("problems", [])]
    else:
        lines = [f"data gate: {len(verdict.get('problems', []))} problem(s) recorded, run continued "
                 "(validation.stop_on_anomalies=false)"]
        lines += [f"  data problem ({p['split']}): {p['message']}" for p in verdict.get("problems", [])]
    lines += [f"  note: {note}" for note in verdict.get("notes", [])]
    return lines


def format_stopped(summary: RunSummary | None, problems: list[Any], notes: list[str] | None = None) -> str:
    """A run the validation gate stopped: the components that ran, then every problem, then what to do."""
    lines = []
    if summary is not None:
        lines.append(f"run {summary.run_id}")
        for component in summary.components:
            lines.append(f"  {component.node_id:<32} {component.state:<9} {component.seconds:7.1f} s")
    lines.append(f"STOPPED before training: the data validation gate found {len(problems)} problem(s)")
    lines += [f"  {problem}" for problem in problems]
    lines += [f"  note: {note}" for note in notes or []]
    lines.append("nothing was transformed, trained or pushed. Fix the data, or: regenerate the curated schema "
                 "(visionline schema), raise validation.max_label_drift (0 = off) for a wanted change, or set "
                 "validation.stop_on_anomalies=false")
    return "\n".join(lines)


def _read_evaluation(uri: str, summary: RunSummary) -> None:
    import tensorflow_model_analysis as tfma

    for slice_metrics in tfma.load_metrics(uri):
        if slice_metrics.slice_key.single_slice_keys:
            continue  # overall slice only
        for key_and_value in slice_metrics.metric_keys_and_values:
            key, value = key_and_value.key, key_and_value.value
            if not value.HasField("double_value"):
                continue
            if key.is_diff:
                continue  # the change vs. baseline is derivable; gates report it when it fails
            if key.name.startswith(metric_names.PER_LABEL_PREFIX):
                continue  # multilabel per-label values (sub_key class_id): the report shows them
            target = summary.baseline_metrics if key.model_name == "baseline" else summary.metrics
            target[key.name] = float(value.double_value.value)
    validation = tfma.load_validation_result(uri)
    for failure in validation.metric_validations_per_slice:
        for metric_failure in failure.failures:
            value = metric_failure.metric_value.double_value.value \
                if metric_failure.metric_value.HasField("double_value") else None
            summary.failed_gates.append(GateResult(
                metric=metric_failure.metric_key.name + (" (change vs baseline)" if metric_failure.metric_key.is_diff
                                                         else ""),
                value=value,
                threshold=_threshold_text(metric_failure.metric_threshold),
            ))


def value_threshold_text(threshold: Any) -> str:
    """'≥ 0.4000' for a TFMA GenericValueThreshold."""
    parts = []
    if threshold.HasField("lower_bound"):
        parts.append(f"≥ {threshold.lower_bound.value:.4f}")
    if threshold.HasField("upper_bound"):
        parts.append(f"≤ {threshold.upper_bound.value:.4f}")
    return " and ".join(parts) or "any value"


def change_threshold_text(threshold: Any) -> str:
    """'change vs baseline ≥ -0.0200' for a TFMA GenericChangeThreshold."""
    from tensorflow_model_analysis.proto import config_pb2

    sign = "≤" if threshold.direction == config_pb2.MetricDirection.LOWER_IS_BETTER else "≥"
    parts = []
    if threshold.HasField("absolute"):
        parts.append(f"change vs baseline {sign} {threshold.absolute.value:+.4f}")
    if threshold.HasField("relative"):
        parts.append(f"relative change vs baseline {sign} {threshold.relative.value:+.4f}")
    return " and ".join(parts) or "any change"


def _threshold_text(threshold: Any) -> str:
    """Readable form of a TFMA MetricThreshold (value bounds and/or change vs baseline)."""
    parts = []
    if threshold.HasField("value_threshold"):
        parts.append(value_threshold_text(threshold.value_threshold))
    if threshold.HasField("change_threshold"):
        parts.append(change_threshold_text(threshold.change_threshold))
    return " and ".join(parts) or str(threshold).replace("\n", " ").strip()


def format_summary(summary: RunSummary) -> str:
    """Human-readable run summary for the terminal."""
    lines = [f"run {summary.run_id}"]
    for component in summary.components:
        lines.append(f"  {component.node_id:<32} {component.state:<9} {component.seconds:7.1f} s")
    if summary.ingest:
        ingest = summary.ingest
        lines.append(
            f"ingest: {ingest.get('files_seen', '?')} files seen, {ingest.get('ingested', '?')} ingested, "
            f"{ingest.get('quarantined', '?')} quarantined"
        )
        if ingest.get("quarantined"):
            lines.append(f"  quarantine report: {ingest.get('quarantine_report')}")
            for reason, count in ingest.get("quarantined_by_reason", {}).items():
                lines.append(f"    {count:>5} × {reason}")
    if summary.data_validation:  # the gate's verdict covers ExampleValidator's anomalies, with exact counts
        lines += data_gate_lines(summary.data_validation)
    else:
        for split, problems in summary.anomalies.items():
            for problem in problems:
                lines.append(f"  data anomaly ({split}): {problem}")
    shown = [(name, SUMMARY_LABELS.get(name, name)) for name in headline_order(summary.metrics)]
    width = max([14, *(len(label) for _, label in shown)])
    for name, label in shown:
        value = summary.metrics[name]
        count = name == metric_names.EXAMPLE_COUNT
        text = f"{value:.0f}" if count else ("nan" if math.isnan(value) else f"{value:.4f}")
        baseline = summary.baseline_metrics.get(name)
        suffix = f"   (baseline {baseline:.4f})" if baseline is not None and not count else ""
        lines.append(f"{label:<{width}} {text}{suffix}")
    if summary.blessed is not None:
        lines.append(f"blessed: {'yes' if summary.blessed else 'NO'}")
    for gate in summary.failed_gates:
        shown = "n/a" if gate.value is None else f"{gate.value:.4f}"
        lines.append(f"  gate failed: {gate.metric} = {shown}; threshold {gate.threshold}")
    if summary.pushed:
        lines.append(f"pushed model: {summary.pushed_model}")
    else:
        failed = [c.node_id for c in summary.components if c.state == "FAILED"]
        lines.append(f"pushed model: none ({failed[0]} failed, the run stopped there)" if failed
                     else "pushed model: none (model not blessed, nothing pushed)")
    return "\n".join(lines)
