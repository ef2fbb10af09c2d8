"""Training: the model the config describes, its one or two phases, and the export with its record.

Phases: (1) the new head with the backbone frozen when it is pretrained — on backbone features computed once
(Model Maker style; augmentation waits for phase 2); (2) optionally fine-tune (part of) the backbone as
`train.fine_tune` says, with the configured augmentation, label smoothing and a warm-up + cosine learning rate.
A model trained from scratch has one phase, with its augmentation. Inputs: components/trainer/inputs.py; how a
phase is fitted and which epoch it keeps: components/trainer/fitting.py; the device (CPU, or a GPU with mixed
precision): components/trainer/devices.py.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Sequence
from typing import Any

import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras

from components import warmup
from components.trainer import devices, export, fitting, inputs, tflite_export
from components.trainer import model as models
from components.trainer.augmentation import Augmentation
from components.trainer.backbones import registry
from components.trainer.settings import TrainSettings, parse_fine_tune

# Hyper-parameters the Tuner may choose; everything else comes from the config.
TUNABLE = ("learning_rate", "dropout", "dense_units", "optimizer", "fine_tune")


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
    data = inputs.training_inputs(train_files, tft_output, settings, batch_size=plan.batch_size,
                             validation_files=validation_files)
    names, counts, weights = data["class_names"], data["label_counts"], data["class_weight"]
    train_ds, val_ds = data["train"], data["validation"]
    steps_per_epoch = math.ceil(data["train_examples"] / plan.batch_size)
    print(f"data: {data['train_examples']} training images, {data['validation_examples']} validation images "
          f"({data['validation_source']}), {len(names)} classes", flush=True)
    print(label_line(names, task), flush=True)
    hp = hyperparameters(settings, tuned_hyperparameters)
    classifier, backbone, head, pretrained = build_model(settings, len(names), hp)
    # The settings carry the code fingerprint: a code change starts a fresh backup.
    key = {"files": list(train_files), "validation": list(validation_files), "transform": transform_output,
           "config": settings.to_custom_config(),
           "hp": hp, "batch": plan.batch_size, "mixed_precision": plan.mixed_precision}
    backups = fitting.backup_dir(model_run_dir, key)
    common = dict(patience=settings.early_stopping_patience, reduce_lr_patience=settings.reduce_lr_patience,
                  lr_schedule=settings.lr_schedule, monitor=settings.early_stopping_monitor, class_weight=weights)

    def choose(epochs: int) -> dict[str, Any]:
        keep, min_epochs, why = fitting.selection(data["validation_examples"], len(names), epochs)
        if keep == "last":
            more = "add images to the validation folder" if validation_files else "raise train.validation_fraction"
            print(f"WARNING: {why}; give more data, or {more}", flush=True)
        return {"keep": keep, "min_epochs": min_epochs, "why": why}

    def kept(name: str, history: dict[str, list[float]], chosen: dict[str, Any]) -> dict[str, Any]:
        monitor = settings.early_stopping_monitor
        epoch = fitting.best_epoch(history, monitor, chosen["min_epochs"], chosen["keep"])
        ran = len(history.get("loss", []))
        value = (history.get(monitor) or [float("nan")] * ran)[epoch - 1]
        reason = "the last epoch: " + chosen["why"] if chosen["keep"] == "last" else \
            f"the best {monitor} ({value:.4f}; {chosen['why']}, patience {settings.early_stopping_patience})"
        print(f"{name}: kept the weights of epoch {epoch} of {ran} — {reason}", flush=True)
        return {"kept_epoch": epoch, "epochs_run": ran, "kept_because": reason}

    def fit(model: keras.Model, train: tf.data.Dataset, val: tf.data.Dataset, epochs: int, learning_rate: float,
            phase: str, **schedule: Any) -> tuple[dict[str, list[float]], dict[str, Any]]:
        """Compile `model` and run one training phase (TensorBoard logs and backups under `phase`)."""
        models.compile_classifier(model, hp["optimizer"], learning_rate, task, settings.label_smoothing,
                                  settings.weight_decay)
        chosen = choose(epochs)
        history = fitting.fit_phase(model, train, val, epochs=epochs, keep=chosen["keep"],
                                    min_epochs=chosen["min_epochs"],
                                    log_dir=os.path.join(model_run_dir, "tensorboard", phase),
                                    backup=os.path.join(backups, phase), **schedule, **common)
        return history, chosen
    phases: list[dict[str, Any]] = []

    head_only = pretrained and settings.cache_features
    phase_started = time.perf_counter()
    if head_only:  # Model Maker style: backbone features once, then the head trains on vectors
        feature_train = fitting.extract_features(backbone, train_ds).shuffle(100_000, seed=seed).batch(plan.batch_size)
        feature_val = fitting.extract_features(backbone, val_ds).batch(plan.batch_size)
        extracted = time.perf_counter()
        history, chosen = fit(head, feature_train, feature_val, settings.epochs, float(hp["learning_rate"]), "head")
    else:  # from scratch (one phase, with the augmentation), or a pretrained backbone without feature caching
        extracted = phase_started
        history, chosen = fit(classifier, train_ds, val_ds, settings.epochs, float(hp["learning_rate"]), "head",
                              warmup_epochs=settings.warmup_epochs, steps_per_epoch=steps_per_epoch)
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
        history, chosen = fit(classifier, train_ds, val_ds, settings.fine_tune_epochs,
                              settings.fine_tune_learning_rate, "fine_tune",
                              warmup_epochs=settings.warmup_epochs, steps_per_epoch=steps_per_epoch)
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
    held_out = inputs.records(validation_files or train_files, "all" if validation_files else "validation",
                        settings.validation_fraction)
    warmup.write_warmup_requests(serving_model_dir, warmup.images_from_examples(
        held_out.concatenate(inputs.records(train_files, "all", 0.0)).as_numpy_iterator(), settings.image_feature))
    train_seconds = time.perf_counter() - started
    if tf.io.gfile.exists(backups):  # exported: a re-execution must train afresh
        tf.io.gfile.rmtree(backups)
    monitor = settings.early_stopping_monitor
    record = {
        "history": fitting.concatenate_histories([p["history"] for p in phases]),
        "phases": phases,
        "class_names": names,
        "train_label_counts": counts.tolist(),
        "train_examples": data["train_examples"],
        "dataset_cached": data["cached"],
        "class_weights": weights,
        "hyperparameters": hp,
        "best_epoch": phases[-1]["kept_epoch"],
        "validation_examples": data["validation_examples"],
        "validation_source": data["validation_source"],
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
        "export": export.measure(serving_model_dir, inputs.first_image(train_files, settings.image_feature)),
    }
    record["tflite"] = tflite_export.export_configured(serving_model_dir, classifier, names, settings, train_files,
                                                       eval_files, saved_model_cost=record["export"])
    tf.io.gfile.makedirs(model_run_dir)
    with tf.io.gfile.GFile(os.path.join(model_run_dir, "history.json"), "w") as handle:
        handle.write(json.dumps(record, indent=2))
    return record


def label_line(names: Sequence[str], task: str) -> str:
    """The console line giving each label index its class (and, for binary, the positive class: index 1)."""
    line = "labels: " + ", ".join(f"{i}={name!r}" for i, name in enumerate(names))
    return line + (f" (positive class: {names[1]!r})" if task == "binary" and len(names) == 2 else "")
