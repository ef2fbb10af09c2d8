"""A small trained visionline model with its TFLite variants, for the TFLite tests: learnable images per task
(made with numpy and Pillow), a Transform graph (`tests/model_helpers.py`), a few epochs of the Trainer's model, the
SavedModel export and `components.trainer.tflite_export.export_variants` — seconds, no pipeline run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras

from components.tflite_variants import VARIANTS
from components.trainer import export, inputs, tflite_export, training
from components.trainer import model as models
from tests.conftest import encode
from tests.model_helpers import RAW_SPEC, trainer_config, transform_graph

MULTILABEL_SPEC = {"image": tf.io.FixedLenFeature([1], tf.string), "label": tf.io.VarLenFeature(tf.string)}


def learnable_rows(task: str, count: int, seed: int = 0, size: int = 20) -> list[dict[str, list[bytes]]]:
    """Raw rows {image: [PNG], label: [names]} of `size`-pixel images whose class shows: multiclass — which colour
    channel is up (red / green / blue); binary — dark or bright; multilabel — `bright` and/or `red` (0–2 labels)."""
    rng = np.random.default_rng(seed)
    rows = []
    for index in range(count):
        if task == "multilabel":
            bright, red = index % 2 == 0, (index // 2) % 2 == 0
            pixels = np.clip(rng.normal(190 if bright else 50, 12, (size, size, 3)), 0, 255)
            if red:
                pixels[..., 0], pixels[..., 1:] = 250, pixels[..., 1:] * 0.3
            labels = [name for name, on in (("bright", bright), ("red", red)) if on]
        elif task == "binary":
            labels = ["bright" if index % 2 else "dark"]
            pixels = np.clip(rng.normal(200 if index % 2 else 40, 15, (size, size, 3)), 0, 255)
        else:
            channel = index % 3
            labels = [("red", "green", "blue")[channel]]
            pixels = np.clip(rng.normal(60, 15, (size, size, 3)), 0, 255)
            pixels[..., channel] = np.clip(rng.normal(220, 15, (size, size)), 0, 255)
        rows.append({"image": [encode(pixels.astype(np.uint8), "PNG")], "label": [lab.encode() for lab in labels]})
    return rows


def write_examples(path: Path, rows: list[dict[str, list[bytes]]]) -> str:
    """GZIP TFRecords of raw tf.Examples (as ImageExampleGen writes them); returns the path."""
    with tf.io.TFRecordWriter(str(path), options="GZIP") as writer:
        for row in rows:
            writer.write(tf.train.Example(features=tf.train.Features(feature={
                key: tf.train.Feature(bytes_list=tf.train.BytesList(value=values)) for key, values in row.items()
            })).SerializeToString())
    return str(path)


def trained_variants(work_dir: Path, task: str, epochs: int = 12, variants: tuple[str, ...] = VARIANTS,
                     through_trainer: bool = False, **overrides: Any) -> dict[str, Any]:
    """Train the Trainer's small CNN on learnable rows for `task`, export it, convert its TFLite variants (measured
    on separate eval rows); returns export_dir, report, class names, the eval rows, the parameter count and the
    settings. `through_trainer`: with `training.train_and_export` (`train.epochs` from `epochs`, all variants)
    instead of a plain fit and `tflite_export.export_variants`."""
    train_rows, eval_rows = learnable_rows(task, 48, seed=1), learnable_rows(task, 24, seed=2)
    train_files = write_examples(work_dir / "train.tfrecord.gz", train_rows)
    eval_files = write_examples(work_dir / "eval.tfrecord.gz", eval_rows)
    config = trainer_config(**{"transform.image_size": 16, "train.conv_filters": [8, 16], "train.task": task,
                               "train.learning_rate": 0.01, "train.epochs": epochs, "train.batch_size": 8,
                               **overrides})
    spec = MULTILABEL_SPEC if task == "multilabel" else RAW_SPEC
    transform = transform_graph(work_dir, train_rows, config, raw_spec=spec)
    tft_output = tft.TFTransformOutput(transform)
    names = inputs.class_names(tft_output)
    export_dir = work_dir / "model"
    if through_trainer:  # the Trainer's own code path: train_and_export writes the variants
        record = training.train_and_export([train_files], transform, str(export_dir), str(work_dir / "run" / "1"),
                                           config, eval_files=[eval_files])
        return {"export_dir": export_dir, "report": record["tflite"], "names": names, "eval_rows": eval_rows,
                "parameters": record["parameters"], "config": config}
    keras.utils.set_random_seed(config.seed)
    classifier, *_ = training.build_model(config, len(names), training.hyperparameters(config, None))
    models.compile_classifier(classifier, "adam", 0.01, task)
    classifier.fit(inputs.make_dataset(train_files, tft_output, batch_size=8, shuffle=True, task=task),
                   epochs=epochs, verbose=0)
    export.save_serving_model(classifier, tft_output, str(export_dir), names, task=task, tta_flip=config.tta_flip)
    report = tflite_export.export_variants(
        str(export_dir), classifier, class_names=names, task=task, image_size=config.image_size,
        normalization=config.normalization, image_key="image", train_files=[train_files], eval_files=[eval_files],
        max_eval_images=config.tflite_eval_images, tta_flip=config.tta_flip, variants=variants)
    return {"export_dir": export_dir, "report": report, "names": names, "eval_rows": eval_rows,
            "parameters": classifier.count_params(), "config": config}
