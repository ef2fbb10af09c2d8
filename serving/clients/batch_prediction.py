"""The Apache Beam job behind `visionline predict-batch` (run by `serving.clients.predict.predict_batch`).

    Create(relative paths) → ReadAndValidate ─┬─ ok → BatchElements → Predict ─┬─ ok → predictions CSV
                                              └─ quarantine ───────────────────┴─ quarantine → quarantine CSV

`ReadAndValidate` reads each file and passes it through the ingestion gate (`inspect_image`); `Predict`
calls a predictor (REST, gRPC or in-process SavedModel) on batches and, when the service rejects a batch,
retries its images one by one so only the bad ones are quarantined. Service failures (server down) fail
the job. Both CSVs are written as single files with a header, even when empty.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from typing import Any

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from serving.clients.predict import (
    PREDICTION_HEADER,
    QUARANTINE_HEADER,
    FileResult,
    PredictorSpec,
    csv_line,
    predict_with_fallback,
    read_and_check,
)

QUARANTINE = "quarantine"


class ReadAndValidate(beam.DoFn):
    """Relative path → (path, bytes), or a quarantined `FileResult` (stage read/validate)."""

    def __init__(self, folder: str, max_pixels: int) -> None:
        self._folder = folder
        self._max_pixels = max_pixels

    def process(self, relative: str) -> Iterator[Any]:
        """Read and check one file."""
        data, stage, reason = read_and_check(os.path.join(self._folder, relative), self._max_pixels)
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


def prediction_line(result: FileResult) -> str:
    """`path,top1,probability,top_k,labels` (top_k as a JSON list of [label, probability]; labels, for a
    multilabel model, as a JSON list of the predicted label names, else empty)."""
    prediction = result.prediction
    top_k = json.dumps([[label, round(p, 6)] for label, p in prediction.top_k])
    labels = "" if prediction.labels is None else json.dumps(list(prediction.labels))
    return csv_line([result.path, prediction.label, f"{prediction.probability:.6f}", top_k, labels])


def quarantine_line(result: FileResult) -> str:
    """`path,stage,reason`."""
    return csv_line([result.path, result.stage, result.reason])


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
