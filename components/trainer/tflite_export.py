"""TFLite variants of the trained model, written beside the SavedModel at export: float32, float16 (weights) and
int8 (post-training integer quantization calibrated on training images), each measured on eval images against the
SavedModel (accuracy, size, CPU latency) in `tflite.json` (layout and gate: `components.tflite_variants`).

TFLite cannot decode JPEG/PNG without flex ops, so a variant's input is the decoded image: uint8 pixels
[1, size, size, 3], decoded and resized exactly as the SavedModel's Transform graph does it
(`preprocessing.decode_and_resize`, then rounded), as TFLite Model Maker's models take them. The rest of the
preprocessing — the Transform graph's normalisation (`preprocessing.normalize`) and, with `train.tta_flip`, the
mirror averaging — is inside the TFLite graph, so a variant gives the SavedModel's probabilities up to rounding.

Accuracy (the gate's metric, the same the Evaluator gates with): top-1 accuracy for multiclass and binary; subset
accuracy (every label right at 0.5) for multilabel. Labels come from the exported model's own
`transform_features` signature, so they are read exactly as the Evaluator reads them.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras as keras

from components import features, tflite_variants
from components.trainer import export
from components.trainer import model as models
from components.trainer.settings import TrainSettings
from components.transform import preprocessing

CALIBRATION_IMAGES = 200  # training images the int8 quantization is calibrated on (TFLite's guide: ~100-500)
LATENCY_REPEATS = 20  # timed calls per variant, after three warm-up calls
_BATCH = 32  # SavedModel calls on the eval images, this many at a time


def pixels(encoded: Sequence[bytes], image_size: int) -> np.ndarray:
    """Encoded images → uint8 [N, size, size, 3]: decoded and resized as the SavedModel does, then rounded."""
    resized = preprocessing.decode_and_resize(tf.constant(list(encoded), dtype=tf.string), image_size)
    return tf.cast(tf.round(resized), tf.uint8).numpy()


def inference_function(model: keras.Model, image_size: int, normalization: str, task: str,
                       tta_flip: bool = False) -> tf.types.experimental.ConcreteFunction:
    """uint8 pixels [1, size, size, 3] → the Transform graph's normalisation → `model` → `probabilities` (and
    `predicted_labels` for multilabel), the graph each TFLite variant is converted from."""

    @tf.function(input_signature=[tf.TensorSpec([1, image_size, image_size, 3], tf.uint8,
                                                name=tflite_variants.INPUT)])
    def serve(pixels: tf.Tensor) -> dict[str, tf.Tensor]:
        images = preprocessing.normalize(tf.cast(pixels, tf.float32), normalization)
        probabilities = export.mirror_averaged(model, images) if tta_flip else \
            model({features.IMAGE_XF: images}, training=False)
        outputs = {"probabilities": probabilities}
        if task == "multilabel":
            outputs["predicted_labels"] = tf.cast(probabilities >= models.MULTILABEL_THRESHOLD, tf.int64)
        return outputs

    return serve.get_concrete_function()


def convert(function: tf.types.experimental.ConcreteFunction, model: keras.Model, variant: str,
            calibration: Callable[[], Iterator[list[np.ndarray]]] | None = None) -> tuple[bytes, str]:
    """(the .tflite bytes, how it was quantized) of `variant`: float32 (no quantization), float16 (float16
    weights) or int8 (integer ops calibrated on `calibration`'s pixel batches; an op without an integer kernel
    keeps a float one, which the returned description then says)."""
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function], model)
    if variant == "float32":
        return converter.convert(), "none"
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if variant == "float16":
        converter.target_spec.supported_types = [tf.float16]
        return converter.convert(), "float16 weights"
    if variant != "int8":
        raise ValueError(f"unknown TFLite variant {variant!r}; expected one of {tflite_variants.VARIANTS}")
    if calibration is None:
        raise ValueError("int8 quantization needs calibration images")
    converter.representative_dataset = calibration
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    try:
        return converter.convert(), "int8 (full integer, calibrated)"
    except Exception:  # noqa: BLE001 — the converter raises several types; retry allowing float kernels
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
        return converter.convert(), "int8 (calibrated; ops without an integer kernel stay float)"


class TFLiteModel:
    """One .tflite file's `serving_default` signature on uint8 pixels, one image per call."""

    def __init__(self, path: str | None = None, content: bytes | None = None, num_threads: int | None = None) -> None:
        self.interpreter = tf.lite.Interpreter(model_path=path, model_content=content, num_threads=num_threads)
        signatures = self.interpreter.get_signature_list()
        if tflite_variants.SIGNATURE not in signatures:
            raise ValueError(f"{path or 'TFLite model'}: no {tflite_variants.SIGNATURE!r} signature "
                             f"(has {sorted(signatures)}); not a visionline TFLite model")
        self.runner = self.interpreter.get_signature_runner(tflite_variants.SIGNATURE)
        shape = self.runner.get_input_details()[tflite_variants.INPUT]["shape"]
        self.image_size = int(shape[1])

    def __call__(self, image: np.ndarray) -> dict[str, np.ndarray]:
        """Outputs for one uint8 image [size, size, 3] (each output's batch row 0)."""
        outputs = self.runner(**{tflite_variants.INPUT: image[np.newaxis]})
        return {name: value[0] for name, value in outputs.items()}

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """[N, C] probabilities of uint8 images [N, size, size, 3]."""
        return np.stack([self(image)["probabilities"] for image in images])


