"""One writer per pipeline store: the lock a local run (and `visionline prune`) holds on its ML Metadata folder.

Two `visionline run`s on the same work dir would interleave their executions in one ML Metadata store and one
pipeline root, and a prune during a run could remove an artifact the run just took from the cache. Each takes an
exclusive `flock` on `<metadata folder>/<pipeline>.lock` for its whole duration; the second is refused with an
error naming the work dir and the holder (pid, command, since when). The kernel drops the lock when its process
ends, however it ends, so a crashed run never leaves a stale lock behind.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from pipeline.config_values import ConfigError


class RunInProgressError(ConfigError):
    """Another process holds the pipeline's lock."""


def lock_path(metadata_path: str) -> str:
    """The lock file beside the ML Metadata store `<folder>/<pipeline>.sqlite`: `<folder>/<pipeline>.lock`."""
    return os.path.splitext(metadata_path)[0] + ".lock"


@contextmanager
def exclusive(metadata_path: str, purpose: str) -> Iterator[None]:
    """Hold the pipeline's lock while the block runs (`purpose`: what this process does, e.g. "run"); raise
    `RunInProgressError` at once when another process holds it."""
    path = lock_path(metadata_path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            raise RunInProgressError(f"{os.path.dirname(os.path.dirname(path))}: another visionline process "
                                     f"is using this pipeline ({_holder(handle.read())}); wait for it to finish, "
                                     f"or give this one another --work-dir") from None
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "purpose": purpose, "command": " ".join(sys.argv[:3]),
                                 "since": dt.datetime.now().astimezone().isoformat(timespec="seconds")}))
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            fcntl.flock(handle, fcntl.LOCK_UN)


def _holder(text: str) -> str:
    try:
        holder = json.loads(text)
        return f"pid {holder['pid']}, {holder['purpose']}, since {holder['since']}"
    except (ValueError, KeyError, TypeError):
        return "holder unknown"
