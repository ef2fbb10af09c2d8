"""Tests for components.example_gen.manifest: CSV manifests (delimiters, header detection on real files with and
without a header, path and label columns by name or index) and attribute tables (CelebA's list_attr_celeba.txt
shape and a CSV with one column per attribute) read as multilabel data, bad cells quarantined by file, line, column.
"""

from __future__ import annotations

import pytest

from components.example_gen import manifest, sources
from components.example_gen.manifest import ManifestOptions


def _touch(path, data=b"x"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _listed(root, text, multilabel=False, **options):
    _touch(root / "m.csv", text.encode())
    found, rejected = manifest.list_csv_sources(str(root), "m.csv", "all", multilabel, ManifestOptions(**options))
    return [(s.relative_path, s.label) for s in found], [(r.relative_path, r.label, r.reason) for r in rejected]


# ---------------------------------------------------------------- path,label manifests (moved from test_sources)

@pytest.mark.parametrize("sep", [",", ";", "\t"])
def test_manifest_delimiters_and_header(tmp_path, sep):
    _touch(tmp_path / "img" / "1.png")
    _touch(tmp_path / "img" / "2.png")
    text = f"label{sep}path\nbart{sep}img/1.png\nlisa{sep}img/2.png\nlisa{sep}img/missing.png\n{sep}img/1.png\n"
    _touch(tmp_path / "m.csv", text.encode())
    found, rejected = manifest.list_csv_sources(str(tmp_path), "m.csv", "all")
    assert [(s.relative_path, s.label) for s in found] == [("img/1.png", "bart"), ("img/2.png", "lisa")]
    assert [r.reason for r in rejected] == ["m.csv:4: file not found", "m.csv:5: empty label"]


def test_manifest_without_header_and_bad_row():
    parsed = manifest.parse_manifest("a.png,x\nb.png,y\n", "m.csv")
    assert [(r.line, r.path, r.label) for r in parsed.rows] == [(1, "a.png", "x"), (2, "b.png", "y")]
    assert parsed.header == [] and parsed.kind == "labels"
    with pytest.raises(sources.DataLayoutError, match="m.csv, line 2: expected 'path,label'"):
        manifest.parse_manifest("a.png,x\nonlyone\n", "m.csv")
    with pytest.raises(sources.DataLayoutError, match="empty"):
        manifest.parse_manifest("\n\n", "m.csv")


def test_manifest_lists_each_file_once(tmp_path):
    _touch(tmp_path / "img" / "1.png")
    found, rejected = _listed(tmp_path, "img/1.png,cat\n./img/1.png,dog\n")
    assert found == [("img/1.png", "cat")]
    assert [(path, reason) for path, _, reason in rejected] == [
        ("./img/1.png", "m.csv:2: file already listed on line 1")]


def test_multilabel_label_cells(tmp_path):
    for i in range(3):
        _touch(tmp_path / f"{i}.png")
    found, rejected = _listed(tmp_path, "path,label\n0.png,smiling | eyeglasses\n1.png,\n2.png,hat||smiling\n",
                              multilabel=True)
    assert found == [("0.png", "eyeglasses|smiling"), ("1.png", "")]
    assert [reason for *_, reason in rejected] == [
        "m.csv:4: empty label between '|' separators in label cell 'hat||smiling'"]


# ---------------------------------------------------------------- header detection on real files

def _images(root, *names):
    for name in names:
        _touch(root / name)


@pytest.mark.parametrize("text, header", [
    ("pathname;label\nimg/1.png;cat\nimg/2.png;dog\n", True),  # the header: was read as a data row
    ("file location,species\nimg/1.png,cat\nimg/2.png,dog\n", True),  # names nobody could guess
    ("Image Path\tClass\nimg/1.png\tcat\nimg/2.png\tdog\n", True),
    ("img/1.png,cat\nimg/2.png,dog\n", False),
    ("img/1.png;label\nimg/2.png;path\n", False),  # data rows whose labels happen to be column names
    ("path,label\nimg/1.png,cat\nimg/2.png,dog\n", True),
])
def test_header_is_detected_from_which_cells_name_existing_files(tmp_path, text, header):
    _images(tmp_path, "img/1.png", "img/2.png")
    parsed = manifest.parse_manifest(text, "m.csv", exists=lambda cell: (tmp_path / cell).is_file())
    assert bool(parsed.header) is header
    found, rejected = _listed(tmp_path, text)
    assert rejected == []
    assert [path for path, _ in found] == ["img/1.png", "img/2.png"]


@pytest.mark.parametrize("text, header", [
    ("pathname;label\nimg/1.png;cat\nimg/2.png;dog\n", True),  # a known column name
    ("file location,species\nimg/1.png,cat\nimg/22.png,dog\n", True),  # no file suffix above file names
    ("img/1.png,cat\nimg/2.png,dog\n", False),
    ("a,x\nb,y\n", False),
])
def test_header_is_detected_without_any_file_to_check(text, header):
    """No file exists (a manifest read before its images are copied, or all missing): names, suffixes, Sniffer."""
    parsed = manifest.parse_manifest(text, "m.csv", exists=lambda _cell: False)
    assert bool(parsed.header) is header
    assert [row.line for row in parsed.rows] == ([2, 3] if header else [1, 2])


def test_missing_files_are_still_listed_after_a_detected_header(tmp_path):
    _images(tmp_path, "img/1.png")
    found, rejected = _listed(tmp_path, "pathname;label\nimg/1.png;cat\nimg/2.png;dog\n")
    assert found == [("img/1.png", "cat")]
    assert rejected == [("img/2.png", "dog", "m.csv:3: file not found")]


# ---------------------------------------------------------------- columns by name or index

def test_columns_by_header_name_or_index(tmp_path):
    _images(tmp_path, "img/1.png", "img/2.png")
    text = "id,split,species,file\n7,train,cat,img/1.png\n8,test,dog,img/2.png\n"
    found, _ = _listed(tmp_path, text, path_column="file", label_column="Species")  # names: case-insensitive
    assert found == [("img/1.png", "cat"), ("img/2.png", "dog")]
    found, _ = _listed(tmp_path, text, path_column="3", label_column="1")
    assert found == [("img/1.png", "train"), ("img/2.png", "test")]
    found, _ = _listed(tmp_path, "7;img/1.png;cat\n8;img/2.png;dog\n", path_column="1", label_column="2")
    assert found == [("img/1.png", "cat"), ("img/2.png", "dog")]
    found, _ = _listed(tmp_path, "species,filename\ncat,img/1.png\ndog,img/2.png\n")  # known names, any order
    assert found == [("img/1.png", "cat"), ("img/2.png", "dog")]


def test_column_errors_name_the_file_and_the_columns(tmp_path):
    _images(tmp_path, "img/1.png")
    with pytest.raises(sources.DataLayoutError, match=r"m.csv: data.label_column='kind' names no column of its "
                                                      r"header \(file, species\)"):
        _listed(tmp_path, "file,species\nimg/1.png,cat\n", label_column="kind")
    with pytest.raises(sources.DataLayoutError, match="data.path_column=5 but the header has 2 columns"):
        _listed(tmp_path, "file,species\nimg/1.png,cat\n", path_column="5")
    with pytest.raises(sources.DataLayoutError, match=r"line 1: expected at least 4 cells \(path in column 3"):
        _listed(tmp_path, "img/1.png,cat\n", path_column="3")
    with pytest.raises(ValueError, match="manifest kind must be one of"):
        ManifestOptions(kind="table")


# ---------------------------------------------------------------- attribute tables → multilabel

CELEBA = """3
5_o_Clock_Shadow Arched_Eyebrows Eyeglasses Smiling
000001.jpg -1  1 -1  1
000002.jpg -1 -1 -1 -1
000003.jpg  1 -1  1  2
"""


def test_celeba_attribute_table_is_multilabel_data(tmp_path):
    _images(tmp_path, "000001.jpg", "000002.jpg", "000003.jpg")
    _touch(tmp_path / "list_attr_celeba.txt", CELEBA.encode())
    found, rejected = manifest.list_csv_sources(str(tmp_path), "list_attr_celeba.txt", "all", multilabel=True)
    assert [(s.relative_path, s.label) for s in found] == [("000001.jpg", "Arched_Eyebrows|Smiling"),
                                                           ("000002.jpg", "")]
    assert [(r.relative_path, r.label, r.reason) for r in rejected] == [
        ("000003.jpg", "5_o_Clock_Shadow|Eyeglasses",
         "list_attr_celeba.txt:5: attribute value not 1, -1 or 0: column 'Smiling' (index 4) holds '2'")]
    parsed = manifest.parse_manifest(CELEBA, "list_attr_celeba.txt", multilabel=True)
    assert parsed.kind == "attributes" and parsed.attributes[0] == "5_o_Clock_Shadow"


def test_csv_attribute_table_with_zero_one_values(tmp_path):
    _images(tmp_path, "a.png", "b.png", "c.png", "d.png")
    text = "path,smiling,eyeglasses,hat\na.png,1,0,1\nb.png,0,0,0\nc.png,1,yes,0\nd.png,1,0\n"
    found, rejected = _listed(tmp_path, text, multilabel=True)
    assert found == [("a.png", "hat|smiling"), ("b.png", "")]
    assert [(path, reason) for path, _, reason in rejected] == [
        ("c.png", "m.csv:4: attribute value not 1, -1 or 0: column 'eyeglasses' (index 2) holds 'yes'"),
        ("d.png", "m.csv:5: wrong number of cells: expected 4 (the path and 3 attributes, ','-separated), got 3")]
    # the same table as a path,label manifest when asked: its second column is the label
    found, _ = _listed(tmp_path, "path,smiling,eyeglasses\na.png,1,0\n", kind="labels")
    assert found == [("a.png", "1")]


def test_attribute_table_kind_is_told_from_the_file_and_the_task(tmp_path):
    _images(tmp_path, "a.png", "b.png")
    with pytest.raises(sources.DataLayoutError, match="is an attribute table .* set train.task=multilabel"):
        _listed(tmp_path, CELEBA.replace("000001.jpg", "a.png"))
    # multiclass: a 3-column CSV with a header is a path,label manifest (extra columns ignored)
    found, _ = _listed(tmp_path, "file,species,notes\na.png,cat,x\nb.png,dog,y\n")
    assert found == [("a.png", "cat"), ("b.png", "dog")]
    # multilabel: a label-like column makes it a path,label manifest
    found, _ = _listed(tmp_path, "file,tags,source\na.png,x|y,web\nb.png,,scan\n", multilabel=True)
    assert found == [("a.png", "x|y"), ("b.png", "")]
    with pytest.raises(sources.DataLayoutError, match="label_column='tags' does not apply to an attribute table"):
        _listed(tmp_path, "file,tags,source\na.png,1,1\n", multilabel=True, kind="attributes", label_column="tags")
    with pytest.raises(sources.DataLayoutError, match="has no header naming its attributes"):
        _listed(tmp_path, "a.png,1,0\nb.png,0,1\n", multilabel=True, kind="attributes")
    with pytest.raises(sources.DataLayoutError, match="attribute column\\(s\\) x named more than once"):
        _listed(tmp_path, "path,x,x\na.png,1,0\n", multilabel=True, kind="attributes")


def test_celeba_count_line_must_match_the_rows(tmp_path):
    with pytest.raises(sources.DataLayoutError, match="line 1 says 5 rows follow, but 3 do"):
        manifest.parse_manifest(CELEBA.replace("3\n", "5\n", 1), "list_attr_celeba.txt", multilabel=True)


def test_celeba_layout_with_the_images_in_another_folder(tmp_path):
    """CelebA ships Anno/list_attr_celeba.txt beside img_align_celeba/: data.image_dir points at the images."""
    _images(tmp_path / "img_align_celeba", "000001.jpg", "000002.jpg", "000003.jpg")
    _touch(tmp_path / "secret.jpg")
    _touch(tmp_path / "Anno" / "list_attr_celeba.txt",
           CELEBA.replace("000003.jpg  1 -1  1  2", "../secret.jpg  1 -1  1  1").encode())
    options = manifest.ManifestOptions(image_dir="../img_align_celeba")
    found, rejected = manifest.list_csv_sources(str(tmp_path / "Anno"), "list_attr_celeba.txt", "all",
                                                multilabel=True, options=options)
    assert [(s.relative_path, s.path, s.label) for s in found] == [
        ("000001.jpg", str(tmp_path / "img_align_celeba" / "000001.jpg"), "Arched_Eyebrows|Smiling"),
        ("000002.jpg", str(tmp_path / "img_align_celeba" / "000002.jpg"), "")]
    assert [(r.relative_path, r.reason) for r in rejected] == [
        ("../secret.jpg", f"list_attr_celeba.txt:5: outside the image folder {tmp_path / 'img_align_celeba'} "
                          "(data.image_dir)")]
    assert manifest.ManifestOptions.from_dict(options.to_dict()) == options
    with pytest.raises(sources.DataLayoutError, match="data.image_dir='../images': .* is not a folder"):
        manifest.list_csv_sources(str(tmp_path / "Anno"), "list_attr_celeba.txt", "all", multilabel=True,
                                  options=manifest.ManifestOptions(image_dir="../images"))


# ---------------------------------------------------------------- a split column (data.split_column)

def test_split_column_by_name_or_index_gives_each_row_its_split():
    text = ("path,label,split\na.png,cat,Train\nb.png,dog,training\nc.png,cat,VAL\nd.png,dog,dev\ne.png,cat,test\n"
            "f.png,dog,eval\ng.png,cat,holdout\n")
    rows = manifest.parse_manifest(text, "m.csv", ManifestOptions(split_column="split")).rows
    assert [(r.path, r.split) for r in rows] == [("a.png", "train"), ("b.png", "train"), ("c.png", "val"),
                                                  ("d.png", "val"), ("e.png", "eval"), ("f.png", "eval"),
                                                  ("g.png", "")]
    assert rows[-1].error == "split 'holdout' is not train, val or test (data.split_column)"
    assert [r.label for r in rows[:2]] == ["cat", "dog"]  # the label column is not the split column
    headless = manifest.parse_manifest("test,a.png,cat\ntrain,b.png,dog\n", "m.csv",
                                       ManifestOptions(path_column="1", split_column="0")).rows
    assert [(r.path, r.label, r.split) for r in headless] == [("a.png", "cat", "eval"), ("b.png", "dog", "train")]
    with pytest.raises(sources.DataLayoutError, match="data.split_column='part' names no column of its header"):
        manifest.parse_manifest(text, "m.csv", ManifestOptions(split_column="part"))
    with pytest.raises(sources.DataLayoutError, match="the path and the split column are the same column"):
        manifest.parse_manifest(text, "m.csv", ManifestOptions(split_column="path"))


def test_attribute_table_with_a_split_column_keeps_it_out_of_the_attributes():
    text = "path,split,Smiling,Hat\na.png,train,1,-1\nb.png,test,-1,1\nc.png,nope,1,1\n"
    parsed = manifest.parse_manifest(text, "m.csv", ManifestOptions(kind="attributes", split_column="split"),
                                     multilabel=True)
    assert parsed.attributes == ["Smiling", "Hat"]
    assert [(r.label, r.split, r.error) for r in parsed.rows] == [
        ("Smiling", "train", ""), ("Hat", "eval", ""),
        ("Hat|Smiling", "", "split 'nope' is not train, val or test (data.split_column)")]


def test_each_split_lists_its_rows_and_a_row_naming_no_split_is_rejected_once_with_test(tmp_path):
    for name in "abcdef":
        _touch(tmp_path / f"{name}.png")
    text = "path,label,split\na.png,cat,train\nb.png,dog,train\nc.png,cat,val\nd.png,dog,test\ne.png,cat,?\n" \
           "missing.png,dog,test\n"
    _touch(tmp_path / "m.csv", text.encode())
    options = ManifestOptions(split_column="split")
    layout = manifest.with_split_column(sources.Layout("csv", str(tmp_path), {"all": "m.csv"}), options)
    assert layout.split_patterns == {"train": "m.csv", "val": "m.csv", "eval": "m.csv"} and layout.presplit
    listed = {split: manifest.list_csv_sources(str(tmp_path), "m.csv", split, options=options)
              for split in layout.split_patterns}
    assert {split: [s.relative_path for s in found] for split, (found, _) in listed.items()} == {
        "train": ["a.png", "b.png"], "val": ["c.png"], "eval": ["d.png"]}
    assert {split: [(r.relative_path, r.reason) for r in rejected] for split, (_, rejected) in listed.items()} == {
        "train": [], "val": [],
        "eval": [("e.png", "m.csv:6: split '?' is not train, val or test (data.split_column)"),
                 ("missing.png", "m.csv:7: file not found")]}


def test_a_split_column_needs_train_and_test_rows_and_a_manifest(tmp_path):
    _touch(tmp_path / "m.csv", b"path,label,split\na.png,cat,train\nb.png,dog,val\n")
    options = ManifestOptions(split_column="split")
    with pytest.raises(sources.DataLayoutError, match=r"m.csv: data.split_column='split' gives no test rows "
                                                      r"\(rows per split: 1 train, 1 val\)"):
        manifest.with_split_column(sources.Layout("csv", str(tmp_path), {"all": "m.csv"}), options)
    with pytest.raises(sources.DataLayoutError, match="applies to a CSV manifest; the data root .* is read as folders"):
        manifest.with_split_column(sources.Layout("folders", str(tmp_path), {"all": "*/*"}), options)
    unchanged = sources.Layout("folders", str(tmp_path), {"all": "*/*"})
    assert manifest.with_split_column(unchanged, ManifestOptions()) is unchanged
