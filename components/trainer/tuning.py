"""Hyper-parameter search with KerasTuner (1.3.5: the last release that accepts tf_keras models).

The search space is the seeds': learning rate 1e-4..1e-2 (log), dropout 0.1..0.7, head units 32..512,
optimiser, and — for pretrained backbones — how many top layers are fine-tuned during the trial (`train.fine_tune`
values: none, 10, 20 or 40 layers). The TFX
Tuner component calls `tuner_fn`; the Trainer reads the winning values back with `hyperparameter_values`.

The Tuner stays in the DAG whether or not a run tunes: with `tuner.enabled` false it runs `ConfiguredValues`,
a zero-cost "search" whose single trial is the config's own values (nothing is trained), so tuning can be
switched per run (e.g. as a Kubeflow run parameter) without changing the pipeline's shape.
"""

from __future__ import annotations

from typing import Any

import keras_tuner as kt

from components.trainer import model as models
from components.trainer import training
from components.trainer.backbones import registry
from components.trainer.settings import OPTIMIZERS, TrainSettings, parse_fine_tune

FINE_TUNE_CHOICES = ("none", "10 layers", "20 layers", "40 layers")  # `train.fine_tune` values


def search_space(hp: kt.HyperParameters, pretrained: bool) -> dict[str, Any]:
    """Register the search space on `hp` and return the sampled values."""
    values: dict[str, Any] = {
        "learning_rate": hp.Float("learning_rate", 1e-4, 1e-2, sampling="log"),
        "dropout": hp.Float("dropout", 0.1, 0.7, step=0.1),
        "dense_units": hp.Int("dense_units", 32, 512, step=32),
        "optimizer": hp.Choice("optimizer", list(OPTIMIZERS)),
        "fine_tune": hp.Choice("fine_tune", list(FINE_TUNE_CHOICES)) if pretrained else "none",
    }
    return values


class ConfiguredValues(kt.RandomSearch):
    """One trial holding fixed values; `run_trial` trains nothing (tuning switched off for this run).

    Its summaries say so in one line each instead of KerasTuner's trial report, whose placeholder score
    (val_accuracy 0.0, nothing was measured) read like a failed model."""

    def run_trial(self, trial: kt.engine.trial.Trial, *args: Any, **kwargs: Any) -> dict[str, float]:
        return {"val_accuracy": 0.0}

    def search_space_summary(self, extended: bool = False) -> None:
        print("Tuning is off for this run (tuner.enabled=false): no search, nothing is trained here.")

    def results_summary(self, num_trials: int = 10) -> None:
        values = self.oracle.get_space().values
        print("best_hyperparameters are the configured values: "
              + ", ".join(f"{key}={value}" for key, value in values.items()))


def configured_values_tuner(settings: TrainSettings, directory: str, project_name: str = "visionline"
                            ) -> ConfiguredValues:
    """The no-search tuner whose best hyper-parameters are exactly the configured ones (see `training.TUNABLE`)."""
    hp = kt.HyperParameters()
    for key, value in training.hyperparameters(settings, None).items():
        hp.Fixed(key, value)
    return ConfiguredValues(hypermodel=lambda _: None, hyperparameters=hp, tune_new_entries=False, max_trials=1,
                            objective=kt.Objective("val_accuracy", "max"), directory=directory,
                            project_name=project_name, overwrite=True)


def make_tuner(settings: TrainSettings, num_classes: int, directory: str, project_name: str = "visionline"
               ) -> kt.Tuner:
    """A KerasTuner tuner over `search_space` for the configured backbone (RandomSearch/Hyperband/Bayesian)."""
    pretrained = registry.resolve_weights(registry.get_backbone(settings.model), settings.weights) is not None
    search = settings.tuner

    def build(hp: kt.HyperParameters) -> Any:
        values = search_space(hp, pretrained)
        classifier, backbone, _, is_pretrained = training.build_model(settings, num_classes, values)
        scope = parse_fine_tune(values["fine_tune"])
        if is_pretrained and scope.enabled:
            models.unfreeze_top(backbone, scope)
        return models.compile_classifier(classifier, values["optimizer"], float(values["learning_rate"]),
                                         settings.task, settings.label_smoothing, settings.weight_decay)

    common = dict(objective="val_accuracy", directory=directory, project_name=project_name, seed=settings.seed,
                  overwrite=False)
    if search.algorithm == "random":
        return kt.RandomSearch(build, max_trials=search.max_trials, **common)
    if search.algorithm == "bayesian":
        return kt.BayesianOptimization(build, max_trials=search.max_trials, **common)
    if search.algorithm == "hyperband":
        return kt.Hyperband(build, max_epochs=max(2, search.epochs_per_trial), factor=3, **common)
    raise ValueError(f"tuner.algorithm must be random, hyperband or bayesian; got {search.algorithm!r}")


def hyperparameter_values(hyperparameters: dict[str, Any] | None) -> dict[str, Any] | None:
    """The chosen values from a serialized `kt.HyperParameters` config (TFX's `best_hyperparameters`)."""
    if not hyperparameters:
        return None
    return dict(kt.HyperParameters.from_config(hyperparameters).values)
