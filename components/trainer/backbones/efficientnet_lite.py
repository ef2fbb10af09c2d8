"""EfficientNet-Lite in tf_keras: the architecture and its input scaling (its weights: `efficientnet_lite_weights`).

EfficientNet-B0 blocks without squeeze-excite, ReLU6, stem (32) and head (1280) filters not scaled, BatchNorm epsilon
1e-3, TensorFlow "same" padding. A `LiteVariant` holds what differs between members of the family (their blocks, the
top dropout, the native resolution): `LITE0`, and `LITE1` / `LITE2` scaled from it as the tensorflow/tpu
EfficientNet-Lite builder does (width 1.0 / 1.1, depth 1.1 / 1.2; filters rounded to multiples of 8; the first and
last stages keep their repeats, stem and head keep their filters). Inputs must already be normalised with
`preprocess_input` (``(x - 127) / 128``).

The original weights come from TensorFlow's EfficientNet-Lite checkpoints (ported by lukemelas' EfficientNet-PyTorch
fork, whose ``Conv2dStaticSamePadding`` pads exactly like TensorFlow's ``padding="same"``: the extra row/column of a
stride-2 convolution goes at the bottom/right), so plain Keras ``padding="same"`` reproduces them exactly.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import tensorflow as tf
import tf_keras as keras

STEM_FILTERS = 32
HEAD_FILTERS = 1280
BN_EPSILON = 1e-3
BN_MOMENTUM = 0.99  # PyTorch momentum 0.01
INPUT_MEAN = 127.0
INPUT_STD = 128.0

Stage = tuple[int, int, int, int, int, int]  # (repeats, kernel, stride, expand_ratio, filters_in, filters_out)


@dataclass(frozen=True)
class Block:
    """One MBConv block (without squeeze-excite); `index` numbers the blocks of a model from 0."""

    index: int
    kernel: int
    stride: int
    expand: int
    filters_in: int
    filters_out: int


@dataclass(frozen=True)
class LiteVariant:
    """One member of the EfficientNet-Lite family."""

    name: str  # the model's default name, e.g. "efficientnet_lite0"
    title: str  # for messages, e.g. "EfficientNet-Lite0"
    stages: tuple[Stage, ...]
    top_dropout: float
    default_size: int  # the resolution it was trained at on ImageNet

    def blocks(self) -> Iterator[Block]:
        """The blocks of every stage in order: the first of a stage takes its stride and input filters."""
        index = 0
        for repeats, kernel, stride, expand, filters_in, filters_out in self.stages:
            for repeat in range(repeats):
                first = repeat == 0
                yield Block(index, kernel, stride if first else 1, expand, filters_in if first else filters_out,
                            filters_out)
                index += 1

    @property
    def num_blocks(self) -> int:
        """How many blocks the stages hold."""
        return sum(stage[0] for stage in self.stages)


# EfficientNet-B0's stages: Lite0 scales nothing.
LITE0 = LiteVariant(
    name="efficientnet_lite0",
    title="EfficientNet-Lite0",
    stages=(
        (1, 3, 1, 1, 32, 16),
        (2, 3, 2, 6, 16, 24),
        (2, 5, 2, 6, 24, 40),
        (3, 3, 2, 6, 40, 80),
        (3, 5, 1, 6, 80, 112),
        (4, 5, 2, 6, 112, 192),
        (1, 3, 1, 6, 192, 320),
    ),
    top_dropout=0.2,
    default_size=224,
)


def round_filters(filters: int, width: float, divisor: int = 8) -> int:
    """Filters scaled by `width`, rounded to a multiple of `divisor` (never down by more than 10 %)."""
    scaled = filters * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return int(rounded + divisor if rounded < 0.9 * scaled else rounded)


def scaled_stages(stages: tuple[Stage, ...], width: float, depth: float) -> tuple[Stage, ...]:
    """EfficientNet-Lite compound scaling of `stages`: filters by `width`, repeats by `depth` (rounded up) except in
    the first and last stages, which Lite models keep as they are."""
    last = len(stages) - 1
    return tuple(
        (repeats if i in (0, last) else math.ceil(depth * repeats), kernel, stride, expand,
         filters_in if i == 0 else round_filters(filters_in, width), round_filters(filters_out, width))
        for i, (repeats, kernel, stride, expand, filters_in, filters_out) in enumerate(stages)
    )


LITE1 = LiteVariant(name="efficientnet_lite1", title="EfficientNet-Lite1", stages=scaled_stages(LITE0.stages, 1.0, 1.1),
                    top_dropout=0.2, default_size=240)
LITE2 = LiteVariant(name="efficientnet_lite2", title="EfficientNet-Lite2", stages=scaled_stages(LITE0.stages, 1.1, 1.2),
                    top_dropout=0.3, default_size=260)
VARIANTS = {variant.name: variant for variant in (LITE0, LITE1, LITE2)}


def preprocess_input(images: tf.Tensor | np.ndarray) -> tf.Tensor:
    """RGB pixel values in [0, 255] → the model's input scale ``(x - 127) / 128`` (float32)."""
    return (tf.cast(images, tf.float32) - INPUT_MEAN) / INPUT_STD


