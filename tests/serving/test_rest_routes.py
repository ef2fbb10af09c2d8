"""REST route parity with TF Serving (its path grammar, methods, case, trailing slashes) and JSON answers for
oversized request heads and bodies, against the running server over plain HTTP and raw sockets."""

from __future__ import annotations

import http.client
import json
import socket
import threading

import pytest

from serving.server.rest import MAX_HEADER_BYTES
from serving.server.rest_routes import route

MODEL = "visionline"


def host_port(server) -> tuple[str, int]:
    host, port = server.rest_url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


def call(server, method: str, path: str, body: bytes | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection(*host_port(server), timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers or {})  # the path is sent verbatim
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def error_of(data: bytes) -> str:
    doc = json.loads(data)
    assert set(doc) == {"error"}, doc
    return doc["error"]


# ----- TF Serving's grammar (http_rest_api_util.cc), as a pure function ---------------------------------------------
@pytest.mark.parametrize(("method", "target", "kind", "kwargs"), [
    ("GET", "/v1/models/m", "status", {"name": "m", "version": None, "label": None}),
    ("GET", "/V1/MODELS/m/VERSIONS/3", "status", {"name": "m", "version": "3", "label": None}),
    ("GET", "/v1/models/m/metadata", "metadata", {"name": "m", "version": None, "label": None}),
    ("GET", "/v1/models/m/METADATA", "status", {"name": "m", "version": None, "label": None}),  # not "metadata"
    ("GET", "/v1/models/m/Labels/canary/metadata", "metadata", {"name": "m", "version": None, "label": "canary"}),
    ("GET", "/v1/models/a%20b/labels/x%2Fy", "status", {"name": "a b", "version": None, "label": "x/y"}),
    ("POST", "/v1/Models/m:predict", "inference", {"name": "m", "version": None, "label": None, "verb": "predict"}),
    ("POST", "/v1/models/m/labels/stable:classify", "inference",
     {"name": "m", "version": None, "label": "stable", "verb": "classify"}),
])
def test_tf_serving_routes(method, target, kind, kwargs):
    found = route(method, target)
    assert found is not None and found.kind == kind and found.kwargs == kwargs


@pytest.mark.parametrize(("method", "target", "status_name", "message"), [
    ("POST", "/v1/models/m:Predict", "INVALID_ARGUMENT", "Malformed request: POST /v1/models/m:Predict"),
    ("GET", "/v1/models/m/", "INVALID_ARGUMENT", "Malformed request: GET /v1/models/m/"),
    ("GET", "/v1/models/m/versions/-1", "INVALID_ARGUMENT", "Malformed request: GET /v1/models/m/versions/-1"),
    ("GET", "/v1/models/m:predict", "INVALID_ARGUMENT", "Malformed request: GET /v1/models/m:predict"),
    ("POST", "/v1/models/m", "INVALID_ARGUMENT", "Malformed request: POST /v1/models/m"),
    ("POST", "/v1/models/m:predict?x=1", "INVALID_ARGUMENT", "Malformed request: POST /v1/models/m:predict?x=1"),
    ("PUT", "/v1/models/m", "INVALID_ARGUMENT", "Malformed request: PUT /v1/models/m"),
    ("DELETE", "/v1/models/m", "INVALID_ARGUMENT", "Malformed request: DELETE /v1/models/m"),
    ("HEAD", "/v1/models/m", "INVALID_ARGUMENT", "Malformed request: HEAD /v1/models/m"),
    ("GET", "/v1/models", "INVALID_ARGUMENT", "Missing model name in request."),
    ("GET", "/v1/models/m/versions/99999999999999999999", "INVALID_ARGUMENT",
     "Failed to convert version: 99999999999999999999 to numeric."),
    ("TRACE", "/v1/models/m", "INVALID_ARGUMENT", "Malformed request: TRACE /v1/models/m"),
])
def test_tf_serving_refusals(method, target, status_name, message):
    found = route(method, target)
    assert found is not None and found.kind == "error"
    assert found.kwargs["code"].name == status_name and found.kwargs["message"] == message


def test_paths_outside_v1_are_not_tf_serving_routes():
    assert route("GET", "/") is None and route("GET", "/v2/models/m") is None and route("GET", "/v1") is None


# ----- the running server --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", [f"/V1/MODELS/{MODEL}", f"/v1/Models/{MODEL}/Versions/1"])
def test_paths_are_case_insensitive_like_tf_serving(server, path):
    status, data = call(server, "GET", path)
    assert status == 200, data
    assert json.loads(data)["model_version_status"][0]["state"] == "AVAILABLE"


@pytest.mark.parametrize(("method", "path", "status", "fragment"), [
    ("PUT", f"/v1/models/{MODEL}", 400, f"Malformed request: PUT /v1/models/{MODEL}"),  # tornado said 405
    ("DELETE", f"/v1/models/{MODEL}:predict", 400, "Malformed request: DELETE"),
    ("GET", f"/v1/models/{MODEL}:predict", 400, "Malformed request: GET"),  # tornado said 405
    ("POST", f"/v1/models/{MODEL}", 400, "Malformed request: POST"),
    ("GET", f"/v1/models/{MODEL}/", 400, f"Malformed request: GET /v1/models/{MODEL}/"),  # was 200
    ("GET", "/v1/whatever", 400, "Malformed request: GET /v1/whatever"),  # was 404
    ("GET", "/v1/models", 400, "Missing model name in request."),  # was 404
    ("POST", f"/v1/models/{MODEL}:PREDICT", 400, "Malformed request"),
    ("TRACE", f"/v1/models/{MODEL}", 400, "Malformed request: TRACE"),  # tornado said 405
    ("GET", "/v2/whatever", 404, "Malformed request"),  # outside TF Serving's /v1/: not found, as there
])
def test_wrong_methods_and_paths_answer_like_tf_serving(server, method, path, status, fragment):
    got, data = call(server, method, path, body=b"{}" if method in ("POST", "PUT") else None)
    assert got == status, data
    assert fragment in error_of(data)


def test_cors_preflight_like_tf_serving(server):
    status, data = call(server, "OPTIONS", f"/v1/models/{MODEL}:predict", headers={"Origin": "http://example.org"})
    assert status == 200 and data == b""
    status, data = call(server, "OPTIONS", f"/v1/models/{MODEL}:predict")
    assert status == 400 and error_of(data) == "Origin header is missing in CORS preflight"


# ----- oversized heads and bodies: a JSON error, never a silent close -------------------------------------------------
def raw_exchange(server, head: bytes, body_chunks=(), timeout: float = 30) -> bytes:
    """Send `head` and then `body_chunks` while a second thread reads the answer (the server may answer and close
    before everything was sent); returns all bytes received."""
    sock = socket.create_connection(host_port(server), timeout=timeout)
    received = bytearray()

    def read() -> None:
        try:
            while data := sock.recv(65536):
                received.extend(data)
        except OSError:
            pass

    reader = threading.Thread(target=read)
    reader.start()
    try:
        sock.sendall(head)
        for chunk in body_chunks:
            sock.sendall(chunk)
    except OSError:  # the server answered and closed while we were still sending
        pass
    reader.join(timeout)
    sock.close()
    return bytes(received)


def parse_response(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    assert raw, "the server closed the connection without an answer"
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    length = int(headers.get("Content-Length", len(body)))
    return int(lines[0].split()[1]), headers, body[:length]


def test_very_long_headers_get_a_json_431(server):
    head = (f"GET /v1/models/{MODEL} HTTP/1.1\r\nHost: x\r\nX-Big: {'a' * (MAX_HEADER_BYTES + 10)}\r\n\r\n").encode()
    status, headers, body = parse_response(raw_exchange(server, head))
    assert status == 431 and headers["Content-Type"] == "application/json"
    assert "Request header too large" in error_of(body)


def test_very_long_url_gets_a_json_431(server):
    head = f"GET /v1/models/{'m' * (MAX_HEADER_BYTES + 10)} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    status, _headers, body = parse_response(raw_exchange(server, head))
    assert status == 431 and str(MAX_HEADER_BYTES) in error_of(body)


def test_long_url_under_the_limit_gets_a_json_400(server):
    status, data = call(server, "GET", f"/v1/models/{'m' * 20000}")
    assert status == 400 and "invalid model name" in error_of(data)


@pytest.mark.parametrize("chunk_size", [64 * 1024, 1 << 40])  # many chunks, or one declaring a terabyte
def test_oversized_chunked_body_gets_a_json_413(server, chunk_size):
    limit = server.config.max_request_bytes
    head = (f"POST /v1/models/{MODEL}:predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\n\r\n").encode()
    piece = b"A" * (64 * 1024)
    if chunk_size == 64 * 1024:
        chunks = [b"%x\r\n%s\r\n" % (len(piece), piece)] * (4 * limit // len(piece)) + [b"0\r\n\r\n"]
    else:  # one chunk header announcing 1 TiB, then 4× the limit of its data
        chunks = [b"%x\r\n" % chunk_size] + [piece] * (4 * limit // len(piece))
    status, headers, body = parse_response(raw_exchange(server, head, chunks))
    assert status == 413 and headers["Content-Type"] == "application/json"
    assert "Request too large" in error_of(body)
    assert call(server, "GET", f"/v1/models/{MODEL}")[0] == 200  # and the server is fine
