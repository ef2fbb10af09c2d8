"""The Evaluator's custom TFMA metrics and their plain NumPy references (checked against scikit-learn in the tests).

* Cohen's kappa — `cohen_kappa` (reference) and `CohenKappa`, a `tfma.metrics.Metric` derived from TFMA's multi-class
  confusion matrix: unweighted, or linear / quadratic-weighted for ordinal classes. Weights need the classes in
  their real order, and the label vocabulary need not be in it (sorted names as text, or a curated schema's order),
  so a weighted kappa orders the classes by name ("2" < "10"; or an explicit `class_order`), learning each class
  index's name from the raw label feature of the evaluated examples (`label_feature`).
* Multilabel — `MultiLabelCounts` (reference: per-label TP/FP/FN/TN, exact-match and example weights from multi-hot
  labels and independent probabilities), `MultiLabelScore` (one scalar: subset accuracy, Hamming loss, micro/macro
  precision, recall, F1) and `PerLabelMetrics` (precision, recall, F1, support and the 2×2 counts of every label,
  keyed by MetricKey sub_key class_id = the label's vocabulary index). All share one TFMA combiner, and the number of
  labels is learnt from the data, so the eval config can be built before the vocabulary exists.

Beam workers import this module (`MetricConfig(module='components.evaluator.custom_metrics')`), so it must stay
importable without side effects. Metric names: `components.evaluator.metric_keys`. Every metric class takes a
`code_fingerprint` argument and ignores it: the pipeline puts a hash of this module's source there so that editing it
invalidates the Evaluator's cache (see `pipeline.fingerprint`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import apache_beam as beam
import numpy as np
from tensorflow_model_analysis.metrics import metric_types, metric_util
from tensorflow_model_analysis.metrics import multi_class_confusion_matrix_metrics as mccm

from components.evaluator import metric_keys as names

COHEN_KAPPA_NAME = names.COHEN_KAPPA
WEIGHTINGS = (None, "linear", "quadratic")
NO_PREDICTION = -1  # TFMA's class id for "no prediction above the threshold"


# ----- Cohen's kappa ------------------------------------------------------------------------------------------
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


def confusion_from_entries(entries: Mapping[Any, float], positions: Mapping[int, int] | None = None) -> np.ndarray:
    """Dense confusion matrix from TFMA `MatrixEntryKey(actual, predicted) -> weight` entries.

    Without `positions`, the class ids seen as actual or predicted are indexed in sorted order and TFMA's
    "no prediction" id (-1) becomes its own column/row, so such examples count as disagreements. `positions` maps
    class id → row/column (see `class_positions`); positions nobody maps to stay empty rows and columns.
    """
    ids = sorted({k.actual_class_id for k in entries} | {k.predicted_class_id for k in entries})
    if positions is None:
        positions = {class_id: i for i, class_id in enumerate(ids)}
    missing = [class_id for class_id in ids if class_id not in positions]
    if missing:
        raise ValueError(f"class ids {missing} have no position")
    size = max(positions.values(), default=-1) + 1
    matrix = np.zeros((size, size), dtype=np.float64)
    for key, weight in entries.items():
        matrix[positions[key.actual_class_id], positions[key.predicted_class_id]] += weight
    return matrix


def natural_key(text: str) -> tuple[Any, ...]:
    """Sort key putting "2" before "10" and "grade_2" before "grade_10"."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", text) if part)


def class_positions(class_ids: Iterable[int], id_names: Mapping[int, str],
                    class_order: Sequence[str] = ()) -> dict[int, int]:
    """Ordinal positions of class ids for a weighted kappa.

    Classes named in `class_order` take their index in it (so listed classes that do not occur still count in the
    distances, as scikit-learn's `labels=`); the other named classes follow in natural name order; ids whose name
    is unknown (never a true label in the data) come next by id; TFMA's "no prediction" (-1) is last.
    """
    order = {name: i for i, name in enumerate(class_order)}
    ids = sorted(set(class_ids))
    listed = [i for i in ids if i != NO_PREDICTION and id_names.get(i) in order]
    named = sorted((i for i in ids if i != NO_PREDICTION and i in id_names and i not in listed),
                   key=lambda i: natural_key(id_names[i]))
    unnamed = [i for i in ids if i != NO_PREDICTION and i not in id_names]
    positions = {i: order[id_names[i]] for i in listed}
    start = len(class_order)
    for offset, class_id in enumerate(named + unnamed + [i for i in ids if i == NO_PREDICTION]):
        positions[class_id] = start + offset
    return positions


