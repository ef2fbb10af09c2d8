"""A daemon thread that calls one function every N seconds until stopped, surviving any exception it raises.

The model manager's file-system poll and the model-config watcher both run on one (TF Serving's
`FileSystemStoragePathSource` poll and `PollFilesystemAndReloadConfig`): a failed call is logged and retried at the
next tick, never the end of polling.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class Poller:
    """Calls `step()` every `interval` seconds on a daemon thread named `name` between `start()` and `stop()`."""

    def __init__(self, name: str, interval: float, step: Callable[[], object], failure: str) -> None:
        self.name = name
        self.interval = interval
        self._step = step
        self._failure = failure  # logged with the traceback when `step` raises
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start calling `step` (the first call one interval from now)."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 60) -> None:
        """Stop; waits up to `timeout` seconds for a call in progress to finish."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self._step()
            except Exception:  # polling must survive anything (a loader bug, a flaky mount)
                log.exception(self._failure)
