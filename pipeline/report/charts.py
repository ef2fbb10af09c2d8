"""The report's pictures as PNG bytes: confusion-matrix heatmap, per-label counts, training curves, class
distribution (matplotlib's Agg canvas, no pyplot global state), and thumbnails of eval images (Pillow).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

from pipeline.report.data import LabelMetrics, label_order, natural_key, padded_class_names, split_order


def _new_figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def _figure_png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    return buffer.getvalue()


def _short(label: str, limit: int = 18) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"


def _plain_text() -> Any:
    """rc settings so labels with '$' or '_' are drawn as typed, not as mathtext."""
    return matplotlib.rc_context({"text.parse_math": False, "text.usetex": False})


def _class_ticks(axes: Any, positions: Any, names: list[str]) -> None:
    """Class names under the x axis, tilted when there are many or they are long."""
    tilt = len(names) > 25 or max(map(len, names), default=0) > 3
    axes.set_xticks(positions, labels=names, rotation=45 if tilt else 0, ha="right" if tilt else "center")


def confusion_chart(confusion: Sequence[Sequence[float]], class_names: Sequence[str]) -> bytes:
    """Heatmap (colour: fraction of the actual class, text: counts) with class names; PNG bytes."""
    matrix = np.asarray(confusion, dtype=np.float64)
    n = matrix.shape[0]
    full_names = padded_class_names(class_names, n)
    order = sorted(range(n), key=lambda i: natural_key(full_names[i]))  # show classes by name, not by id
    matrix = matrix[np.ix_(order, order)]
    names = [_short(full_names[i]) for i in order]
    side = min(16.0, max(4.5, 0.55 * n + 2.5))
    with _plain_text():
        figure = _new_figure(side + 1.2, side)
        axes = figure.add_subplot()
        rows = matrix.sum(axis=1, keepdims=True)
        fractions = np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0)
        image = axes.imshow(fractions, cmap="Blues", vmin=0.0, vmax=1.0)
        colorbar = figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04)
        colorbar.set_label("fraction of the actual class")
        _class_ticks(axes, range(n), names)
        axes.set_yticks(range(n), labels=names)
        axes.set_xlabel("predicted class")
        axes.set_ylabel("actual class")
        if n <= 30:
            size = 9 if n <= 12 else 7
            for i in range(n):
                for j in range(n):
                    if matrix[i, j]:
                        colour = "white" if fractions[i, j] > 0.55 else "black"
                        axes.text(j, i, f"{matrix[i, j]:.0f}", ha="center", va="center", color=colour, fontsize=size)
        axes.set_title("Confusion matrix (eval split)")
        return _figure_png(figure)


def label_counts_chart(rows: Sequence[LabelMetrics]) -> bytes:
    """Multilabel: per-label true positives, false negatives and false positives as horizontal bars; PNG bytes."""
    ordered = sorted(rows, key=lambda r: natural_key(r.name))
    n = len(ordered)
    with _plain_text():
        figure = _new_figure(7.5, min(16.0, max(2.5, 0.35 * n + 1.5)))
        axes = figure.add_subplot()
        positions = np.arange(n)
        height = 0.27
        for offset, (attribute, label, colour) in enumerate((("tp", "true positives", "tab:green"),
                                                            ("fn", "false negatives (missed)", "tab:orange"),
                                                            ("fp", "false positives", "tab:red"))):
            axes.barh(positions + (offset - 1) * height, [getattr(r, attribute) for r in ordered], height,
                      label=label, color=colour)
        axes.set_yticks(positions, labels=[_short(r.name) for r in ordered])
        axes.invert_yaxis()
        axes.set_xlabel("examples (eval split, threshold 0.5)")
        axes.set_title("Per-label counts")
        axes.grid(axis="x", alpha=0.3)
        axes.legend(loc="lower right", fontsize=8)
        figure.tight_layout()
        return _figure_png(figure)


def training_chart(history: dict[str, list[float]], best_epoch: int | None = None,
                   phases: Sequence[tuple[str, int]] = ()) -> bytes:
    """Loss and accuracy per epoch, training vs validation, best epoch and phase boundaries marked; PNG bytes."""
    panels = [("loss", "val_loss", "Loss"), ("accuracy", "val_accuracy", "Accuracy")]
    panels = [p for p in panels if history.get(p[0]) or history.get(p[1])]
    with _plain_text():
        figure = _new_figure(5.2 * max(1, len(panels)), 3.6)
        for index, (train_key, val_key, title) in enumerate(panels, start=1):
            axes = figure.add_subplot(1, len(panels), index)
            for key, label, style in ((train_key, "training", "-o"), (val_key, "validation", "-s")):
                values = history.get(key) or []
                if values:
                    axes.plot(range(1, len(values) + 1), values, style, markersize=3, label=label)
            if best_epoch:
                axes.axvline(best_epoch, color="tab:green", linestyle="--", linewidth=1,
                             label=f"best epoch {best_epoch}")
            boundary = 0
            for name, epochs in list(phases)[:-1]:
                boundary += epochs
                axes.axvline(boundary + 0.5, color="grey", linestyle=":", linewidth=1, label=f"end of {name}")
            axes.set_title(title)
            axes.set_xlabel("epoch")
            axes.grid(alpha=0.3)
            axes.legend(fontsize=8)
            axes.xaxis.get_major_locator().set_params(integer=True)
        figure.tight_layout()
        return _figure_png(figure)


def distribution_chart(distribution: dict[str, dict[str, float]], class_order: Sequence[str] = ()) -> bytes:
    """Grouped bars: examples per class for each split; PNG bytes."""
    labels = label_order(distribution, class_order)
    splits = split_order(distribution)
    n = len(labels)
    with _plain_text():
        figure = _new_figure(min(16.0, max(5.0, 0.45 * n * max(1, len(splits)) + 2.0)), 3.8)
        axes = figure.add_subplot()
        width = 0.8 / max(1, len(splits))
        positions = np.arange(n)
        for index, split in enumerate(splits):
            counts = [distribution[split].get(label, 0.0) for label in labels]
            axes.bar(positions + (index - (len(splits) - 1) / 2) * width, counts, width, label=split)
        _class_ticks(axes, positions, [_short(s) for s in labels])
        axes.set_ylabel("examples")
        axes.set_title("Examples per class and split (StatisticsGen)")
        axes.grid(axis="y", alpha=0.3)
        axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), title="split")
        figure.tight_layout()
        return _figure_png(figure)


def thumbnail_png(encoded: bytes, size: int = 112) -> bytes:
    """Any PIL-readable image → a PNG thumbnail (small images enlarged without smoothing)."""
    with Image.open(io.BytesIO(encoded)) as image:
        image.seek(0)
        picture = image.convert("RGBA" if image.mode in ("RGBA", "LA", "P") else "RGB")
    width, height = picture.size
    if max(width, height) < size:
        factor = max(1, size // max(width, height))
        picture = picture.resize((width * factor, height * factor), Image.NEAREST)
    else:
        picture.thumbnail((size, size), Image.LANCZOS)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()