def _label_name(value: Any) -> str | None:
    """The first value of a raw label feature as text (bytes decoded, ints as digits)."""
    array = np.asarray(value).reshape(-1)
    if array.size == 0:
        return None
    first = array[0]
    if isinstance(first, bytes):
        return first.decode("utf-8", "replace")
    if isinstance(first, (np.integer, int)):
        return str(int(first))
    return str(first)


class _ClassNamesCombiner(beam.CombineFn):
    """{class id → name} from the transformed label (the vocabulary index) and the raw label feature."""

    def __init__(self, key: metric_types.MetricKey, label_feature: str, eval_config: Any) -> None:
        self._key = key
        self._label_feature = label_feature
        self._eval_config = eval_config

    def create_accumulator(self) -> dict[int, str]:
        return {}

    def add_input(self, accumulator: dict[int, str], element: metric_types.StandardMetricInputs) -> dict[int, str]:
        features = element.features or {}
        if self._label_feature not in features:
            raise ValueError(f"weighted Cohen's kappa: the evaluated examples have no raw label feature "
                             f"{self._label_feature!r} (features: {sorted(features)})")
        name = _label_name(features[self._label_feature])
        label, _, _ = next(metric_util.to_label_prediction_example_weight(
            element, eval_config=self._eval_config, model_name=self._key.model_name,
            output_name=self._key.output_name, flatten=False, require_single_example_weight=True))
        label = np.asarray(label).reshape(-1)
        if name is None or label.size != 1:
            return accumulator
        class_id = int(label[0])
        if class_id not in accumulator or natural_key(name) < natural_key(accumulator[class_id]):
            accumulator[class_id] = name
        return accumulator

    def merge_accumulators(self, accumulators: Iterable[dict[int, str]]) -> dict[int, str]:
        merged: dict[int, str] = {}
        for accumulator in accumulators:
            for class_id, name in accumulator.items():
                if class_id not in merged or natural_key(name) < natural_key(merged[class_id]):
                    merged[class_id] = name
        return merged

    def extract_output(self, accumulator: dict[int, str]) -> dict[metric_types.MetricKey, dict[int, str]]:
        return {self._key: dict(accumulator)}


def _cohen_kappa_computations(
    name: str | None = None,
    weighting: str | None = None,
    label_feature: str = "",
    class_order: Sequence[str] = (),
    eval_config: Any = None,
    model_name: str = "",
    output_name: str = "",
    example_weighted: bool = False,
) -> metric_types.MetricComputations:
    key = metric_types.MetricKey(
        name=name or names.kappa_name(weighting), model_name=model_name, output_name=output_name,
        example_weighted=example_weighted,
    )
    computations = mccm.multi_class_confusion_matrices(
        thresholds=[0.0],
        eval_config=eval_config,
        model_name=model_name,
        output_name=output_name,
        example_weighted=example_weighted,
    )
    matrices_key = computations[-1].keys[-1]
    names_key = None
    if weighting is not None and label_feature:
        names_key = metric_types.MetricKey(name=f"_class_names:{label_feature}", model_name=model_name,
                                           output_name=output_name, example_weighted=example_weighted)
        computations.append(metric_types.MetricComputation(
            keys=[names_key],
            preprocessors=[metric_types.FeaturePreprocessor(feature_keys=[label_feature])],
            combiner=_ClassNamesCombiner(names_key, label_feature, eval_config),
        ))

    def result(metrics: dict[metric_types.MetricKey, Any]) -> dict[metric_types.MetricKey, float]:
        entries = metrics[matrices_key].get(0.0, {})
        positions = None
        if weighting is not None:
            ids = {k.actual_class_id for k in entries} | {k.predicted_class_id for k in entries}
            positions = class_positions(ids, metrics[names_key] if names_key else {}, class_order)
        return {key: cohen_kappa(confusion_from_entries(entries, positions), weighting)}

    computations.append(metric_types.DerivedMetricComputation(keys=[key], result=result))
    return computations


