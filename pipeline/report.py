"""The model report: one self-contained HTML page (plus a short Markdown summary) per pipeline run, read from
ML Metadata and the run's artifacts; and the run listing behind `visionline runs`.

This module owns three steps, kept apart so each can be used and tested alone:

* collecting (`collect_report_data`): find the run's `pipeline_run` context in ML Metadata, follow its executions
  (CACHED ones included, so a fully cached run reports the artifacts it reused) to the Examples, Statistics,
  Schema, Anomalies, TransformGraph, Model, ModelRun, ModelEvaluation, ModelBlessing and PushedModel artifacts,
  and read them into a plain `ReportData` (metrics and gates from TFMA; the confusion matrix from TFMA's
  multi-class confusion-matrix plot, plus for binary models the counts at threshold 0.5 of the positive class
  (vocabulary index 1), and for multilabel models the per-label metrics and 2×2 counts of
  `components.evaluator.custom_metrics.PerLabelMetrics`; training curves from the Trainer's history.json, class
  counts from StatisticsGen, sample predictions by running the candidate model's `serving_default` signature on the eval
  split). The task (`train.task`) comes from the Trainer's custom_config and the Evaluator's eval_config;
* rendering (`render_html`, `render_markdown`): plain Python data in, text out — no ML Metadata, no TensorFlow.
  Every string goes through Jinja2 autoescaping (HTML) or `_md` (Markdown); charts are drawn with matplotlib's
  Agg canvas and embedded as base64 PNG data URIs, so the page needs nothing but itself;
* writing (`write_report`, `build_report`): `<pipeline_root>/reports/<run id>/report.html` and `summary.md`.

Gate thresholds come from the Evaluator execution's `eval_config` exec property (what was configured); the
evaluation artifact's `eval_config.json` (what TFMA applied: the Evaluator drops change thresholds when there
is no baseline model yet) tells which of them were in force.
"""

from __future__ import annotations

import base64
import csv
import dataclasses
import datetime as dt
import glob
import io
import json
import math
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import numpy as np

from components.evaluator import catalogue  # (`evaluation` names TFMA's output artifact below)
from components.evaluator import metric_keys as mn
from pipeline.results import change_threshold_text, data_gate_lines, read_verdict, value_threshold_text

HTML_NAME = "report.html"
MARKDOWN_NAME = "summary.md"
MAX_SAMPLES = 24
MAX_SCAN = 1000  # eval examples run through the model to find misclassified samples for the grid

# Component ids (see pipeline/pipeline.py).
EXAMPLE_GEN = "ImageExampleGen"
STATISTICS_GEN = "StatisticsGen"
EXAMPLE_VALIDATOR = "ExampleValidator"
TRANSFORM = "Transform"
TRAINER = "Trainer"
EVALUATOR = "Evaluator"
PUSHER = "Pusher"

ACCURACY = mn.ACCURACY
KAPPA = mn.COHEN_KAPPA
EXAMPLE_COUNT = mn.EXAMPLE_COUNT
TASKS = catalogue.TASKS

# (id, heading) of every section of the HTML report, in order (multiclass headings; see `sections`).
SECTIONS = (
    ("verdict", "Verdict"),
    ("metrics", "Headline metrics and gates"),
    ("kappa", "Cohen's kappa"),
    ("per-class", "Per-class metrics"),
    ("confusion", "Confusion matrix"),
    ("training", "Training curves"),
    ("distribution", "Class distribution"),
    ("samples", "Sample predictions"),
    ("ingestion", "Ingestion"),
    ("anomalies", "Data anomalies"),
    ("hyperparameters", "Hyper-parameters"),
    ("lineage", "Lineage"),
)
_TASK_HEADINGS = {
    "binary": {"confusion": "Confusion matrix at threshold 0.5"},
    "multilabel": {"per-class": "Per-label metrics", "confusion": "Per-label confusion counts",
                   "distribution": "Label distribution"},
}


def sections(task: str = "multiclass") -> tuple[tuple[str, str], ...]:
    """(id, heading) of every section for a task: the same ids for every task, headings that fit it."""
    headings = _TASK_HEADINGS.get(task, {})
    return tuple((section_id, headings.get(section_id, title)) for section_id, title in SECTIONS)


def metric_label(name: str) -> str:
    """Display name of a metric (components.evaluator.catalogue's catalogue)."""
    return catalogue.metric_label(name)

# Landis & Koch (1977): upper bound of each band → reading (kappa < 0 is "poor").
_LANDIS_KOCH = ((0.20, "slight"), (0.40, "fair"), (0.60, "moderate"), (0.80, "substantial"))


# ----- plain data ---------------------------------------------------------------------------------------------
@dataclass
class Gate:
    """One Evaluator threshold on one metric and how the candidate fared."""

    metric: str
    kind: str  # "value" (absolute bound) | "change" (vs the baseline model)
    threshold: str  # human-readable, e.g. "≥ 0.5000"
    value: float | None = None  # the metric (value gate) or its change vs baseline (change gate)
    status: str = "pass"  # pass | fail | not applied
    message: str = ""

    @property
    def label(self) -> str:
        """Display name of the metric."""
        return metric_label(self.metric)


@dataclass
class HeadlineMetric:
    """A metric of the candidate, its baseline value and the gates on it."""

    name: str
    value: float | None
    baseline: float | None = None
    gates: list[Gate] = field(default_factory=list)

    @property
    def label(self) -> str:
        """Display name."""
        return metric_label(self.name)

    @property
    def diff(self) -> float | None:
        """Candidate minus baseline."""
        if self.value is None or self.baseline is None:
            return None
        return self.value - self.baseline

    @property
    def status(self) -> str:
        """fail if any gate failed, pass if a gate was checked, else '' (not gated)."""
        states = {g.status for g in self.gates}
        return "fail" if "fail" in states else ("pass" if "pass" in states else "")


@dataclass
class ClassMetrics:
    """Precision, recall, F1 and support of one class (or an average over classes)."""

    name: str
    precision: float
    recall: float
    f1: float
    support: float


@dataclass
class PerClass:
    """Per-class metrics (sorted by F1, worst first) with macro and weighted averages and accuracy."""

    rows: list[ClassMetrics]
    macro: ClassMetrics
    weighted: ClassMetrics
    accuracy: float
    absent: list[str] = field(default_factory=list)  # classes neither in the eval data nor ever predicted


@dataclass
class LabelMetrics:
    """One label of a multilabel model: precision, recall, F1, support and its 2×2 counts at threshold 0.5."""

    name: str
    precision: float
    recall: float
    f1: float
    support: float
    tp: float
    fp: float
    fn: float
    tn: float


@dataclass
class BinaryConfusion:
    """A binary model's confusion counts at its decision threshold (positive class: vocabulary index 1)."""

    threshold: float
    tp: float
    fp: float
    fn: float
    tn: float


@dataclass
class Sample:
    """One eval image with the model's prediction."""

    image_png: bytes
    true_label: str
    predicted_label: str
    confidence: float
    path: str = ""

    @property
    def correct(self) -> bool:
        """Whether the prediction matches the label."""
        return self.true_label == self.predicted_label


@dataclass
class Anomaly:
    """One ExampleValidator finding."""

    feature: str
    severity: str
    short_description: str
    description: str


@dataclass
class ComponentState:
    """One component's execution in the run."""

    node_id: str
    state: str
    seconds: float


@dataclass
class LineageEntry:
    """One artifact the run produced or reused (or, for the baseline model, consumed)."""

    node_id: str
    key: str
    type_name: str
    artifact_id: int
    uri: str
    reused: bool = False  # produced by an earlier run (CACHED execution / resolved baseline)


@dataclass
class ReportData:
    """Everything the report shows, as plain Python data (what `render_html` / `render_markdown` take)."""

    run_id: str
    pipeline_name: str = ""
    created: str = ""
    task: str = "multiclass"  # multiclass | binary | multilabel (train.task)
    components: list[ComponentState] = field(default_factory=list)
    metrics: list[HeadlineMetric] = field(default_factory=list)
    other_metrics: dict[str, float] = field(default_factory=dict)
    has_baseline: bool = False
    baseline_model_uri: str = ""
    blessed: bool | None = None
    evaluation_note: str = ""
    pushed: bool = False
    pushed_version: str = ""
    pushed_destination: str = ""
    class_names: list[str] = field(default_factory=list)
    confusion: list[list[float]] | None = None  # rows: actual class id, columns: predicted class id
    unpredicted: list[float] | None = None  # per actual class: examples TFMA counted as "no prediction"
    binary_confusion: BinaryConfusion | None = None  # binary: counts at threshold 0.5 for the positive class
    per_label: list[LabelMetrics] = field(default_factory=list)  # multilabel, sorted by F1 (worst first)
    history: dict[str, list[float]] = field(default_factory=dict)
    phases: list[tuple[str, int]] = field(default_factory=list)  # (phase name, epochs)
    best_epoch: int | None = None  # 1-based, over the concatenated phases
    class_distribution: dict[str, dict[str, float]] = field(default_factory=dict)  # split -> label -> count
    samples: list[Sample] = field(default_factory=list)
    samples_scanned: int = 0
    samples_misclassified: int = 0
    sample_model_uri: str = ""
    hyperparameters: dict[str, Any] = field(default_factory=dict)  # Trainer custom_config, flattened
    effective_hyperparameters: dict[str, Any] = field(default_factory=dict)  # history.json (after tuning)
    lineage: list[LineageEntry] = field(default_factory=list)
    ingest: dict[str, Any] = field(default_factory=dict)
    quarantine_rows: list[dict[str, str]] = field(default_factory=list)
    anomalies: dict[str, list[Anomaly]] = field(default_factory=dict)  # split -> findings
    data_gate: list[str] = field(default_factory=list)  # the ValidationGate's verdict, as the CLI prints it
    notes: list[str] = field(default_factory=list)  # what could not be read, and why

    @property
    def kappa(self) -> float | None:
        """The candidate's Cohen's kappa (whatever its weighting), if evaluated."""
        return next((m.value for m in self.metrics if catalogue.is_kappa(m.name)), None)

    @property
    def kappa_label(self) -> str:
        """"Cohen's kappa (quadratic-weighted)" etc. for the kappa that was evaluated."""
        return next((m.label for m in self.metrics if catalogue.is_kappa(m.name)), "Cohen's kappa")

    @property
    def positive_class(self) -> str:
        """Binary models: the positive class, vocabulary index 1 ("" when the class names are unknown)."""
        return self.class_names[mn.POSITIVE_CLASS_ID] if len(self.class_names) > mn.POSITIVE_CLASS_ID else ""

    def value(self, name: str) -> float | None:
        """The candidate's value of a metric (headline or other), if evaluated."""
        found = next((m.value for m in self.metrics if m.name == name), None)
        return found if found is not None else self.other_metrics.get(name)

    @property
    def failed_gates(self) -> list[Gate]:
        """Every gate the candidate failed."""
        return [g for m in self.metrics for g in m.gates if g.status == "fail"]

    @property
    def fully_cached(self) -> bool:
        """True when every component that produces artifacts reused an earlier execution."""
        producing = [c for c in self.components if c.state not in ("", "?") and "resolver" not in c.node_id]
        return bool(producing) and all(c.state == "CACHED" for c in producing)


