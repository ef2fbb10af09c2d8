"""Write a benchmark's Markdown section into docs/benchmarks.md, replacing that benchmark's previous section."""

from __future__ import annotations

import datetime as dt
import os
import platform
import re
from pathlib import Path


def machine_line() -> str:
    """Date, CPU count and Python version: the context every figure needs."""
    return (f"_{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC · {os.cpu_count()} CPU cores · "
            f"{platform.machine()} · Python {platform.python_version()} · no GPU_")


def write_section(path: str | Path, name: str, body: str) -> None:
    """Replace the block between `<!-- name:start -->` and `<!-- name:end -->` (append it if absent)."""
    path = Path(path)
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    block = f"<!-- {name}:start -->\n{body.rstrip()}\n<!-- {name}:end -->"
    pattern = re.compile(rf"<!-- {re.escape(name)}:start -->.*?<!-- {re.escape(name)}:end -->", re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text, encoding="utf-8")
