"""Image preprocessing as TensorFlow ops: decode any encoded image, resize, normalise; and the tf.Transform
`preprocessing_fn` body built from them (label → integer via a vocabulary).

These functions run inside the Transform graph, hence inside the exported SavedModel: a client sends raw
encoded bytes and never re-implements any of this.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf
import tensorflow_transform as tft

from components import features
from components.transform.settings import TransformSettings

# (offset, scale) so that normalised = (pixel - offset) / scale, pixels in [0, 255].
_NORMALIZATION = {
    "zero_one": (0.0, 255.0),
    "minus_one_one": (127.5, 127.5),  # MobileNetV2, ResNet*V2, Xception, InceptionV3 ("tf" mode)
    "lite": (127.0, 128.0),  # EfficientNet-Lite's (x - 127) / 128
    "raw": (0.0, 1.0),  # Keras EfficientNetB0 rescales inside the model
}
# VGG ("caffe" mode): RGB → BGR, then subtract the ImageNet channel means (BGR order), no scaling.
_CAFFE_MEANS_BGR = (103.939, 116.779, 123.68)
NORMALIZATIONS = (*_NORMALIZATION, "caffe")


def decode_and_resize(encoded: tf.Tensor, image_size: int) -> tf.Tensor:
    """Batch of encoded JPEG/PNG/GIF/BMP strings [B] → float32 RGB pixels [B, size, size, 3] in [0, 255].

    Grayscale is expanded to three channels and alpha is dropped (`channels=3`); animated GIFs give their first
    frame; every image is resized with bilinear interpolation (aspect ratio not preserved, as in the seeds).
    """

    def _one(data: tf.Tensor) -> tf.Tensor:
        image = tf.io.decode_image(data, channels=3, expand_animations=False, dtype=tf.uint8)
        image = tf.image.resize(tf.cast(image, tf.float32), [image_size, image_size], antialias=True)
        return tf.clip_by_value(image, 0.0, 255.0)

    return tf.map_fn(
        _one,
        tf.reshape(encoded, [-1]),
        fn_output_signature=tf.TensorSpec([image_size, image_size, 3], tf.float32),
    )


def normalize(pixels: tf.Tensor, mode: str) -> tf.Tensor:
    """Map [0, 255] RGB pixels to what the model expects (see `_NORMALIZATION`; `caffe` for VGG)."""
    if mode == "caffe":
        return pixels[..., ::-1] - tf.constant(_CAFFE_MEANS_BGR, dtype=pixels.dtype)
    try:
        offset, scale = _NORMALIZATION[mode]
    except KeyError:
        raise ValueError(f"unknown normalization {mode!r}; expected one of {sorted(NORMALIZATIONS)}") from None
    return (pixels - offset) / scale


def denormalize(normalized: tf.Tensor, mode: str) -> tf.Tensor:
    """The inverse of `normalize`: model inputs back to [0, 255] RGB pixels (for augmentation in pixel space)."""
    if mode == "caffe":
        return (normalized + tf.constant(_CAFFE_MEANS_BGR, dtype=normalized.dtype))[..., ::-1]
    try:
        offset, scale = _NORMALIZATION[mode]
    except KeyError:
        raise ValueError(f"unknown normalization {mode!r}; expected one of {sorted(NORMALIZATIONS)}") from None
    return normalized * scale + offset


def dense_column(value: tf.Tensor | tf.SparseTensor, default: Any) -> tf.Tensor:
    """A single-valued raw feature as a dense [B] tensor, whether the schema made it dense or sparse."""
    if isinstance(value, tf.SparseTensor):
        value = tf.sparse.to_dense(value, default_value=default)
        return tf.reshape(value[:, :1], [-1]) if value.shape.rank == 2 else tf.reshape(value, [-1])
    return tf.reshape(value, [-1])


def label_set(value: tf.Tensor | tf.SparseTensor) -> tf.SparseTensor:
    """A multilabel raw feature (0..n strings per example) as a [B, n] SparseTensor of label strings.

    A schema may make the feature dense when every example happened to carry exactly one label; empty strings
    are not labels.
    """
    if not isinstance(value, tf.SparseTensor):
        dense = tf.reshape(value, [tf.shape(value)[0], -1])
        value = tf.sparse.from_dense(dense)  # drops "" entries
    if value.dtype != tf.string:
        value = tf.SparseTensor(value.indices, tf.strings.as_string(value.values), value.dense_shape)
    return tf.sparse.retain(value, tf.strings.length(value.values) > 0)


def multi_hot(label_ids: tf.SparseTensor, num_labels: int) -> tf.Tensor:
    """[B, n] sparse label indices (unknown labels = -1 are dropped) → float32 multi-hot [B, num_labels]."""
    known = tf.sparse.retain(label_ids, (label_ids.values >= 0) & (label_ids.values < num_labels))
    return tf.cast(tf.sparse.to_indicator(known, num_labels), tf.float32)


def transform_features(inputs: dict[str, Any], settings: TransformSettings) -> dict[str, tf.Tensor]:
    """The tf.Transform preprocessing: `image_xf` (normalised pixels) and, when labels are present, `label_xf`:
    the class index for multiclass/binary, or for multilabel a [B, n] sparse tensor of label indices (the
    Trainer and the exported `transform_features` signature turn it into a multi-hot vector once the vocabulary
    size is known)."""
    label_key = settings.label_feature
    outputs: dict[str, tf.Tensor] = {}
    encoded = dense_column(inputs[settings.image_feature], b"")
    outputs[features.IMAGE_XF] = normalize(decode_and_resize(encoded, settings.image_size), settings.normalization)
    if label_key in inputs and settings.task == "multilabel":
        outputs[features.LABEL_XF] = tft.compute_and_apply_vocabulary(
            label_set(inputs[label_key]), vocab_filename=features.LABEL_VOCABULARY, num_oov_buckets=0,
            default_value=-1)
    elif label_key in inputs:
        label = inputs[label_key]
        default: Any = b"" if label.dtype == tf.string else -1
        labels = dense_column(label, default)
        if labels.dtype != tf.string:
            labels = tf.strings.as_string(labels)
        outputs[features.LABEL_XF] = tft.compute_and_apply_vocabulary(
            labels, vocab_filename=features.LABEL_VOCABULARY, num_oov_buckets=0, default_value=-1
        )
    return outputs
