"""Training-time augmentation as Keras layers (identity at inference, so never in the served model's way).

`Augmentation` is what `train.augment_*` configure: horizontal flip, rotation, zoom and translation (Keras' own
layers), and for photos a random resized crop and a mild colour jitter (`RandomResizedCrop`, `ColorJitter` here).
The model's inputs are already normalised for the backbone (`image_xf`); the colour jitter maps them back to
pixels, jitters, and normalises again, so one strength means the same for every backbone.

With a pretrained backbone, augmentation acts in phase 2 (fine-tuning) only: phase 1 trains the head on features
computed once, which random augmentation would make impossible (components/trainer/training.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import tensorflow as tf
import tf_keras as keras

from components.transform import preprocessing

CROP_ASPECT = (3 / 4, 4 / 3)  # aspect-ratio range of the random resized crop (Inception's)


def _generator(seed: int | None) -> tf.random.Generator:
    """A per-layer random generator: seeded (reproducible training) or from fresh entropy."""
    if seed is None:
        return tf.random.Generator.from_non_deterministic_state()
    return tf.random.Generator.from_seed(seed)


@keras.saving.register_keras_serializable(package="visionline")
class RandomResizedCrop(keras.layers.Layer):
    """Per image: a random crop covering `min_area`–100 % of the area with an aspect ratio in `CROP_ASPECT`,
    resized back to the input size (Inception-style); identity at inference."""

    def __init__(self, min_area: float, seed: int | None = None, **kwargs: object) -> None:
        super().__init__(**kwargs)
        if not 0.0 < min_area < 1.0:
            raise ValueError(f"min_area must be in (0, 1), got {min_area}")
        self.min_area = min_area
        self.seed = seed
        self._generator = _generator(seed)

    def call(self, images: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        if not training:
            return images
        batch = tf.shape(images)[0]
        height, width = tf.shape(images)[1], tf.shape(images)[2]
        area = self._generator.uniform([batch], self.min_area, 1.0)
        log_low, log_high = tf.math.log(CROP_ASPECT[0]), tf.math.log(CROP_ASPECT[1])
        aspect = tf.exp(self._generator.uniform([batch], log_low, log_high))
        crop_h = tf.minimum(tf.sqrt(area / aspect), 1.0)  # as shares of the side
        crop_w = tf.minimum(tf.sqrt(area * aspect), 1.0)
        top = self._generator.uniform([batch]) * (1.0 - crop_h)
        left = self._generator.uniform([batch]) * (1.0 - crop_w)
        boxes = tf.stack([top, left, top + crop_h, left + crop_w], axis=1)
        return tf.image.crop_and_resize(images, boxes, tf.range(batch), tf.stack([height, width]))

    def get_config(self) -> dict[str, object]:
        return {**super().get_config(), "min_area": self.min_area, "seed": self.seed}


@keras.saving.register_keras_serializable(package="visionline")
class ColorJitter(keras.layers.Layer):
    """Per image, in pixel space: brightness ± `strength` (of the [0, 255] range), contrast and saturation scaled by
    a factor in [1 - `strength`, 1 + `strength`]; inputs and outputs normalised with `normalization`; identity at
    inference."""

    def __init__(self, strength: float, normalization: str, seed: int | None = None, **kwargs: object) -> None:
        super().__init__(**kwargs)
        if not 0.0 < strength <= 0.5:
            raise ValueError(f"strength must be in (0, 0.5], got {strength}")
        self.strength = strength
        self.normalization = normalization
        self.seed = seed
        self._generator = _generator(None if seed is None else seed + 1)

    def call(self, images: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        if not training:
            return images
        pixels = preprocessing.denormalize(images, self.normalization) / 255.0
        batch = tf.shape(images)[0]

        def factor(low: float, high: float) -> tf.Tensor:
            return self._generator.uniform([batch, 1, 1, 1], low, high)

        s = self.strength
        pixels = pixels + factor(-s, s)  # brightness
        mean = tf.reduce_mean(pixels, axis=[1, 2, 3], keepdims=True)
        pixels = (pixels - mean) * factor(1 - s, 1 + s) + mean  # contrast
        gray = tf.reduce_mean(pixels, axis=3, keepdims=True)
        pixels = (pixels - gray) * factor(1 - s, 1 + s) + gray  # saturation
        return preprocessing.normalize(tf.clip_by_value(pixels, 0.0, 1.0) * 255.0, self.normalization)

    def get_config(self) -> dict[str, object]:
        return {**super().get_config(), "strength": self.strength, "normalization": self.normalization,
                "seed": self.seed}


@dataclass(frozen=True)
class Augmentation:
    """Random training-time augmentation (all off by default)."""

    flip: bool = False
    rotation: float = 0.0
    zoom: float = 0.0
    translation: float = 0.0
    crop: float = 0.0  # random resized crop: smallest area share kept (0 = off)
    color: float = 0.0  # colour jitter strength (0 = off)
    normalization: str = "zero_one"  # how the model inputs are normalised (the colour jitter works on pixels)

    @property
    def enabled(self) -> bool:
        """True when any augmentation is configured."""
        return self.flip or self.rotation > 0 or self.zoom > 0 or self.translation > 0 or self.crop > 0 \
            or self.color > 0

    def describe(self) -> str:
        """One line for logs and the report, e.g. "random resized crop (50–100 % of the area), flip"."""
        parts = []
        if self.crop > 0:
            parts.append(f"random resized crop ({self.crop:.0%}–100% of the area)")
        if self.flip:
            parts.append("horizontal flip")
        if self.rotation > 0:
            parts.append(f"rotation ±{self.rotation:g} turn")
        if self.zoom > 0:
            parts.append(f"zoom ±{self.zoom:g}")
        if self.translation > 0:
            parts.append(f"translation ±{self.translation:g}")
        if self.color > 0:
            parts.append(f"colour jitter ±{self.color:g}")
        return ", ".join(parts) or "none"

    def layers(self, seed: int) -> list[keras.layers.Layer]:
        """Keras preprocessing layers; they are identity at inference time."""
        out: list[keras.layers.Layer] = []
        if self.crop > 0:
            out.append(RandomResizedCrop(self.crop, seed=seed, name="augment_crop"))
        if self.flip:
            out.append(keras.layers.RandomFlip("horizontal", seed=seed, name="augment_flip"))
        if self.rotation > 0:
            out.append(keras.layers.RandomRotation(self.rotation, seed=seed, name="augment_rotation"))
        if self.zoom > 0:
            out.append(keras.layers.RandomZoom(self.zoom, seed=seed, name="augment_zoom"))
        if self.translation > 0:
            out.append(keras.layers.RandomTranslation(self.translation, self.translation, seed=seed,
                                                      name="augment_translation"))
        if self.color > 0:
            out.append(ColorJitter(self.color, self.normalization, seed=seed, name="augment_color"))
        return out
