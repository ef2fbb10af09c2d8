"""Collecting the report: a run's record (`pipeline.runs.record`) and the artifacts it leads to, read into a plain
`ReportData`.

Examples (ingestion facts, quarantine rows), Statistics (class counts), ExampleAnomalies, the validation gate's
verdict, ModelRun (training curves from the Trainer's history.json), TransformGraph (the label vocabulary),
ModelEvaluation and ModelBlessing (metrics and gates from TFMA; the confusion matrix from TFMA's multi-class
confusion-matrix plot, plus for binary models the counts at threshold 0.5 of the positive class (vocabulary
index 1), and for multilabel models the per-label metrics and 2×2 counts of
`components.evaluator.custom_metrics.PerLabelMetrics`), PushedModel, and sample predictions (`samples`). The task
(`train.task`) comes from the Trainer's custom_config and the Evaluator's eval_config.

Gate thresholds come from the Evaluator execution's `eval_config` exec property (what was configured); the
evaluation artifact's `eval_config.json` (what TFMA applied: the Evaluator drops change thresholds when there
is no baseline model yet) tells which of them were in force. One unreadable artifact adds a note, it does not
sink the report.
"""

from __future__ import annotations

import csv
import glob
import os
import re
from pathlib import Path
from typing import Any

from tensorflow_data_validation.utils import stats_util

from components.evaluator import catalogue
from pipeline.component_ids import EVALUATOR, EXAMPLE_GEN, EXAMPLE_VALIDATOR, PUSHER, STATISTICS_GEN, TRAINER, TRANSFORM
from pipeline.report.cost import cost_rows
from pipeline.report.data import (
    TASKS,
    Gate,
    HeadlineMetric,
    LineageEntry,
    ReportData,
    metric_label,
    per_label_metrics,
    set_confusion,
)
from pipeline.report.label_issues import LabelIssueSettings
from pipeline.report.mislabelled import collect_label_issues
from pipeline.report.samples import MAX_SAMPLES, MAX_SCAN, collect_samples
from pipeline.runs import data_health, evaluation, gates
from pipeline.runs.model_facts import HISTORY_FILE, read_history
from pipeline.runs.record import RunRecord, bool_prop, read_run, str_prop

MAX_QUARANTINE_ROWS = 50


def collect_report_data(metadata_path: str, run_id: str | None = None, max_samples: int = MAX_SAMPLES,
                        max_scan: int = MAX_SCAN) -> ReportData:
    """Everything the report shows for the latest (or given) run in the ML Metadata store at `metadata_path`."""
    return collect(read_run(metadata_path, run_id), max_samples=max_samples, max_scan=max_scan)


def collect(record: RunRecord, max_samples: int = MAX_SAMPLES, max_scan: int = MAX_SCAN,
            label_issues: LabelIssueSettings | None = None) -> ReportData:
    """Everything the report shows for one run.

    Sample predictions: the candidate model classifies up to `max_scan` eval examples; the grid shows up to
    `max_samples` of them, misclassified first (most confident first), then correct ones class by class.
    Likely mislabelled training images: as `label_issues` says (default `LabelIssueSettings()`).
    """
    data = ReportData(run_id=record.run_id, pipeline_name=record.pipeline_name, created=record.created,
                      components=[node.component for node in record.nodes.values()])
    collect_lineage(record, data)
    if record.pruned:
        data.notes.append(f"artifacts of this run were pruned by `visionline prune` ({', '.join(record.pruned)}): "
                          "the sections that read them are missing")
    steps = (
        ("ingestion", _collect_ingest),
        ("data anomalies", _collect_anomalies),
        ("data validation gate", _collect_data_gate),
        ("class distribution", _collect_distribution),
        ("training history", _collect_training),
        ("evaluation", collect_evaluation),
        ("push", _collect_push),
        ("cost", _collect_cost),
        ("sample predictions", lambda r, d: collect_samples(r, d, max_samples, max_scan)),
        ("likely mislabelled training images",
         lambda r, d: collect_label_issues(r, d, label_issues or LabelIssueSettings())),
    )
    for what, step in steps:
        try:
            step(record, data)
        except Exception as err:  # noqa: BLE001 - one unreadable artifact must not sink the whole report
            data.notes.append(f"{what}: could not be read ({type(err).__name__}: {err})")
    return data


