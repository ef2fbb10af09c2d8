"""The report as text: `ReportData` in, the self-contained HTML page and the short Markdown summary out, rendered
from the Jinja2 templates in `pipeline/report/templates/` (report.html with its report.css, summary.md).

Every string in the HTML goes through Jinja2's autoescaping and every string in the Markdown through the `md`
filter; charts and sample thumbnails are embedded as base64 PNG data URIs, so the page needs nothing but itself.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import json
import math
import os
import re
from pathlib import Path
from typing import Any

import jinja2

from components.evaluator import metric_keys as mn
from pipeline.report import charts
from pipeline.report.confusions import error_analysis
from pipeline.report.data import (
    EXAMPLE_COUNT,
    ReportData,
    kappa_reading,
    label_order,
    metric_label,
    per_class_metrics,
    sections,
    split_order,
)

HTML_NAME = "report.html"
MARKDOWN_NAME = "summary.md"
HTML_TEMPLATE = "report.html"
MARKDOWN_TEMPLATE = "summary.md"


def fmt(value: Any, digits: int = 4) -> str:
    """Numbers for people: '—' for missing, 'nan', floats with `digits` decimals."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value)


def metric_fmt(value: float | None, name: str) -> str:
    """A metric value: counts without decimals, the rest with four."""
    if name == EXAMPLE_COUNT and value is not None and not math.isnan(value):
        return f"{value:.0f}"
    return fmt(value)


def count(value: float | None) -> str:
    """A (weighted) count: no decimals when whole."""
    if value is None or math.isnan(value):
        return "—"
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.2f}"


def plain(value: Any) -> str:
    """A config value as written in JSON/YAML (true, [32, 64], 0.001), strings as they are."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return str(value)


def signed(value: float | None, name: str = "") -> str:
    """A change with its sign ("+0.0123"; counts without decimals)."""
    if value is None:
        return "—"
    if math.isnan(value):
        return "nan"
    if abs(value) < 5e-5:
        value = 0.0  # no "-0.0000" for float noise (e.g. two models with the same ranking and AUC)
    return f"{value:+.0f}" if name == EXAMPLE_COUNT else f"{value:+.4f}"


def pct(value: float | None) -> str:
    """A fraction as a percentage with one decimal."""
    return "—" if value is None or math.isnan(value) else f"{100 * value:.1f}%"


def png_data_uri(png: bytes) -> str:
    """PNG bytes as a `data:` URI."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def file_uri(path: str) -> str:
    """A local path as a file:// URI (URIs with a scheme as they are)."""
    if "://" in path:
        return path
    try:
        return Path(os.path.abspath(path)).as_uri()
    except ValueError:
        return path


def md(text: Any) -> str:
    """Text safe inside Markdown (and the HTML a Markdown renderer passes through)."""
    escaped = html.escape(str(text), quote=False)
    return re.sub(r"([\\`*_\[\]|~])", r"\\\1", escaped).replace("\n", " ")


_ENVIRONMENT = jinja2.Environment(
    loader=jinja2.PackageLoader("pipeline.report", "templates"),
    autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default=False),
    undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
)
_ENVIRONMENT.filters.update(fmt=fmt, mfmt=metric_fmt, signed=signed, pct=pct, file_uri=file_uri,
                            data_uri=png_data_uri, plain=plain, count=count, md=md)


def render_html(data: ReportData) -> str:
    """The self-contained HTML report for `data` (all text autoescaped, images as PNG data URIs)."""
    per_class = _per_class(data)
    images: dict[str, str] = {}
    if per_class is not None:
        images["confusion"] = png_data_uri(charts.confusion_chart(data.confusion, data.class_names))
    if data.task == "multilabel" and data.per_label:
        images["confusion"] = png_data_uri(charts.label_counts_chart(data.per_label))
    if data.history:
        images["training"] = png_data_uri(charts.training_chart(data.history, data.best_epoch, data.phases))
    if data.class_distribution:
        images["distribution"] = png_data_uri(charts.distribution_chart(data.class_distribution, data.class_names))
    return _ENVIRONMENT.get_template(HTML_TEMPLATE).render(
        d=data,
        sections=sections(data.task),
        titles=dict(sections(data.task)),
        per_class=per_class,
        mn=mn,
        charts=images,
        reading=kappa_reading(data.kappa),
        distribution_labels=label_order(data.class_distribution, data.class_names),
        splits=split_order(data.class_distribution),
        split_totals={s: sum(c.values()) for s, c in data.class_distribution.items()},
        wrong_first=sorted(data.samples, key=lambda s: s.correct),
        errors=error_analysis(data),
        generated=dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S %Z"),
    )


def verdict(data: ReportData) -> str:
    """One line: blessed/pushed, or which gates failed."""
    if data.blessed is None:
        return "not evaluated" + (f" ({data.evaluation_note})" if data.evaluation_note else "")
    if not data.blessed:
        failed = ", ".join(f"{metric_label(g.metric)} {g.kind} gate" for g in data.failed_gates)
        return "NOT blessed" + (f": failed {failed}" if failed else "") + "; nothing pushed"
    if data.pushed:
        return f"blessed and pushed as version {data.pushed_version or '?'}"
    return "blessed, not pushed"


def render_markdown(data: ReportData, html_name: str = HTML_NAME) -> str:
    """A short Markdown summary: verdict, gated metrics, kappa reading, weakest classes, data health."""
    text = _ENVIRONMENT.get_template(MARKDOWN_TEMPLATE).render(
        d=data,
        verdict=verdict(data),
        reading=kappa_reading(data.kappa),
        per_class=_per_class(data),
        mn=mn,
        anomaly_count=sum(len(found) for found in data.anomalies.values()),
        html_name=html_name,
    )
    lines = text.split("\n")
    return "\n".join(line for i, line in enumerate(lines) if line or (i and lines[i - 1])) + "\n"  # one blank line


def _per_class(data: ReportData) -> Any:
    """Per-class metrics of a multiclass or binary model with a confusion matrix, else None."""
    if not data.confusion or data.task == "multilabel":
        return None
    return per_class_metrics(data.confusion, data.class_names, data.unpredicted)
