"""Image preprocessing as TensorFlow ops: decode any encoded image, resize, normalise; and the tf.Transform
`preprocessing_fn` body built from them (label → integer via a vocabulary).

These functions run inside the Transform graph, hence inside the exported SavedModel: a client sends raw
encoded bytes and never re-implements any of this.

The label vocabulary (index → class name; the served model's class names and the Evaluator's class ids) is stable:
not TFT's frequency order, which changes with the class counts, but `label_order` — the curated schema's label
domain when one is given (`label_classes`, in its order), else every label seen, sorted (numerically when all are
integers); for the binary task the positive class is index 1 (`positive_class`, default the second of the two
sorted names). A tf.Transform analyzer (`tft.experimental.ptransform_analyzer`) collects the distinct labels and
writes that vocabulary as the Transform graph's asset `label`; `tft.apply_vocabulary` maps labels to indices.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any

import apache_beam as beam
import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam

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


def label_order(seen: Iterable[str], fixed: Sequence[str] = (), positive: str = "") -> list[str]:
    """The label vocabulary: `fixed` (a curated schema's label domain) in its order, then any other label `seen`
    sorted (numerically when every one is an integer); with `positive` (the binary task's positive class) that
    label last, i.e. index 1 of two. Empty labels are dropped; a label with a line break cannot be a vocabulary
    line (ValueError naming it), nor can an unknown `positive` (ValueError naming train.positive_class)."""
    extra = set(seen) - set(fixed) - {""}
    integers = all(label.lstrip("-").isdigit() for label in extra)
    labels = list(dict.fromkeys(fixed)) + sorted(extra, key=lambda label: (int(label), label) if integers
                                                 else (0, label))
    broken = [label for label in labels if "\n" in label or "\r" in label]
    if broken:
        raise ValueError(f"label {broken[0]!r} contains a line break: labels must be one line")
    if positive:
        if positive not in labels:
            raise ValueError(f"config field train.positive_class is {positive!r}, which is not a class of the data "
                             f"(classes: {', '.join(repr(label) for label in labels)})")
        labels = [label for label in labels if label != positive] + [positive]
    return labels


class _LabelVocabulary(tft_beam.experimental.PTransformAnalyzer):
    """Beam side of `label_vocabulary`: the distinct labels of the whole dataset → the vocabulary file (one label
    per line, in `label_order`), whose path is the analyzer's output."""

    def __init__(self, fixed: Sequence[str], positive: str) -> None:
        super().__init__()
        self._fixed, self._positive = list(fixed), positive

    def expand(self, batches: beam.PCollection) -> beam.PCollection:
        path = os.path.join(self.base_temp_dir, features.LABEL_VOCABULARY)
        return (batches
                | "Labels" >> beam.FlatMap(lambda batch: {_text(v) for v in np.asarray(batch[0]).reshape(-1)})
                | "Distinct" >> beam.Distinct()
                | "All" >> beam.combiners.ToList()
                | "Write" >> beam.Map(_write_vocabulary, path, self._fixed, self._positive))


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _write_vocabulary(seen: list[str], path: str, fixed: Sequence[str], positive: str) -> np.ndarray:
    tf.io.gfile.makedirs(os.path.dirname(path))
    with tf.io.gfile.GFile(path, "w") as handle:
        handle.write("".join(f"{label}\n" for label in label_order(seen, fixed, positive)))
    return np.array(path.encode("utf-8"), dtype=object)


def label_vocabulary(labels: tf.Tensor | tf.SparseTensor, fixed: Sequence[str] = (), positive: str = ""
                     ) -> tf.Tensor | tf.SparseTensor:
    """`labels` (strings, dense [B] or multilabel sparse [B, n]) → indices in the stable vocabulary `label_order`
    (the asset `features.LABEL_VOCABULARY`); labels outside it → -1."""
    values = labels.values if isinstance(labels, tf.SparseTensor) else labels
    (path,) = tft.experimental.ptransform_analyzer(
        [values], _LabelVocabulary(fixed, positive), output_dtypes=[tf.string], output_shapes=[[]],
        output_asset_default_values=[b"(not analysed yet)"], name="label_vocabulary")
    return tft.apply_vocabulary(labels, deferred_vocab_filename_tensor=path, num_oov_buckets=0, default_value=-1)


def transform_features(inputs: dict[str, Any], settings: TransformSettings) -> dict[str, tf.Tensor]:
    """The tf.Transform preprocessing: `image_xf` (normalised pixels) and, when labels are present, `label_xf`:
    the class index for multiclass/binary, or for multilabel a [B, n] sparse tensor of label indices (the
    Trainer and the exported `transform_features` signature turn it into a multi-hot vector once the vocabulary
    size is known)."""
    label_key = settings.label_feature
    outputs: dict[str, tf.Tensor] = {}
    encoded = dense_column(inputs[settings.image_feature], b"")
    outputs[features.IMAGE_XF] = normalize(decode_and_resize(encoded, settings.image_size), settings.normalization)
    fixed, positive = settings.label_classes, settings.positive_class
    if label_key in inputs and settings.task == "multilabel":
        outputs[features.LABEL_XF] = label_vocabulary(label_set(inputs[label_key]), fixed)
    elif label_key in inputs:
        label = inputs[label_key]
        default: Any = b"" if label.dtype == tf.string else -1
        labels = dense_column(label, default)
        if labels.dtype != tf.string:
            labels = tf.strings.as_string(labels)
        outputs[features.LABEL_XF] = label_vocabulary(labels, fixed, positive if settings.task == "binary" else "")
    return outputs
