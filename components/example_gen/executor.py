"""ImageExampleGen's Beam executor: image folders / CSV manifests / TFRecord files → tf.Examples per split,
quarantining bad files and records.

It overrides `GenerateExamplesByBeam` (TFX's documented hook for custom splitting) so that it sees every split at
once:

1. Listing (driver side, no image read): each split pattern is listed (see `sources`); every file gets its
   output split up front — the split it came from for pre-split layouts, or for a hash split the very bucket TFX's
   base executor would give it (`_PartitionFn` on the `path` feature), so even files that are later quarantined
   are accounted to a split. A data root whose training split holds fewer than two classes (or distinct labels,
   for multilabel) is refused here, naming the class.
2. Reading (Beam): every file is read and checked by `images.prepare_image`; good images become
   `tf.train.Example`s with their original bytes (or, EXIF-oriented or transcoded, a PNG, listed on a side
   output), the rest go to the quarantine side output. Hidden/system files (`sources.HIDDEN_REASON`) are skipped.
   TFRecord input (see `records`): the record files are listed, and each record, `<file>#<index>`, gets its output
   split (the hash split on that id), is counted as seen (its label is only known once read), parsed and checked
   in Beam (`images.inspect_image`: records are ingested as they are, never re-encoded) — the same quarantine,
   leakage and accounting as a file.
3. Cross-split checks (Beam, see `leakage`): an eval image whose class has no training image is quarantined;
   identical content (sha256) in train and eval is train/eval leakage — listed in `leakage_report.csv` and, with
   `leakage="remove"` (the default), the eval copy is quarantined; duplicates within one split are only counted.
4. Reports (after the Beam job, see `accounting`): `quarantine_report.csv`, `leakage_report.csv` and
   `ingest_summary.json` go into the Examples artifact, with per-split and per-class counts. The invariant files
   seen = ingested + quarantined is checked for every split and class (a mismatch is a bug and fails the
   component); counts are recorded as artifact properties (visible in ML Metadata). A training split left with
   fewer than two classes after quarantining fails the component, naming the report.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NamedTuple

import apache_beam as beam
import tensorflow as tf
from tfx.components.example_gen import base_example_gen_executor
from tfx.components.example_gen import utils as example_gen_utils
from tfx.dsl.io import fileio
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import proto_utils
from tqdm import tqdm

from components import features
from components.example_gen import accounting, images, leakage, manifest, records, sources
from components.example_gen.accounting import TRAIN_SPLIT
from components.example_gen.class_selection import ClassSelection
from components.example_gen.manifest import ManifestOptions
from components.example_gen.options import ingest_options

QUARANTINE_TAG = "quarantine"
UNUSED_FOLDER = "folder not read:"  # how the warning about a subfolder no split reads starts
_QUARANTINE_DIR_KEY = "_visionline_quarantine_dir"


class _Ingested(NamedTuple):
    """An accepted image on its way through the Beam job."""

    split: str
    path: str  # relative to the input base
    label: str  # class name, or the canonical multilabel cell ("a|b", "" for none)
    sha256: str  # of the original bytes
    example: bytes  # serialized tf.train.Example


class _ReadImage(beam.DoFn):
    """Reads one `Source`; emits an `_Ingested`, or a quarantine record on the side output."""

    def __init__(self, max_image_pixels: int, multilabel: bool, min_image_side: int = images.MIN_IMAGE_SIDE,
                 transcode: bool = True) -> None:
        self._max_pixels = max_image_pixels
        self._multilabel = multilabel
        self._min_side = min_image_side
        self._transcode = transcode
        self._progress = None

    def setup(self) -> None:
        self._progress = tqdm(desc="ingest", unit="img", disable=None, leave=False)

    def process(self, source: sources.Source) -> Iterator[Any]:
        try:
            with fileio.open(source.path, "rb") as handle:
                data = handle.read()
            prepared = images.prepare_image(data, self._max_pixels, transcode=self._transcode,
                                            min_side=self._min_side)
            label = sources.split_labels(source.label, True) if self._multilabel else source.label
            example = images.make_example(prepared.data, label, source.relative_path, prepared.info)
            if prepared.note:  # re-encoded (EXIF orientation, transcoded): listed in the ingest summary
                yield beam.pvalue.TaggedOutput(accounting.CONVERTED, accounting.converted_record(
                    source.relative_path, source.label, source.split, prepared.kind, prepared.note))
            yield _Ingested(source.split, source.relative_path, source.label, hashlib.sha256(data).hexdigest(),
                            example.SerializeToString())
        except images.Quarantined as rejected:
            yield beam.pvalue.TaggedOutput(QUARANTINE_TAG, _quarantined(source, rejected.reason))
        except OSError as err:  # unreadable file (permissions, vanished, I/O error)
            yield beam.pvalue.TaggedOutput(QUARANTINE_TAG, _quarantined(source, f"cannot read file: {err}"))
        finally:
            if self._progress is not None:
                self._progress.update(1)

    def teardown(self) -> None:
        if self._progress is not None:
            self._progress.close()


class _ReadRecords(beam.DoFn):
    """Reads every record of one `records.RecordFile` into its output split: an `_Ingested` or a quarantine record
    (tagged), and the record's accounting keys (tagged `accounting.SEEN`)."""

    def __init__(self, spec: records.RecordSpec, assign: Callable[[str, str], str]) -> None:
        self._spec = spec
        self._assign = assign

    def process(self, record_file: records.RecordFile) -> Iterator[Any]:
        for read in records.read_record_file(record_file, self._spec):
            split = self._assign(read.path, record_file.split)
            for key in accounting.count_keys(split, read.label, False):
                yield beam.pvalue.TaggedOutput(accounting.SEEN, key)
            if read.reason:
                yield beam.pvalue.TaggedOutput(
                    QUARANTINE_TAG, accounting.quarantine_record(read.path, read.label, split, read.reason))
                continue
            if read.note:  # re-encoded (EXIF orientation, transcoded): listed in the ingest summary, as files are
                yield beam.pvalue.TaggedOutput(accounting.CONVERTED, accounting.converted_record(
                    read.path, read.label, split, read.conversion, read.note))
            yield _Ingested(split, read.path, read.label, read.sha256, read.example)


