"""The report's "Why" heatmaps: the candidate SavedModel's own `explain` signature (Grad-CAM,
components/trainer/explain.py) run on the misclassified eval samples (most confident first) and on one correctly
classified sample per class, each drawn as the image beside the image with its heatmap.

The samples come from the scan `samples.collect_samples` already made (no second pass over the eval split); a model
exported before the `explain` signature existed, or one whose explain call fails, leaves a note instead of the
section's pictures, never a failed report.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import matplotlib
import numpy as np
import tensorflow as tf
from PIL import Image

from pipeline.report.data import NO_LABELS, Explanation, ReportData, label_set_text, natural_key

EXPLAIN = "explain"  # the signature's name (components/trainer/explain.py; pipeline code does not import the trainer)
MAX_MISCLASSIFIED = 12  # misclassified samples explained (most confident mistakes first)
PANEL = 112  # px, the longer side of each of the two pictures
HEAT_ALPHA = 0.6  # overlay opacity at heat 1
BATCH = 16

# one scanned eval example: ((encoded image, true label, source path), (predicted label, confidence))
Scored = tuple[tuple[bytes, str, str], tuple[str, float]]


def pick(scored: Sequence[Scored], max_wrong: int = MAX_MISCLASSIFIED) -> list[Scored]:
    """The misclassified samples, most confident first (at most `max_wrong`), then the first correct one of each
    class in natural class order."""
    wrong = sorted((x for x in scored if x[1][0] != x[0][1]), key=lambda x: -x[1][1])[:max_wrong]
    first_right: dict[str, Scored] = {}
    for item in scored:
        if item[1][0] == item[0][1]:
            first_right.setdefault(item[0][1], item)
    return wrong + [first_right[label] for label in sorted(first_right, key=natural_key)]


def explain_samples(model_dir: str, scored: Sequence[Scored], data: ReportData,
                    max_wrong: int = MAX_MISCLASSIFIED, loaded: Any = None) -> None:
    """Fill `data.explanations` from the scanned samples; a note in `data.notes` when the model cannot explain.
    `loaded`: the SavedModel in `model_dir` when the caller has already loaded it (else it is loaded here)."""
    chosen = pick(scored, max_wrong)
    if not chosen:
        return
    try:
        signature = (loaded if loaded is not None else tf.saved_model.load(model_dir)).signatures.get(EXPLAIN)
        if signature is None:
            data.notes.append(f"heatmaps: the model {model_dir} has no {EXPLAIN!r} signature (exported before it "
                              "existed); retrain to get them")
            return
        maps: list[tuple[np.ndarray, str]] = []
        for start in range(0, len(chosen), BATCH):
            images = [item[0][0] for item in chosen[start:start + BATCH]]
            outputs = signature(images=tf.constant(images, tf.string),
                                class_index=tf.constant([-1] * len(images), tf.int64))
            maps.extend(_maps(outputs))
    except Exception as err:  # noqa: BLE001 - the heatmaps must not sink the report (nor its sample grid)
        data.notes.append(f"heatmaps: the {EXPLAIN!r} signature of {model_dir} failed ({type(err).__name__}: "
                          f"{err})")
        return
    for ((image, label, path), (predicted, confidence)), (heat, explained) in zip(chosen, maps):
        try:
            png = overlay_png(image, heat)
        except Exception:  # noqa: BLE001 - an image PIL cannot open (TF decoded it) just has no picture
            continue
        data.explanations.append(Explanation(png, label, predicted, confidence, path, explained=explained))


def _maps(outputs: dict[str, tf.Tensor]) -> list[tuple[np.ndarray, str]]:
    """(heatmap [H, W], what it explains) per row: the top class's map, or for a multilabel model the pixel-wise
    maximum over its predicted labels' maps (the top label's when none is predicted)."""
    heat = outputs["heatmap"].numpy()
    explained = [c.decode("utf-8", "replace") for c in outputs["explained_class"].numpy()]
    if "label_heatmaps" not in outputs:
        return list(zip(heat, explained))
    rows = []
    for row, (labels, flags, names) in enumerate(zip(outputs["label_heatmaps"].numpy(),
                                                     outputs["predicted_labels"].numpy(), outputs["classes"].numpy())):
        hot = np.flatnonzero(flags)
        if len(hot):
            rows.append((labels[hot].max(axis=0), label_set_text(names[i].decode("utf-8", "replace") for i in hot)))
        else:
            rows.append((heat[row], f"{explained[row]} (predicted {NO_LABELS})"))
    return rows


def overlay_png(encoded: bytes, heat: np.ndarray, panel: int = PANEL) -> bytes:
    """The image and the image with `heat` ([H, W] in [0, 1], the model's input grid stretched over the whole image,
    as the model resized it) in the jet colour map on top, side by side, as PNG bytes."""
    with Image.open(io.BytesIO(encoded)) as image:
        image.seek(0)
        picture = image.convert("RGB")
    width, height = picture.size
    scale = panel / max(width, height)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    picture = picture.resize(size, Image.NEAREST if scale >= 1 else Image.LANCZOS)
    heat_image = Image.fromarray(np.clip(heat, 0.0, 1.0).astype(np.float32), mode="F").resize(size, Image.BILINEAR)
    weight = HEAT_ALPHA * np.clip(np.asarray(heat_image), 0.0, 1.0)[..., None]
    colours = matplotlib.colormaps["jet"](np.asarray(heat_image))[..., :3] * 255.0
    pixels = np.asarray(picture, dtype=np.float32)
    blended = (pixels * (1.0 - weight) + colours * weight).round().astype(np.uint8)
    gap = np.full((size[1], 4, 3), 255, dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(np.concatenate([pixels.astype(np.uint8), gap, blended], axis=1)).save(buffer, format="PNG")
    return buffer.getvalue()
