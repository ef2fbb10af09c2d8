"""Tests for the photo recipe's pieces: random resized crop and colour jitter (components.trainer.augmentation),
label smoothing for integer labels and the warm-up + cosine schedule (components.trainer.model / training), and the
exported model's cost measurement (components.trainer.export.measure)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from components.trainer import fitting
from components.trainer import model as models
from components.trainer.augmentation import Augmentation, ColorJitter, RandomResizedCrop
from components.transform import preprocessing


def _images(seed: int = 0, size: int = 24) -> tf.Tensor:
    pixels = np.random.default_rng(seed).integers(0, 256, (4, size, size, 3)).astype(np.float32)
    return preprocessing.normalize(tf.constant(pixels), "lite")


def test_random_resized_crop_keeps_the_shape_and_is_identity_at_inference():
    images = _images()
    crop = RandomResizedCrop(0.5, seed=1)
    np.testing.assert_array_equal(crop(images, training=False), images)
    cropped = crop(images, training=True).numpy()
    assert cropped.shape == images.shape
    assert not np.allclose(cropped, images.numpy())  # a crop of at most the whole image, resized back
    low, high = float(tf.reduce_min(images)), float(tf.reduce_max(images))
    assert low - 1e-5 <= cropped.min() and cropped.max() <= high + 1e-5  # bilinear: no new extremes


def test_a_crop_of_a_constant_image_is_the_same_image():
    flat = tf.fill([2, 16, 16, 3], 0.25)
    np.testing.assert_allclose(RandomResizedCrop(0.3, seed=2)(flat, training=True), flat, atol=1e-6)


@pytest.mark.parametrize("normalization", ["lite", "minus_one_one", "zero_one", "caffe"])
def test_colour_jitter_stays_in_the_normalised_pixel_range(normalization):
    pixels = tf.constant(np.random.default_rng(3).integers(0, 256, (8, 12, 12, 3)).astype(np.float32))
    images = preprocessing.normalize(pixels, normalization)
    jitter = ColorJitter(0.2, normalization, seed=4)
    np.testing.assert_array_equal(jitter(images, training=False), images)
    back = preprocessing.denormalize(jitter(images, training=True), normalization).numpy()
    assert back.min() >= -1e-3 and back.max() <= 255 + 1e-3
    change = np.abs(back - pixels.numpy()).mean()
    assert 1 < change < 0.2 * 255  # mild: it changes the images, not beyond the strength's reach


def test_denormalize_inverts_normalize():
    pixels = tf.constant(np.random.default_rng(5).uniform(0, 255, (2, 5, 5, 3)).astype(np.float32))
    for mode in preprocessing.NORMALIZATIONS:
        np.testing.assert_allclose(preprocessing.denormalize(preprocessing.normalize(pixels, mode), mode), pixels,
                                   atol=1e-3)


def test_augmentation_describes_itself_and_builds_its_layers():
    photo = Augmentation(flip=True, crop=0.5, color=0.1, normalization="lite")
    assert photo.enabled and photo.describe() == \
        "random resized crop (50%–100% of the area), horizontal flip, colour jitter ±0.1"
    assert [layer.name for layer in photo.layers(seed=1)] == ["augment_crop", "augment_flip", "augment_color"]
    assert not Augmentation().enabled and Augmentation().describe() == "none"


def test_label_smoothing_for_integer_labels():
    probabilities = tf.constant([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    labels = tf.constant([0, 2])
    smoothed = models.SmoothedSparseCategoricalCrossentropy(0.1)(labels, probabilities).numpy()
    targets = np.array([[0.9 + 0.1 / 3, 0.1 / 3, 0.1 / 3], [0.1 / 3, 0.1 / 3, 0.9 + 0.1 / 3]])
    expected = -(targets * np.log(probabilities.numpy())).sum(axis=1).mean()
    assert smoothed == pytest.approx(expected, rel=1e-5)
    plain = models.SmoothedSparseCategoricalCrossentropy(0.0)(labels, probabilities).numpy()
    assert plain == pytest.approx(keras.losses.SparseCategoricalCrossentropy()(labels, probabilities).numpy())


def test_compiled_loss_follows_the_task_and_smoothing():
    model = keras.Sequential([keras.layers.Dense(3, activation="softmax", input_shape=(4,))])
    models.compile_classifier(model, "adam", 1e-3, "multiclass", label_smoothing=0.1)
    assert isinstance(model.loss, models.SmoothedSparseCategoricalCrossentropy) and model.loss.label_smoothing == 0.1
    models.compile_classifier(model, "adam", 1e-3, "multilabel", label_smoothing=0.1)
    assert isinstance(model.loss, keras.losses.BinaryCrossentropy)
    models.compile_classifier(model, "adam", 1e-3, "multiclass")
    assert isinstance(model.loss, keras.losses.SparseCategoricalCrossentropy)


def test_warmup_cosine_rates():
    schedule = fitting.WarmupCosine(base=1e-3, epochs=4, steps_per_epoch=10, warmup_epochs=0.5)
    rates = [schedule.rate(step) for step in range(40)]
    assert rates[0] == pytest.approx(1e-3 / 5) and rates[4] == pytest.approx(1e-3)  # 5 warm-up steps
    assert all(a < b for a, b in zip(rates[:5], rates[1:5]))  # rising
    assert all(a >= b for a, b in zip(rates[5:], rates[6:]))  # then falling
    assert rates[5 + 35 // 2] == pytest.approx(0.5e-3, rel=0.05)  # half way down at the middle
    assert rates[-1] == pytest.approx(0.5e-3 * (1 + math.cos(math.pi * 34 / 35)), rel=1e-6)


def test_warmup_cosine_drives_the_optimizer_step_by_step():
    model = keras.Sequential([keras.layers.Dense(2, activation="softmax", input_shape=(3,))])
    model.compile(optimizer=keras.optimizers.SGD(1.0), loss="sparse_categorical_crossentropy")
    seen: list[float] = []
    schedule = fitting.WarmupCosine(base=0.1, epochs=2, steps_per_epoch=4, warmup_epochs=1)
    record = keras.callbacks.LambdaCallback(on_train_batch_begin=lambda batch, logs: seen.append(
        float(keras.backend.get_value(model.optimizer.learning_rate))))
    x, y = np.zeros((8, 3), np.float32), np.zeros(8, np.int64)
    history = model.fit(x, y, batch_size=2, epochs=2, callbacks=[schedule, record], verbose=0)
    assert seen == pytest.approx([schedule.rate(step) for step in range(8)])
    assert history.history["lr"] == pytest.approx([schedule.rate(3), schedule.rate(7)])
