"""How REST requests reach a handler: TF Serving's path grammar, and JSON answers for what reaches none.

TF Serving (tensorflow_serving/model_servers/http_server.cc, http_rest_api_util.cc) hands every request whose
path matches `(?i)/v1/.*` to its REST handler, which then full-matches the path *including its query string*:

* POST against `(?i)/v1/models/NAME(/versions/N|/labels/LABEL)?:(classify|regress|predict)` — the verb is then
  compared case-sensitively, so `:Predict` is a malformed request;
* GET against `(?i)/v1/models(/NAME)?(/versions/N|/labels/LABEL)?(/metadata)?` — `/METADATA` matches but is not
  `metadata`, so it is a status request; no NAME is `Missing model name in request.`;
* anything else under `/v1/` (another method, a trailing slash, `/versions/abc`, an unknown verb) is 400
  `Malformed request: METHOD PATH`; OPTIONS is a CORS preflight (200 when an `Origin: http(s)://…` header is
  sent, else 400 `Origin header is missing in CORS preflight`). Methods outside libevent's allowed set (e.g.
  TRACE) never reach TF Serving's handler; here they are malformed requests too (400, never a 5xx).

NAME and LABEL are percent-decoded after matching (TF Serving decodes them with libcurl), versions must be
decimal int64. `route()` applies exactly these rules; `TfServingPath` plugs them into tornado's router.
`JsonErrorsHTTPServer` answers a request head over the header limit with a JSON 431 instead of tornado's silently
closed connection.
"""

from __future__ import annotations

import json
import re
import socket
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import grpc
import tornado.httpserver
import tornado.httputil
import tornado.iostream
from tornado.routing import Matcher

V1_RE = re.compile(r"/v1/.*", re.IGNORECASE)
_VERSION_OR_LABEL = r"(?:/versions/([0-9]+)|/labels/([^/:]+))?"
PREDICTION_RE = re.compile(rf"/v1/models/([^/:]+){_VERSION_OR_LABEL}:(classify|regress|predict)", re.IGNORECASE)
STATUS_RE = re.compile(rf"/v1/models(?:/([^/:]+))?{_VERSION_OR_LABEL}(?:/(metadata))?", re.IGNORECASE)
ROUTES_RE = V1_RE  # the part of the URL space these rules own
VERBS = ("classify", "regress", "predict")
MAX_INT64 = 2**63 - 1
MAX_ECHO = 200  # characters of a path quoted back in an error


@dataclass(frozen=True)
class Route:
    """Where one request goes: `kind` is inference | metadata | status | preflight | error."""

    kind: str
    kwargs: dict[str, Any] = field(default_factory=dict)


def _error(code: grpc.StatusCode, message: str) -> Route:
    return Route("error", {"code": code, "message": message})


def _decode(raw: str | None, what: str) -> tuple[str | None, Route | None]:
    if raw is None:
        return None, None
    try:
        return unquote(raw, errors="strict"), None
    except UnicodeDecodeError:
        return None, _error(grpc.StatusCode.INVALID_ARGUMENT, f"Failed to decode {what}:{raw[:MAX_ECHO]}")


def route(method: str, target: str) -> Route | None:
    """The route of `method target` (target = path and query, as sent) under TF Serving's rules; None outside
    `/v1/` (those paths are not TF Serving's API: the page, metrics, or 404)."""
    if not V1_RE.fullmatch(target):
        return None
    malformed = _error(grpc.StatusCode.INVALID_ARGUMENT, f"Malformed request: {method} {target[:MAX_ECHO]}")
    if method == "OPTIONS":
        return Route("preflight")
    if method == "POST":
        match = PREDICTION_RE.fullmatch(target)
        subresource = verb = None
        if match:
            verb = match.group(4)
    elif method == "GET":
        match = STATUS_RE.fullmatch(target)
        if match:
            subresource = match.group(4)
    else:
        return malformed
    if not match:
        return malformed
    name, failed = _decode(match.group(1), "model name")
    if failed:
        return failed
    version = match.group(2)
    if version is not None and int(version) > MAX_INT64:
        return _error(grpc.StatusCode.INVALID_ARGUMENT, f"Failed to convert version: {version[:MAX_ECHO]} to numeric.")
    label, failed = _decode(match.group(3), "model version label")
    if failed:
        return failed
    kwargs = {"name": name, "version": version, "label": label}
    if method == "POST":
        return Route("inference", {**kwargs, "verb": verb}) if verb in VERBS else malformed
    if not name:
        return _error(grpc.StatusCode.INVALID_ARGUMENT, "Missing model name in request.")
    return Route("metadata" if subresource == "metadata" else "status", kwargs)


class TfServingPath(Matcher):
    """Matches the requests whose `route()` is of `kind` (the route is computed once per request)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def match(self, request: tornado.httputil.HTTPServerRequest) -> dict[str, Any] | None:
        if not hasattr(request, "tf_serving_route"):
            request.tf_serving_route = route(request.method or "", request.uri or "")  # type: ignore[attr-defined]
        found: Route | None = request.tf_serving_route  # type: ignore[attr-defined]
        if found is None or found.kind != self.kind:
            return None
        kwargs = {} if found.kind == "error" else dict(found.kwargs)  # an error's kwargs are read from the request
        return {"path_args": [], "path_kwargs": kwargs}


def too_large_head_response(limit: int) -> bytes:
    """A complete HTTP response: 431 with TF Serving's `{"error": …}` body, connection closed."""
    body = json.dumps({"error": f"Request header too large: the request line and headers exceed {limit} bytes"})
    return (f"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n{body}").encode("ascii")


def _answer_and_drain(sock: socket.socket, response: bytes) -> None:
    """Send `response` on a non-blocking socket, stop sending, and read what the client already sent, so that
    closing does not reset the connection before the client has read the answer (a bounded, non-blocking drain)."""
    try:
        sock.send(response)  # a few hundred bytes: fits the (idle) send buffer
        sock.shutdown(socket.SHUT_WR)
        for _ in range(64):  # at most 4 MiB, only what has already arrived
            if not sock.recv(65536):
                break
    except OSError:  # BlockingIOError: nothing more to read now; or the client is gone
        pass


class JsonErrorsHTTPServer(tornado.httpserver.HTTPServer):
    """tornado's HTTPServer, except that a request line + headers over `max_header_size` is answered with a JSON
    431 before the connection closes (tornado itself closes it without a word)."""

    def handle_stream(self, stream: tornado.iostream.IOStream, address: tuple) -> None:
        close = stream.close
        limit = self.conn_params.max_header_size
        marker = f"not found within {limit} bytes"

        def close_answering_oversized_heads(exc_info: Any = False) -> None:
            error = exc_info[1] if isinstance(exc_info, tuple) else exc_info
            if (isinstance(error, tornado.iostream.UnsatisfiableReadError) and marker in str(error)
                    and not stream.closed() and isinstance(stream.socket, socket.socket)):
                _answer_and_drain(stream.socket, too_large_head_response(limit))
            close(exc_info)

        stream.close = close_answering_oversized_heads  # type: ignore[method-assign]
        super().handle_stream(stream, address)
