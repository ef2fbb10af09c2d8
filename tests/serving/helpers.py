"""Small helpers shared by the serving tests and the soak benchmark: copying/pushing versions, a tiny model, a
Classify request, the two gRPC service stubs."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.python.data.experimental.ops import testing as tf_data_testing
from tensorflow_serving.apis import classification_pb2, model_service_pb2_grpc, prediction_service_pb2_grpc

from components.pusher.executor import push_atomically
from components.trainer.export import CLASSIFICATION, CLASSIFY_METHOD_NAME, SERVING_DEFAULT, set_signature_method_name

MODEL = "visionline"
SLOW = "slow"  # the model name tests serve `build_slow_model` under


class GrpcStubs(NamedTuple):
    """TF Serving's two gRPC services on one channel."""

    prediction: prediction_service_pb2_grpc.PredictionServiceStub  # Predict, Classify, GetModelMetadata, …
    models: model_service_pb2_grpc.ModelServiceStub  # GetModelStatus, HandleReloadConfigRequest


def grpc_stubs(channel: grpc.Channel) -> GrpcStubs:
    """The PredictionService and ModelService stubs on `channel`."""
    return GrpcStubs(prediction_service_pb2_grpc.PredictionServiceStub(channel),
                     model_service_pb2_grpc.ModelServiceStub(channel))


def classify_request(images: Sequence[bytes], model: str = MODEL, signature: str = "classification") -> Any:
    """A gRPC ClassificationRequest for `images`, each a tf.Example with the bytes feature `image` (visionline's
    classification contract)."""
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = signature
    for image in images:
        request.input.example_list.examples.add().features.feature["image"].bytes_list.value.append(image)
    return request


def copy_version(source: Path, base: Path, version: int) -> Path:
    """Copy a SavedModel version directory to `<base>/<version>` (a plain, non-atomic copy)."""
    target = base / str(version)
    shutil.copytree(source, target)
    return target


def push_version(source: Path, base: Path, version: int) -> Path:
    """Push `source` as `<base>/<version>` exactly as the pipeline's Pusher does: staged in a hidden
    `.<version>.partial` folder, then renamed (`components.pusher.executor.push_atomically`)."""
    base.mkdir(parents=True, exist_ok=True)
    return Path(push_atomically(str(source), str(base), str(version), f"test-push:{source}"))


def build_tiny_model(export_dir: Path, class_names: Sequence[str], image_size: int = 8, seed: int = 0,
                     multilabel: bool = False) -> Path:
    """Save a small but real image classifier with visionline's serving contract (see `components/trainer/export.py`).

    `serving_default`: `images` [None] string (encoded JPEG/PNG/GIF/BMP, decoded with `tf.io.decode_image`) →
    `probabilities` [B,C], `classes` [B,C], `predicted_class` [B], `confidence` [B]; `classification`
    (method `tensorflow/serving/classify`): serialized tf.Examples with bytes feature `image` → `classes`,
    `scores`. The weights are a fixed random linear layer on the resized pixels; the bias favours class 0 so
    that class is the top prediction for ordinary images. Builds in a few seconds without a pipeline run.
    `multilabel`: one sigmoid per class and a `predicted_labels` [B,C] output (1 where p ≥ 0.5), as a
    `train.task=multilabel` model exports; the bias makes classes 0 and 1 the predicted set.
    """
    names = list(class_names)
    rng = np.random.default_rng(seed)
    features = image_size * image_size * 3

    class TinyClassifier(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.names = tf.constant(names, dtype=tf.string)
            self.kernel = tf.Variable(rng.normal(0, 0.01, (features, len(names))).astype(np.float32))
            bias = [4.0, 3.0] + [-4.0] * (len(names) - 2) if multilabel else [4.0] + [0.0] * (len(names) - 1)
            self.bias = tf.Variable(np.array(bias[: len(names)], dtype=np.float32))

        def _predict(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
            def decode(data: tf.Tensor) -> tf.Tensor:
                image = tf.io.decode_image(data, channels=3, expand_animations=False, dtype=tf.uint8)
                return tf.image.resize(tf.cast(image, tf.float32), [image_size, image_size]) / 255.0

            pixels = tf.map_fn(decode, images, fn_output_signature=tf.TensorSpec([image_size, image_size, 3],
                                                                                   tf.float32))
            logits = tf.reshape(pixels, [-1, features]) @ self.kernel + self.bias
            probabilities = tf.sigmoid(logits) if multilabel else tf.nn.softmax(logits)
            batch = tf.shape(probabilities)[0]
            outputs = {
                "probabilities": probabilities,
                "classes": tf.tile(self.names[tf.newaxis, :], [batch, 1]),
                "predicted_class": tf.gather(self.names, tf.argmax(probabilities, axis=-1)),
                "confidence": tf.reduce_max(probabilities, axis=-1),
            }
            if multilabel:
                outputs["predicted_labels"] = tf.cast(probabilities >= 0.5, tf.int64)
            return outputs

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="images")])
        def serve_images(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
            return self._predict(images)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
        def classify_examples(self, inputs: tf.Tensor) -> dict[str, tf.Tensor]:
            parsed = tf.io.parse_example(inputs, {"image": tf.io.FixedLenFeature([], tf.string)})
            predicted = self._predict(parsed["image"])
            return {"classes": predicted["classes"], "scores": predicted["probabilities"]}

    module = TinyClassifier()
    export_dir = Path(export_dir)
    tf.saved_model.save(module, str(export_dir), signatures={
        SERVING_DEFAULT: module.serve_images.get_concrete_function(),
        CLASSIFICATION: module.classify_examples.get_concrete_function(),
    })
    set_signature_method_name(str(export_dir), CLASSIFICATION, CLASSIFY_METHOD_NAME)
    return export_dir


def build_slow_model(export_dir: Path) -> Path:
    """A real SavedModel whose `serving_default` (`seconds` [None] float32 → `doubled` [None]) sleeps max(seconds)
    first (tf.data's sleep op, no busy loop): for tests that need the server busy for an exact time."""

    class Slow(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="seconds")])
        def serve(self, seconds: tf.Tensor) -> dict[str, tf.Tensor]:
            micros = tf.cast(tf.reduce_max(seconds) * 1e6, tf.int64)
            slept = tf.data.Dataset.from_tensors(seconds).apply(tf_data_testing.sleep(micros)).get_single_element()
            return {"doubled": slept * 2.0}

    module = Slow()
    tf.saved_model.save(module, str(export_dir), signatures={"serving_default": module.serve.get_concrete_function()})
    return export_dir
