"""Transform module: the `preprocessing_fn` TFX's Transform component calls."""

from __future__ import annotations

from typing import Any

import components.environment  # noqa: F401  (a TFX entry point: Keras 2 before TensorFlow loads)
from components.transform import preprocessing


def preprocessing_fn(inputs: dict[str, Any], custom_config: dict[str, Any]) -> dict[str, Any]:
    """tf.Transform entry point: see `components.transform.preprocessing.transform_features`."""
    return preprocessing.transform_features(inputs, custom_config)
