"""Training input pipeline and loop: TFRecords of raw examples → tf.Transform layer → model.fit.

Transform runs with `materialize=False` (storing decoded float pixels would multiply the data size ~50×), so
the Trainer applies the Transform graph inside `tf.data`. A deterministic slice of the training split (by
content hash of the serialized example) is held out as validation data for early stopping; the `eval` split is
kept untouched for the Evaluator.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras

from components import export, features
from components import model as models

_HASH_BUCKETS = 1000


def list_files(patterns: Sequence[str] | str) -> list[str]:
    """Expand TFX file patterns (e.g. `.../Split-train/*`) to a sorted list; error if nothing matches."""
    patterns = [patterns] if isinstance(patterns, str) else list(patterns)
    files = sorted(f for p in patterns for f in tf.io.gfile.glob(p))
    if not files:
        raise FileNotFoundError(f"no training data files match {patterns}")
    return files


def make_dataset(
    file_patterns: Sequence[str] | str,
    tft_output: tft.TFTransformOutput,
    *,
    batch_size: int,
    subset: str = "all",
    validation_fraction: float = 0.1,
    shuffle: bool = False,
    seed: int = 42,
) -> tf.data.Dataset:
    """(features, label) batches of transformed data. `subset`: all | train | validation (hash-carved)."""
    if subset not in ("all", "train", "validation"):
        raise ValueError(f"subset must be all, train or validation; got {subset!r}")
    dataset = tf.data.TFRecordDataset(list_files(file_patterns), compression_type="GZIP")
    if subset != "all":
        cut = int(round(validation_fraction * _HASH_BUCKETS))

        def _keep(serialized: tf.Tensor) -> tf.Tensor:
            bucket = tf.strings.to_hash_bucket_fast(serialized, _HASH_BUCKETS)
            return bucket < cut if subset == "validation" else bucket >= cut

        dataset = dataset.filter(_keep)
    if shuffle:
        dataset = dataset.shuffle(10_000, seed=seed, reshuffle_each_iteration=True)
    raw_spec = tft_output.raw_feature_spec()
    tft_layer = tft_output.transform_features_layer()

    def _transform(serialized: tf.Tensor) -> tuple[dict[str, tf.Tensor], tf.Tensor]:
        transformed = tft_layer(tf.io.parse_example(serialized, raw_spec))
        return {features.IMAGE_XF: transformed[features.IMAGE_XF]}, transformed[features.LABEL_XF]

    return dataset.batch(batch_size).map(_transform, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def class_names(tft_output: tft.TFTransformOutput) -> list[str]:
    """Class names in label-index order, from the Transform label vocabulary."""
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in
            tft_output.vocabulary_by_name(features.LABEL_VOCABULARY)]


def train_and_export(
    train_files: Sequence[str],
    transform_output: str,
    serving_model_dir: str,
    model_run_dir: str,
    config: dict[str, Any],
) -> dict[str, list[float]]:
    """Train the configured model with early stopping, export it with its signatures, return the history."""
    keras.utils.set_random_seed(int(config["seed"]))
    tft_output = tft.TFTransformOutput(transform_output)
    names = class_names(tft_output)
    common = dict(batch_size=int(config["batch_size"]), validation_fraction=float(config["validation_fraction"]),
                  seed=int(config["seed"]))
    train_ds = make_dataset(train_files, tft_output, subset="train", shuffle=True, **common)
    val_ds = make_dataset(train_files, tft_output, subset="validation", **common)
    model = models.build_simple_cnn(
        image_size=int(config["image_size"]),
        num_classes=len(names),
        conv_filters=[int(f) for f in config["conv_filters"]],
        dropout=float(config["dropout"]),
        learning_rate=float(config["learning_rate"]),
    )
    callbacks = [
        keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=int(config["early_stopping_patience"]), restore_best_weights=True
        ),
        keras.callbacks.TensorBoard(log_dir=os.path.join(model_run_dir, "tensorboard")),
    ]
    history = model.fit(train_ds, validation_data=val_ds, epochs=int(config["epochs"]), callbacks=callbacks, verbose=2)
    export.save_serving_model(model, tft_output, serving_model_dir, names, image_key=config.get("image_feature"))
    record = {k: [float(v) for v in values] for k, values in history.history.items()}
    tf.io.gfile.makedirs(model_run_dir)
    with tf.io.gfile.GFile(os.path.join(model_run_dir, "history.json"), "w") as handle:
        handle.write(json.dumps({"history": record, "class_names": names,
                                 "best_epoch": _best_epoch(record)}, indent=2))
    return record


def _best_epoch(history: dict[str, list[float]]) -> int:
    losses = history.get("val_loss") or history.get("loss") or [0.0]
    return int(min(range(len(losses)), key=losses.__getitem__)) + 1