@dataclass
class ReportPaths:
    """Where `build_report` wrote the report."""

    run_id: str
    out_dir: str
    html: str
    markdown: str


@dataclass
class RunRow:
    """One pipeline run for `visionline runs`."""

    run_id: str
    time: str
    state: str
    accuracy: float | None
    kappa: float | None
    blessed: bool | None
    pushed_version: str | None


# ----- small pure helpers -------------------------------------------------------------------------------------
def kappa_reading(kappa: float | None) -> str:
    """Landis–Koch reading of Cohen's kappa: poor, slight, fair, moderate, substantial, almost perfect.

    <0 poor, 0–0.20 slight, 0.21–0.40 fair, 0.41–0.60 moderate, 0.61–0.80 substantial, 0.81–1.00 almost perfect;
    a band's upper bound belongs to it (0.20 is slight, anything above it up to 0.40 fair). NaN/None: undefined.
    """
    if kappa is None or math.isnan(kappa):
        return "undefined"
    if kappa < 0:
        return "poor"
    for upper, reading in _LANDIS_KOCH:
        if kappa <= upper + 1e-12:
            return reading
    return "almost perfect"


def per_class_metrics(confusion: Sequence[Sequence[float]] | np.ndarray, class_names: Sequence[str],
                      unpredicted: Sequence[float] | None = None) -> PerClass:
    """Precision/recall/F1/support per class from a confusion matrix (rows actual, columns predicted).

    Matches scikit-learn's `classification_report(y_true, y_pred, zero_division=0)`: the classes are those that
    occur or are predicted (the others are listed in `absent`, outside the averages); F1 is 2·TP / (2·TP + FP +
    FN); a class never predicted has precision 0, one never present recall 0. `unpredicted` (examples with no
    prediction, per actual class) count as misses of their class. Rows are sorted by F1, worst first (ties by name).
    """
    matrix = np.asarray(confusion, dtype=np.float64)
    n = matrix.shape[0]
    if matrix.shape != (n, n):
        raise ValueError(f"confusion matrix must be square, got shape {matrix.shape}")
    names = _class_names(class_names, n)
    missed = np.zeros(n) if unpredicted is None else np.asarray(unpredicted, dtype=np.float64)
    tp = np.diag(matrix)
    support = matrix.sum(axis=1) + missed
    predicted = matrix.sum(axis=0)
    present = (support > 0) | (predicted > 0)
    absent = sorted((names[i] for i in range(n) if not present[i]), key=_natural_key)
    tp, support, predicted = tp[present], support[present], predicted[present]
    names = [names[i] for i in range(n) if present[i]]
    precision = _safe_divide(tp, predicted)
    recall = _safe_divide(tp, support)
    f1 = _safe_divide(2 * tp, support + predicted)
    rows = [ClassMetrics(name, float(precision[i]), float(recall[i]), float(f1[i]), float(support[i]))
            for i, name in enumerate(names)]
    rows.sort(key=lambda r: (r.f1, _natural_key(r.name)))
    total = float(support.sum())
    weights = support / total if total else np.zeros(len(names))

    def mean(values: np.ndarray) -> float:
        return float(values.mean()) if values.size else 0.0

    macro = ClassMetrics("macro avg", mean(precision), mean(recall), mean(f1), total)
    weighted = ClassMetrics("weighted avg", float((precision * weights).sum()), float((recall * weights).sum()),
                            float((f1 * weights).sum()), total)
    return PerClass(rows=rows, macro=macro, weighted=weighted, accuracy=float(tp.sum() / total) if total else 0.0,
                    absent=absent)


def per_label_metrics(values: dict[str, dict[int, float]], class_names: Sequence[str]) -> list[LabelMetrics]:
    """Per-label rows from TFMA's `label_<statistic>` metrics ({statistic: {class id: value}}), sorted by F1,
    worst first (ties by name); labels beyond the vocabulary are named "label 7"."""
    ids = sorted({class_id for per_id in values.values() for class_id in per_id})
    names = [str(class_names[i]) if i < len(class_names) else f"label {i}" for i in range(max(ids, default=-1) + 1)]

    def get(statistic: str, class_id: int) -> float:
        return float(values.get(statistic, {}).get(class_id, float("nan")))

    rows = [LabelMetrics(names[i], *(get(s, i) for s in ("precision", "recall", "f1", "support", "tp", "fp", "fn",
                                                        "tn"))) for i in ids]
    rows.sort(key=lambda r: (math.inf if math.isnan(r.f1) else r.f1, _natural_key(r.name)))
    return rows


def _safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    out = np.zeros_like(numerator, dtype=np.float64)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def _class_names(names: Sequence[str], n: int) -> list[str]:
    """`names` padded to `n` entries ("class 7") for ids beyond the vocabulary."""
    return [str(names[i]) if i < len(names) else f"class {i}" for i in range(n)]


def sanitize_run_id(run_id: str) -> str:
    """A folder name for a run id (pipeline_run contexts are named by timestamps with ':')."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", run_id).strip("._") or "run"


def _fmt(value: Any, digits: int = 4) -> str:
    """Numbers for people: '—' for missing, 'nan', floats with `digits` decimals."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value)


def _metric_fmt(value: float | None, name: str) -> str:
    """A metric value: counts without decimals, the rest with four."""
    if name == EXAMPLE_COUNT and value is not None and not math.isnan(value):
        return f"{value:.0f}"
    return _fmt(value)


def _count(value: float | None) -> str:
    """A (weighted) count: no decimals when whole."""
    if value is None or math.isnan(value):
        return "—"
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.2f}"


