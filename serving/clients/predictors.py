"""Predictors: encoded images in, `Prediction`s out, through TF Serving's contract or in-process.

* `RestPredictor` / `GrpcPredictor` call TF Serving's REST `:predict` / gRPC `Predict` of `serving_default`
  (they work against the local server and a real TensorFlow Serving alike); `SavedModelPredictor` calls the
  same signature in-process from a pushed SavedModel (a version directory, or a base path whose newest complete
  version is used; `components.pusher.serving_layout`), no server needed.
* `PredictorSpec` is the picklable recipe of one of them (Apache Beam ships it to its workers).
* `RestClient` / `GrpcClient` hold one model's HTTP session or gRPC channel; the predictors here and the
  explainers (serving/clients/explanations.py) build on them.
* `predict_body` / `predict_request` build the REST body and the gRPC request (the benchmarks use them too).

TensorFlow is imported only by the gRPC and in-process predictors (inside them), so `visionline --help` and
`visionline predict` over REST never load it.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote

import grpc
import numpy as np
import requests

import components.environment  # noqa: F401  (Keras 2 before anything imports TensorFlow; no TF import)
from components.pusher.serving_layout import resolve_version_dir
from serving.clients.results import Prediction, PredictionError, ServiceError, top_k_predictions
from serving.errors import clean_tf_message

DEFAULT_URL = "http://127.0.0.1:8501"
DEFAULT_MODEL = "visionline"
DEFAULT_TOP_K = 5
SIGNATURE = "serving_default"


class Predictor(Protocol):
    """Anything that turns encoded images into predictions."""

    def predict(self, images: Sequence[bytes]) -> list[Prediction]:
        """One prediction per image, in order."""

    def close(self) -> None:
        """Release connections/models."""


def model_path(base: str, model: str, version: int | None) -> str:
    """`/v1/models/<model>[/versions/<v>]` with the name URL-quoted."""
    return f"/v1/models/{quote(model, safe='')}" + (f"/versions/{int(version)}" if version is not None else "")


def predict_body(images: Sequence[bytes]) -> dict:
    """The REST `:predict` JSON body (row format, `{"b64": …}` instances) of `serving_default` on encoded images
    (used by the benchmarks too)."""
    return {"signature_name": SIGNATURE,
            "instances": [{"b64": base64.b64encode(image).decode("ascii")} for image in images]}


def rest_predict(session: requests.Session, url: str, body: dict, timeout: float) -> list[Any]:
    """POST a `:predict` body; the `predictions` rows. HTTP 400 is the input's fault (`PredictionError`), anything
    else that is not an answer is the service's (`ServiceError`)."""
    try:
        response = session.post(url, json=body, timeout=timeout)
    except requests.RequestException as err:
        raise ServiceError(f"cannot reach {url}: {err}") from None
    try:
        payload = response.json()
    except ValueError:
        payload = {"error": response.text[:200]}
    if response.status_code == 400:
        raise PredictionError(str(payload.get("error", "HTTP 400")))
    if response.status_code != 200 or "predictions" not in payload:
        raise ServiceError(f"{url}: HTTP {response.status_code}: {payload.get('error', payload)}")
    return payload["predictions"]


class RestClient:
    """One model's REST `:predict` on a kept-alive HTTP session (the predictor and the explainer build on it)."""

    def __init__(self, url: str = DEFAULT_URL, model: str = DEFAULT_MODEL, version: int | None = None,
                 timeout: float = 60.0) -> None:
        self._url = url.rstrip("/") + model_path(url, model, version) + ":predict"
        self._timeout = timeout
        self._session = requests.Session()

    def _rows(self, body: dict) -> list[Any]:
        return rest_predict(self._session, self._url, body, self._timeout)

    def close(self) -> None:
        """Close the HTTP session."""
        self._session.close()


class RestPredictor(RestClient):
    """TF Serving REST `:predict` (row format, `{"b64": …}` instances)."""

    def __init__(self, url: str = DEFAULT_URL, model: str = DEFAULT_MODEL, version: int | None = None,
                 top_k: int = DEFAULT_TOP_K, timeout: float = 60.0) -> None:
        super().__init__(url, model, version, timeout)
        self._top_k = top_k

    def predict(self, images: Sequence[bytes]) -> list[Prediction]:
        """POST the images in one request."""
        rows = self._rows(predict_body(images))
        probabilities = [row["probabilities"] for row in rows]
        classes = [row.get("classes") for row in rows]
        hot = [row["predicted_labels"] for row in rows] if rows and "predicted_labels" in rows[0] else None
        return top_k_predictions(probabilities, None if None in classes else classes, self._top_k, hot)


