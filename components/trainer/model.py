"""Model assembly (tf_keras / Keras 2, as tf.Transform requires): backbone + augmentation + classification head.

`build_classifier` wires `image_xf` → augmentation (training only; components/trainer/augmentation.py) → backbone →
head. BatchNorm is handled deliberately: a pretrained backbone always runs with `training=False`, so its BatchNorm
layers keep their ImageNet statistics and stay frozen also while fine-tuning (small batches of a new dataset would
otherwise overwrite them with noisy estimates); a backbone trained from scratch (`simple_cnn`, or `weights=none`)
trains its BatchNorm normally, with a lower momentum (`adapt_batchnorm_for_scratch`). The head is a separate
`Sequential`, so it can be trained alone on cached backbone features and then serve inside the full model.
`simple_cnn_features` is the seeds' "own model" baseline: conv blocks → global average pooling or flatten.
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf
import tf_keras as keras

from components import features
from components.trainer.augmentation import Augmentation
from components.trainer.settings import CNN_POOLING, FineTuneScope
from components.transform.settings import TASKS

# multilabel: a label is present at this probability — the training accuracy, the exported `predicted_labels`,
# the `explain` signature and the TFLite variants all use it
MULTILABEL_THRESHOLD = 0.5


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
        layers += [keras.layers.Dense(1, activation="sigmoid", name="head_sigmoid", dtype="float32"),
                   keras.layers.Lambda(_two_class, name="probabilities", dtype="float32")]
    else:  # float32 outputs also under mixed precision (float16 softmax loses the small probabilities)
        activation = "sigmoid" if task == "multilabel" else "softmax"
        layers.append(keras.layers.Dense(num_classes, activation=activation, name="probabilities", dtype="float32"))
    head = keras.Sequential(layers, name="head")
    head.build((None, feature_dim))
    return head


def _two_class(p: tf.Tensor) -> tf.Tensor:
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


def make_optimizer(name: str, learning_rate: float | keras.optimizers.schedules.LearningRateSchedule,
                   weight_decay: float = 0.05) -> keras.optimizers.Optimizer:
    """AdamW (decoupled `weight_decay`), Adam, SGD (momentum 0.9) or RMSprop."""
    if name == "adamw":
        return keras.optimizers.AdamW(learning_rate=learning_rate, weight_decay=weight_decay)
    if name == "adam":
        return keras.optimizers.Adam(learning_rate=learning_rate)
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate=learning_rate, momentum=0.9)
    if name == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate=learning_rate)
    raise ValueError(f"optimizer must be adamw, adam, sgd or rmsprop, got {name!r}")


@keras.saving.register_keras_serializable(package="visionline")
class SmoothedSparseCategoricalCrossentropy(keras.losses.Loss):
    """Categorical cross-entropy with label smoothing for integer labels (Keras 2's sparse loss has no smoothing):
    the target of class c is (1 - s) on c plus s / C on every class."""

    def __init__(self, label_smoothing: float = 0.1, name: str = "smoothed_sparse_categorical_crossentropy",
                 **kwargs: object) -> None:
        super().__init__(name=name, **kwargs)
        self.label_smoothing = label_smoothing

    def call(self, y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
        labels = tf.cast(tf.reshape(y_true, [-1]), tf.int32)
        targets = tf.one_hot(labels, tf.shape(y_pred)[-1], dtype=y_pred.dtype)
        return keras.losses.categorical_crossentropy(targets, y_pred, label_smoothing=self.label_smoothing)

    def get_config(self) -> dict[str, object]:
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


def compile_classifier(model: keras.Model, optimizer: str, learning_rate: float | keras.optimizers.schedules.
                       LearningRateSchedule, task: str = "multiclass", label_smoothing: float = 0.0,
                       weight_decay: float = 0.05) -> keras.Model:
    """Sparse categorical cross-entropy on the [B, C] probabilities (for `binary` this equals binary CE); for
    `multilabel`, binary cross-entropy per label against multi-hot labels, accuracy = per-label at 0.5. With
    `label_smoothing` > 0 the targets are smoothed (multiclass and binary: `SmoothedSparseCategoricalCrossentropy`)."""
    if task == "multilabel":
        loss: keras.losses.Loss = keras.losses.BinaryCrossentropy(label_smoothing=label_smoothing)
        accuracy: keras.metrics.Metric = keras.metrics.BinaryAccuracy(name="accuracy", threshold=MULTILABEL_THRESHOLD)
    else:
        loss = SmoothedSparseCategoricalCrossentropy(label_smoothing) if label_smoothing > 0 \
            else keras.losses.SparseCategoricalCrossentropy()
        accuracy = keras.metrics.SparseCategoricalAccuracy(name="accuracy")
    model.compile(optimizer=make_optimizer(optimizer, learning_rate, weight_decay), loss=loss, metrics=[accuracy])
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


def unfreeze_top(backbone: keras.Model, scope: FineTuneScope) -> int:
    """Make the top of the backbone trainable as `scope` says (all, a share or a count of its layers), keeping every
    BatchNormalization layer frozen. Returns how many layers with weights became trainable."""
    backbone.trainable = True
    layers = backbone.layers
    boundary = len(layers) - scope.count(len(layers))
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
