"""The report's likely mislabelled training images: the trained model embeds the run's training split
(`embeddings`), K-fold logistic regression on those embeddings gives every image held-out class probabilities
(`held_out`), and confident learning picks the candidates (`label_issues`); `write_csv` lists them in
`label_issues.csv` beside report.html for review.

Bounded by `report.label_issues_max_images`: a larger training split is not searched, and the report says so.
Images that cannot be embedded are listed with their reason.
"""

from __future__ import annotations

import csv
import os

import numpy as np

from pipeline.component_ids import EXAMPLE_GEN, TRAINER
from pipeline.report import held_out
from pipeline.report.charts import thumbnail_png
from pipeline.report.data import ReportData, padded_class_names
from pipeline.report.embeddings import SplitExample, embed, read_split
from pipeline.report.label_issues import (
    LabelIssue,
    LabelIssueReport,
    LabelIssueSettings,
    confidence_thresholds,
    find_label_issues,
    find_multilabel_issues,
)
from pipeline.report.split_examples import split_files
from pipeline.runs.record import RunRecord

CSV_NAME = "label_issues.csv"
CSV_COLUMNS = ("rank", "record", "label", "given_label", "suggested_label", "score", "self_confidence",
               "suggested_probability")
TRAIN_SPLIT = "train"


def collect_label_issues(record: RunRecord, data: ReportData, settings: LabelIssueSettings,
                         split: str = TRAIN_SPLIT) -> None:
    """Fill `data.label_issues`: the candidates, or why none were looked for."""
    found = LabelIssueReport(split=split, ranking=settings.ranking)
    data.label_issues = found
    if not settings.enabled:
        found.skipped = "turned off (report.label_issues=false)"
        return
    model = record.artifact(TRAINER, "model", "Model")
    examples = record.artifact(EXAMPLE_GEN, "examples", "Examples")
    if model is None or examples is None:
        found.skipped = "the run has no trained model or no Examples artifact"
        return
    files = split_files(examples.uri, split)
    if not files:
        found.skipped = f"no {split!r} split in {examples.uri}"
        return
    items = read_split(files, record.feature("image_feature", "image"), settings.max_images + 1, split)
    if len(items) > settings.max_images:
        found.skipped = (f"the {split} split has more than {settings.max_images} images "
                         f"(report.label_issues_max_images); raise it to search them")
        return
    try:
        embedded = embed(os.path.join(model.uri, "Format-Serving"), items)
    except Exception as err:  # noqa: BLE001 - e.g. a model without the layers this needs: say so, don't sink the report
        found.skipped = f"the trained model could not embed the images ({type(err).__name__}: {err})"
        return
    found.unprocessed = [(items[row].record, reason) for row, reason in embedded.failed]
    try:
        if data.task == "multilabel":
            _multilabel(found, embedded.rows, embedded.embeddings, embedded.labels, items, data, settings)
        else:
            _single_label(found, embedded.rows, embedded.embeddings, embedded.labels, items, data, settings)
    except ValueError as err:  # too few images or classes to cross-validate: say why
        found.skipped = str(err)


def _single_label(found: LabelIssueReport, rows: list[int], embeddings: np.ndarray, labels: np.ndarray,
                  items: list[SplitExample], data: ReportData, settings: LabelIssueSettings) -> None:
    ids = np.asarray(labels).astype(np.int64).reshape(-1)
    unknown = ids < 0  # a label outside the model's vocabulary (tf.Transform maps it to -1)
    found.unprocessed += [(items[rows[i]].record, "label not in the model's vocabulary")
                          for i in np.flatnonzero(unknown)]
    keep = np.flatnonzero(~unknown)
    rows, embeddings, ids = [rows[i] for i in keep], embeddings[keep], ids[keep]
    found.examples = len(rows)
    names = padded_class_names(data.class_names, max(len(data.class_names), int(ids.max(initial=-1)) + 1, 2))
    probabilities, found.folds = held_out.cross_validated_probabilities(embeddings, ids, len(names),
                                                                        settings.folds)
    found.method = held_out.method_text(found.folds)
    thresholds = confidence_thresholds(ids, probabilities)
    found.thresholds = {names[j]: float(t) for j, t in enumerate(thresholds) if np.isfinite(t)}
    for rank, issue in enumerate(find_label_issues(ids, probabilities, settings.ranking)):
        item = items[rows[issue.index]]
        found.candidates.append(LabelIssue(item.record, names[issue.given], names[issue.suggested], issue.score,
                                           issue.self_confidence, issue.suggested_probability,
                                           image_png=_thumbnail(item) if rank < settings.shown else b""))


def _multilabel(found: LabelIssueReport, rows: list[int], embeddings: np.ndarray, labels: np.ndarray,
                items: list[SplitExample], data: ReportData, settings: LabelIssueSettings) -> None:
    multi_hot = np.asarray(labels)
    if multi_hot.ndim != 2:
        raise ValueError(f"multilabel labels should be multi-hot vectors, got shape {multi_hot.shape}")
    found.examples = len(rows)
    names = padded_class_names(data.class_names, multi_hot.shape[1])
    probabilities, found.folds = held_out.cross_validated_multilabel(embeddings, multi_hot, settings.folds)
    found.method = held_out.method_text(found.folds) + "; one logistic regression per label (one-vs-rest)"
    state = ("absent", "present")
    for rank, (label, issue) in enumerate(find_multilabel_issues(multi_hot.round().astype(np.int64), probabilities,
                                                                 settings.ranking)):
        item = items[rows[issue.index]]
        found.candidates.append(LabelIssue(item.record, state[issue.given], state[issue.suggested], issue.score,
                                           issue.self_confidence, issue.suggested_probability, label=names[label],
                                           image_png=_thumbnail(item) if rank < settings.shown else b""))


def _thumbnail(item: SplitExample) -> bytes:
    try:
        return thumbnail_png(item.image)
    except Exception:  # noqa: BLE001 - an image PIL cannot draw (TF decoded it) is still listed, without a picture
        return b""


def write_csv(found: LabelIssueReport, out_dir: str) -> str:
    """Write every candidate, most likely mislabelled first, to `<out_dir>/label_issues.csv`; return its path."""
    path = os.path.join(out_dir, CSV_NAME)
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        for rank, c in enumerate(found.candidates, start=1):
            writer.writerow([rank, c.record, c.label, c.given, c.suggested, f"{c.score:.6f}",
                             f"{c.self_confidence:.6f}", f"{c.suggested_probability:.6f}"])
    found.csv_path = path
    return path
