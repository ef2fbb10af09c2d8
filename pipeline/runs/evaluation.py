"""The Evaluator's output of a run, read with TFMA: the overall slice's metrics (candidate, baseline and change vs
baseline; multilabel per-label values; a binary model's counts at its threshold), the multi-class confusion matrix
plot, and the EvalConfig (configured on the execution, applied in the artifact's `eval_config.json`).

Metrics of the model named `baseline_name` (the EvalConfig's `is_baseline` model spec) are the baseline's; every
other model's are the candidate's.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tensorflow_model_analysis as tfma
from google.protobuf import json_format

from components.evaluator import catalogue, metric_keys

BASELINE = "baseline"  # the model name TFX's Evaluator gives the baseline model


@dataclass
class BinaryConfusion:
    """A binary model's confusion counts at one decision threshold."""

    threshold: float
    tp: float
    fp: float
    fn: float
    tn: float


@dataclass
class EvaluationMetrics:
    """The overall slice's metrics of one evaluation."""

    values: dict[str, float] = field(default_factory=dict)  # the candidate's
    baselines: dict[str, float] = field(default_factory=dict)  # the baseline model's
    diffs: dict[str, float] = field(default_factory=dict)  # candidate minus baseline, as TFMA computed it
    per_label: dict[str, dict[int, float]] = field(default_factory=dict)  # multilabel: statistic -> class id -> value
    binary_counts: BinaryConfusion | None = None  # binary: TP/FP/FN/TN at the first threshold


def read_metrics(uri: str, baseline_name: str = BASELINE) -> EvaluationMetrics:
    """The overall slice's metrics in a ModelEvaluation artifact folder."""
    found = EvaluationMetrics()
    for slice_metrics in tfma.load_metrics(uri):
        if slice_metrics.slice_key.single_slice_keys:
            continue  # overall slice only
        for item in slice_metrics.metric_keys_and_values:
            key = item.key
            candidate = not key.is_diff and not (key.model_name and key.model_name == baseline_name)
            if candidate and key.name == metric_keys.CONFUSION_AT_THRESHOLD \
                    and item.value.HasField("confusion_matrix_at_thresholds"):
                matrices = item.value.confusion_matrix_at_thresholds.matrices
                if matrices:
                    m = matrices[0]
                    found.binary_counts = BinaryConfusion(round(m.threshold, 6), m.true_positives, m.false_positives,
                                                          m.false_negatives, m.true_negatives)
                continue
            if not item.value.HasField("double_value"):
                continue
            number = float(item.value.double_value.value)
            if key.name.startswith(metric_keys.PER_LABEL_PREFIX):  # multilabel, one value per label (class_id)
                if candidate and key.HasField("sub_key") and key.sub_key.HasField("class_id"):
                    statistic = key.name[len(metric_keys.PER_LABEL_PREFIX):]
                    found.per_label.setdefault(statistic, {})[key.sub_key.class_id.value] = number
                continue
            target = found.diffs if key.is_diff else (found.baselines if key.model_name == baseline_name
                                                      else found.values)
            target[key.name] = number
    return found


def headline_accuracy(values: dict[str, float]) -> float | None:
    """The task's accuracy among overall metrics: accuracy (multiclass, binary), else subset accuracy
    (multilabel); None when neither was evaluated."""
    return values.get(metric_keys.ACCURACY, values.get(metric_keys.SUBSET_ACCURACY))


def headline_kappa(values: dict[str, float]) -> float | None:
    """Cohen's kappa among overall metrics, whatever its weighting; None when it was not evaluated."""
    return next((v for k, v in sorted(values.items()) if catalogue.is_kappa(k)), None)


def read_confusion(uri: str, baseline_name: str = BASELINE) -> dict[tuple[int, int], float]:
    """The candidate's multi-class confusion matrix (threshold nearest 0) on the overall slice, as
    {(actual class id, predicted class id): weighted examples}; predicted id -1 counts examples with no prediction."""
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
    return entries


def parse_eval_config(value: Any) -> tfma.EvalConfig | None:
    """An EvalConfig from an execution property (JSON text, or the parsed dict, possibly under `evalConfig`)."""
    if value is None:
        return None
    if isinstance(value, dict):
        return json_format.ParseDict(value.get("evalConfig", value), tfma.EvalConfig(), ignore_unknown_fields=True)
    return json_format.Parse(str(value), tfma.EvalConfig(), ignore_unknown_fields=True)


def applied_eval_config(uri: str) -> tfma.EvalConfig | None:
    """The EvalConfig TFMA applied (the artifact's `eval_config.json`: the Evaluator drops change thresholds when
    there is no baseline model yet), or None when the artifact has none."""
    path = os.path.join(uri, "eval_config.json")
    if not os.path.exists(path):
        return None
    return parse_eval_config(json.loads(Path(path).read_text(encoding="utf-8")))


def baseline_model_name(config: tfma.EvalConfig | None) -> str:
    """The name of the config's baseline model spec (BASELINE when it has none)."""
    return next((s.name for s in config.model_specs if s.is_baseline), BASELINE) if config else BASELINE
