"""Cohen's kappa: a plain NumPy implementation and the TFMA metric built on TFMA's multi-class confusion matrix.

`cohen_kappa` is the reference computation (checked against scikit-learn in the tests); `CohenKappa` is a
`tfma.metrics.Metric` whose derived computation reads TFMA's `_multi_class_confusion_matrices` and applies
`cohen_kappa` to it, so the Evaluator can report and gate on kappa. This module is imported by Beam workers
(`MetricConfig(module='components.metrics')`), so it must stay importable without side effects.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from tensorflow_model_analysis.metrics import metric_types, metric_util
from tensorflow_model_analysis.metrics import multi_class_confusion_matrix_metrics as mccm

COHEN_KAPPA_NAME = "cohen_kappa"
WEIGHTINGS = (None, "linear", "quadratic")


def cohen_kappa(confusion: np.ndarray, weighting: str | None = None) -> float:
    """Cohen's kappa of a square confusion matrix (rows: actual, columns: predicted).

    `weighting` None gives the unweighted kappa; "linear" / "quadratic" weight disagreements by class-index
    distance (for ordinal classes). Returns NaN when agreement by chance is total (as scikit-learn does).
    """
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
    matrix = np.asarray(confusion, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"confusion matrix must be square, got shape {matrix.shape}")
    total = matrix.sum()
    if total <= 0:
        return float("nan")
    n = matrix.shape[0]
    expected = np.outer(matrix.sum(axis=1), matrix.sum(axis=0)) / total
    if weighting is None:
        weights = 1.0 - np.eye(n)
    else:
        distance = np.abs(np.subtract.outer(np.arange(n), np.arange(n)), dtype=np.float64)
        weights = distance if weighting == "linear" else distance**2
    denominator = float((weights * expected).sum())
    if denominator == 0.0:
        return float("nan")
    return 1.0 - float((weights * matrix).sum()) / denominator


def confusion_from_entries(entries: Mapping[Any, float]) -> np.ndarray:
    """Dense confusion matrix from TFMA `MatrixEntryKey(actual, predicted) -> weight` entries.

    Class ids seen as actual or predicted are indexed in sorted order; TFMA's "no prediction" id (-1) becomes
    its own column/row so such examples count as disagreements.
    """
    ids = sorted({k.actual_class_id for k in entries} | {k.predicted_class_id for k in entries})
    index = {class_id: i for i, class_id in enumerate(ids)}
    matrix = np.zeros((len(ids), len(ids)), dtype=np.float64)
    for key, weight in entries.items():
        matrix[index[key.actual_class_id], index[key.predicted_class_id]] += weight
    return matrix


def _cohen_kappa_computations(
    name: str = COHEN_KAPPA_NAME,
    weighting: str | None = None,
    eval_config: Any = None,
    model_name: str = "",
    output_name: str = "",
    example_weighted: bool = False,
) -> metric_types.MetricComputations:
    key = metric_types.MetricKey(
        name=name, model_name=model_name, output_name=output_name, example_weighted=example_weighted
    )
    computations = mccm.multi_class_confusion_matrices(
        thresholds=[0.0],
        eval_config=eval_config,
        model_name=model_name,
        output_name=output_name,
        example_weighted=example_weighted,
    )
    matrices_key = computations[-1].keys[-1]

    def result(metrics: dict[metric_types.MetricKey, Any]) -> dict[metric_types.MetricKey, float]:
        matrices = metrics[matrices_key]
        entries = matrices.get(0.0, {})
        return {key: cohen_kappa(confusion_from_entries(entries), weighting)}

    computations.append(metric_types.DerivedMetricComputation(keys=[key], result=result))
    return computations


class CohenKappa(metric_types.Metric):
    """Cohen's kappa for multi-class models (argmax prediction vs integer/one-hot label)."""

    def __init__(self, name: str = COHEN_KAPPA_NAME, weighting: str | None = None) -> None:
        if weighting not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
        super().__init__(
            metric_util.merge_per_key_computations(_cohen_kappa_computations), name=name, weighting=weighting
        )


metric_types.register_metric(CohenKappa)
