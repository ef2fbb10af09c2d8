"""Tests for components.evaluator.custom_metrics and the Evaluator's metrics per task, against scikit-learn:
Cohen's kappa (unweighted and weighted, in the classes' real order), multilabel scores and per-label metrics (the
NumPy reference, the combiner driven by Beam, and TFMA itself), binary metrics and top-k accuracy through TFMA."""

from __future__ import annotations

import apache_beam as beam
import numpy as np
import pytest
import tensorflow_model_analysis as tfma
from apache_beam.testing import util as beam_util
from sklearn.metrics import cohen_kappa_score, confusion_matrix
from tensorflow_model_analysis.metrics import metric_types, metric_util

from components.evaluator import custom_metrics as metrics
from tests import evaluation_helpers


@pytest.mark.parametrize("weighting", [None, "linear", "quadratic"])
@pytest.mark.parametrize("seed", range(5))
def test_cohen_kappa_matches_sklearn(seed, weighting):
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, 5, 300)
    y_pred = np.where(rng.random(300) < 0.6, y_true, rng.integers(0, 5, 300))
    matrix = confusion_matrix(y_true, y_pred, labels=range(5))
    assert metrics.cohen_kappa(matrix, weighting) == pytest.approx(
        cohen_kappa_score(y_true, y_pred, weights=weighting), abs=1e-12
    )


def test_cohen_kappa_edge_cases():
    assert metrics.cohen_kappa(np.diag([5, 3, 2])) == pytest.approx(1.0)
    assert np.isnan(metrics.cohen_kappa(np.array([[4, 0], [0, 0]])))  # chance agreement is total
    assert np.isnan(metrics.cohen_kappa(np.zeros((2, 2))))
    with pytest.raises(ValueError, match="square"):
        metrics.cohen_kappa(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="weighting"):
        metrics.cohen_kappa(np.eye(2), "cubic")


def test_confusion_from_tfma_entries_includes_no_prediction():
    from tensorflow_model_analysis.metrics.multi_class_confusion_matrix_metrics import MatrixEntryKey

    entries = {MatrixEntryKey(0, 0): 3.0, MatrixEntryKey(1, 0): 1.0, MatrixEntryKey(1, -1): 2.0}
    matrix = metrics.confusion_from_entries(entries)
    # ids sorted: -1, 0, 1
    assert matrix.tolist() == [[0, 0, 0], [0, 3, 0], [2, 1, 0]]


@pytest.mark.parametrize("weighting", [None, "quadratic"])
def test_tfma_metric_matches_sklearn(weighting):
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 4, 200)
    logits = rng.normal(size=(200, 4)) + 2.0 * np.eye(4)[labels] * (rng.random(200) < 0.7)[:, None]
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    expected = cohen_kappa_score(labels, probabilities.argmax(axis=1), weights=weighting)

    metric = metrics.CohenKappa(weighting=weighting)
    computations = metric.computations(example_weighted=False)
    matrices, derived = computations[0], computations[1]
    inputs = [{"labels": np.array([label]), "predictions": probs, "example_weights": np.array([1.0])}
              for label, probs in zip(labels, probabilities)]

    with beam.Pipeline() as pipeline:
        result = (
            pipeline
            | beam.Create(inputs)
            | beam.Map(metric_util.to_standard_metric_inputs)
            | beam.Map(lambda x: ((), x))
            | beam.CombinePerKey(matrices.combiner)
            | beam.Map(lambda kv: (kv[0], derived.result(kv[1])))
        )

        def check(got):
            assert len(got) == 1
            (_, values), = got
            # without label_feature a weighted kappa orders classes by their index
            key = metric_types.MetricKey(name=metrics.names.kappa_name(weighting), example_weighted=False)
            assert values[key] == pytest.approx(expected, abs=1e-9)

        beam_util.assert_that(result, check)


def test_metric_is_configurable_by_name_like_the_evaluator_does():
    from tensorflow_model_analysis.metrics import metric_specs

    config = tfma.MetricConfig(class_name="CohenKappa", module=metrics.__name__, config='"weighting": "linear"')
    instance = metric_specs.metric_instance(config)
    assert isinstance(instance, metrics.CohenKappa)
    assert instance.name == "cohen_kappa_linear"  # the name says the weighting
    assert instance.get_config() == {"name": "cohen_kappa_linear", "weighting": "linear", "label_feature": "",
                                     "class_order": []}
    for class_name, options in (("MultiLabelScore", '"statistic": "hamming_loss"'), ("PerLabelMetrics", "")):
        instance = metric_specs.metric_instance(tfma.MetricConfig(class_name=class_name, module=metrics.__name__,
                                                                  config=options))
        assert isinstance(instance, getattr(metrics, class_name))
    assert metric_specs.metric_instance(tfma.MetricConfig(
        class_name="MultiLabelScore", module=metrics.__name__, config='"statistic": "f1_micro"')).name == "f1_micro"


