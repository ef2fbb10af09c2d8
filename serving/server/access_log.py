"""The access log: one structured line per REST request and per gRPC call, on the logger `serving.access`.

    access api=grpc rpc=Predict model=visionline version=1 status=OK ms=3.1
    access api=rest method=POST path=/v1/models/visionline:predict model=visionline version=1 status=200 code=OK ms=4.0

Fields are logfmt (`key=value`, a value with spaces, quotes or '=' in double quotes); `version` is the version that
served the request (the requested one, or `-`, when none did); `status` is the gRPC status name (gRPC) or the HTTP
status (REST, with the gRPC status name in `code`). What the client sent (model name, path) is cut to
`serving.errors.MAX_ECHOED_CHARS` characters. `visionline serve --no-access-log` switches it off (`ServerConfig.
access_log`); the Prometheus counters keep counting either way.
"""

from __future__ import annotations

import logging

from serving.errors import clip

log = logging.getLogger("serving.access")


def _value(value: object) -> str:
    text = clip("-" if value is None or value == "" else str(value))
    if any(c in text for c in ' "=\\') or any(ord(c) < 32 for c in text):
        escaped = text.replace("\\", "\\\\").replace('"', '\\"')
        return '"' + "".join(c if ord(c) >= 32 else f"\\x{ord(c):02x}" for c in escaped) + '"'
    return text


def format_line(**fields: object) -> str:
    """`access key=value …` in the order given."""
    return "access " + " ".join(f"{key}={_value(value)}" for key, value in fields.items())


class AccessLog:
    """Writes access lines when enabled; see the module docstring."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled

    def grpc(self, rpc: str, model: str, version: int | None, status: str, seconds: float) -> None:
        """One gRPC call."""
        if self.enabled:
            log.info("%s", format_line(api="grpc", rpc=rpc, model=model, version=version, status=status,
                                       ms=f"{seconds * 1e3:.1f}"))

    def rest(self, method: str, path: str, model: str | None, version: int | str | None, http_status: int,
             code: str, seconds: float) -> None:
        """One REST request."""
        if self.enabled:
            log.info("%s", format_line(api="rest", method=method, path=path, model=model, version=version,
                                       status=http_status, code=code, ms=f"{seconds * 1e3:.1f}"))
