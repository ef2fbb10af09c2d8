"""The embedded demo dataset: scikit-learn's `load_digits` (1,797 real 8×8 handwritten digits, shipped inside
scikit-learn) written out as PNG class folders, so `make run` works offline with real images; and a multilabel
variant of the same images (a CSV manifest whose labels are digit attributes such as `even|loop`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

DEFAULT_DEMO_DIR = ".visionline/data/digits"
# The curated schema of this dataset (ImportSchemaGen), relative to the repository root.
DEMO_SCHEMA = str(Path(__file__).resolve().parents[1] / "schema" / "digits" / "schema.pbtxt")


def demo_dir(work_dir: str) -> Path:
    """Where `--demo` writes the digits: `<work_dir>/data/digits`, or the default folder when the work dir is
    remote (gs://…), since the images are written with local file I/O."""
    if "://" in work_dir:
        return Path(DEFAULT_DEMO_DIR)
    return Path(work_dir) / "data" / "digits"


def materialize_digits(dest: str | Path = DEFAULT_DEMO_DIR, per_class: int | None = None) -> Path:
    """Write `<dest>/<digit>/digit_<index>.png` (8-bit grayscale); idempotent. Returns `dest`.

    `per_class` keeps only the first N images of each digit (small fixtures for tests).
    """
    from sklearn.datasets import load_digits

    dest = Path(dest)
    marker = dest.with_name(dest.name + ".complete")  # beside, not inside: the data root holds only images
    expected = f"per_class={per_class}"
    if marker.exists() and marker.read_text() == expected:
        return dest
    digits = load_digits()
    counts: dict[int, int] = {}
    for index, (pixels, target) in enumerate(zip(digits.images, digits.target)):
        label = int(target)
        if per_class is not None and counts.get(label, 0) >= per_class:
            continue
        counts[label] = counts.get(label, 0) + 1
        folder = dest / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        image = np.clip(np.round(pixels * (255.0 / 16.0)), 0, 255).astype(np.uint8)
        Image.fromarray(image, mode="L").save(folder / f"digit_{index:04d}.png")
    marker.write_text(expected)
    return dest


# Multilabel demo: attributes of the digit drawn (0–3 per image; a `1` has none).
DIGIT_ATTRIBUTES = {
    "even": {0, 2, 4, 6, 8},
    "prime": {2, 3, 5, 7},
    "loop": {0, 6, 8, 9},  # a closed loop in the usual handwriting
}
DEFAULT_MULTILABEL_DIR = ".visionline/data/digit-attributes"


def digit_attributes(digit: int) -> list[str]:
    """Sorted attribute labels of a digit (possibly none)."""
    return sorted(name for name, digits in DIGIT_ATTRIBUTES.items() if digit in digits)


def materialize_digit_attributes(dest: str | Path = DEFAULT_MULTILABEL_DIR, per_class: int | None = None) -> Path:
    """Write the digits as `<dest>/images/<digit>/digit_<index>.png` plus `<dest>/labels.csv` (`path,label`,
    labels joined by `|`, empty for none); idempotent. Returns the manifest path (the data root to use)."""
    dest = Path(dest)
    images = materialize_digits(dest / "images", per_class=per_class)
    manifest = dest / "labels.csv"
    rows = ["path,label"]
    for path in sorted(images.glob("*/*.png")):
        rows.append(f"{path.relative_to(dest).as_posix()},{'|'.join(digit_attributes(int(path.parent.name)))}")
    text = "\n".join(rows) + "\n"
    if not manifest.exists() or manifest.read_text() != text:
        manifest.write_text(text)
    return manifest
