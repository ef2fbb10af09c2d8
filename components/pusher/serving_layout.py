"""TF Serving's model directory layout: what the Pusher writes and the serving package reads.

    <base>/                                 a model's base path, `<serving_root>/<model_name>`
        <version>/                          an int64 as the directory name; the newest complete one is served
            saved_model.pb                  (or saved_model.pbtxt) the graph and its signatures
            variables/                      the weights
            assets.extra/visionline_push.json   the Trainer model the Pusher copied here (visionline's record)
        .<version>.partial/                 the Pusher's staging folder, renamed to `<version>/` once complete

A version directory is *complete* when it has the SavedModel file and `variables/` (`incomplete_reason`); names
that are not integers (such as the staging folder) are never versions (`is_version_name`), so a model server
polling the base path never sees half a push. The Pusher (through TFX's `fileio`, local or object store), the
local server's version watcher and the clients' in-process predictor all follow these rules; this module needs
neither TFX nor TensorFlow. Functions that read a base path work on the local filesystem, except
`find_pushed_version` / `new_version` / `latest_complete_version`, which take any `FileSystem` (TFX's `fileio`
module is one).
"""

from __future__ import annotations

import json
import os
import re
from typing import IO, Any, Protocol

VERSION_RE = re.compile(r"^[0-9]{1,18}$")  # an int64 TF Serving version, as the directory name
SAVED_MODEL_FILES = ("saved_model.pb", "saved_model.pbtxt")  # what TF Serving's loader looks for, in this order
SAVED_MODEL_PB = SAVED_MODEL_FILES[0]  # the file the Pusher copies last
VARIABLES_DIR = "variables"
PUSH_RECORD = os.path.join("assets.extra", "visionline_push.json")


class FileSystem(Protocol):
    """The file operations `find_pushed_version` / `new_version` need (TFX's `fileio` module has them)."""

    def exists(self, path: str) -> bool: ...

    def listdir(self, path: str) -> list[str]: ...

    def open(self, path: str, mode: str = "r") -> IO[Any]: ...


class LocalFileSystem:
    """`FileSystem` on local paths (the default)."""

    @staticmethod
    def exists(path: str) -> bool:
        """True if `path` exists."""
        return os.path.exists(path)

    @staticmethod
    def listdir(path: str) -> list[str]:
        """The names in directory `path`."""
        return os.listdir(path)

    @staticmethod
    def open(path: str, mode: str = "r") -> IO[Any]:
        """Open `path` (text modes as UTF-8)."""
        return open(path, mode, encoding=None if "b" in mode else "utf-8")


LOCAL = LocalFileSystem()


def is_version_name(name: str) -> bool:
    """True if `name` (a directory name) is a TF Serving version: a non-negative int64 in decimal."""
    return bool(VERSION_RE.match(name))


def version_dir(base: str, version: int | str) -> str:
    """`<base>/<version>`."""
    return os.path.join(base, str(version))


def staging_dir(base: str, version: int | str) -> str:
    """`<base>/.<version>.partial`: where the Pusher assembles a version before renaming it into place."""
    return os.path.join(base, f".{version}.partial")


def saved_model_file(path: str) -> str | None:
    """`saved_model.pb` (or `.pbtxt`) inside the version directory `path`, if present."""
    for name in SAVED_MODEL_FILES:
        candidate = os.path.join(path, name)
        if os.path.isfile(candidate):
            return candidate
    return None


def incomplete_reason(path: str) -> str | None:
    """Why the version directory `path` is not a complete SavedModel yet (None when it looks complete)."""
    if saved_model_file(path) is None:
        return "no saved_model.pb yet"
    if not os.path.isdir(os.path.join(path, VARIABLES_DIR)):
        return "no variables/ directory yet"
    return None


def version_dirs(base: str) -> list[tuple[int, str]]:
    """(version, path) of every directory under `base` whose name is a version, complete or not, oldest first.

    Raises `FileNotFoundError` / `OSError` when `base` cannot be listed."""
    found = []
    for entry in os.scandir(base):
        if is_version_name(entry.name) and entry.is_dir():
            found.append((int(entry.name), entry.path))
    return sorted(found)


def resolve_version_dir(path: str) -> str:
    """`path` itself if it is a complete SavedModel directory, else its newest complete `<version>/`
    sub-directory; `FileNotFoundError` saying which when there is none."""
    if incomplete_reason(path) is None:
        return path
    try:
        versions = version_dirs(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} does not exist") from None
    complete = [found for _version, found in versions if incomplete_reason(found) is None]
    if not complete:
        raise FileNotFoundError(f"{path}: no complete SavedModel version directory "
                                "(expected <version>/saved_model.pb)")
    return complete[-1]


def push_record(model_uri: str, pushed_at: int, tflite: dict[str, Any] | None = None) -> str:
    """The JSON the Pusher writes to `<version>/assets.extra/visionline_push.json` (with `tflite`: which TFLite
    variants it shipped and why it withheld any, `components.tflite_variants.GateResult.as_dict`)."""
    return json.dumps({"model_uri": model_uri, "pushed_at": pushed_at, **({"tflite": tflite} if tflite else {})})


def find_pushed_version(base: str, model_uri: str, fs: FileSystem = LOCAL) -> str | None:
    """The version under `base` whose push record names `model_uri`, if any."""
    if not fs.exists(base):
        return None
    for name in sorted(fs.listdir(base)):
        name = name.rstrip("/")  # object stores list "directories" with a trailing slash
        record = os.path.join(base, name, PUSH_RECORD)
        if is_version_name(name) and fs.exists(record):
            with fs.open(record, "r") as handle:
                if json.loads(handle.read()).get("model_uri") == model_uri:
                    return name
    return None


def latest_complete_version(base: str, fs: FileSystem = LOCAL) -> tuple[str, str] | None:
    """(version, path) of the newest complete version under `base` — the one TF Serving serves under its default
    version policy —, or None when `base` does not exist or holds no complete version."""
    if not fs.exists(base):
        return None
    names = (name.rstrip("/") for name in fs.listdir(base))  # object stores list "directories" with a "/"
    for version in sorted((name for name in names if is_version_name(name)), key=int, reverse=True):
        path = version_dir(base, version)
        if fs.exists(os.path.join(path, VARIABLES_DIR)) and any(
                fs.exists(os.path.join(path, name)) for name in SAVED_MODEL_FILES):
            return version, path
    return None


def new_version(base: str, now: float, fs: FileSystem = LOCAL) -> str:
    """The version name for a push at time `now`: its integer timestamp, or the next free one after it (two
    pushes within one second)."""
    version = int(now)
    while fs.exists(version_dir(base, version)):
        version += 1
    return str(version)
