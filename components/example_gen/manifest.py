"""CSV manifests: which file gets which label(s), read from a table beside the images.

Two kinds of table (`ManifestOptions.kind`):
  * labels     – a path column and a label column (`path,label`); for multilabel data the label cell holds 0..n
                 labels separated by `|` (`smiling|eyeglasses`).
  * attributes – a path column and one column per attribute holding 1 (present) or -1 / 0 (absent): CelebA's
                 `list_attr_celeba.txt` (a count line, the attribute names, then `000001.jpg -1 1 …` separated by
                 spaces) or a CSV `path,Smiling,Eyeglasses,…`. Each row's present attributes are its label set
                 (multilabel only); a cell that is not 1, -1 or 0 quarantines the row, naming file, line and column.
  * auto       – attributes for the CelebA shape (a count line, then one name fewer than the data rows have cells),
                 or for a multilabel table whose header names more than two columns, none of them a label column
                 (`label`, `labels`, `class`, `tags`, …) and no `label_column` is set; else labels.

The delimiter is sniffed (`,` `;` tab; whitespace when none of them appears). A header row is detected, not
assumed: a configured column name requires one; otherwise the first row is a header when none of its cells names an
existing file while a later row's does, and — when no listed file exists — when it names a known column (`path`,
`filename`, `label`, …), holds words where the later rows hold attribute values or file names, or `csv.Sniffer`
says so. Columns are chosen by header name or 0-based index (`path_column`, `label_column`, the config's
`data.path_column` / `data.label_column`); by default a column named like a path, else the first, and a column
named like a label, else the first other one.

A split column (`split_column`, the config's `data.split_column`) keeps a dataset's own split instead of the hash
split: each row's cell says train (`train`, `training`), val (`val`, `valid`, `validation`, `dev`: the Trainer's
validation data) or test (`test`, `testing`, `eval`, `evaluation`), case-insensitive; `with_split_column` turns the
manifest's layout into one input split per value present (train and test required), and a row whose cell is none of
these is rejected naming its line and value.

Paths are relative to the manifest's folder, or to `image_dir` when the images live elsewhere (CelebA ships
`Anno/list_attr_celeba.txt` beside `img_align_celeba/`: `image_dir="../img_align_celeba"`, relative to the manifest's
folder, or absolute); a row whose file is missing, a folder, listed twice or outside that folder is rejected with
`<manifest>:<line>: <reason>`, never dropped.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from tfx.dsl.io import fileio

from components import features
from components.example_gen.sources import LABEL_SEPARATOR, DataLayoutError, Layout, Rejected, Source, split_labels

MANIFEST_KINDS = ("auto", "labels", "attributes")
PATH_NAMES = frozenset({"path", "paths", "pathname", "filepath", "file_path", "file", "filename", "file_name",
                        "image", "image_path", "imagepath", "image_id", "image_name", "img", "img_path", "uri"})
LABEL_NAMES = frozenset({"label", "labels", "class", "classes", "class_name", "category", "categories", "tag", "tags",
                         "target", "targets", "y"})
ATTRIBUTE_PRESENT, ATTRIBUTE_ABSENT = frozenset({"1", "+1"}), frozenset({"-1", "0"})
_DELIMITERS = ",;\t"
_SAMPLE_ROWS = 20  # rows looked at to detect the delimiter, the header and the kind
_INDEX = re.compile(r"\d+")
SPLIT_VALUES = {**dict.fromkeys(("train", "training"), features.TRAIN_SPLIT),
                **dict.fromkeys(("val", "valid", "validation", "dev"), features.VALIDATION_SPLIT),
                **dict.fromkeys(("test", "testing", "eval", "evaluation"), features.EVAL_SPLIT)}


@dataclass(frozen=True)
class ManifestOptions:
    """How to read a manifest: its kind and the path and label columns (header name or 0-based index, "" = auto)."""

    path_column: str = ""
    label_column: str = ""
    kind: str = "auto"  # auto | labels | attributes
    image_dir: str = ""  # the folder the paths are relative to ("" = the manifest's); relative to the manifest's
    split_column: str = ""  # the column naming each row's split (train / val / test); "" = hash split

    def __post_init__(self) -> None:
        if self.kind not in MANIFEST_KINDS:
            raise ValueError(f"manifest kind must be one of {MANIFEST_KINDS}, got {self.kind!r}")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> ManifestOptions:
        """Options from their dict form (`to_dict`; missing keys keep their defaults)."""
        values = values or {}
        return cls(str(values.get("path_column", "")), str(values.get("label_column", "")),
                   str(values.get("kind", "auto")), str(values.get("image_dir", "")),
                   str(values.get("split_column", "")))

    def to_dict(self) -> dict[str, str]:
        """Plain dict (ExampleGen's custom_config)."""
        return asdict(self)


@dataclass(frozen=True)
class ManifestRow:
    """One data row: its line, path and label cell (the canonical `a|b` label set for attribute tables), or why it
    is rejected (`error`, a reason without the file and line)."""

    line: int
    path: str
    label: str
    error: str = ""
    split: str = ""  # with a split column: train / val / eval ("" when the cell names none: `error` says so)


@dataclass(frozen=True)
class Manifest:
    """A parsed manifest: its rows and how it was read."""

    rows: list[ManifestRow]
    kind: str  # labels | attributes
    header: list[str]  # the header's cells ([] when the file has none)
    path_index: int
    label_index: int | None  # None for attribute tables
    attributes: list[str]  # attribute names, in column order (attribute tables)


def list_csv_sources(input_base: str, manifest: str, split: str, multilabel: bool = False,
                     options: ManifestOptions | None = None) -> tuple[list[Source], list[Rejected]]:
    """The sources a manifest lists and the rows it rejects (see the module docstring).

    With `multilabel` the label cell holds 0..n labels separated by `|`; the `Source.label` is then the canonical
    cell (sorted, de-duplicated labels joined by `|`, empty for none), and a cell with an empty label between
    separators is rejected. Attribute tables need `multilabel`.
    """
    options = options or ManifestOptions()
    manifest_path = os.path.join(input_base, manifest)
    image_base, outside = image_folder(input_base, options.image_dir)
    text = read_text(manifest_path)

    def exists(cell: str) -> bool:
        try:
            return fileio.exists(os.path.join(image_base, cell)) and not fileio.isdir(os.path.join(image_base, cell))
        except Exception:  # noqa: BLE001  (a cell that is no valid path for the filesystem is no file)
            return False

    parsed = parse_manifest(text, manifest_path, options, exists=exists, multilabel=multilabel)
    sources: list[Source] = []
    rejected: list[Rejected] = []
    real_base = os.path.realpath(image_base) if not _is_uri(image_base) else None
    first_line: dict[str, int] = {}  # file -> manifest line that listed it first
    by_column = bool(options.split_column)
    for row in parsed.rows:
        relative, label, where = row.path, row.label, f"{manifest}:{row.line}"
        if by_column and row.split != split and (row.split or split != features.EVAL_SPLIT):
            continue  # another split's row (listed with it); a row naming no split is reported once, with test
        if row.error:
            rejected.append(Rejected(relative, label, split, f"{where}: {row.error}"))
            continue
        path = relative if _is_uri(relative) or os.path.isabs(relative) else os.path.join(image_base, relative)
        key = path if _is_uri(path) else os.path.normpath(path)
        if multilabel:
            try:
                label = LABEL_SEPARATOR.join(split_labels(label, multilabel=True))
            except ValueError as err:
                rejected.append(Rejected(relative, label, split, f"{where}: {err}"))
                continue
        if not label and not multilabel:
            rejected.append(Rejected(relative, "", split, f"{where}: empty label"))
            continue
        if key in first_line:
            rejected.append(Rejected(relative, label, split, f"{where}: file already listed on line {first_line[key]}"))
            continue
        first_line[key] = row.line
        if not fileio.exists(path):
            rejected.append(Rejected(relative, label, split, f"{where}: file not found"))
        elif fileio.isdir(path):
            rejected.append(Rejected(relative, label, split, f"{where}: is a folder, not a file"))
        elif real_base is not None and not _inside(os.path.realpath(path), real_base):
            rejected.append(Rejected(relative, label, split, f"{where}: {outside}"))
        else:
            sources.append(Source(path, relative, label, split))
    return sources, rejected


def read_text(path: str) -> str:
    """A manifest's text (local path or URI), without a UTF-8 byte-order mark."""
    with fileio.open(path, "r") as handle:
        text = handle.read()
    return (text.decode("utf-8-sig") if isinstance(text, bytes) else text).lstrip("\ufeff")


def image_folder(input_base: str, image_dir: str) -> tuple[str, str]:
    """The folder a manifest's paths are relative to (`image_dir` resolved against the manifest's folder `input_base`)
    and the reason given to a row whose file lies outside it; `DataLayoutError` when `image_dir` is not a folder."""
    if not image_dir:
        return input_base, "outside the manifest's folder"
    folder = image_dir if _is_uri(image_dir) or os.path.isabs(image_dir) else os.path.normpath(
        os.path.join(input_base, image_dir))
    if not fileio.isdir(folder):
        raise DataLayoutError(f"data.image_dir={image_dir!r}: {folder} is not a folder (it is resolved against the "
                              f"manifest's folder {input_base})")
    return folder, f"outside the image folder {folder} (data.image_dir)"


def parse_manifest(text: str, name: str, options: ManifestOptions | None = None,
                   exists: Callable[[str], bool] | None = None, multilabel: bool = False) -> Manifest:
    """The rows of a manifest's text; `DataLayoutError` naming the file (and line or column) when it cannot be read.

    `exists(cell)` says whether a cell names an existing file (relative to the manifest's folder): the strongest
    evidence for or against a header row. Without it the header is told from column names, values and
    `csv.Sniffer`.
    """
    options = options or ManifestOptions()
    lines = [(number, line) for number, line in enumerate(text.splitlines(), start=1) if line.strip()]
    if not lines:
        raise DataLayoutError(f"manifest {name} is empty")
    count, count_line = None, 0
    if len(lines) >= 2 and re.fullmatch(r"\s*\d+\s*", lines[0][1]):  # CelebA: the number of rows first
        count, count_line = int(lines[0][1]), lines[0][0]
        lines = lines[1:]
    delimiter, rows = _tokenize(lines)
    shown = "whitespace" if delimiter is None else repr(delimiter)
    sample = rows[:_SAMPLE_ROWS + 1]
    celeba = count is not None and len(sample) >= 2 and len(sample[0][1]) + 1 == len(sample[1][1])
    header: list[str] = []
    if _has_header(sample, options, celeba, exists, delimiter):
        header = list(rows[0][1])
        rows = rows[1:]
        if celeba:
            header = ["", *header]  # the names line names the columns after the file name
    if count is not None and count != len(rows):
        raise DataLayoutError(f"manifest {name}: line {count_line} says {count} rows follow, but "
                              f"{len(rows)} {'does' if len(rows) == 1 else 'do'}: a truncated or edited file? "
                              "Correct or delete that count line")
    if not rows:
        raise DataLayoutError(f"manifest {name} has a header but no rows")
    path_index = _column(options.path_column, header, PATH_NAMES, 0, name, "data.path_column")
    split_index = _column(options.split_column, header, frozenset(), -1, name, "data.split_column") \
        if options.split_column else None
    if split_index == path_index:
        raise DataLayoutError(f"manifest {name}: the path and the split column are the same column ({path_index})")
    kind = _kind(options, header, celeba, multilabel, name)
    if kind == "attributes":
        return _attribute_rows(rows, header, path_index, name, multilabel, shown, split_index)
    label_index = _column(options.label_column, header, LABEL_NAMES,
                          min(set(range(3)) - {path_index, split_index}), name, "data.label_column")
    if label_index in (path_index, split_index):
        raise DataLayoutError(f"manifest {name}: the label column ({label_index}) is also the "
                              f"{'path' if label_index == path_index else 'split'} column")
    parsed = []
    needed = max(path_index, label_index, -1 if split_index is None else split_index) + 1
    for line, cells in rows:
        if len(cells) < needed:
            sep = " " if delimiter is None else delimiter
            expected = f"'path{sep}label'" if (path_index, label_index, split_index) == (0, 1, None) else \
                f"at least {needed} cells (path in column {path_index}, label in column {label_index}" + (
                    f", split in column {split_index})" if split_index is not None else ")")
            raise DataLayoutError(f"manifest {name}, line {line}: expected {expected} ({shown}-separated), "
                                  f"got {sep.join(cells)!r}")
        split, error = _row_split(cells, split_index)
        parsed.append(ManifestRow(line, cells[path_index], cells[label_index], error, split))
    return Manifest(parsed, "labels", header, path_index, label_index, [])


def _row_split(cells: Sequence[str], split_index: int | None) -> tuple[str, str]:
    """(the row's split, or "" with the reason) for a split column; ("", "") without one."""
    if split_index is None:
        return "", ""
    value = cells[split_index] if split_index < len(cells) else ""
    split = SPLIT_VALUES.get(value.strip().lower(), "")
    return split, "" if split else f"split {value!r} is not train, val or test (data.split_column)"


def with_split_column(layout: Layout, options: ManifestOptions, multilabel: bool = False) -> Layout:
    """A CSV layout split by the manifest's split column: one input split per split its rows name, each reading the
    manifest (`list_csv_sources` keeps that split's rows); unchanged for other layouts or without a split column.
    `DataLayoutError` naming the manifest when it has no train or no test rows."""
    if not options.split_column:
        return layout
    if layout.format != "csv":
        raise DataLayoutError(f"data.split_column={options.split_column!r} applies to a CSV manifest; the data "
                              f"root {layout.input_base} is read as {layout.format}")
    [manifest] = layout.split_patterns.values()
    path = os.path.join(layout.input_base, manifest)
    rows = parse_manifest(read_text(path), path, options, multilabel=multilabel).rows
    counts = {split: sum(row.split == split for row in rows)
              for split in (features.TRAIN_SPLIT, features.VALIDATION_SPLIT, features.EVAL_SPLIT)}
    missing = [name for split, name in ((features.TRAIN_SPLIT, "train"), (features.EVAL_SPLIT, "test"))
               if not counts[split]]
    if missing:
        seen = ", ".join(f"{n} {s}" for s, n in counts.items() if n) or "none"
        raise DataLayoutError(f"manifest {path}: data.split_column={options.split_column!r} gives no "
                              f"{' and no '.join(missing)} rows (rows per split: {seen}); a split column needs "
                              "train and test rows (val optional)")
    return Layout("csv", layout.input_base, {split: manifest for split, n in counts.items() if n})


def _tokenize(lines: Sequence[tuple[int, str]]) -> tuple[str | None, list[tuple[int, list[str]]]]:
    """(delimiter, or None for whitespace; (line number, stripped cells) per row)."""
    sample = "\n".join(line for _, line in lines[:_SAMPLE_ROWS + 1])
    if not any(d in sample for d in _DELIMITERS):
        return None, [(number, line.split()) for number, line in lines]
    try:
        delimiter = csv.Sniffer().sniff(sample, delimiters=_DELIMITERS).delimiter
    except csv.Error:
        delimiter = next((d for d in _DELIMITERS if d in sample), ",")
    rows = []
    for number, line in lines:
        cells = next(csv.reader(io.StringIO(line), delimiter=delimiter), [])
        if any(cell.strip() for cell in cells):
            rows.append((number, [cell.strip() for cell in cells]))
    return delimiter, rows


def _has_header(sample: Sequence[tuple[int, list[str]]], options: ManifestOptions, celeba: bool,
                exists: Callable[[str], bool] | None, delimiter: str | None) -> bool:
    """Whether the first row of `sample` is a header (the evidence, strongest first: module docstring)."""
    if any(value and not _INDEX.fullmatch(value)
           for value in (options.path_column, options.label_column, options.split_column)):
        return True  # a column named by the user: the file must have a header
    if celeba:
        return True
    first, rest = sample[0][1], [cells for _, cells in sample[1:]]
    if not rest:
        return False
    if exists is not None:
        if any(exists(cell) for cell in _path_like(first)):
            return False
        if any(exists(cell) for cells in rest for cell in _path_like(cells)):
            return True
    if {cell.lower() for cell in first} & (PATH_NAMES | LABEL_NAMES) and not any(_suffix(c) for c in first):
        return True
    if len(first) >= 3 and all(_attribute_values(cells[1:]) for cells in rest) and not _attribute_values(first[1:]):
        return True
    with_suffix = sum(1 for cells in rest if any(_suffix(c) for c in cells))
    if with_suffix * 2 > len(rest) and not any(_suffix(c) for c in first):
        return True
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter or ",").writerows(cells for _, cells in sample)
    try:
        return csv.Sniffer().has_header(buffer.getvalue())
    except csv.Error:
        return False