class CohenKappa(metric_types.Metric):
    """Cohen's kappa for multi-class models (argmax prediction vs integer/one-hot label).

    `weighting`: None (unweighted), "linear" or "quadratic". A weighted kappa orders the classes by name: give
    `label_feature` (the raw label feature of the examples) so the metric can learn the names; without it the class
    index (the vocabulary order) is used. `class_order` lists class names in their real order (optional). The
    default name says the weighting: cohen_kappa, cohen_kappa_linear, cohen_kappa_quadratic.
    """

    def __init__(self, name: str | None = None, weighting: str | None = None, label_feature: str = "",
                 class_order: Sequence[str] = (), code_fingerprint: str = "") -> None:
        if weighting not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
        super().__init__(
            metric_util.merge_per_key_computations(_cohen_kappa_computations),
            name=name or names.kappa_name(weighting), weighting=weighting, label_feature=label_feature,
            class_order=list(class_order),
        )


metric_types.register_metric(CohenKappa)


# ----- multilabel ---------------------------------------------------------------------------------------------
def _ratio(numerator: np.ndarray | float, denominator: np.ndarray | float) -> np.ndarray:
    """numerator / denominator, 0 where the denominator is 0 (scikit-learn's zero_division=0)."""
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    out = np.zeros(np.broadcast(numerator, denominator).shape)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


@dataclass
class MultiLabelCounts:
    """Weighted per-label TP/FP/FN/TN, the weight of exactly-matched examples and the total example weight."""

    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray
    tn: np.ndarray
    exact: float = 0.0
    weight: float = 0.0

    @classmethod
    def empty(cls, num_labels: int) -> MultiLabelCounts:
        """All-zero counts for `num_labels` labels."""
        return cls(*(np.zeros(num_labels) for _ in range(4)))

    @classmethod
    def from_arrays(cls, labels: Any, probabilities: Any, weights: Any = None,
                    threshold: float = names.MULTILABEL_THRESHOLD) -> MultiLabelCounts:
        """Counts for multi-hot `labels` [N, C] and probabilities [N, C] (a label is predicted when its probability
        is >= `threshold`, as the exported model's `predicted_labels`); `weights` [N] default to 1."""
        y = np.asarray(labels, dtype=np.float64)
        p = np.asarray(probabilities, dtype=np.float64)
        if y.ndim == 1:
            y, p = y[np.newaxis, :], p.reshape(1, -1)
        if y.ndim != 2 or y.shape != p.shape:
            raise ValueError(f"multilabel metrics need labels and probabilities of the same shape [N, C]: labels "
                             f"{y.shape}, probabilities {p.shape} (is label_xf the multi-hot vector?)")
        if not np.isin(y, (0.0, 1.0)).all():
            raise ValueError(f"multilabel labels must be multi-hot 0/1, got values {np.unique(y)[:10].tolist()}")
        w = np.ones(len(y)) if weights is None else np.asarray(weights, dtype=np.float64).reshape(-1)
        if w.shape != (len(y),):
            raise ValueError(f"one example weight per example expected, got shape {w.shape} for {len(y)} examples")
        truth = y > 0.5
        predicted = p >= threshold
        column = w[:, np.newaxis]
        return cls(
            tp=(column * (truth & predicted)).sum(axis=0),
            fp=(column * (~truth & predicted)).sum(axis=0),
            fn=(column * (truth & ~predicted)).sum(axis=0),
            tn=(column * (~truth & ~predicted)).sum(axis=0),
            exact=float(w[(truth == predicted).all(axis=1)].sum()),
            weight=float(w.sum()),
        )

    @property
    def num_labels(self) -> int:
        """C, the number of labels."""
        return int(self.tp.shape[0])

    def merge(self, other: MultiLabelCounts) -> MultiLabelCounts:
        """Sum of two counts over the same labels."""
        if other.num_labels != self.num_labels:
            raise ValueError(f"cannot merge multilabel counts over {self.num_labels} and {other.num_labels} labels: "
                             "the prediction width changed between examples")
        return MultiLabelCounts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn, self.tn + other.tn,
                                self.exact + other.exact, self.weight + other.weight)

    # per label (sklearn precision_recall_fscore_support(average=None, zero_division=0))
    @property
    def support(self) -> np.ndarray:
        """Weighted examples carrying each label."""
        return self.tp + self.fn

    @property
    def precision(self) -> np.ndarray:
        """Per-label precision."""
        return _ratio(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> np.ndarray:
        """Per-label recall."""
        return _ratio(self.tp, self.tp + self.fn)

    @property
    def f1(self) -> np.ndarray:
        """Per-label F1 = 2·TP / (2·TP + FP + FN)."""
        return _ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn)

    def statistic(self, name: str) -> float:
        """One of `metric_names.MULTILABEL_STATISTICS` (NaN when there were no examples)."""
        if self.weight <= 0 or self.num_labels == 0:
            return float("nan")
        tp, fp, fn = self.tp.sum(), self.fp.sum(), self.fn.sum()
        values = {
            names.SUBSET_ACCURACY: lambda: self.exact / self.weight,
            names.HAMMING_LOSS: lambda: (fp + fn) / (self.weight * self.num_labels),
            names.PRECISION_MICRO: lambda: float(_ratio(tp, tp + fp)),
            names.RECALL_MICRO: lambda: float(_ratio(tp, tp + fn)),
            names.F1_MICRO: lambda: float(_ratio(2 * tp, 2 * tp + fp + fn)),
            names.PRECISION_MACRO: lambda: float(self.precision.mean()),
            names.RECALL_MACRO: lambda: float(self.recall.mean()),
            names.F1_MACRO: lambda: float(self.f1.mean()),
        }
        if name not in values:
            raise ValueError(f"unknown multilabel statistic {name!r}; expected one of {names.MULTILABEL_STATISTICS}")
        return float(values[name]())

    def per_label(self) -> dict[str, np.ndarray]:
        """`metric_names.PER_LABEL_STATISTICS` → one value per label."""
        return {"precision": self.precision, "recall": self.recall, "f1": self.f1, "support": self.support,
                "tp": self.tp, "fp": self.fp, "fn": self.fn, "tn": self.tn}


