"""`ImageExampleGen`: a TFX FileBasedExampleGen whose Beam executor ingests image folders or CSV manifests.

Each split pattern is listed (see `sources`), every file is read and checked by `images.inspect_image` in a
Beam `DoFn`, and good images become `tf.train.Example`s with their original bytes. Rejected files go to a side
output; after the Beam job the executor writes `quarantine_report.csv` and `ingest_summary.json` into the
Examples artifact and records the counts as artifact properties (visible in ML Metadata).
"""

from __future__ import annotations

import csv
import json
import os
from collections import Counter
from typing import Any

import apache_beam as beam
from google.protobuf import any_pb2, json_format, struct_pb2
from tfx.components.example_gen import base_example_gen_executor
from tfx.components.example_gen.component import FileBasedExampleGen
from tfx.dsl.components.base import executor_spec
from tfx.dsl.io import fileio
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_component_specs

from components.ingest import images, sources

QUARANTINE_TAG = "quarantine"
QUARANTINE_DIR = "quarantine"
QUARANTINE_REPORT = "quarantine_report.csv"
INGEST_SUMMARY = "ingest_summary.json"
_QUARANTINE_DIR_KEY = "_visionline_quarantine_dir"


def ingest_custom_config(data_format: str, max_image_pixels: int, code_fingerprint: str = "") -> (
        example_gen_pb2.CustomConfig):
    """Pack ingestion options into ExampleGen's `custom_config` (an `Any` holding a `Struct`)."""
    options = struct_pb2.Struct()
    options.update({"format": data_format, "max_image_pixels": max_image_pixels, "code_fingerprint": code_fingerprint})
    packed = any_pb2.Any()
    packed.Pack(options)
    return example_gen_pb2.CustomConfig(custom_config=packed)


def _ingest_options(exec_properties: dict[str, Any]) -> dict[str, Any]:
    raw = exec_properties.get(standard_component_specs.CUSTOM_CONFIG_KEY)
    if not raw:
        return {"format": "folders", "max_image_pixels": 40_000_000}
    config = example_gen_pb2.CustomConfig()
    json_format.Parse(raw, config) if isinstance(raw, str) else config.CopyFrom(raw)
    options = struct_pb2.Struct()
    config.custom_config.Unpack(options)
    return json_format.MessageToDict(options)


class _ReadImage(beam.DoFn):
    """Reads one `Source`; emits a serialized tf.Example, or a quarantine record on the side output."""

    def __init__(self, max_image_pixels: int) -> None:
        self._max_pixels = max_image_pixels
        self._progress = None

    def setup(self) -> None:
        from tqdm import tqdm

        self._progress = tqdm(desc="ingest", unit="img", disable=None, leave=False)

    def process(self, source: sources.Source):
        try:
            with fileio.open(source.path, "rb") as handle:
                data = handle.read()
            info = images.inspect_image(data, self._max_pixels)
            yield images.make_example(data, source.label, source.relative_path, info)
        except images.Quarantined as rejected:
            yield beam.pvalue.TaggedOutput(QUARANTINE_TAG, _record(source, rejected.reason))
        except OSError as err:  # unreadable file (permissions, vanished, I/O error)
            yield beam.pvalue.TaggedOutput(QUARANTINE_TAG, _record(source, f"cannot read file: {err}"))
        finally:
            if self._progress is not None:
                self._progress.update(1)

    def teardown(self) -> None:
        if self._progress is not None:
            self._progress.close()


def _record(source: sources.Source, reason: str) -> dict[str, str]:
    return {"path": source.relative_path, "label": source.label, "split": source.split, "reason": reason}


class Executor(base_example_gen_executor.BaseExampleGenExecutor):
    """Beam executor: images → tf.Examples, with a quarantine report written next to the examples."""

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
        return _images_to_examples

    def Do(self, input_dict: dict[str, list], output_dict: dict[str, list], exec_properties: dict[str, Any]) -> None:
        examples = artifact_utils.get_single_instance(output_dict[standard_component_specs.EXAMPLES_KEY])
        quarantine_dir = os.path.join(examples.uri, QUARANTINE_DIR)
        fileio.makedirs(quarantine_dir)
        exec_properties = {**exec_properties, _QUARANTINE_DIR_KEY: quarantine_dir}
        super().Do(input_dict, output_dict, exec_properties)
        summary = write_quarantine_report(quarantine_dir, examples.uri)
        examples.set_int_custom_property("files_seen", summary["files_seen"])
        examples.set_int_custom_property("ingested", summary["ingested"])
        examples.set_int_custom_property("quarantined", summary["quarantined"])


