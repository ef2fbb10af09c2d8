"""Property-based fuzzing of the served APIs with hypothesis, against a server *process*.

Used by `tests/serving/test_fuzz.py` (fast: a few hundred cases in `make test`) and `tests/benchmarks/soak.py`
(long: thousands of cases in `make soak`). Each `fuzz_*` function runs one hypothesis search and returns how
many cases it sent; a violated property raises (hypothesis shrinks it first and prints the falsifying case).

Properties:

* REST (`fuzz_rest`): random JSON bodies (row/columnar `instances`/`inputs`, `examples`, b64 garbage, nested
  and deeply nested lists, huge numbers, NaN, wrong types, unicode incl. lone surrogates, raw non-JSON bytes),
  random paths under `/v1/models/` (`../`, `%2e%2e`, `%00`, unicode, very long names and versions), random
  methods and headers → never a 5xx, every error is TF Serving's `{"error": "…"}` JSON, the process stays up.
* raw HTTP (`fuzz_raw_http`): random bytes as the request head → no 5xx, the process stays up.
* gRPC bytes (`fuzz_grpc_bytes`): random or mutated bytes sent as the serialized request of Predict, Classify,
  GetModelMetadata, GetModelStatus, Regress through a raw `unary_unary` call → INVALID_ARGUMENT (or NOT_FOUND /
  FAILED_PRECONDITION when the bytes happen to parse into a request for an unknown model / signature), never
  UNKNOWN / INTERNAL; the process stays up.
* gRPC messages (`fuzz_grpc_messages`): well-formed requests with random tensors (any dtype number, negative or
  huge dimensions, wrong content lengths), unknown models/signatures/output filters, random tf.Examples and
  metadata fields → only the client-error codes above (or OK), never UNKNOWN / INTERNAL.

After every case the server process must still be running; `check_still_serving` then sends a valid request.
"""

from __future__ import annotations

import base64
import http.client
import json
import socket
import string
import urllib.parse
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import seed as with_seed
from hypothesis import strategies as st
from tensorflow.core.example import example_pb2, feature_pb2
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2
from tensorflow_serving.apis import classification_pb2, get_model_metadata_pb2, get_model_status_pb2, predict_pb2

from tests.serving.helpers import classify_request, grpc_stubs
from tests.serving.process import ServerProcess

OUTCOMES: Counter = Counter()  # outcome -> count over every fuzz run of this process (for reports)
CLIENT_ERRORS = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION}
GRPC_METHODS = ("/tensorflow.serving.PredictionService/Predict", "/tensorflow.serving.PredictionService/Classify",
                "/tensorflow.serving.PredictionService/GetModelMetadata",
                "/tensorflow.serving.ModelService/GetModelStatus", "/tensorflow.serving.PredictionService/Regress")
_SKIP_HEADERS = {"content-length", "transfer-encoding", "host", "connection", "expect", "upgrade", "te", "trailer"}


def fuzz_case(max_examples: int, seed: int | None) -> Callable[[Any], Any]:
    """Decorator (above `@given`) for a fuzz run: no deadline (shared machine), no example database; the given
    seed, or derandomized without one, so `make test` sends the same cases every time."""

    def apply(test: Any) -> Any:
        test = settings(max_examples=max_examples, deadline=None, database=None, derandomize=seed is None,
                        suppress_health_check=list(HealthCheck), print_blob=True)(test)
        return test if seed is None else with_seed(seed)(test)

    return apply


# ----- strategies ------------------------------------------------------------------------------------------------
_chars = st.one_of(st.characters(), st.characters(categories=["Cs"]), st.sampled_from("<>&\"'\\/\x00.%:"))
texts = st.text(_chars, max_size=40)
# Protobuf string fields must be valid UTF-8 (the client library refuses lone surrogates; invalid UTF-8 on the wire
# is covered by the raw-bytes search), so gRPC messages get text without surrogates.
proto_texts = st.text(st.one_of(st.characters(codec="utf-8"), st.sampled_from("<>&\"'\\/\x00.%:")), max_size=40)
long_names = st.integers(100, 5000).map(lambda n: "x" * n)
huge_ints = st.one_of(st.integers(), st.integers(min_value=-10**400, max_value=10**400),
                      st.sampled_from([2**63, -2**63 - 1, 2**64, 10**309]))
floats = st.floats(allow_nan=True, allow_infinity=True)


