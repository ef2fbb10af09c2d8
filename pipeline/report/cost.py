"""The report's cost table: parameters, size on disk and per-image CPU latency of the SavedModel and of each TFLite
variant, with each one's accuracy on the same eval images and whether the Pusher shipped it.

The figures are the Trainer's (`tflite.json`, kept in history.json as `tflite`; older runs or `train.tflite=false`:
the SavedModel's size and latency only, from history.json's `export`); what shipped is the Pusher's record in the
pushed version (`assets.extra/visionline_push.json`, its `tflite` entry).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from components.pusher.serving_layout import PUSH_RECORD


@dataclass(frozen=True)
class CostRow:
    """One model of the cost table."""

    model: str  # SavedModel | TFLite float32 | TFLite float16 | TFLite int8
    accuracy: float | None
    size_mb: float | None
    cpu_latency_ms: float | None
    parameters: int | None
    note: str = ""  # quantization, and for a variant whether it shipped (or why not)


def cost_rows(history: dict[str, Any], pushed_destination: str = "") -> tuple[list[CostRow], str]:
    """(rows, the note under the table) from the Trainer's history.json and, when the model was pushed, the push
    record in `pushed_destination`."""
    report = history.get("tflite") or {}
    saved = report.get("saved_model") or {}
    export = history.get("export") or {}
    if not saved and not export:
        return [], ""
    rows = [CostRow("SavedModel", saved.get("accuracy"), saved.get("size_mb", export.get("saved_model_mb")),
                    saved.get("cpu_latency_ms", export.get("cpu_latency_ms")),
                    saved.get("parameters", history.get("parameters")), "TF Serving")]
    decisions = _push_decisions(pushed_destination)
    for variant, figures in (report.get("variants") or {}).items():
        note = figures.get("error") or figures.get("quantization", "")
        if variant in decisions:
            note = f"{note}; {decisions[variant]}" if note else decisions[variant]
        rows.append(CostRow(f"TFLite {variant}", figures.get("accuracy"), figures.get("size_mb"),
                            figures.get("cpu_latency_ms"), saved.get("parameters"), note))
    if not report:
        return rows, "No TFLite variants in this run (train.tflite=false, or a model exported before they existed)."
    evaluated = report.get("eval") or {}
    note = (f"Accuracy: {report.get('metric', 'accuracy')} on the same {evaluated.get('images', '?')} images of the "
            f"{evaluated.get('split', '?')} split. Latency: median of one image on the training machine's CPU; the "
            "SavedModel's includes decoding the encoded image, a TFLite variant's starts from decoded uint8 pixels.")
    return rows, note


def _push_decisions(destination: str) -> dict[str, str]:
    """variant → "shipped" or "withheld: reason", from the pushed version's push record ({} when unreadable)."""
    path = os.path.join(destination, PUSH_RECORD) if destination else ""
    if not path or not os.path.isfile(path):
        return {}
    with open(path, encoding="utf-8") as handle:
        gate = json.load(handle).get("tflite") or {}
    decisions = {variant: "shipped" for variant in gate.get("shipped", [])}
    decisions.update({item["variant"]: f"withheld ({item['reason']})" for item in gate.get("withheld", [])})
    return decisions