@beam.ptransform_fn
def _images_to_examples(pipeline: beam.Pipeline, exec_properties: dict[str, Any], split_pattern: str):
    options = _ingest_options(exec_properties)
    input_base = exec_properties[standard_component_specs.INPUT_BASE_KEY]
    split = split_pattern.split("/")[0] if "/" in split_pattern else "all"
    if options["format"] == "csv":
        found, rejected = sources.list_csv_sources(input_base, split_pattern, split)
    else:
        found, rejected = sources.list_folder_sources(input_base, split_pattern, split)
    seen = len(found) + len(rejected)
    results = (
        pipeline
        | "ListSources" >> beam.Create(found, reshuffle=True)
        | "ReadAndValidate"
        >> beam.ParDo(_ReadImage(int(options["max_image_pixels"]))).with_outputs(QUARANTINE_TAG, main="examples")
    )
    quarantine_dir = exec_properties[_QUARANTINE_DIR_KEY]
    shard_prefix = os.path.join(quarantine_dir, _safe_name(split_pattern))
    listed = pipeline | "ListingRejects" >> beam.Create([r.to_record() for r in rejected])
    _ = (
        (results[QUARANTINE_TAG], listed)
        | "AllRejects" >> beam.Flatten()
        | "ToJson" >> beam.Map(json.dumps, sort_keys=True)
        | "WriteRejects" >> beam.io.WriteToText(shard_prefix, file_name_suffix=".jsonl")
    )
    with fileio.open(shard_prefix + ".seen.json", "w") as handle:
        handle.write(json.dumps({"split_pattern": split_pattern, "files_seen": seen}))
    return results.examples


def _safe_name(pattern: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in pattern) or "all"


def write_quarantine_report(quarantine_dir: str, examples_uri: str) -> dict[str, Any]:
    """Merge the Beam shards into `quarantine_report.csv` + `ingest_summary.json`; return the summary."""
    records: list[dict[str, str]] = []
    for shard in sorted(fileio.glob(os.path.join(quarantine_dir, "*.jsonl*"))):
        with fileio.open(shard, "r") as handle:
            records.extend(json.loads(line) for line in handle.read().splitlines() if line.strip())
    records.sort(key=lambda r: (r["split"], r["path"]))
    seen = 0
    for marker in fileio.glob(os.path.join(quarantine_dir, "*.seen.json")):
        with fileio.open(marker, "r") as handle:
            seen += int(json.loads(handle.read())["files_seen"])
    report_path = os.path.join(examples_uri, QUARANTINE_REPORT)
    with fileio.open(report_path, "w") as handle:
        writer = csv.DictWriter(handle, fieldnames=["path", "label", "split", "reason"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(records)
    summary = {
        "files_seen": seen,
        "ingested": seen - len(records),
        "quarantined": len(records),
        "quarantined_by_reason": dict(Counter(_reason_kind(r["reason"]) for r in records).most_common()),
        "quarantine_report": report_path,
    }
    with fileio.open(os.path.join(examples_uri, INGEST_SUMMARY), "w") as handle:
        handle.write(json.dumps(summary, indent=2))
    return summary


def _reason_kind(reason: str) -> str:
    """Group reasons for the summary: text before the first ':' or '(' (file names stripped)."""
    text = reason.split(": ", 1)[1] if reason.split(":", 1)[0].endswith((".csv", ".tsv")) else reason
    return text.split("(")[0].split(":")[0].strip()


class ImageExampleGen(FileBasedExampleGen):
    """FileBasedExampleGen preconfigured with the image-ingesting executor."""

    def __init__(
        self,
        input_base: str,
        input_config: example_gen_pb2.Input,
        output_config: example_gen_pb2.Output | None = None,
        data_format: str = "folders",
        max_image_pixels: int = 40_000_000,
        code_fingerprint: str = "",
    ) -> None:
        super().__init__(
            input_base=input_base,
            input_config=input_config,
            output_config=output_config,
            custom_config=ingest_custom_config(data_format, max_image_pixels, code_fingerprint),
            custom_executor_spec=executor_spec.BeamExecutorSpec(Executor),
        )
