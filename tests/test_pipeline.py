"""Tests for pipeline.pipeline: the DAG's shape, split configs, evaluation gates, TFRecord passthrough."""

from __future__ import annotations

import glob
import json
import os

import numpy as np
import tensorflow as tf
import tensorflow_model_analysis as tfma
from tfx.components.example_gen.import_example_gen import executor as import_executor
from tfx.proto import example_gen_pb2
from tfx.types import standard_artifacts
from tfx.utils import proto_utils

from components.ingest import sources
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
                                             "Transform", "Tuner", "Trainer", "latest_blessed_model_resolver",
                                             "Evaluator", "Pusher"])
    assert _upstream(pipeline, "ExampleValidator") == {"StatisticsGen", "SchemaGen"}
    assert _upstream(pipeline, "Transform") == {"ImageExampleGen", "SchemaGen"}
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
        "components.metrics"}
    assert KAPPA_METRIC == "cohen_kappa"
    assert [list(s.feature_keys) for s in evaluation.slicing_specs] == [[], ["label"]]
    spec = evaluation.model_specs[0]
    assert (spec.label_key, spec.signature_name) == ("label_xf", "serving_examples")
    assert list(spec.preprocessing_function_names) == ["transform_features"]


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
