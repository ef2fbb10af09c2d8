"""Small helpers shared by the serving tests."""

from __future__ import annotations

import shutil
from pathlib import Path

MODEL = "visionline"


def copy_version(source: Path, base: Path, version: int) -> Path:
    """Copy a SavedModel version directory to `<base>/<version>` (a plain, non-atomic copy)."""
    target = base / str(version)
    shutil.copytree(source, target)
    return target
