"""Security checks of the serving layer, and regression tests for the bugs the fuzzing found.

* model names/versions cannot traverse paths (REST and gRPC);
* request size (413 / RESOURCE_EXHAUSTED) and batch size (400 / INVALID_ARGUMENT, `--max-batch-rows`) limits,
  with TF Serving's `{"error": …}` body; a tiny gRPC message cannot declare a huge tensor;
* nothing in `serving/` unpickles, evaluates or imports anything a client sends (a source scan);
* decompression bombs: an image whose header declares more than `--max-image-pixels` is refused before decoding
  (a 62 KB PNG of 8000×8000 zeros used to add ~960 MiB to the server's resident memory);
* fuzzing regressions: JSON nested deeper than numpy's 32 dimensions, lone surrogates, numbers too large for a
  float feature, unparsable protobuf bytes, resource/variant dtypes — each used to be a 500 / INTERNAL.

Requests that once crashed or could exhaust memory go to `server_process` (a subprocess, 64 rows per request
at most); the escaped-label browser check is in `test_browser.py`.
"""

from __future__ import annotations

import ast
import base64
import json
import struct
import zlib
from pathlib import Path

import grpc
import pytest
import requests
from tensorflow.core.example import example_pb2
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from tensorflow_serving.apis import classification_pb2, get_model_metadata_pb2, get_model_status_pb2, predict_pb2

from serving.errors import ServingError
from serving.server.image_guard import check_encoded_sizes, image_pixels
from serving.server.tensors import tensor_proto_to_array
from tests.serving.fuzz import GRPC_METHODS, check_still_serving
from tests.serving.helpers import MODEL, classify_request, grpc_stubs

REPO = Path(__file__).resolve().parents[2]
SERVING = REPO / "serving"
# every module of the serving package, and the directory layout it reads models by
SERVING_SOURCES = sorted(SERVING.rglob("*.py")) + [REPO / "components" / "pusher" / "serving_layout.py"]
TRAVERSAL_NAMES = ["..", "../etc/passwd", "../../visionline", "a/b", "visionline/../visionline", "%2e%2e", "..\\x",
                   ".hidden", "visionline\x00", "x" * 200]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def assert_rest_error(response: requests.Response, status: int, fragment: str = "") -> str:
    assert response.status_code == status, (response.status_code, response.text[:300])
    message = response.json()["error"]
    assert isinstance(message, str) and fragment in message, message
    return message


def strings(values: list[bytes], shape: list[int] | None = None) -> tensor_pb2.TensorProto:
    dims = [tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in (shape if shape is not None else [len(values)])]
    return tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING, tensor_shape=tensor_shape_pb2.TensorShapeProto(dim=dims),
                                  string_val=values)


def predict_request(proto: tensor_pb2.TensorProto, name: str = MODEL) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    request.inputs["images"].CopyFrom(proto)
    return request


def grpc_code(call, request) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as info:
        call(request, timeout=120)
    return info.value.code(), info.value.details()


@pytest.fixture(scope="module")
def stubs(server_process):
    channel = grpc.insecure_channel(server_process.grpc_target)
    yield (*grpc_stubs(channel), channel)
    channel.close()


# ----- path traversal -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", [
    "/v1/models/..%2F..%2Fetc%2Fpasswd:predict",
    "/v1/models/%2e%2e:classify",
    f"/v1/models/{MODEL}/versions/1%2F..%2F..%2F1:predict",
    f"/v1/models/{MODEL}/versions/..%2F2:classify",
    "/v1/models/.hidden:predict",
])
def test_rest_traversal_in_inference_urls_is_rejected(server_process, digit_pngs, path):
    body = {"instances": [{"b64": b64(digit_pngs[0])}]}
    message = assert_rest_error(requests.post(server_process.rest_url + path, json=body, timeout=60), 400)
    # A version that is not digits does not match TF Serving's path grammar at all: "Malformed request".
    assert "invalid model" in message or "Malformed request" in message


