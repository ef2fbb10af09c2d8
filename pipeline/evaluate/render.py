"""An offline evaluation as text: the HTML page and the Markdown summary (templates `evaluation.html` and
`evaluation.md` beside the model report's, with its stylesheet, filters, charts and per-class maths), and the
terminal text `visionline evaluate` prints (metrics with their gates, kappa, per-class precision/recall/F1, the
confusion matrix, quarantined files).
"""

from __future__ import annotations

import datetime as dt
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from pipeline.evaluate.analysis import OfflineEvaluation
from pipeline.report import charts
from pipeline.report.data import (
    HeadlineMetric,
    PerClass,
    ReportData,
    kappa_reading,
    label_order,
    natural_key,
    per_class_metrics,
)
from pipeline.report.render import count, file_uri, fmt, md, metric_fmt, png_data_uri

HTML_NAME = "report.html"
MARKDOWN_NAME = "summary.md"
SECTIONS = (("metrics", "Metrics and gates"), ("kappa", "Cohen's kappa"), ("per-class", "Per-class metrics"),
            ("confusion", "Confusion matrix"), ("data", "Data"))
MAX_QUARANTINE_LINES = 20  # in the terminal; the report lists them all

_ENVIRONMENT = jinja2.Environment(
    loader=jinja2.PackageLoader("pipeline.report", "templates"),
    autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default=False),
    undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
)
_ENVIRONMENT.filters.update(fmt=fmt, mfmt=metric_fmt, count=count, md=md, file_uri=file_uri)


@dataclass
class Matrix:
    """A confusion matrix with its classes in name order (rows actual, columns predicted)."""

    names: list[str]
    rows: list[list[float]]


@dataclass
class EvaluationPaths:
    """Where the report was written."""

    out_dir: str
    html: str
    markdown: str


def name_ordered(data: ReportData) -> Matrix | None:
    """The confusion matrix with classes sorted by name (digits numerically); None without one."""
    if not data.confusion:
        return None
    order = sorted(range(len(data.class_names)), key=lambda i: natural_key(data.class_names[i]))
    return Matrix([data.class_names[i] for i in order], [[data.confusion[i][j] for j in order] for i in order])


def per_class(data: ReportData) -> PerClass | None:
    """Per-class precision, recall, F1 and support (multiclass, binary), else None."""
    if not data.confusion or data.task == "multilabel":
        return None
    return per_class_metrics(data.confusion, data.class_names, data.unpredicted)


def _gated(data: ReportData) -> tuple[list[HeadlineMetric], list[HeadlineMetric]]:
    gated = [m for m in data.metrics if m.gates]
    return gated, [m for m in gated if m.status == "fail"]


def _context(result: OfflineEvaluation) -> dict[str, Any]:
    data = result.data
    gated, failed = _gated(data)
    return {"d": data, "model_dir": result.model_dir, "data_root": result.examples.data_root,
            "layout": result.examples.layout, "per_class": per_class(data), "reading": kappa_reading(data.kappa),
            "gated": gated, "failed": failed, "html_name": HTML_NAME}


def render_html(result: OfflineEvaluation) -> str:
    """The self-contained HTML page (all text autoescaped, the confusion matrix as an embedded PNG)."""
    data = result.data
    chart = png_data_uri(charts.confusion_chart(data.confusion, data.class_names)) if data.confusion else ""
    return _ENVIRONMENT.get_template("evaluation.html").render(
        **_context(result), sections=SECTIONS, titles=dict(SECTIONS), matrix=name_ordered(data), chart=chart,
        distribution_labels=label_order(data.class_distribution, data.class_names),
        generated=dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S %Z"))


def render_markdown(result: OfflineEvaluation) -> str:
    """The short Markdown summary."""
    text = _ENVIRONMENT.get_template("evaluation.md").render(**_context(result))
    lines = text.split("\n")
    return "\n".join(line for i, line in enumerate(lines) if line or (i and lines[i - 1])) + "\n"  # one blank line


def write_report(result: OfflineEvaluation, out_dir: str) -> EvaluationPaths:
    """`report.html` and `summary.md` into `out_dir`."""
    os.makedirs(out_dir, exist_ok=True)
    paths = EvaluationPaths(out_dir, os.path.join(out_dir, HTML_NAME), os.path.join(out_dir, MARKDOWN_NAME))
    Path(paths.html).write_text(render_html(result), encoding="utf-8")
    Path(paths.markdown).write_text(render_markdown(result), encoding="utf-8")
    return paths


def _table(rows: list[tuple[str, ...]], numeric_from: int = 1) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  " + "  ".join(cell.rjust(widths[i]) if i >= numeric_from else cell.ljust(widths[i])
                             for i, cell in enumerate(row)).rstrip() for row in rows]


def format_text(result: OfflineEvaluation) -> str:
    """What `visionline evaluate` prints."""
    data, examples = result.data, result.examples
    lines = [f"evaluated {result.model_dir}",
             f"on {examples.data_root} ({examples.layout}): {examples.files_seen} files seen, {examples.ingested} "
             f"evaluated, {len(examples.quarantined)} quarantined", ""]
    for m in data.metrics:
        gate = f"   gate {m.gates[0].threshold}: {m.gates[0].status}" if m.gates else ""
        lines.append(f"  {m.label:<28} {metric_fmt(m.value, m.name):>8}{gate}")
    if data.kappa is not None and not math.isnan(data.kappa):
        lines += ["", f"{data.kappa_label} {fmt(data.kappa)}: {kappa_reading(data.kappa)} agreement (Landis–Koch)"]
    classes = per_class(data)
    if classes is not None:
        lines += ["", "per class (worst F1 first):"]
        lines += _table([("class", "precision", "recall", "F1", "support")] + [
            (r.name, f"{r.precision:.3f}", f"{r.recall:.3f}", f"{r.f1:.3f}", f"{r.support:.0f}")
            for r in classes.rows + [classes.macro, classes.weighted]])
    elif data.per_label:
        lines += ["", "per label (worst F1 first):"]
        lines += _table([("label", "precision", "recall", "F1", "support")] + [
            (r.name, fmt(r.precision, 3), fmt(r.recall, 3), fmt(r.f1, 3), count(r.support)) for r in data.per_label])
    matrix = name_ordered(data)
    if matrix is not None:
        lines += ["", "confusion matrix (rows: actual, columns: predicted):"]
        lines += _table([("", *matrix.names)] + [(name, *(count(v) for v in row))
                                                 for name, row in zip(matrix.names, matrix.rows)])
    if examples.quarantined:
        lines += ["", f"quarantined ({len(examples.quarantined)}, not evaluated):"]
        lines += [f"  {row['path']} ({row['label'] or 'no label'}): {row['reason']}"
                  for row in examples.quarantined[:MAX_QUARANTINE_LINES]]
        if len(examples.quarantined) > MAX_QUARANTINE_LINES:
            lines.append(f"  … and {len(examples.quarantined) - MAX_QUARANTINE_LINES} more: see "
                         f"{data.ingest.get('quarantine_report', 'the report')}")
    for note in data.notes:
        lines.append(f"note: {note}")
    return "\n".join(lines)