def b64_objects(images: Sequence[bytes]) -> st.SearchStrategy[dict]:
    """`{"b64": …}`: valid images, valid base64 of random bytes, garbage text, wrong types."""
    encoded = [base64.b64encode(i).decode() for i in images]
    return st.builds(lambda v: {"b64": v}, st.one_of(
        st.sampled_from(encoded),
        st.binary(max_size=96).map(lambda b: base64.b64encode(b).decode()),
        st.binary(max_size=96).map(lambda b: base64.urlsafe_b64encode(b).decode().rstrip("=")),
        texts, huge_ints, floats, st.none(), st.lists(st.sampled_from(encoded), max_size=2),
    ))


def json_values(images: Sequence[bytes]) -> st.SearchStrategy[Any]:
    """Any JSON value, biased towards what the API parses (b64 objects, strings, lists of them)."""
    leaves = st.one_of(st.none(), st.booleans(), huge_ints, floats, texts, b64_objects(images))
    return st.recursive(leaves, lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(texts, st.sampled_from(["images", "b64", "image", "inputs", "examples"])),
                        children, max_size=4)), max_leaves=16)


def deep_lists(images: Sequence[bytes]) -> st.SearchStrategy[str]:
    """JSON text of lists nested 1–5000 deep (the parser's and the server's recursion limits)."""
    image = base64.b64encode(images[0]).decode()
    return st.builds(lambda depth, leaf: "[" * depth + leaf + "]" * depth, st.integers(1, 5000),
                     st.sampled_from(["", "1", f'{{"b64": "{image}"}}', '"x"']))


def rest_bodies(images: Sequence[bytes]) -> st.SearchStrategy[bytes]:
    """Request bodies: API-shaped JSON (predict row/columnar, classify), any JSON, deep nesting, raw bytes."""
    values = json_values(images)
    rows = st.lists(st.one_of(b64_objects(images), values, st.fixed_dictionaries({"images": b64_objects(images)})),
                    max_size=5)
    signature = st.one_of(st.sampled_from(["serving_default", "classification", "serving_examples",
                                           "transform_features", "__saved_model_init_op", ""]), texts, huge_ints)
    predict = st.fixed_dictionaries({"instances": st.one_of(rows, values)}, optional={"signature_name": signature})
    columnar = st.fixed_dictionaries({"inputs": st.one_of(
        st.fixed_dictionaries({"images": st.one_of(rows, values)}), st.dictionaries(texts, values, max_size=3),
        rows, values)}, optional={"signature_name": signature})
    feature = st.one_of(b64_objects(images), texts, huge_ints, floats, st.lists(st.one_of(huge_ints, floats, texts),
                                                                                 max_size=4), values)
    example = st.dictionaries(st.one_of(st.just("image"), texts), feature, max_size=3)
    classify = st.fixed_dictionaries({"examples": st.one_of(st.lists(st.one_of(example, values), max_size=4),
                                                            values)},
                                     optional={"signature_name": signature, "context": st.one_of(example, values)})

    def encode(doc: Any, ascii_only: bool) -> bytes:
        return json.dumps(doc, ensure_ascii=ascii_only).encode("utf-8", errors="surrogatepass")

    documents = st.one_of(predict, columnar, classify, values, st.dictionaries(texts, values, max_size=4))
    return st.one_of(
        st.builds(encode, documents, st.booleans()),
        deep_lists(images).map(str.encode),
        deep_lists(images).map(lambda text: f'{{"instances": {text}}}'.encode()),
        deep_lists(images).map(lambda text: f'{{"inputs": {{"images": {text}}}}}'.encode()),
        st.binary(max_size=256),
        st.sampled_from([b"", b"{", b"null", b'{"instances": [{"b64": "\\ud800"}]}', b'{"instances": ["\\udfff"]}',
                         b'{"instances": [NaN, Infinity]}', b"\xff\xfe{}", b'{"instances": [1e999999]}']),
    )


def _quote(text: str) -> str:
    """Percent-encode for a URL path; a lone surrogate becomes its (invalid) UTF-8 bytes, e.g. %ED%A0%80."""
    return urllib.parse.quote(text, safe="%/.:;-_~", errors="surrogatepass")


