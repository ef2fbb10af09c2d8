"""The exported SavedModel's signatures, with the tf.Transform graph inside.

* `serving_default` – input `images`: a batch of raw encoded image bytes (JPEG/PNG/GIF/BMP); outputs
  `probabilities` [B, C], `classes` [B, C] (class names in index order), `predicted_class` [B], `confidence` [B];
  multilabel models (independent sigmoid per label) also output `predicted_labels` [B, C] (int64 1 where the
  label's probability ≥ 0.5; `predicted_class` is then the most likely label). With `tta_flip` every signature's
  probabilities are the mean over the image and its mirror image (test-time augmentation).
* `serving_examples` – input `examples`: serialized raw `tf.train.Example`s; same outputs (used by TFMA).
* `classification` – TF Serving's Classify API: input `inputs` (serialized tf.Examples with the image
  feature), outputs `classes` [B, C] and `scores` [B, C]; its method name is set to
  `tensorflow/serving/classify` after saving (Keras' saver writes every signature as "predict").
* `transform_features` – input `examples`; outputs the transformed features incl. `label_xf` (TFMA's
  preprocessing function, so the Evaluator reads labels exactly as training saw them: the class index, or for
  multilabel the float32 multi-hot vector [B, C]).
* `explain` – inputs `images` and `class_index` [B] int64 (-1: the top class); Grad-CAM heatmaps `heatmap`
  [B, H, W] and more (components/trainer/explain.py documents the outputs).
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Sequence

import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras

from components import features
from components.trainer import explain
from components.trainer import model as models
from components.transform import preprocessing

SERVING_DEFAULT = "serving_default"
SERVING_EXAMPLES = "serving_examples"
CLASSIFICATION = "classification"
TRANSFORM_FEATURES = "transform_features"
CLASSIFY_METHOD_NAME = "tensorflow/serving/classify"


def _raw_image_feature(images: tf.Tensor, spec: tf.io.FixedLenFeature | tf.io.VarLenFeature) -> tf.Tensor:
    """Shape a [B] string batch the way the Transform graph's raw image input expects it."""
    if isinstance(spec, tf.io.VarLenFeature):
        return tf.sparse.from_dense(tf.reshape(images, [-1, 1]))
    return tf.reshape(images, [-1, *spec.shape])


def _image_key(tft_output: tft.TFTransformOutput) -> str:
    spec = tft_output.raw_feature_spec()
    if features.IMAGE in spec:
        return features.IMAGE
    strings = [k for k, v in spec.items() if getattr(v, "dtype", None) == tf.string and k != features.LABEL]
    if len(strings) != 1:
        raise ValueError(f"cannot tell which raw feature holds the image among {sorted(spec)}")
    return strings[0]


def build_signatures(model: keras.Model, tft_output: tft.TFTransformOutput, class_names: Sequence[str],
                     image_key: str | None = None, task: str = "multiclass", tta_flip: bool = False,
                     ) -> dict[str, tf.types.experimental.ConcreteFunction]:
    """Concrete functions for `model.save(signatures=...)`; attaches the Transform layer to `model`.

    `tta_flip`: average the probabilities of each image and its horizontal mirror (one forward pass over both),
    which doubles the inference cost; right only when a mirrored image keeps its class."""
    model.tft_layer = tft_output.transform_features_layer()
    raw_spec = tft_output.raw_feature_spec()
    image_key = image_key or _image_key(tft_output)
    image_spec = raw_spec[image_key]
    names = tf.constant(list(class_names), dtype=tf.string)

    def _predict(raw: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        transformed = model.tft_layer(raw)
        images = transformed[features.IMAGE_XF]
        if tta_flip:
            probabilities = mirror_averaged(model, images)
        else:
            probabilities = model({features.IMAGE_XF: images}, training=False)
        top = tf.argmax(probabilities, axis=-1)
        batch = tf.shape(probabilities)[0]
        outputs = {
            "probabilities": probabilities,
            "classes": tf.tile(names[tf.newaxis, :], [batch, 1]),
            "predicted_class": tf.gather(names, top),
            "confidence": tf.reduce_max(probabilities, axis=-1),
        }
        if task == "multilabel":
            outputs["predicted_labels"] = tf.cast(probabilities >= models.MULTILABEL_THRESHOLD, tf.int64)
        return outputs

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="images")])
    def serve_images(images: tf.Tensor) -> dict[str, tf.Tensor]:
        return _predict({image_key: _raw_image_feature(images, image_spec)})

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve_examples(examples: tf.Tensor) -> dict[str, tf.Tensor]:
        return _predict(tf.io.parse_example(examples, {image_key: image_spec}))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def classify_examples(inputs: tf.Tensor) -> dict[str, tf.Tensor]:
        predicted = _predict(tf.io.parse_example(inputs, {image_key: image_spec}))
        return {"classes": predicted["classes"], "scores": predicted["probabilities"]}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def transform_features(examples: tf.Tensor) -> dict[str, tf.Tensor]:
        transformed = dict(model.tft_layer(tf.io.parse_example(examples, raw_spec)))
        if task == "multilabel" and features.LABEL_XF in transformed:
            transformed[features.LABEL_XF] = preprocessing.multi_hot(transformed[features.LABEL_XF], len(class_names))
        return transformed

    def transform_images(images: tf.Tensor) -> tf.Tensor:
        return model.tft_layer({image_key: _raw_image_feature(images, image_spec)})[features.IMAGE_XF]

    return {
        explain.EXPLAIN: explain.explain_signature(model, transform_images, class_names, task, tta_flip),
        SERVING_DEFAULT: serve_images.get_concrete_function(),
        SERVING_EXAMPLES: serve_examples.get_concrete_function(),
        CLASSIFICATION: classify_examples.get_concrete_function(),
        TRANSFORM_FEATURES: transform_features.get_concrete_function(),
    }