def check_input_shape(input_shape: tuple[int | None, int | None, int]) -> None:
    """Raise ValueError unless `input_shape` is (height, width, 3)."""
    if len(input_shape) != 3 or input_shape[-1] != 3:
        raise ValueError(f"input_shape must be (height, width, 3), got {input_shape}")


def _conv_bn_relu(x: tf.Tensor, filters: int, kernel: int, stride: int, prefix: str, relu: bool = True) -> tf.Tensor:
    x = keras.layers.Conv2D(filters, kernel, stride, padding="same", use_bias=False, name=f"{prefix}_conv")(x)
    x = keras.layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=f"{prefix}_bn")(x)
    return keras.layers.ReLU(6.0, name=f"{prefix}_relu")(x) if relu else x


def _mbconv(x: tf.Tensor, block: Block, drop_rate: float) -> tf.Tensor:
    prefix = f"block{block.index}_"
    inputs = x
    expanded = block.filters_in * block.expand
    if block.expand != 1:
        x = _conv_bn_relu(x, expanded, 1, 1, prefix + "expand")
    x = keras.layers.DepthwiseConv2D(
        block.kernel, block.stride, padding="same", use_bias=False, name=prefix + "dwconv"
    )(x)
    x = keras.layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=prefix + "dw_bn")(x)
    x = keras.layers.ReLU(6.0, name=prefix + "dw_relu")(x)
    x = _conv_bn_relu(x, block.filters_out, 1, 1, prefix + "project", relu=False)
    if block.stride == 1 and block.filters_in == block.filters_out:
        if drop_rate > 0:  # stochastic depth (training only), as in the original drop_connect
            x = keras.layers.Dropout(drop_rate, noise_shape=(None, 1, 1, 1), name=prefix + "drop")(x)
        x = keras.layers.Add(name=prefix + "add")([x, inputs])
    return x


def build_efficientnet_lite(
    variant: LiteVariant,
    input_shape: tuple[int | None, int | None, int] = (224, 224, 3),
    include_top: bool = True,
    classes: int = 1000,
    name: str | None = None,
    classifier_activation: str | None = "softmax",
    drop_connect_rate: float = 0.2,
) -> keras.Model:
    """`variant` as a functional tf_keras model (randomly initialised) taking images scaled by `preprocess_input`.

    ``include_top=False`` returns the last feature map (``[B, H/32, W/32, 1280]``, after ReLU6). The model is named
    after the variant unless `name` is given. Weights: `efficientnet_lite_weights.build_with_weights`.
    """
    check_input_shape(input_shape)
    inputs = keras.Input(shape=input_shape, name="image")
    x = _conv_bn_relu(inputs, STEM_FILTERS, 3, 2, "stem")
    for block in variant.blocks():
        x = _mbconv(x, block, drop_connect_rate * block.index / variant.num_blocks)
    x = _conv_bn_relu(x, HEAD_FILTERS, 1, 1, "top")
    if include_top:
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = keras.layers.Dropout(variant.top_dropout, name="top_dropout")(x)
        x = keras.layers.Dense(classes, activation=classifier_activation, name="predictions")(x)
    return keras.Model(inputs, x, name=name or variant.name)
