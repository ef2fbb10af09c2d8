"""Model assembly (tf_keras / Keras 2, as tf.Transform requires): backbone + augmentation + classification head.

`build_classifier` wires `image_xf` → augmentation (training only) → backbone → head. A pretrained backbone
always runs with `training=False` so its BatchNorm layers stay in inference mode, also while fine-tuning; a
backbone trained from scratch (`simple_cnn`, or `weights=none`) trains normally. The head is a separate
`Sequential`, so it can be trained alone on cached backbone features and then serve inside the full model.
`simple_cnn_features` is the seeds' "own model" baseline: conv blocks → global average pooling or flatten.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import tf_keras as keras

from components import features
from components.trainer.settings import CNN_POOLING
from components.transform.settings import TASKS


def skip_autograph_for_tf_keras() -> None:
    """Treat `tf_keras` like `keras`: AutoGraph must not rewrite Keras' own code.

    TensorFlow's AutoGraph skips the `keras` package (its code needs no conversion) but not the `tf_keras`
    rename that Keras 2 ships as, so every first `fit`/`predict` spends 15–30 s converting Keras internals.
    Adding the same rule for `tf_keras` makes that well under a second and changes no semantics.
    """
    from tensorflow.python.autograph.core import config

    rule = config.DoNotConvert("tf_keras")
    if not any(str(existing) == str(rule) for existing in config.CONVERSION_RULES):
        config.CONVERSION_RULES = (rule, *config.CONVERSION_RULES)


skip_autograph_for_tf_keras()


def simple_cnn_features(
    input_shape: tuple[int, int, int],
    conv_filters: Sequence[int] = (32, 64, 128),
    pooling: str = "avg",
    block_dropout: float = 0.0,
) -> keras.Model:
    """Conv blocks (2× conv-BN-ReLU, max-pool, optional dropout) ending in global average pooling (`avg`) or in
    the flattened last feature map (`flatten`, which keeps where in the image a feature was seen): a from-scratch
    backbone."""
    if pooling not in CNN_POOLING:
        raise ValueError(f"pooling must be one of {CNN_POOLING}, got {pooling!r}")
    inputs = keras.Input(shape=input_shape)
    x = inputs
    for index, filters in enumerate(conv_filters):
        for conv in (1, 2):
            x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"block{index}_conv{conv}")(x)
            x = keras.layers.BatchNormalization(momentum=0.9, name=f"block{index}_bn{conv}")(x)
            x = keras.layers.Activation("relu", name=f"block{index}_relu{conv}")(x)
        if x.shape[1] >= 2:
            x = keras.layers.MaxPooling2D(name=f"block{index}_pool")(x)
        if block_dropout > 0:
            x = keras.layers.Dropout(block_dropout, name=f"block{index}_dropout")(x)
    if pooling == "flatten":
        outputs = keras.layers.Flatten(name="flatten")(x)
    else:
        outputs = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, outputs, name="simple_cnn")


@dataclass(frozen=True)
class Augmentation:
    """Random training-time augmentation (all off by default)."""

    flip: bool = False
    rotation: float = 0.0
    zoom: float = 0.0
    translation: float = 0.0

    @property
    def enabled(self) -> bool:
        """True when any augmentation is configured."""
        return self.flip or self.rotation > 0 or self.zoom > 0 or self.translation > 0

    def layers(self, seed: int) -> list[keras.layers.Layer]:
        """Keras preprocessing layers; they are identity at inference time."""
        out: list[keras.layers.Layer] = []
        if self.flip:
            out.append(keras.layers.RandomFlip("horizontal", seed=seed, name="augment_flip"))
        if self.rotation > 0:
            out.append(keras.layers.RandomRotation(self.rotation, seed=seed, name="augment_rotation"))
        if self.zoom > 0:
            out.append(keras.layers.RandomZoom(self.zoom, seed=seed, name="augment_zoom"))
        if self.translation > 0:
            out.append(keras.layers.RandomTranslation(self.translation, self.translation, seed=seed,
                                                      name="augment_translation"))
        return out


def build_head(feature_dim: int, num_classes: int, task: str, dropout: float, dense_units: int) -> keras.Sequential:
    """Dropout → [Dense(relu) → Dropout] → output. Output: softmax [B, C]; for `binary` one sigmoid unit
    expanded to [1 - p, p] so every task serves the same `probabilities` [B, C] contract; for `multilabel` an
    independent sigmoid per label [B, C]."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    if num_classes < 2:
        raise ValueError(f"need at least 2 classes to train a classifier, got {num_classes}")
    if task == "binary" and num_classes != 2:
        raise ValueError(f"task 'binary' needs exactly 2 classes, the data has {num_classes}")
    layers: list[keras.layers.Layer] = [keras.layers.Dropout(dropout, name="head_dropout")]
    if dense_units:
        layers += [keras.layers.Dense(dense_units, activation="relu", name="head_dense"),
                   keras.layers.Dropout(dropout, name="head_dropout2")]
    if task == "binary":
        layers += [keras.layers.Dense(1, activation="sigmoid", name="head_sigmoid"),
                   keras.layers.Lambda(_two_class, name="probabilities")]
    else:
        activation = "sigmoid" if task == "multilabel" else "softmax"
        layers.append(keras.layers.Dense(num_classes, activation=activation, name="probabilities"))
    head = keras.Sequential(layers, name="head")
    head.build((None, feature_dim))
    return head


