"""The embedded demo dataset: scikit-learn's `load_digits` (1,797 real 8×8 handwritten digits, shipped inside
scikit-learn) written out as PNG class folders, so `make run` works offline with real images.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

DEFAULT_DEMO_DIR = ".visionline/data/digits"
# The curated schema of this dataset (ImportSchemaGen), relative to the repository root.
DEMO_SCHEMA = str(Path(__file__).resolve().parents[1] / "schema" / "digits" / "schema.pbtxt")


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