class _MultiLabelCountsCombiner(beam.CombineFn):
    """Accumulates `MultiLabelCounts` from TFMA's standard inputs (label_xf multi-hot, probabilities)."""

    def __init__(self, key: metric_types.MetricKey, eval_config: Any, example_weighted: bool,
                 threshold: float) -> None:
        self._key = key
        self._eval_config = eval_config
        self._example_weighted = example_weighted
        self._threshold = threshold

    def create_accumulator(self) -> MultiLabelCounts | None:
        return None  # the number of labels is learnt from the first example

    def add_input(self, accumulator: MultiLabelCounts | None,
                  element: metric_types.StandardMetricInputs) -> MultiLabelCounts:
        label, prediction, weight = next(metric_util.to_label_prediction_example_weight(
            element, eval_config=self._eval_config, model_name=self._key.model_name,
            output_name=self._key.output_name, example_weighted=self._example_weighted, flatten=False,
            squeeze=False, require_single_example_weight=True))
        counts = MultiLabelCounts.from_arrays(np.asarray(label).reshape(1, -1), np.asarray(prediction).reshape(1, -1),
                                              np.asarray(weight).reshape(-1)[:1], self._threshold)
        return counts if accumulator is None else accumulator.merge(counts)

    def merge_accumulators(self, accumulators: Iterable[MultiLabelCounts | None]) -> MultiLabelCounts | None:
        merged = None
        for accumulator in accumulators:
            if accumulator is not None:
                merged = accumulator if merged is None else merged.merge(accumulator)
        return merged

    def extract_output(self, accumulator: MultiLabelCounts | None) -> dict[metric_types.MetricKey, Any]:
        return {self._key: accumulator if accumulator is not None else MultiLabelCounts.empty(0)}