def _plain(value: Any) -> str:
    """A config value as written in JSON/YAML (true, [32, 64], 0.001), strings as they are."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return str(value)


def _signed(value: float | None, name: str = "") -> str:
    if value is None:
        return "—"
    if math.isnan(value):
        return "nan"
    if abs(value) < 5e-5:
        value = 0.0  # no "-0.0000" for float noise (e.g. two models with the same ranking and AUC)
    return f"{value:+.0f}" if name == EXAMPLE_COUNT else f"{value:+.4f}"


def _pct(value: float | None) -> str:
    return "—" if value is None or math.isnan(value) else f"{100 * value:.1f}%"


def _png_data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _file_uri(path: str) -> str:
    if "://" in path:
        return path
    try:
        return Path(os.path.abspath(path)).as_uri()
    except ValueError:
        return path


# ----- charts (matplotlib, Agg canvas; no pyplot global state) ------------------------------------------------
def _new_figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def _figure_png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    return buffer.getvalue()


def _short(label: str, limit: int = 18) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"


def _plain_text() -> Any:
    """rc settings so labels with '$' or '_' are drawn as typed, not as mathtext."""
    import matplotlib

    return matplotlib.rc_context({"text.parse_math": False, "text.usetex": False})


def confusion_chart(confusion: Sequence[Sequence[float]], class_names: Sequence[str]) -> bytes:
    """Heatmap (colour: fraction of the actual class, text: counts) with class names; PNG bytes."""
    matrix = np.asarray(confusion, dtype=np.float64)
    n = matrix.shape[0]
    full_names = _class_names(class_names, n)
    order = sorted(range(n), key=lambda i: _natural_key(full_names[i]))  # show classes by name, not by id
    matrix = matrix[np.ix_(order, order)]
    names = [_short(full_names[i]) for i in order]
    side = min(16.0, max(4.5, 0.55 * n + 2.5))
    with _plain_text():
        figure = _new_figure(side + 1.2, side)
        axes = figure.add_subplot()
        rows = matrix.sum(axis=1, keepdims=True)
        fractions = np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0)
        image = axes.imshow(fractions, cmap="Blues", vmin=0.0, vmax=1.0)
        colorbar = figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04)
        colorbar.set_label("fraction of the actual class")
        tilt = n > 25 or max(map(len, names), default=0) > 3
        axes.set_xticks(range(n), labels=names, rotation=45 if tilt else 0, ha="right" if tilt else "center")
        axes.set_yticks(range(n), labels=names)
        axes.set_xlabel("predicted class")
        axes.set_ylabel("actual class")
        if n <= 30:
            size = 9 if n <= 12 else 7
            for i in range(n):
                for j in range(n):
                    if matrix[i, j]:
                        colour = "white" if fractions[i, j] > 0.55 else "black"
                        axes.text(j, i, f"{matrix[i, j]:.0f}", ha="center", va="center", color=colour, fontsize=size)
        axes.set_title("Confusion matrix (eval split)")
        return _figure_png(figure)


def label_counts_chart(rows: Sequence[LabelMetrics]) -> bytes:
    """Multilabel: per-label true positives, false negatives and false positives as horizontal bars; PNG bytes."""
    ordered = sorted(rows, key=lambda r: _natural_key(r.name))
    n = len(ordered)
    with _plain_text():
        figure = _new_figure(7.5, min(16.0, max(2.5, 0.35 * n + 1.5)))
        axes = figure.add_subplot()
        positions = np.arange(n)
        height = 0.27
        for offset, (attribute, label, colour) in enumerate((("tp", "true positives", "tab:green"),
                                                            ("fn", "false negatives (missed)", "tab:orange"),
                                                            ("fp", "false positives", "tab:red"))):
            axes.barh(positions + (offset - 1) * height, [getattr(r, attribute) for r in ordered], height,
                      label=label, color=colour)
        axes.set_yticks(positions, labels=[_short(r.name) for r in ordered])
        axes.invert_yaxis()
        axes.set_xlabel("examples (eval split, threshold 0.5)")
        axes.set_title("Per-label counts")
        axes.grid(axis="x", alpha=0.3)
        axes.legend(loc="lower right", fontsize=8)
        figure.tight_layout()
        return _figure_png(figure)


def training_chart(history: dict[str, list[float]], best_epoch: int | None = None,
                   phases: Sequence[tuple[str, int]] = ()) -> bytes:
    """Loss and accuracy per epoch, training vs validation, best epoch and phase boundaries marked; PNG bytes."""
    panels = [("loss", "val_loss", "Loss"), ("accuracy", "val_accuracy", "Accuracy")]
    panels = [p for p in panels if history.get(p[0]) or history.get(p[1])]
    with _plain_text():
        figure = _new_figure(5.2 * max(1, len(panels)), 3.6)
        for index, (train_key, val_key, title) in enumerate(panels, start=1):
            axes = figure.add_subplot(1, len(panels), index)
            for key, label, style in ((train_key, "training", "-o"), (val_key, "validation", "-s")):
                values = history.get(key) or []
                if values:
                    axes.plot(range(1, len(values) + 1), values, style, markersize=3, label=label)
            if best_epoch:
                axes.axvline(best_epoch, color="tab:green", linestyle="--", linewidth=1,
                             label=f"best epoch {best_epoch}")
            boundary = 0
            for name, epochs in list(phases)[:-1]:
                boundary += epochs
                axes.axvline(boundary + 0.5, color="grey", linestyle=":", linewidth=1, label=f"end of {name}")
            axes.set_title(title)
            axes.set_xlabel("epoch")
            axes.grid(alpha=0.3)
            axes.legend(fontsize=8)
            axes.xaxis.get_major_locator().set_params(integer=True)
        figure.tight_layout()
        return _figure_png(figure)


def distribution_chart(distribution: dict[str, dict[str, float]], class_order: Sequence[str] = ()) -> bytes:
    """Grouped bars: examples per class for each split; PNG bytes."""
    labels = _label_order(distribution, class_order)
    splits = _split_order(distribution)
    n = len(labels)
    with _plain_text():
        figure = _new_figure(min(16.0, max(5.0, 0.45 * n * max(1, len(splits)) + 2.0)), 3.8)
        axes = figure.add_subplot()
        width = 0.8 / max(1, len(splits))
        positions = np.arange(n)
        for index, split in enumerate(splits):
            counts = [distribution[split].get(label, 0.0) for label in labels]
            axes.bar(positions + (index - (len(splits) - 1) / 2) * width, counts, width, label=split)
        names = [_short(s) for s in labels]
        tilt = n > 25 or max(map(len, names), default=0) > 3
        axes.set_xticks(positions, labels=names, rotation=45 if tilt else 0, ha="right" if tilt else "center")
        axes.set_ylabel("examples")
        axes.set_title("Examples per class and split (StatisticsGen)")
        axes.grid(axis="y", alpha=0.3)
        axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), title="split")
        figure.tight_layout()
        return _figure_png(figure)


def _label_order(distribution: dict[str, dict[str, float]], class_order: Sequence[str] = ()) -> list[str]:
    """Every label seen, the known classes first; both groups sorted by name (digits numerically)."""
    seen = {label for counts in distribution.values() for label in counts}
    known = sorted((c for c in set(class_order) if c in seen), key=_natural_key)
    return known + sorted(seen - set(known), key=_natural_key)


def _split_order(distribution: dict[str, Any]) -> list[str]:
    preferred = ("train", "validation", "eval", "test")
    return sorted(distribution, key=lambda s: (preferred.index(s) if s in preferred else len(preferred), s))


def _natural_key(text: str) -> tuple[Any, ...]:
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", text) if part)


def thumbnail_png(encoded: bytes, size: int = 112) -> bytes:
    """Any PIL-readable image → a PNG thumbnail (small images enlarged without smoothing)."""
    from PIL import Image

    with Image.open(io.BytesIO(encoded)) as image:
        image.seek(0)
        picture = image.convert("RGBA" if image.mode in ("RGBA", "LA", "P") else "RGB")
    width, height = picture.size
    if max(width, height) < size:
        factor = max(1, size // max(width, height))
        picture = picture.resize((width * factor, height * factor), Image.NEAREST)
    else:
        picture.thumbnail((size, size), Image.LANCZOS)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


# ----- rendering ----------------------------------------------------------------------------------------------
def render_html(data: ReportData) -> str:
    """The self-contained HTML report for `data` (all text autoescaped, images as PNG data URIs)."""
    per_class = per_class_metrics(data.confusion, data.class_names, data.unpredicted) \
        if data.confusion and data.task != "multilabel" else None
    charts: dict[str, str] = {}
    if per_class is not None:
        charts["confusion"] = _png_data_uri(confusion_chart(data.confusion, data.class_names))
    if data.task == "multilabel" and data.per_label:
        charts["confusion"] = _png_data_uri(label_counts_chart(data.per_label))
    if data.history:
        charts["training"] = _png_data_uri(training_chart(data.history, data.best_epoch, data.phases))
    if data.class_distribution:
        charts["distribution"] = _png_data_uri(distribution_chart(data.class_distribution, data.class_names))
    labels = _label_order(data.class_distribution, data.class_names)
    environment = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
                                     lstrip_blocks=True)
    environment.filters.update(fmt=_fmt, mfmt=_metric_fmt, signed=_signed, pct=_pct, file_uri=_file_uri,
                               data_uri=_png_data_uri, plain=_plain, count=_count)
    return environment.from_string(_HTML_TEMPLATE).render(
        d=data,
        sections=sections(data.task),
        titles=dict(sections(data.task)),
        per_class=per_class,
        mn=mn,
        charts=charts,
        reading=kappa_reading(data.kappa),
        distribution_labels=labels,
        splits=_split_order(data.class_distribution),
        split_totals={s: sum(c.values()) for s, c in data.class_distribution.items()},
        wrong_first=sorted(data.samples, key=lambda s: s.correct),
        generated=dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S %Z"),
    )


def _md(text: Any) -> str:
    """Text safe inside Markdown (and the HTML a Markdown renderer passes through)."""
    import html

    escaped = html.escape(str(text), quote=False)
    return re.sub(r"([\\`*_\[\]|~])", r"\\\1", escaped).replace("\n", " ")


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
    lines = [f"# Model report: run {_md(data.run_id)}", "", f"**Verdict:** {_md(verdict(data))}"]
    if data.pushed and data.pushed_destination:
        lines.append(f"(pushed to `{data.pushed_destination.replace('`', '')}`)")
    if data.fully_cached:
        lines.append("")
        lines.append("Every component was cached: this run reused the artifacts of an earlier run.")
    if data.metrics:
        lines += ["", "| metric | candidate | baseline | change | gates | result |", "|---|---|---|---|---|---|"]
        for metric in data.metrics:
            gates = "; ".join(f"{g.threshold} ({g.status})" for g in metric.gates) or "—"
            lines.append(f"| {_md(metric.label)} | {_metric_fmt(metric.value, metric.name)} | "
                         f"{_metric_fmt(metric.baseline, metric.name)} | "
                         f"{_signed(metric.diff, metric.name)} | {_md(gates)} | {metric.status or '—'} |")
    if data.kappa is not None:
        lines += ["", f"{_md(data.kappa_label)} {_fmt(data.kappa)}: **{kappa_reading(data.kappa)}** agreement "
                      "(Landis–Koch)."]
    for gate in data.failed_gates:
        lines.append(f"- gate failed: {_md(gate.metric)} ({gate.kind}) = {_fmt(gate.value)}, "
                     f"needs {_md(gate.threshold)}" + (f": {_md(gate.message)}" if gate.message else ""))
    if data.task == "binary":
        line = f"Positive class: {_md(data.positive_class or 'vocabulary index 1')} (vocabulary index 1)"
        if data.binary_confusion:
            b = data.binary_confusion
            line += f"; at threshold {b.threshold}: TP {_count(b.tp)}, FP {_count(b.fp)}, FN {_count(b.fn)}, " \
                    f"TN {_count(b.tn)}"
        lines += ["", line + f". AUC-ROC {_fmt(data.value(mn.AUC))}, AUC-PR {_fmt(data.value(mn.AUC_PR))}."]
    if data.confusion and data.task != "multilabel":
        per_class = per_class_metrics(data.confusion, data.class_names, data.unpredicted)
        weakest = ", ".join(f"{_md(r.name)} ({r.f1:.3f})" for r in per_class.rows[:3])
        lines += ["", f"Weakest classes by F1: {weakest}. Macro F1 {per_class.macro.f1:.3f}, "
                      f"weighted F1 {per_class.weighted.f1:.3f}."]
    if data.task == "multilabel" and data.per_label:
        weakest = ", ".join(f"{_md(r.name)} ({_fmt(r.f1, 3)})" for r in data.per_label[:3])
        lines += ["", f"Weakest labels by F1: {weakest}. Micro F1 {_fmt(data.value(mn.F1_MICRO), 3)}, macro F1 "
                      f"{_fmt(data.value(mn.F1_MACRO), 3)}, subset accuracy {_fmt(data.value(mn.SUBSET_ACCURACY), 3)}, "
                      f"Hamming loss {_fmt(data.value(mn.HAMMING_LOSS), 3)}."]
    if data.ingest:
        ingest = data.ingest
        lines += ["", f"Ingestion: {ingest.get('files_seen', '?')} files seen, {ingest.get('ingested', '?')} ingested, "
                      f"{ingest.get('quarantined', '?')} quarantined."]
    found = sum(len(v) for v in data.anomalies.values())
    lines.append(f"Data anomalies: {found or 'none'}." if data.anomalies or data.ingest else "")
    for note in data.notes:
        lines.append(f"- note: {_md(note)}")
    lines += ["", f"Full report: [{_md(html_name)}]({html_name})", ""]
    return "\n".join(line for i, line in enumerate(lines) if line or (i and lines[i - 1])) + "\n"


def write_report(data: ReportData, out_dir: str) -> ReportPaths:
    """Render `data` and write `report.html` and `summary.md` into `out_dir`."""
    os.makedirs(out_dir, exist_ok=True)
    html_path = os.path.join(out_dir, HTML_NAME)
    markdown_path = os.path.join(out_dir, MARKDOWN_NAME)
    Path(html_path).write_text(render_html(data), encoding="utf-8")
    Path(markdown_path).write_text(render_markdown(data), encoding="utf-8")
    return ReportPaths(run_id=data.run_id, out_dir=out_dir, html=html_path, markdown=markdown_path)


def build_report(metadata_path: str, out_dir: str | None = None, run_id: str | None = None) -> ReportPaths:
    """Collect the latest (or given) run from ML Metadata and write its report.

    `out_dir` defaults to `<pipeline_root>/reports/<run id, sanitised>/`, the pipeline root being derived from
    the run's artifact URIs (`<pipeline_root>/<component>/<output>/<execution id>`).
    """
    store = _store(metadata_path)
    run = _find_run(store, run_id)
    facts = _RunFacts.read(store, run)
    data = _collect(facts)
    if out_dir is None:
        root = facts.pipeline_root() or os.path.join(os.path.dirname(os.path.dirname(metadata_path)), "pipelines")
        out_dir = os.path.join(root, "reports", sanitize_run_id(run.name))
    return write_report(data, out_dir)


# ----- ML Metadata --------------------------------------------------------------------------------------------
def _store(metadata_path: str) -> Any:
    from ml_metadata.metadata_store import metadata_store
    from tfx.orchestration import metadata

    if not os.path.exists(metadata_path):
        raise FileNotFoundError(f"no ML Metadata store at {metadata_path}: has the pipeline run yet?")
    return metadata_store.MetadataStore(metadata.sqlite_metadata_connection_config(metadata_path))


def _runs(store: Any) -> list[Any]:
    return sorted(store.get_contexts_by_type("pipeline_run"), key=lambda c: (c.create_time_since_epoch, c.id))


def _find_run(store: Any, run_id: str | None) -> Any:
    runs = _runs(store)
    if not runs:
        raise LookupError("ML Metadata records no pipeline run")
    if run_id is None:
        return runs[-1]
    exact = [r for r in runs if r.name == run_id or sanitize_run_id(r.name) == run_id]
    matches = exact or [r for r in runs if r.name.startswith(run_id)]
    if len(matches) == 1:
        return matches[0]
    known = ", ".join(r.name for r in runs[-5:])
    what = "several runs match" if matches else "no run named"
    raise LookupError(f"{what} {run_id!r}; latest runs: {known}")


def _value(value: Any) -> Any:
    """An MLMD `Value` as Python (JSON strings parsed)."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    raw = getattr(value, kind)
    if kind == "string_value":
        text = raw.strip()
        if text[:1] in ("{", "[") or text == "null":
            try:
                return json.loads(text)
            except ValueError:
                return raw
        return raw
    if kind == "struct_value":
        from google.protobuf import json_format

        return json_format.MessageToDict(raw)
    return raw


