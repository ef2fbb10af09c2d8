"""Tests for components.example_gen.images: what is accepted, what is quarantined and why."""

from __future__ import annotations

import io

import numpy as np
import pytest
import tensorflow as tf

from components import features
from components.example_gen import images
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


def test_bmp_variants_tensorflow_gets_wrong_are_quarantined(rng):
    from PIL import Image

    rgb = Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
    palette = io.BytesIO()
    rgb.convert("P").save(palette, format="BMP")
    # TensorFlow reads a palette BMP's colour indices as gray levels instead of failing
    decoded = tf.io.decode_image(palette.getvalue(), channels=3).numpy()
    assert (decoded[..., 0] == decoded[..., 1]).all() and not (np.asarray(rgb.convert("P").convert("RGB")) ==
                                                                decoded).all()
    with pytest.raises(images.Quarantined, match="palette BMP"):
        images.inspect_image(palette.getvalue(), MAX)
    one_bit = io.BytesIO()
    rgb.convert("1").save(one_bit, format="BMP")
    with pytest.raises(images.Quarantined, match="1-bit BMP is not supported"):
        images.inspect_image(one_bit.getvalue(), MAX)
    gray = encode(rng.integers(0, 256, (8, 8), dtype=np.uint8), "BMP")  # 8-bit gray BMP: decoded right
    assert images.inspect_image(gray, MAX).mode == "L"


def test_png_without_its_end_chunk_gets_a_precise_reason(rgb_png):
    with pytest.raises(images.Quarantined) as caught:
        images.inspect_image(rgb_png[:-12], MAX)  # IEND chunk cut: Pillow still reads it, TensorFlow does not
    assert caught.value.reason.startswith("not decodable by TensorFlow although Pillow reads it (PNG, mode RGB: "
                                          "Invalid PNG data")
    assert "{{function_node" not in caught.value.reason and "[Op:" not in caught.value.reason


def test_configured_pixel_limit_not_pillows_decides(rng):
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    # header of a 10000 x 10000 PNG: above Pillow's warning level (~89 Mpx), below its hard error (~179 Mpx)
    header = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 10_000, 10_000, 8, 0, 0, 0, 0))
    data = header + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")
    with pytest.raises(images.Quarantined, match="^image too large: 10000x10000 px exceeds max_image_pixels=50000000$"):
        images.inspect_image(data, 50_000_000)


def test_multilabel_example_holds_sorted_labels(rgb_png):
    info = images.inspect_image(rgb_png, MAX)
    for labels in (["smiling", "eyeglasses"], []):
        example = images.make_example(rgb_png, labels, "img/1.png", info)
        assert list(example.features.feature[features.LABEL].bytes_list.value) == sorted(x.encode() for x in labels)
