"""Tests for components.example_gen.images: what is accepted, what is quarantined and why."""

from __future__ import annotations

import io

import numpy as np
import PIL.Image
import pytest
import tensorflow as tf

from components import features
from components.example_gen import images, pixel_guard
from tests.conftest import encode
from tests.image_files import asymmetric, gif_with_frames, oriented_jpeg, upright_pixels

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


# ---------------------------------------------------------------- GIF frames, EXIF orientation, transcoding, tiny


def _tf_pixels(data: bytes) -> np.ndarray:
    return tf.io.decode_image(data, channels=3, expand_animations=False).numpy()


def test_gif_frame_larger_than_its_screen_is_refused_before_decoding():
    data = gif_with_frames((10, 10), [(10, 10), (300, 200)])
    from PIL import Image

    assert Image.open(io.BytesIO(data)).size == (10, 10)  # Pillow reports the 10x10 screen …
    assert _tf_pixels(data).shape == (200, 300, 3)  # … TensorFlow decodes at the largest frame's size
    with pytest.raises(images.Quarantined, match=r"^image too large: GIF frame 2 of 2 is 300x200 px \(logical screen "
                                                 r"10x10\); TensorFlow decodes every frame onto a 300x200 px canvas, "
                                                 r"which exceeds max_image_pixels=10000$"):
        images.prepare_image(data, 10_000)
    assert images.prepare_image(data, 60_100).info.width == 10


def test_gif_canvas_is_the_largest_width_times_the_largest_height():
    data = gif_with_frames((10, 10), [(200, 10), (10, 200)])  # 2,000 px each, but a 200x200 canvas
    assert _tf_pixels(data).shape == (200, 200, 3)
    with pytest.raises(images.Quarantined, match="onto a 200x200 px canvas, which exceeds max_image_pixels=39999$"):
        images.prepare_image(data, 39_999)


def test_gif_total_area_over_all_frames_is_bounded():
    data = gif_with_frames((50, 50), [(50, 50)] * 41)  # 102,500 px decoded in all
    with pytest.raises(images.Quarantined, match=r"^image too large: 41 GIF frames decode to 102500 px in all "
                                                 r"\(TensorFlow decodes every frame\), which exceeds "
                                                 r"max_image_pixels=100000$"):
        images.prepare_image(data, 100_000)
    assert images.prepare_image(gif_with_frames((50, 50), [(50, 50)] * 40), 100_000).info.format == "GIF"


def test_gif_frame_count_is_bounded():
    frames = pixel_guard.gif_frame_sizes(gif_with_frames((8, 8), [(8, 8)] * 12), max_frames=10)
    assert len(frames.sizes) == 11 and not frames.complete  # stops once over the limit
    assert pixel_guard.gif_problem(gif_with_frames((8, 8), [(8, 8)] * 12), (8, 8), 10**6, "x", max_frames=10) == (
        "image too large: GIF with more than 10 frames (TensorFlow decodes every frame; at most 10 are accepted)")
    full = pixel_guard.gif_frame_sizes(gif_with_frames((8, 8), [(8, 8), (9, 7)]))
    assert full.sizes == ((8, 8), (9, 7)) and full.complete and full.total_pixels == 127


@pytest.mark.parametrize("orientation", [6, 8, 3])
def test_exif_orientation_is_applied_and_stored_as_png(orientation):
    pixels = asymmetric()
    data = oriented_jpeg(pixels, orientation)
    prepared = images.prepare_image(data, MAX)
    assert prepared.kind == "orientation" and prepared.note == f"EXIF orientation {orientation} applied, " \
                                                                "re-encoded as PNG"
    assert prepared.data.startswith(b"\x89PNG")
    upright = upright_pixels(data)
    assert upright.shape == ((40, 24, 3) if orientation in (6, 8) else (24, 40, 3))
    np.testing.assert_array_equal(_tf_pixels(prepared.data), upright)  # TensorFlow sees what a viewer shows
    assert (prepared.info.width, prepared.info.height) == (upright.shape[1], upright.shape[0])


def test_images_without_orientation_keep_their_bytes(rgb_png):
    plain = oriented_jpeg(asymmetric(), 1)
    for data in (plain, rgb_png, encode(asymmetric(), "JPEG")):
        prepared = images.prepare_image(data, MAX)
        assert prepared.data == data and prepared.note == "" and prepared.kind == ""