def _path_like(cells: Sequence[str]) -> list[str]:
    return [cell for cell in cells if cell and cell not in ATTRIBUTE_PRESENT | ATTRIBUTE_ABSENT]


def _suffix(cell: str) -> bool:
    """A cell that ends like a file name (`.jpg`, `.png`, …)."""
    return bool(re.search(r"\.[A-Za-z][A-Za-z0-9]{1,4}$", cell))


def _attribute_values(cells: Sequence[str]) -> bool:
    return bool(cells) and all(cell in ATTRIBUTE_PRESENT | ATTRIBUTE_ABSENT for cell in cells)


def _column(wanted: str, header: list[str], known: frozenset[str], default: int, name: str, field: str) -> int:
    """The index of a column given by header name or 0-based index; "" = a header cell in `known`, else `default`."""
    if wanted and _INDEX.fullmatch(wanted):
        index = int(wanted)
        if header and index >= len(header):
            raise DataLayoutError(f"manifest {name}: {field}={wanted} but the header has {len(header)} columns "
                                  f"({', '.join(header)})")
        return index
    if wanted:
        lowered = [cell.lower() for cell in header]
        if wanted in header:
            return header.index(wanted)
        if wanted.lower() in lowered:
            return lowered.index(wanted.lower())
        raise DataLayoutError(f"manifest {name}: {field}={wanted!r} names no column of its header "
                              f"({', '.join(c for c in header if c) or 'none'})")
    return next((i for i, cell in enumerate(header) if cell.lower() in known), default)