def model_names() -> st.SearchStrategy[str]:
    """Model names as they appear in a URL (already percent-encoded where needed)."""
    raw = st.one_of(
        st.sampled_from(["visionline", "..", "../..", "../../etc/passwd", ".", "a..b", "visionline/..", "-x", "",
                         "visionline%00", "%2e%2e", "%2e%2e%2f%2e%2e%2fetc%2fpasswd", "..%2F..%2Fetc%2Fpasswd",
                         "%252e%252e", "..%5c..%5cwindows", "%c0%ae%c0%ae", "visionline;rm -rf", "\u202eenilnoisiv"]),
        texts, st.text(string.ascii_letters + "._-", min_size=100, max_size=6000),
    )
    return raw.map(_quote)


def rest_paths() -> st.SearchStrategy[str]:
    """Paths under /v1/models/ with random names, versions, labels and verbs (plus a few outside it)."""
    version = st.one_of(st.none(), huge_ints.map(str), texts.map(_quote),
                        st.sampled_from(["1", "2", "0", "-1", "..", "%2e%2e", "1%2F..", "1.0", "01", "9" * 40]))
    suffix = st.sampled_from(["", "/", "/metadata", ":predict", ":classify", ":regress", ":explode", ":", "/x",
                              "/metadata/extra", ":predict:predict"])

    def path(name: str, ver: str | None, label: bool, tail: str) -> str:
        middle = "" if ver is None else (f"/labels/{ver}" if label else f"/versions/{ver}")
        return f"/v1/models/{name}{middle}{tail}"

    return st.one_of(
        st.builds(path, model_names(), version, st.booleans(), suffix),
        st.sampled_from(["/", "/v1/models", "/v1/models/", "/v1", "/v2/models/visionline", "//v1/models/visionline",
                         "/v1/models/visionline/../../..", "/%2e%2e/%2e%2e/etc/passwd", "/index.html", "/?x=%ff"]),
    )


methods = st.one_of(st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]),
                    st.from_regex(r"\A[A-Z]{1,12}\Z"))
_header_names = st.one_of(st.sampled_from(["Content-Type", "Accept", "Origin", "Accept-Encoding", "Content-Encoding",
                                           "X-Forwarded-For", "Cookie", "Authorization", "Range", "If-None-Match"]),
                          st.from_regex(r"\A[A-Za-z][A-Za-z0-9-]{0,30}\Z"))
_header_values = st.one_of(st.sampled_from(["application/json", "text/plain", "multipart/form-data; boundary=x",
                                            "gzip", "application/json; charset=latin-1", "*/*", "bytes=0-1"]),
                           st.text(string.printable.strip() + " ", max_size=200))
headers = st.dictionaries(_header_names.filter(lambda n: n.lower() not in _SKIP_HEADERS), _header_values,
                          max_size=5)


# ----- REST --------------------------------------------------------------------------------------------------------
class _Http:
    """One keep-alive connection that reconnects after the server closed it."""

    def __init__(self, rest_url: str) -> None:
        host, port = rest_url.removeprefix("http://").rsplit(":", 1)
        self.host, self.port = host, int(port)
        self.connection: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body: bytes | None, extra: dict[str, str]) -> tuple[int, bytes]:
        for attempt in range(2):
            if self.connection is None:
                self.connection = http.client.HTTPConnection(self.host, self.port, timeout=120)
            try:
                self.connection.request(method, path, body=body, headers=extra)
                response = self.connection.getresponse()
                data = response.read()
                if response.will_close:
                    self.close()
                return response.status, data
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.close()  # a keep-alive connection the server closed meanwhile: retry once on a new one
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None


def check_rest_response(method: str, path: str, status: int, data: bytes) -> None:
    """No 5xx; any error is TF Serving's `{"error": "<message>"}` (HEAD responses have no body)."""
    assert status < 500, f"{method} {path[:200]} -> HTTP {status}: {data[:300]!r}"
    if status >= 400 and method != "HEAD":
        doc = json.loads(data)
        assert isinstance(doc, dict) and isinstance(doc.get("error"), str), (method, path[:200], status, data[:300])