def _two_class(p: object) -> object:
    import tensorflow as tf

    return tf.concat([1.0 - p, p], axis=-1)


def build_classifier(
    backbone: keras.Model,
    head: keras.Model,
    image_size: int,
    pretrained: bool,
    augmentation: Augmentation | None = None,
    seed: int = 42,
) -> keras.Model:
    """`image_xf` [B, size, size, 3] → augmentation → backbone → head → probabilities [B, C]."""
    inputs = keras.Input(shape=(image_size, image_size, 3), name=features.IMAGE_XF)
    x = inputs
    for layer in (augmentation or Augmentation()).layers(seed):
        x = layer(x)
    x = backbone(x, training=False) if pretrained else backbone(x)
    outputs = head(x)
    return keras.Model(inputs, outputs, name=f"{backbone.name}_classifier")


def make_optimizer(name: str, learning_rate: float) -> keras.optimizers.Optimizer:
    """Adam, SGD (momentum 0.9) or RMSprop."""
    if name == "adam":
        return keras.optimizers.Adam(learning_rate=learning_rate)
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate=learning_rate, momentum=0.9)
    if name == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate=learning_rate)
    raise ValueError(f"optimizer must be adam, sgd or rmsprop, got {name!r}")


def compile_classifier(model: keras.Model, optimizer: str, learning_rate: float, task: str = "multiclass"
                       ) -> keras.Model:
    """Sparse categorical cross-entropy on the [B, C] probabilities (for `binary` this equals binary CE); for
    `multilabel`, binary cross-entropy per label against multi-hot labels, accuracy = per-label at 0.5."""
    if task == "multilabel":
        loss: keras.losses.Loss = keras.losses.BinaryCrossentropy()
        accuracy: keras.metrics.Metric = keras.metrics.BinaryAccuracy(name="accuracy", threshold=0.5)
    else:
        loss, accuracy = keras.losses.SparseCategoricalCrossentropy(), keras.metrics.SparseCategoricalAccuracy(
            name="accuracy")
    model.compile(optimizer=make_optimizer(optimizer, learning_rate), loss=loss, metrics=[accuracy])
    return model


def adapt_batchnorm_for_scratch(backbone: keras.Model, momentum: float = 0.9) -> int:
    """Lower BatchNorm momentum (Keras default 0.99) for a backbone trained from scratch; returns layers changed.

    With a few dozen steps per epoch the 0.99 moving averages are still far from the data's statistics when early
    stopping looks at validation loss, so inference-mode predictions collapse to one class while training accuracy
    climbs (seen with EfficientNet-Lite0 from scratch on 1,000 Fashion-MNIST images and with simple_cnn on digits).
    """
    changed = 0
    for layer in backbone.layers:
        if isinstance(layer, keras.layers.BatchNormalization) and layer.momentum > momentum:
            layer.momentum = momentum
            changed += 1
    return changed


def unfreeze_top(backbone: keras.Model, fine_tune_layers: float) -> int:
    """Make the top `fine_tune_layers` layers (a count ≥ 1, or a fraction < 1) trainable, keeping every
    BatchNormalization layer frozen. Returns how many layers with weights became trainable."""
    backbone.trainable = True
    layers = backbone.layers
    count = int(round(fine_tune_layers * len(layers))) if fine_tune_layers < 1 else int(fine_tune_layers)
    boundary = len(layers) - max(0, min(count, len(layers)))
    unfrozen = 0
    for index, layer in enumerate(layers):
        trainable = index >= boundary and not isinstance(layer, keras.layers.BatchNormalization)
        layer.trainable = trainable
        unfrozen += int(trainable and bool(layer.weights))
    return unfrozen


def build_simple_cnn(
    image_size: int,
    num_classes: int,
    conv_filters: Sequence[int] = (32, 64, 128),
    dropout: float = 0.3,
    learning_rate: float = 1e-3,
) -> keras.Model:
    """The compiled from-scratch baseline: `simple_cnn_features` + softmax head."""
    backbone = simple_cnn_features((image_size, image_size, 3), conv_filters)
    head = build_head(backbone.output_shape[-1], num_classes, "multiclass", dropout, 0)
    return compile_classifier(build_classifier(backbone, head, image_size, pretrained=False), "adam", learning_rate)
