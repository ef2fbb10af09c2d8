"""Tests for the ImageExampleGen executor: real Beam runs over small folders and manifests — quarantine, hash
split, train/eval leakage, multilabel manifests. (Individual bad inputs: tests/components/test_bad_inputs.py.)"""

from __future__ import annotations

import csv
import glob
import hashlib
import json
import os

import numpy as np
import pytest
import tensorflow as tf
from tfx.components.example_gen import base_example_gen_executor
from tfx.proto import example_gen_pb2
from tfx.types import standard_artifacts
from tfx.utils import proto_utils

from components import features
from components.example_gen import accounting, sources
from components.example_gen import manifest as manifest_module
from components.example_gen.class_selection import ClassSelection, ClassSelectionError
from components.example_gen.component import ImageExampleGen
from components.example_gen.executor import Executor
from components.example_gen.options import ingest_custom_config, ingest_options
from pipeline.pipeline import example_gen_configs
from tests.conftest import encode


def _write(path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _run(root, tmp_path, data_format="folders", train_fraction=0.8, max_image_pixels=40_000_000,
         leakage="remove", multilabel=False, manifest=None, selection=None):
    """The real ImageExampleGen executor (Beam DirectRunner) on `root`, laid out as `create_pipeline` would."""
    layout = manifest_module.with_split_column(sources.detect_layout(str(root), data_format),
                                               manifest_module.ManifestOptions.from_dict(manifest), multilabel)
    input_config, output_config = example_gen_configs(layout, train_fraction)
    examples = standard_artifacts.Examples()
    examples.uri = str(tmp_path / "examples")
    custom_config = ingest_custom_config(layout.format, max_image_pixels, leakage=leakage, multilabel=multilabel,
                                         manifest=manifest, selection=selection)
    exec_properties = {
        "input_base": layout.input_base,
        "input_config": proto_utils.proto_to_json(input_config),
        "output_config": proto_utils.proto_to_json(output_config or example_gen_pb2.Output()),
        "output_data_format": example_gen_pb2.FORMAT_TF_EXAMPLE,
        "output_file_format": example_gen_pb2.FORMAT_TFRECORDS_GZIP,
        "custom_config": proto_utils.proto_to_json(custom_config),
    }
    Executor().Do({}, {"examples": [examples]}, exec_properties)
    return examples


def _records(examples, split):
    files = glob.glob(os.path.join(examples.uri, f"Split-{split}", "*"))
    return [tf.train.Example.FromString(record.numpy())
            for record in tf.data.TFRecordDataset(files, compression_type="GZIP")]


def _read_split(examples, split):
    out = []
    for example in _records(examples, split):
        feature = example.features.feature
        out.append((feature[features.PATH].bytes_list.value[0].decode(),
                    feature[features.LABEL].bytes_list.value[0].decode(),
                    feature[features.IMAGE].bytes_list.value[0]))
    return out


def _report(examples, name=accounting.QUARANTINE_REPORT):
    with open(os.path.join(examples.uri, name), newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _summary(examples):
    with open(os.path.join(examples.uri, accounting.INGEST_SUMMARY), encoding="utf-8") as handle:
        return json.load(handle)


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
    with open(os.path.join(examples.uri, accounting.INGEST_SUMMARY)) as handle:
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
                       encode(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), "PNG"))
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


# ---------------------------------------------------------------- hash split = TFX's partition; train/eval leakage


def _name_in_split(prefix, split, output_config, suffix=".png"):
    """A file name `<prefix><i><suffix>` that TFX's base ExampleGen partition puts into `split`."""
    names = ["train", "eval"]
    buckets = list(np.cumsum([s.hash_buckets for s in output_config.split_config.splits]))
    for i in range(1000):
        example = tf.train.Example()
        example.features.feature[features.PATH].bytes_list.value.append(f"{prefix}{i}{suffix}".encode())
        index = base_example_gen_executor._PartitionFn(example, len(buckets), buckets, output_config.split_config)
        if names[index] == split:
            return f"{prefix}{i}{suffix}"
    raise AssertionError("no name found")