def fuzz_rest(server: ServerProcess, images: Sequence[bytes], max_examples: int, seed: int | None = None) -> int:
    """Random method × path × headers × body against the REST API; returns the number of cases sent."""
    http_ = _Http(server.rest_url)
    sent = 0
    model_path = f"/v1/models/{server.model}"
    inference = st.tuples(st.just("POST"), st.sampled_from([
        f"{model_path}:predict", f"{model_path}:classify", f"{model_path}/versions/{server.versions[-1]}:predict",
        f"{model_path}/versions/{server.versions[-1]}:classify"]))
    # Two thirds of the cases send a body to a real inference endpoint; the rest vary method and path.
    targets = st.one_of(inference, inference, st.tuples(methods, rest_paths()))

    @fuzz_case(max_examples, seed)
    @given(target=targets, extra=headers, body=st.one_of(st.none(), rest_bodies(images)))
    def case(target: tuple[str, str], extra: dict[str, str], body: bytes | None) -> None:
        method, path = target
        nonlocal sent
        sent += 1
        try:
            status, data = http_.request(method, path, body, extra)
        except (OSError, http.client.HTTPException) as err:
            raise AssertionError(f"{method} {path[:200]}: no response ({type(err).__name__}: {err}); server "
                                 f"alive: {server.alive()}\n{server.log_tail()}") from None
        OUTCOMES[f"REST {status}"] += 1
        check_rest_response(method, path, status, data)
        assert server.alive(), server.log_tail()

    try:
        case()
    finally:
        http_.close()
    return sent


def fuzz_raw_http(server: ServerProcess, max_examples: int, seed: int | None = None) -> int:
    """Random bytes as an HTTP request head on a fresh connection: a 4xx or a closed connection, never 5xx."""
    host, port = server.rest_url.removeprefix("http://").rsplit(":", 1)
    sent = 0
    heads = st.one_of(
        st.binary(max_size=512),
        st.builds(lambda m, p, v, h: f"{m} {p} {v}\r\n{h}\r\n\r\n".encode("latin-1", errors="replace"),
                  methods, rest_paths(), st.sampled_from(["HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/9", "", "FOO"]),
                  st.sampled_from(["", "Content-Length: -1\r\n", "Content-Length: 99999999999999999999\r\n",
                                   "Transfer-Encoding: chunked\r\n", "Transfer-Encoding: chunked\r\n\r\nzz\r\n",
                                   "Content-Length: 5\r\nContent-Length: 6\r\n", "Host: \x00\r\n", "X: " + "y" * 9000
                                   + "\r\n", "Expect: 100-continue\r\nContent-Length: 10\r\n"])),
    )

    @fuzz_case(max_examples, seed)
    @given(head=heads)
    def case(head: bytes) -> None:
        nonlocal sent
        sent += 1
        with socket.create_connection((host, int(port)), timeout=30) as sock:
            try:
                sock.sendall(head)
                sock.shutdown(socket.SHUT_WR)
                reply = b""
                while len(reply) < 65536:
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    reply += chunk
            except (ConnectionResetError, BrokenPipeError, TimeoutError):
                reply = b""
        first = reply.split(b"\r\n", 1)[0]
        OUTCOMES["raw HTTP " + (first.split()[1].decode(errors="replace") if first.startswith(b"HTTP/")
                                and len(first.split()) > 1 else "closed")] += 1
        if first.startswith(b"HTTP/"):
            parts = first.split()
            assert len(parts) >= 2 and parts[1].isdigit() and int(parts[1]) < 500, (head[:200], first)
        assert server.alive(), server.log_tail()

    case()
    return sent


# ----- gRPC --------------------------------------------------------------------------------------------------------
def _valid_requests(model: str, images: Sequence[bytes]) -> list[tuple[str, bytes]]:
    predict = predict_pb2.PredictRequest()
    predict.model_spec.name = model
    predict.inputs["images"].dtype = 7
    predict.inputs["images"].tensor_shape.dim.add(size=1)
    predict.inputs["images"].string_val.append(images[0])
    classify = classify_request(images[:1], model)
    metadata = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    metadata.model_spec.name = model
    status = get_model_status_pb2.GetModelStatusRequest()
    status.model_spec.name = model
    return [(method, message.SerializeToString())
            for method, message in zip(GRPC_METHODS[:4], (predict, classify, metadata, status), strict=True)]


def _mutate(data: bytes, edits: list[tuple[int, int, int]]) -> bytes:
    """Apply (kind, position, value) edits: 0 = overwrite a byte, 1 = insert a byte, 2 = truncate."""
    out = bytearray(data)
    for kind, position, value in edits:
        where = position % (len(out) + 1)
        if kind == 0 and out:
            out[where % len(out)] = value
        elif kind == 1:
            out.insert(where, value)
        else:
            del out[where:]
    return bytes(out)


