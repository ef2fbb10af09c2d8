"""Tests for pipeline.pipeline: the DAG's shape, split configs, evaluation gates, TFRecord passthrough."""

from __future__ import annotations

import glob
import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_model_analysis as tfma
from tfx.components.example_gen.import_example_gen import executor as import_executor
from tfx.proto import example_gen_pb2
from tfx.types import standard_artifacts
from tfx.utils import proto_utils

from components.evaluator import custom_metrics as metrics
from components.example_gen import sources
from pipeline import fingerprint
from pipeline.configs import PipelineConfig
from pipeline.pipeline import KAPPA_METRIC, create_pipeline, eval_config, example_gen_configs
from tests.conftest import encode


def _ids(pipeline):
    return [c.id for c in pipeline.components]


def _upstream(pipeline, node_id):
    component = next(c for c in pipeline.components if c.id == node_id)
    return {c.id for c in component.upstream_nodes}


def test_dag_has_every_component_wired_in_order(digits_root, tmp_path):
    config = PipelineConfig().override([f"data.root={digits_root}", f"work_dir={tmp_path}"])
    pipeline = create_pipeline(config)
    assert sorted(_ids(pipeline)) == sorted(["ImageExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator",
                                             "accepted_statistics_resolver", "ValidationGate", "Transform", "Tuner",
                                             "Trainer", "latest_blessed_model_resolver", "Evaluator", "Pusher"])
    assert _upstream(pipeline, "ExampleValidator") == {"StatisticsGen", "SchemaGen"}
    assert _upstream(pipeline, "ValidationGate") == {"StatisticsGen", "ExampleValidator", "SchemaGen",
                                                     "accepted_statistics_resolver"}
    assert _upstream(pipeline, "Transform") == {"ImageExampleGen", "SchemaGen", "ValidationGate"}  # gate first
    assert _upstream(pipeline, "Tuner") == {"ImageExampleGen", "Transform", "SchemaGen"}
    assert _upstream(pipeline, "Trainer") == {"ImageExampleGen", "Transform", "SchemaGen", "Tuner"}
    assert _upstream(pipeline, "Evaluator") == {"ImageExampleGen", "Trainer", "latest_blessed_model_resolver"}
    assert _upstream(pipeline, "Pusher") == {"Trainer", "Evaluator"}
    assert pipeline.enable_cache
    assert pipeline.beam_pipeline_args == config.beam.pipeline_args()


def test_curated_schema_uses_import_schema_gen(digits_root, tmp_path):
    schema = tmp_path / "schema.pbtxt"
    schema.write_text('feature { name: "image" type: BYTES }\n')
    config = PipelineConfig().override([f"data.root={digits_root}", f"data.schema_path={schema}"])
    assert "ImportSchemaGen" in _ids(create_pipeline(config))


def test_code_changes_invalidate_the_cache_key(digits_root):
    config = PipelineConfig().override([f"data.root={digits_root}"])
    trainer = next(c for c in create_pipeline(config).components if c.id == "Trainer")
    custom = json.loads(trainer.exec_properties["custom_config"])
    assert len(custom["code_fingerprint"]) == 16
    assert custom["epochs"] == config.train.epochs


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
    (copy / "metrics.py").write_text((copy / "metrics.py").read_text() + "\n# edited\n")
    monkeypatch.setattr(fingerprint, "_ROOT", copy)
    assert eval_config(PipelineConfig()) != before


def test_hash_split_config_by_source_path():
    layout = sources.Layout("folders", "/data", {"all": "*/*"})
    input_config, output_config = example_gen_configs(layout, 0.75)
    assert [s.pattern for s in input_config.splits] == ["*/*"]
    assert [(s.name, s.hash_buckets) for s in output_config.split_config.splits] == [("train", 75), ("eval", 25)]
    assert output_config.split_config.partition_feature_name == "path"
    presplit = sources.Layout("folders", "/data", {"train": "train/*/*", "eval": "test/*/*"})
    input_config, output_config = example_gen_configs(presplit, 0.75)
    assert output_config is None and [s.name for s in input_config.splits] == ["train", "eval"]


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
    assert _gate(evaluation, "cohen_kappa_quadratic")[0].threshold.value_threshold.lower_bound.value == 0.4
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


def _cifar_style_records(path, rng, count):
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for i in range(count):
            image = encode(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), "PNG")
            example = tf.train.Example(features=tf.train.Features(feature={
                "image_raw": tf.train.Feature(bytes_list=tf.train.BytesList(value=[image])),
                "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[i % 3])),
            }))
            writer.write(example.SerializeToString())


def test_tfrecord_passthrough_uses_import_example_gen(tmp_path, rng):
    _cifar_style_records(tmp_path / "data" / "train" / "train.tfrecord", rng, 9)
    _cifar_style_records(tmp_path / "data" / "test" / "test.tfrecord", rng, 3)
    config = PipelineConfig().override([f"data.root={tmp_path / 'data'}", "data.image_feature=image_raw"])
    pipeline = create_pipeline(config)
    example_gen = pipeline.components[0]
    assert type(example_gen).__name__ == "ImportExampleGen"
    transform = next(c for c in pipeline.components if c.id == "Transform")
    assert json.loads(transform.exec_properties["custom_config"])["image_feature"] == "image_raw"

    # and the records really go through ImportExampleGen unchanged
    layout = sources.detect_layout(str(tmp_path / "data"))
    input_config, _ = example_gen_configs(layout, 0.8)
    examples = standard_artifacts.Examples()
    examples.uri = str(tmp_path / "out")
    import_executor.Executor().Do({}, {"examples": [examples]}, {
        "input_base": layout.input_base,
        "input_config": proto_utils.proto_to_json(input_config),
        "output_config": proto_utils.proto_to_json(example_gen_pb2.Output()),
        "output_data_format": example_gen_pb2.FORMAT_TF_EXAMPLE,
        "output_file_format": example_gen_pb2.FORMAT_TFRECORDS_GZIP,
    })
    counts = {split: sum(1 for _ in tf.data.TFRecordDataset(
        glob.glob(os.path.join(examples.uri, f"Split-{split}", "*")), compression_type="GZIP"))
        for split in ("train", "eval")}
    assert counts == {"train": 9, "eval": 3}
