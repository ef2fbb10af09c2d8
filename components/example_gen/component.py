"""`ImageExampleGen`: a TFX FileBasedExampleGen whose Beam executor ingests image folders or CSV manifests.

The executor overrides `GenerateExamplesByBeam` (TFX's documented hook for custom splitting) so that it sees
every split at once:

1. Listing (driver side, no image read): each split pattern is listed (see `sources`); every file gets its
   output split up front — the split it came from for pre-split layouts, or for a hash split the very bucket TFX's
   base executor would give it (`_PartitionFn` on the `path` feature), so even files that are later quarantined
   are accounted to a split. A data root whose training split holds fewer than two classes (or distinct labels,
   for multilabel) is refused here, naming the class.
2. Reading (Beam): every file is read and checked by `images.inspect_image`; good images become
   `tf.train.Example`s with their original bytes, the rest go to the quarantine side output.
3. Cross-split checks (Beam): an eval image whose class has no training image is quarantined; identical content
   (sha256) in train and eval is train/eval leakage — listed in `leakage_report.csv` and, with
   `leakage="remove"` (the default), the eval copy is quarantined; duplicates within one split are only counted.
4. Reports (after the Beam job): `quarantine_report.csv`, `leakage_report.csv` and `ingest_summary.json` go into
   the Examples artifact, with per-split and per-class counts. The invariant files seen = ingested +
   quarantined is checked for every split and class (a mismatch is a bug and fails the component); counts are
   recorded as artifact properties (visible in ML Metadata). A training split left with fewer than two classes
   after quarantining fails the component, naming the report.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import os
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NamedTuple

import apache_beam as beam
from google.protobuf import any_pb2, json_format, struct_pb2
from tfx.components.example_gen import base_example_gen_executor
from tfx.components.example_gen import utils as example_gen_utils
from tfx.components.example_gen.component import FileBasedExampleGen
from tfx.dsl.components.base import executor_spec
from tfx.dsl.io import fileio
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import proto_utils

from components import features
from components.example_gen import images, sources

QUARANTINE_TAG = "quarantine"
QUARANTINE_DIR = "quarantine"  # Beam shards and the listing, inside the Examples artifact
QUARANTINE_REPORT = "quarantine_report.csv"
LEAKAGE_REPORT = "leakage_report.csv"
INGEST_SUMMARY = "ingest_summary.json"
LEAKAGE_MODES = ("remove", "report")
TRAIN_SPLIT = "train"
_QUARANTINE_DIR_KEY = "_visionline_quarantine_dir"
_LISTING = "listing.json"
_ROWS = "report_rows"  # Beam output: JSON lines {"record": kind, "data": row}, kinds below
_REJECTS, _COUNTS, _LEAKS, _DUPLICATES = "quarantined", "ingested_count", "leak", "duplicate"
_FILES = "*files*"  # accounting key for "number of files" next to the per-class keys


class IngestAccountingError(RuntimeError):
    """files seen != ingested + quarantined for some split or class: a file was lost or counted twice."""


def ingest_custom_config(data_format: str, max_image_pixels: int, code_fingerprint: str = "",
                         multilabel: bool = False, leakage: str = "remove") -> example_gen_pb2.CustomConfig:
    """Pack ingestion options into ExampleGen's `custom_config` (an `Any` holding a `Struct`)."""
    if leakage not in LEAKAGE_MODES:
        raise ValueError(f"ImageExampleGen leakage={leakage!r}: expected one of {LEAKAGE_MODES}")
    options = struct_pb2.Struct()
    options.update({"format": data_format, "max_image_pixels": max_image_pixels, "code_fingerprint": code_fingerprint,
                    "multilabel": multilabel, "leakage": leakage})
    packed = any_pb2.Any()
    packed.Pack(options)
    return example_gen_pb2.CustomConfig(custom_config=packed)


def _ingest_options(exec_properties: dict[str, Any]) -> dict[str, Any]:
    defaults = {"format": "folders", "max_image_pixels": images.MAX_IMAGE_PIXELS, "multilabel": False,
                "leakage": "remove"}
    raw = exec_properties.get(standard_component_specs.CUSTOM_CONFIG_KEY)
    if not raw:
        return defaults
    config = example_gen_pb2.CustomConfig()
    json_format.Parse(raw, config) if isinstance(raw, str) else config.CopyFrom(raw)
    options = struct_pb2.Struct()
    config.custom_config.Unpack(options)
    return {**defaults, **json_format.MessageToDict(options)}


