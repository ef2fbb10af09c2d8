"""Tests for components.example_gen.sources: layout detection, folder listing, label rules (CSV manifests:
test_manifest.py)."""

from __future__ import annotations

import os

import pytest

from components.example_gen import sources


def _touch(path, data=b"x"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_class_folders_hash_split(tmp_path):
    _touch(tmp_path / "cat" / "a.png")
    _touch(tmp_path / "dog" / "b.png")
    layout = sources.detect_layout(str(tmp_path))
    assert layout.format == "folders" and not layout.presplit
    assert layout.split_patterns == {"all": "*/*"}


def test_presplit_train_test_trees(tmp_path):
    for split in ("train", "test"):
        _touch(tmp_path / split / "homer_simpson" / "1.jpg")
    layout = sources.detect_layout(str(tmp_path))
    assert layout.presplit
    assert layout.split_patterns == {"train": "train/*/*", "eval": "test/*/*"}


def test_train_without_test_is_an_error(tmp_path):
    _touch(tmp_path / "train" / "a" / "1.png")
    with pytest.raises(sources.DataLayoutError, match="no matching test folder"):
        sources.detect_layout(str(tmp_path))


def test_missing_root_and_empty_root_are_named(tmp_path):
    with pytest.raises(sources.DataLayoutError, match=str(tmp_path / "nope")):
        sources.detect_layout(str(tmp_path / "nope"))
    with pytest.raises(sources.DataLayoutError, match="no class folders"):
        sources.detect_layout(str(tmp_path))


def test_csv_manifest_as_file_or_folder(tmp_path):
    manifest = _touch(tmp_path / "labels.csv", b"path,label\n")
    layout = sources.detect_layout(str(manifest))
    assert (layout.format, layout.input_base, layout.split_patterns) == ("csv", str(tmp_path), {"all": "labels.csv"})
    assert sources.detect_layout(str(tmp_path), "csv").split_patterns == {"all": "labels.csv"}


def test_tfrecords_are_detected(tmp_path):
    _touch(tmp_path / "train" / "data.tfrecord")
    _touch(tmp_path / "test" / "data.tfrecord")
    layout = sources.detect_layout(str(tmp_path))
    assert layout.format == "tfrecord"
    assert layout.split_patterns == {"train": "train/*", "eval": "test/*"}


def test_folder_listing_labels_by_class_and_rejects_the_rest(tmp_path):
    _touch(tmp_path / "cat" / "a.png")
    _touch(tmp_path / "cat with space" / "ü.png")
    (tmp_path / "cat" / "nested").mkdir()
    _touch(tmp_path / "README.txt")
    outside = _touch(tmp_path.parent / f"{tmp_path.name}-outside.png")
    os.symlink(outside, tmp_path / "cat" / "link.png")
    found, rejected = sources.list_folder_sources(str(tmp_path), "*/*", "all")
    assert sorted((s.relative_path, s.label) for s in found) == [
        ("cat with space/ü.png", "cat with space"), ("cat/a.png", "cat")
    ]
    reasons = {r.relative_path: r.reason for r in rejected}
    assert reasons["cat/nested"].startswith("nested folder")
    assert reasons["cat/link.png"].startswith("symlink points outside")
    assert reasons["README.txt"].startswith("not inside a class folder")


def test_multilabel_cells():
    assert sources.split_labels(" eyeglasses | smiling |smiling ", multilabel=True) == ("eyeglasses", "smiling")
    assert sources.split_labels("", multilabel=True) == ()
    assert sources.split_labels("a|b", multilabel=False) == ("a|b",)  # a folder name is never split
    for cell in ("a||b", "a|", "| a"):
        with pytest.raises(ValueError, match="empty label between '\\|' separators"):
            sources.split_labels(cell, multilabel=True)
    assert sources.class_keys("a||b", multilabel=True) == ("a", "b")
    assert sources.class_keys("", multilabel=True) == (sources.NO_LABEL,)
    assert sources.class_keys("", multilabel=False) == (sources.NO_LABEL,)


def test_two_classes_are_required():
    sources.require_two_classes(["a", "b", "a"], "data")
    with pytest.raises(sources.DataLayoutError, match="data has only one class, 'a': training needs at least two"):
        sources.require_two_classes(["a", "a", ""], "data")
    with pytest.raises(sources.DataLayoutError, match="no distinct labels at all"):
        sources.require_two_classes([sources.NO_LABEL], "data", multilabel=True)


def test_empty_class_folders_are_found(tmp_path):
    _touch(tmp_path / "train" / "cat" / "1.png")
    (tmp_path / "train" / "dog").mkdir()
    (tmp_path / "test" / "dog").mkdir(parents=True)
    assert sources.empty_class_folders(str(tmp_path), "train/*/*") == ["train/dog"]
    assert sources.empty_class_folders(str(tmp_path), "*/*") == []


def test_tfx_cifar10_layout_with_labels_txt_is_detected(tmp_path):
    # TFX's tfx/examples/cifar10/data: labels.txt beside the train/ and test/ TFRecord folders
    _touch(tmp_path / "labels.txt", b"airplane\nautomobile\n")
    _touch(tmp_path / "train" / "cifar10_train.tfrecord")
    _touch(tmp_path / "test" / "cifar10_test.tfrecord")
    layout = sources.detect_layout(str(tmp_path))
    assert (layout.format, layout.split_patterns) == ("tfrecord", {"train": "train/*", "eval": "test/*"})
    flat = tmp_path / "flat"
    _touch(flat / "labels.txt")
    _touch(flat / "cifar10-train.tfrecord-00000-of-00001")  # TFDS shard names
    assert sources.detect_layout(str(flat)).format == "tfrecord"


@pytest.mark.parametrize("extra", ["README.md", "train/notes.txt"])
def test_tfrecords_not_auto_detected_suggest_the_format(tmp_path, extra):
    _touch(tmp_path / "train" / "part-0.tfrecord")
    _touch(tmp_path / "test" / "part-0.tfrecord")
    _touch(tmp_path / extra)
    with pytest.raises(sources.DataLayoutError, match=r"TFRecord files \(e\.g\. test/part-0\.tfrecord\).*"
                                                      r"set data\.format=tfrecord"):
        sources.detect_layout(str(tmp_path))
    assert sources.detect_layout(str(tmp_path), "tfrecord").format == "tfrecord"


def test_train_val_test_trees_give_three_splits(tmp_path):
    for split in ("train", "val", "test"):
        _touch(tmp_path / split / "cat" / "1.png")
    layout = sources.detect_layout(str(tmp_path))
    assert layout.split_patterns == {"train": "train/*/*", "val": "val/*/*", "eval": "test/*/*"}


@pytest.mark.parametrize(("folders", "evaluated"), [(("training", "validation"), "validation"),
                                                    (("train", "valid"), "valid"), (("train", "eval"), "eval")])
def test_two_way_roots_keep_their_second_folder_as_eval(tmp_path, folders, evaluated):
    for split in folders:
        _touch(tmp_path / split / "cat" / "1.png")
    assert sources.detect_layout(str(tmp_path)).split_patterns == {"train": f"{folders[0]}/*/*",
                                                                  "eval": f"{evaluated}/*/*"}


def test_two_folders_for_one_split_are_an_error(tmp_path):
    for split in ("train", "test", "eval"):
        _touch(tmp_path / split / "cat" / "1.png")
    with pytest.raises(sources.DataLayoutError, match="2 test folders \\('eval', 'test'\\): keep one"):
        sources.detect_layout(str(tmp_path))


def test_val_without_train_is_an_error(tmp_path):
    _touch(tmp_path / "val" / "a" / "1.png")
    with pytest.raises(sources.DataLayoutError, match="has a 'val' folder but no matching train folder"):
        sources.detect_layout(str(tmp_path))


def test_folders_no_split_reads_are_named(tmp_path):
    for split in ("train", "test", "extra", "unlabelled", ".git"):
        _touch(tmp_path / split / "cat" / "1.png")
    _touch(tmp_path / "README.md")
    layout = sources.detect_layout(str(tmp_path))
    assert sources.unused_folders(layout.input_base, layout.split_patterns.values()) == ["extra", "unlabelled"]
    hash_split = tmp_path / "flat"
    _touch(hash_split / "cat" / "1.png")
    assert sources.unused_folders(str(hash_split), ["*/*"]) == []  # every folder is a class
    assert sources.unused_folders(str(tmp_path), ["labels.csv"]) == []  # a manifest names its own files
