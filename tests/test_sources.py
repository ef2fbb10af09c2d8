"""Tests for components.ingest.sources: layout detection, listing, CSV manifests."""

from __future__ import annotations

import os

import pytest

from components.ingest import sources


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
