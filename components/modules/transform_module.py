"""Transform module: the `preprocessing_fn` TFX's Transform component calls."""

from __future__ import annotations

from typing import Any

import components.environment  # noqa: F401  (a TFX entry point: Keras 2 before TensorFlow loads)
from components.transform import preprocessing
from components.transform.settings import TransformSettings


def preprocessing_fn(inputs: dict[str, Any], custom_config: dict[str, Any]) -> dict[str, Any]:
    """tf.Transform entry point: see `components.transform.preprocessing.transform_features` (the `custom_config`
    is validated as `TransformSettings` here)."""
    return preprocessing.transform_features(inputs, TransformSettings.from_custom_config(custom_config))
