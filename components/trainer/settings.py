"""`TrainSettings` (with its `TunerSettings`): what the Tuner's `tuner_fn` and the Trainer's `run_fn` read from
their `custom_config`.

Built by the pipeline from `PipelineConfig` (pipeline/component_settings.py) and validated once by
`components.modules.trainer_module` / `tuner_module`; `components.trainer.training` and `tuning` read attributes.
The fields are the Transform settings (the Trainer applies the same Transform graph and exports with the image
feature), every `train.*` config field with `weights` resolved, and the `tuner.*` fields under `tuner`.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, Field

from components.settings import FROZEN_CLOSED
from components.transform.settings import TransformSettings

OPTIMIZERS = ("adam", "sgd", "rmsprop")
CNN_POOLING = ("avg", "flatten")
LR_SCHEDULES = ("constant", "cosine")  # cosine: decays to 0 over each training phase's epochs
EARLY_STOPPING_MONITORS = ("val_loss", "val_accuracy")
CLASS_WEIGHTS = ("auto", "on", "off")
TUNER_ALGORITHMS = ("random", "hyperband", "bayesian")


class TunerSettings(BaseModel):
    """The KerasTuner search (`tuner.*`); with `enabled` false the Tuner returns the configured values."""

    model_config = FROZEN_CLOSED

    enabled: bool
    algorithm: Literal[*TUNER_ALGORITHMS]
    max_trials: int = Field(ge=1)
    epochs_per_trial: int = Field(ge=1)


class TrainSettings(TransformSettings):
    """Backbone, head, augmentation and optimisation of the two training phases (see pipeline/configs.py's
    `TrainConfig` for what each field means), and the Tuner's search."""

    section: ClassVar[str] = "train"

    model: str = Field(min_length=1)  # backbone name (components/trainer/backbones/registry.py)
    weights: str = Field(min_length=1)  # resolved: imagenet | none | /path/to/weights.h5
    epochs: int = Field(ge=1)
    fine_tune_epochs: int = Field(ge=0)
    fine_tune_layers: float = Field(ge=0)
    fine_tune_learning_rate: float = Field(gt=0)
    batch_size: int = Field(ge=1)
    learning_rate: float = Field(gt=0)
    optimizer: Literal[*OPTIMIZERS]
    dropout: float = Field(ge=0, lt=1)
    dense_units: int = Field(ge=0)
    conv_filters: tuple[int, ...] = Field(min_length=1)
    cnn_pooling: Literal[*CNN_POOLING]
    cnn_block_dropout: float = Field(ge=0, lt=1)
    augment_flip: bool
    augment_rotation: float = Field(ge=0, le=0.5)
    augment_zoom: float = Field(ge=0, lt=1)
    augment_translation: float = Field(ge=0, lt=1)
    tta_flip: bool
    class_weights: Literal[*CLASS_WEIGHTS]
    cache_features: bool
    cache_dataset_mb: int = Field(ge=0)
    early_stopping_patience: int = Field(ge=0)
    early_stopping_monitor: Literal[*EARLY_STOPPING_MONITORS]
    reduce_lr_patience: int = Field(ge=0)
    lr_schedule: Literal[*LR_SCHEDULES]
    validation_fraction: float = Field(gt=0, lt=0.5)
    seed: int
    tuner: TunerSettings

