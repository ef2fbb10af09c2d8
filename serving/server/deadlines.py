"""Request deadlines: when the work for a request is no longer wanted, so it is not done.

A `Deadline` combines a point in time (a gRPC call's deadline, or the REST timeout TF Serving sets with
`--rest_api_timeout_in_ms`, default 30 s) with a cancellation flag (the gRPC call ended, the HTTP client closed
its connection). `check()` raises the `ServingError` the request should end with once either happened:
DEADLINE_EXCEEDED (HTTP 504) or CANCELLED (HTTP 499).

The deadline travels with the request to where it waits: the API layers make it the *current* deadline of the
thread that serves the request (`applied()` / `run()`, a `contextvars` variable), and `request_batching.Batcher`
takes the current deadline with each `submit()`, so a request whose deadline passed while it was queued is
dropped before it is put into a batch and again just before the batch runs (TF Serving's batching session drops
a batch only when *all* its tasks timed out, with RESOURCE_EXHAUSTED "Run() timeout exceeded while waiting in
batching queue"; here each expired request is dropped on its own). A model call that already started is not
interrupted: TensorFlow has no way to stop a running signature call.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import grpc

from serving.errors import ServingError

T = TypeVar("T")

_current: contextvars.ContextVar[Deadline | None] = contextvars.ContextVar("serving_deadline", default=None)


class Deadline:
    """A monotonic point in time (None: none) and a cancellation flag; see the module docstring."""

    def __init__(self, at: float | None = None, what: str = "the request's deadline") -> None:
        self.at = at
        self.what = what
        self._cancelled = threading.Event()
        self._reason = ""

    @classmethod
    def after(cls, seconds: float | None, what: str = "the request's deadline") -> Deadline:
        """A deadline `seconds` from now (None or <= 0: no time limit, only cancellation)."""
        deadline = cls(None, what)
        deadline.limit(seconds)
        return deadline

    @classmethod
    def for_grpc(cls, context: grpc.ServicerContext) -> Deadline:
        """The call's deadline (if the client set one), cancelled when the call ends (e.g. the client gave up)."""
        remaining = context.time_remaining()
        # grpcio reports "no deadline" as None or as a huge number of seconds
        deadline = cls.after(remaining if remaining is not None and remaining < 10**8 else None,
                             "the call's deadline")
        if not context.add_callback(lambda: deadline.cancel("the call ended")):
            deadline.cancel("the call ended")
        return deadline

    def limit(self, seconds: float | None) -> None:
        """Set the time limit to `seconds` from now (None or <= 0: none)."""
        self.at = time.monotonic() + seconds if seconds and seconds > 0 else None

    def cancel(self, reason: str) -> None:
        """Mark the request as no longer wanted (the client went away)."""
        if not self._cancelled.is_set():
            self._reason = reason
            self._cancelled.set()

    def remaining(self) -> float | None:
        """Seconds left (may be negative), or None without a time limit."""
        return None if self.at is None else self.at - time.monotonic()

    def error(self) -> ServingError | None:
        """The error the request ends with if its deadline passed or it was cancelled, else None."""
        if self.at is not None and time.monotonic() >= self.at:
            return ServingError(grpc.StatusCode.DEADLINE_EXCEEDED, f"Deadline exceeded: {self.what} passed")
        if self._cancelled.is_set():
            return ServingError(grpc.StatusCode.CANCELLED, f"Cancelled: {self._reason}")
        return None

    def check(self) -> None:
        """Raise `error()` if there is one."""
        error = self.error()
        if error is not None:
            raise error

    @contextlib.contextmanager
    def applied(self) -> Iterator[Deadline]:
        """Make this the current deadline of this thread (what `Batcher.submit` attaches to a request)."""
        token = _current.set(self)
        try:
            yield self
        finally:
            _current.reset(token)

    def run(self, fn: Callable[..., T], *args: Any) -> T:
        """`check()`, then call `fn(*args)` with this as the current deadline (for work handed to a thread pool,
        which does not inherit the caller's context)."""
        self.check()
        with self.applied():
            return fn(*args)


def current() -> Deadline | None:
    """The deadline of the request this thread is serving, if any."""
    return _current.get()