@pytest.mark.parametrize(("fmt", "save_args"), [("WEBP", {"lossless": True}), ("TIFF", {}),
                                                ("TIFF", {"compression": "tiff_lzw"})])
def test_tiff_and_webp_are_transcoded_to_png_losslessly(fmt, save_args):
    pixels = asymmetric()
    data = encode(pixels, fmt, **save_args)
    prepared = images.prepare_image(data, MAX)
    assert (prepared.kind, prepared.note, prepared.info.format) == ("transcode", f"{fmt} transcoded to PNG", "PNG")
    np.testing.assert_array_equal(_tf_pixels(prepared.data), pixels)
    with pytest.raises(images.Quarantined, match=rf"^format {fmt} is not decodable by TensorFlow \(supported: JPEG, "
                                                 r"PNG, GIF, BMP\) \(data.transcode=false: not transcoded to PNG\)$"):
        images.prepare_image(data, MAX, transcode=False)


def test_sixteen_bit_tiff_keeps_its_depth():
    from PIL import Image

    gray16 = (np.arange(16 * 16, dtype=np.uint16).reshape(16, 16) * 257)
    buffer = io.BytesIO()
    Image.fromarray(gray16).save(buffer, format="TIFF")
    prepared = images.prepare_image(buffer.getvalue(), MAX)
    with Image.open(io.BytesIO(prepared.data)) as png:
        assert png.mode in ("I;16", "I;16B", "I") and np.array_equal(np.asarray(png), gray16)


def test_tiffs_that_cannot_be_transcoded_get_a_reason():
    from PIL import Image

    pages = io.BytesIO()
    Image.new("RGB", (10, 10), "red").save(pages, format="TIFF", save_all=True,
                                           append_images=[Image.new("RGB", (10, 10), "blue")])
    with pytest.raises(images.Quarantined, match=r"^multi-page TIFF \(2 pages/frames\) is not transcoded"):
        images.prepare_image(pages.getvalue(), MAX)
    floats = io.BytesIO()
    Image.fromarray(np.ones((10, 10), np.float32)).save(floats, format="TIFF")
    with pytest.raises(images.Quarantined, match="TIFF image of mode F cannot be stored as PNG without loss"):
        images.prepare_image(floats.getvalue(), MAX)
    with pytest.raises(images.Quarantined, match="TIFF image too large: 100x100 px|image too large: 100x100 px"):
        images.prepare_image(encode(np.zeros((100, 100), np.uint8), "TIFF"), 9_999)  # guarded before decoding


def test_heic_is_refused_saying_the_plugin_is_missing():
    heic = b"\0\0\0\x18ftypheic\0\0\0\0mif1heic" + b"\0" * 64  # the start of an iPhone photo
    with pytest.raises(images.Quarantined) as caught:
        images.prepare_image(heic, MAX)
    assert caught.value.reason == ("HEIC/HEIF image: Pillow needs the pillow-heif plugin to read it, which is not "
                                   "installed; convert it to JPEG or PNG first")


@pytest.mark.parametrize(("shape", "accepted"), [((1, 1), False), ((7, 300), False), ((300, 7), False),
                                                 ((8, 8), True)])
def test_tiny_images_are_refused(shape, accepted):
    data = encode(np.zeros(shape, np.uint8), "PNG")
    if accepted:
        assert images.prepare_image(data, MAX).info.width == shape[1]
    else:
        with pytest.raises(images.Quarantined, match=rf"^image too small: {shape[1]}x{shape[0]} px \(under "
                                                     r"data.min_image_side=8 px on a side\)$"):
            images.prepare_image(data, MAX)
    assert images.prepare_image(data, MAX, min_side=1).info.height == shape[0]


def test_a_phone_jpeg_with_mpf_previews_is_a_jpeg():
    """Pillow calls a JPEG with an MPF extension (main image + previews, as many phones write) "MPO"; TensorFlow
    decodes its first image as a JPEG, so it is ingested as one, not quarantined as an unknown format."""
    main = PIL.Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 40, 3), dtype=np.uint8))
    preview = PIL.Image.fromarray(np.zeros((16, 20, 3), dtype=np.uint8))
    buffer = io.BytesIO()
    main.save(buffer, "MPO", save_all=True, append_images=[preview])
    data = buffer.getvalue()
    assert PIL.Image.open(io.BytesIO(data)).format == "MPO"
    prepared = images.prepare_image(data, 40_000_000)
    assert prepared.data == data and prepared.info == images.ImageInfo("JPEG", 40, 32, "RGB")