@pytest.fixture(scope="module")
def leaky_folder(tmp_path_factory):
    """Two classes; `cat/<orig>` (train) has a byte-identical copy `cat/<copy>` that hashes into eval, and
    `dog/<twin>` duplicates another train image within the train split."""
    rng = np.random.default_rng(7)
    root = tmp_path_factory.mktemp("leaky") / "data"
    for label in ("cat", "dog"):
        for i in range(8):
            _write(root / label / f"{i}.png", encode(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), "PNG"))
    _, output_config = example_gen_configs(sources.detect_layout(str(root)), 0.8)
    orig = _name_in_split("cat/orig", "train", output_config)
    copy = _name_in_split("cat/copy", "eval", output_config)
    twin_of = _name_in_split("dog/", "train", output_config)  # one of dog/0.png … dog/7.png
    twin = _name_in_split("dog/twin", "train", output_config)
    original = encode(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), "PNG")
    _write(root / orig, original)
    _write(root / copy, original)
    _write(root / twin, (root / twin_of).read_bytes())
    return root, {"orig": orig, "copy": copy, "twin": twin, "sha256": hashlib.sha256(original).hexdigest()}


def test_hash_split_is_tfx_partition_and_leaked_eval_copies_are_removed(leaky_folder, tmp_path):
    root, names = leaky_folder
    examples = _run(root, tmp_path)
    _, output_config = example_gen_configs(sources.detect_layout(str(root)), 0.8)
    buckets = [80, 100]
    for index, split in enumerate(("train", "eval")):
        for example in _records(examples, split):  # exactly where TFX's own base executor would put it
            assert base_example_gen_executor._PartitionFn(example, 2, buckets, output_config.split_config) == index
    evaluation = {path for path, _, _ in _read_split(examples, "eval")}
    train = {path for path, _, _ in _read_split(examples, "train")}
    assert names["orig"] in train and names["twin"] in train and names["copy"] not in evaluation
    assert _report(examples, accounting.LEAKAGE_REPORT) == [
        {"eval_path": names["copy"], "train_path": names["orig"], "sha256": names["sha256"]}]
    assert _report(examples) == [{"path": names["copy"], "label": "cat", "split": "eval",
                                  "reason": f"duplicate of train image {names['orig']} (train/eval leakage)"}]
    summary = _summary(examples)
    assert summary["leakage"] == {"mode": "remove", "eval_files_duplicating_train": 1, "removed": 1,
                                  "report": os.path.join(examples.uri, accounting.LEAKAGE_REPORT)}
    assert summary["duplicates"]["within_split_extra_copies"] == {"train": 1, "eval": 0}  # not leakage, counted
    assert summary["quarantined_by_reason"] == {"duplicate of a train image (train/eval leakage)": 1}
    assert summary["per_split"]["eval"]["files_seen"] == len(evaluation) + 1
    assert examples.get_int_custom_property("train_eval_duplicates") == 1


def test_leakage_report_mode_keeps_the_eval_copy(leaky_folder, tmp_path):
    root, names = leaky_folder
    examples = _run(root, tmp_path, leakage="report")
    assert names["copy"] in {path for path, _, _ in _read_split(examples, "eval")}
    assert [row["eval_path"] for row in _report(examples, accounting.LEAKAGE_REPORT)] == [names["copy"]]
    assert _report(examples) == []
    summary = _summary(examples)
    assert summary["leakage"]["mode"] == "report" and summary["leakage"]["removed"] == 0
    assert summary["leakage"]["eval_files_duplicating_train"] == 1
    assert any("kept (data.leakage=report)" in w for w in summary["warnings"])


def test_presplit_leakage_across_train_and_test_trees(tmp_path, rng):
    root = tmp_path / "data"
    images = {}
    for split, count in (("train", 3), ("test", 2)):
        for label in ("homer", "marge"):
            for i in range(count):
                images[f"{split}/{label}/{i}.png"] = encode(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), "PNG")
    images["test/marge/again.png"] = images["train/marge/1.png"]
    for path, data in images.items():
        _write(root / path, data)
    examples = _run(root, tmp_path)
    assert "test/marge/again.png" not in {path for path, _, _ in _read_split(examples, "eval")}
    assert [(r["eval_path"], r["train_path"]) for r in _report(examples, accounting.LEAKAGE_REPORT)] == [
        ("test/marge/again.png", "train/marge/1.png")]
    assert _report(examples)[0]["reason"] == "duplicate of train image train/marge/1.png (train/eval leakage)"


