"""The one error type of the serving layer and how it maps onto gRPC status codes and HTTP statuses.

Every failure a client can cause or observe is a `ServingError` carrying a gRPC `StatusCode`; the REST layer
turns it into TF Serving's `{"error": "…"}` body with the HTTP status TF Serving uses for that code
(`tensorflow_serving/util/net_http/…ToHTTPStatusCode`), the gRPC layer aborts the call with the code.
TensorFlow's own `OpError`s carry the same numeric codes and are converted with `from_tf_error`.
"""

from __future__ import annotations

import grpc

_HTTP_STATUS = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
    grpc.StatusCode.UNAUTHENTICATED: 401,
}
_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}

# Lines TensorFlow wraps around the real message of an op error ("Graph execution error: Detected at node …").
_TF_NOISE = ("Graph execution error", "Detected at node", "<stack traces unavailable>", "[[", "defined at")


class ServingError(Exception):
    """A request failed with gRPC status `code`; `message` is what the client is told."""

    def __init__(self, code: grpc.StatusCode, message: str, http_status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self._http_status = http_status

    @property
    def http_status(self) -> int:
        """HTTP status of the REST response (TF Serving's mapping unless overridden, e.g. 413)."""
        return self._http_status or _HTTP_STATUS.get(self.code, 500)

    def __repr__(self) -> str:
        return f"ServingError({self.code.name}, {self.message!r})"


MAX_ECHOED_CHARS = 200  # a client's text (model name, label, path) is cut to this in error bodies and log lines


def clip(text: str, limit: int = MAX_ECHOED_CHARS) -> str:
    """`text` cut to `limit` characters with "…" when longer (for echoing what a client sent)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def invalid(message: str) -> ServingError:
    """INVALID_ARGUMENT (HTTP 400)."""
    return ServingError(grpc.StatusCode.INVALID_ARGUMENT, message)


def not_found(message: str) -> ServingError:
    """NOT_FOUND (HTTP 404)."""
    return ServingError(grpc.StatusCode.NOT_FOUND, message)


def status_code_by_number(number: int) -> grpc.StatusCode:
    """The gRPC status code with canonical number `number` (UNKNOWN if out of range)."""
    return _BY_NUMBER.get(number, grpc.StatusCode.UNKNOWN)


def clean_tf_message(message: str) -> str:
    """The human part of a TensorFlow op error message, without node names and stack-trace boilerplate."""
    lines = [line.strip() for line in message.splitlines()]
    kept = [line for line in lines if line and not line.startswith(_TF_NOISE)]
    text = " ".join(kept) if kept else message.strip()
    return text.split(" [Op:")[0].strip()


def from_tf_error(err: Exception) -> ServingError:
    """Convert a `tf.errors.OpError` (same numeric codes as gRPC) into a `ServingError`."""
    code = status_code_by_number(int(getattr(err, "error_code", 2)))
    return ServingError(code, clean_tf_message(getattr(err, "message", None) or str(err)))
