"""Validate one encoded image and turn it into a `tf.train.Example` (no re-encoding).

`inspect_image` is the single gate every input file passes through: it identifies the format with Pillow,
applies the decompression-bomb guard, then decodes with the very TensorFlow op that Transform uses, so an
image that is ingested is one that Transform can decode. Failures raise `Quarantined` with a reason.

What TensorFlow 2.16's `tf.io.decode_image(channels=3, dtype=uint8)` does with the variants it accepts (checked
in tests/components/test_bad_inputs.py): 16-bit PNGs are scaled to 8 bits, CMYK JPEGs are converted to RGB, grayscale is
expanded, alpha and palette transparency are dropped, an animated GIF gives its first frame. Two variants it
gets wrong or refuses are quarantined with their own reason: palette (indexed colour) BMPs, whose colour table
TensorFlow ignores (it returns the colour indices as gray levels), and 1-bit BMPs. A file Pillow decodes but
TensorFlow does not (e.g. a PNG cut before its end chunk) gets a reason saying exactly that.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import PIL.Image

from components import features

if TYPE_CHECKING:
    import tensorflow as tf

# The decompression-bomb guard's default: the most pixels one image may declare, at ingestion (`data.max_image_pixels`)
# and in every request the server and the clients accept (`--max-image-pixels`).
MAX_IMAGE_PIXELS = 40_000_000

# What tf.io.decode_image can decode; anything else is quarantined with a reason.
DECODABLE_FORMATS = frozenset({"JPEG", "PNG", "GIF", "BMP"})


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


def inspect_image(data: bytes, max_pixels: int) -> ImageInfo:
    """Return format and size of an encoded image, or raise `Quarantined` saying why it is unusable."""
    if not data:
        raise Quarantined("empty file (0 bytes)")
    with warnings.catch_warnings():
        # Pillow warns above PIL.Image.MAX_IMAGE_PIXELS (~89 Mpx) and raises above twice that; the warning is
        # silenced because `max_pixels` below is the configured limit, the error still quarantines.
        warnings.simplefilter("ignore", PIL.Image.DecompressionBombWarning)
        try:
            with PIL.Image.open(io.BytesIO(data)) as img:
                info = ImageInfo(format=str(img.format), width=img.width, height=img.height, mode=img.mode)
        except PIL.UnidentifiedImageError:
            raise Quarantined("not an image (format not recognised)") from None
        except PIL.Image.DecompressionBombError as err:
            raise Quarantined(f"image too large (Pillow decompression-bomb guard: {err})") from None
        except (OSError, ValueError, SyntaxError) as err:
            raise Quarantined(f"corrupt or truncated image (unreadable header: {err})") from None
    if info.format not in DECODABLE_FORMATS:
        raise Quarantined(f"format {info.format} is not decodable by TensorFlow (supported: JPEG, PNG, GIF, BMP)")
    if info.width * info.height > max_pixels:
        raise Quarantined(f"image too large: {info.width}x{info.height} px exceeds max_image_pixels={max_pixels}")
    if info.format == "BMP" and info.mode == "P":
        raise Quarantined("palette BMP (indexed colour) is not supported: TensorFlow's BMP decoder ignores the colour "
                          "table and would read colour indices as gray levels")
    if info.format == "BMP" and info.mode == "1":
        raise Quarantined("1-bit BMP is not supported by TensorFlow's BMP decoder")
    _decode_with_tensorflow(data, info)
    return info


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
