"""Tuner module: the `tuner_fn` TFX's Tuner component calls."""

from __future__ import annotations

import tensorflow_transform as tft
from tfx import v1 as tfx

import components.environment  # noqa: F401  (a TFX entry point: Keras 2 before TensorFlow loads)
from components.trainer import inputs, tuning
from components.trainer.settings import TrainSettings


def tuner_fn(fn_args: tfx.components.FnArgs) -> tfx.components.TunerFnResult:
    """TFX Tuner entry point: a KerasTuner search over `components.trainer.tuning.search_space`, or — with
    `tuner.enabled` false — the config's own values without any training. The `custom_config` (the Trainer's)
    is validated as `TrainSettings` here."""
    settings = TrainSettings.from_custom_config(fn_args.custom_config)
    if not settings.tuner.enabled:
        return tfx.components.TunerFnResult(
            tuner=tuning.configured_values_tuner(settings, fn_args.working_dir), fit_kwargs={"verbose": 0})
    data = inputs.training_inputs(fn_args.train_files, tft.TFTransformOutput(fn_args.transform_graph_path),
                                      settings, validation_files=inputs.validation_split_files(fn_args.eval_files))
    tuner = tuning.make_tuner(settings, len(data["class_names"]), fn_args.working_dir)
    return tfx.components.TunerFnResult(
        tuner=tuner,
        fit_kwargs={
            "x": data["train"],
            "validation_data": data["validation"],
            "epochs": settings.tuner.epochs_per_trial,
            "class_weight": data["class_weight"],
            "verbose": 2,
        },
    )
