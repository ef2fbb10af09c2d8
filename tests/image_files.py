"""Real image files for the image-safety tests, made with Pillow: GIFs whose frames differ in size from their
logical screen (as a decompression bomb has them), and JPEGs carrying an EXIF orientation."""

from __future__ import annotations

import io
import struct

import numpy as np
from PIL import Image, ImageOps


def _frame_block(width: int, height: int) -> bytes:
    """The image block (descriptor + LZW data) of a `width` x `height` frame of zeros, as Pillow's encoder
    writes it: a large uniform frame compresses to a few tens of kilobytes."""
    buffer = io.BytesIO()
    Image.new("L", (width, height), 0).save(buffer, format="GIF")
    data = buffer.getvalue()
    flags = data[10]
    pos = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
    while data[pos:pos + 1] == b"!":  # extensions before the image: label, then sub-blocks
        pos += 2
        while data[pos]:
            pos += data[pos] + 1
        pos += 1
    assert data[pos:pos + 1] == b"," and data.endswith(b";")
    return data[pos:-1]


def gif_with_frames(screen: tuple[int, int], frames: list[tuple[int, int]]) -> bytes:
    """A GIF89a whose logical screen is `screen` and whose frames have the given sizes (a 2-colour global table;
    every pixel is colour 0). Valid for Pillow and TensorFlow alike."""
    out = b"GIF89a" + struct.pack("<HHBBB", *screen, 0x80, 0, 0) + b"\0\0\0\xff\xff\xff"
    blocks: dict[tuple[int, int], bytes] = {}
    for size in frames:
        if size not in blocks:
            blocks[size] = _frame_block(*size)
        out += blocks[size]
    return out + b";"


def oriented_jpeg(pixels: np.ndarray, orientation: int) -> bytes:
    """A JPEG of `pixels` (stored as they are) whose EXIF says to display it with `orientation` (1-8)."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=95, exif=exif)
    return buffer.getvalue()


def upright_pixels(data: bytes) -> np.ndarray:
    """What a viewer shows: Pillow's decode with the EXIF orientation applied, as uint8 RGB."""
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(ImageOps.exif_transpose(image).convert("RGB"))


def asymmetric(height: int = 24, width: int = 40, seed: int = 0) -> np.ndarray:
    """Smooth, non-square RGB content with a clear left-to-right ramp, so every rotation or flip differs."""
    ramp = np.linspace(0, 255, width)[None, :].repeat(height, 0)
    noise = np.random.default_rng(seed).integers(0, 40, (height, width))
    return np.stack([ramp, ramp[::-1, ::-1] * 0.5, noise * 3.0], -1).clip(0, 255).astype(np.uint8)
