"""Fitting one training phase: early stopping and which epoch's weights are kept, the warm-up + cosine learning
rate, TensorBoard, resumable per-epoch backups, and the frozen backbone's features computed once.

Each phase restores its best weights (early stopping, after a quarter of its epochs; off for a validation set too
small to choose by) and keeps a per-epoch backup keyed by its inputs, so a Trainer killed mid-fit resumes from its
last finished epoch.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras as keras

from components import features

MONITORS = {"val_loss": "min", "val_accuracy": "max"}  # early-stopping monitor → which way is better
MIN_VALIDATION_IMAGES = 20  # fewer (or fewer than 2 per class): too few to choose an epoch by
MAX_WARM_EPOCHS = 5  # early stopping ignores at most this many first epochs (a quarter of them)


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


def concatenate_histories(histories: list[dict[str, list[float]]]) -> dict[str, list[float]]:
    """The phases' per-epoch histories one after the other, key by key."""
    out: dict[str, list[float]] = {}
    for history in histories:
        for key, values in history.items():
            out.setdefault(key, []).extend(values)
    return out


def best_epoch(history: dict[str, list[float]], monitor: str = "val_loss", min_epochs: int = 0,
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
