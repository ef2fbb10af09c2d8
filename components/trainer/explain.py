"""The `explain` signature: Grad-CAM class-activation heatmaps computed inside the SavedModel, so any TF Serving
returns explanations with a plain Predict call.

Grad-CAM (Selvaraju et al. 2017) on the backbone's last convolutional feature map A [h, w, k]: the gradient of the
explained class's score (the head's pre-activation logit; for `binary`, ±the one sigmoid logit) with respect to A,
averaged over h×w, weighs A's channels; ReLU of the weighted sum is the map, scaled to [0, 1] per image (all zeros
when nothing speaks for the class) and bilinearly upsampled to the model's input size. The feature map is found
generically — the backbone's last layer with a 4-D output (the one its global pooling or flatten reads) — so it
works for every backbone in the registry and `simple_cnn`. Augmentation layers are identity at inference and are
skipped. With `tta_flip` the heatmap is the sum of the image's and the mirror image's maps (the mirror's flipped
back), as the served probabilities are the mean over both.

Inputs: `images` [B] raw encoded image bytes (decoded exactly as `serving_default`) and `class_index` [B] int64 —
the class to explain per image, -1 for the predicted (top) class; TF Serving has no optional inputs, so it is
always sent. Outputs: `heatmap` [B, H, W] float32 in [0, 1], `class_index` [B] int64 (the class explained),
`explained_class` [B] (its name), `probabilities` [B, C] and `classes` [B, C] (as `serving_default`'s).
Multilabel models also output `label_heatmaps` [B, C, H, W] (one map per label, in class order) and
`predicted_labels` [B, C] (1 where the label's probability ≥ 0.5): a client overlays the maps of the predicted
labels.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import tensorflow as tf
import tf_keras as keras

from components.trainer import model as models

EXPLAIN = "explain"
TOP_CLASS = -1  # `class_index` value: explain the predicted class
_EPSILON = 1e-8


def _input_shape(layer: keras.layers.Layer) -> object:
    try:
        return layer.input_shape
    except (AttributeError, RuntimeError):  # a layer that was never called in a functional graph
        return None


def split_classifier(classifier: keras.Model) -> tuple[keras.Model, keras.Model]:
    """(backbone, head) of a model built by `components.trainer.model.build_classifier`: the backbone is the nested
    model reading images [B, H, W, 3], the head the nested model reading the backbone's output (layers attached
    later, such as the Transform layer, are neither). ValueError naming the model if it is not shaped so."""
    nested = [layer for layer in classifier.layers if isinstance(layer, keras.Model)]
    backbones = [m for m in nested if isinstance(_input_shape(m), tuple) and len(_input_shape(m)) == 4]
    heads = [m for m in nested if backbones and _input_shape(m) == backbones[0].output_shape]
    if len(backbones) != 1 or len(heads) != 1:
        raise ValueError(f"model {classifier.name!r}: expected one backbone model followed by one head model, got "
                         f"layers {[layer.name for layer in classifier.layers]}")
    return backbones[0], heads[0]


def last_feature_map_layer(backbone: keras.Model) -> keras.layers.Layer:
    """The backbone's last layer whose output is a 4-D feature map [B, h, w, k] (what its pooling reads)."""
    for layer in reversed(backbone.layers):
        shape = getattr(layer, "output_shape", None)
        if isinstance(shape, tuple) and len(shape) == 4 and not isinstance(layer, keras.layers.InputLayer):
            return layer
    raise ValueError(f"backbone {backbone.name!r} has no layer with a 4-D feature-map output for Grad-CAM")


def _last_dense(head: keras.Model) -> keras.layers.Dense:
    dense = [layer for layer in head.layers if isinstance(layer, keras.layers.Dense)]
    if not dense:
        raise ValueError(f"head {head.name!r} has no Dense output layer")
    return dense[-1]