class _Ingested(NamedTuple):
    """An accepted image on its way through the Beam job."""

    split: str
    path: str  # relative to the input base
    label: str  # class name, or the canonical multilabel cell ("a|b", "" for none)
    sha256: str  # of the original bytes
    example: bytes  # serialized tf.train.Example


class _ReadImage(beam.DoFn):
    """Reads one `Source`; emits an `_Ingested`, or a quarantine record on the side output."""

    def __init__(self, max_image_pixels: int, multilabel: bool) -> None:
        self._max_pixels = max_image_pixels
        self._multilabel = multilabel
        self._progress = None

    def setup(self) -> None:
        from tqdm import tqdm

        self._progress = tqdm(desc="ingest", unit="img", disable=None, leave=False)

    def process(self, source: sources.Source) -> Iterator[Any]:
        try:
            with fileio.open(source.path, "rb") as handle:
                data = handle.read()
            info = images.inspect_image(data, self._max_pixels)
            label = sources.split_labels(source.label, True) if self._multilabel else source.label
            example = images.make_example(data, label, source.relative_path, info)
            yield _Ingested(source.split, source.relative_path, source.label, hashlib.sha256(data).hexdigest(),
                            example.SerializeToString())
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


def _record(source: sources.Source | _Ingested, reason: str) -> dict[str, str]:
    path = source.relative_path if isinstance(source, sources.Source) else source.path
    return {"path": path, "label": source.label, "split": source.split, "reason": reason}


def _find_duplicates(group: tuple[str, Iterable[tuple[str, str, str]]], train_split: str) -> Iterator[Any]:
    """One content hash and its (split, path, label) copies → leakage rows (main output: eval copies of a train
    image) and duplicate counts (tagged `_DUPLICATES`)."""
    sha256, members = group
    members = sorted(members)
    by_split: dict[str, list[str]] = defaultdict(list)
    for split, path, _ in members:
        by_split[split].append(path)
    for split, paths in by_split.items():
        if len(paths) > 1:
            yield beam.pvalue.TaggedOutput(_DUPLICATES, {"kind": "within_split", "split": split,
                                                         "extra_copies": len(paths) - 1})
    if len(members) > 1 and len({label for _, _, label in members}) > 1:
        yield beam.pvalue.TaggedOutput(_DUPLICATES, {"kind": "label_conflict", "sha256": sha256,
                                                     "paths": [path for _, path, _ in members]})
    train_paths = by_split.get(train_split)
    if train_paths:
        for split, path, _ in members:
            if split != train_split:
                yield {"eval_path": path, "train_path": train_paths[0], "sha256": sha256, "split": split}


class _CheckEvalSplit(beam.DoFn):
    """Eval-side checks against the training split: a class without training images, train/eval leakage."""

    def __init__(self, multilabel: bool, leakage: str) -> None:
        self._multilabel = multilabel
        self._remove_leaks = leakage == "remove"

    def process(self, item: _Ingested, train_labels: dict[str, bool], leaks: dict[str, str]) -> Iterator[Any]:
        labels = sources.split_labels(item.label, self._multilabel)
        missing = [label for label in labels if label not in train_labels]
        if missing:
            names = ", ".join(repr(label) for label in missing)
            verb = "has" if len(missing) == 1 else "have"
            yield beam.pvalue.TaggedOutput(
                QUARANTINE_TAG, _record(item, f"class{'es' if len(missing) > 1 else ''} {names} {verb} no training "
                                              f"images"))
        elif self._remove_leaks and item.path in leaks:
            yield beam.pvalue.TaggedOutput(
                QUARANTINE_TAG, _record(item, f"duplicate of train image {leaks[item.path]} (train/eval leakage)"))
        else:
            yield item


def _count_keys(item: _Ingested, multilabel: bool) -> list[tuple[str, str]]:
    return [(item.split, _FILES)] + [(item.split, key) for key in sources.class_keys(item.label, multilabel)]


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
        import tensorflow as tf

        example = tf.train.Example()
        example.features.feature[features.PATH].bytes_list.value.append(relative_path.encode("utf-8"))
        return split_names[base_example_gen_executor._PartitionFn(example, len(buckets), buckets, split_config)]

    return assign


