"""`TFLitePredictor`: encoded images in, `Prediction`s out, from one visionline TFLite file (`visionline predict
--tflite FILE`), in-process with `tf.lite.Interpreter`.

A visionline TFLite model takes decoded uint8 pixels (`components.tflite_variants`), so each image is decoded and
resized here exactly as the SavedModel's Transform graph does it (`components.trainer.tflite_export.pixels`, which
calls the Transform's own `decode_and_resize`), then rounded; the normalisation is inside the model. Class names come
from `labels.txt` beside the file (written by the Trainer); without one, classes are shown as indices and a note
says so. A multilabel model's `predicted_labels` output gives each image's label set, as the SavedModel's does.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import components.environment  # noqa: F401  (Keras 2 before anything imports TensorFlow; no TF import)
from components import tflite_variants
from serving.clients.predictors import DEFAULT_TOP_K
from serving.clients.results import Prediction, PredictionError, ServiceError, top_k_predictions


class TFLitePredictor:
    """Runs a visionline TFLite file's `serving_default` signature on each image."""

    def __init__(self, path: str, top_k: int = DEFAULT_TOP_K) -> None:
        # TensorFlow, tf.Transform's decoding and the interpreter: loaded here, not at module level (light CLI)
        from components.trainer import tflite_export

        if not os.path.isfile(path):
            raise ServiceError(f"{path}: no such TFLite file")
        try:
            self._model = tflite_export.TFLiteModel(path)
        except ValueError as err:  # not a TFLite flatbuffer, or not a visionline one
            raise ServiceError(f"{path}: cannot load as a visionline TFLite model: {str(err).strip()}") from None
        self._pixels = tflite_export.pixels
        self.path = path
        self.class_names = tflite_variants.read_labels(path)
        if self.class_names is None:
            print(f"note: no {tflite_variants.LABELS} beside {path}: classes are shown as indices", file=sys.stderr)
        self._top_k = top_k

    def predict(self, images: Sequence[bytes]) -> list[Prediction]:
        """Decode and resize the images as the SavedModel does, then one interpreter call per image."""
        import tensorflow as tf  # loaded by __init__ already; not at module level (light CLI)

        try:
            pixels = self._pixels(images, self._model.image_size)
        except tf.errors.InvalidArgumentError as err:
            raise PredictionError(f"cannot decode the image: {err.message.splitlines()[0]}") from None
        outputs = [self._model(image) for image in pixels]
        probabilities = [out["probabilities"] for out in outputs]
        if self.class_names is not None and len(self.class_names) != len(probabilities[0]):
            raise ServiceError(f"{self.path}: {len(self.class_names)} names in {tflite_variants.LABELS} for "
                               f"{len(probabilities[0])} model outputs")
        classes = None if self.class_names is None else [self.class_names] * len(outputs)
        hot = [out["predicted_labels"] for out in outputs] if outputs and "predicted_labels" in outputs[0] else None
        return top_k_predictions(probabilities, classes, self._top_k, hot)

    def close(self) -> None:
        """Drop the interpreter."""
        self._model = None
