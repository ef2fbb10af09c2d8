"""Tests for TFRecord input through ImageExampleGen (components/example_gen/records.py and the executor's TFRecord
branch): real Beam runs over small TFRecord files written here — every record parsed, decode-checked, quarantined
by `file#index`, counted per split and class, checked for train/eval leakage, integer labels named."""

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
from components.example_gen import accounting, records, sources
from components.example_gen.component import ImageExampleGen
from components.example_gen.executor import Executor
from components.example_gen.options import ingest_custom_config
from pipeline.pipeline import example_gen_configs
from tests.conftest import encode
from tests.image_files import asymmetric, oriented_jpeg, upright_pixels

HTML = b"<!DOCTYPE html><html><body>404 Not Found</body></html>"
NAMES = ("airplane", "automobile", "bird")


def _example(image: bytes | None, label: int | str | None, image_key: str = "image_raw") -> bytes:
    feature = {}
    if image is not None:
        feature[image_key] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[image]))
    if isinstance(label, int):
        feature["label"] = tf.train.Feature(int64_list=tf.train.Int64List(value=[label]))
    elif isinstance(label, str):
        feature["label"] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[label.encode()]))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def _write_records(path, serialized: list[bytes], gzip: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path), options="GZIP" if gzip else None) as writer:
        for record in serialized:
            writer.write(record)


def _png(rng) -> bytes:
    return encode(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), "PNG")


def _run(root, tmp_path, image_feature="image_raw", label_feature="label", label_names=(), data_format="auto",
         train_fraction=0.8):
    """The real ImageExampleGen executor (Beam DirectRunner) on a TFRecord root, laid out as `create_pipeline` does."""
    layout = sources.detect_layout(str(root), data_format)
    assert layout.format == "tfrecord"
    input_config, output_config = example_gen_configs(layout, train_fraction)
    examples = standard_artifacts.Examples()
    examples.uri = str(tmp_path / "examples")
    custom_config = ingest_custom_config(layout.format, 40_000_000, image_feature=image_feature,
                                         label_feature=label_feature, label_names=label_names)
    Executor().Do({}, {"examples": [examples]}, {
        "input_base": layout.input_base,
        "input_config": proto_utils.proto_to_json(input_config),
        "output_config": proto_utils.proto_to_json(output_config or example_gen_pb2.Output()),
        "output_data_format": example_gen_pb2.FORMAT_TF_EXAMPLE,
        "output_file_format": example_gen_pb2.FORMAT_TFRECORDS_GZIP,
        "custom_config": proto_utils.proto_to_json(custom_config),
    })
    return examples


def _split_examples(examples, split):
    files = glob.glob(os.path.join(examples.uri, f"Split-{split}", "*"))
    return [tf.train.Example.FromString(r.numpy()) for r in tf.data.TFRecordDataset(files, compression_type="GZIP")]


