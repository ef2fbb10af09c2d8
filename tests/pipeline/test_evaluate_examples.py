"""`visionline evaluate`'s reading of labelled data (pipeline/evaluate/examples.py): a CSV manifest is read with the
config's columns (data.path_column, data.label_column), as ingestion reads it, not only by its column names."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from components.example_gen.manifest import ManifestOptions
from components.example_gen.sources import DataLayoutError
from pipeline.configs import PipelineConfig
from pipeline.evaluate.examples import write_examples
from tests.conftest import encode


def _labels(tfrecord: str) -> dict[str, str]:
    out = {}
    for record in tf.data.TFRecordDataset(tfrecord):
        feature = tf.train.Example.FromString(record.numpy()).features.feature
        out[feature["path"].bytes_list.value[0].decode()] = feature["label"].bytes_list.value[0].decode()
    return out


def test_a_manifest_is_read_with_the_configured_columns(tmp_path):
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.png", "c.png"):
        (tmp_path / name).write_bytes(encode(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8), "PNG"))
    # neither "truth" nor "picture" is named like a label or path column: by names alone the first columns are taken
    (tmp_path / "held_out.csv").write_text("batch,picture,truth\n1,a.png,cat\n1,b.png,dog\n2,c.png,cat\n")
    config = PipelineConfig().override(["data.path_column=picture", "data.label_column=truth"])
    options = ManifestOptions.from_dict(config.data.manifest_options())
    found = write_examples(str(tmp_path / "held_out.csv"), str(tmp_path / "x.tfrecord"), options=options)
    assert found.ingested == 3 and found.class_counts == {"cat": 2, "dog": 1}
    assert _labels(str(tmp_path / "x.tfrecord")) == {"a.png": "cat", "b.png": "dog", "c.png": "cat"}
    # without them the first column is taken for the paths: every row refused, each named ("file not found")
    with pytest.raises(DataLayoutError, match=r"no usable image .*held_out\.csv:2: file not found"):
        write_examples(str(tmp_path / "held_out.csv"), str(tmp_path / "y.tfrecord"))


def test_with_a_split_column_only_the_manifests_test_rows_are_evaluated(tmp_path):
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.png", "c.png", "d.png"):
        (tmp_path / name).write_bytes(encode(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8), "PNG"))
    (tmp_path / "all.csv").write_text("path,label,split\na.png,cat,train\nb.png,dog,test\nc.png,cat,test\n"
                                      "d.png,dog,somewhere\n")
    config = PipelineConfig().override(["data.split_column=split"])
    options = ManifestOptions.from_dict(config.data.manifest_options())
    found = write_examples(str(tmp_path / "all.csv"), str(tmp_path / "x.tfrecord"), options=options)
    assert _labels(str(tmp_path / "x.tfrecord")) == {"b.png": "dog", "c.png": "cat"}
    assert [(row["path"], row["reason"]) for row in found.quarantined] == [
        ("d.png", "all.csv:5: split 'somewhere' is not train, val or test (data.split_column)")]