def collect_lineage(record: RunRecord, data: ReportData) -> None:
    """Every artifact of the run, the baseline model the Evaluator compared with, and the Trainer's config."""
    for node in record.nodes.values():
        for key, artifacts in node.outputs.items():
            for artifact in artifacts:
                data.lineage.append(LineageEntry(node.node_id, key, record.type_names.get(artifact.type_id, "?"),
                                                 artifact.id, artifact.uri, reused=node.state == "CACHED"))
    evaluator = record.node(EVALUATOR)
    for artifact in (evaluator.inputs.get("baseline_model") or []) if evaluator else []:
        data.has_baseline = True
        data.baseline_model_uri = artifact.uri
        data.lineage.append(LineageEntry(EVALUATOR, "baseline_model (input)",
                                         record.type_names.get(artifact.type_id, "Model"), artifact.id, artifact.uri,
                                         reused=True))
        candidates = evaluator.inputs.get("model") or []
        if any(c.id == artifact.id for c in candidates):
            data.notes.append("the candidate model is the baseline itself (the Trainer was cached), so every "
                              "change vs baseline is 0")
    trainer = record.node(TRAINER)
    config = trainer.prop("custom_config") if trainer else None
    if isinstance(config, dict):
        data.hyperparameters = _flatten(config)
        if config.get("task") in TASKS:
            data.task = str(config["task"])


def _flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in sorted(values.items()):
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _collect_ingest(record: RunRecord, data: ReportData) -> None:
    examples = record.artifact(EXAMPLE_GEN, "examples", "Examples")
    if examples is None:
        return
    data.ingest = data_health.ingest_facts(examples, with_counts=True)
    report = data.ingest.get("quarantine_report")
    if report and os.path.exists(report):
        with open(report, encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle):
                data.quarantine_rows.append(dict(row))
                if len(data.quarantine_rows) >= MAX_QUARANTINE_ROWS:
                    break


def _collect_anomalies(record: RunRecord, data: ReportData) -> None:
    artifact = record.artifact(EXAMPLE_VALIDATOR, "anomalies", "ExampleAnomalies")
    if artifact is not None:
        data.anomalies = data_health.read_anomalies(artifact.uri)


def _collect_data_gate(record: RunRecord, data: ReportData) -> None:
    artifact = record.by_type("visionline.DataVerdict")
    if artifact is not None:
        data.data_gate = data_health.data_gate_lines(data_health.read_verdict(artifact.uri))


def _collect_distribution(record: RunRecord, data: ReportData) -> None:
    artifact = record.artifact(STATISTICS_GEN, "statistics", "ExampleStatistics")
    if artifact is None:
        return
    label = record.feature()
    for path in sorted(glob.glob(os.path.join(artifact.uri, "Split-*", "FeatureStats.pb"))):
        split = os.path.basename(os.path.dirname(path)).removeprefix("Split-")
        statistics = stats_util.load_stats_binary(path)
        for dataset in statistics.datasets:
            for feature in dataset.features:
                name = ".".join(feature.path.step) or feature.name
                if name != label:
                    continue
                counts = _label_counts(feature)
                if counts:
                    data.class_distribution[split] = counts
    if not data.class_distribution:
        data.notes.append(f"class distribution: StatisticsGen has no string statistics for feature {label!r}")


def _label_counts(feature: Any) -> dict[str, float]:
    if feature.HasField("string_stats"):
        stats = feature.string_stats
        buckets = [(b.label, b.sample_count) for b in stats.rank_histogram.buckets]
        if not buckets or len(buckets) < stats.unique:
            buckets = [(t.value, t.frequency) for t in stats.top_values] or buckets
        return {str(label): float(count) for label, count in buckets}
    return {}


