"""Tests for pipeline.eval_config: the Evaluator's tfma.EvalConfig per task, its gates, and the custom metrics' code
fingerprint."""

from __future__ import annotations

import json
import shutil

import pytest
import tensorflow_model_analysis as tfma

from components.evaluator import custom_metrics as metrics
from pipeline import fingerprint
from pipeline.configs import PipelineConfig
from pipeline.eval_config import KAPPA_METRIC, eval_config


def test_custom_metric_code_changes_invalidate_the_evaluator_cache_key(monkeypatch, tmp_path):
    for task in ("multiclass", "multilabel"):
        configs = [m for spec in eval_config(PipelineConfig().override([f"train.task={task}"])).metrics_specs
                   for m in spec.metrics]
        ours = [json.loads(m.config) for m in configs if m.module == metrics.__name__]
        assert ours and all(
            c["code_fingerprint"] == fingerprint.source_fingerprint(fingerprint.METRICS_SOURCES) for c in ours)
        assert all("code_fingerprint" not in json.loads(m.config or "{}") for m in configs if not m.module)
        # TFMA builds each metric from its config's JSON: the fingerprint is accepted and does not reach the
        # metric's computations
        for m in configs:
            if m.module == metrics.__name__:
                built = getattr(metrics, m.class_name)(**json.loads(m.config))
                assert "code_fingerprint" not in built.get_config()
    before = eval_config(PipelineConfig())
    copy = tmp_path / "components"
    shutil.copytree(fingerprint._ROOT, copy)
    edited = copy / "evaluator" / "custom_metrics.py"
    edited.write_text(edited.read_text() + "\n# edited\n")
    monkeypatch.setattr(fingerprint, "_ROOT", copy)
    assert eval_config(PipelineConfig()) != before


def test_eval_config_gates_accuracy_and_kappa_with_no_regression():
    config = PipelineConfig().override(["eval.min_accuracy=0.9", "eval.min_kappa=0.8", "eval.max_regression=0.01"])
    evaluation = eval_config(config)
    gates = {m.class_name: m.per_slice_thresholds for m in evaluation.metrics_specs[0].metrics}
    for name in ("SparseCategoricalAccuracy", "CohenKappa"):
        assert len(gates[name]) == 1 and list(gates[name][0].slicing_specs) == [tfma.SlicingSpec()]  # overall only
    assert gates["SparseCategoricalAccuracy"][0].threshold.value_threshold.lower_bound.value == 0.9
    kappa = gates["CohenKappa"][0].threshold
    assert kappa.value_threshold.lower_bound.value == 0.8
    assert kappa.change_threshold.absolute.value == -0.01
    assert kappa.change_threshold.direction == tfma.MetricDirection.HIGHER_IS_BETTER
    assert {m.module for m in evaluation.metrics_specs[0].metrics if m.class_name == "CohenKappa"} == {
        "components.evaluator.custom_metrics"}
    assert KAPPA_METRIC == "cohen_kappa"
    assert [list(s.feature_keys) for s in evaluation.slicing_specs] == [[], ["label"]]
    spec = evaluation.model_specs[0]
    assert (spec.label_key, spec.signature_name) == ("label_xf", "serving_examples")
    assert list(spec.preprocessing_function_names) == ["transform_features"]


def _metrics(evaluation):
    """(class name, options) of every metric, per MetricsSpec."""
    return [[(m.class_name, json.loads(m.config) if m.config else {}) for m in spec.metrics]
            for spec in evaluation.metrics_specs]


def _gate(evaluation, name):
    for spec in evaluation.metrics_specs:
        for metric in spec.metrics:
            if metric.config and json.loads(metric.config).get("name") == name:
                return metric.per_slice_thresholds
    raise KeyError(name)


