"""What a data root holds: its format, how it splits, and the list of (file, label) sources per split.

Layouts understood:
  * folders  – `<root>/<class>/<image>`; or already split: `<root>/train/<class>/…` (or `training`) with
               `<root>/test/<class>/…` (or `testing`, `eval`) and/or `<root>/val/<class>/…` (or `valid`,
               `validation`). train + test, or train + val: the second folder is the `eval` split. train + val + test:
               three splits, `train`, `val` (the Trainer's validation data) and `eval` (the test folder).
               Any other subfolder of a pre-split root is not read, and is named (`unused_folders`).
  * csv      – a manifest file beside the images (read by `manifest`: path and label columns, or an attribute
               table); paths relative to the manifest.
  * tfrecord – existing TFRecord files of `tf.train.Example` (optionally under `train/` and `test/`), with an
               optional `labels.txt` beside them naming integer labels (TFX's CIFAR-10 example layout; see
               `records`).

Also here: the label rules shared by listing and accounting (`split_labels`, `class_keys`), the empty-class-folder
scan, and the at-least-two-classes check (`require_two_classes`).

The split patterns returned here are globs relative to the input base; TFX's ExampleGen driver fingerprints the
files they match (so unchanged images mean a cached ExampleGen), and the executor lists the same globs.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass

from tfx.dsl.io import fileio

from components import features

TRAIN_DIR_NAMES = ("train", "training")
VALIDATION_DIR_NAMES = features.VALIDATION_DIR_NAMES
TEST_DIR_NAMES = ("test", "testing", "eval")
EVAL_DIR_NAMES = TEST_DIR_NAMES + VALIDATION_DIR_NAMES  # either can be the eval split of a two-way root
TFRECORD_SUFFIXES = (".tfrecord", ".tfrecords", ".tfrecord.gz", ".tfrecords.gz", ".gz")
TFRECORD_SHARD = re.compile(r"\.tfrecords?(\.gz)?-\d+-of-\d+$")  # TFDS shards: cifar10-train.tfrecord-00000-of-00001
LABEL_NAMES_FILE = "labels.txt"  # beside TFRecord files or split folders: line i names integer label i
LABEL_SEPARATOR = "|"  # between the labels of one image in a multilabel manifest
NO_LABEL = "(no label)"  # accounting key for files without a label (stray files, multilabel rows with none)
MULTILABEL_NEEDS_CSV = "multilabel needs a CSV manifest with labels separated by '|' (path,label rows, e.g. " \
    "img/1.jpg,smiling|eyeglasses)"


# Files and folders the OS or a copy tool leaves behind: skipped while listing folders (and listed, not quarantined).
HIDDEN_REASON = "hidden/system file, skipped"
_SYSTEM_NAMES = frozenset({"thumbs.db", "desktop.ini", "ehthumbs.db", "__macosx"})


def is_hidden(relative_path: str) -> bool:
    """True when a component of the path is hidden (`.DS_Store`, `._foo.jpg` AppleDouble, `.git`) or a system
    file/folder (`Thumbs.db`, `desktop.ini`, `__MACOSX`)."""
    return any(part.startswith(".") or part.lower() in _SYSTEM_NAMES
               for part in relative_path.replace(os.sep, "/").split("/") if part not in ("", ".", ".."))


class DataLayoutError(ValueError):
    """The data root cannot be used; the message names the path."""


@dataclass(frozen=True)
class Layout:
    """How ExampleGen should read a data root."""

    format: str  # folders | csv | tfrecord
    input_base: str  # folder that split patterns are relative to
    split_patterns: dict[str, str]  # split name -> glob (train/[val/]eval), or {"all": glob} for a hash split

    @property
    def presplit(self) -> bool:
        """True when the data already comes as train/eval sub-trees."""
        return "all" not in self.split_patterns


@dataclass(frozen=True)
class Source:
    """One input file and the label it should get."""

    path: str  # absolute (or URI)
    relative_path: str  # relative to the input base: recorded in the example and the quarantine report
    label: str
    split: str  # input split name while listing (train/eval/all); the output split (train/eval) once assigned


@dataclass(frozen=True)
class Rejected:
    """A file rejected before it is even read (missing, outside the root, …)."""

    relative_path: str
    label: str
    split: str
    reason: str

    def to_record(self) -> dict[str, str]:
        """Row for the quarantine report."""
        return {"path": self.relative_path, "label": self.label, "split": self.split, "reason": self.reason}


def detect_layout(root: str, data_format: str = "auto") -> Layout:
    """Work out the format and split patterns of `root`; raise `DataLayoutError` naming the path."""
    root = root.rstrip("/") or "/"
    if not fileio.exists(root):
        raise DataLayoutError(f"data root {root} does not exist")
    if not fileio.isdir(root):
        if data_format in ("auto", "csv") and root.lower().endswith((".csv", ".tsv", ".txt")):
            return Layout("csv", os.path.dirname(root) or ".", {"all": os.path.basename(root)})
        raise DataLayoutError(f"data root {root} is a file but not a .csv/.tsv manifest")
    entries = sorted(fileio.listdir(root))
    subdirs = [e.rstrip("/") for e in entries if fileio.isdir(os.path.join(root, e))]
    files = [e for e in entries if not fileio.isdir(os.path.join(root, e))]
    if data_format == "auto":
        tfrecords = _looks_like_tfrecords(root, subdirs, files)
        if not tfrecords:
            _refuse_undetected_tfrecords(root, subdirs, files)
        data_format = "tfrecord" if tfrecords else "folders"
    if data_format == "csv":
        manifests = [f for f in files if f.lower().endswith((".csv", ".tsv"))]
        if len(manifests) != 1:
            raise DataLayoutError(f"data root {root}: expected one .csv manifest inside, found {manifests or 'none'}")
        return Layout("csv", root, {"all": manifests[0]})
    leaf = "*" if data_format == "tfrecord" else "*/*"
    split_dirs = _split_dirs(root, subdirs)
    if split_dirs:
        return Layout(data_format, root, {split: f"{folder}/{leaf}" for split, folder in split_dirs.items()})
    if data_format == "folders" and not subdirs:
        raise DataLayoutError(f"data root {root} has no class folders (expected <root>/<class>/<image>)")
    return Layout(data_format, root, {"all": leaf})


def _split_dirs(root: str, subdirs: list[str]) -> dict[str, str]:
    """Output split → folder of a pre-split root (train + test, train + val, or all three), {} when not pre-split;
    `DataLayoutError` for a split folder without a train folder (or the reverse), or two folders for one role."""
    found: dict[str, list[str]] = {}
    for role, names in (("train", TRAIN_DIR_NAMES), ("val", VALIDATION_DIR_NAMES), ("test", TEST_DIR_NAMES)):
        found[role] = [d for d in subdirs if d.lower() in names]
        if len(found[role]) > 1:
            raise DataLayoutError(f"data root {root} has {len(found[role])} {role} folders "
                                  f"({', '.join(repr(d) for d in found[role])}): keep one")
    train, val, test = (found[role][0] if found[role] else None for role in ("train", "val", "test"))
    if not (train or val or test):
        return {}
    if not train or not (val or test):
        present = train or val or test
        raise DataLayoutError(
            f"data root {root} has a '{present}' folder but no matching "
            f"{'test' if train else 'train'} folder: give both (train/ with test/ and/or val/), or use plain class "
            "folders for a hash split")
    if val and test:
        return {features.TRAIN_SPLIT: train, features.VALIDATION_SPLIT: val, features.EVAL_SPLIT: test}
    return {features.TRAIN_SPLIT: train, features.EVAL_SPLIT: val or test}


def unused_folders(input_base: str, patterns: Iterable[str]) -> list[str]:
    """Subfolders of a pre-split data root that none of the split `patterns` (`train/*/*`, …) reads, e.g. an
    `extra/` or `unlabelled/` folder beside `train/` and `test/`: ingestion names them instead of ignoring them
    silently. Hidden folders (`.git`, `.ipynb_checkpoints`) and roots read whole (`*/*`, a manifest) give none."""
    patterns = list(patterns)
    if not patterns or any("/" not in pattern or _is_glob(pattern.split("/", 1)[0]) for pattern in patterns):
        return []
    heads = {pattern.split("/", 1)[0] for pattern in patterns}
    return [name.rstrip("/") for name in sorted(fileio.listdir(input_base))
            if not name.startswith(".") and name.rstrip("/") not in heads
            and fileio.isdir(os.path.join(input_base, name))]


def _is_glob(text: str) -> bool:
    return any(char in text for char in "*?[")


def _looks_like_tfrecords(root: str, subdirs: list[str], files: list[str]) -> bool:
    files = [f for f in files if f != LABEL_NAMES_FILE]  # the names of integer labels, beside the records
    candidates = files or [
        f for d in subdirs if d.lower() in TRAIN_DIR_NAMES for f in fileio.listdir(os.path.join(root, d))
    ]
    return bool(candidates) and all(_is_tfrecord_name(c) for c in candidates)


def _is_tfrecord_name(name: str) -> bool:
    return name.lower().endswith(TFRECORD_SUFFIXES) or bool(TFRECORD_SHARD.search(name.lower()))


def _refuse_undetected_tfrecords(root: str, subdirs: list[str], files: list[str]) -> None:
    """A root not auto-detected as TFRecords although it holds TFRecord files (next to other files): say how to
    read them."""
    split_dirs = [d for d in subdirs if d.lower() in TRAIN_DIR_NAMES + EVAL_DIR_NAMES]
    names = files + [f"{d}/{f}" for d in split_dirs for f in sorted(fileio.listdir(os.path.join(root, d)))
                     if not fileio.isdir(os.path.join(root, d, f))]
    found = [name for name in names if ".tfrecord" in name.lower()]
    if found:
        raise DataLayoutError(
            f"data root {root} holds TFRecord files (e.g. {found[0]}) but also other files, so it was not "
            f"auto-detected as TFRecord data: set data.format=tfrecord to read the records (other files are then "
            f"quarantined as unreadable), or data.format=folders to read class folders")


def list_folder_sources(input_base: str, pattern: str, split: str) -> tuple[list[Source], list[Rejected]]:
    """Files matching `<input_base>/<pattern>` (pattern `[split_dir/]*/*`) labelled by their class folder.

    Anything that matches but cannot be ingested as a file (a nested folder, a symlink leaving the data root)
    and any stray file that is not inside a class folder is returned as `Rejected`, so nothing is lost silently;
    hidden/system files and folders are returned as `Rejected` with `HIDDEN_REASON` and no label (skipped).
    """
    sources: list[Source] = []
    rejected: list[Rejected] = []
    real_base = os.path.realpath(input_base) if _is_local(input_base) else None
    for path in sorted(fileio.glob(os.path.join(input_base, pattern))):
        relative = os.path.relpath(path, input_base)
        label = os.path.basename(os.path.dirname(path))
        if is_hidden(relative):
            rejected.append(Rejected(relative, "", split, HIDDEN_REASON))
        elif fileio.isdir(path):
            rejected.append(Rejected(relative, label, split, "nested folder: only <class>/<file> is scanned"))
        elif real_base is not None and not _inside(os.path.realpath(path), real_base):
            rejected.append(Rejected(relative, label, split, "symlink points outside the data root (not followed)"))
        else:
            sources.append(Source(path, relative, label, split))
    class_level = os.path.dirname(pattern)  # e.g. "train/*" or "*"
    for path in sorted(fileio.glob(os.path.join(input_base, class_level))):
        if not fileio.isdir(path):
            relative = os.path.relpath(path, input_base)
            rejected.append(Rejected(relative, "", split,
                                     HIDDEN_REASON if is_hidden(relative) else "not inside a class folder (no label)"))
    return sources, rejected


def empty_class_folders(input_base: str, pattern: str) -> list[str]:
    """Class folders (relative to `input_base`) at the class level of `pattern` (`[split_dir/]*/*`) that hold
    nothing at all: their class silently gets no images, so ingestion reports them."""
    class_level = os.path.dirname(pattern)
    return [os.path.relpath(path, input_base) for path in sorted(fileio.glob(os.path.join(input_base, class_level)))
            if fileio.isdir(path) and not is_hidden(os.path.relpath(path, input_base))
            and not [name for name in fileio.listdir(path) if not is_hidden(name)]]


def split_labels(cell: str, multilabel: bool) -> tuple[str, ...]:
    """The labels of a manifest cell or class folder name.

    Multiclass: the one label as given. Multilabel: labels separated by `|`, whitespace stripped, duplicates
    removed, sorted; an empty cell means no positive labels. A label left empty between separators (`a||b`,
    `a|`) raises `ValueError` naming the cell (the row is quarantined).
    """
    if not multilabel:
        return (cell,)
    if not cell.strip():
        return ()
    parts = [part.strip() for part in cell.split(LABEL_SEPARATOR)]
    if not all(parts):
        raise ValueError(f"empty label between '{LABEL_SEPARATOR}' separators in label cell {cell!r}")
    return tuple(sorted(set(parts)))


def class_keys(label: str, multilabel: bool) -> tuple[str, ...]:
    """Per-class accounting keys of a file whose label (or multilabel cell) is `label`: every non-empty label
    it names, or `NO_LABEL`. Never raises, so quarantined rows are counted too."""
    if not multilabel:
        return (label or NO_LABEL,)
    names = sorted({part.strip() for part in label.split(LABEL_SEPARATOR) if part.strip()})
    return tuple(names) or (NO_LABEL,)


def require_two_classes(labels: Iterable[str], where: str, multilabel: bool = False,
                        elsewhere: Iterable[str] = ()) -> None:
    """Raise `DataLayoutError` unless `labels` (of the training data described by `where`) hold at least two
    distinct classes: a classifier cannot be trained on one. `elsewhere` are classes seen only outside it."""
    distinct = sorted(set(labels) - {"", NO_LABEL})
    if len(distinct) >= 2:
        return
    kind = "distinct labels" if multilabel else "classes"
    found = f"only one class, {distinct[0]!r}" if distinct else f"no {kind} at all"
    other = sorted(set(elsewhere) - set(distinct) - {"", NO_LABEL})
    hint = f" (seen only in other splits: {', '.join(repr(c) for c in other)})" if other else ""
    raise DataLayoutError(f"{where} has {found}{hint}: training needs at least two {kind}")


def _is_uri(path: str) -> bool:
    return "://" in path


def _is_local(path: str) -> bool:
    return not _is_uri(path)


def _inside(path: str, base: str) -> bool:
    return path == base or path.startswith(base.rstrip(os.sep) + os.sep)
