"""`visionline predict --tflite FILE` (serving/clients/tflite_predictor.py): the images decoded and resized as the
SavedModel does, the same output format and the same top-1 as the SavedModel, bad inputs reported by name."""

from __future__ import annotations

import argparse
import json
import shutil

from components import tflite_variants
from serving import cli
from serving.clients.files import predict_files
from serving.clients.predictors import SavedModelPredictor
from serving.clients.results import format_result


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="visionline")
    cli.register(parser.add_subparsers(dest="command", required=True))
    return parser


def _images(tmp_path, rows):
    paths = []
    for index, row in enumerate(rows[:6]):
        path = tmp_path / f"{index}.png"
        path.write_bytes(row["image"][0])
        paths.append(str(path))
    return paths


def test_predict_with_a_tflite_file_prints_what_the_saved_model_predicts(tflite_model, tmp_path, capsys):
    paths = _images(tmp_path, tflite_model["eval_rows"])
    not_image = tmp_path / "notes.txt"
    not_image.write_text("hello")
    folder = tflite_variants.folder(str(tflite_model["export_dir"]))
    model = f"{folder}/{tflite_variants.model_file('float16')}"
    code = cli.dispatch(_parser().parse_args(["predict", *paths, str(not_image), "--tflite", model, "--top-k", "2"]))
    out = capsys.readouterr().out
    assert code == 1  # the text file could not be predicted; it is listed with its reason
    saved = SavedModelPredictor(str(tflite_model["export_dir"]), top_k=2)
    expected = predict_files([*paths, str(not_image)], saved)
    blocks = out.strip().split("\n" + str(tmp_path))  # one block per file, in input order
    assert len(blocks) == 7
    for block, want in zip(blocks, expected, strict=True):
        if want.prediction is None:
            assert block.endswith("notes.txt\n  error (validate): not an image (format not recognised)")
            continue
        got = block.splitlines()
        wanted = format_result(want).splitlines()
        assert len(got) == len(wanted) == 3  # path, then the top-2 classes with probability bars
        assert got[1].split()[0] == wanted[1].split()[0] in tflite_model["names"]  # same top-1 class name

    code = cli.dispatch(_parser().parse_args(["predict", paths[0], "--tflite", model, "--json"]))
    (row,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 0 and row["top1"] == expected[0].prediction.label and len(row["top_k"]) == 3


def test_predict_tflite_without_labels_or_with_a_bad_file_says_so(tflite_model, tmp_path, capsys):
    folder = tflite_variants.folder(str(tflite_model["export_dir"]))
    alone = tmp_path / "alone.tflite"
    shutil.copy(f"{folder}/{tflite_variants.model_file('int8')}", alone)
    (path,) = _images(tmp_path, tflite_model["eval_rows"][:1])
    assert cli.dispatch(_parser().parse_args(["predict", path, "--tflite", str(alone), "--top-k", "1"])) == 0
    captured = capsys.readouterr()
    assert f"no labels.txt beside {alone}: classes are shown as indices" in captured.err
    assert captured.out.splitlines()[1].split()[0] in {"0", "1", "2"}
    broken = tmp_path / "broken.tflite"
    broken.write_bytes(b"not a flatbuffer")
    assert cli.dispatch(_parser().parse_args(["predict", path, "--tflite", str(broken)])) == 2
    assert f"{broken}: cannot load as a visionline TFLite model" in capsys.readouterr().err
    assert cli.dispatch(_parser().parse_args(["predict", path, "--tflite", str(tmp_path / "none.tflite")])) == 2
    assert "none.tflite: no such TFLite file" in capsys.readouterr().err
