"""Tests for components.trainer.model / training / tuning / backbones.registry on tiny real data, without the full DAG:
a tf.Transform graph is built here with tft_beam, then the Trainer's own functions run on it.
"""

from __future__ import annotations

import json
import math
import os
import re

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
import tf_keras as keras
from tensorflow_transform.tf_metadata import dataset_metadata, metadata_io, schema_utils

from components import features, warmup
from components.trainer import export, fitting, inputs, training, tuning
from components.trainer import model as models
from components.trainer.backbones import registry
from components.trainer.settings import TrainSettings, parse_fine_tune
from components.transform import preprocessing
from pipeline.component_settings import component_settings
from pipeline.configs import PipelineConfig
from tests.conftest import encode

RAW_SPEC = {"image": tf.io.FixedLenFeature([1], tf.string), "label": tf.io.FixedLenFeature([1], tf.string)}


def _tiny_dataset(tmp_path, rng, labels, size=12):
    """GZIP TFRecords of raw examples (bright vs dark images per class, so they are learnable) + a TFT graph."""
    rows = []
    for label in labels:
        level = 40 + 160 * (sorted(set(labels)).index(label) % 2)
        pixels = np.clip(rng.normal(level, 20, (size, size, 3)), 0, 255).astype(np.uint8)
        rows.append({"image": [encode(pixels, "PNG")], "label": [label.encode()]})
    data = tmp_path / "train.tfrecord.gz"
    with tf.io.TFRecordWriter(str(data), options="GZIP") as writer:
        for row in rows:
            writer.write(tf.train.Example(features=tf.train.Features(feature={
                "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=row["image"])),
                "label": tf.train.Feature(bytes_list=tf.train.BytesList(value=row["label"])),
            })).SerializeToString())
    return str(data), rows


def _write_examples(path, rows):
    """GZIP TFRecords of raw tf.Examples, one per row of {feature: [bytes values]}; returns the path."""
    with tf.io.TFRecordWriter(str(path), options="GZIP") as writer:
        for row in rows:
            writer.write(tf.train.Example(features=tf.train.Features(feature={
                key: tf.train.Feature(bytes_list=tf.train.BytesList(value=values)) for key, values in row.items()
            })).SerializeToString())
    return path


def _transform_graph(tmp_path, rows, custom_config):
    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(RAW_SPEC))
    out = tmp_path / "transform"
    with tft_beam.Context(temp_dir=str(tmp_path / "tft_tmp"), force_tf_compat_v1=False):
        transform_fn = (rows, metadata) | tft_beam.AnalyzeDataset(
            lambda inputs: preprocessing.transform_features(inputs, custom_config))
        _ = transform_fn | tft_beam.WriteTransformFn(str(out))
    metadata_io.write_metadata(metadata, str(out / "metadata"))  # raw metadata, as TFX's Transform writes it
    return str(out)


def _trainer_config(**overrides):
    # TFLite variants off: tests/components/test_tflite_export.py covers them (test time)
    config = PipelineConfig().override(["preset=demo", "train.tflite=false",
                                        *(f"{k}={v}" for k, v in overrides.items())])
    payload = json.loads(json.dumps(component_settings(config, "folders").train.to_custom_config()))  # as TFX hands
    return TrainSettings.from_custom_config(payload)  # it over (JSON), read as the module files read it


def _with(settings, **changes):
    """`settings` with some fields changed (validated like a payload)."""
    return TrainSettings.from_custom_config({**settings.to_custom_config(), **changes})


@pytest.fixture(scope="module")
def binary_data(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("binary")
    rng = np.random.default_rng(1)
    labels = ["photo"] * 30 + ["scan"] * 30
    files, rows = _tiny_dataset(tmp, rng, labels)
    config = _trainer_config(**{"transform.image_size": 32, "train.epochs": 6, "train.batch_size": 8,
                                "train.validation_fraction": 0.2, "train.task": "binary"})
    return tmp, files, _transform_graph(tmp, rows, config), config


# ---------------------------------------------------------------- registry / model pieces


@pytest.mark.parametrize(("name", "normalization"), [
    ("efficientnet_lite0", "lite"), ("mobilenet_v2", "minus_one_one"), ("resnet101v2", "minus_one_one"),
    ("xception", "minus_one_one"), ("vgg16", "caffe"), ("efficientnet_b0", "raw"), ("simple_cnn", "zero_one"),
])
def test_registry_knows_normalisation_and_sizes(name, normalization):
    backbone = registry.get_backbone(name)
    assert backbone.normalization == normalization
    assert normalization in preprocessing.NORMALIZATIONS
    with pytest.raises(ValueError, match=f"{name} needs images of at least"):
        backbone.check_size(backbone.min_size - 1)


def test_registry_errors_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match="unknown backbone 'resnet9000'.*mobilenet_v2"):
        registry.get_backbone("resnet9000")
    with pytest.raises(ValueError, match="does not exist"):
        registry.resolve_weights(registry.get_backbone("vgg16"), str(tmp_path / "missing.h5"))
    with pytest.raises(ValueError, match="simple_cnn has no ImageNet weights"):
        registry.resolve_weights(registry.get_backbone("simple_cnn"), "imagenet")
    assert registry.resolve_weights(registry.get_backbone("vgg16"), "none") is None


