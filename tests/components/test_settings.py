"""Tests for components.settings, components.transform.settings and components.trainer.settings: the typed
`custom_config` of the Transform, Tuner and Trainer module files — every field round-trips, and unknown, missing or
invalid fields are refused by name."""

from __future__ import annotations

import json
import re

import pytest

from components.settings import SettingsError
from components.trainer.settings import FineTuneScope, TrainSettings, TunerSettings, parse_fine_tune
from components.transform import preprocessing
from components.transform import settings as transform_settings
from components.transform.settings import TransformSettings

# Every field set to a value other than the config default, so a field that does not round-trip shows.
TRANSFORM = {"image_feature": "image_raw", "label_feature": "y", "image_size": 64, "normalization": "caffe",
             "task": "multilabel", "code_fingerprint": "0123456789abcdef", "label_classes": ["b", "a"],
             "positive_class": "a"}
TUNER = {"enabled": True, "algorithm": "hyperband", "max_trials": 7, "epochs_per_trial": 3}
TRAIN = {
    **TRANSFORM, "model": "vgg16", "weights": "/weights/vgg16.h5", "epochs": 5, "fine_tune_epochs": 2,
    "fine_tune": "25%", "fine_tune_learning_rate": 2e-5, "batch_size": 16, "learning_rate": 0.01,
    "optimizer": "rmsprop", "weight_decay": 0.01, "dropout": 0.5, "dense_units": 64, "conv_filters": [8, 16],
    "cnn_pooling": "flatten",
    "cnn_block_dropout": 0.1, "augment_flip": True, "augment_rotation": 0.05, "augment_zoom": 0.1,
    "augment_translation": 0.2, "augment_crop": 0.3, "augment_color": 0.2, "label_smoothing": 0.05, "tta_flip": True,
    "class_weights": "on", "cache_features": False,
    "cache_dataset_mb": 64, "early_stopping_patience": 5, "early_stopping_monitor": "val_accuracy",
    "reduce_lr_patience": 2, "lr_schedule": "constant", "warmup_epochs": 1.5, "validation_fraction": 0.2, "seed": 7,
    "device": "cpu", "mixed_precision": "off", "gpu_batch_size": 256, "preset": "fast", "tuner": TUNER,
    "tflite": False, "tflite_eval_images": 50,
}

INVALID = {  # field → a value the component must refuse
    "image_feature": "", "label_feature": "", "image_size": 4, "normalization": "auto", "task": "regression",
    "model": "", "weights": "", "epochs": 0, "fine_tune_epochs": -1, "fine_tune": "1.0",
    "fine_tune_learning_rate": 0, "batch_size": 0, "learning_rate": -1, "optimizer": "adagrad", "weight_decay": 1.0,
    "dropout": 1.0,
    "dense_units": -1, "conv_filters": [], "cnn_pooling": "max", "cnn_block_dropout": 1, "augment_flip": "maybe",
    "augment_rotation": 0.6, "augment_zoom": 1.0, "augment_translation": -0.1, "augment_crop": 1.0,
    "augment_color": 0.6, "label_smoothing": 0.5, "tta_flip": [1],
    "class_weights": "balanced", "cache_features": "perhaps", "cache_dataset_mb": -1, "early_stopping_patience": -1,
    "early_stopping_monitor": "val_auc", "reduce_lr_patience": -2, "lr_schedule": "step", "warmup_epochs": -1,
    "device": "tpu", "mixed_precision": "maybe", "gpu_batch_size": -1, "preset": ["fast"],
    "validation_fraction": 0.5, "seed": "forty-two", "tuner": "on", "code_fingerprint": 123,
    "label_classes": "ab", "positive_class": 1, "tflite": "sometimes", "tflite_eval_images": 0,
}


def _as_tfx_hands_it_over(payload):
    return json.loads(json.dumps(payload))


@pytest.mark.parametrize(("cls", "payload"), [(TransformSettings, TRANSFORM), (TrainSettings, TRAIN)])
def test_every_field_round_trips(cls, payload):
    settings = cls.from_custom_config(_as_tfx_hands_it_over(payload))
    assert settings.to_custom_config() == payload
    assert cls.from_custom_config(_as_tfx_hands_it_over(settings.to_custom_config())) == settings
    assert set(cls.model_fields) == set(payload)  # the tables above name every field