def _kind(options: ManifestOptions, header: list[str], celeba: bool, multilabel: bool, name: str) -> str:
    if options.kind != "auto":
        kind = options.kind
    elif celeba or (multilabel and not options.label_column and len(header) > 2
                    and not any(cell.lower() in LABEL_NAMES for cell in header)):
        kind = "attributes"
    else:
        kind = "labels"
    if kind == "attributes" and options.label_column:
        raise DataLayoutError(f"manifest {name}: data.label_column={options.label_column!r} does not apply to an "
                              "attribute table "
                              "(every column but the path is an attribute): unset it, or set "
                              "data.manifest_kind=labels")
    return kind


def _attribute_rows(rows: list[tuple[int, list[str]]], header: list[str], path_index: int, name: str,
                    multilabel: bool, shown: str, split_index: int | None = None) -> Manifest:
    """Rows of an attribute table: each row's present attributes are its label set."""
    if not multilabel:
        raise DataLayoutError(f"manifest {name} is an attribute table (one 1/-1 or 0/1 column per attribute): its "
                              "rows carry several labels, set train.task=multilabel (or data.manifest_kind=labels "
                              "for a path and a label column)")
    if not header:
        raise DataLayoutError(f"manifest {name} is read as an attribute table but has no header naming its "
                              "attributes (first row: attribute names, or CelebA's count line and names line)")
    columns = [(i, cell) for i, cell in enumerate(header) if i not in (path_index, split_index)]
    for index, attribute in columns:
        if not attribute or LABEL_SEPARATOR in attribute:
            raise DataLayoutError(f"manifest {name}: attribute column {index} has the name {attribute!r}: names must "
                                  f"be non-empty and without '{LABEL_SEPARATOR}'")
    names = [attribute for _, attribute in columns]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise DataLayoutError(f"manifest {name}: attribute column(s) {', '.join(repeated)} named more than once")
    parsed = []
    for line, cells in rows:
        path = cells[path_index] if path_index < len(cells) else " ".join(cells)
        if len(cells) != len(header):
            parsed.append(ManifestRow(line, path, "", f"wrong number of cells: expected {len(header)} (the path "
                                                      f"and {len(columns)} attributes, {shown}-separated), got "
                                                      f"{len(cells)}", _row_split(cells, split_index)[0]))
            continue
        split, split_error = _row_split(cells, split_index)
        present = sorted(attribute for index, attribute in columns if cells[index] in ATTRIBUTE_PRESENT)
        bad = [(index, attribute, cells[index]) for index, attribute in columns
               if cells[index] not in ATTRIBUTE_PRESENT | ATTRIBUTE_ABSENT]
        error = split_error
        if bad:
            error = "attribute value not 1, -1 or 0: " + "; ".join(
                f"column {attribute!r} (index {index}) holds {value!r}" for index, attribute, value in bad[:3]) + (
                f"; and {len(bad) - 3} more" if len(bad) > 3 else "")
        parsed.append(ManifestRow(line, path, LABEL_SEPARATOR.join(present), error, split))
    return Manifest(parsed, "attributes", header, path_index, None, names)


def _is_uri(path: str) -> bool:
    return "://" in path


def _inside(path: str, base: str) -> bool:
    return os.path.commonpath([path, base]) == base
