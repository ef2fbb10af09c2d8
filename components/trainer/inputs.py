"""The Trainer's inputs: transformed train / validation datasets, class names and counts, class weights.

Transform runs with `materialize=False` (decoded float pixels would be ~50× the encoded bytes), so the Trainer
applies the Transform graph inside `tf.data`. The validation data for early stopping is the `val` split when the
data root has a val/ folder beside train/ and test/ (`validation_split_files`), else a deterministic slice of the
training split (by content hash of the serialized example, `train.validation_fraction`); the `eval` split stays
untouched for the Evaluator. Decoded examples stay in memory when they fit `train.cache_dataset_mb`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from components import features
from components.trainer.settings import TrainSettings
from components.transform import preprocessing

_HASH_BUCKETS = 1000
_SHUFFLE_BUFFER = 10_000
# tf.data's autotuning thread sleeps up to 60 s between optimisations, and destroying an iterator waits for it:
# Keras makes a new iterator each epoch, so a training epoch of a minute or more was followed by a stall of up
# to a minute with the CPU idle (measured: 6 of 20 epochs on full Fashion-MNIST, ~50 s each). The Trainer's
# datasets therefore run without it: the parallel map then runs as many calls as there are cores and prefetch
# still buffers ahead. Measured streaming Fashion-MNIST: the same images/s as autotuned, and no wait at epoch
# ends (docs/benchmarks.md, bench-train-full).
_NO_AUTOTUNE = tf.data.Options()
_NO_AUTOTUNE.autotune.enabled = False


def list_files(patterns: Sequence[str] | str) -> list[str]:
    """Expand TFX file patterns (e.g. `.../Split-train/*`) to a sorted list; error if nothing matches."""
    patterns = [patterns] if isinstance(patterns, str) else list(patterns)
    files = sorted(f for p in patterns for f in tf.io.gfile.glob(p))
    if not files:
        raise FileNotFoundError(f"no training data files match {patterns}")
    return files


def records(file_patterns: Sequence[str] | str, subset: str, validation_fraction: float) -> tf.data.Dataset:
    """Serialized examples of the files: `all`, or the `train` / `validation` part carved off by content hash."""
    if subset not in ("all", "train", "validation"):
        raise ValueError(f"subset must be all, train or validation; got {subset!r}")
    dataset = tf.data.TFRecordDataset(list_files(file_patterns), compression_type="GZIP")
    if subset == "all":
        return dataset
    cut = int(round(validation_fraction * _HASH_BUCKETS))

    def _keep(serialized: tf.Tensor) -> tf.Tensor:
        bucket = tf.strings.to_hash_bucket_fast(serialized, _HASH_BUCKETS)
        return bucket < cut if subset == "validation" else bucket >= cut

    return dataset.filter(_keep)


def make_dataset(
    file_patterns: Sequence[str] | str,
    tft_output: tft.TFTransformOutput,
    *,
    batch_size: int,
    subset: str = "all",
    validation_fraction: float = 0.1,
    shuffle: bool = False,
    seed: int = 42,
    task: str = "multiclass",
    cache: bool = False,
    examples: int | None = None,
) -> tf.data.Dataset:
    """(features, label) batches of transformed data. `subset`: all | train | validation (hash-carved).

    Labels are class indices [B], or for `multilabel` float32 multi-hot vectors [B, C] (C = vocabulary size).
    `cache=True` decodes every image once and keeps the transformed examples in memory (then shuffles those):
    later epochs skip reading, parsing and the Transform graph. `examples`, when the subset's example count is
    known, declares the number of batches (checked while iterating): Keras then knows an epoch's length; without
    it Keras takes the length from its step counter, which a fit resumed from a backup restores, and logs every
    resumed epoch as all steps so far ("1266/1266" for 422-step epochs resumed after two).
    """
    dataset = records(file_patterns, subset, validation_fraction)
    if shuffle and not cache:
        dataset = dataset.shuffle(_SHUFFLE_BUFFER, seed=seed, reshuffle_each_iteration=True)
    raw_spec = tft_output.raw_feature_spec()
    tft_layer = tft_output.transform_features_layer()

    num_labels = tft_output.vocabulary_size_by_name(features.LABEL_VOCABULARY) if task == "multilabel" else 0

    def _transform(serialized: tf.Tensor) -> tuple[dict[str, tf.Tensor], tf.Tensor]:
        transformed = tft_layer(tf.io.parse_example(serialized, raw_spec))
        label = transformed[features.LABEL_XF]
        if task == "multilabel":
            label = preprocessing.multi_hot(label, num_labels)
        return {features.IMAGE_XF: transformed[features.IMAGE_XF]}, label

    dataset = dataset.batch(batch_size).map(_transform, num_parallel_calls=tf.data.AUTOTUNE)
    if cache:
        dataset = dataset.unbatch().cache()
        if shuffle:
            dataset = dataset.shuffle(_SHUFFLE_BUFFER, seed=seed, reshuffle_each_iteration=True)
        dataset = dataset.batch(batch_size)
    if examples is not None:
        dataset = dataset.apply(tf.data.experimental.assert_cardinality(math.ceil(examples / batch_size)))
    return dataset.prefetch(tf.data.AUTOTUNE).with_options(_NO_AUTOTUNE)


def class_names(tft_output: tft.TFTransformOutput) -> list[str]:
    """Class names in label-index order, from the Transform label vocabulary."""
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v)
            for v in tft_output.vocabulary_by_name(features.LABEL_VOCABULARY)]


def label_counts(dataset: tf.data.Dataset, num_classes: int) -> np.ndarray:
    """Examples per class index in a (features, label) dataset (multi-hot labels: examples carrying each label)."""
    return _scan_labels(dataset, num_classes)[0]


def _scan_labels(dataset: tf.data.Dataset, num_classes: int) -> tuple[np.ndarray, int]:
    counts, examples = np.zeros(num_classes, dtype=np.int64), 0
    for _, labels in dataset.map(lambda x, y: ((), y)):
        values = labels.numpy()
        examples += int(values.shape[0]) if values.ndim else 1
        if values.ndim == 2:  # multi-hot [B, C]
            counts += values.sum(axis=0).astype(np.int64)[:num_classes]
            continue
        ids = values.reshape(-1)
        counts += np.bincount(ids[ids >= 0], minlength=num_classes)[:num_classes]
    return counts, examples


def fits_in_cache(train_examples: int, validation_fraction: float, example_bytes: int, budget_mb: float) -> bool:
    """Whether the decoded train and validation examples (the validation part estimated from the train count and
    the fraction carved off) take at most `budget_mb` MiB; a budget of 0 never caches."""
    if budget_mb <= 0:
        return False
    total = train_examples / max(1e-9, 1.0 - validation_fraction) * example_bytes
    return total <= budget_mb * 2**20


def transformed_example_bytes(tft_output: tft.TFTransformOutput) -> int:
    """Bytes of one transformed image (`image_xf`) in memory."""
    spec = tft_output.transformed_feature_spec()[features.IMAGE_XF]
    return int(np.prod(spec.shape)) * spec.dtype.size


def class_weights(counts: np.ndarray, mode: str) -> dict[int, float] | None:
    """'balanced' weights total / (C × count_c); `auto` applies them when the largest class is > 3× the smallest."""
    if mode not in ("auto", "on", "off"):
        raise ValueError(f"class_weights must be auto, on or off; got {mode!r}")
    present = counts[counts > 0]
    if mode == "off" or present.size == 0:
        return None
    if mode == "auto" and present.max() <= 3 * present.min():
        return None
    total, classes = counts.sum(), len(counts)
    return {i: float(total / (classes * c)) if c else 0.0 for i, c in enumerate(counts)}



def validation_split_files(eval_files: Sequence[str] | str | None) -> list[str]:
    """The TFX eval_args file patterns when they are the `val` split (`.../Split-val/*`: a data root with a val/
    folder beside train/ and test/), else [] (the eval split is the Evaluator's: validation is carved off train)."""
    patterns = [eval_files] if isinstance(eval_files, str) else list(eval_files or [])
    wanted = f"Split-{features.VALIDATION_SPLIT}"
    held_out = [p for p in patterns if os.path.basename(os.path.dirname(p.rstrip("/"))) == wanted]
    return held_out if held_out and len(held_out) == len(patterns) else []


def training_inputs(train_files: Sequence[str], tft_output: tft.TFTransformOutput, settings: TrainSettings,
                    batch_size: int | None = None, validation_files: Sequence[str] = ()) -> dict[str, Any]:
    """What a fit needs, shared by the Trainer and the Tuner: shuffled train and validation datasets (decoded once
    and kept in memory when they fit in `cache_dataset_mb`), class names, train label counts, the number of
    training examples and class weights. The validation data is `validation_files` (the `val` split) when given,
    else hash-carved off train. `batch_size` replaces `settings.batch_size` (a GPU's larger batch)."""
    names = class_names(tft_output)
    common = dict(batch_size=batch_size or settings.batch_size, validation_fraction=settings.validation_fraction,
                  seed=settings.seed, task=settings.task)
    held_out = list(validation_files)
    train_subset, fraction = ("all", 0.0) if held_out else ("train", settings.validation_fraction)
    counts, examples = _scan_labels(make_dataset(train_files, tft_output, subset=train_subset, **common), len(names))
    # Keras' class_weight needs one class per example: not applicable to multi-hot labels.
    weights = None if settings.task == "multilabel" else class_weights(counts, settings.class_weights)
    in_memory = examples + (int(records(held_out, "all", 0.0).reduce(0, lambda n, _: n + 1)) if held_out else 0)
    cache = fits_in_cache(in_memory, fraction, transformed_example_bytes(tft_output), settings.cache_dataset_mb)
    validation = make_dataset(held_out, tft_output, subset="all", cache=cache, **common) if held_out else \
        make_dataset(train_files, tft_output, subset="validation", cache=cache, **common)
    return {
        "train": make_dataset(train_files, tft_output, subset=train_subset, shuffle=True, cache=cache,
                              examples=examples, **common),
        "validation": validation,
        "validation_examples": _scan_labels(validation, len(names))[1],
        "validation_source": _given_validation(held_out) if held_out else
        f"train.validation_fraction={settings.validation_fraction:g} of the training split",
        "class_names": names,
        "label_counts": counts,
        "train_examples": examples,
        "class_weight": weights,
        "cached": cache,
    }


def first_image(train_files: Sequence[str], image_key: str) -> bytes:
    """The encoded image of the first training example (to time the exported model on a real input)."""
    for serialized in records(train_files, "all", 0.0).take(1):
        example = tf.train.Example.FromString(serialized.numpy())
        return example.features.feature[image_key].bytes_list.value[0]
    raise ValueError(f"no training examples in {list(train_files)[:3]}")


def _given_validation(files: Sequence[str]) -> str:
    """Where the data's own validation split came from, in words: its folder (the first example's `path` starts
    with a val folder name) or, otherwise (a manifest's split column), the split."""
    folder = ""
    for serialized in records(files, "all", 0.0).take(1):
        path = tf.train.Example.FromString(serialized.numpy()).features.feature[features.PATH].bytes_list.value
        folder = path[0].decode("utf-8").split("/", 1)[0] if path and b"/" in path[0] else ""
    if folder.lower() in features.VALIDATION_DIR_NAMES:
        return f"the {folder}/ folder (split '{features.VALIDATION_SPLIT}')"
    return f"split '{features.VALIDATION_SPLIT}' as the data gives it"
