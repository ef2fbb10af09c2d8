"""A small real visionline SavedModel without a pipeline run: the Transform and Trainer code, run in-process.

`transform_graph` analyses a tf.Transform graph with tft_beam on a few raw examples, using the project's own
`preprocessing_fn` (`components.transform.preprocessing.transform_features`) and the config the pipeline hands
it (`trainer_config`, from `PipelineConfig`); `export_serving_model` builds the Trainer's model for that graph
(`components.trainer.training.build_model`) and exports it with `components.trainer.export.save_serving_model`,
so the SavedModel has every signature of visionline's serving contract, exactly as a pushed model has — only
untrained (its weights are the initial ones). Takes seconds, where the session's pipeline run takes minutes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata, metadata_io, schema_utils

from components.trainer import export, inputs, training
from components.trainer import model as models
from components.trainer.settings import TrainSettings
from components.transform import preprocessing
from pipeline.component_settings import component_settings
from pipeline.configs import PipelineConfig

RAW_SPEC = {"image": tf.io.FixedLenFeature([1], tf.string), "label": tf.io.FixedLenFeature([1], tf.string)}


def trainer_config(**overrides: Any) -> TrainSettings:
    """The Trainer's settings for a folder dataset with `overrides` (dotted config keys) over the demo preset (a
    small CNN), read from its `custom_config` as the module files read it after TFX hands it over (through JSON)."""
    config = PipelineConfig().override(["preset=demo", *(f"{k}={v}" for k, v in overrides.items())])
    payload = json.loads(json.dumps(component_settings(config, "folders").train.to_custom_config()))
    return TrainSettings.from_custom_config(payload)


def raw_rows(images_by_label: Mapping[str, Sequence[bytes]]) -> list[dict[str, list[bytes]]]:
    """Raw examples (`image`, `label`) in the instance-dict form tft_beam analyses."""
    return [{"image": [image], "label": [label.encode()]} for label, images in images_by_label.items()
            for image in images]


def transform_graph(work_dir: Path, rows: Sequence[Mapping[str, Any]], settings: TrainSettings,
                    raw_spec: Mapping[str, Any] = RAW_SPEC) -> str:
    """Analyse the project's `preprocessing_fn` on `rows`; write the transform graph (with the raw metadata, as
    TFX's Transform does) to `<work_dir>/transform` and return that path. `raw_spec`: e.g. a VarLen label for
    multilabel rows."""
    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(dict(raw_spec)))
    out = Path(work_dir) / "transform"
    with tft_beam.Context(temp_dir=str(Path(work_dir) / "tft_tmp"), force_tf_compat_v1=False):
        transform_fn = (list(rows), metadata) | tft_beam.AnalyzeDataset(
            lambda inputs: preprocessing.transform_features(inputs, settings))
        _ = transform_fn | tft_beam.WriteTransformFn(str(out))
    metadata_io.write_metadata(metadata, str(out / "metadata"))
    return str(out)


def export_serving_model(export_dir: Path, work_dir: Path, images_by_label: Mapping[str, Sequence[bytes]],
                         **overrides: Any) -> list[str]:
    """Export an untrained visionline SavedModel for `images_by_label` (its classes) to `export_dir`; return the
    class names in the model's index order. `overrides` are config keys, e.g. `**{"train.task": "binary"}`."""
    config = trainer_config(**{"transform.image_size": 16, "train.conv_filters": [8, 16], **overrides})
    tft_output = tft.TFTransformOutput(transform_graph(work_dir, raw_rows(images_by_label), config))
    names = inputs.class_names(tft_output)
    classifier, *_ = training.build_model(config, len(names), training.hyperparameters(config, None))
    models.compile_classifier(classifier, "adam", 1e-3, config.task)
    export.save_serving_model(classifier, tft_output, str(export_dir), names, task=config.task)
    return names
