"""Transform module: the `preprocessing_fn` TFX's Transform component calls."""

from __future__ import annotations

from typing import Any

from components import preprocessing


def preprocessing_fn(inputs: dict[str, Any], custom_config: dict[str, Any]) -> dict[str, Any]:
    """tf.Transform entry point: see `components.preprocessing.transform_features`."""
    return preprocessing.transform_features(inputs, custom_config)