# ----- weighted kappa: classes in their real order ------------------------------------------------------------
def test_class_positions_order_by_name_then_explicit_order():
    id_names = {0: "3", 1: "0", 2: "10", 3: "2"}  # vocabulary (frequency) order
    assert metrics.class_positions([0, 1, 2, 3], id_names) == {1: 0, 3: 1, 0: 2, 2: 3}  # 0 < 2 < 3 < 10
    # explicit order first (listed but absent classes keep their place), then the rest by name, unknown ids, -1
    positions = metrics.class_positions([0, 1, 2, 3, 7, -1], id_names, class_order=["10", "absent", "3"])
    assert positions == {2: 0, 0: 2, 1: 3, 3: 4, 7: 5, -1: 6}
    assert metrics.natural_key("grade_2") < metrics.natural_key("grade_10")


def _kappa_inputs(labels, probabilities, names):
    return [metric_types.StandardMetricInputs(labels=np.array([label]), predictions=probs,
                                              example_weights=np.array([1.0]),
                                              features={"label": np.array([names[label].encode()], dtype=object)})
            for label, probs in zip(labels, probabilities)]


@pytest.mark.parametrize("weighting, order", [("quadratic", None), ("linear", None), ("quadratic", ["10", "3"])])
def test_weighted_kappa_orders_classes_by_name_like_sklearn(weighting, order):
    """Vocabulary ids are in frequency order; the weighted kappa must use the names' order, as scikit-learn does
    with `labels=` in natural order (or the explicit order followed by the others)."""
    rng = np.random.default_rng(11)
    names = ["3", "0", "10", "2", "1"]
    labels = rng.integers(0, 5, 250)
    logits = rng.normal(size=(250, 5)) + 1.5 * np.eye(5)[labels]
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    natural = sorted(names, key=int)
    ordered = (order or []) + [n for n in natural if n not in (order or [])]
    y_true = [names[i] for i in labels]
    y_pred = [names[i] for i in probabilities.argmax(axis=1)]
    expected = cohen_kappa_score(y_true, y_pred, labels=ordered, weights=weighting)
    by_index = cohen_kappa_score(labels, probabilities.argmax(axis=1), weights=weighting)
    assert abs(expected - by_index) > 1e-3  # the vocabulary order really gives another (wrong) value

    metric = metrics.CohenKappa(weighting=weighting, label_feature="label", class_order=order or ())
    computations = metric.computations(example_weighted=False)
    combiners = [c for c in computations if isinstance(c, metric_types.MetricComputation)]
    derived = computations[-1]
    assert len(combiners) == 2  # TFMA's confusion matrices + the class names
    key = metric_types.MetricKey(name=metrics.names.kappa_name(weighting), example_weighted=False)

    with beam.Pipeline() as pipeline:
        inputs = pipeline | beam.Create(_kappa_inputs(labels, probabilities, names))
        partials = [
            inputs
            | f"Combine{i}" >> beam.CombineGlobally(c.combiner)
            for i, c in enumerate(combiners)
        ]
        result = (
            tuple(partials)
            | beam.Flatten()
            | beam.combiners.ToList()
            | beam.Map(lambda parts: derived.result({k: v for part in parts for k, v in part.items()}))
        )

        def check(got):
            assert got[0][key] == pytest.approx(expected, abs=1e-9)

        beam_util.assert_that(result, check)