@pytest.mark.parametrize("name", TRAVERSAL_NAMES)
def test_grpc_traversal_in_model_names_is_rejected_by_every_method(stubs, digit_pngs, name):
    prediction, models, _channel = stubs
    classify = classification_pb2.ClassificationRequest()
    classify.model_spec.name = name
    classify.input.example_list.examples.add().features.feature["image"].bytes_list.value.append(digit_pngs[0])
    metadata = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    metadata.model_spec.name = name
    status = get_model_status_pb2.GetModelStatusRequest()
    status.model_spec.name = name
    for call, request in ((prediction.Predict, predict_request(strings(digit_pngs[:1]), name)),
                          (prediction.Classify, classify), (prediction.GetModelMetadata, metadata),
                          (models.GetModelStatus, status)):
        code, details = grpc_code(call, request)
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "invalid model name" in details, (code, details)


def test_unconfigured_model_names_are_not_found_not_looked_up_on_disk(stubs, server_process, digit_pngs):
    prediction, _models, _channel = stubs
    code, details = grpc_code(prediction.Predict, predict_request(strings(digit_pngs[:1]), "serving"))
    assert code == grpc.StatusCode.NOT_FOUND and "Latest(serving)" in details
    response = requests.get(f"{server_process.rest_url}/v1/models/{server_process.model_base.parent.name}",
                            timeout=60)
    assert_rest_error(response, 404, "Could not find any versions")


# ----- size and batch limits ------------------------------------------------------------------------------------
def test_request_size_limit_on_classify_is_413_with_a_json_error(server):
    limit = server.config.max_request_bytes
    body = {"signature_name": "classification", "examples": [{"image": {"b64": "A" * (limit + 4)}}]}
    response = requests.post(f"{server.rest_url}/v1/models/{MODEL}:classify", json=body, timeout=60)
    assert_rest_error(response, 413, f"exceeds the limit of {limit} bytes")


def test_batch_size_limit_rest(server_process, digit_pngs):
    url = f"{server_process.rest_url}/v1/models/{MODEL}"
    image = {"b64": b64(digit_pngs[0])}
    too_many = [image] * 65
    assert_rest_error(requests.post(f"{url}:predict", json={"instances": too_many}, timeout=60), 400,
                      "batch size 65 exceeds the limit of 64 rows")
    assert_rest_error(requests.post(f"{url}:predict", json={"inputs": {"images": too_many}}, timeout=60), 400,
                      "batch size 65")
    examples = [{"image": image}] * 65
    assert_rest_error(requests.post(f"{url}:classify", json={"signature_name": "classification",
                                                             "examples": examples}, timeout=60), 400, "batch size 65")
    at_limit = requests.post(f"{url}:predict", json={"instances": [image] * 64}, timeout=120)
    assert at_limit.status_code == 200 and len(at_limit.json()["predictions"]) == 64