def _quarantined(item: sources.Source | _Ingested, reason: str) -> dict[str, str]:
    path = item.relative_path if isinstance(item, sources.Source) else item.path
    return accounting.quarantine_record(path, item.label, item.split, reason)


def _find_duplicates(group: tuple[str, Iterable[tuple[str, str, str]]], train_split: str) -> Iterator[Any]:
    """`leakage.find_duplicates` on one content hash: leakage rows (main output), duplicate rows (tagged)."""
    leaks, duplicates = leakage.find_duplicates(*group, train_split)
    for row in duplicates:
        yield beam.pvalue.TaggedOutput(accounting.DUPLICATES, row)
    yield from leaks


class _CheckEvalSplit(beam.DoFn):
    """Eval-side checks against the training split (`leakage.eval_rejection`): kept items, or quarantine records."""

    def __init__(self, multilabel: bool, leakage_mode: str) -> None:
        self._multilabel = multilabel
        self._remove_leaks = leakage_mode == "remove"

    def process(self, item: _Ingested, train_labels: dict[str, bool], leaks: dict[str, str]) -> Iterator[Any]:
        reason = leakage.eval_rejection(sources.split_labels(item.label, self._multilabel), item.path, train_labels,
                                        leaks, self._remove_leaks)
        if reason is None:
            yield item
        else:
            yield beam.pvalue.TaggedOutput(QUARANTINE_TAG, _quarantined(item, reason))


def _split_assigner(input_config: example_gen_pb2.Input, output_config: example_gen_pb2.Output,
                    split_names: list[str]) -> Callable[[str, str], str]:
    """(relative path, input split name) → output split name.

    Pre-split layouts keep their input split. For a hash split this is exactly TFX's partition of the base
    ExampleGen executor (sha256 of the serialized `path` feature, bucketed by `hash_buckets`), so a file lands in
    the split TFX would have put it in, and files that never become examples can be accounted to a split too.
    """
    split_config = output_config.split_config
    if not split_config.splits:
        return lambda _path, input_split: input_split
    if split_config.partition_feature_name != features.PATH:
        raise ValueError(f"ImageExampleGen hash-splits on the '{features.PATH}' feature: set "
                         f"output_config.split_config.partition_feature_name='{features.PATH}' "
                         f"(got {split_config.partition_feature_name!r})")
    buckets: list[int] = []
    for split in split_config.splits:
        buckets.append((buckets[-1] if buckets else 0) + split.hash_buckets)

    def assign(relative_path: str, _input_split: str) -> str:
        example = tf.train.Example()
        example.features.feature[features.PATH].bytes_list.value.append(relative_path.encode("utf-8"))
        return split_names[base_example_gen_executor._PartitionFn(example, len(buckets), buckets, split_config)]

    return assign


