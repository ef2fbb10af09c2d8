"""What the model report shows, as plain Python data (`ReportData` and its parts), and the maths on it: per-class
metrics from a confusion matrix (as scikit-learn's `classification_report`), per-label rows of a multilabel model,
the Landis–Koch reading of Cohen's kappa, and the report's sections per task.

Nothing is read or drawn here: `collect` fills these classes from a run record, `render` turns them into text.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from components.evaluator import catalogue
from components.evaluator import metric_keys as mn
from pipeline.report.cost import CostRow
from pipeline.report.label_issues import LabelIssueReport
from pipeline.runs.data_health import Anomaly
from pipeline.runs.evaluation import BinaryConfusion
from pipeline.runs.record import ComponentRun

ACCURACY = mn.ACCURACY
KAPPA = mn.COHEN_KAPPA
EXAMPLE_COUNT = mn.EXAMPLE_COUNT
TASKS = catalogue.TASKS
NO_LABELS = "(none)"  # a multilabel example with no label, or a prediction of none
LABEL_SEPARATOR = ", "  # between the labels of a multilabel example's label-set text

# (id, heading) of every section of the HTML report, in order (multiclass headings; see `sections`).
SECTIONS = (
    ("verdict", "Verdict"),
    ("metrics", "Headline metrics and gates"),
    ("kappa", "Cohen's kappa"),
    ("per-class", "Per-class metrics"),
    ("confusion", "Confusion matrix"),
    ("errors", "Most-confused classes"),
    ("training", "Training curves"),
    ("cost", "Cost: size and latency of each model"),
    ("distribution", "Class distribution"),
    ("samples", "Sample predictions"),
    ("explanations", "Why: heatmaps"),
    ("label-issues", "Likely mislabelled training images"),
    ("ingestion", "Ingestion"),
    ("anomalies", "Data anomalies"),
    ("hyperparameters", "Hyper-parameters"),
    ("lineage", "Lineage"),
)
_TASK_HEADINGS = {
    "binary": {"confusion": "Confusion matrix at threshold 0.5", "errors": "Error kinds at threshold 0.5"},
    "multilabel": {"per-class": "Per-label metrics", "confusion": "Per-label confusion counts",
                   "distribution": "Label distribution", "errors": "Missed labels and false alarms"},
}
# Landis & Koch (1977): upper bound of each band → reading (kappa < 0 is "poor").
_LANDIS_KOCH = ((0.20, "slight"), (0.40, "fair"), (0.60, "moderate"), (0.80, "substantial"))


def sections(task: str = "multiclass") -> tuple[tuple[str, str], ...]:
    """(id, heading) of every section for a task: the same ids for every task, headings that fit it."""
    headings = _TASK_HEADINGS.get(task, {})
    return tuple((section_id, headings.get(section_id, title)) for section_id, title in SECTIONS)


def metric_label(name: str) -> str:
    """Display name of a metric (components.evaluator.catalogue's catalogue)."""
    return catalogue.metric_label(name)


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

    @property
    def config_name(self) -> str:
        """The metric as the config names it (`accuracy`, `kappa`, …)."""
        return catalogue.config_name(self.metric)


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
class Explanation(Sample):
    """One eval image with the Grad-CAM heatmap of what the model predicted (pipeline/report/explanations.py):
    `image_png` shows the image and the image with its heatmap, side by side."""

    explained: str = ""  # the class (multilabel: the predicted labels) the heatmap shows evidence for


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
    components: list[ComponentRun] = field(default_factory=list)
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
    recipe: list[str] = field(default_factory=list)  # how the model was trained: preset, device, phases, augmentation
    cost: list[CostRow] = field(default_factory=list)  # SavedModel and TFLite variants (pipeline/report/cost.py)
    cost_note: str = ""
    class_distribution: dict[str, dict[str, float]] = field(default_factory=dict)  # split -> label -> count
    samples: list[Sample] = field(default_factory=list)
    samples_scanned: int = 0
    samples_misclassified: int = 0
    # multilabel: (carried labels, predicted labels) of each scanned eval image (the sample scan's predictions)
    scanned_label_sets: list[tuple[tuple[str, ...], tuple[str, ...]]] = field(default_factory=list)
    sample_model_uri: str = ""
    explanations: list[Explanation] = field(default_factory=list)  # misclassified first, then one per class
    label_issues: LabelIssueReport | None = None  # likely mislabelled training images (pipeline.report.mislabelled)
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
    names = padded_class_names(class_names, n)
    missed = np.zeros(n) if unpredicted is None else np.asarray(unpredicted, dtype=np.float64)
    tp = np.diag(matrix)
    support = matrix.sum(axis=1) + missed
    predicted = matrix.sum(axis=0)
    present = (support > 0) | (predicted > 0)
    absent = sorted((names[i] for i in range(n) if not present[i]), key=natural_key)
    tp, support, predicted = tp[present], support[present], predicted[present]
    names = [names[i] for i in range(n) if present[i]]
    precision = _safe_divide(tp, predicted)
    recall = _safe_divide(tp, support)
    f1 = _safe_divide(2 * tp, support + predicted)
    rows = [ClassMetrics(name, float(precision[i]), float(recall[i]), float(f1[i]), float(support[i]))
            for i, name in enumerate(names)]
    rows.sort(key=lambda r: (r.f1, natural_key(r.name)))
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

    rows = [LabelMetrics(names[i], *(get(s, i) for s in mn.PER_LABEL_STATISTICS)) for i in ids]
    rows.sort(key=lambda r: (math.inf if math.isnan(r.f1) else r.f1, natural_key(r.name)))
    return rows


def _safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    out = np.zeros_like(numerator, dtype=np.float64)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def set_confusion(data: ReportData, entries: dict[tuple[int, int], float]) -> None:
    """Fill `data.confusion` (actual × predicted counts), `data.unpredicted` (per actual class, examples counted as
    "no prediction", None when there are none) and pad `data.class_names` from TFMA's confusion entries."""
    n = max([len(data.class_names)] + [max(a, p) + 1 for a, p in entries])
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
    data.class_names = padded_class_names(data.class_names, n)


def padded_class_names(names: Sequence[str], n: int) -> list[str]:
    """`names` padded to `n` entries ("class 7") for ids beyond the vocabulary."""
    return [str(names[i]) if i < len(names) else f"class {i}" for i in range(n)]


def natural_key(text: str) -> tuple[Any, ...]:
    """Sort key ordering digits numerically ("class 2" before "class 10")."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", text) if part)


def label_set_text(labels: Iterable[str]) -> str:
    """One label as it is; several (multilabel) as "a, b" in natural order."""
    return LABEL_SEPARATOR.join(sorted(set(labels), key=natural_key))


def label_order(distribution: dict[str, dict[str, float]], class_order: Sequence[str] = ()) -> list[str]:
    """Every label seen, the known classes first; both groups sorted by name (digits numerically)."""
    seen = {label for counts in distribution.values() for label in counts}
    known = sorted((c for c in set(class_order) if c in seen), key=natural_key)
    return known + sorted(seen - set(known), key=natural_key)


def split_order(distribution: dict[str, Any]) -> list[str]:
    """Split names in pipeline order (train, val/validation, eval, test), others after them by name."""
    preferred = ("train", "val", "validation", "eval", "test")
    return sorted(distribution, key=lambda s: (preferred.index(s) if s in preferred else len(preferred), s))