@pytest.mark.parametrize("name", ["mobilenet_v2", "vgg16", "resnet50v2"])
def test_keras_backbones_build_offline_with_pooled_features(name):
    model = registry.get_backbone(name).build((32, 32, 3), None)
    assert model.output_shape[0] is None and len(model.output_shape) == 2


def test_caffe_normalisation_flips_to_bgr_and_centres():
    out = preprocessing.normalize(tf.constant([[[255.0, 0.0, 0.0]]]), "caffe").numpy()[0, 0]
    assert out == pytest.approx([0 - 103.939, 0 - 116.779, 255 - 123.68])


def test_head_and_unfreezing_counts():
    backbone = models.simple_cnn_features((16, 16, 3), (4, 8))
    head = models.build_head(backbone.output_shape[-1], 3, "multiclass", 0.2, 16)
    assert head.output_shape == (None, 3)
    with_weights = [layer for layer in backbone.layers if layer.weights]
    unfrozen = models.unfreeze_top(backbone, parse_fine_tune("3 layers"))
    assert unfrozen == sum(1 for layer in backbone.layers[-3:] if layer.weights
                           and not isinstance(layer, keras.layers.BatchNormalization))
    assert all(not layer.trainable for layer in backbone.layers if isinstance(layer, keras.layers.BatchNormalization))
    half = models.unfreeze_top(backbone, parse_fine_tune("50%"))  # a share of the layers
    assert 0 < half < len(with_weights)
    every = len([w for w in with_weights if not isinstance(w, keras.layers.BatchNormalization)])
    assert models.unfreeze_top(backbone, parse_fine_tune("1000 layers")) == every
    assert models.unfreeze_top(backbone, parse_fine_tune("all")) == every  # "all" is the whole backbone
    assert models.unfreeze_top(backbone, parse_fine_tune("none")) == 0


def test_simple_cnn_flatten_keeps_the_spatial_layout_and_block_dropout_trains_only():
    pooled = models.simple_cnn_features((16, 16, 3), (4, 8))
    flat = models.simple_cnn_features((16, 16, 3), (4, 8), pooling="flatten", block_dropout=0.5)
    assert pooled.output_shape == (None, 8) and flat.output_shape == (None, 4 * 4 * 8)
    assert [layer.name for layer in flat.layers if isinstance(layer, keras.layers.Dropout)] == [
        "block0_dropout", "block1_dropout"]
    images = np.random.default_rng(0).random((2, 16, 16, 3)).astype(np.float32)
    assert np.allclose(flat(images, training=False), flat(images, training=False))
    assert not np.allclose(flat(images, training=True), flat(images, training=False))
    with pytest.raises(ValueError, match="pooling must be one of"):
        models.simple_cnn_features((16, 16, 3), (4,), pooling="max")


def test_trainer_config_reaches_the_simple_cnn():
    config = _trainer_config(**{"train.cnn_pooling": "flatten", "train.cnn_block_dropout": 0.25,
                                "train.conv_filters": [4, 8], "transform.image_size": 16})
    _, backbone, head, pretrained = training.build_model(config, 3, training.hyperparameters(config, None))
    assert not pretrained and backbone.output_shape == (None, 4 * 4 * 8) and head.input_shape == (None, 128)
    assert sum(isinstance(layer, keras.layers.Dropout) for layer in backbone.layers) == 2


def test_binary_head_serves_two_probabilities():
    head = models.build_head(5, 2, "binary", 0.0, 0)
    out = head(np.zeros((3, 5), dtype=np.float32)).numpy()
    assert out.shape == (3, 2) and np.allclose(out.sum(axis=1), 1.0)
    with pytest.raises(ValueError, match="exactly 2 classes"):
        models.build_head(5, 3, "binary", 0.0, 0)
    with pytest.raises(ValueError, match="at least 2 classes"):
        models.build_head(5, 1, "multiclass", 0.0, 0)


def test_class_weights_balanced_and_auto_threshold():
    assert inputs.class_weights(np.array([10, 10, 12]), "auto") is None
    weights = inputs.class_weights(np.array([2046, 110]), "auto")  # the Simpsons imbalance
    assert weights[1] / weights[0] == pytest.approx(2046 / 110)
    assert weights[0] * 2046 + weights[1] * 110 == pytest.approx(2046 + 110)
    assert inputs.class_weights(np.array([10, 10]), "on") == {0: 1.0, 1: 1.0}
    assert inputs.class_weights(np.array([1, 100]), "off") is None


def test_hyperparameters_prefer_tuned_values():
    config = _trainer_config(**{"train.learning_rate": 0.01})
    hp = training.hyperparameters(config, {"learning_rate": 0.002, "dropout": 0.5, "unrelated": 1})
    assert hp["learning_rate"] == 0.002 and hp["dropout"] == 0.5 and "unrelated" not in hp
    assert training.hyperparameters(config, None)["learning_rate"] == 0.01
    assert tuple(training.hyperparameters(config, None)) == training.TUNABLE


# ---------------------------------------------------------------- training end to end on tiny data


