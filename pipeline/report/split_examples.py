"""Reading one split of the run's Examples artifact for the report: its TFRecord files and their tf.Examples (GZIP
by file name), with the features the report uses (the encoded image, the label text, the source `path`).
The sample predictions (samples.py) and the label-issue search (embeddings.py, mislabelled.py) both read here."""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator, Sequence
from typing import Any

import tensorflow as tf

from components import features as feature_names


def split_files(examples_uri: str, split: str) -> list[str]:
    """The TFRecord files of one split of an Examples artifact."""
    return sorted(glob.glob(os.path.join(examples_uri, f"Split-{split}", "*")))


def read_records(files: Sequence[str], limit: int) -> Iterator[tuple[bytes, Any]]:
    """(serialized tf.Example, its feature map) of up to `limit` records of `files`, in file order."""
    if not files:
        return
    compression = "GZIP" if files[0].endswith(".gz") else ""
    dataset = tf.data.TFRecordDataset(list(files), compression_type=compression).take(limit)
    for serialized in dataset.as_numpy_iterator():
        yield serialized, tf.train.Example.FromString(serialized).features.feature


def first_bytes(features: Any, key: str) -> bytes:
    """The first bytes value of a feature, b"" when the example has none."""
    feature = features.get(key)
    return feature.bytes_list.value[0] if feature is not None and feature.bytes_list.value else b""


def source_path(features: Any) -> str:
    """The example's source file path under the data root ("" when ingestion recorded none)."""
    return first_bytes(features, feature_names.PATH).decode("utf-8", "replace")