def _report(examples, name=accounting.QUARANTINE_REPORT):
    with open(os.path.join(examples.uri, name), newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _summary(examples):
    with open(os.path.join(examples.uri, accounting.INGEST_SUMMARY), encoding="utf-8") as handle:
        return json.load(handle)


@pytest.fixture(scope="module")
def cifar_root(tmp_path_factory):
    """TFX's CIFAR-10 example layout: `labels.txt` beside `train/` and `test/` TFRecord folders (int64 labels,
    PNG bytes under `image_raw`), with bad records mixed in and a test record leaking a train image."""
    rng = np.random.default_rng(3)
    root = tmp_path_factory.mktemp("cifar") / "data"
    root.mkdir()
    (root / "labels.txt").write_text("\n".join(NAMES) + "\n")
    images = {f"train/part-a.tfrecord#{i}": _png(rng) for i in range(6)}
    images.update({f"train/part-b.tfrecord.gz#{i}": _png(rng) for i in range(3)})
    images.update({f"test/part.tfrecord#{i}": _png(rng) for i in range(3)})
    images["test/part.tfrecord#3"] = images["train/part-a.tfrecord#0"]
    a = [_example(images[f"train/part-a.tfrecord#{i}"], i % 3) for i in range(6)]
    a += [_example(HTML, 1),  # #6: HTML bytes as the image
          b"<html>not a tf.train.Example at all</html>",  # #7: unparsable record
          _example(_png(rng), 7)]  # #8: integer label with no name
    _write_records(root / "train" / "part-a.tfrecord", a)
    b = [_example(images[f"train/part-b.tfrecord.gz#{i}"], i) for i in range(3)]
    b.append(_example(_png(rng), None))  # #3: no label feature
    _write_records(root / "train" / "part-b.tfrecord.gz", b, gzip=True)
    _write_records(root / "test" / "part.tfrecord",
                   [_example(images[f"test/part.tfrecord#{i}"], i % 3) for i in range(4)])
    return root, images


def test_cifar10_layout_every_record_checked_counted_and_named(cifar_root, tmp_path):
    root, images = cifar_root
    examples = _run(root, tmp_path)

    for split, prefix in (("train", "train/"), ("eval", "test/")):
        got = {}
        for example in _split_examples(examples, split):
            feature = example.features.feature
            got[feature[features.PATH].bytes_list.value[0].decode()] = (
                feature["image_raw"].bytes_list.value[0], feature["label"].bytes_list.value[0].decode())
        expected = {path: data for path, data in images.items() if path.startswith(prefix)}
        expected.pop("test/part.tfrecord#3", None)  # the leaked copy is removed from eval
        assert {path: data for path, (data, _) in got.items()} == expected  # original bytes, nothing lost
        index = {path: int(path.rsplit("#", 1)[1]) for path in got}
        assert {path: label for path, (_, label) in got.items()} == {p: NAMES[index[p] % 3] for p in got}

    reasons = {row["path"]: (row["label"], row["split"], row["reason"]) for row in _report(examples)}
    assert reasons == {
        "train/part-a.tfrecord#6": ("automobile", "train", "not an image (format not recognised)"),
        "train/part-a.tfrecord#7": ("", "train", "not a tf.train.Example (the record cannot be parsed)"),
        "train/part-a.tfrecord#8": ("7", "train", "label 7 has no name (labels.txt names labels 0 to 2)"),
        "train/part-b.tfrecord.gz#3": ("", "train", "no 'label' feature (the label)"),
        "test/part.tfrecord#3": ("airplane", "eval",
                                 "duplicate of train image train/part-a.tfrecord#0 (train/eval leakage)"),
    }
    assert [(r["eval_path"], r["train_path"]) for r in _report(examples, accounting.LEAKAGE_REPORT)] == [
        ("test/part.tfrecord#3", "train/part-a.tfrecord#0")]

    summary = _summary(examples)
    assert summary["accounting_ok"] is True
    assert (summary["files_seen"], summary["ingested"], summary["quarantined"]) == (17, 12, 5)
    train, evaluation = summary["per_split"]["train"], summary["per_split"]["eval"]
    assert (train["files_seen"], train["ingested"], train["quarantined"]) == (13, 9, 4)
    assert (evaluation["files_seen"], evaluation["ingested"], evaluation["quarantined"]) == (4, 3, 1)
    assert train["classes"]["automobile"] == {"seen": 4, "ingested": 3, "quarantined": 1, "excluded": 0}
    assert train["classes"]["7"] == {"seen": 1, "ingested": 0, "quarantined": 1, "excluded": 0}
    assert train["classes"][sources.NO_LABEL] == {"seen": 2, "ingested": 0, "quarantined": 2, "excluded": 0}
    assert evaluation["classes"]["airplane"] == {"seen": 2, "ingested": 1, "quarantined": 1, "excluded": 0}
    assert examples.get_int_custom_property("files_seen") == 17
    assert examples.get_int_custom_property("quarantined") == 5


def _name_in_split(prefix, split, output_config):
    """A record id `<prefix>#<i>` that TFX's base ExampleGen partition puts into `split`."""
    names = ["train", "eval"]
    buckets = list(np.cumsum([s.hash_buckets for s in output_config.split_config.splits]))
    for i in range(1000):
        example = tf.train.Example()
        example.features.feature[features.PATH].bytes_list.value.append(f"{prefix}#{i}".encode())
        if names[base_example_gen_executor._PartitionFn(example, 2, buckets, output_config.split_config)] == split:
            return i
    raise AssertionError("no index found")


def test_flat_records_hash_split_damaged_files_and_leakage(tmp_path, rng):
    root = tmp_path / "data"
    _, output_config = example_gen_configs(sources.Layout("tfrecord", str(root), {"all": "*"}), 0.8)
    train_i = _name_in_split("shard-0.tfrecord", "train", output_config)
    eval_i = _name_in_split("shard-0.tfrecord", "eval", output_config)
    images = [_png(rng) for _ in range(20)]
    images[eval_i] = images[train_i]  # byte-identical image in train and eval
    _write_records(root / "shard-0.tfrecord", [_example(data, "cat" if i % 2 else "dog", "image")
                                               for i, data in enumerate(images)])
    _write_records(root / "shard-1.tfrecord", [_example(_png(rng), "cat", "image") for _ in range(3)])
    whole = (root / "shard-1.tfrecord").read_bytes()
    (root / "shard-1.tfrecord").write_bytes(whole[:len(whole) - 20])  # cut inside record #2
    (root / "page.tfrecord").write_bytes(HTML)  # not TFRecord data at all
    examples = _run(root, tmp_path, image_feature="image", data_format="tfrecord")

    buckets = [80, 100]
    seen_paths = []
    for index, split in enumerate(("train", "eval")):
        for example in _split_examples(examples, split):  # exactly where TFX's own partition puts `path`
            assert base_example_gen_executor._PartitionFn(example, 2, buckets, output_config.split_config) == index
            seen_paths.append(example.features.feature[features.PATH].bytes_list.value[0].decode())
    reasons = {row["path"]: row["reason"] for row in _report(examples)}
    leaked = f"shard-0.tfrecord#{eval_i}"
    assert reasons[leaked] == f"duplicate of train image shard-0.tfrecord#{train_i} (train/eval leakage)"
    assert reasons["shard-1.tfrecord#2"].startswith("unreadable TFRecord data from record 2 on (truncated record")
    assert reasons["page.tfrecord#0"].startswith("unreadable TFRecord data from record 0 on (corrupted record")
    assert len(reasons) == 3
    assert sorted(seen_paths) == sorted({f"shard-0.tfrecord#{i}" for i in range(20)} - {leaked}
                                        | {"shard-1.tfrecord#0", "shard-1.tfrecord#1"})
    summary = _summary(examples)
    assert summary["accounting_ok"] and (summary["files_seen"], summary["ingested"]) == (24, 21)


def test_integer_labels_named_by_config_or_kept(tmp_path, rng):
    root = tmp_path / "data"
    for split, count in (("train", 6), ("test", 3)):
        _write_records(root / split / "d.tfrecord", [_example(_png(rng), i % 2) for i in range(count)])
    # no names: the int64 labels are kept as they are (Transform turns them into strings)
    plain = _run(root, tmp_path / "plain")
    assert {ex.features.feature["label"].int64_list.value[0] for ex in _split_examples(plain, "train")} == {0, 1}
    assert set(_summary(plain)["per_split"]["train"]["classes"]) == {"0", "1"}
    # data.label_names: the examples carry the names
    named = _run(root, tmp_path / "named", label_names=("no", "yes"))
    assert sorted(ex.features.feature["label"].bytes_list.value[0] for ex in _split_examples(named, "eval")) == [
        b"no", b"no", b"yes"]
    # a labels.txt that disagrees with data.label_names is refused, naming both
    (root / "labels.txt").write_text("cat\ndog\n")
    with pytest.raises(sources.DataLayoutError, match=r"data.label_names \['no', 'yes'\].*labels.txt"):
        _run(root, tmp_path / "conflict", label_names=("no", "yes"))


def test_label_names_file_errors_name_the_line(tmp_path):
    (tmp_path / "labels.txt").write_text("cat\n\ndog\n")
    with pytest.raises(sources.DataLayoutError, match=r"labels.txt, line 2: empty"):
        records.resolve_label_names(str(tmp_path), ())
    (tmp_path / "labels.txt").write_text("cat\ndog\ncat\n\n")
    with pytest.raises(sources.DataLayoutError, match=r"labels.txt, line 3: 'cat' already names label 0"):
        records.resolve_label_names(str(tmp_path), ())
    (tmp_path / "labels.txt").write_text("cat\ndog\n\n")
    assert records.resolve_label_names(str(tmp_path), ()) == ("cat", "dog")
    assert records.resolve_label_names(str(tmp_path / "none"), ["a", "b"]) == ("a", "b")


def test_label_names_are_refused_for_image_folders(tmp_path):
    with pytest.raises(sources.DataLayoutError, match="label_names name the integer labels of TFRecord data"):
        ImageExampleGen(input_base=str(tmp_path), input_config=example_gen_pb2.Input(), data_format="folders",
                        label_names=("a", "b"))


def _feature(**values):
    kinds = {bytes: lambda v: tf.train.Feature(bytes_list=tf.train.BytesList(value=v)),
             int: lambda v: tf.train.Feature(int64_list=tf.train.Int64List(value=v)),
             float: lambda v: tf.train.Feature(float_list=tf.train.FloatList(value=v))}
    return tf.train.Example(features=tf.train.Features(feature={
        key: kinds[type(v[0]) if v else bytes](v) for key, v in values.items()})).SerializeToString()


@pytest.mark.parametrize(("record", "label", "reason"), [
    (_feature(label=[1]), "b", "no 'image' feature (the image)"),
    (_feature(image=[1], label=[1]), "b", "'image' holds int64_list, not encoded image bytes"),
    (_feature(image=[b""], label=[0]), "a", "'image' is empty (0 bytes): no image"),
    (_feature(image=[b"x", b"y"], label=[0]), "a", "'image' holds 2 values: expected one encoded image"),
    (_feature(image=[HTML], label=[0.5]), "", "'label' holds floats: a label is bytes (a class name) or int64"),
    (_feature(image=[HTML], label=[0, 1]), "", "'label' holds 2 values: expected one label"),
    (_feature(image=[HTML], label=[]), "", "'label' holds 0 values: expected one label"),
    (_feature(image=[HTML], label=[b"  "]), "", "'label' is empty: no label"),
    (_feature(image=[HTML], label=[b"\xff"]), "", "'label' is not UTF-8 text"),
    (_feature(image=[HTML], label=[b"c"]), "c", "label 'c' is not one of the 2 label names (data.label_names)"),
    (_feature(image=[HTML], label=[-1]), "-1", "label -1 has no name (data.label_names names labels 0 to 1)"),
])
def test_each_bad_record_gets_its_own_reason(record, label, reason):
    spec = records.RecordSpec("image", "label", ("a", "b"), 40_000_000, "data.label_names")
    assert records.check_record(record, "r.tfrecord#4", spec) == records.RecordRead("r.tfrecord#4", label,
                                                                                     reason=reason)


def test_an_accepted_record_keeps_its_features_and_gets_a_name_and_a_path(rng):
    image = _png(rng)
    record = _feature(image=[image], label=[1], source_id=[b"cifar-17"])
    spec = records.RecordSpec("image", "label", ("a", "b"), 40_000_000)
    read = records.check_record(record, "train/r.tfrecord#4", spec)
    feature = tf.train.Example.FromString(read.example).features.feature
    assert (read.label, read.reason) == ("b", "")
    assert feature["image"].bytes_list.value == [image] and feature["label"].bytes_list.value == [b"b"]
    assert feature["source_id"].bytes_list.value == [b"cifar-17"]
    assert feature[features.PATH].bytes_list.value == [b"train/r.tfrecord#4"]


def test_listing_skips_labels_txt_and_rejects_folders(tmp_path):
    (tmp_path / "labels.txt").write_text("a\nb\n")
    (tmp_path / "a.tfrecord").write_bytes(b"")
    (tmp_path / "nested").mkdir()
    found, rejected = records.list_record_files(str(tmp_path), "*", "all")
    assert [f.relative_path for f in found] == ["a.tfrecord"]
    assert [(r.relative_path, r.reason) for r in rejected] == [
        ("nested", "nested folder: only the TFRecord files directly inside a split folder are read")]


def test_records_get_the_pixel_guards_of_image_files(rng):
    spec = records.RecordSpec("image", "label", ("a", "b"), 40_000_000, min_image_side=9)
    read = records.check_record(_feature(image=[_png(rng)], label=[0]), "r.tfrecord#0", spec)
    assert read.reason == "image too small: 8x8 px (under data.min_image_side=9 px on a side)"
    bomb = records.RecordSpec("image", "label", ("a", "b"), 63)
    read = records.check_record(_feature(image=[_png(rng)], label=[0]), "r.tfrecord#1", bomb)
    assert read.reason.startswith("image too large: 8x8 px exceeds")


def test_an_exif_rotated_record_is_stored_upright_with_its_size_and_format(rng):
    rotated = oriented_jpeg(asymmetric(), 6)  # stored 40 wide × 24 high, shown 24 × 40
    record = tf.train.Example(features=tf.train.Features(feature={
        "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[rotated])),
        "label": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"a"])),
        features.WIDTH: tf.train.Feature(int64_list=tf.train.Int64List(value=[40])),
        features.HEIGHT: tf.train.Feature(int64_list=tf.train.Int64List(value=[24])),
        features.FORMAT: tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"JPEG"]))})).SerializeToString()
    read = records.check_record(record, "r.tfrecord#0", records.RecordSpec("image", "label", (), 40_000_000))
    feature = tf.train.Example.FromString(read.example).features.feature
    stored = feature["image"].bytes_list.value[0]
    assert read.reason == "" and (read.conversion, read.note) == ("orientation",
                                                                  "EXIF orientation 6 applied, re-encoded as PNG")
    np.testing.assert_array_equal(tf.io.decode_image(stored, channels=3).numpy(), upright_pixels(rotated))
    assert (feature[features.WIDTH].int64_list.value, feature[features.HEIGHT].int64_list.value) == ([24], [40])
    assert feature[features.FORMAT].bytes_list.value == [b"PNG"]
    assert read.sha256 == hashlib.sha256(rotated).hexdigest()  # duplicates are found on the bytes as given