def test_leakage_and_multilabel_options_reach_the_executor(digits_root, tmp_path):
    from pipeline.configs import ConfigError, PipelineConfig
    from pipeline.pipeline import create_pipeline

    config = PipelineConfig().override([f"data.root={digits_root}", f"work_dir={tmp_path}", "data.leakage=report"])
    component = next(c for c in create_pipeline(config).components if c.id == "ImageExampleGen")
    options = ingest_options(component.exec_properties)
    assert (options["leakage"], options["multilabel"]) == ("report", False)
    with pytest.raises(ConfigError, match="data.leakage must be one of"):
        PipelineConfig().override([f"data.root={digits_root}", "data.leakage=drop"]).validate()
    with pytest.raises(ConfigError, match="multilabel needs a CSV manifest"):
        PipelineConfig().override([f"data.root={digits_root}", "data.format=folders",
                                   "train.task=multilabel"]).validate()
    # format auto detects class folders: refused when the ExampleGen is built, before anything runs
    with pytest.raises(sources.DataLayoutError, match="multilabel needs a CSV manifest with labels separated by"):
        create_pipeline(PipelineConfig().override([f"data.root={digits_root}", f"work_dir={tmp_path}",
                                                   "train.task=multilabel"]))


# ---------------------------------------------------------------- multilabel CSV manifests

MULTILABEL_ROWS = [  # (label cell, expected labels or None = quarantined)
    ("smiling|eyeglasses", ["eyeglasses", "smiling"]),
    (" eyeglasses | smiling |smiling ", ["eyeglasses", "smiling"]),
    ("", []),
    ("hat", ["hat"]),
    ("smiling", ["smiling"]),
    ("eyeglasses|hat", ["eyeglasses", "hat"]),
    ("hat|smiling", ["hat", "smiling"]),
    ("smiling||hat", None),
]


def test_multilabel_manifest(tmp_path, rng):
    root = tmp_path / "faces"
    rows, expected = ["path,label"], {}
    for i in range(40):
        cell, labels = MULTILABEL_ROWS[i % len(MULTILABEL_ROWS)]
        path = f"img/{i}.png"
        _write(root / path, encode(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), "PNG"))
        rows.append(f"{path},{cell}")
        expected[path] = labels
    _write(root / "labels.csv", "\n".join(rows).encode())
    examples = _run(root / "labels.csv", tmp_path, data_format="auto", multilabel=True)

    got = {}
    ingested_per_label = {"train": {}, "eval": {}}
    for split in ("train", "eval"):
        for example in _records(examples, split):
            feature = example.features.feature
            labels = [v.decode() for v in feature[features.LABEL].bytes_list.value]
            got[feature[features.PATH].bytes_list.value[0].decode()] = labels
            for label in labels or [sources.NO_LABEL]:
                ingested_per_label[split][label] = ingested_per_label[split].get(label, 0) + 1
    assert got == {path: labels for path, labels in expected.items() if labels is not None}  # sorted, deduplicated
    report = _report(examples)
    assert {row["path"] for row in report} == {p for p, labels in expected.items() if labels is None}
    assert all(row["reason"].endswith("empty label between '|' separators in label cell 'smiling||hat'")
               for row in report)
    summary = _summary(examples)
    assert summary["multilabel"] is True and summary["accounting_ok"] is True
    for split, counts in summary["per_split"].items():
        # every label counted once per file that names it; the quarantined `smiling||hat` rows count for both
        assert {name: c["ingested"] for name, c in counts["classes"].items() if c["ingested"]} == \
            ingested_per_label[split]
        for name, c in counts["classes"].items():
            assert c["seen"] == c["ingested"] + c["quarantined"], (split, name)
        quarantined_here = sum(1 for row in report if row["split"] == split)
        assert counts["classes"].get("hat", {}).get("quarantined", 0) == quarantined_here


def test_multilabel_needs_two_distinct_labels_and_a_manifest(tmp_path, rng):
    root = tmp_path / "faces"
    rows = ["path,label"]
    for i in range(6):
        _write(root / f"{i}.png", encode(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), "PNG"))
        rows.append(f"{i}.png,{'smiling' if i % 2 else ''}")
    _write(root / "labels.csv", "\n".join(rows).encode())
    with pytest.raises(sources.DataLayoutError, match="only one class, 'smiling'.*at least two distinct labels"):
        _run(root / "labels.csv", tmp_path, data_format="auto", multilabel=True)
    with pytest.raises(sources.DataLayoutError, match="multilabel needs a CSV manifest"):
        ImageExampleGen(input_base=str(root), input_config=example_gen_pb2.Input(),
                        data_format="folders", multilabel=True)