# ----- multilabel ---------------------------------------------------------------------------------------------
def _multilabel_sample(seed, n=200, labels=5):
    rng = np.random.default_rng(seed)
    truth = (rng.random((n, labels)) < rng.uniform(0.1, 0.6, labels)).astype(np.float32)
    truth[:, -1] = 0  # a label nobody carries ...
    probabilities = np.clip(0.55 * truth + rng.random((n, labels)) * 0.6, 0, 1)
    probabilities[:, -1] = 0.1  # ... and nobody predicts: scikit-learn's zero_division=0 case
    probabilities[:3, 0] = 0.5  # exactly at the threshold: predicted (>= 0.5, as the exported predicted_labels)
    return truth, probabilities


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("weighted", [False, True])
def test_multilabel_counts_match_sklearn(seed, weighted):
    from sklearn.metrics import accuracy_score, f1_score, hamming_loss, precision_recall_fscore_support

    truth, probabilities = _multilabel_sample(seed)
    weights = np.random.default_rng(seed).uniform(0.5, 2.0, len(truth)) if weighted else None
    predicted = (probabilities >= 0.5).astype(int)
    counts = metrics.MultiLabelCounts.from_arrays(truth, probabilities, weights)
    kwargs = {"sample_weight": weights, "zero_division": 0}
    assert counts.statistic("f1_micro") == pytest.approx(f1_score(truth, predicted, average="micro", **kwargs))
    assert counts.statistic("f1_macro") == pytest.approx(f1_score(truth, predicted, average="macro", **kwargs))
    for average in ("micro", "macro"):
        p, r, _, _ = precision_recall_fscore_support(truth, predicted, average=average, **kwargs)
        assert counts.statistic(f"precision_{average}") == pytest.approx(p)
        assert counts.statistic(f"recall_{average}") == pytest.approx(r)
    assert counts.statistic("hamming_loss") == pytest.approx(hamming_loss(truth, predicted, sample_weight=weights))
    assert counts.statistic("subset_accuracy") == pytest.approx(accuracy_score(truth, predicted,
                                                                              sample_weight=weights))
    p, r, f, support = precision_recall_fscore_support(truth, predicted, average=None, **kwargs)
    per_label = counts.per_label()
    for name, want in (("precision", p), ("recall", r), ("f1", f)):
        assert per_label[name] == pytest.approx(want)
    expected_support = support if weights is None else (truth * weights[:, None]).sum(axis=0)
    assert per_label["support"] == pytest.approx(expected_support)
    assert (per_label["tp"] + per_label["fp"] + per_label["fn"] + per_label["tn"]) == pytest.approx(
        np.full(truth.shape[1], len(truth) if weights is None else weights.sum()))


def test_multilabel_counts_reject_bad_inputs():
    with pytest.raises(ValueError, match="same shape"):
        metrics.MultiLabelCounts.from_arrays(np.array([[1.0, 0.0]]), np.array([[0.2, 0.3, 0.5]]))
    with pytest.raises(ValueError, match="multi-hot 0/1"):
        metrics.MultiLabelCounts.from_arrays(np.array([[2.0, 0.0]]), np.array([[0.2, 0.3]]))
    with pytest.raises(ValueError, match="merge"):
        metrics.MultiLabelCounts.empty(2).merge(metrics.MultiLabelCounts.empty(3))
    with pytest.raises(ValueError, match="statistic"):
        metrics.MultiLabelScore("accuracy")
    assert np.isnan(metrics.MultiLabelCounts.empty(3).statistic("f1_micro"))


def test_multilabel_combiner_in_beam_matches_sklearn():
    """The shared counts combiner and the derived metrics, driven directly by Beam (TFMA's standard inputs)."""
    from sklearn.metrics import f1_score, hamming_loss

    truth, probabilities = _multilabel_sample(5, n=120, labels=4)
    predicted = (probabilities >= 0.5).astype(int)
    score = metrics.MultiLabelScore("hamming_loss").computations(example_weighted=False)
    micro = metrics.MultiLabelScore("f1_micro").computations(example_weighted=False)
    per_label = metrics.PerLabelMetrics().computations(example_weighted=False)
    counts = score[0]
    assert counts == micro[0] == per_label[0]  # one shared computation, de-duplicated by TFMA
    inputs = [metric_types.StandardMetricInputs(labels=t, predictions=p, example_weights=np.array([1.0]))
              for t, p in zip(truth, probabilities)]

    with beam.Pipeline() as pipeline:
        result = (
            pipeline
            | beam.Create(inputs)
            | beam.CombineGlobally(counts.combiner)
            | beam.Map(lambda partial: {**score[1].result(partial), **micro[1].result(partial),
                                        **per_label[1].result(partial)})
        )

        def check(got):
            values = {(k.name, k.sub_key.class_id if k.sub_key else None): v for k, v in got[0].items()}
            assert values[("hamming_loss", None)] == pytest.approx(hamming_loss(truth, predicted))
            assert values[("f1_micro", None)] == pytest.approx(f1_score(truth, predicted, average="micro"))
            want = f1_score(truth, predicted, average=None, zero_division=0)
            assert [values[("label_f1", i)] for i in range(4)] == pytest.approx(want)

        beam_util.assert_that(result, check)


