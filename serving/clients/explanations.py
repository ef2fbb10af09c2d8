"""Explanations for the clients: the served model's `explain` signature (Grad-CAM inside the SavedModel,
components/trainer/explain.py) over TF Serving's REST or gRPC API, and its heatmap drawn over the image as a PNG
(`visionline predict --explain DIR`, the command-line twin of the web page's "Why?").

Each image is explained for its predicted class (`class_index` -1). A multilabel model's picture is the pixel-wise
maximum of its predicted labels' maps (the top label's when none is predicted), as on the web page. TFLite files
have no `explain` signature: explanations need the SavedModel, served.
"""

from __future__ import annotations

import base64
import io
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from serving.clients.files import call_with_fallback
from serving.clients.predictors import DEFAULT_MODEL, GrpcClient, RestClient
from serving.clients.results import ServiceError

SIGNATURE = "explain"  # = components.trainer.explain.EXPLAIN (not imported: that module loads TensorFlow)
TOP_CLASS = -1  # `class_index`: explain the predicted class
OVERLAY_ALPHA = 0.45  # share of the heatmap's colour in the overlay
COLORMAP = "jet"  # matplotlib's, as the report's heatmaps


@dataclass(frozen=True)
class Explanation:
    """One image's heatmap ([H, W] in [0, 1], at the model's input size) and what it explains (a class name, or a
    multilabel model's predicted labels "a, b")."""

    heatmap: np.ndarray
    explained: str


def _text(value: Any) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)


def explanations(outputs: Mapping[str, Any]) -> list[Explanation]:
    """`Explanation`s from the `explain` signature's outputs in columnar form (name → array with the batch first)."""
    heatmaps = np.asarray(outputs["heatmap"], dtype=np.float32)
    if heatmaps.ndim != 3:
        raise ServiceError(f"explain: expected heatmap of shape [batch, height, width], got {list(heatmaps.shape)}")
    explained = [_text(v) for v in np.asarray(outputs["explained_class"]).reshape(-1)]
    if "label_heatmaps" not in outputs:
        return [Explanation(h, name) for h, name in zip(heatmaps, explained, strict=True)]
    label_maps = np.asarray(outputs["label_heatmaps"], dtype=np.float32)  # [B, C, H, W]
    hot = np.asarray(outputs["predicted_labels"]) > 0
    names = np.asarray(outputs["classes"])
    found = []
    for i, heatmap in enumerate(heatmaps):
        chosen = np.flatnonzero(hot[i])
        if not chosen.size:  # nothing predicted: the top label's map
            found.append(Explanation(heatmap, explained[i]))
            continue
        found.append(Explanation(label_maps[i, chosen].max(axis=0),
                                 ", ".join(_text(names[i, j]) for j in chosen)))
    return found


def explain_body(images: Sequence[bytes]) -> dict:
    """The REST `:predict` body (row format) of the `explain` signature on encoded images, top class each."""
    return {"signature_name": SIGNATURE,
            "instances": [{"images": {"b64": base64.b64encode(image).decode("ascii")}, "class_index": TOP_CLASS}
                          for image in images]}


class RestExplainer(RestClient):
    """The `explain` signature through TF Serving's REST `:predict`."""

    def explain(self, images: Sequence[bytes]) -> list[Explanation]:
        """One request for all images."""
        rows = self._rows(explain_body(images))
        return explanations({key: [row[key] for row in rows] for key in rows[0]}) if rows else []


class GrpcExplainer(GrpcClient):
    """The `explain` signature through TF Serving's gRPC `PredictionService/Predict` (official protos)."""

    def __init__(self, target: str, model: str = DEFAULT_MODEL, version: int | None = None, timeout: float = 60.0,
                 max_message_bytes: int = 256 * 1024 * 1024) -> None:  # heatmaps: H × W floats per image and label
        super().__init__(target, model, version, timeout, max_message_bytes)

    def explain(self, images: Sequence[bytes]) -> list[Explanation]:
        """One Predict call for all images."""
        return explanations(self._outputs(images, SIGNATURE, {"class_index": [TOP_CLASS] * len(images)}))


def overlay_png(image: bytes, heatmap: np.ndarray, alpha: float = OVERLAY_ALPHA) -> bytes:
    """The image (as the model saw it: upright, RGB) with the heatmap, resized to it, blended over it in colour."""
    from matplotlib import colormaps  # only for --explain

    with Image.open(io.BytesIO(image)) as opened:
        picture = opened.convert("RGB")
    scaled = Image.fromarray(np.clip(heatmap, 0.0, 1.0).astype(np.float32), mode="F").resize(
        picture.size, Image.Resampling.BILINEAR)
    colours = colormaps[COLORMAP](np.asarray(scaled))[..., :3]  # [h, w, 3] in [0, 1]
    blended = (1 - alpha) * np.asarray(picture, dtype=np.float32) + alpha * 255.0 * colours
    out = io.BytesIO()
    Image.fromarray(np.clip(np.round(blended), 0, 255).astype(np.uint8)).save(out, format="PNG")
    return out.getvalue()


@dataclass(frozen=True)
class ExplainedFile:
    """Where one file's overlay went and what it explains, or why it could not be explained."""

    path: str
    overlay: str = ""
    explained: str = ""
    reason: str = ""


def explain_files(items: Sequence[tuple[str, bytes]], explainer: Any, out_dir: str,
                  batch_size: int = 8) -> dict[str, ExplainedFile]:
    """Explain each (path, bytes sent for prediction) item and write `<out_dir>/<name>.why.png`, the heatmap over the
    image (a name taken twice gets `-2`, `-3`, …); a file the service rejects is listed with the reason."""
    os.makedirs(out_dir, exist_ok=True)
    sent = dict(items)
    found: dict[str, ExplainedFile] = {}
    taken: set[str] = set()
    for start in range(0, len(items), batch_size):
        for path, explanation, reason in call_with_fallback(explainer.explain, items[start:start + batch_size]):
            if explanation is None:
                found[path] = ExplainedFile(path, reason=reason)
                continue
            target = _unique_name(out_dir, os.path.splitext(os.path.basename(path))[0], taken)
            with open(target, "wb") as handle:
                handle.write(overlay_png(sent[path], explanation.heatmap))
            found[path] = ExplainedFile(path, overlay=target, explained=explanation.explained)
    return found


def _unique_name(out_dir: str, stem: str, taken: set[str]) -> str:
    name, number = f"{stem}.why.png", 1
    while name in taken:
        number += 1
        name = f"{stem}-{number}.why.png"
    taken.add(name)
    return os.path.join(out_dir, name)