# ---------------------------------------------------------------- attribute tables (CelebA's list_attr_celeba.txt)

ATTRIBUTES = ("Eyeglasses", "Smiling", "Wearing_Hat")


def test_attribute_table_is_ingested_as_multilabel_data(tmp_path, rng):
    """CelebA's shape: a count line, the attribute names, then `file v1 v2 v3` (1 / -1) separated by spaces. Each
    image's present attributes are its labels; a bad cell quarantines its row, naming file, line and column."""
    root = tmp_path / "celeba"
    lines, expected = [], {}
    for i in range(24):
        name = f"{i + 1:06d}.jpg"
        _write(root / name, encode(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), "JPEG"))
        values = [1 if (i >> bit) & 1 else -1 for bit in range(3)]
        lines.append(f"{name}  " + "  ".join(f"{v:2d}" for v in values))
        expected[name] = [a for a, v in zip(ATTRIBUTES, values) if v == 1]
    lines[5] = lines[5][:-2] + " 3"  # line 8 of the file: 000006.jpg's Wearing_Hat is 3
    text = "\n".join([str(len(lines)), " ".join(ATTRIBUTES), *lines]) + "\n"
    _write(root / "list_attr_celeba.txt", text.encode())
    examples = _run(root / "list_attr_celeba.txt", tmp_path, data_format="auto", multilabel=True)

    got = {}
    for split in ("train", "eval"):
        for example in _records(examples, split):
            feature = example.features.feature
            got[feature[features.PATH].bytes_list.value[0].decode()] = [
                v.decode() for v in feature[features.LABEL].bytes_list.value]
    del expected["000006.jpg"]
    assert got == expected
    assert [(row["path"], row["reason"]) for row in _report(examples)] == [
        ("000006.jpg", "list_attr_celeba.txt:8: attribute value not 1, -1 or 0: column 'Wearing_Hat' (index 3) "
                       "holds '3'")]
    summary = _summary(examples)
    assert summary["accounting_ok"] is True and summary["files_seen"] == 24 and summary["quarantined"] == 1
    assert summary["quarantined_by_reason"] == {"attribute value not 1, -1 or 0": 1}
    assert set(summary["per_split"]["train"]["classes"]) <= {*ATTRIBUTES, sources.NO_LABEL}


def test_manifest_options_flow_from_the_config_to_the_executor(tmp_path, rng):
    from pipeline.configs import ConfigError, PipelineConfig
    from pipeline.pipeline import create_pipeline

    root = tmp_path / "photos"
    rows = ["id;species;file"]
    for i in range(8):
        _write(root / "img" / f"{i}.png", encode(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), "PNG"))
        rows.append(f"{i};{'cat' if i % 2 else 'dog'};img/{i}.png")
    _write(root / "labels.csv", "\n".join(rows).encode())
    config = PipelineConfig().override([f"data.root={root / 'labels.csv'}", f"work_dir={tmp_path}",
                                        "data.path_column=file", "data.label_column=1"])
    component = next(c for c in create_pipeline(config).components if c.id == "ImageExampleGen")
    options = ingest_options(component.exec_properties)
    assert options["manifest"] == {"path_column": "file", "label_column": "1", "kind": "auto", "image_dir": "",
                                   "split_column": ""}
    examples = _run(root / "labels.csv", tmp_path, data_format="auto", manifest=options["manifest"])
    ingested = _read_split(examples, "train") + _read_split(examples, "eval")
    assert sorted((path, label) for path, label, _ in ingested) == [
        (f"img/{i}.png", "cat" if i % 2 else "dog") for i in range(8)]
    assert _report(examples) == []
    for bad, message in (("data.manifest_kind=table", "data.manifest_kind must be one of"),
                         ("data.path_column=-1", "data.path_column must be a header name or a 0-based column index"),
                         ("data.label_column=file", "data.label_column must be a different column"),
                         ("data.manifest_kind=attributes", "data.label_column must be empty with "
                                                           "data.manifest_kind=attributes")):
        with pytest.raises(ConfigError, match=message):
            config.override([bad]).validate()
    with pytest.raises(ConfigError, match="train.task must be multilabel with data.manifest_kind=attributes"):
        config.override(["data.manifest_kind=attributes", "data.label_column="]).validate()


