"""Trainer module: the `run_fn` TFX's Trainer component calls."""

from __future__ import annotations

from tfx import v1 as tfx

import components.environment  # noqa: F401  (a TFX entry point: Keras 2 before TensorFlow loads)
from components.trainer import inputs, training, tuning
from components.trainer.settings import TrainSettings


def run_fn(fn_args: tfx.components.FnArgs) -> None:
    """TFX Trainer entry point: see `components.trainer.training.train_and_export` (the `custom_config` is
    validated as `TrainSettings` here; uses the Tuner's best hyper-parameters when the pipeline ran a Tuner, and the
    eval_args split as validation data when it is the `val` split of a train/val/test data root)."""
    training.train_and_export(
        train_files=fn_args.train_files,
        transform_output=fn_args.transform_output,
        serving_model_dir=fn_args.serving_model_dir,
        model_run_dir=fn_args.model_run_dir,
        settings=TrainSettings.from_custom_config(fn_args.custom_config),
        tuned_hyperparameters=tuning.hyperparameter_values(fn_args.hyperparameters),
        validation_files=inputs.validation_split_files(fn_args.eval_files),
        eval_files=fn_args.eval_files or (),
    )
