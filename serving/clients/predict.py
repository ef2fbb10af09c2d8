"""Clients of the serving contract: `visionline predict` (REST or gRPC) and `visionline predict-batch` (Beam).

* `RestPredictor` / `GrpcPredictor` call TF Serving's REST `:predict` / gRPC `Predict` of `serving_default`
  (they work against the local server and a real TensorFlow Serving alike); `SavedModelPredictor` calls the
  same signature in-process from a pushed SavedModel (no server needed).
* `predict_files` validates each file with `components.example_gen.images.inspect_image` (the ingestion gate) and
  predicts the valid ones; `predict_batch` does the same as an Apache Beam job (DirectRunner, pipeline in
  `serving.clients.batch_prediction`) over a folder of unlabelled images and writes two CSVs: predictions
  (`path,top1,probability,top_k,labels`; `labels` is the predicted label set of a multilabel model, empty for
  single-label models) and quarantine (`path,stage,reason`). Every file ends up in exactly one of them; the
  counts are checked after the run.

Failures are split in two: `PredictionError` means the server rejected *this input* (HTTP 400 /
INVALID_ARGUMENT) – the file is reported or quarantined; `ServiceError` means the service itself failed
(unreachable, unknown model, 5xx) – the command stops with an error rather than quarantining everything.
"""

from __future__ import annotations

import base64
import csv
import io
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

import components.environment  # noqa: F401  (Keras 2 before anything imports TensorFlow; no TF import)
from components.example_gen.images import MAX_IMAGE_PIXELS

DEFAULT_URL = "http://127.0.0.1:8501"
DEFAULT_MODEL = "visionline"
DEFAULT_TOP_K = 5
DEFAULT_MAX_PIXELS = MAX_IMAGE_PIXELS  # checked before sending, as at ingestion
SIGNATURE = "serving_default"
PREDICTION_HEADER = ("path", "top1", "probability", "top_k", "labels")
QUARANTINE_HEADER = ("path", "stage", "reason")


