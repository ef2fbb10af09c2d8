"""Tests for pipeline.pipeline: the DAG's shape, split configs, the component payloads, TFRecord input."""

from __future__ import annotations

import glob
import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
from tfx.proto import example_gen_pb2
from tfx.types import standard_artifacts

from components.example_gen import sources
from components.example_gen.executor import Executor
from components.example_gen.options import ingest_options
from components.trainer.settings import TrainSettings
from pipeline.component_settings import component_settings
from pipeline.configs import ConfigError, PipelineConfig
from pipeline.pipeline import create_pipeline, example_gen_configs
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


def test_dag_payloads_are_the_component_settings(digits_root):
    config = PipelineConfig().override([f"data.root={digits_root}", "train.epochs=3", "tuner.enabled=true"])
    components = {c.id: c for c in create_pipeline(config).components}
    settings = component_settings(config, "folders")
    assert json.loads(components["Transform"].exec_properties["custom_config"]) == \
        settings.transform.to_custom_config()
    for node in ("Tuner", "Trainer"):
        payload = json.loads(components[node].exec_properties["custom_config"])
        assert payload == settings.train.to_custom_config()
        assert TrainSettings.from_custom_config(payload) == settings.train  # what the module files read
    gate = components["ValidationGate"].exec_properties
    assert (gate["image_feature"], gate["label_feature"]) == ("image", "label")


def test_hash_split_config_by_source_path():
    layout = sources.Layout("folders", "/data", {"all": "*/*"})
    input_config, output_config = example_gen_configs(layout, 0.75)
    assert [s.pattern for s in input_config.splits] == ["*/*"]
    assert [(s.name, s.hash_buckets) for s in output_config.split_config.splits] == [("train", 75), ("eval", 25)]
    assert output_config.split_config.partition_feature_name == "path"
    presplit = sources.Layout("folders", "/data", {"train": "train/*/*", "eval": "test/*/*"})
    input_config, output_config = example_gen_configs(presplit, 0.75)
    assert output_config is None and [s.name for s in input_config.splits] == ["train", "eval"]


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


def test_tfrecords_go_through_image_example_gen_with_their_feature_and_label_names(tmp_path, rng):
    # TFX's CIFAR-10 example layout: labels.txt beside train/ and test/ (formerly passed through ImportExampleGen
    # unchecked; now every record is checked, counted and named)
    _cifar_style_records(tmp_path / "data" / "train" / "train.tfrecord", rng, 9)
    _cifar_style_records(tmp_path / "data" / "test" / "test.tfrecord", rng, 3)
    (tmp_path / "data" / "labels.txt").write_text("cat\ndog\nbird\n")
    config = PipelineConfig().override([f"data.root={tmp_path / 'data'}", "data.image_feature=image_raw"])
    pipeline = create_pipeline(config)
    example_gen = pipeline.components[0]
    assert type(example_gen).__name__ == "ImageExampleGen"
    options = ingest_options(example_gen.exec_properties)
    assert (options["format"], options["image_feature"], options["label_feature"], options["label_names"]) == (
        "tfrecord", "image_raw", "label", ["cat", "dog", "bird"])
    transform = next(c for c in pipeline.components if c.id == "Transform")
    assert json.loads(transform.exec_properties["custom_config"])["image_feature"] == "image_raw"

    # and the records really go through the ImageExampleGen executor with these options
    examples = standard_artifacts.Examples()
    examples.uri = str(tmp_path / "out")
    properties = example_gen.exec_properties
    Executor().Do({}, {"examples": [examples]}, {
        "input_base": properties["input_base"],
        "input_config": properties["input_config"],
        "output_config": properties["output_config"],
        "output_data_format": example_gen_pb2.FORMAT_TF_EXAMPLE,
        "output_file_format": example_gen_pb2.FORMAT_TFRECORDS_GZIP,
        "custom_config": properties["custom_config"],
    })
    labels = {split: sorted(tf.train.Example.FromString(r.numpy()).features.feature["label"].bytes_list.value[0]
                            for r in tf.data.TFRecordDataset(glob.glob(os.path.join(examples.uri, f"Split-{split}",
                                                                                    "*")), compression_type="GZIP"))
              for split in ("train", "eval")}
    assert labels == {"train": [b"bird"] * 3 + [b"cat"] * 3 + [b"dog"] * 3, "eval": [b"bird", b"cat", b"dog"]}
    assert examples.get_int_custom_property("files_seen") == 12


def _fit_and_evaluated_splits(pipeline):
    components = {c.id: c for c in pipeline.components}
    fit = {node: (json.loads(components[node].exec_properties["train_args"])["splits"],
                  json.loads(components[node].exec_properties["eval_args"])["splits"]) for node in ("Tuner", "Trainer")}
    return fit, json.loads(components["Evaluator"].exec_properties["example_splits"])


def test_a_val_folder_is_the_trainers_validation_data_and_test_the_evaluators(tmp_path, rng):
    root = tmp_path / "data"
    for split in ("train", "val", "test"):
        for label in ("cat", "dog"):
            (root / split / label).mkdir(parents=True)
            (root / split / label / "1.png").write_bytes(encode(rng.integers(0, 256, (8, 8, 3), np.uint8), "PNG"))
    config = PipelineConfig().override([f"data.root={root}", f"work_dir={tmp_path / 'work'}"])
    fit, evaluated = _fit_and_evaluated_splits(create_pipeline(config))
    assert fit == {"Tuner": (["train"], ["val"]), "Trainer": (["train"], ["val"])}
    assert evaluated == ["eval"]
    example_gen = next(c for c in create_pipeline(config).components if c.id == "ImageExampleGen")
    splits = json.loads(example_gen.exec_properties["input_config"])["splits"]
    assert [(s["name"], s["pattern"]) for s in splits] == [("train", "train/*/*"), ("val", "val/*/*"),
                                                         ("eval", "test/*/*")]
    shutil.rmtree(root / "test")  # train + val: val stays the eval split, validation is carved off train
    fit, evaluated = _fit_and_evaluated_splits(create_pipeline(config))
    assert fit["Trainer"] == (["train"], ["eval"]) and evaluated == ["eval"]


def test_class_selection_on_passed_through_tfrecords_is_refused_by_name(tmp_path, rng):
    _cifar_style_records(tmp_path / "data" / "train" / "train.tfrecord", rng, 3)
    _cifar_style_records(tmp_path / "data" / "test" / "test.tfrecord", rng, 3)
    config = PipelineConfig().override([f"data.root={tmp_path / 'data'}", "data.exclude_classes=[3]"])
    with pytest.raises(ConfigError, match="data.exclude_classes / data.class_map: a TFRecord's label is only known"):
        create_pipeline(config)