def _multilabel_counts(eval_config: Any, model_name: str, output_name: str, example_weighted: bool,
                       threshold: float) -> tuple[metric_types.MetricKey, metric_types.MetricComputation]:
    """The shared counts computation (TFMA runs it once for every multilabel metric of a model)."""
    key = metric_types.MetricKey(name=f"_multilabel_counts:threshold={threshold!r}", model_name=model_name,
                                 output_name=output_name, example_weighted=example_weighted)
    return key, metric_types.MetricComputation(
        keys=[key], preprocessors=None,
        combiner=_MultiLabelCountsCombiner(key, eval_config, example_weighted, threshold))


def _multilabel_score_computations(
    statistic: str,
    name: str | None = None,
    threshold: float = names.MULTILABEL_THRESHOLD,
    eval_config: Any = None,
    model_name: str = "",
    output_name: str = "",
    example_weighted: bool = False,
) -> metric_types.MetricComputations:
    counts_key, counts = _multilabel_counts(eval_config, model_name, output_name, example_weighted, threshold)
    key = metric_types.MetricKey(name=name or statistic, model_name=model_name, output_name=output_name,
                                 example_weighted=example_weighted)

    def result(metrics: dict[metric_types.MetricKey, Any]) -> dict[metric_types.MetricKey, float]:
        return {key: metrics[counts_key].statistic(statistic)}

    return [counts, metric_types.DerivedMetricComputation(keys=[key], result=result)]


class MultiLabelScore(metric_types.Metric):
    """One multilabel score: `statistic` is one of subset_accuracy (exact match), hamming_loss, f1_micro, f1_macro,
    precision_micro, precision_macro, recall_micro, recall_macro (scikit-learn's definitions, zero_division=0).

    Labels: multi-hot [C] per example; predictions: C independent probabilities, a label predicted present at
    probability >= `threshold`. The metric is named after the statistic unless `name` is given.
    """

    def __init__(self, statistic: str, name: str | None = None,
                 threshold: float = names.MULTILABEL_THRESHOLD, code_fingerprint: str = "") -> None:
        if statistic not in names.MULTILABEL_STATISTICS:
            raise ValueError(f"statistic must be one of {names.MULTILABEL_STATISTICS}, got {statistic!r}")
        super().__init__(metric_util.merge_per_key_computations(_multilabel_score_computations),
                         statistic=statistic, name=name or statistic, threshold=threshold)


metric_types.register_metric(MultiLabelScore)


def _per_label_computations(
    name: str = "per_label",
    threshold: float = names.MULTILABEL_THRESHOLD,
    eval_config: Any = None,
    model_name: str = "",
    output_name: str = "",
    example_weighted: bool = False,
) -> metric_types.MetricComputations:
    counts_key, counts = _multilabel_counts(eval_config, model_name, output_name, example_weighted, threshold)
    # The per-label keys are only known once the data says how many labels there are. TFMA identifies a derived
    # computation by its keys, so a private key (filtered from the output) keeps candidate and baseline apart.
    marker = metric_types.MetricKey(name=f"_{name}", model_name=model_name, output_name=output_name,
                                    example_weighted=example_weighted)

    def result(metrics: dict[metric_types.MetricKey, Any]) -> dict[metric_types.MetricKey, float]:
        values: dict[metric_types.MetricKey, float] = {marker: 0.0}
        for statistic, per_label in metrics[counts_key].per_label().items():
            for class_id, value in enumerate(per_label):
                values[metric_types.MetricKey(
                    name=names.per_label_name(statistic), model_name=model_name, output_name=output_name,
                    sub_key=metric_types.SubKey(class_id=class_id), example_weighted=example_weighted,
                )] = float(value)
        return values

    return [counts, metric_types.DerivedMetricComputation(keys=[marker], result=result)]


class PerLabelMetrics(metric_types.Metric):
    """Precision, recall, F1, support, TP, FP, FN and TN of every label of a multilabel model, as metrics named
    `label_<statistic>` with sub_key class_id = the label's index (see `MultiLabelScore` for the inputs)."""

    def __init__(self, name: str = "per_label", threshold: float = names.MULTILABEL_THRESHOLD,
                 code_fingerprint: str = "") -> None:
        super().__init__(metric_util.merge_per_key_computations(_per_label_computations), name=name,
                         threshold=threshold)


metric_types.register_metric(PerLabelMetrics)