@dataclass
class _Node:
    node_id: str
    execution: Any
    state: str
    inputs: dict[str, list[Any]] = field(default_factory=dict)
    outputs: dict[str, list[Any]] = field(default_factory=dict)

    def output(self, key: str) -> Any:
        artifacts = self.outputs.get(key) or []
        return artifacts[-1] if artifacts else None

    def prop(self, name: str) -> Any:
        if name in self.execution.custom_properties:
            return _value(self.execution.custom_properties[name])
        if name in self.execution.properties:
            return _value(self.execution.properties[name])
        return None


@dataclass
class _RunFacts:
    """The executions of one run by node id, with their input and output artifacts."""

    run: Any
    pipeline_name: str
    nodes: dict[str, _Node]
    type_names: dict[int, str]

    @classmethod
    def read(cls, store: Any, run: Any) -> _RunFacts:
        from ml_metadata.proto import metadata_store_pb2

        states = {v: k for k, v in metadata_store_pb2.Execution.State.items()}
        executions = sorted(store.get_executions_by_context(run.id), key=lambda e: (e.create_time_since_epoch, e.id))
        events = store.get_events_by_execution_ids([e.id for e in executions]) if executions else []
        artifacts = {a.id: a for a in store.get_artifacts_by_id(sorted({e.artifact_id for e in events}))}
        type_names = {t.id: t.name for t in store.get_artifact_types()}
        context_types = {t.id: t.name for t in store.get_context_types()}
        nodes: dict[str, _Node] = {}
        pipeline_name = ""
        for execution in executions:
            node_id = str(execution.id)
            for context in store.get_contexts_by_execution(execution.id):
                kind = context_types.get(context.type_id)
                if kind == "node":
                    pipeline_name, _, node_id = context.name.rpartition(".")
            node = _Node(node_id, execution, states.get(execution.last_known_state, "?"))
            for event in (e for e in events if e.execution_id == execution.id):
                artifact = artifacts.get(event.artifact_id)
                if artifact is None:
                    continue
                # One event per artifact; its path lists every key it was passed under (e.g. the same Model as
                # both `model` and `baseline_model` when the Trainer was cached).
                keys = [step.key for step in event.path.steps if step.HasField("key")] or [""]
                if event.type in (metadata_store_pb2.Event.INPUT, metadata_store_pb2.Event.DECLARED_INPUT):
                    target = node.inputs
                elif event.type in (metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.DECLARED_OUTPUT):
                    target = node.outputs
                else:
                    continue
                for key in keys:
                    target.setdefault(key, []).append(artifact)
            nodes[node_id] = node  # a retried node: the last execution wins
        return cls(run=run, pipeline_name=pipeline_name, nodes=nodes, type_names=type_names)

    def node(self, node_id: str) -> _Node | None:
        return self.nodes.get(node_id)

    def output(self, node_id: str, key: str) -> Any:
        node = self.nodes.get(node_id)
        return node.output(key) if node else None

    def by_type(self, type_name: str) -> Any:
        """The last output artifact of that type in the run (for DAGs with renamed components)."""
        found = [a for n in self.nodes.values() for arts in n.outputs.values() for a in arts
                 if self.type_names.get(a.type_id) == type_name]
        return found[-1] if found else None

    def pipeline_root(self) -> str | None:
        """`<root>` from output URIs laid out as `<root>/<node id>/<output key>/<execution id>`."""
        for node in self.nodes.values():
            for key, artifacts in node.outputs.items():
                for artifact in artifacts:
                    parts = artifact.uri.rstrip("/").rsplit("/", 3)
                    if len(parts) == 4 and parts[1] == node.node_id and parts[2] == key:
                        return parts[0]
        return None


def _bool_prop(artifact: Any, name: str) -> bool | None:
    if artifact is None or name not in artifact.custom_properties:
        return None
    return bool(artifact.custom_properties[name].int_value)


def _str_prop(artifact: Any, name: str) -> str:
    if artifact is None or name not in artifact.custom_properties:
        return ""
    return str(_value(artifact.custom_properties[name]))


# ----- collecting ---------------------------------------------------------------------------------------------
def collect_report_data(metadata_path: str, run_id: str | None = None, max_samples: int = MAX_SAMPLES,
                        max_scan: int = MAX_SCAN) -> ReportData:
    """Everything the report shows for the latest (or given) run, read from ML Metadata and the artifacts.

    Sample predictions: the candidate model classifies up to `max_scan` eval examples; the grid shows up to
    `max_samples` of them, misclassified first (most confident first), then correct ones class by class.
    """
    store = _store(metadata_path)
    return _collect(_RunFacts.read(store, _find_run(store, run_id)), max_samples=max_samples, max_scan=max_scan)


def _collect(facts: _RunFacts, max_samples: int = MAX_SAMPLES, max_scan: int = MAX_SCAN) -> ReportData:
    run = facts.run
    data = ReportData(run_id=run.name, pipeline_name=facts.pipeline_name, created=_time(run.create_time_since_epoch))
    for node in facts.nodes.values():
        seconds = (node.execution.last_update_time_since_epoch - node.execution.create_time_since_epoch) / 1000.0
        data.components.append(ComponentState(node.node_id, node.state, max(0.0, seconds)))
    _collect_lineage(facts, data)
    steps = (
        ("ingestion", _collect_ingest),
        ("data anomalies", _collect_anomalies),
        ("data validation gate", _collect_data_gate),
        ("class distribution", _collect_distribution),
        ("training history", _collect_training),
        ("evaluation", _collect_evaluation),
        ("push", _collect_push),
        ("sample predictions", lambda f, d: _collect_samples(f, d, max_samples, max_scan)),
    )
    for what, step in steps:
        try:
            step(facts, data)
        except Exception as err:  # noqa: BLE001 - one unreadable artifact must not sink the whole report
            data.notes.append(f"{what}: could not be read ({type(err).__name__}: {err})")
    return data


def _time(millis: int) -> str:
    return dt.datetime.fromtimestamp(millis / 1000.0).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _collect_lineage(facts: _RunFacts, data: ReportData) -> None:
    for node in facts.nodes.values():
        for key, artifacts in node.outputs.items():
            for artifact in artifacts:
                data.lineage.append(LineageEntry(node.node_id, key, facts.type_names.get(artifact.type_id, "?"),
                                                 artifact.id, artifact.uri, reused=node.state == "CACHED"))
    evaluator = facts.node(EVALUATOR)
    for artifact in (evaluator.inputs.get("baseline_model") or []) if evaluator else []:
        data.has_baseline = True
        data.baseline_model_uri = artifact.uri
        data.lineage.append(LineageEntry(EVALUATOR, "baseline_model (input)",
                                         facts.type_names.get(artifact.type_id, "Model"), artifact.id, artifact.uri,
                                         reused=True))
        candidates = evaluator.inputs.get("model") or []
        if any(c.id == artifact.id for c in candidates):
            data.notes.append("the candidate model is the baseline itself (the Trainer was cached), so every "
                              "change vs baseline is 0")
    trainer = facts.node(TRAINER)
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


def _collect_ingest(facts: _RunFacts, data: ReportData) -> None:
    examples = facts.output(EXAMPLE_GEN, "examples") or facts.by_type("Examples")
    if examples is None:
        return
    facts_from_props = {k: examples.custom_properties[k].int_value
                        for k in ("files_seen", "ingested", "quarantined") if k in examples.custom_properties}
    data.ingest = {"examples_uri": examples.uri, **facts_from_props}
    summary_path = os.path.join(examples.uri, "ingest_summary.json")
    if os.path.exists(summary_path):
        data.ingest.update(json.loads(Path(summary_path).read_text(encoding="utf-8")))
    report = data.ingest.get("quarantine_report")
    if report and os.path.exists(report):
        with open(report, encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle):
                data.quarantine_rows.append(dict(row))
                if len(data.quarantine_rows) >= 50:
                    break


def _collect_anomalies(facts: _RunFacts, data: ReportData) -> None:
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    artifact = facts.output(EXAMPLE_VALIDATOR, "anomalies") or facts.by_type("ExampleAnomalies")
    if artifact is None:
        return
    for path in sorted(glob.glob(os.path.join(artifact.uri, "Split-*", "SchemaDiff.pb"))):
        split = os.path.basename(os.path.dirname(path)).removeprefix("Split-")
        anomalies = anomalies_pb2.Anomalies.FromString(Path(path).read_bytes())
        found = []
        for name, info in sorted(anomalies.anomaly_info.items()):
            found.append(Anomaly(name, anomalies_pb2.AnomalyInfo.Severity.Name(info.severity),
                                 info.short_description, info.description))
        if anomalies.HasField("dataset_anomaly_info"):
            info = anomalies.dataset_anomaly_info
            found.append(Anomaly("(dataset)", anomalies_pb2.AnomalyInfo.Severity.Name(info.severity),
                                 info.short_description, info.description))
        data.anomalies[split] = found


def _collect_data_gate(facts: _RunFacts, data: ReportData) -> None:
    artifact = facts.by_type("visionline.DataVerdict")
    if artifact is not None:
        data.data_gate = data_gate_lines(read_verdict(artifact.uri))


def _label_feature(facts: _RunFacts, key: str = "label_feature", default: str = "label") -> str:
    for node_id in (TRAINER, TRANSFORM):
        node = facts.node(node_id)
        config = node.prop("custom_config") if node else None
        if isinstance(config, dict) and config.get(key):
            return str(config[key])
    return default


def _collect_distribution(facts: _RunFacts, data: ReportData) -> None:
    from tensorflow_data_validation.utils import stats_util

    artifact = facts.output(STATISTICS_GEN, "statistics") or facts.by_type("ExampleStatistics")
    if artifact is None:
        return
    label = _label_feature(facts)
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