def predict_request(images: Sequence[bytes], model: str = DEFAULT_MODEL, version: int | None = None,
                    signature: str = SIGNATURE, int64_inputs: Mapping[str, Sequence[int]] | None = None) -> Any:
    """A gRPC `PredictRequest` of `signature` (default `serving_default`) with the encoded images as its `images`
    input, plus any int64 inputs of one value per image (used by the benchmarks too). No output_filter: a
    multilabel model's `predicted_labels` is not known in advance."""
    # TensorFlow's protos load TensorFlow: imported here, not at module level (keeps REST clients and --help light)
    from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
    from tensorflow_serving.apis import predict_pb2

    shape = tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=len(images))])
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = signature
    if version is not None:
        request.model_spec.version.value = version
    request.inputs["images"].CopyFrom(tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING, string_val=list(images),
                                                             tensor_shape=shape))
    for name, values in (int64_inputs or {}).items():
        request.inputs[name].CopyFrom(tensor_pb2.TensorProto(dtype=types_pb2.DT_INT64, int64_val=list(values),
                                                             tensor_shape=shape))
    return request


def grpc_channel(target: str, max_message_bytes: int) -> grpc.Channel:
    """An insecure channel to `target` whose messages may be up to `max_message_bytes` each way."""
    return grpc.insecure_channel(target, options=[("grpc.max_send_message_length", max_message_bytes),
                                                  ("grpc.max_receive_message_length", max_message_bytes)])


def grpc_predict(stub: Any, request: Any, target: str, timeout: float) -> Any:
    """One `Predict` call; the response's outputs. INVALID_ARGUMENT is the input's fault (`PredictionError`), any
    other failure the service's (`ServiceError`)."""
    try:
        return stub.Predict(request, timeout=timeout).outputs
    except grpc.RpcError as err:
        message = f"{err.code().name}: {err.details()}"
        if err.code() == grpc.StatusCode.INVALID_ARGUMENT:
            raise PredictionError(message) from None
        raise ServiceError(f"gRPC {target}: {message}") from None


class GrpcClient:
    """One model's gRPC `PredictionService/Predict` with the official protos (the predictor and the explainer build
    on it)."""

    def __init__(self, target: str, model: str = DEFAULT_MODEL, version: int | None = None, timeout: float = 60.0,
                 max_message_bytes: int = 64 * 1024 * 1024) -> None:
        # the TF Serving stubs load TensorFlow: imported here, not at module level (keeps REST clients light)
        from tensorflow_serving.apis import prediction_service_pb2_grpc

        self._target, self._model, self._version, self._timeout = target, model, version, timeout
        self._channel = grpc_channel(target, max_message_bytes)
        self._stub = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)

    def _outputs(self, images: Sequence[bytes], signature: str = SIGNATURE,
                 int64_inputs: Mapping[str, Sequence[int]] | None = None) -> dict[str, np.ndarray]:
        """One Predict call for all images; its outputs as arrays."""
        import tensorflow as tf  # loaded by __init__ already; not at module level (keeps REST clients light)

        request = predict_request(images, self._model, self._version, signature, int64_inputs)
        outputs = grpc_predict(self._stub, request, self._target, self._timeout)
        return {key: tf.make_ndarray(value) for key, value in outputs.items()}

    def close(self) -> None:
        """Close the channel."""
        self._channel.close()


class GrpcPredictor(GrpcClient):
    """TF Serving gRPC `PredictionService/Predict` of `serving_default`."""

    def __init__(self, target: str, model: str = DEFAULT_MODEL, version: int | None = None,
                 top_k: int = DEFAULT_TOP_K, timeout: float = 60.0, max_message_bytes: int = 64 * 1024 * 1024,
                 ) -> None:
        super().__init__(target, model, version, timeout, max_message_bytes)
        self._top_k = top_k

    def predict(self, images: Sequence[bytes]) -> list[Prediction]:
        """One Predict call for all images."""
        outputs = self._outputs(images)
        return top_k_predictions(outputs["probabilities"], outputs.get("classes"), self._top_k,
                                 outputs.get("predicted_labels"))


class SavedModelPredictor:
    """Calls `serving_default` of a pushed SavedModel in-process (no server)."""

    def __init__(self, path: str, top_k: int = DEFAULT_TOP_K) -> None:
        import tensorflow as tf  # not at module level (keeps REST clients and --help light)

        try:
            self.path = resolve_version_dir(path)
        except FileNotFoundError as err:
            raise ServiceError(str(err)) from None
        self._fn = tf.saved_model.load(self.path).signatures[SIGNATURE]
        self._top_k = top_k

    def predict(self, images: Sequence[bytes]) -> list[Prediction]:
        """Run the signature on the batch."""
        import tensorflow as tf  # loaded by __init__ already; not at module level (keeps REST clients light)

        try:
            outputs = self._fn(images=tf.constant(list(images), dtype=tf.string))
        except tf.errors.InvalidArgumentError as err:
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
