"""Image embeddings of a split's examples from a trained visionline SavedModel, for the report's search for
likely mislabelled training images.

The examples go through the model's own `transform_features` signature (the Transform graph: decoding,
resizing, normalisation, the label as training saw it — a class index, or the multi-hot vector of a multilabel
model), then through the Keras model up to its head: the backbone's pooled features, the penultimate
representation the classifier head reads. A batch that fails is retried one example at a time, so one bad image
costs only itself: every example is either embedded or listed with the reason it could not be.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import tensorflow as tf
import tf_keras as keras

import components.trainer.augmentation  # noqa: F401 - registers the custom augmentation layers load_model needs
import components.trainer.model  # noqa: F401 - registers the custom loss and layers load_model needs
from pipeline.report.split_examples import first_bytes, read_records, source_path

HEAD_LAYER = "head"  # components.trainer.model.build_head's name: everything before it is the feature extractor
TRANSFORM_SIGNATURE = "transform_features"


@dataclass
class SplitExample:
    """One serialized tf.Example of a split: where it came from and its encoded image."""

    record: str  # source path (the `path` feature) or "<split> record N"
    serialized: bytes
    image: bytes  # b"" when the example has no image bytes


@dataclass
class Embedded:
    """The embedded examples (their rows in the input), their labels as training saw them, and the others."""

    rows: list[int] = field(default_factory=list)
    embeddings: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    labels: np.ndarray = field(default_factory=lambda: np.zeros((0,)))  # class ids [N] or multi-hot [N, C]
    failed: list[tuple[int, str]] = field(default_factory=list)  # (row, reason)


def read_split(files: Sequence[str], image_key: str, limit: int, split: str = "train") -> list[SplitExample]:
    """Up to `limit` examples of TFRecord files (GZIP by name), in file order."""
    return [SplitExample(source_path(features) or f"{split} record {number}", serialized,
                         first_bytes(features, image_key))
            for number, (serialized, features) in enumerate(read_records(files, limit), start=1)]


def feature_extractor(model_dir: str) -> keras.Model:
    """The layers of the exported Keras model before its head (augmentation, identity at inference, and the
    backbone), as a model from `image_xf` to the pooled features."""
    model = keras.models.load_model(model_dir, compile=False)
    names = [layer.name for layer in model.layers]
    if HEAD_LAYER not in names:
        raise ValueError(f"the model in {model_dir} has no {HEAD_LAYER!r} layer (layers: {names})")
    chain = [layer for layer in model.layers[:names.index(HEAD_LAYER)]
             if not isinstance(layer, keras.layers.InputLayer)]
    inputs = keras.Input(shape=model.inputs[0].shape[1:], name="image_xf")
    x = inputs
    for layer in chain:
        x = layer(x, training=False)
    return keras.Model(inputs, x, name="embeddings")


def embed(model_dir: str, examples: Sequence[SplitExample], batch_size: int = 64) -> Embedded:
    """Embed `examples` with the SavedModel in `model_dir` (see the module docstring)."""
    transform = tf.saved_model.load(model_dir).signatures[TRANSFORM_SIGNATURE]
    extractor = feature_extractor(model_dir)
    vectors: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    out = Embedded()

    def run(rows: list[int]) -> None:
        outputs = transform(examples=tf.constant([examples[i].serialized for i in rows], dtype=tf.string))
        found = extractor(outputs["image_xf"], training=False).numpy()
        label = outputs["label_xf"].numpy()
        found = found.reshape(len(rows), -1)
        if not np.isfinite(found).all():
            raise ValueError("the model gave a non-finite embedding")
        vectors.append(found)
        labels.append(label.reshape(len(rows), -1))
        out.rows.extend(rows)

    for start in range(0, len(examples), batch_size):
        batch = list(range(start, min(start + batch_size, len(examples))))
        try:
            run(batch)
        except Exception:  # noqa: BLE001 - one bad example: retry one by one so only it is left out (and listed)
            for row in batch:
                if not examples[row].image:
                    out.failed.append((row, "no image bytes in the example"))
                    continue
                try:
                    run([row])
                except Exception as err:  # noqa: BLE001 - listed with its reason, never dropped silently
                    out.failed.append((row, _reason(err)))
    if vectors:
        out.embeddings = np.concatenate(vectors).astype(np.float64)
        stacked = np.concatenate(labels)
        out.labels = stacked[:, 0] if stacked.shape[1] == 1 else stacked
    return out


def _reason(err: Exception) -> str:
    """The informative line of an error: TensorFlow's op errors put the cause after "Graph execution error:",
    the node and a placeholder for stack traces (e.g. "Unknown image file format. One of JPEG, PNG, GIF, BMP
    required.")."""
    noise = ("Graph execution error", "Detected at node", "<stack traces", "[[", "Exception encountered")
    lines = [line.strip() for line in str(getattr(err, "message", err)).splitlines()]
    useful = [line for line in lines if line and not line.startswith(noise)]
    text = (useful[-1] if useful else "").split(" [Op:")[0].strip()
    return f"{type(err).__name__}: {text[:200]}" if text else type(err).__name__
