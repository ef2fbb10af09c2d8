"""The report's error analysis of the eval split: which classes the model mixes up, from the counts the report
already collects (TFMA's confusion matrix; for binary models the counts at threshold 0.5; for multilabel models
each label's 2×2 counts).

* multiclass: the most-confused (actual → predicted) pairs, ranked by count and by share of the actual class's
  eval examples (a pair of a small class can be its biggest problem while its count stays low);
* binary: the two error kinds, false positives (share of the actual negatives) and false negatives (share of the
  actual positives);
* multilabel: per label, missed (share of the examples carrying it) and false alarms (share of those without it);
  and which labels are taken for each other — a carried label missed while another, not carried, is predicted on
  the same image — from the per-image predictions of the report's sample scan (the evaluation keeps none), so on
  the scanned eval images only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from pipeline.report.data import LabelMetrics, ReportData, natural_key, padded_class_names

MAX_PAIRS = 10


@dataclass(frozen=True)
class ConfusedPair:
    """Eval examples of class `actual` predicted as `predicted` (binary: one error kind)."""

    actual: str
    predicted: str
    count: float
    share: float  # of the actual class's eval examples
    kind: str = ""  # binary: "false positive" | "false negative"


@dataclass(frozen=True)
class LabelErrors:
    """A multilabel model's errors on one label."""

    label: str
    missed: float  # FN: carried, not predicted
    missed_share: float  # of the examples carrying the label
    false_alarms: float  # FP: predicted, not carried
    false_alarm_share: float  # of the examples without the label


@dataclass
class ErrorAnalysis:
    """What the report's error-analysis section shows for the task (empty lists when nothing is known)."""

    by_count: list[ConfusedPair] = field(default_factory=list)
    by_share: list[ConfusedPair] = field(default_factory=list)
    error_kinds: list[ConfusedPair] = field(default_factory=list)  # binary
    labels: list[LabelErrors] = field(default_factory=list)  # multilabel, most errors first
    label_swaps: list[ConfusedPair] = field(default_factory=list)  # multilabel: missed label → predicted instead
    swaps_scanned: int = 0  # the scanned images the swaps are counted on
    errors: float = 0.0  # misclassified eval examples (off-diagonal total)
    examples: float = 0.0


def confused_pairs(confusion: Sequence[Sequence[float]] | np.ndarray, class_names: Sequence[str],
                   unpredicted: Sequence[float] | None = None,
                   limit: int = MAX_PAIRS) -> tuple[list[ConfusedPair], list[ConfusedPair]]:
    """(by count, by share): the off-diagonal cells with a count > 0 of a confusion matrix (rows actual, columns
    predicted), at most `limit` each. By count: largest count first, then largest share; by share: largest share
    first, then largest count; ties by class names. The share's denominator is the actual class's eval examples,
    those with no prediction (`unpredicted`) included."""
    matrix = np.asarray(confusion, dtype=np.float64)
    n = matrix.shape[0]
    if matrix.shape != (n, n):
        raise ValueError(f"confusion matrix must be square, got shape {matrix.shape}")
    names = padded_class_names(class_names, n)
    support = matrix.sum(axis=1) + (np.zeros(n) if unpredicted is None else np.asarray(unpredicted, np.float64))
    pairs = [ConfusedPair(names[a], names[p], float(matrix[a, p]), float(matrix[a, p] / support[a]))
             for a in range(n) for p in range(n) if a != p and matrix[a, p] > 0]

    def names_key(pair: ConfusedPair) -> tuple:
        return natural_key(pair.actual), natural_key(pair.predicted)

    by_count = sorted(pairs, key=lambda x: (-x.count, -x.share, names_key(x)))[:limit]
    by_share = sorted(pairs, key=lambda x: (-x.share, -x.count, names_key(x)))[:limit]
    return by_count, by_share


def binary_error_kinds(tp: float, fp: float, fn: float, tn: float, negative: str,
                       positive: str) -> list[ConfusedPair]:
    """The two errors of a binary model: false positives (of the actual negatives), false negatives (of the actual
    positives); more frequent first."""
    kinds = [ConfusedPair(negative, positive, float(fp), _share(fp, fp + tn), "false positive"),
             ConfusedPair(positive, negative, float(fn), _share(fn, fn + tp), "false negative")]
    return sorted(kinds, key=lambda k: (-k.count, -k.share))


def label_errors(rows: Sequence[LabelMetrics]) -> list[LabelErrors]:
    """Per label: missed and false alarms with their shares, most errors (FN + FP) first, ties by name."""
    found = [LabelErrors(r.name, r.fn, _share(r.fn, r.tp + r.fn), r.fp, _share(r.fp, r.fp + r.tn)) for r in rows]
    return sorted(found, key=lambda e: (-(e.missed + e.false_alarms), natural_key(e.label)))


def label_swaps(label_sets: Sequence[tuple[Sequence[str], Sequence[str]]],
                limit: int = MAX_PAIRS) -> list[ConfusedPair]:
    """Multilabel (carried, predicted) label sets → the pairs (missed label, label predicted instead) that occur on
    the same image, most frequent first (then largest share, then names); the share is of the images carrying the
    missed label."""
    counts: dict[tuple[str, str], int] = {}
    carrying: dict[str, int] = {}
    for carried, predicted in label_sets:
        carried_set, predicted_set = set(carried), set(predicted)
        for label in carried_set:
            carrying[label] = carrying.get(label, 0) + 1
        for missed in carried_set - predicted_set:
            for instead in predicted_set - carried_set:
                counts[(missed, instead)] = counts.get((missed, instead), 0) + 1
    pairs = [ConfusedPair(missed, instead, float(n), _share(n, carrying[missed]))
             for (missed, instead), n in counts.items()]
    return sorted(pairs, key=lambda p: (-p.count, -p.share, natural_key(p.actual), natural_key(p.predicted)))[:limit]


def error_analysis(data: ReportData, limit: int = MAX_PAIRS) -> ErrorAnalysis:
    """The error analysis of `data`'s task from what `collect` read (see the module docstring)."""
    analysis = ErrorAnalysis()
    if data.task == "multilabel":
        analysis.labels = label_errors(data.per_label)
        analysis.label_swaps = label_swaps(data.scanned_label_sets, limit)
        analysis.swaps_scanned = len(data.scanned_label_sets)
        return analysis
    if data.task == "binary" and data.binary_confusion is not None:
        b = data.binary_confusion
        negative = data.class_names[0] if data.class_names else "negative"
        analysis.error_kinds = binary_error_kinds(b.tp, b.fp, b.fn, b.tn, negative, data.positive_class or "positive")
        analysis.errors, analysis.examples = b.fp + b.fn, b.tp + b.fp + b.fn + b.tn
        return analysis
    if data.confusion:
        matrix = np.asarray(data.confusion, dtype=np.float64)
        analysis.by_count, analysis.by_share = confused_pairs(matrix, data.class_names, data.unpredicted, limit)
        analysis.errors = float(matrix.sum() - np.trace(matrix))
        analysis.examples = float(matrix.sum())
    return analysis


def _share(part: float, whole: float) -> float:
    return float(part / whole) if whole else 0.0
