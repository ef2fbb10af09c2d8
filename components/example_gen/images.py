"""Validate one encoded image, make it what TensorFlow should decode, and turn it into a `tf.train.Example`.

`prepare_image` is the single gate every input file passes through, at ingestion and in `visionline predict` /
`predict-batch` / `evaluate`: it identifies the format with Pillow (headers only), applies the decompression-bomb
guard (`pixel_guard`: the header's size, and for a GIF every frame's), turns an EXIF-oriented image upright and,
with `transcode`, converts TIFF/WebP to PNG (`conversion`), then checks the result with `inspect_image`: the size
limits again and a decode with the very TensorFlow op that Transform uses, so an image that is ingested is one that
Transform can decode. Images under `min_side` pixels on a side are refused too. Failures raise `Quarantined` with
a reason. Images that need neither step keep their original bytes.

What TensorFlow 2.16's `tf.io.decode_image(channels=3, dtype=uint8)` does with the variants it accepts (checked
in tests/components/test_bad_inputs.py): 16-bit PNGs are scaled to 8 bits, CMYK JPEGs are converted to RGB, grayscale is
expanded, alpha and palette transparency are dropped, an animated GIF gives its first frame. Two variants it
gets wrong or refuses are quarantined with their own reason: palette (indexed colour) BMPs, whose colour table
TensorFlow ignores (it returns the colour indices as gray levels), and 1-bit BMPs. A file Pillow decodes but
TensorFlow does not (e.g. a PNG cut before its end chunk) gets a reason saying exactly that.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import PIL.Image

from components import features
from components.example_gen import conversion, pixel_guard
from components.example_gen.pixel_guard import MAX_IMAGE_PIXELS

if TYPE_CHECKING:
    import tensorflow as tf

__all__ = ["MAX_IMAGE_PIXELS", "MIN_IMAGE_SIDE", "ImageInfo", "Prepared", "Quarantined", "inspect_image",
           "make_example", "prepare_image"]

# Images smaller than this on either side are refused (`data.min_image_side`): a 1x1 "image" (a tracking pixel,
# a failed thumbnail) carries no content to learn from and would be upscaled to the model's input size.
MIN_IMAGE_SIDE = 8

# What tf.io.decode_image can decode; anything else is transcoded (`transcode`) or quarantined with a reason.
DECODABLE_FORMATS = frozenset({"JPEG", "PNG", "GIF", "BMP"})
# Pillow's name for a JPEG with an MPF extension (many phone and camera photos: the main image plus previews or a
# second view in APP2). TensorFlow's JPEG decoder reads its first image, so it is a JPEG here.
_FORMAT_ALIASES = {"MPO": "JPEG"}


def _format(image: PIL.Image.Image) -> str:
    name = str(image.format)
    return _FORMAT_ALIASES.get(name, name)

class Quarantined(Exception):
    """An input file was rejected; `reason` is what goes into the quarantine report."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class ImageInfo:
    """What ingestion records about an accepted image."""

    format: str
    width: int
    height: int
    mode: str


@dataclass(frozen=True)
class Prepared:
    """What `prepare_image` accepted: the bytes to store or send (the original, or a PNG when converted), their
    `ImageInfo`, and what was done (`note` empty when the bytes are the original's)."""

    data: bytes
    info: ImageInfo
    note: str = ""
    kind: str = ""  # "" | "orientation" | "transcode"


@contextlib.contextmanager
def _opened(data: bytes) -> Iterator[PIL.Image.Image]:
    """Pillow's lazy open (header only), with every header failure as `Quarantined`."""
    if not data:
        raise Quarantined("empty file (0 bytes)")
    with warnings.catch_warnings():
        # Pillow warns above PIL.Image.MAX_IMAGE_PIXELS (~89 Mpx) and raises above twice that; the warning is
        # silenced because `max_pixels` is the configured limit, the error still quarantines.
        warnings.simplefilter("ignore", PIL.Image.DecompressionBombWarning)
        try:
            image = PIL.Image.open(io.BytesIO(data))
        except PIL.UnidentifiedImageError:
            if conversion.is_heif(data):
                raise Quarantined(conversion.HEIF_REASON) from None
            raise Quarantined("not an image (format not recognised)") from None
        except PIL.Image.DecompressionBombError as err:
            raise Quarantined(f"image too large (Pillow decompression-bomb guard: {err})") from None
        except (OSError, ValueError, SyntaxError) as err:
            raise Quarantined(f"corrupt or truncated image (unreadable header: {err})") from None
        with image:
            yield image


def _check_size(data: bytes, image: PIL.Image.Image, max_pixels: int) -> None:
    """The decompression-bomb guard on the header's size and, for a GIF, on every frame's (`pixel_guard`)."""
    if image.width * image.height > max_pixels:
        raise Quarantined(f"image too large: {image.width}x{image.height} px exceeds max_image_pixels={max_pixels}")
    if image.format == "GIF":
        problem = pixel_guard.gif_problem(data, image.size, max_pixels, f"max_image_pixels={max_pixels}")
        if problem:
            raise Quarantined(problem)