def correct(probabilities: np.ndarray, labels: np.ndarray, task: str) -> np.ndarray:
    """Per image, whether the prediction is right: top-1 = label (multiclass, binary), or every label's
    probability on the right side of 0.5 (multilabel: subset accuracy; `labels` multi-hot)."""
    if task == "multilabel":
        return np.all((probabilities >= models.MULTILABEL_THRESHOLD) == (labels >= 0.5), axis=-1)
    return np.argmax(probabilities, axis=-1) == labels.reshape(-1)


def read_examples(file_patterns: Sequence[str], limit: int) -> list[bytes]:
    """Up to `limit` serialized examples of the (GZIP) TFRecord files matching `file_patterns`, evenly spread over
    them (every k-th record: files hold their examples in ingestion order, often class by class)."""
    files = sorted(f for pattern in file_patterns for f in tf.io.gfile.glob(pattern))
    if not files:
        return []
    dataset = tf.data.TFRecordDataset(files, compression_type="GZIP")
    total = int(dataset.reduce(np.int64(0), lambda count, _record: count + 1))
    stride = max(1, math.ceil(total / max(1, limit)))
    return [record.numpy() for record in dataset.shard(stride, 0).take(limit)]


def encoded_image(serialized: bytes, image_key: str) -> bytes:
    """The encoded image bytes of one serialized raw example; ValueError naming the feature when absent."""
    values = tf.train.Example.FromString(serialized).features.feature[image_key].bytes_list.value
    if not values:
        raise ValueError(f"example has no {image_key!r} image bytes")
    return values[0]


def evaluation_files(eval_files: Sequence[str]) -> tuple[list[str], str]:
    """The eval split's file patterns and its name: the TFX eval_args patterns, except that when they are the
    `val` split (a data root with val/) the `eval` split beside it in the same Examples artifact is used."""
    val, wanted = f"Split-{features.VALIDATION_SPLIT}", f"Split-{features.EVAL_SPLIT}"
    patterns = []
    for pattern in eval_files:
        split_dir = os.path.dirname(pattern.rstrip("/"))
        if os.path.basename(split_dir) == val:
            pattern = os.path.join(os.path.dirname(split_dir), wanted, os.path.basename(pattern.rstrip("/")))
        patterns.append(pattern)
    split_dir = os.path.basename(os.path.dirname(patterns[0].rstrip("/"))) if patterns else ""
    return patterns, split_dir.removeprefix("Split-") if split_dir.startswith("Split-") else features.EVAL_SPLIT