def _list_sources(input_base: str, input_config: example_gen_pb2.Input, output_config: example_gen_pb2.Output,
                  split_names: list[str], options: dict[str, Any]
                  ) -> tuple[list[sources.Source], list[sources.Rejected], list[str], list[sources.Rejected]]:
    """Every file of every input split, each with its output split and its class after the class selection; plus
    listing warnings (empty class folders) and the files the class selection leaves out."""
    multilabel = bool(options["multilabel"])
    if multilabel and options["format"] != "csv":
        raise sources.DataLayoutError(f"data root {input_base} is read as {options['format']}: "
                                      f"{sources.MULTILABEL_NEEDS_CSV}")
    assign = _split_assigner(input_config, output_config, split_names)
    found: list[sources.Source] = []
    rejected: list[sources.Rejected] = []
    warnings: list[str] = []
    for split in input_config.splits:
        if options["format"] == "csv":
            listed, refused = manifest.list_csv_sources(
                input_base, split.pattern, split.name, multilabel, ManifestOptions.from_dict(options["manifest"]))
        else:
            listed, refused = sources.list_folder_sources(input_base, split.pattern, split.name)
            warnings += [f"empty class folder '{folder}': class '{os.path.basename(folder)}' gets no images from it"
                         for folder in sources.empty_class_folders(input_base, split.pattern)]
        found += [dataclasses.replace(s, split=assign(s.relative_path, split.name)) for s in listed]
        rejected += [dataclasses.replace(r, split=assign(r.relative_path, split.name)) for r in refused]
    found, rejected, excluded = ClassSelection.from_options(options).apply(found, rejected, f"data root {input_base}")
    if not found:
        patterns = ", ".join(split.pattern for split in input_config.splits)
        examples = "; ".join(f"{r.relative_path}: {r.reason}" for r in rejected[:3])
        raise sources.DataLayoutError(
            f"no image files found under {input_base} (patterns {patterns})"
            + (f"; {len(rejected)} entries rejected while listing, e.g. {examples}" if rejected else "")
            + (f"; {len(excluded)} left out by the class selection" if excluded else ""))
    return found, rejected, warnings, excluded


def unused_folder_warnings(unused: list[str], patterns: list[str]) -> list[str]:
    """A warning per subfolder of a pre-split data root that no split reads (also printed: never silently lost)."""
    read = ", ".join(f"{pattern.split('/', 1)[0]}/" for pattern in patterns)
    warnings = [f"{UNUSED_FOLDER} '{name}/' (the data root is pre-split: only {read} are read; move its images into "
                f"one of them, or remove it)" for name in unused]
    for warning in warnings:
        print(f"ImageExampleGen: WARNING: {warning}", flush=True)
    return warnings


def _list_records(input_base: str, input_config: example_gen_pb2.Input, output_config: example_gen_pb2.Output,
                  split_names: list[str], options: dict[str, Any]) -> tuple[list[records.RecordFile],
                                                                             list[sources.Rejected], _ReadRecords]:
    """TFRecord input: the record files of every split, what listing rejected, and the reader of their records."""
    if options["multilabel"]:
        raise sources.DataLayoutError(f"data root {input_base} holds TFRecords: {sources.MULTILABEL_NEEDS_CSV}")
    assign = _split_assigner(input_config, output_config, split_names)
    found: list[records.RecordFile] = []
    rejected: list[sources.Rejected] = []
    for split in input_config.splits:
        listed, refused = records.list_record_files(input_base, split.pattern, split.name)
        found += listed  # each record gets its output split when read
        rejected += [dataclasses.replace(r, split=assign(r.relative_path, split.name)) for r in refused]
    if not found:
        patterns = ", ".join(split.pattern for split in input_config.splits)
        raise sources.DataLayoutError(f"no TFRecord files found under {input_base} (patterns {patterns})")
    names = records.resolve_label_names(input_base, options["label_names"])
    spec = records.RecordSpec(
        str(options["image_feature"]), str(options["label_feature"]), names, int(options["max_image_pixels"]),
        records.LABEL_NAMES_FILE if records.read_label_names(input_base) else "data.label_names",
        int(options["min_image_side"]), bool(options["transcode"]))
    return found, rejected, _ReadRecords(spec, assign)