def test_binary_task_trains_and_exports(binary_data):
    tmp, files, transform, config = binary_data
    config = _with(config, model="simple_cnn", conv_filters=[8, 16])
    record = training.train_and_export([files], transform, str(tmp / "model_bin"), str(tmp / "run_bin" / "1"),
                                       config)
    assert record["class_names"] == ["photo", "scan"]  # sorted: the positive class (index 1) is "scan"
    assert sum(record["train_label_counts"]) > 40
    model = tf.saved_model.load(str(tmp / "model_bin"))
    image = encode(np.full((12, 12, 3), 200, dtype=np.uint8), "PNG")
    out = model.signatures["serving_default"](images=tf.constant([image]))
    assert out["probabilities"].shape == (1, 2)
    assert json.load(open(tmp / "run_bin" / "1" / "history.json"))["phases"][0]["name"] == "train"
    saved = [name for name, _ in tf.train.list_variables(str(tmp / "model_bin" / "variables" / "variables"))]
    assert any(name.startswith("variables/") for name in saved)
    assert not [name for name in saved if "optimizer" in name.lower()]  # trained, but no optimizer slots exported
    # TF Serving's warm-up file: a few of the data's real images, each a Predict request on serving_default
    requests = warmup.read_warmup_requests(str(tmp / "model_bin"))
    assert len(requests) == warmup.DEFAULT_IMAGES
    for log in requests:
        request = log.predict_log.request
        assert request.model_spec.signature_name == "serving_default" and list(request.inputs) == ["images"]
        images = tf.make_ndarray(request.inputs["images"])
        assert images.shape == (1,) and tf.io.decode_image(images[0]).shape[-1] == 3
        assert model.signatures["serving_default"](images=tf.constant(images))["probabilities"].shape == (1, 2)


def test_tta_flip_serves_the_mean_over_the_image_and_its_mirror(binary_data, tmp_path):
    _, _, transform, config = binary_data
    tft_output = tft.TFTransformOutput(transform)
    config = _with(config, model="simple_cnn", conv_filters=[8, 16])
    classifier, *_ = training.build_model(config, 2, training.hyperparameters(config, None))
    models.compile_classifier(classifier, "adam", 1e-3, "binary")
    for tta in (False, True):
        export.save_serving_model(classifier, tft_output, str(tmp_path / f"tta_{tta}"), ["photo", "scan"],
                                           task="binary", tta_flip=tta)
    plain = tf.saved_model.load(str(tmp_path / "tta_False")).signatures["serving_default"]
    tta = tf.saved_model.load(str(tmp_path / "tta_True")).signatures["serving_default"]
    left_bright = np.zeros((12, 12, 3), dtype=np.uint8)
    left_bright[:, :6] = 220  # not mirror-symmetric: the untrained network scores it and its mirror differently
    images = tf.constant([encode(left_bright, "PNG"), encode(left_bright[:, ::-1], "PNG")])
    original, mirrored = plain(images=images)["probabilities"].numpy()
    assert not np.allclose(original, mirrored, atol=1e-4)
    averaged = tta(images=images)["probabilities"].numpy()
    np.testing.assert_allclose(averaged[0], (original + mirrored) / 2, atol=1e-5)
    np.testing.assert_allclose(averaged[1], averaged[0], atol=1e-5)  # an image and its mirror: same answer


def test_pretrained_backbone_uses_cached_features_then_fine_tunes(binary_data, tmp_path):
    tmp, files, _, config = binary_data
    weights = tmp_path / "mobilenet.h5"
    registry.get_backbone("mobilenet_v2").build((32, 32, 3), None).save_weights(str(weights))
    config = _with(config, task="multiclass", model="mobilenet_v2", weights=str(weights),
                   normalization="minus_one_one", epochs=2, fine_tune_epochs=1, fine_tune="5 layers")
    transform = binary_data[2]  # same pixels; the normalisation differs but the graph is shared for speed
    record = training.train_and_export([files], transform, str(tmp_path / "model"), str(tmp_path / "run" / "7"),
                                       config)
    head, fine_tune = record["phases"]
    assert head["name"] == "head" and head["cached_features"] is True
    assert fine_tune["name"] == "fine_tune" and 0 < fine_tune["unfrozen_layers"] <= 5
    assert len(record["history"]["loss"]) == len(head["history"]["loss"]) + len(fine_tune["history"]["loss"])
    # the exported model holds the backbone (not only the head trained on cached features): Grad-CAM reaches it
    explained = tf.saved_model.load(str(tmp_path / "model")).signatures["explain"](
        images=tf.constant([encode(np.full((12, 12, 3), 200, dtype=np.uint8), "PNG")]),
        class_index=tf.constant([-1], tf.int64))
    assert explained["heatmap"].shape == (1, 32, 32)


def test_augmentation_disables_feature_caching(binary_data, tmp_path):
    tmp, files, transform, config = binary_data
    config = _with(config, task="multiclass", model="simple_cnn", conv_filters=[4], epochs=1, augment_flip=True,
                   augment_rotation=0.05)
    classifier, _, _, pretrained = training.build_model(config, 2, training.hyperparameters(config, None))
    assert not pretrained
    assert any(layer.name == "augment_flip" for layer in classifier.layers)
    record = training.train_and_export([files], transform, str(tmp_path / "m"), str(tmp_path / "r" / "1"), config)
    assert record["phases"][0]["cached_features"] is False


