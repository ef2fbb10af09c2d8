"""Names of the Evaluator's metrics, shared by `components.evaluator.custom_metrics` (the TFMA metrics, run in
Beam workers) and the pipeline side (config validation, gates, CLI summary, report). Plain Python: importing it loads
no TensorFlow.

Which metrics each task computes, their display labels and gate aliases live in `components.evaluator.catalogue`.
"""

from __future__ import annotations

EXAMPLE_COUNT = "example_count"
# multiclass and binary: argmax accuracy. For binary ([1 - p, p]) argmax is exactly "p > 0.5": 1 - p is exact in
# float32 for p >= 0.5 and a tie goes to index 0, as TFMA's binary metrics count p > threshold as positive.
ACCURACY = "sparse_categorical_accuracy"

COHEN_KAPPA = "cohen_kappa"
KAPPA_WEIGHTINGS = ("none", "linear", "quadratic")  # the `eval.kappa_weighting` spelling

# binary: TFMA's own metrics binarized on class id 1 (the positive class, vocabulary index 1), threshold 0.5
PRECISION = "precision"
RECALL = "recall"
F1_SCORE = "f1_score"
AUC = "auc"
AUC_PR = "auc_precision_recall"
CONFUSION_AT_THRESHOLD = "confusion_matrix_at_thresholds"
BINARY_THRESHOLD = 0.5
POSITIVE_CLASS_ID = 1

# multilabel: components.evaluator.custom_metrics.MultiLabelScore statistics (scalar) and PerLabelMetrics (one value
# per label, keyed by MetricKey sub_key class_id = the label's vocabulary index), threshold 0.5 (probability >= 0.5 =
# present, as the exported model's `predicted_labels`)
SUBSET_ACCURACY = "subset_accuracy"
HAMMING_LOSS = "hamming_loss"
F1_MICRO = "f1_micro"
F1_MACRO = "f1_macro"
PRECISION_MICRO = "precision_micro"
PRECISION_MACRO = "precision_macro"
RECALL_MICRO = "recall_micro"
RECALL_MACRO = "recall_macro"
MULTILABEL_STATISTICS = (SUBSET_ACCURACY, HAMMING_LOSS, F1_MICRO, F1_MACRO, PRECISION_MICRO, PRECISION_MACRO,
                         RECALL_MICRO, RECALL_MACRO)
MULTILABEL_THRESHOLD = 0.5
PER_LABEL_PREFIX = "label_"
PER_LABEL_STATISTICS = ("precision", "recall", "f1", "support", "tp", "fp", "fn", "tn")

LOWER_IS_BETTER = frozenset({HAMMING_LOSS})


def kappa_name(weighting: str | None = None) -> str:
    """`cohen_kappa` (unweighted), `cohen_kappa_linear` or `cohen_kappa_quadratic`."""
    if weighting in (None, "none"):
        return COHEN_KAPPA
    if weighting not in KAPPA_WEIGHTINGS:
        raise ValueError(f"kappa weighting must be one of {KAPPA_WEIGHTINGS}, got {weighting!r}")
    return f"{COHEN_KAPPA}_{weighting}"


def kappa_weighting(name: str) -> str | None:
    """The weighting a kappa metric name stands for (None: unweighted); ValueError for other names."""
    if name == COHEN_KAPPA:
        return None
    for weighting in KAPPA_WEIGHTINGS[1:]:
        if name == kappa_name(weighting):
            return weighting
    raise ValueError(f"{name!r} is not a Cohen's kappa metric name")


def top_k_name(k: int) -> str:
    """`top_5_accuracy` for k = 5."""
    return f"top_{k}_accuracy"


def per_label_name(statistic: str) -> str:
    """`label_f1` etc.: the name of a per-label multilabel metric (its sub_key class_id is the label index)."""
    if statistic not in PER_LABEL_STATISTICS:
        raise ValueError(f"per-label statistic must be one of {PER_LABEL_STATISTICS}, got {statistic!r}")
    return PER_LABEL_PREFIX + statistic