class PredictionError(Exception):
    """The service rejected this input (it is the input's fault); `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ServiceError(Exception):
    """The service failed or is misconfigured (unreachable, unknown model, server error)."""


@dataclass(frozen=True)
class Prediction:
    """Top-k (class name, probability) pairs, best first; for a multilabel model also `labels`, the predicted
    label set (the model's `predicted_labels` output, most probable first; may be empty)."""

    top_k: tuple[tuple[str, float], ...]
    labels: tuple[str, ...] | None = None

    @property
    def label(self) -> str:
        """Top-1 class name."""
        return self.top_k[0][0]

    @property
    def probability(self) -> float:
        """Top-1 probability."""
        return self.top_k[0][1]


def top_k_predictions(probabilities: Any, classes: Any, k: int, predicted_labels: Any = None) -> list[Prediction]:
    """Per row, the `k` most probable (class, probability) pairs; class names default to indices.
    `predicted_labels` (a multilabel model's multi-hot [batch, classes] output) adds each row's label set."""
    probs = np.asarray(probabilities, dtype=np.float64)
    if probs.ndim != 2:
        raise ServiceError(f"expected probabilities of shape [batch, classes], got {list(probs.shape)}")
    hot = None if predicted_labels is None else np.asarray(predicted_labels)
    if hot is not None and hot.shape != probs.shape:
        raise ServiceError(f"predicted_labels has shape {list(hot.shape)}, probabilities {list(probs.shape)}")
    results = []
    for i, row in enumerate(probs):
        names = classes[i] if classes is not None else range(len(row))
        names = [n.decode("utf-8", errors="replace") if isinstance(n, bytes) else str(n) for n in names]
        order = np.argsort(-row, kind="stable")
        labels = None if hot is None else tuple(names[j] for j in order if hot[i, j])
        results.append(Prediction(tuple((names[j], float(row[j])) for j in order[: max(1, k)]), labels))
    return results


class Predictor(Protocol):
    """Anything that turns encoded images into predictions."""

    def predict(self, images: Sequence[bytes]) -> list[Prediction]:
        """One prediction per image, in order."""

    def close(self) -> None:
        """Release connections/models."""


def model_path(base: str, model: str, version: int | None) -> str:
    """`/v1/models/<model>[/versions/<v>]` with the name URL-quoted."""
    from urllib.parse import quote

    return f"/v1/models/{quote(model, safe='')}" + (f"/versions/{int(version)}" if version is not None else "")


def predict_body(images: Sequence[bytes]) -> dict:
    """The REST `:predict` JSON body (row format, `{"b64": …}` instances) of `serving_default` on encoded images
    (used by the benchmarks too)."""
    return {"signature_name": SIGNATURE,
            "instances": [{"b64": base64.b64encode(image).decode("ascii")} for image in images]}


class RestPredictor:
    """TF Serving REST `:predict` (row format, `{"b64": …}` instances)."""

    def __init__(self, url: str = DEFAULT_URL, model: str = DEFAULT_MODEL, version: int | None = None,
                 top_k: int = DEFAULT_TOP_K, timeout: float = 60.0) -> None:
        import requests

        self._url = url.rstrip("/") + model_path(url, model, version) + ":predict"
        self._top_k = top_k
        self._timeout = timeout
        self._session = requests.Session()

    def predict(self, images: Sequence[bytes]) -> list[Prediction]:
        """POST the images in one request."""
        import requests

        try:
            response = self._session.post(self._url, json=predict_body(images), timeout=self._timeout)
        except requests.RequestException as err:
            raise ServiceError(f"cannot reach {self._url}: {err}") from None
        try:
            payload = response.json()
        except ValueError:
            payload = {"error": response.text[:200]}
        if response.status_code == 400:
            raise PredictionError(str(payload.get("error", "HTTP 400")))
        if response.status_code != 200 or "predictions" not in payload:
            raise ServiceError(f"{self._url}: HTTP {response.status_code}: {payload.get('error', payload)}")
        rows = payload["predictions"]
        probabilities = [row["probabilities"] for row in rows]
        classes = [row.get("classes") for row in rows]
        hot = [row["predicted_labels"] for row in rows] if rows and "predicted_labels" in rows[0] else None
        return top_k_predictions(probabilities, None if None in classes else classes, self._top_k, hot)

    def close(self) -> None:
        """Close the HTTP session."""
        self._session.close()


def predict_request(images: Sequence[bytes], model: str = DEFAULT_MODEL, version: int | None = None) -> Any:
    """A gRPC `PredictRequest` of `serving_default` on encoded images (its `images` input; used by the
    benchmarks too). No output_filter: a multilabel model's `predicted_labels` is not known in advance."""
    from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = SIGNATURE
    if version is not None:
        request.model_spec.version.value = version
    request.inputs["images"].CopyFrom(tensor_pb2.TensorProto(
        dtype=types_pb2.DT_STRING, string_val=list(images),
        tensor_shape=tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(
            size=len(images))])))
    return request


class GrpcPredictor:
    """TF Serving gRPC `PredictionService/Predict` with the official protos."""

    def __init__(self, target: str, model: str = DEFAULT_MODEL, version: int | None = None,
                 top_k: int = DEFAULT_TOP_K, timeout: float = 60.0, max_message_bytes: int = 64 * 1024 * 1024,
                 ) -> None:
        import grpc
        from tensorflow_serving.apis import prediction_service_pb2_grpc

        self._target = target
        self._model = model
        self._version = version
        self._top_k = top_k
        self._timeout = timeout
        self._channel = grpc.insecure_channel(target, options=[
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.max_receive_message_length", max_message_bytes),
        ])
        self._stub = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)

    def predict(self, images: Sequence[bytes]) -> list[Prediction]:
        """One Predict call for all images."""
        import grpc
        import tensorflow as tf

        try:
            response = self._stub.Predict(predict_request(images, self._model, self._version), timeout=self._timeout)
        except grpc.RpcError as err:
            message = f"{err.code().name}: {err.details()}"
            if err.code() == grpc.StatusCode.INVALID_ARGUMENT:
                raise PredictionError(message) from None
            raise ServiceError(f"gRPC {self._target}: {message}") from None
        outputs = response.outputs
        probabilities = tf.make_ndarray(outputs["probabilities"])
        classes = tf.make_ndarray(outputs["classes"]) if "classes" in outputs else None
        hot = tf.make_ndarray(outputs["predicted_labels"]) if "predicted_labels" in outputs else None
        return top_k_predictions(probabilities, classes, self._top_k, hot)

    def close(self) -> None:
        """Close the channel."""
        self._channel.close()


