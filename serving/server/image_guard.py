"""Decompression-bomb guard for requests: refuse encoded images whose header declares too many pixels.

A PNG of 8000×8000 zeros is 62 KB on the wire but decodes to 192 MB of RGB bytes and ~770 MB of float32 pixels in
visionline's serving graph (decode, cast, resize); measured on the local server, one such request raised its
resident memory by ~960 MiB, and a 20000×20000 one (~400 KB) would need ~6 GB. Ingestion already quarantines
images over `data.max_image_pixels`; this applies the same limit (`--max-image-pixels`, default 40 M) to what
clients send, before the model runs, as INVALID_ARGUMENT (HTTP 400).

Only the header is read (Pillow's lazy `Image.open`), and only for values that start with a signature
`tf.io.decode_image` recognises (PNG, JPEG, GIF, BMP): anything else is not decoded as an image by TensorFlow
either. String inputs that are serialized `tf.train.Example`s (the `serving_examples` and `classification`
signatures) are looked into: each bytes feature value is checked the same way.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterable, Mapping

import components.environment  # noqa: F401  (Keras 2 before TensorFlow loads)

# isort: split
import numpy as np
import PIL.Image
from google.protobuf.message import DecodeError
from tensorflow.core.example import example_pb2

from serving.errors import invalid

_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"BM")  # what tf.io.decode_image sniffs


def _is_image(data: bytes) -> bool:
    return data.startswith(_MAGIC)


def image_pixels(data: bytes) -> int | None:
    """width × height from the image header, or None if the header cannot be read (TensorFlow then rejects the
    image itself with its own error)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PIL.Image.DecompressionBombWarning)
        try:
            with PIL.Image.open(io.BytesIO(data)) as image:
                return int(image.width) * int(image.height)
        except PIL.Image.DecompressionBombError:
            return 2**63 - 1  # over Pillow's own hard limit: certainly over ours
        except Exception:  # unreadable header: not this guard's business
            return None


def _check(data: bytes, where: str, max_pixels: int) -> None:
    pixels = image_pixels(data)
    if pixels is not None and pixels > max_pixels:
        raise invalid(f"{where}: image too large: {pixels} pixels exceeds the limit of {max_pixels} "
                      "(--max-image-pixels)")


def _example_images(data: bytes) -> Iterable[bytes]:
    try:
        example = example_pb2.Example.FromString(data)
    except (DecodeError, ValueError, RuntimeWarning):
        return []
    return [value for feature in example.features.feature.values()
            for value in feature.bytes_list.value if _is_image(value)]


def check_encoded_sizes(values: Iterable[object], where: str, max_pixels: int | None) -> None:
    """INVALID_ARGUMENT if any value that is an encoded image (or a serialized tf.Example holding one) declares
    more than `max_pixels` pixels. No-op when `max_pixels` is None."""
    if max_pixels is None:
        return
    for index, value in enumerate(values):
        if not isinstance(value, bytes):
            continue
        if _is_image(value):
            _check(value, f"{where}[{index}]", max_pixels)
        else:
            for image in _example_images(value):
                _check(image, f"{where}[{index}] (tf.Example feature)", max_pixels)


def check_image_sizes(inputs: Mapping[str, np.ndarray], max_pixels: int | None) -> None:
    """`check_encoded_sizes` over every string input tensor."""
    for key, array in inputs.items():
        if array.dtype.kind == "O":
            check_encoded_sizes(array.reshape(-1), f"input {key!r}", max_pixels)
