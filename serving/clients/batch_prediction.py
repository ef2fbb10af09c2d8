"""`visionline predict-batch`: an Apache Beam job (DirectRunner) over a folder of unlabelled images.

    Create(relative paths) → ReadAndValidate ─┬─ ok → BatchElements → Predict ─┬─ ok → predictions CSV
                                              └─ quarantine ───────────────────┴─ quarantine → quarantine CSV

`ReadAndValidate` reads each file (never one whose real path leaves the folder: a symlink out of it is quarantined
unopened) and passes it through the ingestion gate (`prepare_image`: EXIF orientation, TIFF/WebP to PNG); `Predict`
calls a predictor (REST, gRPC or in-process SavedModel) on batches and, when the service rejects a batch,
retries its images one by one so only the bad ones are quarantined. Service failures (server down) fail
the job. Both CSVs are written as single files with a header, even when empty: predictions
(`path,top1,probability,top_k,labels`; `labels` is the predicted label set of a multilabel model, empty for
single-label models) and quarantine (`path,stage,reason`). `predict_batch` lists the folder, runs the job and
checks that every file ended up in exactly one of them.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from serving.clients.files import DEFAULT_MAX_PIXELS, list_files, predict_with_fallback, read_and_check
from serving.clients.predictors import PredictorSpec
from serving.clients.results import (
    PREDICTION_HEADER,
    QUARANTINE_HEADER,
    FileResult,
    csv_line,
    prediction_line,
    quarantine_line,
)

QUARANTINE = "quarantine"


class ReadAndValidate(beam.DoFn):
    """Relative path → (path, bytes), or a quarantined `FileResult` (stage read/validate)."""

    def __init__(self, folder: str, max_pixels: int) -> None:
        self._folder = folder
        self._max_pixels = max_pixels

    def process(self, relative: str) -> Iterator[Any]:
        """Read and check one file."""
        data, stage, reason = read_and_check(os.path.join(self._folder, relative), self._max_pixels, self._folder)
        if data is None:
            yield beam.pvalue.TaggedOutput(QUARANTINE, FileResult(relative, stage=stage, reason=reason))
        else:
            yield relative, data


class Predict(beam.DoFn):
    """Batches of (path, bytes) → `FileResult`s with predictions, or quarantined (stage predict)."""

    def __init__(self, spec: PredictorSpec) -> None:
        self._spec = spec
        self._predictor: Any = None

    def setup(self) -> None:
        """One predictor (HTTP session, gRPC channel or loaded model) per DoFn instance."""
        self._predictor = self._spec.create()

    def process(self, batch: list[tuple[str, bytes]]) -> Iterator[Any]:
        """Predict one batch."""
        for result in predict_with_fallback(self._predictor, batch):
            if result.prediction is None:
                yield beam.pvalue.TaggedOutput(QUARANTINE, result)
            else:
                yield result

    def teardown(self) -> None:
        """Close the predictor."""
        if self._predictor is not None:
            self._predictor.close()


def run(folder: str, files: Sequence[str], out_csv: str, quarantine_csv: str, spec: PredictorSpec, *,
        batch_size: int = 16, max_pixels: int, beam_args: Sequence[str] = ()) -> None:
    """Build and run the pipeline (blocking)."""
    options = PipelineOptions(["--runner=DirectRunner", "--direct_running_mode=in_memory", *beam_args])
    with beam.Pipeline(options=options) as pipeline:
        checked = (
            pipeline
            | "ListFiles" >> beam.Create(list(files))
            | "ReadAndValidate" >> beam.ParDo(ReadAndValidate(folder, max_pixels)).with_outputs(QUARANTINE, main="ok")
        )
        predicted = (
            checked.ok
            | "Batch" >> beam.BatchElements(min_batch_size=1, max_batch_size=batch_size)
            | "Predict" >> beam.ParDo(Predict(spec)).with_outputs(QUARANTINE, main="ok")
        )
        _ = (
            predicted.ok
            | "FormatPredictions" >> beam.Map(prediction_line)
            | "WritePredictions" >> beam.io.WriteToText(out_csv, shard_name_template="", num_shards=1,
                                                        header=csv_line(PREDICTION_HEADER))
        )
        _ = (
            (checked[QUARANTINE], predicted[QUARANTINE])
            | "AllQuarantined" >> beam.Flatten()
            | "FormatQuarantine" >> beam.Map(quarantine_line)
            | "WriteQuarantine" >> beam.io.WriteToText(quarantine_csv, shard_name_template="", num_shards=1,
                                                       header=csv_line(QUARANTINE_HEADER))
        )


@dataclass(frozen=True)
class BatchSummary:
    """What `predict_batch` did; `predicted + quarantined == files`."""

    files: int
    predicted: int
    quarantined: int
    predictions_csv: str
    quarantine_csv: str


def default_quarantine_path(out_csv: str) -> str:
    """`predictions.csv` → `predictions.quarantine.csv`."""
    stem, ext = os.path.splitext(out_csv)
    return f"{stem}.quarantine{ext or '.csv'}"


def predict_batch(folder: str, out_csv: str, spec: PredictorSpec, *, quarantine_csv: str | None = None,
                  batch_size: int = 16, max_pixels: int = DEFAULT_MAX_PIXELS,
                  beam_args: Sequence[str] = ()) -> BatchSummary:
    """The whole command: list → read + validate → batch → predict → two CSVs (`run`), then count the rows."""
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{folder} is not a directory")
    quarantine_csv = quarantine_csv or default_quarantine_path(out_csv)
    for path in (out_csv, quarantine_csv):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    files = list_files(folder, exclude=(out_csv, quarantine_csv))
    run(os.path.abspath(folder), files, out_csv, quarantine_csv, spec, batch_size=batch_size,
        max_pixels=max_pixels, beam_args=beam_args)
    predicted_count = count_rows(out_csv)
    quarantined_count = count_rows(quarantine_csv)
    if predicted_count + quarantined_count != len(files):
        raise RuntimeError(f"batch prediction lost rows: {len(files)} files but {predicted_count} predictions + "
                           f"{quarantined_count} quarantined")
    return BatchSummary(len(files), predicted_count, quarantined_count, out_csv, quarantine_csv)


def count_rows(path: str) -> int:
    """Data rows of a CSV written with a header."""
    with open(path, newline="", encoding="utf-8") as handle:
        return max(0, sum(1 for _row in csv.reader(handle)) - 1)
