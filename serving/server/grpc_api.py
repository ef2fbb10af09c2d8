"""TF Serving's gRPC API with the official protos (`tensorflow_serving.apis`).

* `PredictionService`: Predict, Classify, GetModelMetadata; Regress answers as TF Serving does for a model without a
  regression signature (INVALID_ARGUMENT; UNIMPLEMENTED if the signature does regress), MultiInference UNIMPLEMENTED;
* `ModelService`: GetModelStatus (HandleReloadConfigRequest answers UNIMPLEMENTED);
* `grpc.health.v1.Health` when enabled (`serving.server.health`, TF Serving's --enable_grpc_healthcheck_service).

Every call runs under its `Deadline` (`serving.server.deadlines`): one whose deadline passed or that the client
cancelled while it waited for a handler thread or in the batch queue is not computed. Every call of the two TF
Serving services writes one access-log line (`serving.server.access_log`).

Errors abort the call with the `ServingError`'s code: malformed requests INVALID_ARGUMENT — including bytes
that do not parse as the method's request message (grpcio's default would be INTERNAL: requests are
deserialized by `_lenient_parser`, and `_guard` rejects what did not parse), tensors over the row/element
limits (checked before anything is allocated) and images over the pixel limit (`image_guard`) — unknown
model/version NOT_FOUND, unknown signature FAILED_PRECONDITION (as TF Serving), messages over the size limit
RESOURCE_EXHAUSTED (enforced by gRPC itself).
`model_spec.version_label` is resolved by the manager's version labels (`_resolve_spec`); GetModelStatus ignores
it, as TF Serving's does. GetModelMetadata accepts the metadata field `signature_def` (as TF Serving) and, as a
local extension, `class_labels` (a DT_STRING TensorProto packed in the Any).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import components.environment  # noqa: F401  (Keras 2 before TensorFlow loads)

# isort: split
import grpc
import numpy as np
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from serving.errors import ServingError, invalid
from serving.server.access_log import AccessLog
from serving.server.config import validate_model_name
from serving.server.deadlines import Deadline
from serving.server.health import HealthReporter
from serving.server.image_guard import prepare_encoded, prepare_image_inputs
from serving.server.manager import ModelManager
from serving.server.prometheus import ServingMetrics
from serving.server.tensors import array_to_tensor_proto, check_batch_rows, tensor_proto_to_array

log = logging.getLogger(__name__)

METADATA_FIELDS = ("signature_def", "class_labels")
# (request, response) message of every method, as in the generated `add_…Servicer_to_server` functions.
PREDICTION_METHODS = {
    "Classify": (classification_pb2.ClassificationRequest, classification_pb2.ClassificationResponse),
    "Regress": (regression_pb2.RegressionRequest, regression_pb2.RegressionResponse),
    "Predict": (predict_pb2.PredictRequest, predict_pb2.PredictResponse),
    "MultiInference": (inference_pb2.MultiInferenceRequest, inference_pb2.MultiInferenceResponse),
    "GetModelMetadata": (get_model_metadata_pb2.GetModelMetadataRequest,
                         get_model_metadata_pb2.GetModelMetadataResponse),
}
COUNTED_METHODS = ("Predict", "Classify", "Regress")  # as in TF Serving's request_count / request_latency
MODEL_METHODS = {
    "GetModelStatus": (get_model_status_pb2.GetModelStatusRequest, get_model_status_pb2.GetModelStatusResponse),
    "HandleReloadConfigRequest": (model_management_pb2.ReloadConfigRequest, model_management_pb2.ReloadConfigResponse),
}


def _model_spec(spec: Any) -> tuple[str, int | None]:
    """Name and version of a ModelSpec, ignoring `version_label` (as TF Serving's GetModelStatus does)."""
    name = validate_model_name(spec.name)
    return name, (spec.version.value if spec.HasField("version") else None)


def _resolve_spec(manager: ModelManager, spec: Any) -> tuple[str, int | None]:
    """Name and version of a ModelSpec, a `version_label` resolved to its version (`ModelManager.resolve_version`)."""
    name, version = _model_spec(spec)
    return name, manager.resolve_version(name, version, spec.version_label or None)


def _set_spec(target: Any, name: str, version: int, signature_name: str = "") -> None:
    target.name = name
    target.version.value = version
    if signature_name:
        target.signature_name = signature_name


class _Unparsable:
    """What `_lenient_parser` returns for bytes that are not a valid serialized request message."""

    def __init__(self, message_name: str, error: Exception) -> None:
        self.message_name = message_name
        self.error = error


def _lenient_parser(message_class: Any) -> Callable[[bytes], Any]:
    """A request deserializer that never raises (grpcio answers INTERNAL when one does): malformed bytes
    become an `_Unparsable`, which `_guard` answers with INVALID_ARGUMENT."""
    name = message_class.DESCRIPTOR.full_name

    def parse(data: bytes) -> Any:
        try:
            return message_class.FromString(data)
        except Exception as err:  # protobuf's DecodeError, or anything else the parser raises
            return _Unparsable(name, err)

    return parse


def _served_version(request: Any, response: Any) -> int | None:
    """The version that answered (the requested one when none did), for the access log."""
    for message in (response, request):
        spec = getattr(message, "model_spec", None)
        if spec is not None and spec.HasField("version"):
            return spec.version.value
    return None


def _guard(method: Callable[..., Any]) -> Callable[..., Any]:
    """Turn `ServingError`s into aborted calls with their status code; unparsable requests → INVALID_ARGUMENT.
    The call runs with its `Deadline` current (checked first: it may have waited for a handler thread).
    Predict, Classify and Regress are recorded in the servicer's `ServingMetrics` (when it has one); every call
    is written to the servicer's `AccessLog`."""
    counted = method.__name__ in COUNTED_METHODS

    def wrapper(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
        metrics: ServingMetrics | None = getattr(self, "_metrics", None) if counted else None
        start, status, response = time.perf_counter(), grpc.StatusCode.OK, None
        try:
            if isinstance(request, _Unparsable):
                status = grpc.StatusCode.INVALID_ARGUMENT
                context.abort(status, f"Could not parse the request as {request.message_name}: {request.error}"[:500])
            try:
                deadline = Deadline.for_grpc(context)
                deadline.check()
                with deadline.applied():
                    response = method(self, request, context)
                return response
            except ServingError as err:
                status = err.code
                context.abort(err.code, err.message)
            except Exception as err:
                status = grpc.StatusCode.INTERNAL
                log.exception("gRPC %s failed", method.__name__)
                context.abort(grpc.StatusCode.INTERNAL, f"internal error: {type(err).__name__}: {err}")
        finally:
            seconds = time.perf_counter() - start
            name = "" if isinstance(request, _Unparsable) else request.model_spec.name
            if metrics is not None:
                metrics.record_request(name, method.__name__, "GRPC", status.name, seconds)
            access_log: AccessLog | None = getattr(self, "_access_log", None)
            if access_log is not None:
                version = None if isinstance(request, _Unparsable) else _served_version(request, response)
                access_log.grpc(method.__name__, name, version, status.name, seconds)

    wrapper.__name__ = method.__name__
    wrapper.__doc__ = method.__doc__
    return wrapper


def _serialized_examples(model_input: Any) -> list[bytes]:
    kind = model_input.WhichOneof("kind")
    if kind == "example_list":
        return [e.SerializeToString() for e in model_input.example_list.examples]
    if kind == "example_list_with_context":
        context = model_input.example_list_with_context.context
        serialized = []
        for example in model_input.example_list_with_context.examples:
            merged = type(example)()
            merged.CopyFrom(context)
            merged.MergeFrom(example)
            serialized.append(merged.SerializeToString())
        return serialized
    raise invalid("Input is empty: set example_list or example_list_with_context")


def _example_count(model_input: Any) -> int:
    kind = model_input.WhichOneof("kind")
    return len(getattr(model_input, kind).examples) if kind else 0


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    """tensorflow.serving.PredictionService over the model manager."""

    def __init__(self, manager: ModelManager, max_rows: int | None = None, max_elements: int | None = None,
                 max_pixels: int | None = None, metrics: ServingMetrics | None = None,
                 access_log: AccessLog | None = None) -> None:
        self._manager = manager
        self._metrics = metrics
        self._access_log = access_log
        self._max_rows = max_rows
        self._max_elements = max_elements
        self._max_pixels = max_pixels

    @_guard
    def Predict(self, request: Any, context: grpc.ServicerContext) -> Any:
        """Run any signature (default serving_default) on TensorProto inputs."""
        name, version = _resolve_spec(self._manager, request.model_spec)
        with self._manager.acquire(name, version) as servable:
            signature = servable.signature(request.model_spec.signature_name or None)
            inputs = {key: tensor_proto_to_array(proto, f"input {key!r}", self._max_rows, self._max_elements)
                      for key, proto in request.inputs.items()}
            inputs = prepare_image_inputs(inputs, self._max_pixels)  # pixel guard, EXIF orientation
            outputs = servable.predict(signature, inputs, tuple(request.output_filter))
            response = predict_pb2.PredictResponse()
            _set_spec(response.model_spec, name, servable.version, signature.name)
            for key, array in outputs.items():
                response.outputs[key].CopyFrom(array_to_tensor_proto(array))
            return response

    @_guard
    def Classify(self, request: Any, context: grpc.ServicerContext) -> Any:
        """Classify tf.Examples with a `tensorflow/serving/classify` signature."""
        name, version = _resolve_spec(self._manager, request.model_spec)
        check_batch_rows(_example_count(request.input), self._max_rows, "examples")
        examples = _serialized_examples(request.input)
        examples = prepare_encoded(examples, "examples", self._max_pixels)
        with self._manager.acquire(name, version) as servable:
            signature = servable.classify_signature(request.model_spec.signature_name or None)
            results = servable.classify(signature, examples)
            response = classification_pb2.ClassificationResponse()
            _set_spec(response.model_spec, name, servable.version, signature.name)
            for row in results:
                classification = response.result.classifications.add()
                for label, score in row:
                    classification.classes.add(label=label, score=score)
            return response

    @_guard
    def Regress(self, request: Any, context: grpc.ServicerContext) -> Any:
        """Not implemented; the errors TF Serving gives for a non-regression signature (see `regress_signature`)."""
        name, version = _resolve_spec(self._manager, request.model_spec)
        with self._manager.acquire(name, version) as servable:
            servable.regress_signature(request.model_spec.signature_name or None)

    @_guard
    def MultiInference(self, request: Any, context: grpc.ServicerContext) -> Any:
        """UNIMPLEMENTED, as a status (the generated base class raises, which grpcio logs with a traceback)."""
        raise ServingError(grpc.StatusCode.UNIMPLEMENTED, "MultiInference is not implemented by the local server")

    @_guard
    def GetModelMetadata(self, request: Any, context: grpc.ServicerContext) -> Any:
        """signature_def (and class_labels) metadata of a model version."""
        name, version = _resolve_spec(self._manager, request.model_spec)
        fields = list(request.metadata_field)
        if not fields:
            raise invalid("GetModelMetadataRequest must specify at least one metadata_field")
        for field in fields:
            if field not in METADATA_FIELDS:
                raise invalid(f"Metadata field {field} is not supported")
        with self._manager.acquire(name, version) as servable:
            response = get_model_metadata_pb2.GetModelMetadataResponse()
            _set_spec(response.model_spec, name, servable.version)
            if "signature_def" in fields:
                response.metadata["signature_def"].Pack(servable.signature_def_map())
            if "class_labels" in fields and servable.class_labels is not None:
                labels = np.array([label.encode("utf-8") for label in servable.class_labels], dtype=object)
                response.metadata["class_labels"].Pack(array_to_tensor_proto(labels))
            return response


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    """tensorflow.serving.ModelService: GetModelStatus."""

    def __init__(self, manager: ModelManager, access_log: AccessLog | None = None) -> None:
        self._manager = manager
        self._access_log = access_log

    @_guard
    def GetModelStatus(self, request: Any, context: grpc.ServicerContext) -> Any:
        """Status of every known version of a model, or of one version."""
        name, version = _model_spec(request.model_spec)
        response = get_model_status_pb2.GetModelStatusResponse()
        for status in self._manager.status(name, version):
            entry = response.model_version_status.add()
            entry.version = status.version
            entry.state = get_model_status_pb2.ModelVersionStatus.State.Value(status.state)
            entry.status.error_code = status.error_code.value[0]
            entry.status.error_message = status.error_message
        return response

    @_guard
    def HandleReloadConfigRequest(self, request: Any, context: grpc.ServicerContext) -> Any:
        """UNIMPLEMENTED, as a status (the generated base class raises, which grpcio logs with a traceback)."""
        raise ServingError(grpc.StatusCode.UNIMPLEMENTED,
                           "HandleReloadConfigRequest is not implemented by the local server")


def _add_service(server: grpc.Server, servicer: Any, service: str, methods: dict[str, tuple[Any, Any]]) -> None:
    """Register `methods` of `service` like the generated `add_…_to_server`, but with `_lenient_parser`
    request deserializers."""
    handlers = {
        name: grpc.unary_unary_rpc_method_handler(getattr(servicer, name),
                                                  request_deserializer=_lenient_parser(request),
                                                  response_serializer=response.SerializeToString)
        for name, (request, response) in methods.items()
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, handlers),))


