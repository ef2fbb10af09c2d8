"""Tests for components.ingest.images: what is accepted, what is quarantined and why."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from components import features
from components.ingest import images
from tests.conftest import encode

MAX = 40_000_000


@pytest.mark.parametrize(
    ("fmt", "shape", "save_args"),
    [
        ("PNG", (12, 9, 3), {}),
        ("JPEG", (12, 9, 3), {"quality": 90}),
        ("GIF", (12, 9), {}),
        ("BMP", (12, 9, 3), {}),
        ("PNG", (12, 9), {}),  # grayscale
        ("PNG", (12, 9, 4), {}),  # RGBA
    ],
)
def test_decodable_images_are_accepted(rng, fmt, shape, save_args):
    data = encode(rng.integers(0, 256, shape, dtype=np.uint8), fmt, **save_args)
    info = images.inspect_image(data, MAX)
    assert (info.format, info.width, info.height) == (fmt, 9, 12)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty file"),
        (b"this is a text file named photo.jpg\n", "not an image"),
    ],
)
def test_non_images_are_quarantined(data, reason):
    with pytest.raises(images.Quarantined, match=reason):
        images.inspect_image(data, MAX)


def test_truncated_jpeg_is_quarantined(rng):
    data = encode(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), "JPEG")
    with pytest.raises(images.Quarantined, match="corrupt or truncated"):
        images.inspect_image(data[: len(data) // 2], MAX)


def test_webp_gets_a_clear_reason(rng):
    data = encode(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), "WEBP")
    with pytest.raises(images.Quarantined, match="WEBP is not decodable by TensorFlow"):
        images.inspect_image(data, MAX)


def test_pixel_limit_guards_against_huge_images(rng):
    data = encode(np.zeros((100, 100), dtype=np.uint8), "PNG")
    with pytest.raises(images.Quarantined, match="exceeds max_image_pixels=9999"):
        images.inspect_image(data, 9_999)
    assert images.inspect_image(data, 10_000).width == 100


def test_example_keeps_original_bytes_label_and_path(rgb_png):
    info = images.inspect_image(rgb_png, MAX)
    example = images.make_example(rgb_png, "Bart Simpson", "train/Bart Simpson/ü 1.png", info)
    parsed = tf.train.Example.FromString(example.SerializeToString()).features.feature
    assert parsed[features.IMAGE].bytes_list.value[0] == rgb_png  # not re-encoded
    assert parsed[features.LABEL].bytes_list.value[0].decode() == "Bart Simpson"
    assert parsed[features.PATH].bytes_list.value[0].decode() == "train/Bart Simpson/ü 1.png"
    assert parsed[features.WIDTH].int64_list.value[0] == 30
    assert parsed[features.FORMAT].bytes_list.value[0] == b"PNG"
