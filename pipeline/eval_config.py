"""`eval_config`: the Evaluator's tfma.EvalConfig built from a `PipelineConfig` (`train.task` and the `eval.*` gates).

The metrics each task computes and the gate syntax are described in components/evaluator/catalogue.py; a compiled
EvalConfig is read back into `eval.*` settings by `catalogue.eval_fields_from_tfma` (Kubeflow runtime parameters).
"""

from __future__ import annotations

import json
from typing import Any

import tensorflow_model_analysis as tfma
from google.protobuf import wrappers_pb2

from components import features
from components.evaluator import catalogue as evaluation
from components.evaluator import custom_metrics as metrics
from components.evaluator import metric_keys as metric_names
from pipeline import fingerprint
from pipeline.configs import PipelineConfig

ACCURACY_METRIC = metric_names.ACCURACY  # multiclass and binary; multilabel gates subset accuracy
KAPPA_METRIC = metric_names.COHEN_KAPPA  # unweighted; see metric_names.kappa_name for the weighted ones


def eval_config(config: PipelineConfig, label_feature: str = features.LABEL) -> tfma.EvalConfig:
    """TFMA config for `config.train.task` (metrics per task and the gate syntax: components/evaluator/catalogue.py).

    Every gate — `eval.min_accuracy`, `eval.min_kappa` with `eval.max_regression`, and each `eval.gates` entry — is
    a value bound and/or a change threshold against the baseline model on the overall slice. Binary metrics are
    TFMA's own, binarized on class id 1 (the positive class: the model outputs [1 - p, p]); multilabel metrics are
    `components.evaluator.custom_metrics` ones, since the number of labels is unknown when this config is built.
    """
    task, settings = config.train.task, config.eval
    bounds = evaluation.resolve_gates(task, settings.min_accuracy, settings.min_kappa, settings.max_regression,
                                      settings.gates, settings.top_k, settings.kappa_weighting)

    def gate(name: str) -> list[tfma.PerSliceMetricThreshold]:
        # Gates apply to the overall slice only: a plain `threshold` would also gate every per-class slice,
        # where kappa is undefined (one true class).
        wanted = bounds.get(name)
        if wanted is None:
            return []
        threshold = tfma.MetricThreshold()
        if wanted.lower is not None:
            threshold.value_threshold.lower_bound.value = wanted.lower
        if wanted.upper is not None:
            threshold.value_threshold.upper_bound.value = wanted.upper
        if wanted.max_drop is not None:
            threshold.change_threshold.direction = (tfma.MetricDirection.HIGHER_IS_BETTER if wanted.higher_is_better
                                                    else tfma.MetricDirection.LOWER_IS_BETTER)
            threshold.change_threshold.absolute.value = 0.0 - wanted.max_drop if wanted.higher_is_better \
                else wanted.max_drop  # (0.0 - x: no "-0.0000" for max_drop=0)
        return [tfma.PerSliceMetricThreshold(slicing_specs=[tfma.SlicingSpec()], threshold=threshold)]

    # The Evaluator's cache key holds the eval config but not the code of custom metrics (a module is cached by
    # name): their config carries a hash of that code, so editing it re-runs the evaluation.
    metrics_code = fingerprint.source_fingerprint(fingerprint.METRICS_SOURCES)

    def metric(class_name: str, name: str, module: str = "", **options: Any) -> tfma.MetricConfig:
        if module == metrics.__name__:
            options["code_fingerprint"] = metrics_code
        return tfma.MetricConfig(class_name=class_name, module=module, config=json.dumps({"name": name, **options}),
                                 per_slice_thresholds=gate(name))

    count = metric("ExampleCount", metric_names.EXAMPLE_COUNT)
    kappa_options: dict[str, Any] = {}
    if settings.kappa_weighting != "none":
        kappa_options = {"weighting": settings.kappa_weighting, "label_feature": label_feature,
                         "class_order": list(settings.kappa_class_order)}
    kappa = metric("CohenKappa", metric_names.kappa_name(settings.kappa_weighting), metrics.__name__,
                   **kappa_options)
    accuracy = metric("SparseCategoricalAccuracy", ACCURACY_METRIC)
    slicing = [tfma.SlicingSpec(), tfma.SlicingSpec(feature_keys=[label_feature])]  # overall, and per true class
    if task == "multiclass":
        specs = [tfma.MetricsSpec(metrics=[
            count, accuracy, kappa,
            metric("SparseTopKCategoricalAccuracy", metric_names.top_k_name(settings.top_k), k=settings.top_k),
            tfma.MetricConfig(class_name="MultiClassConfusionMatrixPlot"),
        ])]
    elif task == "binary":
        specs = [
            tfma.MetricsSpec(metrics=[count, accuracy, kappa,
                                      tfma.MetricConfig(class_name="MultiClassConfusionMatrixPlot")]),
            tfma.MetricsSpec(
                binarize=tfma.BinarizationOptions(class_ids={"values": [metric_names.POSITIVE_CLASS_ID]}),
                metrics=[
                    metric("Precision", metric_names.PRECISION),
                    metric("Recall", metric_names.RECALL),
                    metric("F1Score", metric_names.F1_SCORE),
                    metric("AUC", metric_names.AUC),  # 10,000 thresholds (TFMA's default)
                    metric("AUCPrecisionRecall", metric_names.AUC_PR),
                    metric("ConfusionMatrixAtThresholds", metric_names.CONFUSION_AT_THRESHOLD,
                           thresholds=[metric_names.BINARY_THRESHOLD]),
                ]),
        ]
    else:  # multilabel: per-label metrics instead of slices by label (an example carries several)
        slicing = [tfma.SlicingSpec()]
        specs = [tfma.MetricsSpec(metrics=[
            count,
            *(metric("MultiLabelScore", statistic, metrics.__name__, statistic=statistic)
              for statistic in metric_names.MULTILABEL_STATISTICS),
            metric("PerLabelMetrics", "per_label", metrics.__name__),
        ])]
    return tfma.EvalConfig(
        model_specs=[
            tfma.ModelSpec(
                signature_name="serving_examples",
                label_key=features.LABEL_XF,
                prediction_key="probabilities",
                preprocessing_function_names=["transform_features"],
            )
        ],
        slicing_specs=slicing,
        metrics_specs=specs,
        # Every metric is configured above. TFMA's default would also evaluate the metrics compiled into the Keras
        # model, which reloads the whole Keras model in each metrics combiner (about half of a small evaluation's
        # time) for values nothing reads.
        options=tfma.Options(include_default_metrics=wrappers_pb2.BoolValue(value=False)),
    )
