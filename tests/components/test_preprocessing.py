"""Tests for components.transform.preprocessing: decoding, resizing, normalisation and the tf.Transform function."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

from components import features
from components.transform import preprocessing
from components.transform.settings import TransformSettings
from tests.conftest import encode


def test_decode_and_resize_handles_every_format_and_mode(rng):
    batch = [
        encode(rng.integers(0, 256, (10, 14, 3), dtype=np.uint8), "PNG"),
        encode(rng.integers(0, 256, (33, 20, 3), dtype=np.uint8), "JPEG"),
        encode(rng.integers(0, 256, (7, 7), dtype=np.uint8), "PNG"),  # grayscale
        encode(rng.integers(0, 256, (9, 5, 4), dtype=np.uint8), "PNG"),  # RGBA
        encode(rng.integers(0, 256, (6, 6), dtype=np.uint8), "GIF"),
        encode(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), "BMP"),
    ]
    pixels = preprocessing.decode_and_resize(tf.constant(batch), 16).numpy()
    assert pixels.shape == (6, 16, 16, 3) and pixels.dtype == np.float32
    assert pixels.min() >= 0.0 and pixels.max() <= 255.0
    gray = pixels[2]
    assert np.allclose(gray[..., 0], gray[..., 1]) and np.allclose(gray[..., 1], gray[..., 2])


def test_grayscale_values_survive_decoding():
    flat = np.full((4, 4), 200, dtype=np.uint8)
    pixels = preprocessing.decode_and_resize(tf.constant([encode(flat, "PNG")]), 8).numpy()
    assert np.allclose(pixels, 200.0, atol=0.5)


@pytest.mark.parametrize(
    ("mode", "low", "high"), [("zero_one", 0.0, 1.0), ("minus_one_one", -1.0, 1.0), ("lite", -127 / 128, 1.0)]
)
def test_normalize_ranges(mode, low, high):
    out = preprocessing.normalize(tf.constant([0.0, 255.0]), mode).numpy()
    assert out[0] == pytest.approx(low) and out[1] == pytest.approx(high)


def test_normalize_rejects_unknown_mode():
    with pytest.raises(ValueError, match="unknown normalization 'bogus'"):
        preprocessing.normalize(tf.constant([1.0]), "bogus")


def test_dense_column_accepts_sparse_and_dense():
    sparse = tf.sparse.from_dense(tf.constant([[b"a"], [b"b"]]))
    assert preprocessing.dense_column(sparse, b"").numpy().tolist() == [b"a", b"b"]
    assert preprocessing.dense_column(tf.constant([[1], [2]]), -1).numpy().tolist() == [1, 2]


def _settings(**fields):
    return TransformSettings(**{"image_feature": "image", "label_feature": "label", "task": "multiclass", **fields})


def _analyze_and_transform(rows, feature_spec, settings, tmp_path):
    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(feature_spec))
    with tft_beam.Context(temp_dir=str(tmp_path), force_tf_compat_v1=False):
        (transformed, _), transform_fn = (rows, metadata) | tft_beam.AnalyzeAndTransformDataset(
            lambda inputs: preprocessing.transform_features(inputs, settings)
        )
    return transformed, transform_fn


def test_transform_features_builds_pixels_and_a_label_vocabulary(rng, tmp_path):
    rows = [
        {"image": [encode(rng.integers(0, 256, (5, 6, 3), dtype=np.uint8), "PNG")], "label": [name.encode()]}
        for name in ["cat", "dog", "dog", "dog", "eel", "eel"]
    ]
    spec = {"image": tf.io.FixedLenFeature([1], tf.string), "label": tf.io.FixedLenFeature([1], tf.string)}
    config = _settings(image_size=8, normalization="minus_one_one")
    transformed, transform_fn = _analyze_and_transform(rows, spec, config, tmp_path)
    assert len(transformed) == 6
    image = np.asarray(transformed[0][features.IMAGE_XF])
    assert image.shape == (8, 8, 3) and image.min() >= -1.0 and image.max() <= 1.0
    labels = [int(np.asarray(row[features.LABEL_XF]).reshape(-1)[0]) for row in transformed]
    assert labels == [0, 1, 1, 1, 2, 2]  # vocabulary sorted by name, whatever the class counts (not dog first)


def test_transform_handles_integer_labels_and_custom_feature_names(rng, tmp_path):
    rows = [
        {"image_raw": [encode(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8), "PNG")], "label": [value]}
        for value in [3, 7, 7]
    ]
    spec = {"image_raw": tf.io.VarLenFeature(tf.string), "label": tf.io.FixedLenFeature([1], tf.int64)}  # sparse path
    config = _settings(image_size=8, normalization="zero_one", image_feature="image_raw", label_feature="label")
    transformed, _ = _analyze_and_transform(rows, spec, config, tmp_path)
    labels = [int(np.asarray(row[features.LABEL_XF]).reshape(-1)[0]) for row in transformed]
    assert labels == [0, 1, 1]  # integer labels in numeric order, not by frequency


def test_label_order_is_sorted_fixed_by_a_schema_and_puts_the_positive_class_at_index_1():
    assert preprocessing.label_order(["dog", "cat", "", "eel"]) == ["cat", "dog", "eel"]
    assert preprocessing.label_order(["10", "9", "2"]) == ["2", "9", "10"]  # integers numerically
    assert preprocessing.label_order(["b", "10", "9"]) == ["10", "9", "b"]
    assert preprocessing.label_order(["b", "zebra"], fixed=["c", "b", "a"]) == ["c", "b", "a", "zebra"]
    assert preprocessing.label_order(["photo", "not_photo"]) == ["not_photo", "photo"]  # default positive: photo
    assert preprocessing.label_order(["photo", "not_photo"], positive="not_photo") == ["photo", "not_photo"]
    with pytest.raises(ValueError, match="config field train.positive_class is 'foto', which is not a class of the "
                                         "data \\(classes: 'not_photo', 'photo'\\)"):
        preprocessing.label_order(["photo", "not_photo"], positive="foto")
    with pytest.raises(ValueError, match="label 'a\\\\nb' contains a line break"):
        preprocessing.label_order(["a\nb", "c"])


def _label_ids(rng, tmp_path, names, **fields):
    rows = [{"image": [encode(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8), "PNG")], "label": [name.encode()]}
            for name in names]
    spec = {"image": tf.io.FixedLenFeature([1], tf.string), "label": tf.io.FixedLenFeature([1], tf.string)}
    transformed, _ = _analyze_and_transform(rows, spec, _settings(image_size=8, normalization="zero_one", **fields),
                                            tmp_path)
    return [int(np.asarray(row[features.LABEL_XF]).reshape(-1)[0]) for row in transformed]


def test_label_indices_do_not_follow_class_counts(rng, tmp_path):
    assert _label_ids(rng, tmp_path / "a", ["b", "a", "a", "a"]) == _label_ids(rng, tmp_path / "b",
                                                                             ["b", "b", "b", "a"])[:1] + [0, 0, 0]
    assert _label_ids(rng, tmp_path / "c", ["b", "a"], label_classes=("b", "a", "c")) == [0, 1]  # curated schema
    assert _label_ids(rng, tmp_path / "d", ["yes", "no", "no"], task="binary", positive_class="no") == [0, 1, 1]