def _collect_training(facts: _RunFacts, data: ReportData) -> None:
    model_run = facts.output(TRAINER, "model_run") or facts.by_type("ModelRun")
    record: dict[str, Any] = {}
    if model_run is not None:
        path = os.path.join(model_run.uri, "history.json")
        if os.path.exists(path):
            record = json.loads(Path(path).read_text(encoding="utf-8"))
        else:
            data.notes.append(f"training history: no history.json in {model_run.uri}")
    data.history = {k: [float(v) for v in values] for k, values in (record.get("history") or {}).items()}
    phases = record.get("phases") or []
    data.phases = [(str(p.get("name", f"phase {i + 1}")), len(next(iter((p.get("history") or {"": []}).values()))))
                   for i, p in enumerate(phases)]
    if record.get("best_epoch"):
        earlier = sum(epochs for _, epochs in data.phases[:-1])
        data.best_epoch = int(record["best_epoch"]) + earlier
    if isinstance(record.get("hyperparameters"), dict):
        data.effective_hyperparameters = _flatten(record["hyperparameters"])
    data.class_names = [str(c) for c in record.get("class_names") or []] or _vocabulary(facts)


def _vocabulary(facts: _RunFacts) -> list[str]:
    """Class names in label-index order from the Transform graph's label vocabulary asset."""
    graph = facts.output(TRANSFORM, "transform_graph") or facts.by_type("TransformGraph")
    if graph is None:
        return []
    path = os.path.join(graph.uri, "transform_fn", "assets", "label")
    if not os.path.exists(path):
        return []
    return [line for line in Path(path).read_text(encoding="utf-8").splitlines()]


def _eval_config(value: Any) -> Any:
    import tensorflow_model_analysis as tfma
    from google.protobuf import json_format

    if value is None:
        return None
    if isinstance(value, dict):
        return json_format.ParseDict(value.get("evalConfig", value), tfma.EvalConfig(), ignore_unknown_fields=True)
    return json_format.Parse(str(value), tfma.EvalConfig(), ignore_unknown_fields=True)


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _thresholds(config: Any) -> dict[str, Any]:
    """metric name → MetricThreshold on the overall slice, from every MetricsSpec of an EvalConfig.

    Plain `threshold`s and `per_slice_thresholds` whose slicing specs include the overall slice (an empty
    `SlicingSpec`) count; thresholds for other slices only are not headline gates.
    """
    found: dict[str, Any] = {}
    if config is None:
        return found

    def overall(per_slice: Any) -> bool:
        return not per_slice.slicing_specs or any(not spec.ListFields() for spec in per_slice.slicing_specs)

    for spec in config.metrics_specs:
        for metric in spec.metrics:
            options = json.loads(metric.config) if metric.config else {}
            name = options.get("name") or _snake(metric.class_name)
            if metric.HasField("threshold"):
                found[name] = metric.threshold
            for per_slice in metric.per_slice_thresholds:
                if overall(per_slice):
                    found[name] = per_slice.threshold
        for name, threshold in spec.thresholds.items():
            found[name] = threshold
        for name, per_slice_thresholds in spec.per_slice_thresholds.items():
            for per_slice in per_slice_thresholds.thresholds:
                if overall(per_slice):
                    found[name] = per_slice.threshold
    return found


def _check_value(threshold: Any, value: float | None) -> bool | None:
    if value is None or math.isnan(value):
        return None
    low = threshold.lower_bound.value if threshold.HasField("lower_bound") else -math.inf
    high = threshold.upper_bound.value if threshold.HasField("upper_bound") else math.inf
    return low <= value <= high


def _check_change(threshold: Any, diff: float | None, baseline: float | None) -> bool | None:
    import tensorflow_model_analysis as tfma

    if diff is None or math.isnan(diff):
        return None
    lower = threshold.direction == tfma.MetricDirection.LOWER_IS_BETTER
    ok = True
    if threshold.HasField("absolute"):
        ok = ok and (diff <= threshold.absolute.value if lower else diff >= threshold.absolute.value)
    if threshold.HasField("relative") and baseline:
        ratio = diff / baseline
        ok = ok and (ratio <= threshold.relative.value if lower else ratio >= threshold.relative.value)
    return ok


def _collect_evaluation(facts: _RunFacts, data: ReportData) -> None:
    import tensorflow_model_analysis as tfma

    evaluator = facts.node(EVALUATOR)
    blessing = facts.output(EVALUATOR, "blessing") or facts.by_type("ModelBlessing")
    evaluation = facts.output(EVALUATOR, "evaluation") or facts.by_type("ModelEvaluation")
    data.blessed = _bool_prop(blessing, "blessed")
    if evaluation is None:
        state = evaluator.state if evaluator else "did not run"
        data.evaluation_note = f"the Evaluator {'ended ' + state if evaluator else state}; no evaluation artifact"
        return
    effective_path = os.path.join(evaluation.uri, "eval_config.json")
    effective = _eval_config(json.loads(Path(effective_path).read_text(encoding="utf-8"))) \
        if os.path.exists(effective_path) else None
    configured = _eval_config(evaluator.prop("eval_config")) if evaluator else None
    configured = configured or effective
    baseline_name = next((s.name for s in (effective or configured).model_specs if s.is_baseline), "baseline") \
        if (effective or configured) else "baseline"
    data.has_baseline = data.has_baseline or any(s.is_baseline for s in (effective.model_specs if effective else []))
    if configured is not None:
        data.task = catalogue.task_of(configured)

    values: dict[str, float] = {}
    baselines: dict[str, float] = {}
    diffs: dict[str, float] = {}
    per_label: dict[str, dict[int, float]] = {}
    for slice_metrics in tfma.load_metrics(evaluation.uri):
        if slice_metrics.slice_key.single_slice_keys:
            continue  # overall slice only
        for item in slice_metrics.metric_keys_and_values:
            key = item.key
            candidate = not key.is_diff and not (key.model_name and key.model_name == baseline_name)
            if candidate and key.name == mn.CONFUSION_AT_THRESHOLD \
                    and item.value.HasField("confusion_matrix_at_thresholds"):
                matrices = item.value.confusion_matrix_at_thresholds.matrices
                if matrices:
                    m = matrices[0]
                    data.binary_confusion = BinaryConfusion(round(m.threshold, 6), m.true_positives,
                                                            m.false_positives, m.false_negatives, m.true_negatives)
                continue
            if not item.value.HasField("double_value"):
                continue
            number = float(item.value.double_value.value)
            if key.name.startswith(mn.PER_LABEL_PREFIX):  # multilabel, one value per label (sub_key class_id)
                if candidate and key.HasField("sub_key") and key.sub_key.HasField("class_id"):
                    statistic = key.name[len(mn.PER_LABEL_PREFIX):]
                    per_label.setdefault(statistic, {})[key.sub_key.class_id.value] = number
                continue
            target = diffs if key.is_diff else (baselines if key.model_name == baseline_name else values)
            target[key.name] = number

    configured_gates = _thresholds(configured)
    applied = _thresholds(effective) if effective is not None else configured_gates
    failures = _failures(evaluation.uri)
    names = catalogue.headline_order(values)
    names += sorted(n for n in configured_gates if n not in names)
    for name in names:
        metric = HeadlineMetric(name, values.get(name), baselines.get(name))
        threshold = configured_gates.get(name)
        in_force = applied.get(name)
        if threshold is not None and threshold.HasField("value_threshold"):
            metric.gates.append(_gate(name, "value", value_threshold_text(threshold.value_threshold), metric.value,
                                      in_force is not None and in_force.HasField("value_threshold"),
                                      _check_value(threshold.value_threshold, metric.value), failures,
                                      data.has_baseline))
        if threshold is not None and threshold.HasField("change_threshold"):
            diff = diffs.get(name, metric.diff)
            metric.gates.append(_gate(name, "change", change_threshold_text(threshold.change_threshold), diff,
                                      in_force is not None and in_force.HasField("change_threshold"),
                                      _check_change(threshold.change_threshold, diff, metric.baseline), failures,
                                      data.has_baseline))
        data.metrics.append(metric)
    data.other_metrics = {k: v for k, v in sorted(values.items()) if k not in names}
    for (name, kind), message in failures.items():
        if not any(g.metric == name and g.kind == kind for m in data.metrics for g in m.gates):
            data.metrics.append(HeadlineMetric(name, values.get(name), baselines.get(name),
                                               [Gate(name, kind, "see message", diffs.get(name) if kind == "change"
                                                     else values.get(name), "fail", message)]))
    if per_label:
        data.per_label = per_label_metrics(per_label, data.class_names)
    for name in values:
        top_k = re.fullmatch(r"top_(\d+)_accuracy", name)
        if top_k and data.class_names and int(top_k.group(1)) >= len(data.class_names):
            data.notes.append(f"{metric_label(name)} is 1.0 by construction: the model has only "
                              f"{len(data.class_names)} classes (lower eval.top_k)")
    if data.task == "multilabel":
        if not per_label:
            data.notes.append("per-label metrics: none in the evaluation")
    else:
        _collect_confusion(tfma, evaluation.uri, baseline_name, data)


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
    import tensorflow_model_analysis as tfma

    found: dict[tuple[str, str], str] = {}
    try:
        result = tfma.load_validation_result(uri)
    except Exception:  # noqa: BLE001 - older artifacts may lack validations
        return found
    for per_slice in result.metric_validations_per_slice:
        keys = per_slice.slice_key.single_slice_keys
        where = "" if not keys else "slice " + ", ".join(f"{k.column}={_slice_value(k)}" for k in keys) + ": "
        for failure in per_slice.failures:
            kind = "change" if failure.metric_key.is_diff else "value"
            text = where + (failure.message or _failure_text(failure))
            key = (failure.metric_key.name, kind)
            found[key] = f"{found[key]}; {text}" if key in found else text
    return found


def _slice_value(key: Any) -> str:
    kind = key.WhichOneof("kind")
    value = getattr(key, kind) if kind else ""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _failure_text(failure: Any) -> str:
    """Why TFMA failed a metric, in words (its ValidationFailure usually has no message)."""
    value = failure.metric_value.double_value.value if failure.metric_value.HasField("double_value") else None
    threshold = failure.metric_threshold
    shown = "n/a" if value is None else f"{value:.4f}"
    if threshold.HasField("value_threshold"):
        bounds = threshold.value_threshold
        if value is not None and bounds.HasField("lower_bound") and value < bounds.lower_bound.value:
            return f"{shown} is below the lower bound {bounds.lower_bound.value:.4f}"
        if value is not None and bounds.HasField("upper_bound") and value > bounds.upper_bound.value:
            return f"{shown} is above the upper bound {bounds.upper_bound.value:.4f}"
        return f"{shown} is outside {value_threshold_text(bounds)}"
    if threshold.HasField("change_threshold"):
        return f"changed by {'n/a' if value is None else f'{value:+.4f}'} vs the baseline; needs " \
               f"{change_threshold_text(threshold.change_threshold)}"
    return f"{shown} fails {str(threshold).strip() or 'its threshold'}"


