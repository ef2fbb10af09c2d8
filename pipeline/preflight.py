"""Pre-flight checks of a run's output locations, before any heavy work starts.

Every local output location — the work dir, the pipeline root (artifacts), the ML Metadata folder and the push
destination — must be creatable and writable (a probe file is written and deleted) and its file system must have
`validation.min_free_disk_mb` free; the pipeline root's file system also needs `validation.free_disk_input_factor`
times the size of the input data (ingestion copies every image into the Examples artifact). A failure raises
`PreflightError` (a `ConfigError`) naming the location, the path and the space free and needed. Remote URIs
(gs://…) are not checked here: their storage is not a local file system.
"""

from __future__ import annotations

import errno
import os
import shutil
from dataclasses import dataclass

from pipeline.configs import ConfigError, PipelineConfig, absolute

_MB = 1024 * 1024


class PreflightError(ConfigError):
    """An output location cannot be used: not writable, not creatable, or not enough free space."""


@dataclass
class Location:
    """One checked output location."""

    role: str  # "work_dir", "pipeline root", …
    path: str
    free_mb: float
    needed_mb: float


def input_size_bytes(data_root: str) -> int:
    """Total size of the regular files under the data root (a CSV manifest: under its folder); 0 for URIs."""
    if not data_root or "://" in data_root:
        return 0
    root = absolute(data_root)
    if os.path.isfile(root):
        root = os.path.dirname(root)
    total = 0
    for folder, _, files in os.walk(root):
        for name in files:
            try:
                total += os.stat(os.path.join(folder, name)).st_size
            except OSError:
                continue  # vanished or unreadable: ingestion will quarantine it
    return total


def _size(num_bytes: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if num_bytes < 1024 or unit == "GB":
            return f"{num_bytes:,.0f} {unit}" if unit == "bytes" else f"{num_bytes:,.1f} {unit}"
        num_bytes /= 1024
    return f"{num_bytes:,.1f} GB"


def _describe(err: OSError) -> str:
    if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "permission denied" if err.errno != errno.EROFS else "read-only file system"
    if err.errno in (errno.ENOTDIR, errno.EEXIST):
        return "a path component is a file, not a folder"
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return "no space left on the device"
    return err.strerror or type(err).__name__


def check_location(role: str, path: str, needed_mb: float, why: str = "validation.min_free_disk_mb") -> Location:
    """Create `path` if needed, write and delete a probe file, and check the free space; raise `PreflightError`."""
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as err:
        raise PreflightError(f"{role} {path} cannot be created: {_describe(err)}") from err
    if not os.path.isdir(path):
        raise PreflightError(f"{role} {path} is not a folder")
    probe = os.path.join(path, f".visionline-write-probe-{os.getpid()}")
    try:
        with open(probe, "wb") as handle:
            handle.write(b"visionline pre-flight probe\n")
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as err:
        raise PreflightError(f"{role} {path} is not writable: {_describe(err)}") from err
    finally:
        if os.path.exists(probe):
            os.remove(probe)
    free_mb = shutil.disk_usage(path).free / _MB
    if free_mb < needed_mb:
        raise PreflightError(f"not enough free disk space for the {role} {path}: {free_mb:,.0f} MB free, "
                             f"{needed_mb:,.0f} MB needed ({why})")
    return Location(role, path, free_mb, needed_mb)


def check_outputs(config: PipelineConfig) -> list[Location]:
    """Check every local output location of `config`; return what was checked (free and needed MB)."""
    minimum = float(config.validation.min_free_disk_mb)
    minimum_why = f"validation.min_free_disk_mb={config.validation.min_free_disk_mb}"
    factor = config.validation.free_disk_input_factor
    input_mb = input_size_bytes(config.data.root) / _MB if factor > 0 else 0.0
    root_needed, root_why = minimum, minimum_why
    if factor * input_mb > minimum:
        root_needed = factor * input_mb
        root_why = f"validation.free_disk_input_factor={factor:g} × {_size(input_mb * _MB)} of input data"
    locations = [
        ("work_dir", absolute(config.work_dir), minimum, minimum_why),
        ("pipeline root", config.pipeline_root, root_needed, root_why),
        ("ML Metadata folder", os.path.dirname(config.metadata_path), minimum, minimum_why),
        ("serving root", config.push_base, minimum, minimum_why),
    ]
    return [check_location(role, path, needed, why) for role, path, needed, why in locations if "://" not in path]
