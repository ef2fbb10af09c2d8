"""Tests for pipeline.component_settings: PipelineConfig → the components' typed settings and payloads, and back."""

from __future__ import annotations

import dataclasses
import json

import pytest

from components.trainer.settings import TrainSettings
from components.transform.settings import TransformSettings
from pipeline import fingerprint
from pipeline.component_settings import component_settings, config_sections
from pipeline.configs import PipelineConfig, TrainConfig, TunerConfig


def test_component_custom_configs_carry_the_config():
    config = PipelineConfig().override(["data.image_feature=image_raw", "train.epochs=3"])
    assert component_settings(config, "folders").transform.to_custom_config()["image_feature"] == "image"
    settings = component_settings(config, "tfrecord")
    transform = settings.transform.to_custom_config()
    assert transform["image_feature"] == "image_raw" and transform["image_size"] == 224  # 0: Lite0's native size
    trainer = settings.train.to_custom_config()
    assert trainer["epochs"] == 3 and trainer["image_feature"] == "image_raw"
    json.dumps(trainer)  # TFX serialises custom_config as JSON


def test_payloads_keep_their_shape():
    """The keys the DAG and Kubeflow's transform_config / train_config parameters have always carried."""
    settings = component_settings(PipelineConfig(), "folders")
    transform_keys = {"image_feature", "label_feature", "image_size", "normalization", "task", "code_fingerprint",
                      "label_classes", "positive_class"}  # the stable label vocabulary (issue 23)
    assert set(settings.transform.to_custom_config()) == transform_keys
    train = settings.train.to_custom_config()
    assert set(train) == transform_keys | {f.name for f in dataclasses.fields(TrainConfig)} | {"tuner", "preset"}
    assert train["tuner"] == dataclasses.asdict(TunerConfig())
    assert train["conv_filters"] == [32, 64, 128]  # JSON: a list
    assert (train["normalization"], train["weights"], train["preset"]) == ("lite", "imagenet", "default")
    demo = component_settings(PipelineConfig().override(["preset=demo"]), "folders").train.to_custom_config()
    assert (demo["normalization"], demo["weights"], demo["image_size"]) == ("zero_one", "none", 32)  # simple_cnn


def test_payloads_carry_the_code_fingerprints():
    settings = component_settings(PipelineConfig(), "csv")
    assert settings.transform.code_fingerprint == fingerprint.source_fingerprint(fingerprint.TRANSFORM_SOURCES)
    assert settings.train.code_fingerprint == fingerprint.source_fingerprint(fingerprint.TRAINER_SOURCES)
    given = component_settings(PipelineConfig(), "csv", transform_code="t1", train_code="")
    assert (given.transform.code_fingerprint, given.train.code_fingerprint) == ("t1", "")


def test_payloads_read_back_as_the_same_settings():
    settings = component_settings(PipelineConfig().override(["train.task=binary", "tuner.enabled=true"]), "folders")
    transform = json.loads(json.dumps(settings.transform.to_custom_config()))  # as TFX hands it over
    train = json.loads(json.dumps(settings.train.to_custom_config()))
    assert TransformSettings.from_custom_config(transform) == settings.transform
    assert TrainSettings.from_custom_config(train) == settings.train


@pytest.mark.parametrize("overrides", [
    [],
    ["data.image_feature=image_raw", "data.label_feature=y", "transform.image_size=64", "train.task=multilabel",
     "train.conv_filters=[8, 16]", "train.augment_flip=true", "tuner.enabled=true", "tuner.algorithm=bayesian"],
    ["train.model=mobilenet_v2", "train.fine_tune_epochs=2", "train.fine_tune=30%"],  # auto: resolved
    ["train.model=mobilenet_v2", "transform.normalization=zero_one", "train.weights=none"],  # explicit, not auto
    ["train.model=simple_cnn", "transform.normalization=zero_one", "train.weights=none"],  # = auto: read back as auto
])
def test_config_sections_invert_component_settings(overrides):
    config = PipelineConfig().override(overrides)
    sections = config_sections(component_settings(config, "tfrecord"))
    assert set(sections) == {"data", "transform", "train", "tuner", "preset"}
    expected = config.to_dict()
    assert sections["data"] == {"image_feature": config.data.image_feature, "label_feature": config.data.label_feature}
    assert sections["tuner"] == expected["tuner"]
    back = PipelineConfig.from_dict({**sections, "data": {**expected["data"], **sections["data"]},
                                     "eval": expected["eval"]})
    automatic = "train.model=simple_cnn" in overrides  # explicit values equal to what auto resolves to
    if automatic:
        assert (back.transform.normalization, back.train.weights) == ("auto", "auto")
        back = back.override(["transform.normalization=zero_one", "train.weights=none"])
    assert back == config


def test_a_new_backbone_brings_its_own_normalisation_and_weights():
    demo = PipelineConfig().override(["preset=demo"])
    sections = config_sections(component_settings(demo, "folders"))  # simple_cnn: zero_one, none
    assert (sections["transform"]["normalization"], sections["train"]["weights"]) == ("auto", "auto")
    config = PipelineConfig.from_dict(sections).override(["train.model=efficientnet_lite0"])
    settings = component_settings(config, "folders")
    assert (settings.transform.normalization, settings.train.weights) == ("lite", "imagenet")


def test_a_curated_schema_fixes_the_label_vocabulary_and_binary_names_its_positive_class(tmp_path):
    schema = tmp_path / "schema.pbtxt"
    schema.write_text('feature { name: "label" type: BYTES domain: "label" }\n'
                      'feature { name: "image" type: BYTES }\n'
                      'string_domain { name: "label" value: "scan" value: "photo" }\n')
    config = PipelineConfig().override([f"data.schema_path={schema}", "train.task=binary",
                                        "train.positive_class=photo"])
    settings = component_settings(config, "folders")
    assert settings.transform.label_classes == settings.train.label_classes == ("scan", "photo")
    assert settings.transform.positive_class == settings.train.positive_class == "photo"
    assert component_settings(PipelineConfig(), "folders").transform.label_classes == ()  # no schema: sorted