def _expect_client_error_or_ok(call: Any, request: Any, what: str, server: ServerProcess) -> None:
    try:
        call(request, timeout=120)
    except grpc.RpcError as err:
        code = err.code()
        OUTCOMES[f"gRPC {code.name}"] += 1
        assert code in CLIENT_ERRORS, f"{what}: {code.name}: {err.details()}\n{server.log_tail()}"
    else:
        OUTCOMES["gRPC OK"] += 1
    assert server.alive(), server.log_tail()


def fuzz_grpc_bytes(server: ServerProcess, images: Sequence[bytes], max_examples: int,
                    seed: int | None = None) -> int:
    """Random and mutated-valid bytes as the serialized request of each method."""
    channel = grpc.insecure_channel(server.grpc_target)
    calls = {m: channel.unary_unary(m, request_serializer=None, response_deserializer=None) for m in GRPC_METHODS}
    valid = _valid_requests(server.model, images)
    edit = st.tuples(st.integers(0, 2), st.integers(0, 10**6), st.integers(0, 255))
    payloads = st.one_of(
        st.tuples(st.sampled_from(GRPC_METHODS), st.binary(max_size=1024)),
        st.builds(lambda pair, edits: (pair[0], _mutate(pair[1], edits)), st.sampled_from(valid),
                  st.lists(edit, min_size=1, max_size=6)),
    )
    sent = 0

    @fuzz_case(max_examples, seed)
    @given(payload=payloads)
    def case(payload: tuple[str, bytes]) -> None:
        nonlocal sent
        sent += 1
        method, data = payload
        _expect_client_error_or_ok(calls[method], data, f"{method} with {data[:80]!r}", server)

    try:
        case()
    finally:
        channel.close()
    return sent


def tensor_protos(images: Sequence[bytes]) -> st.SearchStrategy[Any]:
    """TensorProtos with any dtype number, odd shapes and contents that may or may not match them."""
    dims = st.lists(st.one_of(st.integers(-3, 4), st.integers(0, 2**62), st.sampled_from([2**31, 10**9, 10**12])),
                    max_size=4)

    def build(dtype: int, shape: list[int], unknown_rank: bool, strings: list[bytes], floats_: list[float],
              ints: list[int], content: bytes | None, halfs: list[int]) -> Any:
        proto = tensor_pb2.TensorProto(dtype=dtype)
        proto.tensor_shape.CopyFrom(tensor_shape_pb2.TensorShapeProto(
            dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in shape], unknown_rank=unknown_rank))
        proto.string_val.extend(strings)
        proto.float_val.extend(floats_)
        proto.int_val.extend(ints)
        proto.half_val.extend(halfs)
        if content is not None:
            proto.tensor_content = content
        return proto

    return st.builds(
        build,
        dtype=st.one_of(st.integers(0, 30), st.integers(100, 130), st.integers(0, 2**31 - 1), st.just(7)),
        shape=dims, unknown_rank=st.booleans(),
        strings=st.lists(st.one_of(st.sampled_from(list(images)), st.binary(max_size=64)), max_size=3),
        floats_=st.lists(st.floats(width=32), max_size=3), ints=st.lists(st.integers(-2**31, 2**31 - 1), max_size=3),
        content=st.one_of(st.none(), st.binary(max_size=64)), halfs=st.lists(st.integers(0, 65535), max_size=2),
    )