def median_ms(call: Callable[[], Any], repeats: int = LATENCY_REPEATS) -> float:
    """Median wall time of `call()` in milliseconds, after three warm-up calls."""
    for _ in range(3):
        call()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return round(1000 * statistics.median(times), 3)


def _saved_model_outputs(export_dir: str, serialized: Sequence[bytes], images: Sequence[bytes],
                         task: str) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities [N, C], labels) from the exported SavedModel: `serving_default` on the encoded images and
    `transform_features` (the Evaluator's label reading) on the examples."""
    if not images:
        return np.zeros((0, 0), np.float32), np.zeros((0,), np.int64)
    loaded = tf.saved_model.load(export_dir)
    serve, transform = loaded.signatures[export.SERVING_DEFAULT], loaded.signatures[export.TRANSFORM_FEATURES]
    probabilities, labels = [], []
    for start in range(0, len(images), _BATCH):
        chunk = tf.constant(list(images[start:start + _BATCH]), dtype=tf.string)
        probabilities.append(serve(images=chunk)["probabilities"].numpy())
        examples = tf.constant(list(serialized[start:start + _BATCH]), dtype=tf.string)
        labels.append(transform(examples=examples)[features.LABEL_XF].numpy())
    return np.concatenate(probabilities), np.concatenate(labels)


def export_variants(export_dir: str, model: keras.Model, *, class_names: Sequence[str], task: str, image_size: int,
                    normalization: str, image_key: str, train_files: Sequence[str], eval_files: Sequence[str],
                    max_eval_images: int, tta_flip: bool = False,
                    variants: Sequence[str] = tflite_variants.VARIANTS,
                    saved_model_cost: dict[str, float] | None = None) -> dict[str, Any]:
    """Convert `model` (already exported as a SavedModel in `export_dir`) into the TFLite `variants`, measure each
    against the SavedModel on up to `max_eval_images` images of the eval split (the training images when no eval
    files are given: the report's `eval.split` says which), write them with `labels.txt` and `tflite.json` into
    `<export_dir>/assets.extra/tflite/`, and return the report. `saved_model_cost`: the SavedModel's
    `export.measure` figures when the caller already has them (else measured here)."""
    started = time.perf_counter()
    out = tflite_variants.folder(export_dir)
    calibration_examples = read_examples(train_files, CALIBRATION_IMAGES)
    if not calibration_examples:
        raise ValueError(f"no training examples in {list(train_files)[:3]} to calibrate the int8 TFLite model on")
    if saved_model_cost is None:
        saved_model_cost = export.measure(export_dir, encoded_image(calibration_examples[0], image_key))
    tf.io.gfile.makedirs(out)
    with tf.io.gfile.GFile(os.path.join(out, tflite_variants.LABELS), "w") as handle:
        handle.write("".join(f"{name}\n" for name in class_names))
    calibration_images = pixels([encoded_image(s, image_key) for s in calibration_examples], image_size)

    def calibration() -> Iterator[list[np.ndarray]]:
        for image in calibration_images:
            yield [image[np.newaxis]]

    patterns, split = evaluation_files(eval_files) if eval_files else (list(train_files), "train")
    serialized = read_examples(patterns, max_eval_images)
    encoded = [encoded_image(s, image_key) for s in serialized]
    saved_probabilities, labels = _saved_model_outputs(export_dir, serialized, encoded, task)
    eval_pixels = pixels(encoded, image_size) if encoded else np.zeros((0, image_size, image_size, 3), np.uint8)
    function = inference_function(model, image_size, normalization, task, tta_flip)
    report: dict[str, Any] = {
        "task": task, "class_names": list(class_names), "labels_file": tflite_variants.LABELS,
        "input": {"name": tflite_variants.INPUT, "dtype": "uint8", "shape": [1, image_size, image_size, 3],
                  "preprocessing": "decode, resize (bilinear, antialiased) to the model's size, round to uint8; "
                                   f"normalisation ({normalization}) is inside the model"},
        "metric": "subset accuracy (all labels at 0.5)" if task == "multilabel" else "top-1 accuracy",
        "eval": {"split": split, "images": len(encoded), "max_images": max_eval_images},
        "calibration_images": len(calibration_images),
        "saved_model": {"accuracy": _accuracy(saved_probabilities, labels, task),
                        "parameters": int(model.count_params()), "size_mb": saved_model_cost["saved_model_mb"],
                        "cpu_latency_ms": saved_model_cost["cpu_latency_ms"],
                        "latency_measures": "serving_default on one encoded image (decoding included)"},
        "variants": {},
    }
    sample = eval_pixels[0] if len(eval_pixels) else calibration_images[0]  # the image latency is timed on
    for variant in variants:
        report["variants"][variant] = _variant(function, model, variant, calibration, out, eval_pixels,
                                               saved_probabilities, labels, task, sample)
    report["seconds"] = round(time.perf_counter() - started, 2)  # conversions and measurements, all variants
    with tf.io.gfile.GFile(os.path.join(out, tflite_variants.REPORT), "w") as handle:
        handle.write(json.dumps(report, indent=2))
    return report


def export_configured(export_dir: str, model: keras.Model, class_names: Sequence[str], settings: TrainSettings,
                      train_files: Sequence[str], eval_files: Sequence[str],
                      saved_model_cost: dict[str, float] | None = None) -> dict[str, Any] | None:
    """`export_variants` as the Trainer's settings say (`train.tflite`, `train.tflite_eval_images`, the task, image
    size, normalisation, image feature and `train.tta_flip`); None when `train.tflite` is off."""
    if not settings.tflite:
        return None
    return export_variants(export_dir, model, class_names=class_names, task=settings.task,
                           image_size=settings.image_size, normalization=settings.normalization,
                           image_key=settings.image_feature, train_files=train_files, eval_files=eval_files,
                           max_eval_images=settings.tflite_eval_images, tta_flip=settings.tta_flip,
                           saved_model_cost=saved_model_cost)


def _accuracy(probabilities: np.ndarray, labels: np.ndarray, task: str) -> float | None:
    return round(float(np.mean(correct(probabilities, labels, task))), 4) if len(labels) else None


def _variant(function: tf.types.experimental.ConcreteFunction, model: keras.Model, variant: str,
             calibration: Callable[[], Iterator[list[np.ndarray]]], out: str, eval_pixels: np.ndarray,
             saved_probabilities: np.ndarray, labels: np.ndarray, task: str, sample: np.ndarray) -> dict[str, Any]:
    """Convert, write and measure one variant; a failed conversion is recorded with its error (the gate then
    withholds the variant) rather than failing the Trainer."""
    name = tflite_variants.model_file(variant)
    started = time.perf_counter()
    try:
        content, quantization = convert(function, model, variant, calibration)
    except Exception as err:  # noqa: BLE001 — any converter failure: recorded, the SavedModel still ships
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        print(f"TFLite {variant}: conversion failed: {message}", flush=True)
        return {"file": name, "error": f"conversion failed: {message}"}
    converted = time.perf_counter()
    with tf.io.gfile.GFile(os.path.join(out, name), "wb") as handle:
        handle.write(content)
    runner = TFLiteModel(content=content)
    probabilities = runner.probabilities(eval_pixels) if len(eval_pixels) else np.zeros((0, 0))
    agreement = round(float(np.mean(np.argmax(probabilities, -1) == np.argmax(saved_probabilities, -1))), 4) \
        if len(eval_pixels) else None
    figures = {"file": name, "quantization": quantization, "accuracy": _accuracy(probabilities, labels, task),
               "top1_agreement_with_saved_model": agreement, "size_mb": round(len(content) / 2**20, 4),
               "cpu_latency_ms": median_ms(lambda: runner(sample)),
               "latency_measures": "one interpreter call on decoded uint8 pixels (decoding not included)",
               "convert_seconds": round(converted - started, 2),
               "measure_seconds": round(time.perf_counter() - converted, 2)}
    print(f"TFLite {variant}: accuracy {figures['accuracy']} (top-1 agreement with the SavedModel "
          f"{agreement}), {figures['size_mb']} MB, {figures['cpu_latency_ms']} ms per image", flush=True)
    return figures
