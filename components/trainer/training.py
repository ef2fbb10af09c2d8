"""Training: input pipeline, class weights, the two training phases, resumable fits, export.

Data: Transform runs with `materialize=False` (decoded float pixels would be ~50× the encoded bytes), so the
Trainer applies the Transform graph inside `tf.data`. The validation data for early stopping is the `val` split
when the data root has a val/ folder beside train/ and test/ (`validation_files`), else a deterministic slice of
the training split (by content hash of the serialized example, `train.validation_fraction`); the `eval` split
stays untouched for the Evaluator.

Phases: (1) the new head with the backbone frozen when it is pretrained — on backbone features computed once
(Model Maker style; augmentation waits for phase 2); (2) optionally fine-tune (part of) the backbone as
`train.fine_tune` says, with the configured augmentation, label smoothing and a warm-up + cosine learning rate.
A model trained from scratch has one phase, with its augmentation. Each phase restores its best weights (early
stopping) and keeps a per-epoch backup keyed by its inputs, so a Trainer killed mid-fit resumes from its last
finished epoch. The device (CPU, or a GPU with mixed precision): components/trainer/devices.py.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras

from components import features, warmup
from components.trainer import devices, export, tflite_export
from components.trainer import model as models
from components.trainer.augmentation import Augmentation
from components.trainer.backbones import registry
from components.trainer.settings import TrainSettings, parse_fine_tune
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
# Hyper-parameters the Tuner may choose; everything else comes from the config.
TUNABLE = ("learning_rate", "dropout", "dense_units", "optimizer", "fine_tune")
MONITORS = {"val_loss": "min", "val_accuracy": "max"}  # early-stopping monitor → which way is better
MIN_VALIDATION_IMAGES = 20  # fewer (or fewer than 2 per class): too few to choose an epoch by
MAX_WARM_EPOCHS = 5  # early stopping ignores at most this many first epochs (a quarter of them)


def list_files(patterns: Sequence[str] | str) -> list[str]:
    """Expand TFX file patterns (e.g. `.../Split-train/*`) to a sorted list; error if nothing matches."""
    patterns = [patterns] if isinstance(patterns, str) else list(patterns)
    files = sorted(f for p in patterns for f in tf.io.gfile.glob(p))
    if not files:
        raise FileNotFoundError(f"no training data files match {patterns}")
    return files


def _records(file_patterns: Sequence[str] | str, subset: str, validation_fraction: float) -> tf.data.Dataset:
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
    dataset = _records(file_patterns, subset, validation_fraction)
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


def hyperparameters(settings: TrainSettings, tuned: dict[str, Any] | None) -> dict[str, Any]:
    """Configured values of the tunable hyper-parameters (`TUNABLE`, KerasTuner's names), overridden by the
    Tuner's best values when given."""
    values = {"learning_rate": settings.learning_rate, "dropout": settings.dropout,
              "dense_units": settings.dense_units, "optimizer": settings.optimizer,
              "fine_tune": settings.fine_tune}
    if tuned:
        values.update({k: v for k, v in tuned.items() if k in TUNABLE})
    return values


def augmentation(settings: TrainSettings) -> Augmentation:
    """The configured training-time augmentation."""
    return Augmentation(flip=settings.augment_flip, rotation=settings.augment_rotation, zoom=settings.augment_zoom,
                        translation=settings.augment_translation, crop=settings.augment_crop,
                        color=settings.augment_color, normalization=settings.normalization)


def build_model(settings: TrainSettings, num_classes: int, hp: dict[str, Any]) -> tuple[keras.Model, keras.Model,
                                                                                        keras.Model, bool]:
    """(classifier, backbone, head, pretrained) for the configured backbone, weights and task."""
    backbone_spec = registry.get_backbone(settings.model)
    size = settings.image_size
    backbone_spec.check_size(size)
    weights = registry.resolve_weights(backbone_spec, settings.weights)
    if backbone_spec.name == "simple_cnn":
        backbone = models.simple_cnn_features((size, size, 3), list(settings.conv_filters), settings.cnn_pooling,
                                              settings.cnn_block_dropout)
        if weights:
            backbone.load_weights(weights)
    else:
        backbone = backbone_spec.build((size, size, 3), weights)
    pretrained = weights is not None
    if not pretrained:
        models.adapt_batchnorm_for_scratch(backbone)
    head = models.build_head(backbone.output_shape[-1], num_classes, settings.task, float(hp["dropout"]),
                             int(hp["dense_units"]))
    classifier = models.build_classifier(backbone, head, size, pretrained, augmentation(settings), settings.seed)
    if pretrained:
        backbone.trainable = False
    return classifier, backbone, head, pretrained


def backup_dir(model_run_dir: str, key: dict[str, Any]) -> str:
    """A backup folder that survives a re-execution of the Trainer with the same inputs and config.

    TFX gives every execution a fresh `model_run_dir` (`<root>/Trainer/model_run/<id>`), so the backup lives
    beside those, named by a hash of what determines the training.
    """
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return os.path.join(os.path.dirname(os.path.normpath(model_run_dir)), "..", "backup", digest)


def cosine_learning_rate(base: float, epoch: int, epochs: int) -> float:
    """Cosine decay by epoch: `base` at epoch 0, half of it at mid-training, approaching 0 at the last epoch."""
    return 0.5 * base * (1.0 + math.cos(math.pi * epoch / max(1, epochs)))


class WarmupCosine(keras.callbacks.Callback):
    """Per step: the learning rate rises linearly from `base / warmup_steps` to `base` over `warmup_steps`, then
    follows a cosine down towards 0 at `total_steps`. The step is epoch × steps_per_epoch + batch, so a fit resumed
    from a backup continues the schedule where it stopped. Logs the epoch's last rate as `lr`."""

    def __init__(self, base: float, epochs: int, steps_per_epoch: int, warmup_epochs: float) -> None:
        super().__init__()
        self.base, self.steps_per_epoch = base, max(1, steps_per_epoch)
        self.total = max(1, epochs * self.steps_per_epoch)
        self.warmup = min(self.total, int(round(warmup_epochs * self.steps_per_epoch)))
        self.epoch = 0

    def rate(self, step: int) -> float:
        """The learning rate at global step `step` (0-based)."""
        if step < self.warmup:
            return self.base * (step + 1) / self.warmup
        decay = max(1, self.total - self.warmup)  # the per-epoch schedule's cosine, over the steps after warm-up
        return cosine_learning_rate(self.base, min(step - self.warmup, decay), decay)

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.epoch = epoch

    def on_train_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        keras.backend.set_value(self.model.optimizer.learning_rate,
                                self.rate(self.epoch * self.steps_per_epoch + batch))

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if logs is not None:
            logs["lr"] = float(keras.backend.get_value(self.model.optimizer.learning_rate))


def fit_phase(
    model: keras.Model,
    train: tf.data.Dataset,
    validation: tf.data.Dataset,
    *,
    epochs: int,
    patience: int,
    log_dir: str,
    backup: str,
    class_weight: dict[int, float] | None = None,
    reduce_lr_patience: int = 0,
    lr_schedule: str = "constant",
    monitor: str = "val_loss",
    warmup_epochs: float = 0.0,
    steps_per_epoch: int | None = None,
    min_epochs: int = 0,
    keep: str = "best",
    extra_callbacks: Sequence[keras.callbacks.Callback] = (),
) -> dict[str, list[float]]:
    """`model.fit` with early stopping on `monitor` (val_loss or val_accuracy; at the end the weights of the best
    epoch by it are restored, even when training ran all its epochs), TensorBoard and a resumable per-epoch backup;
    with `reduce_lr_patience` > 0 the learning rate drops 3× after that many epochs without a better `monitor`;
    `lr_schedule="cosine"` sets each epoch's learning rate with `cosine_learning_rate` (logged as `lr`) — or, with
    `warmup_epochs` > 0 and `steps_per_epoch` known, each step's with `WarmupCosine`. Early stopping neither stops
    nor picks an epoch among the first `min_epochs` (their weights are barely trained: on a small dataset a flat
    validation accuracy would otherwise keep epoch 1, a model that predicts one class); `keep="last"` trains every
    epoch and keeps the last weights (no early stopping: for a validation set too small to choose by).

    A finished phase leaves its final weights and history in `backup/finished*`: when the same phase runs again
    (the Trainer re-executed after a failure later on, e.g. in the export), they are loaded instead of training
    again. `train_and_export` removes the backups once the model is exported."""
    finished = os.path.join(backup, "finished")
    if tf.io.gfile.exists(finished + ".json"):
        model.load_weights(finished).expect_partial()  # the optimizer's slots are not needed any more
        with tf.io.gfile.GFile(finished + ".json") as handle:
            history = json.load(handle)
        print(f"{backup}: this phase finished in an earlier execution ({len(history.get('loss', []))} epochs); "
              "loaded its final weights instead of training again", flush=True)
        return history
    if monitor not in MONITORS:
        raise ValueError(f"monitor must be one of {tuple(MONITORS)}, got {monitor!r}")
    if keep not in ("best", "last"):
        raise ValueError(f"keep must be best or last, got {keep!r}")
    callbacks = [keras.callbacks.BackupAndRestore(backup_dir=backup), keras.callbacks.TensorBoard(log_dir=log_dir)]
    if keep == "best":
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor=monitor, mode=MONITORS[monitor], patience=patience, restore_best_weights=True,
            start_from_epoch=min(min_epochs, max(0, epochs - 1))))
    callbacks += list(extra_callbacks)
    if lr_schedule == "cosine":
        base = float(keras.backend.get_value(model.optimizer.learning_rate))
        if warmup_epochs > 0 and steps_per_epoch:
            callbacks.append(WarmupCosine(base, epochs, steps_per_epoch, warmup_epochs))
        else:
            callbacks.append(keras.callbacks.LearningRateScheduler(
                lambda epoch, _lr: cosine_learning_rate(base, epoch, epochs)))
    elif lr_schedule != "constant":
        raise ValueError(f"lr_schedule must be constant or cosine, got {lr_schedule!r}")
    if reduce_lr_patience > 0:
        callbacks.append(keras.callbacks.ReduceLROnPlateau(monitor=monitor, mode=MONITORS[monitor], factor=1 / 3,
                                                           patience=reduce_lr_patience, min_lr=1e-6))
    fitted = model.fit(train, validation_data=validation, epochs=epochs, callbacks=callbacks,
                       class_weight=class_weight, verbose=2)
    history = {k: [float(v) for v in values] for k, values in fitted.history.items()}
    model.save_weights(finished)  # TF checkpoint format: works on any tf.io.gfile file system
    with tf.io.gfile.GFile(finished + ".json", "w") as handle:  # written last: marks the weights complete
        handle.write(json.dumps(history))
    return history