def test_a_manifest_split_column_keeps_the_datasets_own_split_through_the_pipeline_config(tmp_path, rng):
    from pipeline.configs import ConfigError, PipelineConfig
    from pipeline.pipeline import create_pipeline

    root = tmp_path / "simpsons"
    rows = ["file,character,part"]
    parts = ["train"] * 6 + ["val"] * 2 + ["test"] * 3 + ["later"]
    for i, part in enumerate(parts):
        _write(root / "img" / f"{i}.png", encode(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), "PNG"))
        rows.append(f"img/{i}.png,{'bart' if i % 2 else 'lisa'},{part}")
    _write(root / "labels.csv", "\n".join(rows).encode())
    config = PipelineConfig().override([f"data.root={root / 'labels.csv'}", f"work_dir={tmp_path}",
                                        "data.split_column=part"])
    dag = create_pipeline(config)
    component = next(c for c in dag.components if c.id == "ImageExampleGen")
    options = ingest_options(component.exec_properties)
    assert options["manifest"]["split_column"] == "part"
    examples = _run(root / "labels.csv", tmp_path, data_format="auto", manifest=options["manifest"])
    assert {split: sorted(p for p, _, _ in _read_split(examples, split)) for split in ("train", "val", "eval")} == {
        "train": [f"img/{i}.png" for i in range(6)], "val": ["img/6.png", "img/7.png"],
        "eval": ["img/10.png", "img/8.png", "img/9.png"]}
    assert [(r["path"], r["split"], r["reason"]) for r in _report(examples)] == [
        ("img/11.png", "eval", "labels.csv:13: split 'later' is not train, val or test (data.split_column)")]
    summary = _summary(examples)
    assert summary["files_seen"] == len(parts) and summary["quarantined"] == 1  # every row accounted for once
    assert {split: counts["files_seen"] for split, counts in summary["per_split"].items()} == {
        "train": 6, "val": 2, "eval": 4}
    with pytest.raises(ConfigError, match="data.split_column must be a different column"):
        config.override(["data.split_column=file", "data.path_column=file"]).validate()


def test_train_val_test_root_gives_three_splits_and_names_unread_folders(tmp_path, rng, capsys):
    root = tmp_path / "data"
    images = {}
    for split, count in (("train", 3), ("val", 2), ("test", 2), ("extra", 1)):
        for label in ("homer", "marge"):
            for i in range(count):
                images[f"{split}/{label}/{i}.png"] = encode(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), "PNG")
    images["val/homer/again.png"] = images["train/homer/0.png"]  # leakage into the validation split
    images["val/lisa/1.png"] = encode(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), "PNG")  # no training images
    for path, data in images.items():
        _write(root / path, data)
    examples = _run(root, tmp_path)
    assert sorted(p for p, _, _ in _read_split(examples, "val")) == [f"val/{c}/{i}.png" for c in ("homer", "marge")
                                                                     for i in range(2)]
    assert all(p.startswith("test/") for p, _, _ in _read_split(examples, "eval"))
    assert len(_read_split(examples, "train")) == 6
    reasons = {row["path"]: (row["split"], row["reason"]) for row in _report(examples)}
    assert reasons == {"val/homer/again.png": ("val", "duplicate of train image train/homer/0.png (train/eval "
                                                      "leakage)"),
                       "val/lisa/1.png": ("val", "class 'lisa' has no training images")}
    summary = _summary(examples)
    assert list(summary["per_split"]) == ["train", "val", "eval"]
    assert summary["per_split"]["val"]["files_seen"] == 6 == summary["per_split"]["val"]["ingested"] + 2
    assert summary["unused_folders"] == ["extra"]
    unread = [w for w in summary["warnings"] if w.startswith("folder not read: 'extra/'")]
    assert unread == ["folder not read: 'extra/' (the data root is pre-split: only train/, val/, test/ are read; "
                      "move its images into one of them, or remove it)"]
    assert unread[0] in capsys.readouterr().out  # on the console as well