def start_grpc_server(manager: ModelManager, host: str, port: int, threads: int, max_message_bytes: int,
                      max_rows: int | None = None, max_pixels: int | None = None,
                      metrics: ServingMetrics | None = None, access_log: AccessLog | None = None,
                      health: HealthReporter | None = None) -> tuple[grpc.Server, int]:
    """Start a gRPC server with both services (and the health service when `health` is given); returns it and the
    bound port (OSError if it cannot bind). `max_rows` limits the rows (dimension 0 / examples) of one request,
    `max_pixels` each encoded image in it; a tensor may have at most `max_message_bytes` elements."""
    server = grpc.server(
        ThreadPoolExecutor(max_workers=threads, thread_name_prefix="grpc"),
        options=[
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", 256 * 1024 * 1024),
            ("grpc.so_reuseport", 0),
        ],
    )
    _add_service(server, PredictionServicer(manager, max_rows, max_message_bytes, max_pixels, metrics, access_log),
                 "tensorflow.serving.PredictionService", PREDICTION_METHODS)
    _add_service(server, ModelServicer(manager, access_log), "tensorflow.serving.ModelService", MODEL_METHODS)
    if health is not None:
        health.add_to(server)
    address = f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError as err:
        raise OSError(f"gRPC cannot bind {address}: {err}") from None
    if bound == 0:
        raise OSError(f"gRPC cannot bind {address}")
    server.start()
    return server, bound