def fuzz_grpc_messages(server: ServerProcess, images: Sequence[bytes], max_examples: int,
                       seed: int | None = None) -> int:
    """Well-formed requests with bad tensors, dtypes, shapes, names, signatures, examples and fields."""
    channel = grpc.insecure_channel(server.grpc_target)
    prediction, models = grpc_stubs(channel)
    names = st.one_of(st.just(server.model), st.sampled_from(["..", "../etc", "a/b", "%2e%2e", "", "unknown"]),
                      long_names, proto_texts)
    versions = st.one_of(st.none(), st.integers(-2**63, 2**63 - 1), st.sampled_from(server.versions))
    signatures = st.one_of(st.sampled_from(["", "serving_default", "classification", "serving_examples",
                                            "transform_features", "__saved_model_init_op"]), proto_texts)
    labels = st.one_of(st.just(""), proto_texts)

    def spec(target: Any, name: str, version: int | None, signature: str, label: str) -> None:
        target.name = name
        if version is not None:
            target.version.value = version
        elif label:
            target.version_label = label
        target.signature_name = signature

    def predict(name: str, version: int | None, signature: str, label: str, inputs: dict, filters: list) -> Any:
        request = predict_pb2.PredictRequest(output_filter=filters)
        spec(request.model_spec, name, version, signature, label)
        for key, proto in inputs.items():
            request.inputs[key].CopyFrom(proto)
        return ("Predict", prediction.Predict, request)

    feature = st.one_of(
        st.lists(st.one_of(st.sampled_from(list(images)), st.binary(max_size=32)), max_size=3).map(
            lambda v: feature_pb2.Feature(bytes_list=feature_pb2.BytesList(value=v))),
        st.lists(st.floats(width=32), max_size=3).map(
            lambda v: feature_pb2.Feature(float_list=feature_pb2.FloatList(value=v))),
        st.lists(st.integers(-2**63, 2**63 - 1), max_size=3).map(
            lambda v: feature_pb2.Feature(int64_list=feature_pb2.Int64List(value=v))),
    )
    examples = st.lists(st.dictionaries(st.one_of(st.just("image"), proto_texts), feature, max_size=3).map(
        lambda fs: example_pb2.Example(features=feature_pb2.Features(feature=fs))), max_size=3)

    def classify(name: str, version: int | None, signature: str, label: str, items: list, context: list | None,
                 empty: bool) -> Any:
        request = classification_pb2.ClassificationRequest()
        spec(request.model_spec, name, version, signature, label)
        if empty:
            pass
        elif context is None:
            request.input.example_list.examples.extend(items)
        else:
            request.input.example_list_with_context.examples.extend(items)
            if context:
                request.input.example_list_with_context.context.CopyFrom(context[0])
        return ("Classify", prediction.Classify, request)

    def metadata(name: str, version: int | None, label: str, fields: list) -> Any:
        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=fields)
        spec(request.model_spec, name, version, "", label)
        return ("GetModelMetadata", prediction.GetModelMetadata, request)

    def status(name: str, version: int | None, label: str) -> Any:
        request = get_model_status_pb2.GetModelStatusRequest()
        spec(request.model_spec, name, version, "", label)
        return ("GetModelStatus", models.GetModelStatus, request)

    input_keys = st.one_of(st.sampled_from(["images", "inputs", "examples"]), proto_texts)
    requests_ = st.one_of(
        st.builds(predict, names, versions, signatures, labels,
                  st.dictionaries(input_keys, tensor_protos(images), max_size=2),
                  st.lists(st.one_of(st.sampled_from(["classes", "probabilities", "scores"]), proto_texts),
                           max_size=2)),
        st.builds(classify, names, versions, signatures, labels, examples,
                  st.one_of(st.none(), st.lists(examples.map(lambda e: e[0] if e else example_pb2.Example()),
                                                max_size=1)), st.booleans()),
        st.builds(metadata, names, versions, labels,
                  st.lists(st.one_of(st.sampled_from(["signature_def", "class_labels"]), proto_texts), max_size=3)),
        st.builds(status, names, versions, labels),
    )
    sent = 0

    @fuzz_case(max_examples, seed)
    @given(call=requests_)
    def case(call: tuple[str, Any, Any]) -> None:
        nonlocal sent
        sent += 1
        name, stub_method, request = call
        _expect_client_error_or_ok(stub_method, request, f"{name}({str(request)[:400]})", server)

    try:
        case()
    finally:
        channel.close()
    return sent


def check_still_serving(server: ServerProcess, image: bytes) -> None:
    """A valid REST predict and a valid gRPC GetModelStatus still succeed (the fuzzing broke nothing)."""
    assert server.alive(), server.log_tail()
    http_ = _Http(server.rest_url)
    try:
        body = json.dumps({"instances": [{"b64": base64.b64encode(image).decode()}]}).encode()
        status, data = http_.request("POST", f"/v1/models/{server.model}:predict", body, {})
    finally:
        http_.close()
    assert status == 200 and "predictions" in json.loads(data), (status, data[:300])
    with grpc.insecure_channel(server.grpc_target) as channel:
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = server.model
        response = grpc_stubs(channel).models.GetModelStatus(request, timeout=60)
    assert response.model_version_status