@pytest.fixture()
def scan_folders(tmp_path, rng):
    """The digitisation team's five folders, 4 images each, and a folder of blurry rejects."""
    root = tmp_path / "scans"
    for folder in ("portrait", "landscape", "document", "drawing", "map", "blurry"):
        for i in range(4):
            _write(root / folder / f"{i}.png", encode(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), "PNG"))
    _write(root / "blurry" / "broken.png", b"not an image")
    return root


def test_folders_are_merged_into_classes_and_excluded_ones_are_listed(scan_folders, tmp_path):
    selection = ClassSelection(exclude=("blurry",), class_map={"portrait": "photo", "landscape": "photo",
                                                               "document": "not_photo", "drawing": "not_photo",
                                                               "map": "not_photo"})
    examples = _run(scan_folders, tmp_path, selection=selection)
    ingested = _read_split(examples, "train") + _read_split(examples, "eval")
    labels = {path.split("/")[0]: label for path, label, _ in ingested}
    assert labels == {"portrait": "photo", "landscape": "photo", "document": "not_photo", "drawing": "not_photo",
                      "map": "not_photo"}
    excluded = _report(examples, accounting.EXCLUDED_REPORT)
    assert sorted(row["path"] for row in excluded) == ["blurry/0.png", "blurry/1.png", "blurry/2.png",
                                                       "blurry/3.png", "blurry/broken.png"]
    assert {row["reason"] for row in excluded} == {"class 'blurry' excluded by data.exclude_classes"}
    summary = _summary(examples)
    assert (summary["files_seen"], summary["ingested"], summary["quarantined"], summary["excluded"]) == (25, 20, 0, 5)
    assert summary["accounting_ok"] and examples.get_int_custom_property("excluded") == 5
    classes = {name: counts for split in summary["per_split"].values() for name, counts in split["classes"].items()}
    assert set(classes) == {"photo", "not_photo", "blurry"} and not classes["blurry"]["ingested"]
    assert not [w for w in summary["warnings"] if "blurry" in w]  # left out on purpose: no "no images" warning


def test_a_subset_of_classes_is_kept_and_unknown_names_are_config_errors(scan_folders, tmp_path):
    examples = _run(scan_folders, tmp_path, selection=ClassSelection(classes=("map", "drawing")))
    assert {label for _, label, _ in _read_split(examples, "train") + _read_split(examples, "eval")} == {
        "map", "drawing"}
    summary = _summary(examples)
    assert summary["excluded"] == 17 and summary["excluded_by_reason"]["class 'portrait' not in data.classes"] == 4
    assert summary["files_seen"] == summary["ingested"] + summary["quarantined"] + summary["excluded"]
    with pytest.raises(ClassSelectionError, match="config field data.classes names class 'maps', which data root "
                                                  ".* does not have \\(its classes: 'blurry', 'document'"):
        _run(scan_folders, tmp_path / "a", selection=ClassSelection(classes=("maps",)))
    with pytest.raises(ClassSelectionError, match="config field data.exclude_classes names class 'Blurry'"):
        _run(scan_folders, tmp_path / "b", selection=ClassSelection(exclude=("Blurry",)))
    with pytest.raises(ClassSelectionError, match="config field data.class_map names class 'mpa'"):
        _run(scan_folders, tmp_path / "c", selection=ClassSelection(class_map={"mpa": "not_photo"}))


def test_class_selection_on_a_csv_manifest_works_on_label_cells(tmp_path, rng):
    root = tmp_path / "photos"
    rows = ["path,label"]
    for i in range(12):
        label = ("cat", "dog", "bird")[i % 3]
        _write(root / "img" / f"{i}.png", encode(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), "PNG"))
        rows.append(f"img/{i}.png,{label}")
    rows.append("img/missing.png,bird")  # a listing reject of an excluded class: excluded, not quarantined
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    examples = _run(root / "labels.csv", tmp_path, data_format="csv",
                    selection=ClassSelection(exclude=("bird",), class_map={"cat": "pet"}, classes=("pet", "dog")))
    ingested = _read_split(examples, "train") + _read_split(examples, "eval")
    assert len(ingested) == 8 and {label for _, label, _ in ingested} == {"pet", "dog"}
    summary = _summary(examples)
    assert (summary["files_seen"], summary["excluded"], summary["quarantined"]) == (13, 5, 0)
