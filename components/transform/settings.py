"""`TransformSettings`: what the Transform `preprocessing_fn` reads from its `custom_config`.

Built by the pipeline from `PipelineConfig` (pipeline/component_settings.py) and validated once by
`components.modules.transform_module`; `components.transform.preprocessing.transform_features` reads its
attributes. The Trainer's settings extend these (it applies the same Transform graph).
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from components.settings import ComponentSettings

# Pixel normalisations `components.transform.preprocessing.normalize` applies (the config adds `auto`: the
# backbone's own, resolved before the settings are built).
NORMALIZATIONS = ("zero_one", "minus_one_one", "lite", "raw", "caffe")
TASKS = ("multiclass", "binary", "multilabel")


class TransformSettings(ComponentSettings):
    """Which raw features hold the image and the label, and how images become model inputs."""

    section: ClassVar[str] = "transform"

    image_feature: str = Field(min_length=1)  # raw feature with the encoded image bytes
    label_feature: str = Field(min_length=1)  # raw label feature (bytes or int64; multilabel: 0..n strings)
    image_size: int = Field(ge=8, le=1024)  # square side, pixels
    normalization: Literal[*NORMALIZATIONS]  # resolved: never `auto`
    task: Literal[*TASKS]  # multilabel: the label becomes a set of label indices
    # The label vocabulary (preprocessing.label_order): a curated schema's label domain fixes it, in its order
    # (empty: every label seen, sorted); for `binary` the positive class is index 1 (empty: the second sorted name).
    label_classes: tuple[str, ...] = ()
    positive_class: str = ""