class Executor(base_example_gen_executor.BaseExampleGenExecutor):
    """Beam executor: images → tf.Examples per split, with quarantine, leakage and accounting reports."""

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
        """Not used: `GenerateExamplesByBeam` is overridden to see all splits at once."""
        raise NotImplementedError("ImageExampleGen builds its splits in GenerateExamplesByBeam")

    def Do(self, input_dict: dict[str, list], output_dict: dict[str, list], exec_properties: dict[str, Any]) -> None:
        examples = artifact_utils.get_single_instance(output_dict[standard_component_specs.EXAMPLES_KEY])
        quarantine_dir = os.path.join(examples.uri, accounting.QUARANTINE_DIR)
        fileio.makedirs(quarantine_dir)
        exec_properties = {**exec_properties, _QUARANTINE_DIR_KEY: quarantine_dir}
        super().Do(input_dict, output_dict, exec_properties)
        summary = accounting.write_quarantine_report(quarantine_dir, examples.uri)
        examples.set_int_custom_property("files_seen", summary["files_seen"])
        examples.set_int_custom_property("ingested", summary["ingested"])
        examples.set_int_custom_property("quarantined", summary["quarantined"])
        examples.set_int_custom_property("excluded", summary["excluded"])
        examples.set_int_custom_property("train_eval_duplicates", summary["leakage"]["eval_files_duplicating_train"])
        train = summary["per_split"].get(TRAIN_SPLIT)
        if train is not None:
            classes = [name for name, counts in train["classes"].items() if counts["ingested"]]
            sources.require_two_classes(
                classes, f"after quarantining {train['quarantined']} file(s) (see {summary['quarantine_report']}), "
                         f"the training split", bool(summary["multilabel"]))

    def GenerateExamplesByBeam(self, pipeline: beam.Pipeline,
                               exec_properties: dict[str, Any]) -> dict[str, beam.pvalue.PCollection]:
        """List every split, read and check the images, apply the cross-split checks; split name → examples."""
        input_config = example_gen_pb2.Input()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.INPUT_CONFIG_KEY], input_config)
        output_config = example_gen_pb2.Output()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.OUTPUT_CONFIG_KEY], output_config)
        split_names = example_gen_utils.generate_output_split_names(input_config, output_config)
        if output_config.split_config.splits and len(input_config.splits) != 1:
            raise ValueError("ImageExampleGen: a hash split (output split_config) needs exactly one input split")
        options = ingest_options(exec_properties)
        multilabel = bool(options["multilabel"])
        leakage_mode = str(options["leakage"])
        input_base = exec_properties[standard_component_specs.INPUT_BASE_KEY]
        quarantine_dir = exec_properties[_QUARANTINE_DIR_KEY]

        tfrecord = options["format"] == "tfrecord"  # records are counted as seen when read (labels unknown before)
        excluded: list[sources.Rejected] = []
        if tfrecord:
            found, rejected, reader = _list_records(input_base, input_config, output_config, split_names, options)
            warnings: list[str] = []
        else:
            found, rejected, warnings, excluded = _list_sources(input_base, input_config, output_config, split_names,
                                                                options)
            reader = _ReadImage(int(options["max_image_pixels"]), multilabel, int(options["min_image_side"]),
                                bool(options["transcode"]))
        skipped = [r for r in rejected if r.reason == sources.HIDDEN_REASON]  # not inputs: listed, never quarantined
        rejected = [r for r in rejected if r.reason != sources.HIDDEN_REASON]
        patterns = [split.pattern for split in input_config.splits]
        unused = sources.unused_folders(input_base, patterns)
        warnings += unused_folder_warnings(unused, patterns)
        accounting.write_listing(quarantine_dir, split_names, [] if tfrecord else found, rejected, warnings,
                                 multilabel, leakage_mode, unused_folders=unused, excluded=excluded, skipped=skipped)
        if TRAIN_SPLIT in split_names and not tfrecord:
            sources.require_two_classes(
                [label for s in found if s.split == TRAIN_SPLIT for label in sources.split_labels(s.label, multilabel)],
                f"the training split of data root {input_base}", multilabel,
                elsewhere=[label for s in found if s.split != TRAIN_SPLIT
                           for label in sources.split_labels(s.label, multilabel)])

        read = (
            pipeline
            | "ListSources" >> beam.Create(found, reshuffle=True)
            | "ReadAndValidate" >> beam.ParDo(reader).with_outputs(
                QUARANTINE_TAG, accounting.SEEN, accounting.CONVERTED, main="ingested")
        )
        ingested = read.ingested
        index = {name: i for i, name in enumerate(split_names)}
        per_split = ingested | "BySplit" >> beam.Partition(lambda item, _n: index[item.split], len(split_names))
        rejects = [read[QUARANTINE_TAG], pipeline | "ListingRejects" >> beam.Create([r.to_record() for r in rejected])]

        findings = (
            ingested
            | "KeyByContent" >> beam.Map(lambda item: (item.sha256, (item.split, item.path, item.label)))
            | "GroupByContent" >> beam.GroupByKey()
            | "FindDuplicates" >> beam.FlatMap(_find_duplicates, TRAIN_SPLIT).with_outputs(
                accounting.DUPLICATES, main="leaks")
        )
        final: dict[str, beam.pvalue.PCollection] = {}
        if TRAIN_SPLIT in index:
            final[TRAIN_SPLIT] = per_split[index[TRAIN_SPLIT]]
            train_labels = beam.pvalue.AsDict(
                final[TRAIN_SPLIT]
                | "TrainLabels" >> beam.FlatMap(lambda item: sources.split_labels(item.label, multilabel))
                | "DistinctTrainLabels" >> beam.Distinct()
                | "AsTrainLabelSet" >> beam.Map(lambda label: (label, True))
            )
            leaks = beam.pvalue.AsDict(findings.leaks | "LeakedEvalPaths" >> beam.Map(
                lambda row: (row["eval_path"], row["train_path"])))
        for name in split_names:
            if name in final:
                continue
            items = per_split[index[name]]
            if TRAIN_SPLIT in index:
                checked = items | f"Check[{name}]" >> beam.ParDo(
                    _CheckEvalSplit(multilabel, leakage_mode), train_labels=train_labels, leaks=leaks
                ).with_outputs(QUARANTINE_TAG, main="kept")
                rejects.append(checked[QUARANTINE_TAG])
                items = checked.kept
            final[name] = items

        counts = (
            [final[name] for name in split_names]
            | "AllIngested" >> beam.Flatten()
            | "CountKeys" >> beam.FlatMap(lambda item: accounting.count_keys(item.split, item.label, multilabel))
            | "Count" >> beam.combiners.Count.PerElement()
            | "CountRows" >> beam.Map(lambda kv: {"split": kv[0][0], "key": kv[0][1], "count": kv[1]})
        )
        seen = (read[accounting.SEEN]  # records only: files are counted as seen by the listing
                | "CountSeen" >> beam.combiners.Count.PerElement()
                | "SeenRows" >> beam.Map(lambda kv: {"split": kv[0][0], "key": kv[0][1], "count": kv[1]}))
        kinds = ((accounting.REJECTS, rejects | "AllRejects" >> beam.Flatten()), (accounting.COUNTS, counts),
                 (accounting.LEAKS, findings.leaks), (accounting.DUPLICATES, findings[accounting.DUPLICATES]),
                 (accounting.SEEN, seen), (accounting.CONVERTED, read[accounting.CONVERTED]))
        _ = (  # one output for all report rows: fewer Beam stages than one sink per kind
            [rows | f"Tag[{kind}]" >> beam.Map(lambda row, kind: {"record": kind, "data": row}, kind)
             for kind, rows in kinds]
            | "AllReportRows" >> beam.Flatten()
            | "ToJson" >> beam.Map(json.dumps, sort_keys=True)
            | "WriteReportRows" >> beam.io.WriteToText(os.path.join(quarantine_dir, accounting.ROWS),
                                                       file_name_suffix=".jsonl")
        )
        return {name: final[name] | f"Serialized[{name}]" >> beam.Map(lambda item: item.example)
                for name in split_names}