def resolve_version_dir(path: str) -> str:
    """`path` itself if it is a SavedModel directory, else its newest complete `<version>/` sub-directory."""
    from serving.server.config import VERSION_RE
    from serving.server.manager import incomplete_reason

    if incomplete_reason(path) is None:
        return path
    try:
        versions = sorted((int(e.name), e.path) for e in os.scandir(path) if VERSION_RE.match(e.name) and e.is_dir())
    except FileNotFoundError:
        raise ServiceError(f"{path} does not exist") from None
    complete = [p for _v, p in versions if incomplete_reason(p) is None]
    if not complete:
        raise ServiceError(f"{path}: no complete SavedModel version directory (expected <version>/saved_model.pb)")
    return complete[-1]


class SavedModelPredictor:
    """Calls `serving_default` of a pushed SavedModel in-process (no server)."""

    def __init__(self, path: str, top_k: int = DEFAULT_TOP_K) -> None:
        import tensorflow as tf

        self.path = resolve_version_dir(path)
        self._fn = tf.saved_model.load(self.path).signatures[SIGNATURE]
        self._top_k = top_k

    def predict(self, images: Sequence[bytes]) -> list[Prediction]:
        """Run the signature on the batch."""
        import tensorflow as tf

        try:
            outputs = self._fn(images=tf.constant(list(images), dtype=tf.string))
        except tf.errors.InvalidArgumentError as err:
            from serving.errors import clean_tf_message

            raise PredictionError(clean_tf_message(err.message)) from None
        classes = outputs["classes"].numpy() if "classes" in outputs else None
        hot = outputs["predicted_labels"].numpy() if "predicted_labels" in outputs else None
        return top_k_predictions(outputs["probabilities"].numpy(), classes, self._top_k, hot)

    def close(self) -> None:
        """Drop the model."""
        self._fn = None


@dataclass(frozen=True)
class PredictorSpec:
    """A picklable recipe for a predictor (Beam ships it to workers): kind is rest | grpc | saved_model."""

    kind: str = "rest"
    target: str = DEFAULT_URL  # URL, host:port, or model base path / version dir
    model: str = DEFAULT_MODEL
    version: int | None = None
    top_k: int = DEFAULT_TOP_K
    timeout: float = 60.0

    def create(self) -> Predictor:
        """Instantiate the predictor."""
        if self.kind == "rest":
            return RestPredictor(self.target, self.model, self.version, self.top_k, self.timeout)
        if self.kind == "grpc":
            return GrpcPredictor(self.target, self.model, self.version, self.top_k, self.timeout)
        if self.kind == "saved_model":
            return SavedModelPredictor(self.target, self.top_k)
        raise ValueError(f"unknown predictor kind {self.kind!r} (rest | grpc | saved_model)")


# ----- single files -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FileResult:
    """The outcome for one input file: a prediction, or the stage and reason it failed."""

    path: str
    prediction: Prediction | None = None
    stage: str = ""  # read | validate | predict
    reason: str = ""


