"""Model architectures (tf_keras / Keras 2, as tf.Transform requires).

So far: `simple_cnn`, the seeds' "own model" baseline: conv blocks → global average pooling → dropout →
softmax. Transfer-learning backbones come with the Trainer issue.
"""

from __future__ import annotations

from collections.abc import Sequence

import tf_keras as keras

from components import features


def build_simple_cnn(
    image_size: int,
    num_classes: int,
    conv_filters: Sequence[int] = (32, 64, 128),
    dropout: float = 0.3,
    learning_rate: float = 1e-3,
) -> keras.Model:
    """Compiled CNN taking `image_xf` [B, size, size, 3] and returning class probabilities [B, num_classes]."""
    if num_classes < 2:
        raise ValueError(f"need at least 2 classes to train a classifier, got {num_classes}")
    inputs = keras.Input(shape=(image_size, image_size, 3), name=features.IMAGE_XF)
    x = inputs
    for index, filters in enumerate(conv_filters):
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"block{index}_conv1")(x)
        x = keras.layers.BatchNormalization(momentum=0.9, name=f"block{index}_bn1")(x)
        x = keras.layers.Activation("relu", name=f"block{index}_relu1")(x)
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"block{index}_conv2")(x)
        x = keras.layers.BatchNormalization(momentum=0.9, name=f"block{index}_bn2")(x)
        x = keras.layers.Activation("relu", name=f"block{index}_relu2")(x)
        if x.shape[1] >= 2:
            x = keras.layers.MaxPooling2D(name=f"block{index}_pool")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    x = keras.layers.Dropout(dropout, name="dropout")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    model = keras.Model(inputs, outputs, name="simple_cnn")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    return model