def _collect_confusion(tfma: Any, uri: str, baseline_name: str, data: ReportData) -> None:
    entries: dict[tuple[int, int], float] = {}
    for plots in tfma.load_plots(uri):
        if plots.slice_key.single_slice_keys:
            continue
        for item in plots.plot_keys_and_values:
            if item.key.model_name == baseline_name and item.key.model_name:
                continue
            matrices = item.value.multi_class_confusion_matrix_at_thresholds.matrices
            if not matrices:
                continue
            matrix = min(matrices, key=lambda m: abs(m.threshold))
            for entry in matrix.entries:
                pair = (entry.actual_class_id, entry.predicted_class_id)
                entries[pair] = entries.get(pair, 0.0) + entry.num_weighted_examples
    if not entries:
        data.notes.append("confusion matrix: no MultiClassConfusionMatrixPlot in the evaluation")
        return
    n = max(max(a, p) for a, p in entries) + 1
    n = max(n, len(data.class_names))
    matrix = np.zeros((n, n))
    unpredicted = np.zeros(n)
    for (actual, predicted), count in entries.items():
        if actual < 0:
            continue
        if predicted < 0:
            unpredicted[actual] += count
        else:
            matrix[actual, predicted] += count
    data.confusion = matrix.tolist()
    data.unpredicted = unpredicted.tolist() if unpredicted.any() else None
    data.class_names = _class_names(data.class_names, n)


def _collect_push(facts: _RunFacts, data: ReportData) -> None:
    pushed = facts.output(PUSHER, "pushed_model") or facts.by_type("PushedModel")
    data.pushed = bool(_bool_prop(pushed, "pushed"))
    if data.pushed:
        data.pushed_version = _str_prop(pushed, "pushed_version")
        data.pushed_destination = _str_prop(pushed, "pushed_destination")


def _collect_samples(facts: _RunFacts, data: ReportData, max_samples: int, max_scan: int) -> None:
    if max_samples <= 0:
        return
    model = facts.output(TRAINER, "model") or facts.by_type("Model")
    examples = facts.output(EXAMPLE_GEN, "examples") or facts.by_type("Examples")
    if model is None or examples is None:
        return
    evaluator = facts.node(EVALUATOR)
    splits = evaluator.prop("example_splits") if evaluator else None
    split = splits[0] if isinstance(splits, list) and splits else "eval"
    files = sorted(glob.glob(os.path.join(examples.uri, f"Split-{split}", "*")))
    if not files:
        data.notes.append(f"sample predictions: no files in split {split!r} of {examples.uri}")
        return
    image_key = _label_feature(facts, "image_feature", "image")
    label_key = _label_feature(facts)
    records = list(_read_examples(files, image_key, label_key, max_scan))
    if not records:
        return
    if data.task == "multilabel":  # label sets, compared as sorted "a, b" texts
        records = [(image, label or NO_LABELS, path) for image, label, path in records]
    model_dir = os.path.join(model.uri, "Format-Serving")
    predictions = predict_images(model_dir, [r[0] for r in records])
    data.sample_model_uri = model_dir
    data.samples_scanned = len(records)
    scored = [(r, p) for r, p in zip(records, predictions)]
    wrong = sorted((x for x in scored if x[1][0] != x[0][1]), key=lambda x: -x[1][1])
    data.samples_misclassified = len(wrong)
    right = _round_robin(sorted((x for x in scored if x[1][0] == x[0][1]), key=lambda x: _natural_key(x[0][1])),
                         key=lambda x: x[0][1])
    for (image, label, path), (predicted, confidence) in (wrong + right)[:max_samples]:
        try:
            png = thumbnail_png(image)
        except Exception:  # noqa: BLE001 - an image PIL cannot open (TF decoded it) just has no picture
            continue
        data.samples.append(Sample(png, label, predicted, confidence, path))


def _round_robin(items: list[Any], key: Any) -> list[Any]:
    """Interleave items by key (one per class in turn) so correct samples show many classes."""
    groups: dict[Any, list[Any]] = {}
    for item in items:
        groups.setdefault(key(item), []).append(item)
    ordered: list[Any] = []
    queues = list(groups.values())
    while queues:
        ordered.extend(q.pop(0) for q in queues)
        queues = [q for q in queues if q]
    return ordered


def _read_examples(files: Sequence[str], image_key: str, label_key: str, limit: int) -> Iterable[tuple[bytes, str,
                                                                                                        str]]:
    import tensorflow as tf

    compression = "GZIP" if files[0].endswith(".gz") else ""
    dataset = tf.data.TFRecordDataset(list(files), compression_type=compression).take(limit)
    for serialized in dataset.as_numpy_iterator():
        example = tf.train.Example.FromString(serialized)
        features = example.features.feature
        if image_key not in features or not features[image_key].bytes_list.value:
            continue
        label_feature = features.get(label_key)
        label = ""
        if label_feature is not None and label_feature.bytes_list.value:
            label = label_set_text(v.decode("utf-8", "replace") for v in label_feature.bytes_list.value)
        elif label_feature is not None and label_feature.int64_list.value:
            label = label_set_text(str(v) for v in label_feature.int64_list.value)
        path_feature = features.get("path")
        path = path_feature.bytes_list.value[0].decode("utf-8", "replace") \
            if path_feature is not None and path_feature.bytes_list.value else ""
        yield features[image_key].bytes_list.value[0], label, path


NO_LABELS = "(none)"  # a multilabel example with no label, or a prediction of none


def label_set_text(labels: Iterable[str]) -> str:
    """One label as it is; several (multilabel) as "a, b" in natural order."""
    return ", ".join(sorted(set(labels), key=_natural_key))


def predict_images(model_dir: str, images: Sequence[bytes], batch_size: int = 64) -> list[tuple[str, float]]:
    """(predicted class, confidence) for encoded images, from the SavedModel's `serving_default` signature.

    Multilabel models (with a `predicted_labels` output) give the predicted label set as "a, b" ("(none)" when no
    label reaches the threshold) and the highest label probability as the confidence.
    """
    import tensorflow as tf

    serve = tf.saved_model.load(model_dir).signatures["serving_default"]
    results: list[tuple[str, float]] = []
    for start in range(0, len(images), batch_size):
        outputs = serve(images=tf.constant(list(images[start:start + batch_size]), dtype=tf.string))
        confidence = outputs["confidence"].numpy()
        if "predicted_labels" in outputs:
            flags, names = outputs["predicted_labels"].numpy(), outputs["classes"].numpy()
            predicted = [label_set_text(n.decode("utf-8", "replace") for n, f in zip(row_names, row) if f)
                         or NO_LABELS for row, row_names in zip(flags, names)]
        else:
            predicted = [c.decode("utf-8", "replace") for c in outputs["predicted_class"].numpy()]
        results.extend((c, float(p)) for c, p in zip(predicted, confidence))
    return results


# ----- run listing --------------------------------------------------------------------------------------------
def list_runs(metadata_path: str) -> list[RunRow]:
    """Every pipeline run in ML Metadata, newest first, with accuracy, kappa, blessing and pushed version."""
    store = _store(metadata_path)
    rows = []
    for run in reversed(_runs(store)):
        facts = _RunFacts.read(store, run)
        states = {n.state for n in facts.nodes.values()}
        state = next((s for s in ("FAILED", "RUNNING", "NEW", "CANCELED") if s in states), None)
        if state is None:
            producing = {n.state for n in facts.nodes.values() if "resolver" not in n.node_id}
            state = "CACHED" if producing == {"CACHED"} else "COMPLETE"
        evaluation = facts.output(EVALUATOR, "evaluation") or facts.by_type("ModelEvaluation")
        metrics = _overall_metrics(evaluation.uri) if evaluation is not None else {}
        pushed = facts.output(PUSHER, "pushed_model") or facts.by_type("PushedModel")
        blessing = facts.output(EVALUATOR, "blessing") or facts.by_type("ModelBlessing")
        rows.append(RunRow(
            run_id=run.name,
            time=_time(run.create_time_since_epoch),
            state=state,
            accuracy=metrics.get(ACCURACY, metrics.get(mn.SUBSET_ACCURACY)),
            kappa=next((v for k, v in sorted(metrics.items()) if catalogue.is_kappa(k)), None),
            blessed=_bool_prop(blessing, "blessed"),
            pushed_version=_str_prop(pushed, "pushed_version") or None if _bool_prop(pushed, "pushed") else None,
        ))
    return rows


def _overall_metrics(uri: str) -> dict[str, float]:
    import tensorflow_model_analysis as tfma

    values: dict[str, float] = {}
    try:
        for slice_metrics in tfma.load_metrics(uri):
            if slice_metrics.slice_key.single_slice_keys:
                continue
            for item in slice_metrics.metric_keys_and_values:
                if item.key.is_diff or item.key.model_name == "baseline" or not item.value.HasField("double_value"):
                    continue
                if item.key.name.startswith(mn.PER_LABEL_PREFIX):
                    continue
                values[item.key.name] = float(item.value.double_value.value)
    except Exception:  # noqa: BLE001 - a run whose evaluation cannot be read still gets listed
        return {}
    return values