def test_settings_are_typed_and_frozen():
    settings = TrainSettings.from_custom_config(TRAIN)
    assert settings.conv_filters == (8, 16) and isinstance(settings.tuner, TunerSettings)
    assert settings.tuner.algorithm == "hyperband" and settings.fine_tune_scope == FineTuneScope(share=0.25)
    assert isinstance(settings, TransformSettings)  # the Trainer applies the Transform graph with these
    with pytest.raises(ValueError, match="frozen"):
        settings.epochs = 9
    with pytest.raises(ValueError, match="frozen"):
        settings.tuner.enabled = False


@pytest.mark.parametrize("field", sorted(INVALID))
def test_invalid_values_are_refused_naming_the_field(field):
    got = re.escape(repr(INVALID[field]))
    with pytest.raises(SettingsError, match=rf"^custom_config field train\.{field}: .*; got {got}$"):
        TrainSettings.from_custom_config({**TRAIN, field: INVALID[field]})
    if field in TRANSFORM:
        with pytest.raises(SettingsError, match=rf"^custom_config field transform\.{field}: "):
            TransformSettings.from_custom_config({**TRANSFORM, field: INVALID[field]})


@pytest.mark.parametrize(("field", "value"), [("max_trials", 0), ("epochs_per_trial", 0), ("algorithm", "grid"),
                                              ("enabled", "sometimes")])
def test_invalid_tuner_values_name_the_nested_field(field, value):
    with pytest.raises(SettingsError, match=rf"^custom_config field train\.tuner\.{field}: "):
        TrainSettings.from_custom_config({**TRAIN, "tuner": {**TUNER, field: value}})


def test_unknown_and_missing_fields_are_refused_by_name():
    with pytest.raises(SettingsError, match=r"custom_config field train\.epoch: Extra inputs are not permitted"):
        TrainSettings.from_custom_config({**TRAIN, "epoch": 3})
    with pytest.raises(SettingsError, match=r"custom_config field train\.tuner\.trials: Extra inputs"):
        TrainSettings.from_custom_config({**TRAIN, "tuner": {**TUNER, "trials": 3}})
    without = {key: value for key, value in TRAIN.items() if key not in ("seed", "task")}
    with pytest.raises(SettingsError) as raised:
        TrainSettings.from_custom_config(without)
    assert str(raised.value).splitlines() == ["custom_config field train.task: Field required",
                                              "custom_config field train.seed: Field required"]
    with pytest.raises(SettingsError, match="custom_config for transform must be a mapping, got NoneType"):
        TransformSettings.from_custom_config(None)


def test_code_fingerprint_may_be_absent():
    payload = {key: value for key, value in TRANSFORM.items() if key != "code_fingerprint"}
    assert TransformSettings.from_custom_config(payload).code_fingerprint == ""


def test_settings_choices_are_what_the_code_implements():
    assert set(transform_settings.NORMALIZATIONS) == set(preprocessing.NORMALIZATIONS)


@pytest.mark.parametrize(("written", "scope", "layers_of_200"), [
    ("all", FineTuneScope(share=1.0), 200), ("100%", FineTuneScope(share=1.0), 200),
    ("30%", FineTuneScope(share=0.3), 60), ("12.5 %", FineTuneScope(share=0.125), 25),
    ("20 layers", FineTuneScope(layers=20), 20), ("1 layer", FineTuneScope(layers=1), 1),
    ("500 layers", FineTuneScope(layers=500), 200), ("none", FineTuneScope(), 0), ("", FineTuneScope(), 0),
])
def test_fine_tune_scope_forms(written, scope, layers_of_200):
    parsed = parse_fine_tune(written)
    assert parsed == scope and parsed.count(200) == layers_of_200
    assert parse_fine_tune(str(parsed)) == parsed  # the canonical spelling reads back the same


@pytest.mark.parametrize("written", ["1.0", "1", "0.3", "30", "0%", "101%", "0 layers", "-3 layers", "half", "top 20"])
def test_fine_tune_scope_refuses_ambiguous_or_invalid(written):
    with pytest.raises(ValueError, match="'none', 'all', a share"):
        parse_fine_tune(written)
    if written in ("1.0", "1", "0.3", "30"):  # the mistake a user made: 1.0 meaning "all" became one layer
        with pytest.raises(ValueError, match="a bare number is ambiguous"):
            parse_fine_tune(written)