class _Crash(keras.callbacks.Callback):
    def __init__(self, after_epoch):
        super().__init__()
        self.after_epoch = after_epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.after_epoch:
            raise KeyboardInterrupt("simulated kill")


def test_interrupted_fit_resumes_from_the_last_finished_epoch(binary_data, tmp_path, capsys):
    tmp, files, transform, config = binary_data
    tft_output = tft.TFTransformOutput(transform)
    examples = int(inputs.label_counts(inputs.make_dataset([files], tft_output, batch_size=8, subset="train"),
                                         2).sum())
    train = inputs.make_dataset([files], tft_output, batch_size=8, subset="train", examples=examples)
    steps = math.ceil(examples / 8)
    assert train.cardinality().numpy() == steps
    val = inputs.make_dataset([files], tft_output, batch_size=8, subset="validation", validation_fraction=0.2)
    backup = str(tmp_path / "backup")

    def fresh():
        keras.utils.set_random_seed(0)
        return models.build_simple_cnn(32, 2, conv_filters=(4,))

    with pytest.raises(KeyboardInterrupt):
        fitting.fit_phase(fresh(), train, val, epochs=4, patience=10, log_dir=str(tmp_path / "tb"),
                           backup=backup, extra_callbacks=[_Crash(after_epoch=1)])
    assert os.listdir(backup)
    seen = []

    class _Record(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            seen.append(epoch)

    history = fitting.fit_phase(fresh(), train, val, epochs=4, patience=10, log_dir=str(tmp_path / "tb"),
                                 backup=backup, extra_callbacks=[_Record()])
    assert seen == [2, 3]  # epochs 0 and 1 were restored, not re-run
    assert len(history["loss"]) == 2
    # The resumed epochs log their own steps, not the restored step counter's total.
    assert re.findall(r"^(\d+)/(\d+) - ", capsys.readouterr().out, re.M)[-2:] == [(str(steps), str(steps))] * 2
    # Keras' per-epoch backup is gone; the finished phase's weights and history stay until the export.
    assert sorted(os.listdir(backup)) == ["checkpoint", "finished.data-00000-of-00001", "finished.index",
                                          "finished.json"]

    model = fresh()
    again = fitting.fit_phase(model, train, val, epochs=4, patience=10, log_dir=str(tmp_path / "tb"),
                               backup=backup, extra_callbacks=[_Record()])
    assert seen == [2, 3] and again == history  # nothing trained: the finished phase was loaded
    assert "finished in an earlier execution" in capsys.readouterr().out
    assert not np.allclose(model.get_weights()[0], fresh().get_weights()[0])  # ...with its trained weights


def test_trainer_reexecuted_after_a_failed_export_does_not_train_again(binary_data, tmp_path, capsys):
    tmp, files, transform, config = binary_data
    config = _with(config, model="simple_cnn", conv_filters=[4], epochs=2)
    blocked = tmp_path / "model"
    blocked.write_text("a file where the export wants its folder")
    run_dir = tmp_path / "Trainer" / "model_run" / "1"
    with pytest.raises(Exception):  # noqa: B017 - whatever the file system raises
        training.train_and_export([files], transform, str(blocked), str(run_dir), config)
    first = capsys.readouterr().out
    assert first.count("Epoch ") == 2

    blocked.unlink()
    record = training.train_and_export([files], transform, str(blocked), str(tmp_path / "Trainer" / "model_run" / "2"),
                                       config)
    second = capsys.readouterr().out
    assert "Epoch " not in second and "finished in an earlier execution" in second
    assert len(record["history"]["loss"]) == 2
    assert tf.saved_model.load(str(blocked)).signatures["serving_default"] is not None
    assert not os.path.exists(tmp_path / "Trainer" / "backup") or not os.listdir(tmp_path / "Trainer" / "backup")


def test_cache_budget_counts_train_and_validation_examples():
    one_mib_each = 2**20
    assert inputs.fits_in_cache(900, 0.1, one_mib_each, 1000)  # 900 train + ~100 validation = 1000 MiB
    assert not inputs.fits_in_cache(901, 0.1, one_mib_each, 1000)
    assert not inputs.fits_in_cache(1, 0.1, 4, 0)  # 0 = never cache


def _epoch(dataset):
    images, labels = [], []
    for batch, label in dataset:
        images.append(batch[features.IMAGE_XF].numpy())
        labels.append(label.numpy())
    return np.concatenate(images), np.concatenate(labels)


def test_cached_dataset_holds_the_same_examples_and_reshuffles_each_epoch(binary_data):
    tmp, files, transform, config = binary_data
    tft_output = tft.TFTransformOutput(transform)
    plain = _epoch(inputs.make_dataset([files], tft_output, batch_size=8, subset="train"))
    cached = inputs.make_dataset([files], tft_output, batch_size=8, subset="train", shuffle=True, cache=True)
    first, second = _epoch(cached), _epoch(cached)

    def key(images, labels):  # order-free fingerprint of (image, label) pairs
        return sorted(zip(labels.tolist(), images.reshape(len(labels), -1).sum(axis=1).round(3).tolist()))

    assert key(*first) == key(*second) == key(*plain)
    assert len(plain[1]) > 20
    assert not np.array_equal(first[1], second[1]) or not np.array_equal(first[0], second[0])  # reshuffled
    assert inputs.transformed_example_bytes(tft_output) == 32 * 32 * 3 * 4
    # Neither pipeline runs tf.data's autotuning thread, whose sleep stalled every iterator teardown.
    assert cached.options().autotune.enabled is False
    assert inputs.make_dataset([files], tft_output, batch_size=8).options().autotune.enabled is False


def test_training_inputs_cache_only_within_the_budget(binary_data):
    tmp, files, transform, config = binary_data
    tft_output = tft.TFTransformOutput(transform)
    cached = inputs.training_inputs([files], tft_output, _with(config, cache_dataset_mb=64))
    streamed = inputs.training_inputs([files], tft_output, _with(config, cache_dataset_mb=0))
    assert cached["cached"] is True and streamed["cached"] is False
    for data in (cached, streamed):  # both declare their epoch length in batches
        steps = math.ceil(data["label_counts"].sum() / config.batch_size)
        assert data["train"].cardinality().numpy() == steps == sum(1 for _ in data["train"])
    tiny = 40 * 32 * 32 * 3 * 4 / 2**20  # below the ~60 decoded examples of this fixture
    below = config.model_copy(update={"cache_dataset_mb": tiny})  # a fraction of a MiB: finer than the int field
    assert inputs.training_inputs([files], tft_output, below)["cached"] is False


def test_cosine_learning_rate_decays_from_base_towards_zero():
    rates = [fitting.cosine_learning_rate(1e-3, epoch, 4) for epoch in range(4)]
    assert rates == pytest.approx([1e-3, 8.5355e-4, 5e-4, 1.4645e-4], rel=1e-4)


def test_cosine_schedule_sets_each_epochs_learning_rate(binary_data, tmp_path):
    tmp, files, transform, config = binary_data
    tft_output = tft.TFTransformOutput(transform)
    train = inputs.make_dataset([files], tft_output, batch_size=8, subset="train")
    val = inputs.make_dataset([files], tft_output, batch_size=8, subset="validation", validation_fraction=0.2)
    model = models.compile_classifier(models.build_simple_cnn(32, 2, conv_filters=(4,)), "adam", 2e-3)
    history = fitting.fit_phase(model, train, val, epochs=3, patience=10, log_dir=str(tmp_path / "tb"),
                                 backup=str(tmp_path / "backup"), lr_schedule="cosine")
    assert history["lr"] == pytest.approx([fitting.cosine_learning_rate(2e-3, e, 3) for e in range(3)], rel=1e-5)
    with pytest.raises(ValueError, match="lr_schedule"):
        fitting.fit_phase(model, train, val, epochs=1, patience=1, log_dir=str(tmp_path / "tb"),
                           backup=str(tmp_path / "b2"), lr_schedule="step")


@pytest.mark.parametrize("monitor", ["val_loss", "val_accuracy"])
def test_the_best_epoch_by_the_monitor_is_kept_even_after_all_epochs(binary_data, tmp_path, monitor):
    tmp, files, transform, config = binary_data
    tft_output = tft.TFTransformOutput(transform)
    train = inputs.make_dataset([files], tft_output, batch_size=8, subset="train")
    val = inputs.make_dataset([files], tft_output, batch_size=8, subset="validation", validation_fraction=0.2)
    model = models.compile_classifier(models.build_simple_cnn(32, 2, conv_filters=(4,)), "adam", 5e-3)
    per_epoch: list[list[np.ndarray]] = []
    recorder = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: per_epoch.append(model.get_weights()))
    history = fitting.fit_phase(model, train, val, epochs=5, patience=10, log_dir=str(tmp_path / "tb"),
                                 backup=str(tmp_path / "backup"), monitor=monitor, extra_callbacks=[recorder])
    values = history[monitor]
    best = (values.index(min(values)) if monitor == "val_loss" else values.index(max(values))) + 1
    assert fitting.best_epoch(history, monitor) == best
    for kept, recorded in zip(model.get_weights(), per_epoch[best - 1]):
        np.testing.assert_array_equal(kept, recorded)
    with pytest.raises(ValueError, match="monitor"):
        fitting.fit_phase(model, train, val, epochs=1, patience=1, log_dir=str(tmp_path / "tb"),
                           backup=str(tmp_path / "b2"), monitor="val_auc")


