"""What is done to an image before TensorFlow decodes it: EXIF orientation applied, and formats TensorFlow cannot
decode (TIFF, WebP) transcoded to PNG. One implementation (TF-free, Pillow only) for ingestion, `visionline
predict` / `predict-batch`, `visionline evaluate` and the local server's request path, so training and serving
see the same pixels.

EXIF orientation: TensorFlow's decoders ignore it, so a phone photo stored sideways with orientation 6 or 8 would
be trained and served sideways. An image whose orientation tag is 2–8 is turned upright with
`PIL.ImageOps.exif_transpose` and re-encoded as PNG (lossless from the decoded pixels); an image without the tag
or with orientation 1 is left byte for byte as it is (most images: no re-encoding). The tag is read from the
header (JPEG's APP1, TIFF's and WebP's EXIF, a PNG `eXIf` chunk placed before the pixel data); a PNG `eXIf` chunk
after the pixel data is not looked for (Pillow would have to decode the whole image to find it).

Transcoding: a single-image TIFF or WebP becomes a PNG of the same pixels (modes 1, L, LA, P, RGB, RGBA and
16-bit gray are kept exactly; RGBX and PA drop or expand nothing visible; CMYK, YCbCr and LAB are converted to RGB,
as TensorFlow does for a CMYK JPEG). Refused, with a reason: multi-page TIFFs and animated WebPs (which page?),
32-bit integer or float images (PNG cannot hold them). HEIC/HEIF needs the pillow-heif plugin, which is not
installed: such files are recognised by their `ftyp` brand and refused saying so.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import PIL.ExifTags
import PIL.Image
import PIL.ImageOps

TRANSCODABLE_FORMATS = frozenset({"TIFF", "WEBP"})
_PNG_MODES = frozenset({"1", "L", "LA", "P", "RGB", "RGBA", "I;16", "I;16B"})  # written by Pillow's PNG encoder as is
_LOSSLESS_TO = {"RGBX": "RGB", "PA": "RGBA", "La": "LA", "RGBa": "RGBA", "I;16L": "I;16"}
_COLOUR_TO_RGB = frozenset({"CMYK", "YCbCr", "LAB", "HSV"})
# ISO BMFF brands of HEIF/HEIC/AVIF files (bytes 8..12 of the `ftyp` box)
_HEIF_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1", b"msf1",
                          b"avif", b"avis"})
HEIF_REASON = ("HEIC/HEIF image: Pillow needs the pillow-heif plugin to read it, which is not installed; convert "
               "it to JPEG or PNG first")


class ConversionError(ValueError):
    """The image cannot be converted without loss or guesswork; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Converted:
    """Bytes to hand to TensorFlow instead of the original, and what was done (for the ingest summary)."""

    data: bytes
    note: str  # e.g. "EXIF orientation 6 applied, re-encoded as PNG"
    kind: str  # "orientation" | "transcode"


def is_heif(data: bytes) -> bool:
    """True for an ISO BMFF file whose `ftyp` brand is a HEIF/HEIC/AVIF one."""
    return data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS


def orientation(image: PIL.Image.Image) -> int:
    """The EXIF orientation (1–8) from the header; 1 when there is none or it is not a valid value."""
    if image.format == "PNG" and "exif" not in image.info:
        return 1  # no eXIf chunk before the pixel data (getexif() would decode the image to look further)
    try:
        value = image.getexif().get(PIL.ExifTags.Base.Orientation, 1)
    except Exception:  # noqa: BLE001  (a broken EXIF block is no orientation)
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def upright(image: PIL.Image.Image) -> Converted | None:
    """The image turned upright as PNG bytes if its EXIF orientation is 2–8, else None (keep the original bytes).

    Decodes the pixels (only for oriented images): call it after the pixel guard."""
    value = orientation(image)
    if value == 1:
        return None
    turned = PIL.ImageOps.exif_transpose(image)
    return Converted(_png(turned, image.format or "image"), f"EXIF orientation {value} applied, re-encoded as PNG",
                     "orientation")


def transcode(image: PIL.Image.Image) -> Converted:
    """A TIFF or WebP as PNG bytes of the same pixels (EXIF orientation applied); `ConversionError` when it cannot
    be done without loss or a guess. Decodes the pixels: call it after the pixel guard."""
    fmt = str(image.format)
    frames = getattr(image, "n_frames", 1)
    if frames > 1:
        kind = "multi-page TIFF" if fmt == "TIFF" else f"animated {fmt}"
        raise ConversionError(f"{kind} ({frames} pages/frames) is not transcoded: only single-image files are "
                              "(split it into one file per page)")
    value = orientation(image)
    turned = PIL.ImageOps.exif_transpose(image) if value != 1 else image
    done = f"{fmt} transcoded to PNG" + (f", EXIF orientation {value} applied" if value != 1 else "")
    if image.mode in _COLOUR_TO_RGB:
        done += f" ({image.mode} converted to RGB)"
    return Converted(_png(turned, fmt), done, "transcode")


def _png(image: PIL.Image.Image, fmt: str) -> bytes:
    mode = image.mode
    if mode in _LOSSLESS_TO:
        image = image.convert(_LOSSLESS_TO[mode])
    elif mode in _COLOUR_TO_RGB:
        image = image.convert("RGB")
    elif mode not in _PNG_MODES:
        raise ConversionError(f"{fmt} image of mode {mode} cannot be stored as PNG without loss (32-bit integer or "
                              "float pixels)")
    buffer = io.BytesIO()
    try:
        image.save(buffer, format="PNG")
    except (OSError, ValueError) as err:
        raise ConversionError(f"{fmt} image could not be re-encoded as PNG: {err}") from None
    return buffer.getvalue()
