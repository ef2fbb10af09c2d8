"""`TrainSettings` (with its `TunerSettings`): what the Tuner's `tuner_fn` and the Trainer's `run_fn` read from
their `custom_config`.

Built by the pipeline from `PipelineConfig` (pipeline/component_settings.py) and validated once by
`components.modules.trainer_module` / `tuner_module`; `components.trainer.training` and `tuning` read attributes.
The fields are the Transform settings (the Trainer applies the same Transform graph and exports with the image
feature), every `train.*` config field with `weights` resolved, and the `tuner.*` fields under `tuner`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar, Literal

from pydantic import BaseModel, Field, field_validator

from components.settings import FROZEN_CLOSED
from components.transform.settings import TransformSettings

OPTIMIZERS = ("adamw", "adam", "sgd", "rmsprop")
CNN_POOLING = ("avg", "flatten")
LR_SCHEDULES = ("constant", "cosine")  # cosine: decays to 0 over each training phase's epochs
EARLY_STOPPING_MONITORS = ("val_loss", "val_accuracy")
CLASS_WEIGHTS = ("auto", "on", "off")
TUNER_ALGORITHMS = ("random", "hyperband", "bayesian")
DEVICES = ("auto", "cpu", "gpu")
MIXED_PRECISION = ("auto", "on", "off")
FINE_TUNE_FORMS = "'none', 'all', a share of the backbone's layers such as '30%', or a layer count such as '20 layers'"
_PERCENT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")
_LAYERS = re.compile(r"^\s*(\d+)\s+layers?\s*$")


@dataclass(frozen=True)
class FineTuneScope:
    """How much of a pretrained backbone phase 2 unfreezes: a share of its layers (1.0 = all) or a top-layer count.

    Written so that "all", a share and a layer count cannot be mistaken for one another (`train.fine_tune`:
    `all`, `30%`, `20 layers`; a bare number is refused as ambiguous)."""

    share: float = 0.0  # of the backbone's layers, from the top; 1.0 = all of them
    layers: int = 0  # or this many top layers

    @property
    def enabled(self) -> bool:
        """True when phase 2 unfreezes anything."""
        return self.share > 0 or self.layers > 0

    def count(self, total: int) -> int:
        """How many of `total` layers (from the top) this scope unfreezes."""
        wanted = self.layers if self.layers else int(round(self.share * total))
        return max(0, min(total, wanted))

    def __str__(self) -> str:
        if not self.enabled:
            return "none"
        if self.layers:
            return f"{self.layers} layers"
        return "all" if self.share >= 1.0 else f"{self.share * 100:g}%"


def parse_fine_tune(spec: str) -> FineTuneScope:
    """`none` | `all` | `P%` (0 < P <= 100) | `N layers` (N >= 1) → the scope; anything else is a ValueError."""
    text = str(spec).strip().lower()
    if text in ("none", "off", ""):
        return FineTuneScope()
    if text == "all":
        return FineTuneScope(share=1.0)
    percent = _PERCENT.match(text)
    if percent and 0 < float(percent.group(1)) <= 100:
        return FineTuneScope(share=float(percent.group(1)) / 100)
    layers = _LAYERS.match(text)
    if layers and int(layers.group(1)) >= 1:
        return FineTuneScope(layers=int(layers.group(1)))
    hint = " (a bare number is ambiguous: write '100%' or 'all' for the whole backbone, '3 layers' for a count)" \
        if re.fullmatch(r"\s*\d+(\.\d+)?\s*", text) else ""
    raise ValueError(f"must be {FINE_TUNE_FORMS}; got {spec!r}{hint}")


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
    fine_tune: str  # FineTuneScope as written: none | all | P% | N layers
    fine_tune_learning_rate: float = Field(gt=0)
    batch_size: int = Field(ge=1)
    learning_rate: float = Field(gt=0)
    optimizer: Literal[*OPTIMIZERS]
    weight_decay: float = Field(ge=0, lt=1)  # adamw only: decoupled weight decay
    dropout: float = Field(ge=0, lt=1)
    dense_units: int = Field(ge=0)
    conv_filters: tuple[int, ...] = Field(min_length=1)
    cnn_pooling: Literal[*CNN_POOLING]
    cnn_block_dropout: float = Field(ge=0, lt=1)
    augment_flip: bool
    augment_rotation: float = Field(ge=0, le=0.5)
    augment_zoom: float = Field(ge=0, lt=1)
    augment_translation: float = Field(ge=0, lt=1)
    augment_crop: float = Field(ge=0, lt=1)  # random resized crop: smallest share of the image area kept (0 = off)
    augment_color: float = Field(ge=0, le=0.5)  # colour jitter strength: brightness ±s, contrast/saturation ×(1 ± s)
    label_smoothing: float = Field(ge=0, lt=0.5)
    tta_flip: bool
    class_weights: Literal[*CLASS_WEIGHTS]
    cache_features: bool
    cache_dataset_mb: int = Field(ge=0)
    early_stopping_patience: int = Field(ge=0)
    early_stopping_monitor: Literal[*EARLY_STOPPING_MONITORS]
    reduce_lr_patience: int = Field(ge=0)
    lr_schedule: Literal[*LR_SCHEDULES]
    warmup_epochs: float = Field(ge=0)  # cosine only: linear warm-up over this many epochs, per step
    validation_fraction: float = Field(gt=0, lt=0.5)
    seed: int
    device: Literal[*DEVICES]
    mixed_precision: Literal[*MIXED_PRECISION]
    gpu_batch_size: int = Field(ge=0)  # 0: 4 × batch_size on a GPU
    tflite: bool  # TFLite variants beside the SavedModel (components/trainer/tflite_export.py)
    tflite_eval_images: int = Field(ge=1)  # eval images each TFLite variant (and the SavedModel) is measured on
    preset: str = ""  # the config preset the run resolved (recorded with the model, not used in training)
    tuner: TunerSettings

    @field_validator("fine_tune")
    @classmethod
    def _scope(cls, value: str) -> str:
        return str(parse_fine_tune(value))

    @property
    def fine_tune_scope(self) -> FineTuneScope:
        """`fine_tune` parsed."""
        return parse_fine_tune(self.fine_tune)