def test_backup_dir_is_stable_across_executions_and_changes_with_config(tmp_path):
    a = fitting.backup_dir(str(tmp_path / "Trainer" / "model_run" / "5"), {"lr": 1})
    b = fitting.backup_dir(str(tmp_path / "Trainer" / "model_run" / "9"), {"lr": 1})
    c = fitting.backup_dir(str(tmp_path / "Trainer" / "model_run" / "9"), {"lr": 2})
    assert os.path.normpath(a) == os.path.normpath(b) != os.path.normpath(c)


def test_tuner_search_produces_hyperparameters_the_trainer_uses(binary_data, tmp_path):
    tmp, files, transform, config = binary_data
    config = _with(config, task="multiclass", model="simple_cnn", conv_filters=[4],
                   tuner={"enabled": True, "algorithm": "random", "max_trials": 2, "epochs_per_trial": 1})
    data = inputs.training_inputs([files], tft.TFTransformOutput(transform), config)
    tuner = tuning.make_tuner(config, len(data["class_names"]), str(tmp_path / "tuner"))
    tuner.search(data["train"], validation_data=data["validation"], epochs=1, verbose=0)
    best = tuner.get_best_hyperparameters(1)[0]
    values = tuning.hyperparameter_values(best.get_config())
    assert set(values) >= {"learning_rate", "dropout", "dense_units", "optimizer"}
    assert 1e-4 <= values["learning_rate"] <= 1e-2
    record = training.train_and_export([files], transform, str(tmp_path / "m"), str(tmp_path / "r" / "1"),
                                       _with(config, epochs=1), tuned_hyperparameters=values)
    assert record["hyperparameters"]["learning_rate"] == values["learning_rate"]
    assert record["hyperparameters"]["dense_units"] == values["dense_units"]


