"""The report's "Why" heatmaps (pipeline/report/explanations.py): which samples are explained, the overlay picture,
multilabel maps, the rendered section, and a model without the `explain` signature."""

from __future__ import annotations

import io

import numpy as np
import pytest
import tensorflow as tf
from bs4 import BeautifulSoup
from PIL import Image

from pipeline.report import explanations
from pipeline.report.data import ReportData
from pipeline.report.render import render_html
from tests.conftest import encode
from tests.model_helpers import export_serving_model
from tests.serving.helpers import build_tiny_model

HOSTILE = "<script>alert(1)</script>"


def _image(level: int, width: int = 20, height: int = 10) -> bytes:
    pixels = np.full((height, width, 3), level, dtype=np.uint8)
    pixels[:, : width // 2] = 255 - level  # not uniform, so the model's map has some structure
    return encode(pixels, "PNG")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    work = tmp_path_factory.mktemp("report-explain")
    export_serving_model(work / "export", work, {name: [_image(40 * i + 20), _image(40 * i + 30)]
                                                 for i, name in enumerate(["a", "b", HOSTILE])})
    return str(work / "export")


def _scored(label: str, predicted: str, confidence: float, level: int) -> explanations.Scored:
    return (_image(level), label, f"{label}/{level}.png"), (predicted, confidence)


def test_misclassified_first_by_confidence_then_one_correct_per_class(model_dir):
    scored = [_scored("a", "a", 0.9, 10), _scored("b", "a", 0.6, 20), _scored("a", "a", 0.8, 30),
              _scored(HOSTILE, "b", 0.95, 40), _scored("b", "b", 0.7, 50), _scored("a", "b", 0.3, 60)]
    data = ReportData(run_id="r", pipeline_name="p")
    explanations.explain_samples(model_dir, scored, data, max_wrong=2)
    assert [(e.true_label, e.predicted_label, e.confidence) for e in data.explanations] == [
        (HOSTILE, "b", 0.95), ("b", "a", 0.6), ("a", "a", 0.9), ("b", "b", 0.7)]  # the 0.3 mistake is left out
    for e in data.explanations:
        assert e.explained in ("a", "b", HOSTILE)  # the untrained model's top class, named
        picture = Image.open(io.BytesIO(e.image_png))
        assert picture.size == (2 * explanations.PANEL + 4, explanations.PANEL // 2)  # image | gap | overlay
    soup = BeautifulSoup(render_html(data), "html.parser")
    figures = soup.select("#explanations figure")
    assert len(figures) == 4 and len(soup.select("#explanations figure.wrong")) == 2
    assert HOSTILE in figures[0].get_text(" ") and not soup.select("#explanations script")
    assert soup.select_one("nav a[href='#explanations']") is not None


def test_overlay_colours_only_where_the_heat_is_and_stretches_over_the_image():
    heat = np.zeros((8, 8), np.float32)
    heat[:, :4] = 1.0  # the model's left half
    png = explanations.overlay_png(encode(np.full((30, 60, 3), 128, np.uint8), "PNG"), heat, panel=60)
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.int16)
    original, overlay = pixels[:, :60], pixels[:, 64:]
    assert pixels.shape == (30, 124, 3) and (original == 128).all()
    assert np.abs(overlay[:, :20] - 128).max() > 40  # coloured on the image's left part
    assert (overlay[:, 40:] == 128).all()  # untouched where the heat is 0


def test_multilabel_rows_use_the_predicted_labels_maps():
    maps = np.zeros((2, 3, 4, 4), np.float32)
    maps[0, 0, 0, 0], maps[0, 2, 3, 3], maps[0, 1] = 1.0, 0.5, 0.9
    outputs = {"heatmap": tf.constant(maps[:, 0]), "explained_class": tf.constant([b"x", b"y"]),
               "label_heatmaps": tf.constant(maps), "predicted_labels": tf.constant([[1, 0, 1], [0, 0, 0]], tf.int64),
               "classes": tf.constant([[b"x", b"y", b"z"]] * 2)}
    (first, what), (second, none) = explanations._maps(outputs)
    assert what == "x, z" and first[0, 0] == 1.0 and first[3, 3] == 0.5 and first[1, 1] == 0.0  # not label y's
    assert none == "y (predicted (none))" and (second == maps[1, 0]).all()


def test_a_model_without_the_explain_signature_leaves_a_note(tmp_path):
    build_tiny_model(tmp_path / "tiny", class_names=["a", "b"])
    data = ReportData(run_id="r", pipeline_name="p")
    explanations.explain_samples(str(tmp_path / "tiny"), [_scored("a", "b", 0.9, 10)], data)
    assert data.explanations == [] and "has no 'explain' signature" in data.notes[0]
    soup = BeautifulSoup(render_html(data), "html.parser")
    assert soup.select_one("#explanations .na").get_text() == "No heatmaps."