def mirror_averaged(model: keras.Model, images: tf.Tensor) -> tf.Tensor:
    """The mean of `model`'s outputs for `images` [B, H, W, C] and for their horizontal mirror images."""
    both = model({features.IMAGE_XF: tf.concat([images, tf.image.flip_left_right(images)], axis=0)},
                 training=False)
    original, mirrored = tf.split(both, 2, axis=0)
    return (original + mirrored) / 2.0


def save_serving_model(model: keras.Model, tft_output: tft.TFTransformOutput, export_dir: str,
                       class_names: Sequence[str], image_key: str | None = None, task: str = "multiclass",
                       tta_flip: bool = False) -> None:
    """Save `model` as a SavedModel with the signatures above.

    TFMA's Evaluator reloads it with `tf.keras.models.load_model` in Beam workers that never import visionline, so
    a loss of ours (label smoothing: a training-time matter only) is swapped for Keras' plain sparse cross-entropy
    before saving; the weights and signatures are unchanged. The optimizer's state (AdamW's two slots per weight,
    twice the model's size) is not saved: nothing serves or evaluates with it."""
    if isinstance(getattr(model, "loss", None), models.SmoothedSparseCategoricalCrossentropy):  # compiled with it
        model.compile(optimizer=model.optimizer, loss=keras.losses.SparseCategoricalCrossentropy(),
                      metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
    signatures = build_signatures(model, tft_output, class_names, image_key=image_key, task=task,
                                  tta_flip=tta_flip)
    model.save(export_dir, save_format="tf", signatures=signatures, include_optimizer=False)
    set_signature_method_name(export_dir, CLASSIFICATION, CLASSIFY_METHOD_NAME)


def set_signature_method_name(export_dir: str, signature: str, method_name: str) -> None:
    """Rewrite one signature's `method_name` in `saved_model.pb` (TF Serving's Classify API checks it)."""
    from tensorflow.core.protobuf import saved_model_pb2

    path = f"{export_dir.rstrip('/')}/saved_model.pb"
    saved_model = saved_model_pb2.SavedModel()
    with tf.io.gfile.GFile(path, "rb") as handle:
        saved_model.ParseFromString(handle.read())
    for meta_graph in saved_model.meta_graphs:
        if signature not in meta_graph.signature_def:
            raise KeyError(f"{path}: no signature {signature!r}")
        meta_graph.signature_def[signature].method_name = method_name
    with tf.io.gfile.GFile(path, "wb") as handle:
        handle.write(saved_model.SerializeToString())


def measure(export_dir: str, image: bytes, repeats: int = 20) -> dict[str, float]:
    """What the exported model costs: its size on disk (MB) and the median wall time of one `serving_default` call on
    one encoded image (ms, on this machine's CPU, after three warm-up calls), as recorded with each run."""
    size = sum(tf.io.gfile.stat(os.path.join(root, name)).length
               for root, _dirs, files in tf.io.gfile.walk(export_dir) for name in files)
    with tf.device("/CPU:0"):
        serve = tf.saved_model.load(export_dir).signatures[SERVING_DEFAULT]
        images = tf.constant([image])
        for _ in range(3):
            serve(images=images)
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            serve(images=images)
            times.append(time.perf_counter() - started)
    return {"saved_model_mb": round(size / 2**20, 2), "cpu_latency_ms": round(1000 * statistics.median(times), 2)}
