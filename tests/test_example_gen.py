"""Tests for the ImageExampleGen executor: a real Beam run over small folders with bad files in them."""

from __future__ import annotations

import csv
import glob
import json
import os

import numpy as np
import pytest
import tensorflow as tf
from tfx.proto import example_gen_pb2
from tfx.types import standard_artifacts
from tfx.utils import proto_utils

from components import features
from components.ingest import example_gen, sources
from pipeline.pipeline import example_gen_configs
from tests.conftest import encode


def _write(path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _run(root, tmp_path, data_format="folders", train_fraction=0.8):
    layout = sources.detect_layout(str(root), data_format)
    input_config, output_config = example_gen_configs(layout, train_fraction)
    examples = standard_artifacts.Examples()
    examples.uri = str(tmp_path / "examples")
    exec_properties = {
        "input_base": layout.input_base,
        "input_config": proto_utils.proto_to_json(input_config),
        "output_config": proto_utils.proto_to_json(output_config or example_gen_pb2.Output()),
        "output_data_format": example_gen_pb2.FORMAT_TF_EXAMPLE,
        "output_file_format": example_gen_pb2.FORMAT_TFRECORDS_GZIP,
        "custom_config": proto_utils.proto_to_json(example_gen.ingest_custom_config(layout.format, 40_000_000)),
    }
    example_gen.Executor().Do({}, {"examples": [examples]}, exec_properties)
    return examples


def _read_split(examples, split):
    files = glob.glob(os.path.join(examples.uri, f"Split-{split}", "*"))
    out = []
    for record in tf.data.TFRecordDataset(files, compression_type="GZIP"):
        feature = tf.train.Example.FromString(record.numpy()).features.feature
        out.append((feature[features.PATH].bytes_list.value[0].decode(),
                    feature[features.LABEL].bytes_list.value[0].decode(),
                    feature[features.IMAGE].bytes_list.value[0]))
    return out


def _report(examples):
    with open(os.path.join(examples.uri, example_gen.QUARANTINE_REPORT), newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture()
def messy_folder(tmp_path, rng):
    root = tmp_path / "data"
    good = {}
    for label in ("bart", "lisa simpson"):
        for i in range(6):
            data = encode(rng.integers(0, 256, (10, 10, 3), dtype=np.uint8), "PNG")
            good[f"{label}/{i}.png"] = data
            _write(root / label / f"{i}.png", data)
    truncated = encode(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8), "JPEG")
    _write(root / "bart" / "truncated.jpg", truncated[:300])
    _write(root / "bart" / "empty.png", b"")
    _write(root / "lisa simpson" / "notes.jpg", b"not an image at all")
    _write(root / "stray.png", good["bart/0.png"])
    return root, good


def test_folders_are_ingested_and_bad_files_quarantined(messy_folder, tmp_path):
    root, good = messy_folder
    examples = _run(root, tmp_path)
    train, evaluation = _read_split(examples, "train"), _read_split(examples, "eval")
    ingested = {path: data for path, _, data in train + evaluation}
    assert ingested == good  # original bytes, nothing re-encoded, nothing lost
    assert {label for _, label, _ in train + evaluation} == {"bart", "lisa simpson"}
    assert evaluation and train
    reasons = {row["path"]: row["reason"] for row in _report(examples)}
    assert set(reasons) == {"bart/truncated.jpg", "bart/empty.png", "lisa simpson/notes.jpg", "stray.png"}
    assert "corrupt or truncated" in reasons["bart/truncated.jpg"]
    assert reasons["bart/empty.png"] == "empty file (0 bytes)"
    assert reasons["lisa simpson/notes.jpg"].startswith("not an image")
    with open(os.path.join(examples.uri, example_gen.INGEST_SUMMARY)) as handle:
        summary = json.load(handle)
    # accounting invariant: every file seen is either ingested or quarantined
    assert summary["files_seen"] == len(good) + 4 == summary["ingested"] + summary["quarantined"]
    assert summary["ingested"] == len(ingested)
    assert examples.get_int_custom_property("quarantined") == 4


def test_hash_split_is_deterministic(messy_folder, tmp_path):
    root, _ = messy_folder
    first = _run(root, tmp_path / "a")
    second = _run(root, tmp_path / "b")
    assert sorted(p for p, _, _ in _read_split(first, "eval")) == sorted(p for p, _, _ in _read_split(second, "eval"))


def test_presplit_trees_keep_their_splits(tmp_path, rng):
    root = tmp_path / "simpsons"
    for split, count in (("train", 4), ("test", 2)):
        for label in ("homer", "marge"):
            for i in range(count):
                _write(root / split / label / f"{i}.png",
                       encode(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8), "PNG"))
    examples = _run(root, tmp_path)
    assert len(_read_split(examples, "train")) == 8
    evaluation = _read_split(examples, "eval")
    assert len(evaluation) == 4 and all(path.startswith("test/") for path, _, _ in evaluation)


def test_csv_manifest_with_semicolons(tmp_path, rng):
    root = tmp_path / "photos"
    rows = ["path;label"]
    for i in range(10):
        _write(root / "img" / f"{i}.jpg", encode(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), "JPEG"))
        rows.append(f"img/{i}.jpg;{'photo' if i % 2 else 'scan'}")
    rows.append("img/gone.jpg;photo")
    _write(root / "manifest.csv", "\n".join(rows).encode())
    examples = _run(root / "manifest.csv", tmp_path, data_format="auto")
    ingested = _read_split(examples, "train") + _read_split(examples, "eval")
    assert sorted(label for _, label, _ in ingested) == ["photo"] * 5 + ["scan"] * 5
    assert [row["reason"] for row in _report(examples)] == ["manifest.csv:12: file not found"]