def format_runs(rows: Sequence[RunRow]) -> str:
    """A plain aligned table of runs (newest first as given)."""
    header = ("RUN", "TIME", "STATE", "ACCURACY", "KAPPA", "BLESSED", "PUSHED")
    table = [header] + [(
        r.run_id, r.time, r.state, _fmt(r.accuracy), _fmt(r.kappa),
        "—" if r.blessed is None else ("yes" if r.blessed else "NO"), r.pushed_version or "—",
    ) for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    numeric = {3, 4}
    lines = ["  ".join(cell.rjust(widths[i]) if i in numeric else cell.ljust(widths[i])
                       for i, cell in enumerate(row)).rstrip() for row in table]
    if not rows:
        lines.append("(no runs recorded)")
    return "\n".join(lines)


def runs_json(rows: Sequence[RunRow]) -> str:
    """Rows as JSON (NaN as null)."""
    def clean(value: Any) -> Any:
        return None if isinstance(value, float) and math.isnan(value) else value

    return json.dumps([{k: clean(v) for k, v in dataclasses.asdict(r).items()} for r in rows], indent=2)


# ----- template -----------------------------------------------------------------------------------------------
_HTML_TEMPLATE = r"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Model report: {{ d.pipeline_name or "visionline" }} run {{ d.run_id }}</title>
<style>
  body { font: 14px/1.45 -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: #1d2330;
         margin: 0; background: #f4f6f9; }
  main { max-width: 1100px; margin: 0 auto; padding: 16px 24px 48px; }
  header { background: #1d2b45; color: #fff; padding: 18px 24px; }
  header h1 { margin: 0 0 4px; font-size: 22px; }
  header .meta { color: #c5cee0; font-size: 13px; }
  nav { font-size: 13px; margin: 12px 0; }
  nav a { margin-right: 10px; color: #2457a6; text-decoration: none; }
  section { background: #fff; border: 1px solid #dde2ea; border-radius: 6px; padding: 6px 20px 16px;
            margin: 16px 0; }
  h2 { font-size: 18px; border-bottom: 1px solid #e4e8ef; padding-bottom: 4px; }
  table { border-collapse: collapse; margin: 8px 0; font-size: 13px; }
  th, td { border-bottom: 1px solid #e4e8ef; padding: 4px 10px; text-align: left; vertical-align: top; }
  th { background: #f0f3f8; }
  td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
  tr.avg td { font-weight: 600; background: #f7f9fc; }
  .pass { color: #17703a; font-weight: 600; }
  .fail { color: #b3261e; font-weight: 600; }
  .na { color: #7a8394; }
  .banner { padding: 12px 16px; border-radius: 6px; font-size: 16px; font-weight: 600; margin: 12px 0; }
  .banner.ok { background: #e3f4e8; border: 1px solid #9fd3b0; color: #17703a; }
  .banner.bad { background: #fdecea; border: 1px solid #f0aaa4; color: #8c1d18; }
  .banner.unknown { background: #fff5dc; border: 1px solid #f0d48a; color: #6b4e00; }
  .note { color: #5b6475; font-size: 13px; }
  .notes li { color: #8a5a00; }
  code, .path { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 12px; word-break: break-all; }
  img.chart { max-width: 100%; height: auto; display: block; margin: 8px 0; }
  .grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(132px, 1fr)); gap: 10px; }
  figure.sample { margin: 0; padding: 6px; border: 2px solid #9fd3b0; border-radius: 6px; background: #fafbfc;
                  text-align: center; font-size: 12px; }
  figure.sample.wrong { border-color: #e06c64; background: #fff6f5; }
  figure.sample img { width: 112px; height: 112px; object-fit: contain; image-rendering: pixelated; }
  figcaption { word-break: break-word; }
  .kv { display: grid; grid-template-columns: repeat(3, max-content minmax(90px, 1fr)); gap: 0;
        font-size: 13px; margin: 6px 0 12px; }
  .kv span { padding: 3px 10px; border-bottom: 1px solid #e4e8ef; word-break: break-all; }
  .kv .k { font-weight: 600; background: #f0f3f8; }
  .kappa-scale span { display: inline-block; padding: 3px 8px; margin: 2px; border-radius: 4px; background: #eef1f6;
                      font-size: 12px; }
  .kappa-scale span.here { background: #2457a6; color: #fff; font-weight: 600; }
</style>
</head>
<body>
<header>
  <h1>Model report{% if d.pipeline_name %}: {{ d.pipeline_name }}{% endif %}</h1>
  <div class="meta">run <code>{{ d.run_id }}</code>{% if d.created %} · started {{ d.created }}{% endif %}
    · generated {{ generated }}</div>
</header>
<main>
<nav>{% for id, title in sections %}<a href="#{{ id }}">{{ title }}</a>{% endfor %}</nav>

<section id="verdict">
<h2>Verdict</h2>
{% if d.blessed is none %}
<div class="banner unknown">Not evaluated{% if d.evaluation_note %}: {{ d.evaluation_note }}{% endif %}</div>
{% elif d.blessed %}
<div class="banner ok">Blessed{% if d.pushed %} and pushed as version {{ d.pushed_version or "?" }}{% else %},
  not pushed{% endif %}</div>
{% else %}
<div class="banner bad">NOT blessed: the candidate failed {{ d.failed_gates|length }}
  gate{{ "" if d.failed_gates|length == 1 else "s" }}; nothing was pushed</div>
{% endif %}
{% if d.failed_gates %}
<table>
<tr><th>failed gate</th><th>kind</th><th class="num">value</th><th>threshold</th><th>why</th></tr>
{% for g in d.failed_gates %}
<tr><td>{{ g.label }}</td><td>{{ g.kind }}</td><td class="num">{{ g.value|fmt }}</td><td>{{ g.threshold }}</td>
  <td>{{ g.message }}</td></tr>
{% endfor %}
</table>
{% endif %}
{% if d.pushed %}<p>Pushed to <span class="path">{{ d.pushed_destination }}</span></p>{% endif %}
{% if d.fully_cached %}
<p class="note">Every component of this run was <b>cached</b>: it reused the artifacts (data, model, evaluation) of
  an earlier run; the numbers below are theirs.</p>
{% endif %}
{% if d.notes %}
<ul class="notes">{% for note in d.notes %}<li>{{ note }}</li>{% endfor %}</ul>
{% endif %}
</section>

<section id="metrics">
<h2>Headline metrics and gates</h2>
{% if d.metrics %}
<table>
<tr><th>metric</th><th class="num">candidate</th><th class="num">baseline</th><th class="num">change</th>
  <th>gate</th><th>result</th></tr>
{% for m in d.metrics %}
{% set gates = m.gates or [none] %}
{% for g in gates %}
<tr>
  {% if loop.first %}
  <td rowspan="{{ gates|length }}">{{ m.label }}</td>
  <td class="num" rowspan="{{ gates|length }}">{{ m.value|mfmt(m.name) }}</td>
  <td class="num" rowspan="{{ gates|length }}">{{ m.baseline|mfmt(m.name) }}</td>
  <td class="num" rowspan="{{ gates|length }}">{{ m.diff|signed(m.name) }}</td>
  {% endif %}
  {% if g %}
  <td>{{ g.threshold }}</td>
  <td class="{{ 'pass' if g.status == 'pass' else ('fail' if g.status == 'fail' else 'na') }}">{{ g.status }}
    {%- if g.message %}<br><span class="note">{{ g.message }}</span>{% endif %}</td>
  {% else %}
  <td class="na">not gated</td><td class="na">—</td>
  {% endif %}
</tr>
{% endfor %}
{% endfor %}
</table>
<p class="note">{% if d.has_baseline %}Baseline: the latest blessed model,
  <span class="path">{{ d.baseline_model_uri }}</span>.{% else %}No baseline model yet: change-vs-baseline gates are
  not applied to the first blessed model.{% endif %}</p>
{% if d.other_metrics %}
<p class="note">Other metrics: {% for k, v in d.other_metrics.items() %}{{ k }} {{ v|fmt }}{% if not loop.last %},
  {% endif %}{% endfor %}</p>
{% endif %}
{% else %}
<p class="na">No evaluation available{% if d.evaluation_note %}: {{ d.evaluation_note }}{% endif %}.</p>
{% endif %}
</section>

<section id="kappa">
<h2>{{ titles["kappa"] }}</h2>
{% if d.task == "multilabel" %}
<p class="na">Not computed for a multilabel model: an example carries several labels, so there is no single
  class per example to agree on. Micro/macro F1, subset accuracy and Hamming loss are in the tables above and
  below.</p>
{% elif d.kappa is not none %}
<p>{{ d.kappa_label }}: κ = <b>{{ d.kappa|fmt }}</b>: <b>{{ reading }}</b> agreement beyond chance
  (Landis &amp; Koch).</p>
<div class="kappa-scale">
{% for band, name in [("< 0", "poor"), ("0–0.20", "slight"), ("0.21–0.40", "fair"), ("0.41–0.60", "moderate"),
                      ("0.61–0.80", "substantial"), ("0.81–1.00", "almost perfect")] %}
<span class="{{ 'here' if name == reading else '' }}">{{ band }} {{ name }}</span>
{% endfor %}
</div>
{% else %}
<p class="na">Kappa was not evaluated.</p>
{% endif %}
</section>

<section id="per-class">
<h2>{{ titles["per-class"] }}</h2>
{% if d.task == "binary" %}
<p>Positive class: <b id="positive-class">{{ d.positive_class or "vocabulary index 1" }}</b> (label vocabulary
  index 1; the model outputs [1 − p, p]); decision threshold {{ mn.BINARY_THRESHOLD }}. Precision, recall and F1 in
  the headline table are those of the positive class; both classes are below.</p>
{% endif %}
{% if d.task == "multilabel" %}
{% if d.per_label %}
<p class="note">{{ d.per_label|length }} labels, each predicted present at probability ≥ {{ mn.MULTILABEL_THRESHOLD }};
  sorted by F1, worst first. Support: eval examples carrying the label.</p>
<table id="per-label-table">
<tr><th>label</th><th class="num">precision</th><th class="num">recall</th><th class="num">F1</th>
  <th class="num">support</th><th class="num">TP</th><th class="num">FP</th><th class="num">FN</th>
  <th class="num">TN</th></tr>
{% for r in d.per_label %}
<tr class="label-row"><td>{{ r.name }}</td>
  {% for v in [r.precision, r.recall, r.f1] %}<td class="num" data-value="{{ v }}">{{ v|fmt(3) }}</td>{% endfor %}
  {% for v in [r.support, r.tp, r.fp, r.fn, r.tn] %}<td class="num" data-value="{{ v }}">{{ v|count }}</td>
  {% endfor %}</tr>
{% endfor %}
{% for name, key in [("micro avg", "micro"), ("macro avg", "macro")] %}
<tr class="avg"><td>{{ name }}</td>
  {% for stat in ["precision", "recall", "f1"] %}{% set v = d.value(stat ~ "_" ~ key) %}
  <td class="num" data-value="{{ v }}">{{ v|fmt(3) }}</td>{% endfor %}
  <td class="num" colspan="5"></td></tr>
{% endfor %}
</table>
<p class="note" id="multilabel-scores">Subset accuracy (exact match of the whole label set)
  {{ d.value(mn.SUBSET_ACCURACY)|fmt }}; Hamming loss (fraction of wrong label decisions, lower is better)
  {{ d.value(mn.HAMMING_LOSS)|fmt }}; micro F1 {{ d.value(mn.F1_MICRO)|fmt }}; macro F1
  {{ d.value(mn.F1_MACRO)|fmt }}.</p>
{% else %}
<p class="na">No per-label metrics in the evaluation.</p>
{% endif %}
{% elif per_class %}
<p class="note">From TFMA's multi-class confusion matrix on the eval split; sorted by F1, worst first.</p>
<table id="per-class-table">
<tr><th>class</th><th class="num">precision</th><th class="num">recall</th><th class="num">F1</th>
  <th class="num">support</th></tr>
{% for r in per_class.rows %}
<tr class="class-row"><td>{{ r.name }}</td>
  <td class="num" data-value="{{ r.precision }}">{{ "%.3f"|format(r.precision) }}</td>
  <td class="num" data-value="{{ r.recall }}">{{ "%.3f"|format(r.recall) }}</td>
  <td class="num" data-value="{{ r.f1 }}">{{ "%.3f"|format(r.f1) }}</td>
  <td class="num" data-value="{{ r.support }}">{{ "%.0f"|format(r.support) }}</td></tr>
{% endfor %}
{% for r in [per_class.macro, per_class.weighted] %}
<tr class="avg"><td>{{ r.name }}</td>
  <td class="num" data-value="{{ r.precision }}">{{ "%.3f"|format(r.precision) }}</td>
  <td class="num" data-value="{{ r.recall }}">{{ "%.3f"|format(r.recall) }}</td>
  <td class="num" data-value="{{ r.f1 }}">{{ "%.3f"|format(r.f1) }}</td>
  <td class="num" data-value="{{ r.support }}">{{ "%.0f"|format(r.support) }}</td></tr>
{% endfor %}
</table>
<p class="note">Accuracy {{ "%.4f"|format(per_class.accuracy) }} over {{ "%.0f"|format(per_class.macro.support) }}
  examples.{% if per_class.absent %} Not in the eval split and never predicted (left out of the averages):
  {{ per_class.absent|join(", ") }}.{% endif %}</p>
{% else %}
<p class="na">No confusion matrix in the evaluation.</p>
{% endif %}
</section>

<section id="confusion">
<h2>{{ titles["confusion"] }}</h2>
{% if d.task == "multilabel" %}
<p class="note">A class-by-class confusion matrix does not apply to a multilabel model: labels are not mutually
  exclusive, so each label has its own 2×2 matrix — its TP, FP, FN and TN are in the per-label table.</p>
{% endif %}
{% if d.task == "binary" and d.binary_confusion %}
{% set b = d.binary_confusion %}
{% set negative = d.class_names[0] if d.class_names else "negative" %}
<table id="binary-confusion">
<tr><th>at threshold {{ b.threshold }}</th><th class="num">predicted {{ negative }}</th>
  <th class="num">predicted {{ d.positive_class or "positive" }} (positive)</th></tr>
<tr><th>actual {{ negative }}</th><td class="num" data-value="{{ b.tn }}">TN {{ b.tn|count }}</td>
  <td class="num" data-value="{{ b.fp }}">FP {{ b.fp|count }}</td></tr>
<tr><th>actual {{ d.positive_class or "positive" }}</th><td class="num" data-value="{{ b.fn }}">FN {{ b.fn|count }}</td>
  <td class="num" data-value="{{ b.tp }}">TP {{ b.tp|count }}</td></tr>
</table>
{% endif %}
{% if charts.get("confusion") %}
<img class="chart" alt="{{ titles['confusion'] }}" src="{{ charts.get("confusion") }}">
{% if d.unpredicted %}<p class="note">Examples with no prediction per actual class:
  {{ d.unpredicted|join(", ") }}</p>{% endif %}
{% elif not d.binary_confusion %}<p class="na">Not available.</p>{% endif %}
</section>

<section id="training">
<h2>Training curves</h2>
{% if charts.get("training") %}
<img class="chart" alt="training and validation loss and accuracy per epoch" src="{{ charts.get("training") }}">
<p class="note">{{ d.history.values()|map("length")|max }} epochs{% if d.best_epoch %}; weights of epoch
  {{ d.best_epoch }} (lowest validation loss) were kept{% endif %}{% if d.phases|length > 1 %}; phases:
  {% for name, epochs in d.phases %}{{ name }} ({{ epochs }}){% if not loop.last %}, {% endif %}{% endfor %}
  {%- endif %}.</p>
{% else %}<p class="na">No training history.</p>{% endif %}
</section>

<section id="distribution">
<h2>{{ titles["distribution"] }}</h2>
{% if charts.get("distribution") %}
<img class="chart" alt="examples per class and split" src="{{ charts.get("distribution") }}">
{% if d.task == "multilabel" %}<p class="note">Label occurrences: an image with two labels counts for both.</p>
{% endif %}
<table>
<tr><th>{{ "label" if d.task == "multilabel" else "class" }}</th>
  {% for split in splits %}<th class="num">{{ split }}</th>{% endfor %}</tr>
{% for label in distribution_labels %}
<tr><td>{{ label }}</td>{% for split in splits %}{% set counts = d.class_distribution[split] %}
  <td class="num">{{ "%.0f"|format(counts.get(label, 0)) }}
    <span class="note">({{ (counts.get(label, 0) / (split_totals[split] or 1))|pct }})</span></td>{% endfor %}</tr>
{% endfor %}
<tr class="avg"><td>total</td>{% for split in splits %}
  <td class="num">{{ "%.0f"|format(split_totals[split]) }}</td>{% endfor %}</tr>
</table>
{% else %}<p class="na">No label statistics.</p>{% endif %}
</section>

<section id="samples">
<h2>Sample predictions</h2>
{% if d.samples %}
<p class="note">{{ d.samples_misclassified }} of {{ d.samples_scanned }} eval images misclassified by the candidate
  model (<span class="path">{{ d.sample_model_uri }}</span>, <code>serving_default</code>); misclassified first.</p>
<div class="grid">
{% for s in wrong_first %}
<figure class="sample {{ 'right' if s.correct else 'wrong' }}">
  <img alt="{{ s.path or s.true_label }}" src="{{ s.image_png|data_uri }}">
  <figcaption>predicted <b>{{ s.predicted_label }}</b> ({{ s.confidence|pct }})<br>true {{ s.true_label }}
  {% if s.path %}<br><span class="note">{{ s.path }}</span>{% endif %}</figcaption>
</figure>
{% endfor %}
</div>
{% else %}<p class="na">No samples.</p>{% endif %}
</section>

<section id="ingestion">
<h2>Ingestion</h2>
{% if d.ingest %}
<table>
<tr><th>files seen</th><td class="num">{{ d.ingest.get("files_seen", "—") }}</td></tr>
<tr><th>ingested</th><td class="num">{{ d.ingest.get("ingested", "—") }}</td></tr>
<tr><th>quarantined</th><td class="num">{{ d.ingest.get("quarantined", "—") }}</td></tr>
{% if d.ingest.get("leakage") %}
<tr><th>eval images duplicating a training image (leakage)</th>
  <td class="num">{{ d.ingest["leakage"].get("eval_files_duplicating_train", "—") }}
  ({{ d.ingest["leakage"].get("removed", 0) }} removed from eval,
  data.leakage={{ d.ingest["leakage"].get("mode", "") }})</td></tr>
{% endif %}
{% if d.ingest.get("accounting_ok") is not none %}
<tr><th>files seen = ingested + quarantined, per split and class</th>
  <td class="{{ 'pass' if d.ingest['accounting_ok'] else 'fail' }}">
    {{- "yes" if d.ingest["accounting_ok"] else "NO" -}}</td></tr>
{% endif %}
</table>
{% if d.ingest.get("warnings") %}
<p><b>Ingestion warnings</b></p>
<ul class="warnings">
{% for warning in d.ingest["warnings"] %}<li>{{ warning }}</li>
{% endfor %}</ul>
{% endif %}
{% if d.ingest.get("leakage", {}).get("eval_files_duplicating_train") %}
<p>Leakage report: <a href="{{ d.ingest['leakage']['report']|file_uri }}" class="path">
  {{ d.ingest["leakage"]["report"] }}</a></p>
{% endif %}
{% if d.ingest.get("quarantined_by_reason") %}
<table><tr><th>reason</th><th class="num">files</th></tr>
{% for reason, count in d.ingest["quarantined_by_reason"].items() %}
<tr><td>{{ reason }}</td><td class="num">{{ count }}</td></tr>
{% endfor %}</table>
{% endif %}
{% if d.ingest.get("quarantine_report") %}
<p>Quarantine report: <a href="{{ d.ingest['quarantine_report']|file_uri }}" class="path">
  {{ d.ingest["quarantine_report"] }}</a></p>
{% endif %}
{% if d.quarantine_rows %}
<table><tr><th>path</th><th>label</th><th>split</th><th>reason</th></tr>
{% for row in d.quarantine_rows %}
<tr><td class="path">{{ row.get("path", "") }}</td><td>{{ row.get("label", "") }}</td>
  <td>{{ row.get("split", "") }}</td><td>{{ row.get("reason", "") }}</td></tr>
{% endfor %}</table>
{% endif %}
{% else %}<p class="na">No ingestion summary.</p>{% endif %}
</section>

<section id="anomalies">
<h2>Data anomalies</h2>
{% if d.data_gate %}
<ul class="data-gate">{% for line in d.data_gate %}<li>{{ line }}</li>{% endfor %}</ul>
{% endif %}
{% if d.anomalies %}
<table><tr><th>split</th><th>feature</th><th>severity</th><th>anomaly</th></tr>
{% for split, found in d.anomalies.items() %}
{% for a in found %}
<tr><td>{{ split }}</td><td>{{ a.feature }}</td><td>{{ a.severity }}</td>
  <td><b>{{ a.short_description }}</b><br>{{ a.description }}</td></tr>
{% else %}
<tr><td>{{ split }}</td><td colspan="3" class="pass">no anomalies</td></tr>
{% endfor %}
{% endfor %}
</table>
{% else %}<p class="na">ExampleValidator output not available.</p>{% endif %}
</section>

<section id="hyperparameters">
<h2>Hyper-parameters</h2>
{% if d.effective_hyperparameters %}
<p class="note">Used by the Trainer (after tuning, from its history.json):</p>
<div class="kv">{% for k, v in d.effective_hyperparameters.items() %}<span class="k">{{ k }}</span>
  <span class="v">{{ v|plain }}</span>{% endfor %}</div>
{% endif %}
{% if d.hyperparameters %}
<p class="note">Trainer <code>custom_config</code>:</p>
<div class="kv">{% for k, v in d.hyperparameters.items() %}<span class="k">{{ k }}</span>
  <span class="v">{{ v|plain }}</span>{% endfor %}</div>
{% else %}<p class="na">Trainer configuration not available.</p>{% endif %}
</section>

<section id="lineage">
<h2>Lineage</h2>
<table><tr><th>component</th><th>state</th><th class="num">seconds</th></tr>
{% for c in d.components %}
<tr><td>{{ c.node_id }}</td><td>{{ c.state }}</td><td class="num">{{ "%.1f"|format(c.seconds) }}</td></tr>
{% endfor %}
</table>
<table><tr><th>component</th><th>output</th><th>type</th><th class="num">id</th><th>URI</th></tr>
{% for a in d.lineage %}
<tr><td>{{ a.node_id }}</td><td>{{ a.key }}{% if a.reused %} <span class="na">(reused)</span>{% endif %}</td>
  <td>{{ a.type_name }}</td><td class="num">{{ a.artifact_id }}</td><td class="path">{{ a.uri }}</td></tr>
{% endfor %}
</table>
</section>
</main>
</body>
</html>
"""