def extract_features(backbone: keras.Model, dataset: tf.data.Dataset) -> tf.data.Dataset:
    """Run the frozen backbone once over a (features, label) dataset → an in-memory (feature vector, label) one."""
    forward = tf.function(lambda images: backbone(images, training=False))
    vectors, labels = [], []
    for batch, label in dataset:
        vectors.append(forward(batch[features.IMAGE_XF]).numpy())
        labels.append(label.numpy())
    if not vectors:
        raise ValueError("no examples to extract features from")
    return tf.data.Dataset.from_tensor_slices((np.concatenate(vectors), np.concatenate(labels)))


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
    in_memory = examples + (int(_records(held_out, "all", 0.0).reduce(0, lambda n, _: n + 1)) if held_out else 0)
    cache = fits_in_cache(in_memory, fraction, transformed_example_bytes(tft_output), settings.cache_dataset_mb)
    validation = make_dataset(held_out, tft_output, subset="all", cache=cache, **common) if held_out else \
        make_dataset(train_files, tft_output, subset="validation", cache=cache, **common)
    return {
        "train": make_dataset(train_files, tft_output, subset=train_subset, shuffle=True, cache=cache,
                              examples=examples, **common),
        "validation": validation,
        "validation_examples": _scan_labels(validation, len(names))[1],
        "validation_source": (f"the {_source_folder(held_out) or features.VALIDATION_SPLIT}/ folder "
                              f"(split '{features.VALIDATION_SPLIT}')") if held_out else
        f"train.validation_fraction={settings.validation_fraction:g} of the training split",
        "class_names": names,
        "label_counts": counts,
        "train_examples": examples,
        "class_weight": weights,
        "cached": cache,
    }