class GradCam:
    """Grad-CAM for a visionline classifier: `explain(images_xf, class_index)` → the `explain` signature's outputs."""

    def __init__(self, classifier: keras.Model, class_names: Sequence[str], task: str = "multiclass",
                 tta_flip: bool = False) -> None:
        self.backbone, self.head = split_classifier(classifier)
        layer = last_feature_map_layer(self.backbone)
        self.features = keras.Model(self.backbone.inputs, [layer.output, self.backbone.output],
                                    name=f"{self.backbone.name}_gradcam")
        self.output_dense = _last_dense(self.head)
        self.names = list(class_names)
        self.task = task
        self.tta_flip = tta_flip

    def _scores(self, pooled: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """(class scores before the output activation [N, C], probabilities [N, C]) for pooled features."""
        x = pooled
        for layer in self.head.layers:
            if layer is self.output_dense:
                break
            x = layer(x, training=False)
        dense = self.output_dense
        logits = tf.matmul(tf.cast(x, tf.float32), tf.cast(dense.kernel, tf.float32))
        if dense.use_bias:
            logits += tf.cast(dense.bias, tf.float32)
        if dense.units == 1:  # binary: one sigmoid unit served as [1 - p, p]
            logits = tf.concat([-logits, logits], axis=-1)
        probabilities = tf.cast(self.head(pooled, training=False), tf.float32)
        return logits, probabilities

    def _combine(self, maps: tf.Tensor, batch: tf.Tensor) -> tf.Tensor:
        """[N, …, h, w] maps of the forward rows → [B, …, h, w]: with TTA, image + flipped-back mirror."""
        if not self.tta_flip:
            return maps
        return maps[:batch] + tf.reverse(maps[batch:], axis=[-1])

    def _upsampled(self, cams: tf.Tensor, size: tf.Tensor) -> tf.Tensor:
        """ReLU, per-map scaling to [0, 1], bilinear resize of [..., h, w] maps to [..., H, W]."""
        cams = tf.nn.relu(cams)
        peak = tf.reduce_max(cams, axis=[-2, -1], keepdims=True)
        cams = tf.math.divide_no_nan(cams, tf.maximum(peak, _EPSILON))
        lead = tf.shape(cams)[:-2]
        flat = tf.reshape(cams, tf.concat([[-1], tf.shape(cams)[-2:], [1]], axis=0))
        resized = tf.image.resize(flat, size, method="bilinear")
        return tf.clip_by_value(tf.reshape(resized, tf.concat([lead, size], axis=0)), 0.0, 1.0)

    def explain(self, images: tf.Tensor, class_index: tf.Tensor) -> dict[str, tf.Tensor]:
        """Grad-CAM outputs for transformed images [B, H, W, 3] and requested classes [B] (-1: the top class)."""
        batch = tf.shape(images)[0]
        num_classes = len(self.names)
        class_index = tf.cast(class_index, tf.int64)
        checks = [
            tf.debugging.assert_equal(tf.shape(class_index)[0], batch,
                                      message="explain: input class_index needs one value per image"),
            tf.debugging.assert_greater_equal(class_index, tf.constant(TOP_CLASS, tf.int64),
                                              message=f"explain: input class_index must be -1 (top class) or 0 to "
                                                      f"{num_classes - 1}"),
            tf.debugging.assert_less(class_index, tf.constant(num_classes, tf.int64),
                                     message=f"explain: input class_index must be -1 (top class) or 0 to "
                                             f"{num_classes - 1}"),
        ]
        with tf.control_dependencies(checks):
            images = tf.identity(images)
        rows = tf.concat([images, tf.image.flip_left_right(images)], axis=0) if self.tta_flip else images
        with tf.GradientTape(persistent=self.task == "multilabel") as tape:
            feature_map, pooled = self.features(rows, training=False)
            tape.watch(feature_map)
            logits, probabilities = self._scores(pooled)
            if self.tta_flip:
                probabilities = (probabilities[:batch] + probabilities[batch:]) / 2.0
            top = tf.argmax(probabilities, axis=-1)
            explained = tf.where(class_index == TOP_CLASS, top, class_index)
            wanted = tf.tile(explained, [2]) if self.tta_flip else explained
            score = tf.reduce_sum(tf.gather(logits, wanted, axis=1, batch_dims=1))
        feature_map32 = tf.cast(feature_map, tf.float32)
        grads = tf.cast(tape.gradient(score, feature_map), tf.float32)
        weights = tf.reduce_mean(grads, axis=[1, 2])  # [N, k]
        cams = tf.einsum("nhwk,nk->nhw", feature_map32, weights)
        size = tf.shape(images)[1:3]
        outputs = {
            "heatmap": self._upsampled(self._combine(cams, batch), size),
            "class_index": explained,
            "explained_class": tf.gather(tf.constant(self.names, tf.string), explained),
            "probabilities": probabilities,
            "classes": tf.tile(tf.constant(self.names, tf.string)[tf.newaxis, :], [batch, 1]),
        }
        if self.task == "multilabel":  # one map per label: d logit_c / dA for every c at once
            jacobian = tf.cast(tape.batch_jacobian(logits, feature_map), tf.float32)  # [N, C, h, w, k]
            label_weights = tf.reduce_mean(jacobian, axis=[2, 3])  # [N, C, k]
            label_cams = tf.einsum("nhwk,nck->nchw", feature_map32, label_weights)
            outputs["label_heatmaps"] = self._upsampled(self._combine(label_cams, batch), size)
            outputs["predicted_labels"] = tf.cast(probabilities >= models.MULTILABEL_THRESHOLD, tf.int64)
        del tape
        return outputs


def explain_signature(classifier: keras.Model, transform_images: Callable[[tf.Tensor], tf.Tensor],
                      class_names: Sequence[str], task: str = "multiclass", tta_flip: bool = False,
                      ) -> tf.types.experimental.ConcreteFunction:
    """The `explain` concrete function; `transform_images` maps raw image bytes [B] to the model's input (the
    Transform graph, as `serving_default` decodes them)."""
    gradcam = GradCam(classifier, class_names, task, tta_flip)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="images"),
                                  tf.TensorSpec([None], tf.int64, name="class_index")])
    def explain(images: tf.Tensor, class_index: tf.Tensor) -> dict[str, tf.Tensor]:
        return gradcam.explain(transform_images(images), class_index)

    return explain.get_concrete_function()