def test_tiff_records_are_transcoded_unless_data_transcode_is_off(rng):
    tiff = encode(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8), "TIFF")
    record = _feature(image=[tiff], label=[b"a"])
    read = records.check_record(record, "r.tfrecord#1", records.RecordSpec("image", "label", (), 40_000_000))
    assert read.conversion == "transcode" and read.reason == ""
    assert tf.train.Example.FromString(read.example).features.feature["image"].bytes_list.value[0].startswith(
        b"\x89PNG")
    kept = records.check_record(record, "r.tfrecord#1", records.RecordSpec("image", "label", (), 40_000_000,
                                                                          transcode=False))
    assert kept.reason == "format TIFF is not decodable by TensorFlow (supported: JPEG, PNG, GIF, BMP) " \
                          "(data.transcode=false: not transcoded to PNG)"


def test_converted_records_are_listed_like_converted_files(tmp_path, rng):
    root = tmp_path / "data"
    rotated = oriented_jpeg(asymmetric(), 8)
    _write_records(root / "shard.tfrecord", [_example(rotated, "cat", "image"), _example(_png(rng), "dog", "image"),
                                             _example(encode(asymmetric(seed=1), "TIFF"), "cat", "image")])
    examples = _run(root, tmp_path, image_feature="image", data_format="tfrecord")
    stored = {e.features.feature[features.PATH].bytes_list.value[0].decode(): e.features.feature["image"]
              .bytes_list.value[0] for split in ("train", "eval") for e in _split_examples(examples, split)}
    np.testing.assert_array_equal(tf.io.decode_image(stored["shard.tfrecord#0"], channels=3).numpy(),
                                  upright_pixels(rotated))
    listed = {row["path"]: row for row in _report(examples, accounting.CONVERTED_REPORT)}
    assert sorted(listed) == ["shard.tfrecord#0", "shard.tfrecord#2"]
    assert listed["shard.tfrecord#0"]["label"] == "cat" and "EXIF orientation 8" in str(listed["shard.tfrecord#0"])
