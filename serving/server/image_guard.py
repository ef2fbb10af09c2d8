"""What the server does to encoded images in a request before the model runs: the decompression-bomb guard, and
EXIF orientation (as ingestion does).

Guard: a PNG of 8000×8000 zeros is 62 KB on the wire but decodes to 192 MB of RGB bytes and ~770 MB of float32
pixels in visionline's serving graph (decode, cast, resize); measured on the local server, one such request raised
its resident memory by ~960 MiB. A GIF is worse: TensorFlow decodes every frame, at the largest frame's size, so
a 48 KB GIF with a 10×10 screen and an 8000×8000 second frame did the same past a screen-only check. Ingestion
quarantines images over `data.max_image_pixels`; this applies the same limit (`--max-image-pixels`, default 40 M)
to the header's size and, for a GIF, to its canvas, the total area of its frames and their number
(`components.example_gen.pixel_guard`, the implementation ingestion and the clients use), as INVALID_ARGUMENT
(HTTP 400) before the model runs.

Orientation: an image whose EXIF orientation is 2–8 is replaced by the upright PNG that ingestion stores for it
(`components.example_gen.conversion.upright`), so the model sees the same pixels in training and serving.
Real TensorFlow Serving does not do this: a raw client must apply the orientation itself (README).

Only headers are read (Pillow's lazy `Image.open`; pixels are decoded only for an oriented image, after the
guard), and only for values that start with a signature `tf.io.decode_image` recognises (PNG, JPEG, GIF, BMP):
anything else is not decoded as an image by TensorFlow either. String inputs that are serialized
`tf.train.Example`s (the `serving_examples` and `classification` signatures) are looked into: each bytes feature
value is checked, and turned upright, the same way.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import components.environment  # noqa: F401  (Keras 2 before TensorFlow loads)

# isort: split
import numpy as np
import PIL.Image
from google.protobuf.message import DecodeError
from tensorflow.core.example import example_pb2

from components.example_gen.conversion import upright
from components.example_gen.pixel_guard import gif_problem
from serving.errors import invalid

_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"BM")  # what tf.io.decode_image sniffs


def _is_image(data: bytes) -> bool:
    return data.startswith(_MAGIC)


def image_pixels(data: bytes) -> int | None:
    """width × height from the image header, or None if the header cannot be read (TensorFlow then rejects the
    image itself with its own error)."""
    with _opened(data) as image:
        return None if image is None else int(image.width) * int(image.height)


@contextlib.contextmanager
def _opened(data: bytes) -> Iterator[PIL.Image.Image | None]:
    """Pillow's lazy open, or None when the header is unreadable (not this guard's business). Over Pillow's own
    hard limit raises `invalid`: certainly over ours."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PIL.Image.DecompressionBombWarning)
        try:
            image = PIL.Image.open(io.BytesIO(data))
        except PIL.Image.DecompressionBombError:
            yield _HUGE
            return
        except Exception:  # unreadable header: TensorFlow reports its own error
            yield None
            return
        with image:
            yield image


class _Huge:
    """Stands for an image over Pillow's hard limit (2× ~89 Mpx): certainly over ours."""

    width = height = 2**31 - 1
    size = (width, height)
    format = "huge"


_HUGE: Any = _Huge()


def _prepared(data: bytes, where: str, max_pixels: int | None) -> bytes:
    """`data`, or its upright PNG when it carries an EXIF orientation; INVALID_ARGUMENT over the pixel limits."""
    with _opened(data) as image:
        if image is None:
            return data
        if max_pixels is not None:
            pixels = int(image.width) * int(image.height)
            if pixels > max_pixels:
                raise invalid(f"{where}: image too large: {pixels} pixels exceeds the limit of {max_pixels} "
                              "(--max-image-pixels)")
            if image.format == "GIF":
                problem = gif_problem(data, image.size, max_pixels, f"the limit of {max_pixels} (--max-image-pixels)")
                if problem:
                    raise invalid(f"{where}: {problem}")
        if image is _HUGE:
            return data
        try:
            converted = upright(image)
        except Exception:  # noqa: BLE001  (pixels Pillow cannot decode: TensorFlow reports its own error)
            return data
        return data if converted is None else converted.data


def _example_images(example: example_pb2.Example) -> Iterable[tuple[Any, int]]:
    """(bytes_list values, index) of every image value in a tf.Example."""
    return [(feature.bytes_list.value, i) for feature in example.features.feature.values()
            for i, value in enumerate(feature.bytes_list.value) if _is_image(value)]


def _prepared_example(data: bytes, where: str, max_pixels: int | None) -> bytes:
    try:
        example = example_pb2.Example.FromString(data)
    except (DecodeError, ValueError, RuntimeWarning):
        return data
    changed = False
    for values, index in _example_images(example):
        image = values[index]
        upright_image = _prepared(image, f"{where} (tf.Example feature)", max_pixels)
        if upright_image is not image:
            values[index] = upright_image
            changed = True
    return example.SerializeToString() if changed else data


def prepare_encoded(values: Sequence[Any], where: str, max_pixels: int | None) -> list[Any]:
    """`values` with every encoded image (or serialized tf.Example holding one) turned upright by its EXIF
    orientation; INVALID_ARGUMENT if one declares more than `max_pixels` pixels (None: no pixel limit)."""
    out: list[Any] = []
    for index, value in enumerate(values):
        if isinstance(value, bytes):
            if _is_image(value):
                value = _prepared(value, f"{where}[{index}]", max_pixels)
            else:
                value = _prepared_example(value, f"{where}[{index}]", max_pixels)
        out.append(value)
    return out


def check_encoded_sizes(values: Iterable[object], where: str, max_pixels: int | None) -> None:
    """INVALID_ARGUMENT if any value that is an encoded image (or a serialized tf.Example holding one) declares
    more than `max_pixels` pixels. No-op when `max_pixels` is None."""
    if max_pixels is not None:
        prepare_encoded(list(values), where, max_pixels)


def prepare_image_inputs(inputs: Mapping[str, np.ndarray], max_pixels: int | None) -> dict[str, np.ndarray]:
    """`prepare_encoded` over every string input tensor: the inputs the model gets (same keys, shapes, dtypes)."""
    out: dict[str, np.ndarray] = {}
    for key, array in inputs.items():
        if array.dtype.kind == "O":
            prepared = prepare_encoded(array.reshape(-1).tolist(), f"input {key!r}", max_pixels)
            if any(new is not old for new, old in zip(prepared, array.reshape(-1), strict=True)):
                array = np.empty(len(prepared), dtype=object)
                array[:] = prepared
                array = array.reshape(inputs[key].shape)
        out[key] = array
    return out


def check_image_sizes(inputs: Mapping[str, np.ndarray], max_pixels: int | None) -> None:
    """The pixel-limit part of `prepare_image_inputs` (INVALID_ARGUMENT over the limit)."""
    prepare_image_inputs(inputs, max_pixels)