def test_lite0_backbone_from_the_registry_loads_real_imagenet_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("VISIONLINE_CACHE", str(tmp_path))
    backbone = registry.get_backbone("efficientnet_lite0")
    model = backbone.build((64, 64, 3), registry.resolve_weights(backbone, "imagenet"))
    assert model.output_shape == (None, 1280)
    assert os.path.exists(tmp_path / "efficientnet_lite0_imagenet.h5")  # converted once, then cached
    random = backbone.build((64, 64, 3), None)
    first = next(layer for layer in model.layers if layer.weights)
    assert not np.allclose(first.get_weights()[0], random.get_layer(first.name).get_weights()[0])


def test_tuning_switched_off_returns_the_config_values_without_training(tmp_path, capsys):
    config = _trainer_config(**{"train.learning_rate": 0.003, "train.dropout": 0.25, "train.optimizer": "sgd"})
    tuner = tuning.configured_values_tuner(config, str(tmp_path))
    # The calls TFX's Tuner executor makes, with the fit_kwargs tuner_fn returns when tuning is off.
    tuner.search_space_summary()
    tuner.search(verbose=0)
    tuner.results_summary()
    values = tuning.hyperparameter_values(tuner.get_best_hyperparameters(1)[0].get_config())
    assert values == training.hyperparameters(config, None)
    assert values["learning_rate"] == 0.003 and values["optimizer"] == "sgd"
    printed = capsys.readouterr().out
    assert "Tuning is off" in printed and "learning_rate=0.003" in printed and "optimizer=sgd" in printed
    assert "val_accuracy" not in printed and "Score" not in printed  # no placeholder score shown as a result


def test_scratch_backbones_get_faster_batchnorm_statistics():
    backbone = registry.get_backbone("efficientnet_lite0").build((32, 32, 3), None)
    assert models.adapt_batchnorm_for_scratch(backbone) > 10
    assert all(layer.momentum == 0.9 for layer in backbone.layers
               if isinstance(layer, keras.layers.BatchNormalization))


# ---------------------------------------------------------------- multilabel


