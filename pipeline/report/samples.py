"""The report's sample predictions: eval examples read from the run's Examples artifact, classified by the candidate
SavedModel's `serving_default` signature, and picked for the grid (misclassified first, most confident first, then
correct ones class by class).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import tensorflow as tf

from pipeline.component_ids import EVALUATOR, EXAMPLE_GEN, TRAINER
from pipeline.report.charts import thumbnail_png
from pipeline.report.data import NO_LABELS, ReportData, Sample, label_set_text, natural_key
from pipeline.report.explanations import explain_samples
from pipeline.report.split_examples import first_bytes, read_records, source_path, split_files
from pipeline.runs.record import RunRecord

MAX_SAMPLES = 24
MAX_SCAN = 1000  # eval examples run through the model to find misclassified samples for the grid


def collect_samples(record: RunRecord, data: ReportData, max_samples: int = MAX_SAMPLES,
                    max_scan: int = MAX_SCAN) -> None:
    """Classify up to `max_scan` eval examples with the candidate model; keep up to `max_samples` for the grid."""
    if max_samples <= 0:
        return
    model = record.artifact(TRAINER, "model", "Model")
    examples = record.artifact(EXAMPLE_GEN, "examples", "Examples")
    if model is None or examples is None:
        return
    evaluator = record.node(EVALUATOR)
    splits = evaluator.prop("example_splits") if evaluator else None
    split = splits[0] if isinstance(splits, list) and splits else "eval"
    files = split_files(examples.uri, split)
    if not files:
        data.notes.append(f"sample predictions: no files in split {split!r} of {examples.uri}")
        return
    records = list(read_examples(files, record.feature("image_feature", "image"), record.feature(), max_scan))
    if not records:
        return
    model_dir = os.path.join(model.uri, "Format-Serving")
    loaded = tf.saved_model.load(model_dir)  # once: the predictions and the heatmaps use it
    predictions = predict_images(loaded, [r[0] for r in records])
    data.sample_model_uri = model_dir
    data.samples_scanned = len(records)
    multilabel = data.task == "multilabel"
    if multilabel:
        data.scanned_label_sets = [(labels, predicted) for (_, labels, _), (predicted, _) in zip(records, predictions)]
    # the grid and the heatmaps compare labels as texts: one class, or a multilabel set as "a, b" / "(none)"
    scored = [((image, label_text(labels, multilabel), path), (label_text(predicted, multilabel), confidence))
              for (image, labels, path), (predicted, confidence) in zip(records, predictions)]
    wrong = sorted((x for x in scored if x[1][0] != x[0][1]), key=lambda x: -x[1][1])
    data.samples_misclassified = len(wrong)
    right = _round_robin(sorted((x for x in scored if x[1][0] == x[0][1]), key=lambda x: natural_key(x[0][1])),
                         key=lambda x: x[0][1])
    for (image, label, path), (predicted, confidence) in (wrong + right)[:max_samples]:
        try:
            png = thumbnail_png(image)
        except Exception:  # noqa: BLE001 - an image PIL cannot open (TF decoded it) just has no picture
            continue
        data.samples.append(Sample(png, label, predicted, confidence, path))
    explain_samples(model_dir, scored, data, loaded=loaded)  # the "Why" heatmaps of the same scan


def label_text(labels: Sequence[str], multilabel: bool) -> str:
    """The text a label (set) is shown and compared as: the class; multilabel "a, b", or "(none)" for no label."""
    return label_set_text(labels) or (NO_LABELS if multilabel else "")


def _round_robin(items: list[Any], key: Callable[[Any], Any]) -> list[Any]:
    """Interleave items by key (one per class in turn) so correct samples show many classes."""
    groups: dict[Any, list[Any]] = {}
    for item in items:
        groups.setdefault(key(item), []).append(item)
    ordered: list[Any] = []
    queues = list(groups.values())
    while queues:
        ordered.extend(q.pop(0) for q in queues)
        queues = [q for q in queues if q]
    return ordered


def read_examples(files: Sequence[str], image_key: str, label_key: str,
                  limit: int) -> Iterable[tuple[bytes, tuple[str, ...], str]]:
    """(encoded image, labels, source path) of up to `limit` tf.Examples in TFRecord files (GZIP by name); one label
    (multilabel: any number); examples without an image are skipped."""
    for _, features in read_records(files, limit):
        image = first_bytes(features, image_key)
        if not image:
            continue
        label_feature = features.get(label_key)
        labels: tuple[str, ...] = ()
        if label_feature is not None and label_feature.bytes_list.value:
            labels = tuple(v.decode("utf-8", "replace") for v in label_feature.bytes_list.value)
        elif label_feature is not None and label_feature.int64_list.value:
            labels = tuple(str(v) for v in label_feature.int64_list.value)
        yield image, labels, source_path(features)


def predict_images(loaded: Any, images: Sequence[bytes],
                   batch_size: int = 64) -> list[tuple[tuple[str, ...], float]]:
    """(predicted labels, confidence) for encoded images, from the `serving_default` signature of a loaded
    SavedModel (`tf.saved_model.load`): the predicted class; multilabel models (with a `predicted_labels` output)
    every label reaching the threshold (maybe none), with the highest label probability as the confidence.
    """
    serve = loaded.signatures["serving_default"]
    results: list[tuple[tuple[str, ...], float]] = []
    for start in range(0, len(images), batch_size):
        outputs = serve(images=tf.constant(list(images[start:start + batch_size]), dtype=tf.string))
        confidence = outputs["confidence"].numpy()
        if "predicted_labels" in outputs:
            flags, names = outputs["predicted_labels"].numpy(), outputs["classes"].numpy()
            predicted = [tuple(n.decode("utf-8", "replace") for n, f in zip(row_names, row) if f)
                         for row, row_names in zip(flags, names)]
        else:
            predicted = [(c.decode("utf-8", "replace"),) for c in outputs["predicted_class"].numpy()]
        results.extend((c, float(p)) for c, p in zip(predicted, confidence))
    return results
