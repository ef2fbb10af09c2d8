"""A run summary as terminal text: what `visionline run` prints after a run (or after the validation gate stopped
it) and what `visionline last-run` prints — the ingestion counts, every data warning (`warning: …` lines), the data
gate, metrics, failed gates named as the config names their metric, blessing and push.
"""

from __future__ import annotations

import math
from typing import Any

from components.evaluator import metric_keys
from components.evaluator.catalogue import headline_order
from pipeline.runs.data_health import data_gate_lines
from pipeline.runs.record import ComponentRun
from pipeline.runs.summary import RunSummary

# Short names in the terminal summary (others print under their TFMA name).
SUMMARY_LABELS = {metric_keys.ACCURACY: "accuracy", metric_keys.EXAMPLE_COUNT: "eval examples",
                  metric_keys.F1_SCORE: "f1", metric_keys.AUC_PR: "auc_pr"}


def _component_lines(components: list[ComponentRun]) -> list[str]:
    return [f"  {c.node_id:<32} {c.state:<9} {c.seconds:7.1f} s" for c in components]


def warning_lines(warnings: list[str]) -> list[str]:
    """The run's data warnings (`RunSummary.warnings`), one line each."""
    return [f"warning: {warning}" for warning in warnings]


def format_stopped(summary: RunSummary | None, problems: list[Any], notes: list[str] | None = None) -> str:
    """A run the validation gate stopped: the components that ran and the data warnings, then every problem, then
    what to do."""
    lines = []
    if summary is not None:
        lines.append(f"run {summary.run_id}")
        lines += _component_lines(summary.components)
        lines += warning_lines(summary.warnings)
    lines.append(f"STOPPED before training: the data validation gate found {len(problems)} problem(s)")
    lines += [f"  {problem}" for problem in problems]
    lines += [f"  note: {note}" for note in notes or []]
    lines.append("nothing was transformed, trained or pushed. Fix the data, or: regenerate the curated schema "
                 "(visionline schema), raise validation.max_label_drift (0 = off) for a wanted change, or set "
                 "validation.stop_on_anomalies=false")
    return "\n".join(lines)


def format_summary(summary: RunSummary) -> str:
    """Human-readable run summary for the terminal."""
    lines = [f"run {summary.run_id}", *_component_lines(summary.components)]
    if summary.ingest:
        ingest = summary.ingest
        lines.append(
            f"ingest: {ingest.get('files_seen', '?')} files seen, {ingest.get('ingested', '?')} ingested, "
            f"{ingest.get('quarantined', '?')} quarantined"
        )
        if ingest.get("excluded"):  # the class selection's (data.classes / exclude_classes), listed with reasons
            lines.append(f"  left out by the class selection: {ingest['excluded']} file(s), listed in "
                         f"{ingest.get('excluded_report')}")
        if ingest.get("quarantined"):
            lines.append(f"  quarantine report: {ingest.get('quarantine_report')}")
            for reason, count in ingest.get("quarantined_by_reason", {}).items():
                lines.append(f"    {count:>5} × {reason}")
    lines += warning_lines(summary.warnings)
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
        count = name == metric_keys.EXAMPLE_COUNT
        text = f"{value:.0f}" if count else ("nan" if math.isnan(value) else f"{value:.4f}")
        baseline = summary.baseline_metrics.get(name)
        suffix = f"   (baseline {baseline:.4f})" if baseline is not None and not count else ""
        lines.append(f"{label:<{width}} {text}{suffix}")
    if summary.blessed is not None:
        lines.append(f"blessed: {'yes' if summary.blessed else 'NO'}")
    for gate in summary.failed_gates:
        value = "n/a" if gate.value is None else f"{gate.value:.4f}"
        lines.append(f"  gate failed: {gate.metric} = {value}; threshold {gate.threshold}")
    if summary.pushed:
        lines.append(f"pushed model: {summary.pushed_model}")
        if summary.tflite:
            lines.append(f"  {summary.tflite}")
    else:
        failed = [c.node_id for c in summary.components if c.state == "FAILED"]
        lines.append(f"pushed model: none ({failed[0]} failed, the run stopped there)" if failed
                     else "pushed model: none (model not blessed, nothing pushed)")
    return "\n".join(lines)