def _multilabel_rows(rng, count, size=12):
    """Images whose labels are visible: `bright` (high brightness) and `red` (red channel up), 0–2 per image."""
    rows = []
    for index in range(count):
        bright, red = index % 2 == 0, (index // 2) % 2 == 0
        pixels = np.clip(rng.normal(180 if bright else 50, 15, (size, size, 3)), 0, 255)
        if red:
            pixels[..., 0] = 250
            pixels[..., 1:] *= 0.3
        labels = [name for name, on in (("bright", bright), ("red", red)) if on]
        rows.append({"image": [encode(pixels.astype(np.uint8), "PNG")], "label": [lab.encode() for lab in labels]})
    return rows


@pytest.fixture(scope="module")
def multilabel_data(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("multilabel")
    rows = _multilabel_rows(np.random.default_rng(3), 80)
    data = _write_examples(tmp / "train.tfrecord.gz", rows)
    # 16 epochs: 12 reached the 0.8 subset accuracy only with TFT's old frequency order of the two labels
    config = _trainer_config(**{"transform.image_size": 12, "train.epochs": 16, "train.batch_size": 8,
                                "train.validation_fraction": 0.2, "train.task": "multilabel",
                                "train.conv_filters": [8, 16], "train.learning_rate": 0.01,
                                "train.early_stopping_patience": 12})
    spec = {"image": tf.io.FixedLenFeature([1], tf.string), "label": tf.io.VarLenFeature(tf.string)}
    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(spec))
    out = tmp / "transform"
    tft_rows = [{"image": row["image"], "label": row["label"]} for row in rows]
    with tft_beam.Context(temp_dir=str(tmp / "tft_tmp"), force_tf_compat_v1=False):
        transform_fn = (tft_rows, metadata) | tft_beam.AnalyzeDataset(
            lambda inputs: preprocessing.transform_features(inputs, config))
        _ = transform_fn | tft_beam.WriteTransformFn(str(out))
    metadata_io.write_metadata(metadata, str(out / "metadata"))
    return tmp, str(data), str(out), config, rows


def test_multi_hot_drops_unknown_labels():
    ids = tf.SparseTensor(indices=[[0, 0], [0, 1], [2, 0]], values=tf.constant([1, -1, 0], tf.int64),
                          dense_shape=[3, 2])
    assert preprocessing.multi_hot(ids, 2).numpy().tolist() == [[0, 1], [0, 0], [1, 0]]
    labels = preprocessing.label_set(tf.constant([[b"a"], [b""]]))
    assert labels.values.numpy().tolist() == [b"a"]  # "" is no label


def test_multilabel_head_is_independent_sigmoids():
    head = models.build_head(5, 3, "multilabel", 0.0, 0)
    out = head(np.random.default_rng(0).normal(size=(4, 5)).astype(np.float32)).numpy()
    assert out.shape == (4, 3) and np.all((out > 0) & (out < 1))
    assert not np.allclose(out.sum(axis=1), 1.0)


def test_multilabel_task_trains_exports_and_serves_multi_hot(multilabel_data):
    tmp, files, transform, config, rows = multilabel_data
    tft_output = tft.TFTransformOutput(transform)
    data = inputs.training_inputs([files], tft_output, config)
    names = data["class_names"]
    assert sorted(names) == ["bright", "red"] and data["class_weight"] is None
    _, labels = next(iter(data["train"]))
    assert labels.shape[1] == 2 and labels.dtype == tf.float32
    expected_counts = [sum(name.encode() in row["label"] for row in rows) for name in names]
    assert data["label_counts"].sum() <= sum(expected_counts)  # the validation slice is carved out

    record = training.train_and_export([files], transform, str(tmp / "model"), str(tmp / "run" / "1"), config)
    assert record["class_names"] == names
    model = tf.saved_model.load(str(tmp / "model"))
    images = tf.constant([row["image"][0] for row in rows])
    out = model.signatures["serving_default"](images=images)
    probabilities = out["probabilities"].numpy()
    assert probabilities.shape == (len(rows), 2)
    truth = np.array([[name.encode() in row["label"] for name in names] for row in rows], dtype=np.int64)
    predicted = out["predicted_labels"].numpy()
    assert np.array_equal(predicted, (probabilities >= 0.5).astype(np.int64))
    assert (predicted == truth).all(axis=1).mean() >= 0.8  # subset accuracy on learnable data

    serialized = [tf.train.Example(features=tf.train.Features(feature={
        key: tf.train.Feature(bytes_list=tf.train.BytesList(value=values)) for key, values in row.items()
    })).SerializeToString() for row in rows[:4]]
    transformed = model.signatures["transform_features"](examples=tf.constant(serialized))
    assert transformed["label_xf"].numpy().tolist() == truth[:4].astype(np.float32).tolist()


# ---------------------------------------------------------------- small data: no collapse to one class


def test_selection_follows_the_validation_set_size():
    assert fitting.selection(5, 3, 15)[:2] == ("last", 0)  # 5 images cannot tell epochs apart
    assert fitting.selection(19, 3, 15)[0] == "last" and fitting.selection(25, 20, 15)[0] == "last"
    assert fitting.selection(40, 10, 20)[:2] == ("best", 5)  # early stopping from epoch 6 on
    assert fitting.selection(40, 10, 8)[:2] == ("best", 2)
    assert fitting.best_epoch({"val_accuracy": [0.5, 0.5, 0.5, 0.5]}, "val_accuracy", min_epochs=2) == 3
    assert fitting.best_epoch({"val_accuracy": [0.9, 0.5, 0.5]}, "val_accuracy", keep="last") == 3


def test_tiny_real_dataset_does_not_collapse_to_one_class(tmp_path, capsys):
    """30 real digit images (3 classes): 10 % validation is 3 images, whose accuracy sits flat while the model
    learns; early stopping on it kept epoch 1 — a model predicting one class (kappa 0). Now every epoch trains, the
    last weights are kept, and the console says why."""
    from sklearn.metrics import cohen_kappa_score

    from pipeline.demo_data import materialize_digits

    root = materialize_digits(tmp_path / "digits", per_class=10)
    rows = [{"image": [path.read_bytes()], "label": [label.encode()]}
            for label in ("0", "1", "2") for path in sorted((root / label).glob("*.png"))]
    data = _write_examples(tmp_path / "train.tfrecord.gz", rows)
    config = _trainer_config(**{"transform.image_size": 16, "train.epochs": 15, "train.batch_size": 8,
                                "train.conv_filters": [8, 16], "train.learning_rate": 0.01,
                                "train.early_stopping_monitor": "val_accuracy", "train.early_stopping_patience": 2})
    transform = _transform_graph(tmp_path, rows, config)
    record = training.train_and_export([str(data)], transform, str(tmp_path / "model"), str(tmp_path / "run" / "1"),
                                       config)
    phase = record["phases"][0]
    assert record["validation_examples"] < 20 and phase["kept_epoch"] == phase["epochs_run"] == 15
    shown = capsys.readouterr().out
    assert "WARNING: the validation set is tiny" in shown and "kept the weights of epoch 15 of 15" in shown
    serve = tf.saved_model.load(str(tmp_path / "model")).signatures["serving_default"]
    chosen = serve(images=tf.constant([row["image"][0] for row in rows]))["predicted_class"].numpy().tolist()
    truth = [row["label"][0] for row in rows]
    assert len(set(chosen)) == 3 and cohen_kappa_score(truth, chosen) > 0.5


def test_mixed_precision_training_exports_a_float32_model(binary_data, tmp_path, monkeypatch):
    """The GPU path's precision handling, run on the CPU: train under the mixed float16 policy, export float32."""
    from components.trainer import devices

    tmp, files, transform, config = binary_data
    monkeypatch.setattr(devices, "plan_device", lambda *args, **kwargs: devices.DevicePlan(
        "GPU", "a described GPU", mixed_precision=True, batch_size=8))
    config = _with(config, epochs=2)
    try:
        record = training.train_and_export([files], transform, str(tmp_path / "model"), str(tmp_path / "run" / "3"),
                                           config)
    finally:
        devices.apply_plan(devices.DevicePlan("CPU", "test", False, 8))
    assert record["mixed_precision"] is True and record["device"] == "a described GPU"
    loaded = tf.saved_model.load(str(tmp_path / "model"))
    assert {v.dtype for v in loaded.variables} == {tf.float32}
    png = encode(np.full((12, 12, 3), 90, dtype=np.uint8), "PNG")
    output = loaded.signatures["serving_default"](images=tf.constant([png]))["probabilities"]
    assert output.dtype == tf.float32 and output.shape == (1, 2)


def test_a_val_split_is_the_validation_data_instead_of_a_slice_of_train(binary_data, rng):
    tmp, files, transform, config = binary_data
    tft_output = tft.TFTransformOutput(transform)
    (tmp / "Split-val").mkdir(exist_ok=True)
    rows = [{"image": [encode(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8), "PNG")], "label": [label.encode()],
             "path": [f"valid/{label}/{i}.png".encode()]} for i, label in enumerate(["photo", "scan"] * 11)]
    _write_examples(tmp / "Split-val" / "data.gz", rows)
    pattern = str(tmp / "Split-val" / "*")
    assert inputs.validation_split_files([pattern]) == [pattern]
    assert inputs.validation_split_files([str(tmp / "Split-eval" / "*")]) == []  # the Evaluator's: carve train
    carved = inputs.training_inputs([files], tft_output, config)
    held_out = inputs.training_inputs([files], tft_output, config, validation_files=[pattern])
    assert held_out["validation_examples"] == 22
    assert held_out["label_counts"].sum() == 60 > carved["label_counts"].sum()  # all of train is trained on
    assert held_out["validation_source"] == "the valid/ folder (split 'val')"
    json.dumps({k: held_out[k] for k in ("cached", "validation_examples", "validation_source")})  # history.json
    assert carved["validation_source"] == "train.validation_fraction=0.2 of the training split"
    # the same split from a manifest's split column: its paths start with whatever folder the images are in
    (tmp / "Split-val-manifest").mkdir(exist_ok=True)
    _write_examples(tmp / "Split-val-manifest" / "data.gz",
                    [dict(row, path=[b"images/" + row["path"][0]]) for row in rows])
    listed = inputs.training_inputs([files], tft_output, config,
                                    validation_files=[str(tmp / "Split-val-manifest" / "*")])
    assert listed["validation_source"] == "split 'val' as the data gives it"


