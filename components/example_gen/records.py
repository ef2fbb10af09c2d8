"""TFRecord input: the record files of a split, the names of integer labels, and every record read and checked.

A TFRecord data root gets the same checks as image files (the executor's TFRecord branch runs these functions):

* `list_record_files`: the files a split pattern matches; `labels.txt` at the data root is not a record file (it
  names the labels), a folder or a symlink leaving the data root is rejected, so nothing is skipped silently.
* `resolve_label_names`: the class names of integer labels — `data.label_names`, or `labels.txt` beside the split
  folders (line i names label i, as TFX's CIFAR-10 example and TFDS ship it); both given and different is an error.
* `read_record_file`: every record of one file (GZIP when the name ends in `.gz`, as TFX's ImportExampleGen reads
  it), each identified as `<file>#<index>` (0-based) and checked by `check_record`: parsed as a `tf.train.Example`,
  its label read (bytes, or int64 named by the label names), its image passed through `images.prepare_image`, the
  gate image files go through. Records that fail become a quarantine reason; unreadable data (a truncated or
  non-TFRecord file) ends the file with one entry `<file>#<first unread index>`.

An accepted record keeps all its features; an integer label that has a name is replaced by the name (bytes), and a
`path` feature (`<file>#<index>`) is added unless the record has its own. An image that `prepare_image` re-encodes
— a JPEG whose EXIF says to rotate it (stored upright as PNG, as the clients send it at prediction time), a TIFF or
WebP (as PNG, with `data.transcode`) — replaces the record's image bytes, its `width` / `height` / `format`
features follow when it has them, and the record is listed with what was done, as a converted image file is.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import tensorflow as tf
from google.protobuf.message import DecodeError
from tfx.dsl.io import fileio

from components import features
from components.example_gen import images, sources

LABEL_NAMES_FILE = sources.LABEL_NAMES_FILE  # beside the split folders: line i names integer label i


@dataclass(frozen=True)
class RecordFile:
    """One TFRecord file of a split."""

    path: str  # absolute (or URI)
    relative_path: str  # relative to the input base: record ids are `<relative_path>#<index>`
    split: str  # input split name (train/eval/all)


@dataclass(frozen=True)
class RecordSpec:
    """How records are read: the feature names, the names of integer labels, the decompression-bomb guard."""

    image_feature: str
    label_feature: str
    label_names: tuple[str, ...]
    max_image_pixels: int
    label_names_source: str = LABEL_NAMES_FILE  # named in the reason of an integer label without a name
    min_image_side: int = images.MIN_IMAGE_SIDE  # smaller images are quarantined (data.min_image_side)
    transcode: bool = True  # TIFF / WebP images stored as PNG (data.transcode); else quarantined


@dataclass(frozen=True)
class RecordRead:
    """One record read: accepted (`example` set, `reason` empty) or to be quarantined (`reason` says why)."""

    path: str  # `<file>#<index>`
    label: str  # class name ("" when none could be read)
    sha256: str = ""  # of the image bytes
    example: bytes = b""  # the serialized tf.train.Example to ingest
    reason: str = ""
    conversion: str = ""  # "" | "orientation" | "transcode": the image was re-encoded (see `note`)
    note: str = ""  # what was done to the image, e.g. "EXIF orientation 6 applied, re-encoded as PNG"


def list_record_files(input_base: str, pattern: str, split: str) -> tuple[list[RecordFile], list[sources.Rejected]]:
    """The files matching `<input_base>/<pattern>`, and what matches but cannot be read as a record file."""
    found: list[RecordFile] = []
    rejected: list[sources.Rejected] = []
    local = "://" not in input_base
    real_base = os.path.realpath(input_base) if local else ""
    for path in sorted(fileio.glob(os.path.join(input_base, pattern))):
        relative = os.path.relpath(path, input_base)
        if relative == LABEL_NAMES_FILE:
            continue  # the label names, read by `resolve_label_names`
        if fileio.isdir(path):
            rejected.append(sources.Rejected(relative, "", split, "nested folder: only the TFRecord files directly "
                                                                  "inside a split folder are read"))
        elif local and not os.path.realpath(path).startswith(real_base.rstrip(os.sep) + os.sep):
            rejected.append(sources.Rejected(relative, "", split,
                                             "symlink points outside the data root (not followed)"))
        else:
            found.append(RecordFile(path, relative, split))
    return found, rejected


def read_label_names(input_base: str) -> tuple[str, ...]:
    """The names in `<input_base>/labels.txt` (line i names label i; trailing empty lines ignored), or () when
    there is no such file; `sources.DataLayoutError` naming the file and line for an empty or repeated name."""
    path = os.path.join(input_base, LABEL_NAMES_FILE)
    if not fileio.exists(path):
        return ()
    with fileio.open(path, "rb") as handle:
        text = handle.read().decode("utf-8-sig")
    lines = [line.strip() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    first: dict[str, int] = {}
    for number, name in enumerate(lines, start=1):
        if not name:
            raise sources.DataLayoutError(f"{path}, line {number}: empty (line i names integer label i-1)")
        if name in first:
            raise sources.DataLayoutError(f"{path}, line {number}: {name!r} already names label {first[name]}")
        first[name] = number - 1
    return tuple(lines)


def resolve_label_names(input_base: str, configured: Sequence[str]) -> tuple[str, ...]:
    """The names of integer labels: `configured` (data.label_names) or else `labels.txt` at the data root; both
    present and different is a `sources.DataLayoutError` naming both."""
    from_file = read_label_names(input_base)
    configured = tuple(configured)
    if configured and from_file and configured != from_file:
        raise sources.DataLayoutError(
            f"data.label_names {list(configured)} differ from {os.path.join(input_base, LABEL_NAMES_FILE)} "
            f"{list(from_file)}: keep one of them")
    return configured or from_file


def read_record_file(record_file: RecordFile, spec: RecordSpec) -> Iterator[RecordRead]:
    """Every record of one TFRecord file, checked (`check_record`); unreadable data ends the file with one
    `RecordRead` for the first record that could not be read."""
    compression = "GZIP" if record_file.path.lower().endswith(".gz") else ""
    index = 0
    try:
        for serialized in tf.data.TFRecordDataset(record_file.path, compression_type=compression).as_numpy_iterator():
            yield check_record(serialized, f"{record_file.relative_path}#{index}", spec)
            index += 1
    except tf.errors.OpError as err:  # truncated file, bad checksum, not TFRecord (or not GZIP) data at all
        yield RecordRead(f"{record_file.relative_path}#{index}", "",
                         reason=f"unreadable TFRecord data from record {index} on ({_op_message(err.message)})")


def check_record(serialized: bytes, path: str, spec: RecordSpec) -> RecordRead:
    """One record: parsed, label read and named, image checked by `images.inspect_image`; the example to ingest,
    or the quarantine reason."""
    try:
        example = tf.train.Example.FromString(serialized)
    except DecodeError:
        return RecordRead(path, "", reason="not a tf.train.Example (the record cannot be parsed)")
    feature = example.features.feature
    try:
        name = _label(feature, spec)
    except _Unnamed as unnamed:
        return RecordRead(path, unnamed.label, reason=unnamed.reason)
    except images.Quarantined as rejected:
        return RecordRead(path, "", reason=rejected.reason)
    try:
        data = _image(feature, spec.image_feature)
        prepared = images.prepare_image(data, spec.max_image_pixels, transcode=spec.transcode,
                                        min_side=spec.min_image_side)
    except images.Quarantined as rejected:
        return RecordRead(path, name, reason=rejected.reason)
    if prepared.note:  # re-encoded: the record carries what a viewer shows (and what the clients send)
        _replace(feature, spec.image_feature, prepared.data)
        info = prepared.info
        for key, value in ((features.WIDTH, info.width), (features.HEIGHT, info.height)):
            if key in feature and feature[key].HasField("int64_list"):
                _replace(feature, key, int(value))
        if features.FORMAT in feature and feature[features.FORMAT].HasField("bytes_list"):
            _replace(feature, features.FORMAT, info.format.encode("ascii"))
    if spec.label_names and feature[spec.label_feature].HasField("int64_list"):  # named: the examples carry names
        feature[spec.label_feature].Clear()
        feature[spec.label_feature].bytes_list.value.append(name.encode("utf-8"))
    if features.PATH not in feature:
        feature[features.PATH].bytes_list.value.append(path.encode("utf-8"))
    return RecordRead(path, name, hashlib.sha256(data).hexdigest(), example.SerializeToString(),
                      conversion=prepared.kind, note=prepared.note)


def _replace(feature: object, key: str, value: bytes | int) -> None:
    """Set a feature to one value (bytes or int64)."""
    feature[key].Clear()
    if isinstance(value, bytes):
        feature[key].bytes_list.value.append(value)
    else:
        feature[key].int64_list.value.append(value)


class _Unnamed(images.Quarantined):
    """A label the label names do not name (quarantined, counted under the label as read)."""

    def __init__(self, label: str, reason: str) -> None:
        super().__init__(reason)
        self.label = label


def _label(feature: object, spec: RecordSpec) -> str:
    """The class name; `_Unnamed` for a label the label names do not name, `images.Quarantined` when
    there is no usable label."""
    key = spec.label_feature
    if key not in feature:
        raise images.Quarantined(f"no '{key}' feature (the label)")
    kind = feature[key].WhichOneof("kind")
    values = list(getattr(feature[key], kind).value) if kind else []
    if kind == "float_list":
        raise images.Quarantined(f"'{key}' holds floats: a label is bytes (a class name) or int64")
    if len(values) != 1:
        raise images.Quarantined(f"'{key}' holds {len(values)} values: expected one label")
    names = spec.label_names
    if kind == "int64_list":
        number = int(values[0])
        if not names:
            return str(number)
        if not 0 <= number < len(names):
            raise _Unnamed(str(number), f"label {number} has no name ({spec.label_names_source} names labels 0 to "
                                        f"{len(names) - 1})")
        return names[number]
    try:
        text = values[0].decode("utf-8")
    except UnicodeDecodeError:
        raise images.Quarantined(f"'{key}' is not UTF-8 text") from None
    if not text.strip():
        raise images.Quarantined(f"'{key}' is empty: no label")
    if names and text not in names:
        raise _Unnamed(text, f"label {text!r} is not one of the {len(names)} label names ({spec.label_names_source})")
    return text


def _image(feature: object, key: str) -> bytes:
    """The encoded image bytes of a record's image feature; `images.Quarantined` when there is not exactly one."""
    if key not in feature:
        raise images.Quarantined(f"no '{key}' feature (the image)")
    kind = feature[key].WhichOneof("kind")
    if kind != "bytes_list":
        raise images.Quarantined(f"'{key}' holds {kind or 'no values'}, not encoded image bytes")
    values = feature[key].bytes_list.value
    if len(values) != 1:
        raise images.Quarantined(f"'{key}' holds {len(values)} values: expected one encoded image")
    if not values[0]:
        raise images.Quarantined(f"'{key}' is empty (0 bytes): no image")
    return values[0]


def _op_message(message: str) -> str:
    """A TensorFlow op error's first line without the `{{function_node …}}` prefix and `[Op:…]` suffix."""
    text = message.strip().splitlines()[0] if message.strip() else "no message"
    if text.startswith("{{") and "}}" in text:
        text = text.split("}}", 1)[1]
    return text.split(" [Op:")[0].strip()
