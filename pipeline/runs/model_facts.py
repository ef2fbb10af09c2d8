"""What the Trainer recorded about the model of a run, for comparing runs: backbone, preset, image size,
parameters, training time and device, and the exported SavedModel's size on disk and per-image CPU latency.

They are read from the `history.json` in the Trainer's `model_run` artifact folder (keys `backbone`, `preset`,
`image_size`, `parameters`, `train_seconds`, `fit_seconds`, `device`, `export.saved_model_mb`,
`export.cpu_latency_ms`). Runs recorded before the Trainer wrote a fact have None for it; a run whose Trainer was
cached gets the facts of the model it reused.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from pipeline.component_ids import TRAINER
from pipeline.runs.record import RunRecord

HISTORY_FILE = "history.json"


@dataclass
class ModelFacts:
    """The Trainer's facts about one model; None where the run's history.json does not record it."""

    backbone: str | None = None
    preset: str | None = None
    image_size: int | None = None
    parameters: int | None = None
    train_seconds: float | None = None  # the whole Trainer run_fn
    fit_seconds: float | None = None  # inside model.fit
    device: str | None = None  # what trained it, e.g. "CPU" or "GPU:0 (NVIDIA H100)"
    saved_model_mb: float | None = None  # the exported SavedModel on disk
    cpu_latency_ms: float | None = None  # per image, the exported model on CPU

    @classmethod
    def from_history(cls, history: dict[str, Any]) -> ModelFacts:
        """The facts in a parsed history.json (missing, null or mistyped values stay None)."""
        export = history.get("export") if isinstance(history.get("export"), dict) else {}
        return cls(
            backbone=_text(history.get("backbone")),
            preset=_text(history.get("preset")),
            image_size=_integer(history.get("image_size")),
            parameters=_integer(history.get("parameters")),
            train_seconds=_number(history.get("train_seconds")),
            fit_seconds=_number(history.get("fit_seconds")),
            device=_text(history.get("device")),
            saved_model_mb=_number(export.get("saved_model_mb")),
            cpu_latency_ms=_number(export.get("cpu_latency_ms")),
        )

    def as_dict(self) -> dict[str, Any]:
        """Field name → value."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def read_history(model_run_uri: str) -> dict[str, Any]:
    """The parsed `history.json` of a `model_run` folder ({} when there is none)."""
    path = os.path.join(model_run_uri, HISTORY_FILE)
    if not os.path.exists(path):
        return {}
    loaded = json.loads(Path(path).read_text(encoding="utf-8"))
    return loaded if isinstance(loaded, dict) else {}


def model_facts(record: RunRecord) -> ModelFacts:
    """The facts of the run's model (all None when the Trainer did not run or recorded none of them)."""
    model_run = record.artifact(TRAINER, "model_run", "ModelRun")
    if model_run is None:
        return ModelFacts()
    return ModelFacts.from_history(read_history(model_run.uri))


def _text(value: Any) -> str | None:
    return str(value) if isinstance(value, str) and value else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _integer(value: Any) -> int | None:
    number = _number(value)
    return int(number) if number is not None else None