def train_and_export(
    train_files: Sequence[str],
    transform_output: str,
    serving_model_dir: str,
    model_run_dir: str,
    settings: TrainSettings,
    tuned_hyperparameters: dict[str, Any] | None = None,
    validation_files: Sequence[str] = (),
    eval_files: Sequence[str] = (),
) -> dict[str, Any]:
    """Train the configured model in one or two phases, export it with its signatures and TFLite variants, return the
    record (also in `history.json` in `model_run_dir`: histories, the epochs kept and why, where and how long it
    trained, the exported model's size and CPU latency, `tflite_export`'s report on `eval_files`). `validation_files`:
    the `val` split, if any."""
    started = time.perf_counter()
    seed, task = settings.seed, settings.task
    plan = devices.plan_device(settings.device, settings.mixed_precision, settings.batch_size,
                               settings.gpu_batch_size, devices.visible_gpus())
    devices.apply_plan(plan)
    print(devices.summary(plan), flush=True)
    keras.utils.set_random_seed(seed)
    tft_output = tft.TFTransformOutput(transform_output)
    inputs = training_inputs(train_files, tft_output, settings, batch_size=plan.batch_size,
                             validation_files=validation_files)
    names, counts, weights = inputs["class_names"], inputs["label_counts"], inputs["class_weight"]
    train_ds, val_ds = inputs["train"], inputs["validation"]
    steps_per_epoch = math.ceil(inputs["train_examples"] / plan.batch_size)
    print(f"data: {inputs['train_examples']} training images, {inputs['validation_examples']} validation images "
          f"({inputs['validation_source']}), {len(names)} classes", flush=True)
    print(label_line(names, task), flush=True)
    hp = hyperparameters(settings, tuned_hyperparameters)
    classifier, backbone, head, pretrained = build_model(settings, len(names), hp)
    # The settings carry the code fingerprint: a code change starts a fresh backup.
    key = {"files": list(train_files), "validation": list(validation_files), "transform": transform_output,
           "config": settings.to_custom_config(),
           "hp": hp, "batch": plan.batch_size, "mixed_precision": plan.mixed_precision}
    backups = backup_dir(model_run_dir, key)
    common = dict(patience=settings.early_stopping_patience, reduce_lr_patience=settings.reduce_lr_patience,
                  lr_schedule=settings.lr_schedule, monitor=settings.early_stopping_monitor, class_weight=weights)

    def choose(epochs: int) -> dict[str, Any]:
        keep, min_epochs, why = selection(inputs["validation_examples"], len(names), epochs)
        if keep == "last":
            more = "add images to the validation folder" if validation_files else "raise train.validation_fraction"
            print(f"WARNING: {why}; give more data, or {more}", flush=True)
        return {"keep": keep, "min_epochs": min_epochs, "why": why}

    def kept(name: str, history: dict[str, list[float]], chosen: dict[str, Any]) -> dict[str, Any]:
        monitor = settings.early_stopping_monitor
        epoch = _best_epoch(history, monitor, chosen["min_epochs"], chosen["keep"])
        ran = len(history.get("loss", []))
        value = (history.get(monitor) or [float("nan")] * ran)[epoch - 1]
        reason = "the last epoch: " + chosen["why"] if chosen["keep"] == "last" else \
            f"the best {monitor} ({value:.4f}; {chosen['why']}, patience {settings.early_stopping_patience})"
        print(f"{name}: kept the weights of epoch {epoch} of {ran} — {reason}", flush=True)
        return {"kept_epoch": epoch, "epochs_run": ran, "kept_because": reason}
    phases: list[dict[str, Any]] = []

    head_only = pretrained and settings.cache_features
    phase_started = time.perf_counter()
    if head_only:  # Model Maker style: backbone features once, then the head trains on vectors
        feature_train = extract_features(backbone, train_ds).shuffle(100_000, seed=seed).batch(plan.batch_size)
        feature_val = extract_features(backbone, val_ds).batch(plan.batch_size)
        extracted = time.perf_counter()
        models.compile_classifier(head, hp["optimizer"], float(hp["learning_rate"]), task, settings.label_smoothing,
                                  settings.weight_decay)
        chosen = choose(settings.epochs)
        history = fit_phase(head, feature_train, feature_val, epochs=settings.epochs,
                            keep=chosen["keep"], min_epochs=chosen["min_epochs"],
                            log_dir=os.path.join(model_run_dir, "tensorboard", "head"),
                            backup=os.path.join(backups, "head"), **common)
    else:  # from scratch (one phase, with the augmentation), or a pretrained backbone without feature caching
        extracted = phase_started
        models.compile_classifier(classifier, hp["optimizer"], float(hp["learning_rate"]), task,
                                  settings.label_smoothing, settings.weight_decay)
        chosen = choose(settings.epochs)
        history = fit_phase(classifier, train_ds, val_ds, epochs=settings.epochs, warmup_epochs=settings.warmup_epochs,
                            steps_per_epoch=steps_per_epoch, keep=chosen["keep"], min_epochs=chosen["min_epochs"],
                            log_dir=os.path.join(model_run_dir, "tensorboard", "head"),
                            backup=os.path.join(backups, "head"), **common)
    finished = time.perf_counter()
    phases.append({"name": "head" if pretrained else "train", "cached_features": head_only, "history": history,
                   "seconds": round(finished - phase_started, 2), "fit_seconds": round(finished - extracted, 2),
                   "extract_seconds": round(extracted - phase_started, 2),
                   "augmentation": "none" if head_only else augmentation(settings).describe(),
                   **kept("head" if pretrained else "training", history, chosen)})

    scope = parse_fine_tune(str(hp["fine_tune"]))
    if pretrained and settings.fine_tune_epochs > 0 and scope.enabled:
        phase_started = time.perf_counter()
        unfrozen = models.unfreeze_top(backbone, scope)
        models.compile_classifier(classifier, hp["optimizer"], settings.fine_tune_learning_rate, task,
                                  settings.label_smoothing, settings.weight_decay)
        chosen = choose(settings.fine_tune_epochs)
        history = fit_phase(classifier, train_ds, val_ds, epochs=settings.fine_tune_epochs,
                            warmup_epochs=settings.warmup_epochs, steps_per_epoch=steps_per_epoch,
                            keep=chosen["keep"], min_epochs=chosen["min_epochs"],
                            log_dir=os.path.join(model_run_dir, "tensorboard", "fine_tune"),
                            backup=os.path.join(backups, "fine_tune"), **common)
        finished = time.perf_counter()
        phases.append({"name": "fine_tune", "fine_tune": str(scope), "unfrozen_layers": unfrozen, "history": history,
                       "seconds": round(finished - phase_started, 2), "fit_seconds": round(finished - phase_started, 2),
                       "augmentation": augmentation(settings).describe(), **kept("fine-tune", history, chosen)})

    if plan.mixed_precision:  # export float32: rebuild the model without the mixed policy, same weights
        devices.apply_plan(devices.DevicePlan("CPU", "export", False, plan.batch_size))
        checkpoint = os.path.join(model_run_dir, "mixed_precision_weights", "ckpt")
        classifier.save_weights(checkpoint)  # a TF checkpoint matches variables by structure, not by order
        classifier = build_model(settings, len(names), hp)[0]
        classifier.load_weights(checkpoint).expect_partial()
    export.save_serving_model(classifier, tft_output, serving_model_dir, names, image_key=settings.image_feature,
                              task=task, tta_flip=settings.tta_flip)
    # TF Serving's warm-up file, from a few held-out images (the Pusher sees no examples; it copies the file along)
    held_out = _records(validation_files or train_files, "all" if validation_files else "validation",
                        settings.validation_fraction)
    warmup.write_warmup_requests(serving_model_dir, warmup.images_from_examples(
        held_out.concatenate(_records(train_files, "all", 0.0)).as_numpy_iterator(), settings.image_feature))
    train_seconds = time.perf_counter() - started
    if tf.io.gfile.exists(backups):  # exported: a re-execution must train afresh
        tf.io.gfile.rmtree(backups)
    monitor = settings.early_stopping_monitor
    record = {
        "history": _concatenate([p["history"] for p in phases]),
        "phases": phases,
        "class_names": names,
        "train_label_counts": counts.tolist(),
        "train_examples": inputs["train_examples"],
        "dataset_cached": inputs["cached"],
        "class_weights": weights,
        "hyperparameters": hp,
        "best_epoch": phases[-1]["kept_epoch"],
        "validation_examples": inputs["validation_examples"],
        "validation_source": inputs["validation_source"],
        "early_stopping_monitor": monitor,
        "backbone": settings.model,
        "preset": settings.preset,
        "image_size": settings.image_size,
        "parameters": int(classifier.count_params()),
        "device": plan.description,
        "mixed_precision": plan.mixed_precision,
        "batch_size": plan.batch_size,
        "train_seconds": round(train_seconds, 2),
        "fit_seconds": round(sum(p["fit_seconds"] for p in phases), 2),
        "export": export.measure(serving_model_dir, _first_image(train_files, settings.image_feature)),
    }
    record["tflite"] = tflite_export.export_configured(serving_model_dir, classifier, names, settings, train_files,
                                                       eval_files, saved_model_cost=record["export"])
    tf.io.gfile.makedirs(model_run_dir)
    with tf.io.gfile.GFile(os.path.join(model_run_dir, "history.json"), "w") as handle:
        handle.write(json.dumps(record, indent=2))
    return record