def prepare_image(data: bytes, max_pixels: int = MAX_IMAGE_PIXELS, *, transcode: bool = True,
                  min_side: int = MIN_IMAGE_SIDE) -> Prepared:
    """The bytes TensorFlow should decode for this file (EXIF orientation applied; TIFF/WebP as PNG with
    `transcode`), checked by `inspect_image`; or raise `Quarantined` saying why the file is unusable."""
    converted: conversion.Converted | None = None
    with _opened(data) as image:
        fmt = _format(image)
        _check_size(data, image, max_pixels)  # before anything decodes a pixel
        try:
            if fmt in DECODABLE_FORMATS:
                _check_variant(fmt, image.mode)
                converted = conversion.upright(image)
            elif transcode and fmt in conversion.TRANSCODABLE_FORMATS:
                converted = conversion.transcode(image)
            else:
                hint = " (data.transcode=false: not transcoded to PNG)" if fmt in conversion.TRANSCODABLE_FORMATS \
                    else ""
                raise Quarantined(f"format {fmt} is not decodable by TensorFlow (supported: JPEG, PNG, GIF, BMP){hint}")
        except conversion.ConversionError as err:
            raise Quarantined(err.reason) from None
        except (OSError, ValueError, SyntaxError) as err:  # the pixels of an oriented/transcoded image are unreadable
            raise Quarantined(f"corrupt or truncated image (Pillow cannot decode it: {err})") from None
    if converted is None:
        return Prepared(data, inspect_image(data, max_pixels, min_side))
    return Prepared(converted.data, inspect_image(converted.data, max_pixels, min_side), converted.note,
                    converted.kind)


def inspect_image(data: bytes, max_pixels: int, min_side: int = MIN_IMAGE_SIDE) -> ImageInfo:
    """Return format and size of an encoded image TensorFlow can decode as it is, or raise `Quarantined` saying
    why it is unusable (no conversion: `prepare_image` is the gate for files as users have them)."""
    with _opened(data) as image:
        info = ImageInfo(format=_format(image), width=image.width, height=image.height, mode=image.mode)
        if info.format not in DECODABLE_FORMATS:
            raise Quarantined(f"format {info.format} is not decodable by TensorFlow (supported: JPEG, PNG, GIF, BMP)")
        _check_size(data, image, max_pixels)
    _check_variant(info.format, info.mode)
    if min(info.width, info.height) < min_side:
        raise Quarantined(f"image too small: {info.width}x{info.height} px (under data.min_image_side={min_side} px "
                          "on a side)")
    _decode_with_tensorflow(data, info)
    return info


def _check_variant(fmt: str, mode: str) -> None:
    if fmt == "BMP" and mode == "P":
        raise Quarantined("palette BMP (indexed colour) is not supported: TensorFlow's BMP decoder ignores the colour "
                          "table and would read colour indices as gray levels")
    if fmt == "BMP" and mode == "1":
        raise Quarantined("1-bit BMP is not supported by TensorFlow's BMP decoder")


def _decode_with_tensorflow(data: bytes, info: ImageInfo) -> None:
    import tensorflow as tf

    try:
        tf.io.decode_image(data, channels=3, expand_animations=False, dtype=tf.uint8)
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError, tf.errors.OutOfRangeError) as err:
        message = _op_message(getattr(err, "message", str(err)))
        if _pillow_decodes(data):  # Pillow is more lenient (e.g. a PNG without its end chunk) or knows the variant
            raise Quarantined(f"not decodable by TensorFlow although Pillow reads it ({info.format}, mode {info.mode}: "
                              f"{message}): a damaged end of file or a variant TensorFlow does not support") from None
        raise Quarantined(f"corrupt or truncated image (TensorFlow cannot decode it: {message})") from None


def _op_message(message: str) -> str:
    """First line of a TensorFlow op error without the `{{function_node …}}` prefix and `[Op:…]` suffix."""
    text = message.strip().splitlines()[0] if message.strip() else "no message"
    if text.startswith("{{") and "}}" in text:
        text = text.split("}}", 1)[1]
    return text.split(" [Op:")[0].strip()


def _pillow_decodes(data: bytes) -> bool:
    """True when Pillow decodes every pixel (only asked after TensorFlow failed, to tell corrupt from unsupported)."""
    try:
        with PIL.Image.open(io.BytesIO(data)) as img:
            img.load()
        return True
    except Exception:  # noqa: BLE001  (any failure means: not a valid image)
        return False


def make_example(data: bytes, label: str | Sequence[str], relative_path: str, info: ImageInfo) -> tf.train.Example:
    """A `tf.train.Example` holding the original bytes, the label and provenance.

    `label` is one class name, or for multilabel data a sequence of 0..n label names (stored sorted).
    """
    import tensorflow as tf

    def _bytes(value: bytes) -> tf.train.Feature:
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))

    labels = [label] if isinstance(label, str) else sorted(label)

    def _int(value: int) -> tf.train.Feature:
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))

    example = tf.train.Example(
        features=tf.train.Features(
            feature={
                features.IMAGE: _bytes(data),
                features.LABEL: tf.train.Feature(bytes_list=tf.train.BytesList(
                    value=[name.encode("utf-8") for name in labels])),
                features.PATH: _bytes(relative_path.encode("utf-8")),
                features.FORMAT: _bytes(info.format.encode("ascii")),
                features.WIDTH: _int(info.width),
                features.HEIGHT: _int(info.height),
            }
        )
    )
    return example