def read_and_check(path: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[bytes | None, str, str]:
    """(bytes, "", "") for a usable image, else (None, stage, reason) — the ingestion gate's verdict."""
    from components.example_gen.images import Quarantined, inspect_image

    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as err:
        return None, "read", f"cannot read file: {err.strerror or err}"
    try:
        inspect_image(data, max_pixels)
    except Quarantined as err:
        return None, "validate", err.reason
    return data, "", ""


def predict_with_fallback(predictor: Predictor, items: Sequence[tuple[str, bytes]]) -> Iterator[FileResult]:
    """Predict a batch; if the service rejects it, retry one by one so only the bad inputs fail."""
    try:
        predictions = predictor.predict([data for _path, data in items])
    except PredictionError as err:
        if len(items) == 1:
            yield FileResult(items[0][0], stage="predict", reason=err.reason)
            return
        for item in items:
            yield from predict_with_fallback(predictor, [item])
        return
    for (path, _data), prediction in zip(items, predictions, strict=True):
        yield FileResult(path, prediction)


def predict_files(paths: Iterable[str], predictor: Predictor, max_pixels: int = DEFAULT_MAX_PIXELS,
                  batch_size: int = 32) -> list[FileResult]:
    """Validate and predict files, in input order."""
    results: dict[str, FileResult] = {}
    pending: list[tuple[str, bytes]] = []
    ordered = list(paths)
    for path in ordered:
        data, stage, reason = read_and_check(path, max_pixels)
        if data is None:
            results[path] = FileResult(path, stage=stage, reason=reason)
        else:
            pending.append((path, data))
    for start in range(0, len(pending), batch_size):
        for result in predict_with_fallback(predictor, pending[start:start + batch_size]):
            results[result.path] = result
    return [results[path] for path in ordered]


def format_result(result: FileResult, bar_width: int = 24) -> str:
    """Human-readable lines for one file: class names with probabilities and bars."""
    if result.prediction is None:
        return f"{result.path}\n  error ({result.stage}): {result.reason}"
    width = max(len(label) for label, _p in result.prediction.top_k)
    lines = [result.path]
    for label, probability in result.prediction.top_k:
        bar = "█" * max(0, round(probability * bar_width))
        lines.append(f"  {label:<{width}}  {probability * 100:6.2f}%  {bar}")
    if result.prediction.labels is not None:
        lines.append(f"  predicted labels: {', '.join(result.prediction.labels) or '(none)'}")
    return "\n".join(lines)


def result_json(result: FileResult) -> dict[str, Any]:
    """JSON-friendly dict for `--json` output."""
    if result.prediction is None:
        return {"path": result.path, "error": result.reason, "stage": result.stage}
    out = {"path": result.path, "top1": result.prediction.label, "probability": result.prediction.probability,
           "top_k": [list(pair) for pair in result.prediction.top_k]}
    if result.prediction.labels is not None:
        out["labels"] = list(result.prediction.labels)
    return out


# ----- batch prediction (Apache Beam) -------------------------------------------------------------------------
@dataclass(frozen=True)
class BatchSummary:
    """What `predict_batch` did; `predicted + quarantined == files`."""

    files: int
    predicted: int
    quarantined: int
    predictions_csv: str
    quarantine_csv: str


def list_files(folder: str, exclude: Iterable[str] = ()) -> list[str]:
    """Every regular file below `folder` (recursively, sorted), as paths relative to it."""
    excluded = {os.path.realpath(p) for p in exclude}
    found = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in files:
            path = os.path.join(root, name)
            if os.path.realpath(path) in excluded or not os.path.isfile(path):
                continue
            found.append(os.path.relpath(path, folder).replace(os.sep, "/"))
    return sorted(found)


def csv_line(values: Sequence[Any]) -> str:
    """One CSV row as a string (quoted as needed, no line terminator)."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(values)
    return buffer.getvalue()


def default_quarantine_path(out_csv: str) -> str:
    """`predictions.csv` → `predictions.quarantine.csv`."""
    stem, ext = os.path.splitext(out_csv)
    return f"{stem}.quarantine{ext or '.csv'}"


def predict_batch(folder: str, out_csv: str, spec: PredictorSpec, *, quarantine_csv: str | None = None,
                  batch_size: int = 16, max_pixels: int = DEFAULT_MAX_PIXELS,
                  beam_args: Sequence[str] = ()) -> BatchSummary:
    """Beam job (DirectRunner): list → read + validate → batch → predict → two CSVs; see
    `serving.clients.batch_prediction`."""
    from serving.clients import batch_prediction as batch

    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{folder} is not a directory")
    quarantine_csv = quarantine_csv or default_quarantine_path(out_csv)
    for path in (out_csv, quarantine_csv):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    files = list_files(folder, exclude=(out_csv, quarantine_csv))
    batch.run(os.path.abspath(folder), files, out_csv, quarantine_csv, spec, batch_size=batch_size,
              max_pixels=max_pixels, beam_args=beam_args)
    predicted_count = count_rows(out_csv)
    quarantined_count = count_rows(quarantine_csv)
    if predicted_count + quarantined_count != len(files):
        raise RuntimeError(f"batch prediction lost rows: {len(files)} files but {predicted_count} predictions + "
                           f"{quarantined_count} quarantined")
    return BatchSummary(len(files), predicted_count, quarantined_count, out_csv, quarantine_csv)


def count_rows(path: str) -> int:
    """Data rows of a CSV written with a header."""
    with open(path, newline="", encoding="utf-8") as handle:
        return max(0, sum(1 for _row in csv.reader(handle)) - 1)
