"""Validate one encoded image and turn it into a `tf.train.Example` (no re-encoding).

`inspect_image` is the single gate every input file passes through: it identifies the format with Pillow,
applies the decompression-bomb guard, then decodes with the very TensorFlow op that Transform uses, so an
image that is ingested is one that Transform can decode. Failures raise `Quarantined` with a reason.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import PIL.Image

from components import features

if TYPE_CHECKING:
    import tensorflow as tf

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
        warnings.simplefilter("error", PIL.Image.DecompressionBombWarning)
        try:
            with PIL.Image.open(io.BytesIO(data)) as img:
                info = ImageInfo(format=str(img.format), width=img.width, height=img.height, mode=img.mode)
        except PIL.UnidentifiedImageError:
            raise Quarantined("not an image (format not recognised)") from None
        except (PIL.Image.DecompressionBombError, PIL.Image.DecompressionBombWarning) as err:
            raise Quarantined(f"image too large (Pillow decompression-bomb guard: {err})") from None
        except (OSError, ValueError, SyntaxError) as err:
            raise Quarantined(f"corrupt or truncated image (unreadable header: {err})") from None
    if info.format not in DECODABLE_FORMATS:
        raise Quarantined(f"format {info.format} is not decodable by TensorFlow (supported: JPEG, PNG, GIF, BMP)")
    if info.width * info.height > max_pixels:
        raise Quarantined(f"image too large: {info.width}x{info.height} px exceeds max_image_pixels={max_pixels}")
    _decode_with_tensorflow(data)
    return info


def _decode_with_tensorflow(data: bytes) -> None:
    import tensorflow as tf

    try:
        tf.io.decode_image(data, channels=3, expand_animations=False)
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError, tf.errors.OutOfRangeError) as err:
        message = getattr(err, "message", str(err)).strip().splitlines()[0]
        raise Quarantined(f"corrupt or truncated image (TensorFlow cannot decode it: {message})") from None


def make_example(data: bytes, label: str, relative_path: str, info: ImageInfo) -> tf.train.Example:
    """A `tf.train.Example` holding the original bytes, the label and provenance."""
    import tensorflow as tf

    def _bytes(value: bytes) -> tf.train.Feature:
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))

    def _int(value: int) -> tf.train.Feature:
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))

    example = tf.train.Example(
        features=tf.train.Features(
            feature={
                features.IMAGE: _bytes(data),
                features.LABEL: _bytes(label.encode("utf-8")),
                features.PATH: _bytes(relative_path.encode("utf-8")),
                features.FORMAT: _bytes(info.format.encode("ascii")),
                features.WIDTH: _int(info.width),
                features.HEIGHT: _int(info.height),
            }
        )
    )
    return example