def test_multiclass_eval_config_has_top_k_and_the_configured_kappa():
    evaluation = eval_config(PipelineConfig().override(["eval.top_k=3", "eval.kappa_weighting=quadratic",
                                                        "eval.kappa_class_order=[low, mid, high]"]), "grade")
    (metrics,) = _metrics(evaluation)
    assert [c for c, _ in metrics] == ["ExampleCount", "SparseCategoricalAccuracy", "CohenKappa",
                                       "SparseTopKCategoricalAccuracy", "MultiClassConfusionMatrixPlot"]
    options = dict(metrics)
    assert options["SparseTopKCategoricalAccuracy"] == {"name": "top_3_accuracy", "k": 3}
    assert options["CohenKappa"] == {"name": "cohen_kappa_quadratic", "weighting": "quadratic",
                                     "label_feature": "grade", "class_order": ["low", "mid", "high"],
                                     "code_fingerprint": fingerprint.source_fingerprint(fingerprint.METRICS_SOURCES)}
    assert _gate(evaluation, "cohen_kappa_quadratic")[0].threshold.value_threshold.lower_bound.value == 0.6
    assert _gate(evaluation, "top_3_accuracy") == []  # not gated unless eval.gates says so


def test_binary_eval_config_binarizes_the_positive_class():
    config = PipelineConfig().override(["train.task=binary", "eval.gates=['auc>=0.85,max_drop=0.01', recall>=0.6]"])
    evaluation = eval_config(config)
    assert [list(s.feature_keys) for s in evaluation.slicing_specs] == [[], ["label"]]
    plain, binarized = evaluation.metrics_specs
    assert not plain.HasField("binarize")
    assert list(binarized.binarize.class_ids.values) == [1]  # the positive class: vocabulary index 1
    assert [c for c, _ in _metrics(evaluation)[0]] == ["ExampleCount", "SparseCategoricalAccuracy", "CohenKappa",
                                                       "MultiClassConfusionMatrixPlot"]
    assert [(c, o["name"]) for c, o in _metrics(evaluation)[1]] == [
        ("Precision", "precision"), ("Recall", "recall"), ("F1Score", "f1_score"), ("AUC", "auc"),
        ("AUCPrecisionRecall", "auc_precision_recall"),
        ("ConfusionMatrixAtThresholds", "confusion_matrix_at_thresholds")]
    assert dict(_metrics(evaluation)[1])["ConfusionMatrixAtThresholds"]["thresholds"] == [0.5]
    (auc,) = _gate(evaluation, "auc")
    assert list(auc.slicing_specs) == [tfma.SlicingSpec()]  # overall slice only
    assert auc.threshold.value_threshold.lower_bound.value == 0.85
    assert auc.threshold.change_threshold.absolute.value == -0.01
    assert auc.threshold.change_threshold.direction == tfma.MetricDirection.HIGHER_IS_BETTER
    (recall,) = _gate(evaluation, "recall")
    assert recall.threshold.value_threshold.lower_bound.value == 0.6 and not recall.threshold.HasField(
        "change_threshold")


def test_multilabel_eval_config_uses_the_custom_metrics_and_upper_bounds():
    config = PipelineConfig().override(["train.task=multilabel", "eval.min_accuracy=0.25",
                                        "eval.gates=['hamming_loss<=0.1,max_drop=0.01']"])
    evaluation = eval_config(config)
    assert [list(s.feature_keys) for s in evaluation.slicing_specs] == [[]]  # per-label metrics, no label slices
    (metrics,) = _metrics(evaluation)
    assert [o.get("statistic") for c, o in metrics if c == "MultiLabelScore"] == [
        "subset_accuracy", "hamming_loss", "f1_micro", "f1_macro", "precision_micro", "precision_macro",
        "recall_micro", "recall_macro"]
    assert {c for c, _ in metrics} == {"ExampleCount", "MultiLabelScore", "PerLabelMetrics"}
    assert {m.module for s in evaluation.metrics_specs for m in s.metrics if m.class_name != "ExampleCount"} == {
        "components.evaluator.custom_metrics"}
    (subset,) = _gate(evaluation, "subset_accuracy")  # eval.min_accuracy gates the exact-match accuracy
    assert subset.threshold.value_threshold.lower_bound.value == 0.25
    (hamming,) = _gate(evaluation, "hamming_loss")
    assert hamming.threshold.value_threshold.upper_bound.value == pytest.approx(0.1)
    assert not hamming.threshold.value_threshold.HasField("lower_bound")
    assert hamming.threshold.change_threshold.direction == tfma.MetricDirection.LOWER_IS_BETTER
    assert hamming.threshold.change_threshold.absolute.value == pytest.approx(0.01)


