"""The TFLite variants inside an exported model version, and the accuracy gate the Pusher applies to them.

    <model version>/assets.extra/tflite/          (TF Serving ignores assets.extra: the variants ride along)
        model_float32.tflite  model_float16.tflite  model_int8.tflite
        labels.txt                                 class names, one a line, in the models' output index order
        tflite.json                                task, input, per-variant accuracy / size / latency, SavedModel's

Each `.tflite` has one signature, `serving_default`: input `pixels` uint8 [1, H, W, 3] (the image decoded and resized
as the SavedModel does it, rounded to integers), outputs `probabilities` float32 [1, C] and, for multilabel models,
`predicted_labels` int64 [1, C] (probability ≥ 0.5). The Trainer writes the folder
(`components.trainer.tflite_export`); the Pusher ships only the variants whose accuracy is within
`eval.max_tflite_accuracy_drop` of the SavedModel's on the same eval images (`gate`); `visionline predict --tflite`
reads `labels.txt` beside the file. This module needs neither TensorFlow nor TFX.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

VARIANTS = ("float32", "float16", "int8")
FOLDER = os.path.join("assets.extra", "tflite")  # inside the SavedModel directory
REPORT = "tflite.json"
LABELS = "labels.txt"
SIGNATURE = "serving_default"
INPUT = "pixels"
DEFAULT_MAX_ACCURACY_DROP = 0.02  # eval.max_tflite_accuracy_drop's default
MAX_DROP_KEY = "max_tflite_accuracy_drop"  # the Pusher's custom_config key


def model_file(variant: str) -> str:
    """The file name of `variant` (`model_<variant>.tflite`)."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown TFLite variant {variant!r}; expected one of {VARIANTS}")
    return f"model_{variant}.tflite"


def folder(export_dir: str) -> str:
    """`<export_dir>/assets.extra/tflite`."""
    return os.path.join(export_dir, FOLDER)


def read_labels(model_path: str) -> list[str] | None:
    """The class names in `labels.txt` beside the TFLite file `model_path`, or None when there is none."""
    path = os.path.join(os.path.dirname(os.path.abspath(model_path)), LABELS)
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as handle:
        return [line.rstrip("\n") for line in handle if line.rstrip("\n")]


@dataclass(frozen=True)
class GateResult:
    """Which variants the Pusher ships and which it withholds (with the reason), for one model."""

    shipped: tuple[str, ...] = ()
    withheld: tuple[dict[str, Any], ...] = ()  # variant, accuracy, saved_model_accuracy, max_drop, reason
    notes: tuple[str, ...] = field(default=())  # e.g. no TFLite variants were exported

    def deny_patterns(self) -> list[str]:
        """Regular expressions (for TFX's `io_utils.copy_dir`) matching the withheld variants' files."""
        return [re.escape(os.sep + model_file(item["variant"])) + "$" for item in self.withheld]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (the push record's `tflite` entry)."""
        return {"shipped": list(self.shipped), "withheld": list(self.withheld), "notes": list(self.notes)}

    def describe(self) -> str:
        """One line for the console: what was shipped and why anything was not."""
        parts = [f"TFLite shipped: {', '.join(self.shipped) or 'none'}"]
        parts += [f"withheld {item['reason']}" for item in self.withheld]
        return "; ".join(parts + list(self.notes))


def gate(report: Mapping[str, Any] | None, max_drop: float) -> GateResult:
    """Apply `eval.max_tflite_accuracy_drop` to a `tflite.json` report: a variant whose accuracy is more than
    `max_drop` below the SavedModel's (on the same eval images) is withheld; so is one without a measured accuracy
    (its conversion failed or no eval image could be read). No report: nothing to ship (a note says so)."""
    if not report:
        return GateResult(notes=("no TFLite variants in this model (train.tflite=false or an older model)",))
    saved = report.get("saved_model", {}).get("accuracy")
    shipped, withheld = [], []
    for variant, figures in report.get("variants", {}).items():
        accuracy = figures.get("accuracy")
        if accuracy is None or saved is None:
            why = figures.get("error") or "its accuracy was not measured"
            withheld.append({"variant": variant, "accuracy": accuracy, "saved_model_accuracy": saved,
                             "max_drop": max_drop, "reason": f"{variant}: {why}"})
        elif saved - accuracy > max_drop + 1e-9:
            withheld.append({"variant": variant, "accuracy": accuracy, "saved_model_accuracy": saved,
                             "max_drop": max_drop,
                             "reason": (f"{variant}: accuracy {accuracy:.4f} vs the SavedModel's {saved:.4f} on "
                                        f"{report.get('eval', {}).get('images', '?')} eval images, a drop of "
                                        f"{saved - accuracy:.4f} > eval.max_tflite_accuracy_drop {max_drop:g}")})
        else:
            shipped.append(variant)
    return GateResult(tuple(shipped), tuple(withheld))


def report_path(export_dir: str) -> str:
    """`<export_dir>/assets.extra/tflite/tflite.json`."""
    return os.path.join(folder(export_dir), REPORT)


def load_report(text: str, path: str) -> dict[str, Any]:
    """Parse a `tflite.json`; ValueError naming `path` when it is not a JSON object."""
    try:
        report = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(report, dict):
        raise ValueError(f"{path}: expected a JSON object")
    return report
