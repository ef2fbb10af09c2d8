"""TFLite variants beside the SavedModel (components/trainer/tflite_export.py, components/tflite_variants.py): the
same top-1 as the SavedModel on the same images for every task, the figures in tflite.json, the Pusher's gate."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf

from components import tflite_variants
from components.trainer import tflite_export
from tests.tflite_helpers import trained_variants


@pytest.mark.parametrize("task", ["multiclass", "binary", "multilabel"])
def test_variants_give_the_saved_models_top1_on_the_same_images(tmp_path, request, task):
    # multiclass: all three variants (the session's model, shared with the predict tests); binary and multilabel,
    # whose heads differ, with fewer variants and epochs (test time); binary with test-time mirror averaging inside
    built = request.getfixturevalue("tflite_model") if task == "multiclass" else \
        trained_variants(tmp_path, task, epochs=8, variants=("float32",) if task == "binary" else ("float32", "int8"),
                         **({"train.tta_flip": "true"} if task == "binary" else {}))
    folder = tflite_variants.folder(str(built["export_dir"]))
    report = json.loads(open(f"{folder}/{tflite_variants.REPORT}").read())
    assert report == built["report"] and report["task"] == task
    assert open(f"{folder}/{tflite_variants.LABELS}").read().splitlines() == built["names"]
    assert report["eval"] == {"split": "eval", "images": 24, "max_images": 200}
    assert built["config"].tta_flip == (task == "binary")
    assert report["input"]["shape"] == [1, 16, 16, 3]
    assert report["saved_model"]["accuracy"] >= 0.8  # learnable data: the comparison below means something
    assert report["saved_model"]["parameters"] == built["parameters"] > 0
    timed = [v for v in report["variants"].values() if "error" not in v]  # what the TFLite step costs the Trainer
    assert report["seconds"] >= sum(v["convert_seconds"] + v["measure_seconds"] for v in timed) > 0

    images = [row["image"][0] for row in built["eval_rows"]]  # 20 px PNGs: decoded and resized to 16 px
    serve = tf.saved_model.load(str(built["export_dir"])).signatures["serving_default"]
    saved = serve(images=tf.constant(images))
    pixels = tflite_export.pixels(images, 16)
    for variant in report["variants"]:
        figures = report["variants"][variant]
        path = f"{folder}/{tflite_variants.model_file(variant)}"
        assert figures["size_mb"] == round(len(open(path, "rb").read()) / 2**20, 4)
        assert figures["cpu_latency_ms"] > 0 and figures["accuracy"] is not None
        runner = tflite_export.TFLiteModel(path)
        outputs = [runner(image) for image in pixels]
        probabilities = np.stack([out["probabilities"] for out in outputs])
        if variant != "int8":  # float variants: the same model up to rounding
            assert np.array_equal(probabilities.argmax(-1), saved["probabilities"].numpy().argmax(-1)), variant
            assert np.abs(probabilities - saved["probabilities"].numpy()).max() < 0.05, variant
            assert figures["accuracy"] == report["saved_model"]["accuracy"], variant
        else:  # calibrated integers: close, and the report says how close
            assert figures["top1_agreement_with_saved_model"] >= 0.8
        if task == "multilabel":  # the SavedModel's contract: a label set at 0.5
            hot = np.stack([out["predicted_labels"] for out in outputs])
            assert np.array_equal(hot, (probabilities >= 0.5).astype(np.int64))
            if variant != "int8":
                assert np.array_equal(hot, saved["predicted_labels"].numpy())
    if "int8" in report["variants"]:
        assert report["variants"]["int8"]["size_mb"] < report["variants"]["float32"]["size_mb"]
    assert len(report["variants"]) == {"multiclass": 3, "binary": 1, "multilabel": 2}[task]


def test_gate_withholds_a_variant_over_the_drop_and_says_why():
    report = {"saved_model": {"accuracy": 0.9}, "eval": {"images": 50},
              "variants": {"float32": {"accuracy": 0.9}, "float16": {"accuracy": 0.89},
                           "int8": {"accuracy": 0.8}}}
    result = tflite_variants.gate(report, 0.02)
    assert result.shipped == ("float32", "float16")
    (withheld,) = result.withheld
    assert (withheld["variant"], withheld["accuracy"], withheld["saved_model_accuracy"], withheld["max_drop"]) == \
        ("int8", 0.8, 0.9, 0.02)
    assert "int8: accuracy 0.8000 vs the SavedModel's 0.9000 on 50 eval images" in result.describe()
    assert "eval.max_tflite_accuracy_drop 0.02" in result.describe()
    assert result.deny_patterns() == [r"/model_int8\.tflite$"]
    assert tflite_variants.gate(report, 0.1).shipped == ("float32", "float16", "int8")
    failed = tflite_variants.gate({**report, "variants": {"int8": {"error": "conversion failed: no kernel"}}}, 0.5)
    assert failed.shipped == () and "int8: conversion failed: no kernel" in failed.describe()
    assert "no TFLite variants" in tflite_variants.gate(None, 0.02).describe()


def test_the_eval_split_is_measured_even_when_the_trainer_validates_on_val():
    assert tflite_export.evaluation_files(["/ex/1/Split-val/*"]) == (["/ex/1/Split-eval/*"], "eval")
    assert tflite_export.evaluation_files(["/ex/1/Split-eval/*"]) == (["/ex/1/Split-eval/*"], "eval")


def test_eval_and_calibration_images_are_spread_over_the_split(tmp_path):
    path = str(tmp_path / "split.gz")
    with tf.io.TFRecordWriter(path, options="GZIP") as writer:
        for index in range(10):  # as ingestion writes them: often class by class
            writer.write(f"record {index}".encode())
    assert tflite_export.read_examples([path], 3) == [b"record 0", b"record 4", b"record 8"]
    assert len(tflite_export.read_examples([path], 50)) == 10
    assert tflite_export.read_examples([str(tmp_path / "none-*")], 5) == []
