"""The decompression-bomb guard's arithmetic: how many pixels TensorFlow will decode for an encoded image, read
from headers only, and the reason to refuse it. Ingestion, `visionline predict` / `predict-batch` and the local
server (REST and gRPC) all call this one implementation (TF-free: Pillow and the standard library only).

A still image decodes to its header's width × height. A GIF does not: TensorFlow's `decode_gif` (giflib's
`DGifSlurp`) decompresses *every* frame, each at its own size, into memory before it builds even the first output
frame, and it allocates the output canvas at the largest frame width × the largest frame height — not the
logical screen Pillow reports. A 48 KB GIF with a 10×10 screen and an 8000×8000 second frame used to pass a
screen-only guard and add ~950 MiB to the server's memory; 1,000 frames of 1000×1000 took 6.7 s and ~960 MiB.
So for a GIF the guard bounds three things, all from the frames' image descriptors (no pixel is decoded):
  * the canvas: max(screen, largest frame width) × max(screen, largest frame height) ≤ the pixel limit,
  * the total decoded area, the sum of every frame's width × height, ≤ the same pixel limit,
  * the number of frames ≤ `MAX_GIF_FRAMES` (each frame has a fixed cost in giflib and in this walk).

The frames are walked by `gif_frame_sizes`, a reader of GIF's block structure (descriptor, colour tables,
extension and data sub-blocks, skipped by their length bytes). Pillow is not used for this walk: its public
`seek` decodes the previous frame's pixels (the cost the guard must avoid), and its header-only frame count does
not expose the frames' sizes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

# The decompression-bomb guard's default: the most pixels one image may decode to, at ingestion
# (`data.max_image_pixels`) and in every request the server and the clients accept (`--max-image-pixels`).
MAX_IMAGE_PIXELS = 40_000_000
# The most frames a GIF may hold (TensorFlow decodes all of them; an animation this long is no training image).
MAX_GIF_FRAMES = 10_000

_GIF_SIGNATURES = (b"GIF87a", b"GIF89a")


@dataclass(frozen=True)
class GifFrames:
    """What a GIF's image descriptors declare; `complete` is False when the walk stopped early (a truncated
    file, or more than the frame limit)."""

    sizes: tuple[tuple[int, int], ...]  # (width, height) of each frame, in file order
    complete: bool

    @property
    def total_pixels(self) -> int:
        """Σ width × height: what giflib decompresses before TensorFlow builds any output."""
        return sum(width * height for width, height in self.sizes)

    def canvas(self, screen: tuple[int, int]) -> tuple[int, int]:
        """The largest frame width and height (and at least the logical screen): TensorFlow's output size."""
        return (max([screen[0], *(w for w, _ in self.sizes)]), max([screen[1], *(h for _, h in self.sizes)]))


def is_gif(data: bytes) -> bool:
    """True for bytes that start with a GIF signature."""
    return data[:6] in _GIF_SIGNATURES


def gif_frame_sizes(data: bytes, max_frames: int = MAX_GIF_FRAMES) -> GifFrames:
    """Sizes of a GIF's frames from their image descriptors, without decompressing any pixel data.

    Stops after `max_frames + 1` frames (enough to tell that the limit is exceeded) or where the file ends early.
    """
    if not is_gif(data) or len(data) < 13:
        return GifFrames((), False)
    flags = data[10]
    pos = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)  # after the global colour table
    sizes: list[tuple[int, int]] = []
    end = len(data)
    while pos < end:
        marker = data[pos]
        if marker == 0x3B:  # trailer
            return GifFrames(tuple(sizes), True)
        if marker == 0x21:  # extension: label byte, then data sub-blocks
            pos = _skip_sub_blocks(data, pos + 2)
        elif marker == 0x2C:  # image descriptor: x, y, width, height, flags (+ local colour table) + LZW data
            if pos + 10 > end:
                break
            width, height = struct.unpack_from("<HH", data, pos + 5)
            local = data[pos + 9]
            sizes.append((width, height))
            if len(sizes) > max_frames:
                break
            pos += 10 + (3 << ((local & 7) + 1) if local & 0x80 else 0)
            pos = _skip_sub_blocks(data, pos + 1)  # the LZW minimum code size byte, then the data sub-blocks
        else:  # not a block GIF knows: giflib stops here too (and TensorFlow reports the error)
            break
    return GifFrames(tuple(sizes), False)


def _skip_sub_blocks(data: bytes, pos: int) -> int:
    """Position after the sub-blocks starting at `pos` (each a length byte and that many bytes; 0 ends them)."""
    end = len(data)
    while pos < end:
        length = data[pos]
        pos += 1 + length
        if length == 0:
            return pos
    return end


def gif_problem(data: bytes, screen: tuple[int, int], max_pixels: int, limit: str,
                max_frames: int = MAX_GIF_FRAMES) -> str | None:
    """Why TensorFlow must not decode this GIF (its frames exceed the limits), or None.

    `screen` is the logical screen size from the header; `limit` names the setting in the reason (e.g.
    `max_image_pixels=40000000`)."""
    frames = gif_frame_sizes(data, max_frames)
    if len(frames.sizes) > max_frames:
        return (f"image too large: GIF with more than {max_frames} frames (TensorFlow decodes every frame; "
                f"at most {max_frames} are accepted)")
    width, height = frames.canvas(screen)
    if width * height > max_pixels:
        index, (frame_w, frame_h) = max(enumerate(frames.sizes, start=1), key=lambda item: item[1][0] * item[1][1])
        return (f"image too large: GIF frame {index} of {len(frames.sizes)} is {frame_w}x{frame_h} px (logical screen "
                f"{screen[0]}x{screen[1]}); TensorFlow decodes every frame onto a {width}x{height} px canvas, which "
                f"exceeds {limit}")
    if frames.total_pixels > max_pixels:
        return (f"image too large: {len(frames.sizes)} GIF frames decode to {frames.total_pixels} px in all "
                f"(TensorFlow decodes every frame), which exceeds {limit}")
    return None