def _collect_training(record: RunRecord, data: ReportData) -> None:
    model_run = record.artifact(TRAINER, "model_run", "ModelRun")
    history: dict[str, Any] = {}
    if model_run is not None:
        history = read_history(model_run.uri)
        if not history:
            data.notes.append(f"training history: no {HISTORY_FILE} in {model_run.uri}")
    data.history = {k: [float(v) for v in values] for k, values in (history.get("history") or {}).items()}
    phases = history.get("phases") or []
    data.phases = [(str(p.get("name", f"phase {i + 1}")), len(next(iter((p.get("history") or {"": []}).values()))))
                   for i, p in enumerate(phases)]
    if history.get("best_epoch"):
        earlier = sum(epochs for _, epochs in data.phases[:-1])
        data.best_epoch = int(history["best_epoch"]) + earlier
    data.recipe = training_recipe(history)
    if isinstance(history.get("hyperparameters"), dict):
        data.effective_hyperparameters = _flatten(history["hyperparameters"])
    data.class_names = [str(c) for c in history.get("class_names") or []] or _vocabulary(record)


def _vocabulary(record: RunRecord) -> list[str]:
    """Class names in label-index order from the Transform graph's label vocabulary asset."""
    graph = record.artifact(TRANSFORM, "transform_graph", "TransformGraph")
    if graph is None:
        return []
    path = os.path.join(graph.uri, "transform_fn", "assets", "label")
    if not os.path.exists(path):
        return []
    return Path(path).read_text(encoding="utf-8").splitlines()


def collect_evaluation(record: RunRecord, data: ReportData) -> None:
    """Blessing, headline metrics with their gates, other metrics, per-label rows or the confusion matrix."""
    evaluator = record.node(EVALUATOR)
    blessing = record.artifact(EVALUATOR, "blessing", "ModelBlessing")
    artifact = record.artifact(EVALUATOR, "evaluation", "ModelEvaluation")
    data.blessed = bool_prop(blessing, "blessed")
    if artifact is None:
        state = evaluator.state if evaluator else "did not run"
        data.evaluation_note = f"the Evaluator {'ended ' + state if evaluator else state}; no evaluation artifact"
        return
    effective = evaluation.applied_eval_config(artifact.uri)
    configured = evaluation.parse_eval_config(evaluator.prop("eval_config")) if evaluator else None
    configured = configured or effective
    baseline_name = evaluation.baseline_model_name(effective or configured)
    data.has_baseline = data.has_baseline or any(s.is_baseline for s in (effective.model_specs if effective else []))
    if configured is not None:
        data.task = catalogue.task_of(configured)

    found = evaluation.read_metrics(artifact.uri, baseline_name)
    data.binary_confusion = found.binary_counts or data.binary_confusion
    values, baselines, diffs = found.values, found.baselines, found.diffs
    configured_gates = gates.overall_thresholds(configured)
    applied = gates.overall_thresholds(effective) if effective is not None else configured_gates
    failures = _failures(artifact.uri)
    names = catalogue.headline_order(values)
    names += sorted(n for n in configured_gates if n not in names)
    for name in names:
        metric = HeadlineMetric(name, values.get(name), baselines.get(name))
        threshold = configured_gates.get(name)
        in_force = applied.get(name)
        if threshold is not None and threshold.HasField("value_threshold"):
            metric.gates.append(_gate(name, "value", gates.value_threshold_text(threshold.value_threshold),
                                      metric.value, in_force is not None and in_force.HasField("value_threshold"),
                                      gates.value_ok(threshold.value_threshold, metric.value), failures,
                                      data.has_baseline))
        if threshold is not None and threshold.HasField("change_threshold"):
            diff = diffs.get(name, metric.diff)
            metric.gates.append(_gate(name, "change", gates.change_threshold_text(threshold.change_threshold), diff,
                                      in_force is not None and in_force.HasField("change_threshold"),
                                      gates.change_ok(threshold.change_threshold, diff, metric.baseline), failures,
                                      data.has_baseline))
        data.metrics.append(metric)
    data.other_metrics = {k: v for k, v in sorted(values.items()) if k not in names}
    for (name, kind), message in failures.items():
        if not any(g.metric == name and g.kind == kind for m in data.metrics for g in m.gates):
            data.metrics.append(HeadlineMetric(name, values.get(name), baselines.get(name),
                                               [Gate(name, kind, "see message", diffs.get(name) if kind == "change"
                                                     else values.get(name), "fail", message)]))
    if found.per_label:
        data.per_label = per_label_metrics(found.per_label, data.class_names)
    for name in values:
        top_k = re.fullmatch(r"top_(\d+)_accuracy", name)
        if top_k and data.class_names and int(top_k.group(1)) >= len(data.class_names):
            data.notes.append(f"{metric_label(name)} is 1.0 by construction: the model has only "
                              f"{len(data.class_names)} classes (lower eval.top_k)")
    if data.task == "multilabel":
        if not found.per_label:
            data.notes.append("per-label metrics: none in the evaluation")
    else:
        _collect_confusion(artifact.uri, baseline_name, data)


