"""Tests for components.example_gen.sources: layout detection, listing, CSV manifests."""

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


@pytest.mark.parametrize("sep", [",", ";", "\t"])
def test_manifest_delimiters_and_header(tmp_path, sep):
    _touch(tmp_path / "img" / "1.png")
    _touch(tmp_path / "img" / "2.png")
    text = f"label{sep}path\nbart{sep}img/1.png\nlisa{sep}img/2.png\nlisa{sep}img/missing.png\n{sep}img/1.png\n"
    _touch(tmp_path / "m.csv", text.encode())
    found, rejected = sources.list_csv_sources(str(tmp_path), "m.csv", "all")
    assert [(s.relative_path, s.label) for s in found] == [("img/1.png", "bart"), ("img/2.png", "lisa")]
    assert [r.reason for r in rejected] == ["m.csv:4: file not found", "m.csv:5: empty label"]


def test_manifest_without_header_and_bad_row(tmp_path):
    rows = sources.parse_manifest("a.png,x\nb.png,y\n", "m.csv")
    assert rows == [(1, "a.png", "x"), (2, "b.png", "y")]
    with pytest.raises(sources.DataLayoutError, match="m.csv, line 2"):
        sources.parse_manifest("a.png,x\nonlyone\n", "m.csv")
    with pytest.raises(sources.DataLayoutError, match="empty"):
        sources.parse_manifest("\n\n", "m.csv")


def test_manifest_lists_each_file_once(tmp_path):
    _touch(tmp_path / "img" / "1.png")
    _touch(tmp_path / "m.csv", b"img/1.png,cat\n./img/1.png,dog\n")
    found, rejected = sources.list_csv_sources(str(tmp_path), "m.csv", "all")
    assert [(s.relative_path, s.label) for s in found] == [("img/1.png", "cat")]
    assert [(r.relative_path, r.reason) for r in rejected] == [
        ("./img/1.png", "m.csv:2: file already listed on line 1")]


def test_multilabel_cells(tmp_path):
    assert sources.split_labels(" eyeglasses | smiling |smiling ", multilabel=True) == ("eyeglasses", "smiling")
    assert sources.split_labels("", multilabel=True) == ()
    assert sources.split_labels("a|b", multilabel=False) == ("a|b",)  # a folder name is never split
    for cell in ("a||b", "a|", "| a"):
        with pytest.raises(ValueError, match="empty label between '\\|' separators"):
            sources.split_labels(cell, multilabel=True)
    assert sources.class_keys("a||b", multilabel=True) == ("a", "b")
    assert sources.class_keys("", multilabel=True) == (sources.NO_LABEL,)
    assert sources.class_keys("", multilabel=False) == (sources.NO_LABEL,)
    for i in range(3):
        _touch(tmp_path / f"{i}.png")
    _touch(tmp_path / "m.csv", b"path,label\n0.png,smiling | eyeglasses\n1.png,\n2.png,hat||smiling\n")
    found, rejected = sources.list_csv_sources(str(tmp_path), "m.csv", "all", multilabel=True)
    assert [(s.relative_path, s.label) for s in found] == [("0.png", "eyeglasses|smiling"), ("1.png", "")]
    assert [r.reason for r in rejected] == ["m.csv:4: empty label between '|' separators in label cell 'hat||smiling'"]


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