def _first_image(train_files: Sequence[str], image_key: str) -> bytes:
    """The encoded image of the first training example (to time the exported model on a real input)."""
    for serialized in _records(train_files, "all", 0.0).take(1):
        example = tf.train.Example.FromString(serialized.numpy())
        return example.features.feature[image_key].bytes_list.value[0]
    raise ValueError(f"no training examples in {list(train_files)[:3]}")


def label_line(names: Sequence[str], task: str) -> str:
    """The console line giving each label index its class (and, for binary, the positive class: index 1)."""
    line = "labels: " + ", ".join(f"{i}={name!r}" for i, name in enumerate(names))
    return line + (f" (positive class: {names[1]!r})" if task == "binary" and len(names) == 2 else "")


def _source_folder(files: Sequence[str]) -> str:
    """The data-root folder the first example of `files` came from (its `path` feature's first part), or ""."""
    for serialized in _records(files, "all", 0.0).take(1):
        path = tf.train.Example.FromString(serialized.numpy()).features.feature[features.PATH].bytes_list.value
        return path[0].decode("utf-8").split("/", 1)[0] if path and b"/" in path[0] else ""
    return ""


def _concatenate(histories: list[dict[str, list[float]]]) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for history in histories:
        for key, values in history.items():
            out.setdefault(key, []).extend(values)
    return out