def _gate(name: str, kind: str, text: str, value: float | None, in_force: bool, ok: bool | None,
          failures: dict[tuple[str, str], str], has_baseline: bool) -> Gate:
    if (name, kind) in failures:
        return Gate(name, kind, text, value, "fail", failures[(name, kind)])
    if not in_force:
        why = "no baseline model yet (first blessed model)" if kind == "change" and not has_baseline else \
            "not in the evaluated config"
        return Gate(name, kind, text, value, "not applied", why)
    if ok is False:  # TFMA reported no failure, but the numbers disagree: say so rather than hide it
        return Gate(name, kind, text, value, "fail", "value outside the threshold (recomputed by the report)")
    return Gate(name, kind, text, value, "pass")


def _failures(uri: str) -> dict[tuple[str, str], str]:
    """(metric, kind) → why it failed (several slices joined by "; ")."""
    found: dict[tuple[str, str], str] = {}
    try:
        failures = gates.read_failures(uri)
    except Exception:  # noqa: BLE001 - older artifacts may lack validations
        return found
    for failure in failures:
        key = (failure.metric, failure.kind)
        found[key] = f"{found[key]}; {failure.reason()}" if key in found else failure.reason()
    return found


def _collect_confusion(uri: str, baseline_name: str, data: ReportData) -> None:
    entries = evaluation.read_confusion(uri, baseline_name)
    if not entries:
        data.notes.append("confusion matrix: no MultiClassConfusionMatrixPlot in the evaluation")
        return
    set_confusion(data, entries)


def _collect_push(record: RunRecord, data: ReportData) -> None:
    pushed = record.artifact(PUSHER, "pushed_model", "PushedModel")
    data.pushed = bool(bool_prop(pushed, "pushed"))
    if data.pushed:
        data.pushed_version = str_prop(pushed, "pushed_version")
        data.pushed_destination = str_prop(pushed, "pushed_destination")


def _collect_cost(record: RunRecord, data: ReportData) -> None:
    model_run = record.artifact(TRAINER, "model_run", "ModelRun")
    history = read_history(model_run.uri) if model_run is not None else {}
    data.cost, data.cost_note = cost_rows(history, data.pushed_destination if data.pushed else "")


def training_recipe(history: dict[str, Any]) -> list[str]:
    """What history.json says about how the model was trained, one line per fact (older runs: fewer lines)."""
    lines = []
    if history.get("backbone"):
        lines.append(f"preset {history.get('preset') or '–'}: {history['backbone']} at {history.get('image_size')} px, "
                     f"{history.get('parameters', 0):,} parameters")
    if history.get("device"):
        precision = "mixed float16" if history.get("mixed_precision") else "float32"
        lines.append(f"trained on {history['device']} ({precision}, batch size {history.get('batch_size')}) in "
                     f"{history.get('train_seconds', 0):.0f} s, {history.get('fit_seconds', 0):.0f} s of it in "
                     "model.fit")
    if history.get("train_examples") is not None:
        lines.append(f"{history['train_examples']} training images, {history.get('validation_examples')} validation "
                     "images (carved from the training split)")
    for phase in history.get("phases") or []:
        what = [str(phase.get("name", "phase"))]
        if phase.get("fine_tune"):
            what.append(f"unfrozen: {phase['fine_tune']} ({phase.get('unfrozen_layers')} layers with weights)")
        if phase.get("cached_features"):
            what.append("on cached backbone features")
        if phase.get("augmentation"):
            what.append(f"augmentation: {phase['augmentation']}")
        if phase.get("kept_epoch"):
            what.append(f"kept epoch {phase['kept_epoch']} of {phase.get('epochs_run')}: {phase.get('kept_because')}")
        lines.append("; ".join(what))
    export = history.get("export") or {}
    if export:
        lines.append(f"exported SavedModel: {export.get('saved_model_mb')} MB, {export.get('cpu_latency_ms')} ms per "
                     "image on this machine's CPU (one image, median)")
    return lines
