"""Tests for components.metrics: Cohen's kappa against scikit-learn, directly and through TFMA."""

from __future__ import annotations

import apache_beam as beam
import numpy as np
import pytest
import tensorflow_model_analysis as tfma
from apache_beam.testing import util as beam_util
from sklearn.metrics import cohen_kappa_score, confusion_matrix
from tensorflow_model_analysis.metrics import metric_types, metric_util

from components import metrics


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
            key = metric_types.MetricKey(name=metrics.COHEN_KAPPA_NAME, example_weighted=False)
            assert values[key] == pytest.approx(expected, abs=1e-9)

        beam_util.assert_that(result, check)


def test_metric_is_configurable_by_name_like_the_evaluator_does():
    from tensorflow_model_analysis.metrics import metric_specs

    config = tfma.MetricConfig(class_name="CohenKappa", module=metrics.__name__, config='"weighting": "linear"')
    instance = metric_specs.metric_instance(config)
    assert isinstance(instance, metrics.CohenKappa)
    assert instance.get_config() == {"name": metrics.COHEN_KAPPA_NAME, "weighting": "linear"}
