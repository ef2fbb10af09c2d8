"""The headline facts of a pipeline run (`RunSummary`): components with their state and timings, ingestion counts,
the run's data warnings, anomalies and the data gate's verdict, metrics (the task's headline metrics of
components/evaluator/catalogue.py) with the baseline's, failed gates (named as the config names the metric) with
their value and threshold, blessing and pushed model.

What `visionline run` prints after a run, `visionline last-run` prints, and `run --json` writes. The latest
`pipeline_run` context is the run; cached components appear in it as CACHED executions linked to the artifacts
they reused, so a fully cached run still reports the metrics of the model it reused.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from components.evaluator.catalogue import config_name
from pipeline.component_ids import EVALUATOR, EXAMPLE_GEN, EXAMPLE_VALIDATOR, PUSHER, TRAINER, VALIDATION_GATE
from pipeline.runs import data_health, evaluation, gates, model_facts
from pipeline.runs.record import ComponentRun, RunRecord, bool_prop, read_run


@dataclass
class GateResult:
    """A threshold the Evaluator checked and the candidate failed."""

    metric: str  # as the config names it (`accuracy`, `kappa`, …), plus " (change vs baseline)" for a change gate
    value: float | None
    threshold: str
    key: str = ""  # TFMA's metric name (`sparse_categorical_accuracy`, `cohen_kappa`, …)


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
    tflite: str = ""  # the Pusher's TFLite gate: which variants shipped, why any was withheld
    evaluation_uri: str | None = None
    warnings: list[str] = field(default_factory=list)  # data warnings of ingestion and the Trainer (run_warnings)

    def to_json(self) -> str:
        """JSON for machines (`visionline run --json`)."""
        return json.dumps(asdict(self), indent=2, default=str)


def latest_run(metadata_path: str) -> RunSummary:
    """Summary of the most recent pipeline run recorded in `metadata_path`."""
    return summarize(read_run(metadata_path))


def latest_outputs(metadata_path: str, node_id: str) -> dict[str, list[Any]]:
    """Output artifacts (MLMD protos by type name) of `node_id` in the latest run; empty when it did not run."""
    return read_run(metadata_path).outputs_by_type(node_id)


def summarize(record: RunRecord) -> RunSummary:
    """The summary of a run read from ML Metadata (every execution listed, retries included)."""
    summary = RunSummary(run_id=record.run_id, components=[node.component for node in record.executions])
    examples = _outputs(record, EXAMPLE_GEN, "Examples")
    if examples:
        summary.ingest = data_health.ingest_facts(examples[-1])
    summary.warnings = data_health.run_warnings(summary.ingest, _history(record))
    anomalies = _outputs(record, EXAMPLE_VALIDATOR, "ExampleAnomalies")
    if anomalies:
        summary.anomalies = data_health.anomaly_lines(data_health.read_anomalies(anomalies[-1].uri))
    gate = record.node(VALIDATION_GATE)
    if gate is not None:
        verdicts = _outputs(record, VALIDATION_GATE, "visionline.DataVerdict")
        if verdicts:
            summary.data_validation = data_health.read_verdict(verdicts[-1].uri)
        summary.data_validation = data_health.stopped_verdict(gate.execution) or summary.data_validation
    blessings = _outputs(record, EVALUATOR, "ModelBlessing")
    if blessings:
        summary.blessed = bool_prop(blessings[-1], "blessed")
    evaluations = _outputs(record, EVALUATOR, "ModelEvaluation")
    if evaluations:
        summary.evaluation_uri = evaluations[-1].uri
        read_evaluation(evaluations[-1].uri, summary)
    pushed = _outputs(record, PUSHER, "PushedModel")
    if pushed:
        summary.pushed = bool(bool_prop(pushed[-1], "pushed"))
        destination = pushed[-1].custom_properties.get("pushed_destination")
        if summary.pushed and destination is not None:
            summary.pushed_model = destination.string_value
        tflite = pushed[-1].custom_properties.get("tflite")  # components/pusher/executor.py's TFLITE_PROPERTY
        summary.tflite = tflite.string_value if summary.pushed and tflite is not None else ""
    return summary


def _history(record: RunRecord) -> dict[str, Any]:
    """The Trainer's history.json ({} when the Trainer did not run, or its file cannot be read: the summary still
    shows everything else)."""
    model_run = record.artifact(TRAINER, "model_run", "ModelRun")
    try:
        return model_facts.read_history(model_run.uri) if model_run is not None else {}
    except (OSError, ValueError):
        return {}


def _outputs(record: RunRecord, node_id: str, type_name: str) -> list[Any]:
    return record.outputs_by_type(node_id).get(type_name, [])


def read_evaluation(uri: str, summary: RunSummary) -> None:
    """Add an evaluation's overall metrics (candidate and baseline) and failed gates to `summary`."""
    found = evaluation.read_metrics(uri)
    summary.metrics.update(found.values)
    summary.baseline_metrics.update(found.baselines)
    for failure in gates.read_failures(uri):
        summary.failed_gates.append(GateResult(
            metric=config_name(failure.metric) + (" (change vs baseline)" if failure.is_diff else ""),
            value=failure.value,
            threshold=gates.threshold_text(failure.threshold),
            key=failure.metric,
        ))
