"""`visionline predict --explain DIR` (serving/clients/explanations.py): the served model's `explain` signature over
REST and gRPC, each image written with its Grad-CAM heatmap over it; the overlay's colours, the multilabel
combination of label maps, and what cannot be explained."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from matplotlib import colormaps
from PIL import Image

from serving import cli
from serving.clients.explanations import OVERLAY_ALPHA, explanations, overlay_png
from tests.conftest import encode
from tests.serving.test_cli_client import parser


def _pixels(path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), dtype=np.float64)


def test_predict_explain_over_rest_writes_each_image_with_its_heatmap(server, digit_paths, in_process, tmp_path,
                                                                       capsys):
    paths = [digit_paths["3"], digit_paths["7"]]
    out_dir = tmp_path / "why"
    code = cli.dispatch(parser().parse_args(["predict", *map(str, paths), "--url", server.rest_url,
                                             "--explain", str(out_dir)]))
    text = capsys.readouterr().out
    assert code == 0
    expected = in_process("explain", images=[p.read_bytes() for p in paths], class_index=np.array([-1, -1]))
    for path, heatmap, name in zip(paths, expected["heatmap"], expected["explained_class"], strict=True):
        overlay = out_dir / f"{path.stem}.why.png"
        assert f"  why: {overlay} (heatmap of {name.decode()!r})" in text
        with Image.open(path) as original:
            # the overlay is the image as sent, with the served heatmap blended over it
            assert _pixels(overlay).shape == (original.height, original.width, 3)
            reference = overlay_png(path.read_bytes(), heatmap)
        assert np.abs(_pixels(overlay) - _pixels(io.BytesIO(reference))).max() <= 1


def test_predict_explain_over_grpc_as_json_and_names_taken_twice(server, digit_paths, tmp_path, capsys):
    twin = tmp_path / "elsewhere" / digit_paths["5"].name  # the same file name in another folder
    twin.parent.mkdir()
    twin.write_bytes(digit_paths["5"].read_bytes())
    not_image = tmp_path / "notes.txt"
    not_image.write_text("hello")
    code = cli.dispatch(parser().parse_args(["predict", str(digit_paths["5"]), str(twin), str(not_image), "--grpc",
                                             server.grpc_target, "--json", "--explain", str(tmp_path / "why")]))
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 1  # the text file could not be predicted (nor explained)
    stem = digit_paths["5"].stem
    assert [r.get("explanation") for r in rows] == [str(tmp_path / "why" / f"{stem}.why.png"),
                                                    str(tmp_path / "why" / f"{stem}-2.why.png"), None]
    assert rows[0]["explained"] == rows[0]["top1"] and rows[2]["stage"] == "validate"


def test_explain_is_refused_with_a_tflite_file(tmp_path, digit_paths, capsys):
    code = cli.dispatch(parser().parse_args(["predict", str(digit_paths["1"]), "--tflite", str(tmp_path / "m.tflite"),
                                             "--explain", str(tmp_path / "why")]))
    assert code == 2 and "TFLite files have no `explain` signature" in capsys.readouterr().err


def test_overlay_blends_the_colour_map_over_the_image():
    image = np.full((20, 40, 3), 128, np.uint8)
    heatmap = np.zeros((8, 8), np.float32)
    heatmap[:, :4] = 1.0  # evidence on the left half
    pixels = _pixels(io.BytesIO(overlay_png(encode(image, "PNG"), heatmap)))
    hot, cold = (np.array(colormaps["jet"](v)[:3]) * 255 for v in (1.0, 0.0))
    assert np.allclose(pixels[10, 2], (1 - OVERLAY_ALPHA) * 128 + OVERLAY_ALPHA * hot, atol=1)
    assert np.allclose(pixels[10, 37], (1 - OVERLAY_ALPHA) * 128 + OVERLAY_ALPHA * cold, atol=1)
    assert pixels[:, :15, 0].mean() > pixels[:, 25:, 0].mean() + 50  # red where the evidence is


def test_multilabel_explanation_is_the_maximum_of_the_predicted_labels_maps():
    maps = np.zeros((2, 3, 4, 4), np.float32)
    maps[:, 0, 0, 0], maps[:, 1, 3, 3], maps[:, 2, 1, 1] = 0.9, 0.7, 0.5
    top = np.full((2, 4, 4), 0.25, np.float32)
    found = explanations({"heatmap": top, "explained_class": [b"cat", b"dog"], "label_heatmaps": maps,
                          "predicted_labels": [[1, 1, 0], [0, 0, 0]],
                          "classes": [[b"cat", b"dog", b"owl"]] * 2})
    assert found[0].explained == "cat, dog"
    assert found[0].heatmap[0, 0] == pytest.approx(0.9) and found[0].heatmap[3, 3] == pytest.approx(0.7)
    assert found[0].heatmap[1, 1] == 0.0  # owl is not predicted: its map is left out
    assert found[1].explained == "dog" and np.array_equal(found[1].heatmap, top[1])  # none predicted: the top map