class Executor(base_example_gen_executor.BaseExampleGenExecutor):
    """Beam executor: images → tf.Examples per split, with quarantine, leakage and accounting reports."""

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
        """Not used: `GenerateExamplesByBeam` is overridden to see all splits at once."""
        raise NotImplementedError("ImageExampleGen builds its splits in GenerateExamplesByBeam")

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
        options = _ingest_options(exec_properties)
        multilabel = bool(options["multilabel"])
        leakage = str(options["leakage"])
        input_base = exec_properties[standard_component_specs.INPUT_BASE_KEY]
        quarantine_dir = exec_properties[_QUARANTINE_DIR_KEY]

        found, rejected, warnings = _list_sources(input_base, input_config, output_config, split_names, options)
        _write_listing(quarantine_dir, split_names, found, rejected, warnings, multilabel, leakage)
        if TRAIN_SPLIT in split_names:
            sources.require_two_classes(
                [label for s in found if s.split == TRAIN_SPLIT for label in sources.split_labels(s.label, multilabel)],
                f"the training split of data root {input_base}", multilabel,
                elsewhere=[label for s in found if s.split != TRAIN_SPLIT
                           for label in sources.split_labels(s.label, multilabel)])

        read = (
            pipeline
            | "ListSources" >> beam.Create(found, reshuffle=True)
            | "ReadAndValidate"
            >> beam.ParDo(_ReadImage(int(options["max_image_pixels"]), multilabel)).with_outputs(
                QUARANTINE_TAG, main="ingested")
        )
        ingested = read.ingested
        index = {name: i for i, name in enumerate(split_names)}
        per_split = ingested | "BySplit" >> beam.Partition(lambda item, _n: index[item.split], len(split_names))
        rejects = [read[QUARANTINE_TAG], pipeline | "ListingRejects" >> beam.Create([r.to_record() for r in rejected])]

        findings = (
            ingested
            | "KeyByContent" >> beam.Map(lambda item: (item.sha256, (item.split, item.path, item.label)))
            | "GroupByContent" >> beam.GroupByKey()
            | "FindDuplicates" >> beam.FlatMap(_find_duplicates, TRAIN_SPLIT).with_outputs(_DUPLICATES, main="leaks")
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
                    _CheckEvalSplit(multilabel, leakage), train_labels=train_labels, leaks=leaks
                ).with_outputs(QUARANTINE_TAG, main="kept")
                rejects.append(checked[QUARANTINE_TAG])
                items = checked.kept
            final[name] = items

        counts = (
            [final[name] for name in split_names]
            | "AllIngested" >> beam.Flatten()
            | "CountKeys" >> beam.FlatMap(_count_keys, multilabel)
            | "Count" >> beam.combiners.Count.PerElement()
            | "CountRows" >> beam.Map(lambda kv: {"split": kv[0][0], "key": kv[0][1], "count": kv[1]})
        )
        kinds = ((_REJECTS, rejects | "AllRejects" >> beam.Flatten()), (_COUNTS, counts), (_LEAKS, findings.leaks),
                 (_DUPLICATES, findings[_DUPLICATES]))
        _ = (  # one output for all report rows: fewer Beam stages than one sink per kind
            [rows | f"Tag[{kind}]" >> beam.Map(lambda row, kind: {"record": kind, "data": row}, kind)
             for kind, rows in kinds]
            | "AllReportRows" >> beam.Flatten()
            | "ToJson" >> beam.Map(json.dumps, sort_keys=True)
            | "WriteReportRows" >> beam.io.WriteToText(os.path.join(quarantine_dir, _ROWS), file_name_suffix=".jsonl")
        )
        return {name: final[name] | f"Serialized[{name}]" >> beam.Map(lambda item: item.example)
                for name in split_names}


def _list_sources(input_base: str, input_config: example_gen_pb2.Input, output_config: example_gen_pb2.Output,
                  split_names: list[str], options: dict[str, Any]) -> tuple[list[sources.Source],
                                                                            list[sources.Rejected], list[str]]:
    """Every file of every input split, each with its output split; plus listing warnings (empty class folders)."""
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
            listed, refused = sources.list_csv_sources(input_base, split.pattern, split.name, multilabel)
        else:
            listed, refused = sources.list_folder_sources(input_base, split.pattern, split.name)
            warnings += [f"empty class folder '{folder}': class '{os.path.basename(folder)}' gets no images from it"
                         for folder in sources.empty_class_folders(input_base, split.pattern)]
        found += [dataclasses.replace(s, split=assign(s.relative_path, split.name)) for s in listed]
        rejected += [dataclasses.replace(r, split=assign(r.relative_path, split.name)) for r in refused]
    if not found:
        patterns = ", ".join(split.pattern for split in input_config.splits)
        examples = "; ".join(f"{r.relative_path}: {r.reason}" for r in rejected[:3])
        raise sources.DataLayoutError(
            f"no image files found under {input_base} (patterns {patterns})"
            + (f"; {len(rejected)} entries rejected while listing, e.g. {examples}" if rejected else ""))
    return found, rejected, warnings