def test_served_class_names_and_evaluated_labels_follow_the_configured_positive_class(tmp_path, rng):
    labels = ["photo"] * 6 + ["scan"] * 2  # frequency order would make "photo" index 0 (and "scan" positive)
    files, rows = _tiny_dataset(tmp_path, rng, labels)
    config = _trainer_config(**{"transform.image_size": 32, "train.task": "binary", "train.positive_class": "photo",
                                "train.model": "simple_cnn", "train.conv_filters": "[8]"})
    transform = _transform_graph(tmp_path, rows, config)
    tft_output = tft.TFTransformOutput(transform)
    names = inputs.class_names(tft_output)
    assert names == ["scan", "photo"]
    assert training.label_line(names, "binary") == "labels: 0='scan', 1='photo' (positive class: 'photo')"
    classifier, *_ = training.build_model(config, 2, training.hyperparameters(config, None))
    models.compile_classifier(classifier, "adam", 1e-3, "binary")
    export.save_serving_model(classifier, tft_output, str(tmp_path / "model"), names, task="binary")
    model = tf.saved_model.load(str(tmp_path / "model"))
    served = model.signatures["serving_default"](images=tf.constant([rows[0]["image"][0]]))
    assert served["classes"].numpy().tolist() == [[b"scan", b"photo"]]
    examples = tf.constant([next(iter(tf.data.TFRecordDataset(files, "GZIP"))).numpy()])  # the first: a photo
    evaluated = model.signatures["transform_features"](examples=examples)  # what TFMA reads as the label
    assert evaluated["label_xf"].numpy().reshape(-1).tolist() == [1]  # a photo: the positive class
