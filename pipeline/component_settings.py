"""The one bridge between `PipelineConfig` and the components' typed settings, both ways.

`component_settings(config, data_format)` builds the `TransformSettings` (Transform) and `TrainSettings` (Tuner and
Trainer) of a DAG, each carrying the fingerprint of the code it runs; `settings.to_custom_config()` is the payload
put in the DAG. The DAG builder (pipeline/pipeline.py, for local runs and Kubeflow compiles alike) and the Kubeflow
runtime parameter values (pipeline/kubeflow_runner.py) both get their payloads from here. `config_sections` is the
inverse: the `PipelineConfig` sections the settings came from (Kubeflow reads a compiled pipeline's payloads back
with it, through `TransformSettings` / `TrainSettings.from_custom_config`, to apply `train.epochs=5` overrides).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from google.protobuf import text_format

from components.trainer.settings import TrainSettings, TunerSettings
from components.transform.settings import TransformSettings
from pipeline import fingerprint
from pipeline.configs import PipelineConfig, TrainConfig, absolute

_PASSTHROUGH = "tfrecord"  # the one data format whose feature names come from the config


@dataclass(frozen=True)
class ModuleSettings:
    """The settings the TFX module files receive: Transform's, and the Tuner's and Trainer's (one payload)."""

    transform: TransformSettings
    train: TrainSettings


def component_settings(config: PipelineConfig, data_format: str, *, transform_code: str | None = None,
                       train_code: str | None = None) -> ModuleSettings:
    """The components' settings for `config` and the detected `data_format`.

    Feature names are configurable only for TFRecord passthrough; images we ingest ourselves always use `image` and
    `label`. `auto` normalisation and weights are resolved for `train.model`. `transform_code` / `train_code` are
    the code fingerprints to carry (default: this checkout's code, see pipeline/fingerprint.py).
    """
    passthrough = data_format == _PASSTHROUGH
    transform_fields: dict[str, Any] = {
        "image_feature": config.data.image_feature if passthrough else "image",
        "label_feature": config.data.label_feature if passthrough else "label",
        "image_size": config.resolved_image_size(),
        "normalization": config.normalization(),
        "task": config.train.task,
        "label_classes": schema_label_classes(config.data.schema_path, config.data.label_feature if passthrough
                                              else "label"),
        "positive_class": config.train.positive_class,
    }
    if transform_code is None:
        transform_code = fingerprint.source_fingerprint(fingerprint.TRANSFORM_SOURCES)
    if train_code is None:
        train_code = fingerprint.source_fingerprint(fingerprint.TRAINER_SOURCES)
    return ModuleSettings(
        transform=TransformSettings(**transform_fields, code_fingerprint=transform_code),
        train=TrainSettings(**{
            **transform_fields,
            **dataclasses.asdict(config.train),
            "weights": config.resolved_weights(),
            "preset": config.preset,
            "tuner": TunerSettings(**dataclasses.asdict(config.tuner)),
            "code_fingerprint": train_code,
        }),
    )


def schema_label_classes(schema_path: str, label_feature: str) -> tuple[str, ...]:
    """The label feature's string domain in a curated schema (in the schema's order), which fixes the label
    vocabulary; () without a schema, when the label has no string domain (e.g. integer labels), or when the schema
    is not readable here (a Kubeflow compile names its path inside the image): the vocabulary is then the sorted
    labels, the same order `visionline schema` writes domains in."""
    if not schema_path:
        return ()
    from tensorflow_metadata.proto.v0 import schema_pb2  # protobuf only: what a curated schema.pbtxt holds
    from tfx.dsl.io import fileio  # loads TFX: only when a curated schema is configured (and for gs:// paths)

    if not fileio.exists(absolute(schema_path)):
        return ()
    with fileio.open(absolute(schema_path), "r") as handle:
        schema = text_format.Parse(handle.read(), schema_pb2.Schema())
    for feature in schema.feature:
        if feature.name != label_feature:
            continue
        if feature.HasField("string_domain"):
            return tuple(feature.string_domain.value)
        return next((tuple(d.value) for d in schema.string_domain if d.name == feature.domain), ())
    return ()


def config_sections(settings: ModuleSettings) -> dict[str, Any]:
    """The inverse of `component_settings`: the `data` (feature names), `transform`, `train` and `tuner` config
    sections the settings were built from, and the preset, as `PipelineConfig.from_dict` takes them.

    The data format is not known here, so the feature names are the settings' own (as TFRecord passthrough names).
    A resolved image size, normalisation or weights value that equals what `auto` (0 for the size) resolves to
    becomes `auto` again, so a new `train.model` brings its own.
    """
    transform, train = settings.transform, settings.train
    sections: dict[str, Any] = {
        "data": {"image_feature": transform.image_feature, "label_feature": transform.label_feature},
        "transform": {"image_size": transform.image_size, "normalization": transform.normalization},
        "train": {f.name: getattr(train, f.name) for f in dataclasses.fields(TrainConfig)},
        "tuner": train.tuner.model_dump(),
        "preset": train.preset or "default",
    }
    automatic = PipelineConfig.from_dict({
        **sections,
        "transform": {**sections["transform"], "normalization": "auto", "image_size": 0},
        "train": {**sections["train"], "weights": "auto"},
    })
    if automatic.resolved_image_size() == transform.image_size:
        sections["transform"]["image_size"] = 0
    if automatic.normalization() == transform.normalization:
        sections["transform"]["normalization"] = "auto"
    if automatic.resolved_weights() == train.weights:
        sections["train"]["weights"] = "auto"
    return sections