def _write_listing(quarantine_dir: str, split_names: list[str], found: list[sources.Source],
                   rejected: list[sources.Rejected], warnings: list[str], multilabel: bool, leakage: str) -> None:
    """What was seen, per split and class, before any file was read: the left side of the accounting."""
    seen: Counter[tuple[str, str]] = Counter()
    for item in [*found, *rejected]:
        seen[(item.split, _FILES)] += 1
        for key in sources.class_keys(item.label, multilabel):
            seen[(item.split, key)] += 1
    listing = {"splits": split_names, "multilabel": multilabel, "leakage": leakage, "warnings": warnings,
               "seen": [{"split": split, "key": key, "count": count} for (split, key), count in sorted(seen.items())]}
    with fileio.open(os.path.join(quarantine_dir, _LISTING), "w") as handle:
        handle.write(json.dumps(listing))


def _read_rows(quarantine_dir: str) -> dict[str, list[Any]]:
    """The Beam job's report rows, by kind (`_REJECTS`, `_COUNTS`, `_LEAKS`, `_DUPLICATES`)."""
    rows: dict[str, list[Any]] = {kind: [] for kind in (_REJECTS, _COUNTS, _LEAKS, _DUPLICATES)}
    for shard in sorted(fileio.glob(os.path.join(quarantine_dir, f"{_ROWS}-*.jsonl"))):
        with fileio.open(shard, "r") as handle:
            for line in handle.read().splitlines():
                if line.strip():
                    row = json.loads(line)
                    rows[row["record"]].append(row["data"])
    return rows