def test_batch_size_limit_grpc(stubs, digit_pngs):
    prediction, _models, _channel = stubs
    code, details = grpc_code(prediction.Predict, predict_request(strings(digit_pngs[:1] * 65)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "batch size 65 exceeds the limit of 64" in details
    classify = classify_request(digit_pngs[:1] * 65)
    code, details = grpc_code(prediction.Classify, classify)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "batch size 65" in details


@pytest.mark.parametrize(("dtype", "shape", "fragment"), [
    (types_pb2.DT_STRING, [10**9], "batch size 1000000000"),  # make_ndarray would repeat the one value 10⁹ times
    (types_pb2.DT_STRING, [1, 10**9], "elements"),
    (types_pb2.DT_FLOAT, [2, 2**40], "elements"),
    (types_pb2.DT_STRING, [-1], "invalid tensor shape"),
    (types_pb2.DT_STRING, [1] * 40, "invalid tensor shape"),
])
def test_tiny_grpc_message_cannot_declare_a_huge_tensor(stubs, server_process, digit_pngs, dtype, shape, fragment):
    prediction, _models, _channel = stubs
    proto = strings(digit_pngs[:1], shape)
    proto.dtype = dtype
    code, details = grpc_code(prediction.Predict, predict_request(proto))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and fragment in details, (code, details)
    assert server_process.alive()


def test_tensor_limits_are_checked_before_allocating():
    proto = strings([b"x"], [10**12])
    with pytest.raises(ServingError) as info:
        tensor_proto_to_array(proto, "input 'images'", max_rows=None, max_elements=10**6)
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT and "1000000000000 elements" in info.value.message
    assert tensor_proto_to_array(strings([b"a", b"b"]), "x", max_rows=2, max_elements=2).tolist() == [b"a", b"b"]


# ----- decompression bombs ---------------------------------------------------------------------------------------
def png_of_zeros(width: int, height: int) -> bytes:
    """A valid grayscale PNG of zeros, compressed row by row (the raw image never exists in memory here)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    compressor = zlib.compressobj(9)
    row = b"\x00" * (width + 1)  # filter byte + pixels
    data = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def bomb() -> bytes:
    data = png_of_zeros(7000, 6000)  # 42 Mpx > the default 40 M, ~40 KB on the wire
    assert len(data) < 100_000 and image_pixels(data) == 42_000_000
    return data


def test_image_guard_reads_headers_only(digit_pngs, bomb):
    assert image_pixels(digit_pngs[0]) == 64
    check_encoded_sizes([digit_pngs[0], b"not an image", None], "x", 64)  # small, non-image, non-bytes: fine
    with pytest.raises(ServingError) as info:
        check_encoded_sizes([digit_pngs[0], bomb], "input 'images'", 40_000_000)
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.message.startswith("input 'images'[1]: image too large: 42000000 pixels")


def test_decompression_bombs_are_refused_before_decoding(server_process, stubs, bomb):
    url = f"{server_process.rest_url}/v1/models/{MODEL}"
    image = {"b64": b64(bomb)}
    assert_rest_error(requests.post(f"{url}:predict", json={"instances": [image]}, timeout=60), 400,
                      "image too large: 42000000 pixels exceeds the limit of 40000000")
    assert_rest_error(requests.post(f"{url}:classify", json={"signature_name": "classification",
                                                             "examples": [{"image": image}]}, timeout=60),
                      400, "(tf.Example feature): image too large")
    example = example_pb2.Example()
    example.features.feature["image"].bytes_list.value.append(bomb)
    serialized = {"b64": b64(example.SerializeToString())}
    assert_rest_error(requests.post(f"{url}:predict", json={"signature_name": "serving_examples",
                                                            "instances": [serialized]}, timeout=60),
                      400, "image too large")
    prediction, _models, _channel = stubs
    code, details = grpc_code(prediction.Predict, predict_request(strings([bomb])))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "image too large" in details
    classify = classification_pb2.ClassificationRequest()
    classify.model_spec.name = MODEL
    classify.model_spec.signature_name = "classification"
    classify.input.example_list.examples.append(example)
    code, details = grpc_code(prediction.Classify, classify)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "image too large" in details
    assert server_process.alive()


# ----- nothing a client sends is unpickled, evaluated or imported ------------------------------------------------
FORBIDDEN_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "marshal", "shelve", "joblib", "yaml",
                     "importlib", "runpy", "code", "codeop"}
FORBIDDEN_BUILTINS = {"eval", "exec", "compile", "__import__"}  # called by bare name (re.compile is fine)
FORBIDDEN_METHODS = {"load_model", "import_module", "from_config", "model_from_json"}  # Keras/Python code loading


def test_serving_code_never_unpickles_or_evaluates():
    """Only SavedModels from the configured base paths are loaded (`tf.saved_model.load`); request bodies are
    parsed with `json.loads` / protobuf. A scan of every module in serving/ for the ways that could change."""
    assert len(SERVING_SOURCES) > 10  # the scan reaches the sub-packages
    problems = []
    for path in SERVING_SOURCES:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name.split(".")[0] for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [(node.module or "").split(".")[0]]
            else:
                names = []
            problems += [f"{path.name}:{node.lineno} imports {n}" for n in names if n in FORBIDDEN_MODULES]
            if isinstance(node, ast.Call):
                func = node.func
                if (isinstance(func, ast.Name) and func.id in FORBIDDEN_BUILTINS) or (
                        isinstance(func, ast.Attribute) and func.attr in FORBIDDEN_METHODS):
                    problems.append(f"{path.name}:{node.lineno} calls {ast.unparse(func)}()")
                if any(k.arg == "allow_pickle" for k in node.keywords):
                    problems.append(f"{path.name}:{node.lineno} passes allow_pickle")
    assert problems == []
    loads = [p.relative_to(REPO).as_posix() for p in SERVING_SOURCES
             if "tf.saved_model.load(" in p.read_text(encoding="utf-8")]
    # the server's loader, and the in-process predictor of predict-batch --model-base
    assert sorted(loads) == ["serving/clients/predictors.py", "serving/server/servable.py"]


# ----- regressions: bugs the fuzzing found ----------------------------------------------------------------------
@pytest.mark.parametrize(("body", "fragment"), [
    (b'{"instances": ' + b"[" * 40 + b"]" * 40 + b"}", "nested deeper"),  # was 500 (numpy: max 32 dimensions)
    (b'{"instances": [' + b"[" * 32 + b'"x"' + b"]" * 32 + b"]}", "nested deeper"),  # stacking made it 33: 500
    (b'{"instances": [' + b"[" * 31 + b'"x"' + b"]" * 31 + b"]}", "not compatible"),  # 32 dims: a shape error
    (b'{"inputs": {"images": ' + b"[" * 35 + b"]" * 35 + b"}}", "nested deeper"),
    (b'{"instances": ["\\ud800"]}', "lone surrogate"),  # was 500 (UnicodeEncodeError)
    (b'{"instances": [{"images": "\\udfff"}]}', "lone surrogate"),
])
def test_fuzz_regressions_rest_predict(server_process, body, fragment):
    response = requests.post(f"{server_process.rest_url}/v1/models/{MODEL}:predict", data=body, timeout=60)
    assert_rest_error(response, 400, fragment)


@pytest.mark.parametrize(("body", "fragment"), [
    ({"examples": [{"image": "\ud800"}]}, "lone surrogate"),  # was 500 (UnicodeEncodeError)
    ({"examples": [{"\udc00": "x"}]}, "lone surrogate"),  # feature name: was 500
    ({"examples": [{"image": [1.5, 10**400]}]}, "too large"),  # was 500 (OverflowError)
])
def test_fuzz_regressions_rest_classify(server_process, body, fragment):
    data = json.dumps({"signature_name": "classification", **body}).encode()
    response = requests.post(f"{server_process.rest_url}/v1/models/{MODEL}:classify", data=data, timeout=60)
    assert_rest_error(response, 400, fragment)


@pytest.mark.parametrize("method", GRPC_METHODS)
@pytest.mark.parametrize("payload", [b"\x00", b"\xff" * 7, b"\x0a\x05\x0a\x03abc\x0a", b"\x12\xff\xff\xff\xff\x0f"])
def test_fuzz_regression_unparsable_grpc_bytes_are_invalid_argument(stubs, method, payload):
    _prediction, _models, channel = stubs
    call = channel.unary_unary(method, request_serializer=None, response_deserializer=None)
    code, details = grpc_code(call, payload)  # grpcio's default deserializer answered INTERNAL
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "Could not parse the request" in details, (code, details)


@pytest.mark.parametrize("dtype", [types_pb2.DT_RESOURCE, types_pb2.DT_VARIANT, 26, 999])
def test_fuzz_regression_unsupported_dtypes_are_invalid_argument(stubs, digit_pngs, dtype):
    prediction, _models, _channel = stubs
    proto = strings(digit_pngs[:1])
    proto.dtype = dtype
    code, details = grpc_code(prediction.Predict, predict_request(proto))  # was INTERNAL (KeyError in numpy map)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "dtype" in details, (code, details)


def test_still_serving_after_the_security_checks(server_process, digit_pngs):
    check_still_serving(server_process, digit_pngs[0])