def _best_epoch(history: dict[str, list[float]], monitor: str = "val_loss", min_epochs: int = 0,
                keep: str = "best") -> int:
    """1-based epoch whose weights `fit_phase` kept: the last with `keep="last"`, else the best by `monitor` after
    the first `min_epochs` (ties: the first, as Keras)."""
    values = history.get(monitor) or history.get(monitor.removeprefix("val_")) or [0.0]
    if keep == "last":
        return len(values)
    sign = -1.0 if MONITORS.get(monitor) == "max" else 1.0
    start = min(min_epochs, len(values) - 1)
    return int(min(range(start, len(values)), key=lambda i: sign * values[i])) + 1


def selection(validation_examples: int, num_classes: int, epochs: int) -> tuple[str, int, str]:
    """How a phase picks the weights it keeps: (keep, min_epochs, why) for `fit_phase`.

    A validation set of fewer than max(20, 2 per class) images cannot tell epochs apart (one image is 5 % or more
    of it): early stopping then follows noise, so every epoch trains and the last one is kept. Otherwise early
    stopping applies from epoch `min_epochs` + 1 on (a quarter of the epochs, at most 5)."""
    needed = max(MIN_VALIDATION_IMAGES, 2 * num_classes)
    if validation_examples < needed:
        return "last", 0, (f"the validation set is tiny ({validation_examples} images for {num_classes} classes, "
                           f"fewer than {needed}): early stopping is off and the last epoch's weights are kept")
    min_epochs = min(MAX_WARM_EPOCHS, epochs // 4)
    return "best", min_epochs, (f"early stopping from epoch {min_epochs + 1} on" if min_epochs else "early stopping")