def write_quarantine_report(quarantine_dir: str, examples_uri: str) -> dict[str, Any]:
    """Merge the Beam shards into `quarantine_report.csv`, `leakage_report.csv` and `ingest_summary.json`; check
    files seen = ingested + quarantined per split and per class (`IngestAccountingError` if not); return the
    summary."""
    with fileio.open(os.path.join(quarantine_dir, _LISTING), "r") as handle:
        listing = json.loads(handle.read())
    multilabel = bool(listing["multilabel"])
    rows = _read_rows(quarantine_dir)
    records = sorted(rows[_REJECTS], key=lambda r: (r["split"], r["path"], r["reason"]))
    leaks = sorted(rows[_LEAKS], key=lambda r: (r["eval_path"], r["train_path"]))
    duplicates = rows[_DUPLICATES]

    seen = Counter({(row["split"], row["key"]): row["count"] for row in listing["seen"]})
    ingested = Counter({(row["split"], row["key"]): row["count"] for row in rows[_COUNTS]})
    quarantined: Counter[tuple[str, str]] = Counter()
    for record in records:
        quarantined[(record["split"], _FILES)] += 1
        for key in sources.class_keys(record["label"], multilabel):
            quarantined[(record["split"], key)] += 1

    splits = list(listing["splits"]) + sorted({split for split, _ in seen + quarantined} - set(listing["splits"]))
    per_split: dict[str, Any] = {}
    mismatches: list[str] = []
    for split in splits:
        classes = sorted({key for s, key in seen + ingested + quarantined if s == split and key != _FILES})
        per_split[split] = {
            "files_seen": seen[(split, _FILES)], "ingested": ingested[(split, _FILES)],
            "quarantined": quarantined[(split, _FILES)],
            "classes": {name: {"seen": seen[(split, name)], "ingested": ingested[(split, name)],
                               "quarantined": quarantined[(split, name)]} for name in classes},
        }
        for key in [_FILES, *classes]:
            if seen[(split, key)] != ingested[(split, key)] + quarantined[(split, key)]:
                what = "files" if key == _FILES else f"class {key!r}"
                mismatches.append(f"split {split!r}, {what}: seen {seen[(split, key)]} != ingested "
                                  f"{ingested[(split, key)]} + quarantined {quarantined[(split, key)]}")

    report_path = os.path.join(examples_uri, QUARANTINE_REPORT)
    with fileio.open(report_path, "w") as handle:
        writer = csv.DictWriter(handle, fieldnames=["path", "label", "split", "reason"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(records)
    leakage_path = os.path.join(examples_uri, LEAKAGE_REPORT)
    with fileio.open(leakage_path, "w") as handle:
        writer = csv.DictWriter(handle, fieldnames=["eval_path", "train_path", "sha256"], lineterminator="\n",
                                extrasaction="ignore")
        writer.writeheader()
        writer.writerows(leaks)

    within: Counter[str] = Counter()
    for row in duplicates:
        if row["kind"] == "within_split":
            within[row["split"]] += row["extra_copies"]
    conflicts = sorted(row["paths"] for row in duplicates if row["kind"] == "label_conflict")
    summary = {
        "files_seen": sum(per_split[s]["files_seen"] for s in splits),
        "ingested": sum(per_split[s]["ingested"] for s in splits),
        "quarantined": len(records),
        "quarantined_by_reason": dict(Counter(_reason_kind(r["reason"]) for r in records).most_common()),
        "quarantine_report": report_path,
        "multilabel": multilabel,
        "per_split": per_split,
        "duplicates": {
            "within_split_extra_copies": {s: within[s] for s in splits},
            "label_conflicts": len(conflicts),  # identical content under different labels
            "label_conflict_examples": conflicts[:10],
        },
        "leakage": {
            "mode": listing["leakage"],
            "eval_files_duplicating_train": len(leaks),
            "removed": sum(1 for r in records if r["reason"].startswith("duplicate of train image ")),
            "report": leakage_path,
        },
        "warnings": list(listing["warnings"]) + _class_warnings(per_split, leaks, listing["leakage"])
        + ([f"{len(conflicts)} set(s) of byte-identical images carry different labels, e.g. "
            f"{', '.join(conflicts[0])}"] if conflicts else []),
        "accounting_ok": not mismatches,
    }
    with fileio.open(os.path.join(examples_uri, INGEST_SUMMARY), "w") as handle:
        handle.write(json.dumps(summary, indent=2, ensure_ascii=False))
    if mismatches:
        raise IngestAccountingError("ingestion lost or double-counted files: " + "; ".join(mismatches))
    return summary


def _class_warnings(per_split: dict[str, Any], leaks: list[dict[str, str]], leakage: str) -> list[str]:
    warnings: list[str] = []
    train = per_split.get(TRAIN_SPLIT, {}).get("classes", {})
    for split, counts in per_split.items():
        if not counts["ingested"]:
            warnings.append(f"split '{split}' has no images after ingestion")
        for name, cls in counts["classes"].items():
            if cls["seen"] and not cls["ingested"] and name != sources.NO_LABEL:
                warnings.append(f"class '{name}' has no images in split '{split}' "
                                f"(all {cls['quarantined']} file(s) quarantined)")
        if split != TRAIN_SPLIT:
            for name in sorted(set(train) - set(counts["classes"]) - {sources.NO_LABEL}):
                if train[name]["ingested"]:
                    warnings.append(f"class '{name}' has no images in split '{split}' (not evaluated)")
    if leaks:
        action = "removed from eval" if leakage == "remove" else "kept (data.leakage=report)"
        warnings.append(f"{len(leaks)} eval image(s) are byte-identical to train images (train/eval leakage), "
                        f"{action}; see {LEAKAGE_REPORT}")
    return warnings


def _reason_kind(reason: str) -> str:
    """Group reasons for the summary: text before the first ':' or '(' (file names stripped)."""
    text = reason.split(": ", 1)[1] if reason.split(":", 1)[0].endswith((".csv", ".tsv")) else reason
    if text.startswith("duplicate of train image "):
        return "duplicate of a train image (train/eval leakage)"
    if text.startswith("file already listed on line "):
        return "file already listed in the manifest"
    return text.split("(")[0].split(":")[0].strip()


class ImageExampleGen(FileBasedExampleGen):
    """FileBasedExampleGen preconfigured with the image-ingesting executor.

    `multilabel`: the CSV manifest's label cells hold 0..n labels separated by `|` (folder layouts are refused).
    `leakage`: `remove` (eval images byte-identical to a train image are quarantined) or `report` (kept, listed).
    """

    def __init__(
        self,
        input_base: str,
        input_config: example_gen_pb2.Input,
        output_config: example_gen_pb2.Output | None = None,
        data_format: str = "folders",
        max_image_pixels: int = images.MAX_IMAGE_PIXELS,
        code_fingerprint: str = "",
        multilabel: bool = False,
        leakage: str = "remove",
    ) -> None:
        if multilabel and data_format != "csv":
            raise sources.DataLayoutError(f"data root {input_base} is a {data_format} layout: "
                                          f"{sources.MULTILABEL_NEEDS_CSV}")
        super().__init__(
            input_base=input_base,
            input_config=input_config,
            output_config=output_config,
            custom_config=ingest_custom_config(data_format, max_image_pixels, code_fingerprint, multilabel, leakage),
            custom_executor_spec=executor_spec.BeamExecutorSpec(Executor),
        )
