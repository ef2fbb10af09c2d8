"""Likely mislabelled examples by confident learning (Northcutt, Jiang & Chuang, "Confident Learning: Estimating
Uncertainty in Dataset Labels", JAIR 2021) — the method of cleanlab's `find_label_issues(filter_by=
"confident_learning")`, written plainly with numpy (no TensorFlow, no TFX, no cleanlab).

Input: each example's given label and out-of-sample predicted probabilities (from a model that did not train on
it). Per class j, the confidence threshold t_j is the mean predicted probability of j over the examples labelled
j. An example is *confidently* of class j when p_j ≥ t_j; its confident class is the most probable class among
those (none when no class reaches its threshold). The confident joint counts (given label, confident class); an
example is a label-issue candidate when it lands off the diagonal (its confident class is not its given label)
and the model's top class is not its given label either (cleanlab's final filter).

Candidates are ranked by a label-quality score, lowest first: the *self-confidence* p_given, or the *normalized
margin* (p_given − max_{k≠given} p_k + 1) / 2, both in [0, 1]. Multilabel data is checked label by label, each as
a two-class problem (absent / present) with probabilities [1 − p, p].
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

RANKINGS = ("self_confidence", "normalized_margin")
_TOLERANCE = 1e-6  # cleanlab's: p ≥ t − 1e-6 counts as reaching the threshold (float noise of the mean)


@dataclass(frozen=True)
class LabelIssueSettings:
    """How the report looks for likely mislabelled training images (pipeline.configs' `report.label_issues*`)."""

    enabled: bool = True
    max_images: int = 2000  # more training images than this: not computed (the report says so)
    folds: int = 5  # K of the K-fold cross-validation that gives the held-out probabilities
    ranking: str = RANKINGS[0]  # self_confidence | normalized_margin
    shown: int = 24  # thumbnails in the report; the CSV lists every candidate


@dataclass(frozen=True)
class Issue:
    """One label-issue candidate: the example's row, its given and suggested class ids and its score."""

    index: int  # row in the inputs
    given: int
    suggested: int  # the confident class
    score: float  # label quality (self-confidence or normalized margin): lower = more likely mislabelled
    self_confidence: float  # p of the given label
    suggested_probability: float  # p of the suggested label


@dataclass(frozen=True)
class LabelIssue:
    """A candidate as the report shows and the CSV lists it (names instead of ids, multilabel: one label)."""

    record: str  # the example's source path, or "train record N" when it has none
    given: str
    suggested: str
    score: float
    self_confidence: float
    suggested_probability: float
    label: str = ""  # multilabel: the label in question ("given" and "suggested" are then present / absent)
    image_png: bytes = b""  # thumbnail (empty when the image could not be drawn)


@dataclass
class LabelIssueReport:
    """What the report says about likely mislabelled training images: the candidates or why none were looked for."""

    split: str = "train"
    examples: int = 0  # examples the confident learning saw (embedded and scored)
    candidates: list[LabelIssue] = field(default_factory=list)  # ranked, most likely mislabelled first
    skipped: str = ""  # why it was not computed ("" when it was)
    unprocessed: list[tuple[str, str]] = field(default_factory=list)  # (record, reason) of images not embedded
    ranking: str = RANKINGS[0]
    folds: int = 0
    method: str = ""  # how the held-out probabilities were obtained, one line
    thresholds: dict[str, float] = field(default_factory=dict)  # class → confidence threshold t_j
    csv_path: str = ""  # label_issues.csv, once written beside the report


def confidence_thresholds(labels: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """t_j = mean p_j over the examples labelled j; +inf for a class no example carries (nothing reaches it)."""
    labels, probabilities = _checked(labels, probabilities)
    classes = probabilities.shape[1]
    counts = np.bincount(labels, minlength=classes).astype(np.float64)
    sums = np.zeros(classes)
    np.add.at(sums, labels, probabilities[np.arange(len(labels)), labels])
    thresholds = np.full(classes, np.inf)
    np.divide(sums, counts, out=thresholds, where=counts > 0)
    return thresholds


def confident_classes(probabilities: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Per example, the most probable class among those with p_j ≥ t_j; −1 where no class reaches its threshold."""
    confident = probabilities >= thresholds[None, :] - _TOLERANCE
    masked = np.where(confident, probabilities, -np.inf)
    guess = masked.argmax(axis=1) if masked.size else np.zeros(len(probabilities), dtype=np.int64)
    return np.where(confident.any(axis=1), guess, -1)


def confident_joint(labels: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """C[i, j]: examples labelled i whose confident class is j (examples with no confident class are not counted)."""
    labels, probabilities = _checked(labels, probabilities)
    classes = probabilities.shape[1]
    guess = confident_classes(probabilities, confidence_thresholds(labels, probabilities))
    joint = np.zeros((classes, classes), dtype=np.int64)
    counted = guess >= 0
    np.add.at(joint, (labels[counted], guess[counted]), 1)
    return joint


def quality_scores(labels: np.ndarray, probabilities: np.ndarray, ranking: str = RANKINGS[0]) -> np.ndarray:
    """Label quality of every example in [0, 1], lower = more likely mislabelled (see the module docstring)."""
    labels, probabilities = _checked(labels, probabilities)
    if ranking not in RANKINGS:
        raise ValueError(f"ranking must be one of {RANKINGS}; got {ranking!r}")
    rows = np.arange(len(labels))
    given = probabilities[rows, labels]
    if ranking == "self_confidence":
        return given
    others = probabilities.copy()
    others[rows, labels] = -np.inf
    best_other = others.max(axis=1) if probabilities.shape[1] > 1 else np.zeros(len(labels))
    return (given - best_other + 1.0) / 2.0


def find_label_issues(labels: Sequence[int] | np.ndarray, probabilities: np.ndarray,
                      ranking: str = RANKINGS[0]) -> list[Issue]:
    """Label-issue candidates of a single-label problem (multiclass, or binary as two classes), ranked by score,
    most likely mislabelled first (ties by row).

    `labels`: given class ids [N] in 0..C−1; `probabilities`: out-of-sample predicted probabilities [N, C].
    """
    labels, probabilities = _checked(labels, probabilities)
    thresholds = confidence_thresholds(labels, probabilities)
    guess = confident_classes(probabilities, thresholds)
    top = probabilities.argmax(axis=1) if probabilities.size else guess
    flagged = np.flatnonzero((guess >= 0) & (guess != labels) & (top != labels))
    scores = quality_scores(labels, probabilities, ranking)
    issues = [Issue(int(i), int(labels[i]), int(guess[i]), float(scores[i]), float(probabilities[i, labels[i]]),
                    float(probabilities[i, guess[i]])) for i in flagged]
    issues.sort(key=lambda issue: (issue.score, issue.index))
    return issues


def find_multilabel_issues(multi_hot: np.ndarray, probabilities: np.ndarray,
                           ranking: str = RANKINGS[0]) -> list[tuple[int, Issue]]:
    """(label id, issue) pairs of a multilabel problem, each label checked as absent (0) / present (1) with
    probabilities [1 − p, p]; an issue's `given` / `suggested` are 0 or 1. Ranked by score over all labels."""
    truth = np.asarray(multi_hot)
    scores = np.asarray(probabilities, dtype=np.float64)
    if truth.shape != scores.shape or truth.ndim != 2:
        raise ValueError(f"multi-hot labels {truth.shape} and probabilities {scores.shape} must both be [N, labels]")
    if not np.isin(truth, (0, 1)).all():
        raise ValueError("multi-hot labels must be 0 or 1")
    found: list[tuple[int, Issue]] = []
    for label in range(truth.shape[1]):
        p = np.clip(scores[:, label], 0.0, 1.0)
        found += [(label, issue) for issue in find_label_issues(truth[:, label].astype(np.int64),
                                                                np.stack([1.0 - p, p], axis=1), ranking)]
    found.sort(key=lambda pair: (pair[1].score, pair[1].index, pair[0]))
    return found


def _checked(labels: Sequence[int] | np.ndarray, probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels as int64 [N] within 0..C−1, probabilities as float64 [N, C] without NaN (ValueError otherwise)."""
    ids = np.asarray(labels)
    scores = np.asarray(probabilities, dtype=np.float64)
    if scores.ndim != 2 or ids.ndim != 1 or len(ids) != len(scores):
        raise ValueError(f"labels [N] and probabilities [N, C] expected; got {ids.shape} and {scores.shape}")
    if ids.size and (not np.issubdtype(ids.dtype, np.integer) or ids.min() < 0 or ids.max() >= scores.shape[1]):
        raise ValueError(f"labels must be class ids in 0..{scores.shape[1] - 1}")
    if np.isnan(scores).any():
        raise ValueError("probabilities contain NaN")
    return ids.astype(np.int64), scores
