"""What a client's prediction is and how it is reported: `Prediction`, the per-file `FileResult`, the two kinds of
failure, and their text (`visionline predict`), JSON (`--json`) and CSV (`predict-batch`) forms.

Failures are split in two: `PredictionError` means the server rejected *this input* (HTTP 400 /
INVALID_ARGUMENT) – the file is reported or quarantined; `ServiceError` means the service itself failed
(unreachable, unknown model, 5xx) – the command stops with an error rather than quarantining everything.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

PREDICTION_HEADER = ("path", "top1", "probability", "top_k", "labels")
QUARANTINE_HEADER = ("path", "stage", "reason")


class PredictionError(Exception):
    """The service rejected this input (it is the input's fault); `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ServiceError(Exception):
    """The service failed or is misconfigured (unreachable, unknown model, server error)."""


@dataclass(frozen=True)
class Prediction:
    """Top-k (class name, probability) pairs, best first; for a multilabel model also `labels`, the predicted
    label set (the model's `predicted_labels` output, most probable first; may be empty)."""

    top_k: tuple[tuple[str, float], ...]
    labels: tuple[str, ...] | None = None

    @property
    def label(self) -> str:
        """Top-1 class name."""
        return self.top_k[0][0]

    @property
    def probability(self) -> float:
        """Top-1 probability."""
        return self.top_k[0][1]


def top_k_predictions(probabilities: Any, classes: Any, k: int, predicted_labels: Any = None) -> list[Prediction]:
    """Per row, the `k` most probable (class, probability) pairs; class names default to indices.
    `predicted_labels` (a multilabel model's multi-hot [batch, classes] output) adds each row's label set."""
    probs = np.asarray(probabilities, dtype=np.float64)
    if probs.ndim != 2:
        raise ServiceError(f"expected probabilities of shape [batch, classes], got {list(probs.shape)}")
    hot = None if predicted_labels is None else np.asarray(predicted_labels)
    if hot is not None and hot.shape != probs.shape:
        raise ServiceError(f"predicted_labels has shape {list(hot.shape)}, probabilities {list(probs.shape)}")
    results = []
    for i, row in enumerate(probs):
        names = classes[i] if classes is not None else range(len(row))
        names = [n.decode("utf-8", errors="replace") if isinstance(n, bytes) else str(n) for n in names]
        order = np.argsort(-row, kind="stable")
        labels = None if hot is None else tuple(names[j] for j in order if hot[i, j])
        results.append(Prediction(tuple((names[j], float(row[j])) for j in order[: max(1, k)]), labels))
    return results


@dataclass(frozen=True)
class FileResult:
    """The outcome for one input file: a prediction, or the stage and reason it failed."""

    path: str
    prediction: Prediction | None = None
    stage: str = ""  # read | validate | predict
    reason: str = ""


def format_result(result: FileResult, bar_width: int = 24) -> str:
    """Human-readable lines for one file: class names with probabilities and bars."""
    if result.prediction is None:
        return f"{result.path}\n  error ({result.stage}): {result.reason}"
    width = max(len(label) for label, _p in result.prediction.top_k)
    lines = [result.path]
    for label, probability in result.prediction.top_k:
        bar = "█" * max(0, round(probability * bar_width))
        lines.append(f"  {label:<{width}}  {probability * 100:6.2f}%  {bar}")
    if result.prediction.labels is not None:
        lines.append(f"  predicted labels: {', '.join(result.prediction.labels) or '(none)'}")
    return "\n".join(lines)


def result_json(result: FileResult) -> dict[str, Any]:
    """JSON-friendly dict for `--json` output."""
    if result.prediction is None:
        return {"path": result.path, "error": result.reason, "stage": result.stage}
    out = {"path": result.path, "top1": result.prediction.label, "probability": result.prediction.probability,
           "top_k": [list(pair) for pair in result.prediction.top_k]}
    if result.prediction.labels is not None:
        out["labels"] = list(result.prediction.labels)
    return out


def csv_line(values: Sequence[Any]) -> str:
    """One CSV row as a string (quoted as needed, no line terminator)."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(values)
    return buffer.getvalue()


def prediction_line(result: FileResult) -> str:
    """`path,top1,probability,top_k,labels` (top_k as a JSON list of [label, probability]; labels, for a
    multilabel model, as a JSON list of the predicted label names, else empty)."""
    prediction = result.prediction
    top_k = json.dumps([[label, round(p, 6)] for label, p in prediction.top_k])
    labels = "" if prediction.labels is None else json.dumps(list(prediction.labels))
    return csv_line([result.path, prediction.label, f"{prediction.probability:.6f}", top_k, labels])


def quarantine_line(result: FileResult) -> str:
    """`path,stage,reason`."""
    return csv_line([result.path, result.stage, result.reason])