def test_multilabel_metrics_through_tfma_match_sklearn():
    """pipeline.eval_config's multilabel metrics, run by TFMA itself on hand-made predictions."""
    from sklearn.metrics import accuracy_score, f1_score, hamming_loss, precision_recall_fscore_support

    run = evaluation_helpers.multilabel_run()
    values = run.overall()
    truth, predicted = run.labels, (run.probabilities >= 0.5).astype(int)
    assert values[("example_count", None)] == len(truth)
    assert values[("subset_accuracy", None)] == pytest.approx(accuracy_score(truth, predicted))
    assert values[("hamming_loss", None)] == pytest.approx(hamming_loss(truth, predicted))
    for average in ("micro", "macro"):
        p, r, f, _ = precision_recall_fscore_support(truth, predicted, average=average, zero_division=0)
        assert [values[(f"{m}_{average}", None)] for m in ("precision", "recall", "f1")] == pytest.approx([p, r, f])
    assert values[("f1_macro", None)] == pytest.approx(f1_score(truth, predicted, average="macro"))
    p, r, f, support = precision_recall_fscore_support(truth, predicted, average=None, zero_division=0)
    for statistic, want in (("precision", p), ("recall", r), ("f1", f), ("support", support)):
        assert [values[(f"label_{statistic}", i)] for i in range(truth.shape[1])] == pytest.approx(want), statistic
    baseline = run.overall(evaluation_helpers.BASELINE)
    assert baseline[("f1_macro", None)] == pytest.approx(
        f1_score(truth, (run.baseline_probabilities >= 0.5).astype(int), average="macro"))


# ----- binary and multiclass through TFMA ---------------------------------------------------------------------
def test_binary_metrics_through_tfma_match_sklearn():
    """Binary: TFMA's metrics binarized on class id 1 (the positive class) at threshold 0.5, against scikit-learn.

    AUC-ROC: TFMA sums over 10,000 probability buckets, sklearn uses every distinct score: equal to ~1e-4.
    AUC-PR: TFMA interpolates the precision-recall curve between its 10,000 thresholds (Davis & Goadrich), while
    sklearn's average_precision_score is a step-wise sum over the distinct scores, so the two estimators of the
    same area differ a little (≈0.001 on these 300 examples); 0.01 is allowed.
    """
    from sklearn.metrics import (
        accuracy_score,
        average_precision_score,
        cohen_kappa_score,
        confusion_matrix,
        f1_score,
        precision_score,
        recall_score,
        roc_auc_score,
    )

    run = evaluation_helpers.binary_run()
    values = run.overall()
    labels, p = run.labels, run.probabilities[:, 1]
    predicted = (p > 0.5).astype(int)
    assert values[("sparse_categorical_accuracy", None)] == pytest.approx(accuracy_score(labels, predicted))
    assert values[("cohen_kappa", None)] == pytest.approx(cohen_kappa_score(labels, predicted))
    assert values[("precision", 1)] == pytest.approx(precision_score(labels, predicted))
    assert values[("recall", 1)] == pytest.approx(recall_score(labels, predicted))
    assert values[("f1_score", 1)] == pytest.approx(f1_score(labels, predicted))
    assert values[("auc", 1)] == pytest.approx(roc_auc_score(labels, p), abs=1e-3)
    assert values[("auc_precision_recall", 1)] == pytest.approx(average_precision_score(labels, p), abs=0.01)

    tn, fp, fn, tp = confusion_matrix(labels, predicted).ravel()
    for slice_metrics in tfma.load_metrics(run.output):
        if slice_metrics.slice_key.single_slice_keys:
            continue
        for item in slice_metrics.metric_keys_and_values:
            if item.key.name == "confusion_matrix_at_thresholds" and item.key.model_name == "candidate" \
                    and not item.key.is_diff:
                (matrix,) = item.value.confusion_matrix_at_thresholds.matrices
                assert matrix.threshold == pytest.approx(0.5)
                assert (matrix.true_positives, matrix.false_positives, matrix.false_negatives,
                        matrix.true_negatives) == (tp, fp, fn, tn)


def test_top_k_and_quadratic_kappa_through_tfma_match_sklearn():
    from sklearn.metrics import accuracy_score, top_k_accuracy_score

    run = evaluation_helpers.multiclass_run()
    values = run.overall()
    names = run.class_names
    assert values[("top_2_accuracy", None)] == pytest.approx(top_k_accuracy_score(run.labels, run.probabilities, k=2))
    assert values[("sparse_categorical_accuracy", None)] == pytest.approx(
        accuracy_score(run.labels, run.probabilities.argmax(axis=1)))
    natural = sorted(names, key=int)
    expected = cohen_kappa_score([names[i] for i in run.labels], [names[i] for i in run.probabilities.argmax(axis=1)],
                                 labels=natural, weights="quadratic")
    assert values[("cohen_kappa_quadratic", None)] == pytest.approx(expected)


def test_top_k_of_at_least_the_class_count_is_one():
    """What TFMA's wrapped Keras metric gives when k >= the number of classes (the report flags it as trivial)."""
    import tf_keras

    metric = tf_keras.metrics.SparseTopKCategoricalAccuracy(k=5)
    metric.update_state(np.array([0, 1, 2]), np.array([[0.1, 0.2, 0.7], [0.5, 0.2, 0.3], [0.6, 0.3, 0.1]]))
    assert float(metric.result()) == 1.0
