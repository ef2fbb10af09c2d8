"""Ingestion accounting and its reports: every file seen is ingested or quarantined, per split and per class.

The executor writes two halves into the Examples artifact's `quarantine/` folder: the listing (`listing.json`:
what was seen before any file was read, `write_listing`) and the Beam job's report rows (`report_rows-*.jsonl`,
one JSON object `{"record": kind, "data": row}` per line, kinds `REJECTS`, `COUNTS`, `LEAKS`, `DUPLICATES`,
`CONVERTED`, and `SEEN`: TFRecord records, counted as seen when read since their labels are not known before).
`write_quarantine_report` merges them into `quarantine_report.csv`, `leakage_report.csv`,
`converted_report.csv` (images re-encoded as PNG: EXIF orientation applied, TIFF/WebP transcoded) and
`ingest_summary.json` (hidden/system files skipped while listing are listed there, apart from the accounting) and
checks files seen = ingested + quarantined + excluded for every split and class
(`IngestAccountingError` when not: a file was lost or counted twice, i.e. a bug). Excluded files are those the
class selection (`data.classes`, `data.exclude_classes`) leaves out on purpose: listed in `excluded_files.csv`
with their reason, counted apart from quarantined (bad) files, under their source class.
"""

from __future__ import annotations

import csv
import json
import os
from collections import Counter
from collections.abc import Iterable
from typing import Any

from tfx.dsl.io import fileio

from components import features
from components.example_gen import sources
from components.example_gen.leakage import LEAK_REASON_PREFIX

QUARANTINE_DIR = "quarantine"  # Beam shards and the listing, inside the Examples artifact
QUARANTINE_REPORT = "quarantine_report.csv"
LEAKAGE_REPORT = "leakage_report.csv"
EXCLUDED_REPORT = "excluded_files.csv"  # files the class selection left out, with the reason
INGEST_SUMMARY = "ingest_summary.json"
TRAIN_SPLIT = features.TRAIN_SPLIT
VALIDATION_SPLIT = features.VALIDATION_SPLIT
ROWS = "report_rows"  # the Beam job's output: JSON lines {"record": kind, "data": row}, kinds below
CONVERTED_REPORT = "converted_report.csv"
REJECTS, COUNTS, LEAKS, DUPLICATES, CONVERTED = "quarantined", "ingested_count", "leak", "duplicate", "converted"
SEEN = "seen_count"  # TFRecord records seen, counted by the Beam job (files are counted by the listing)
FILES = "*files*"  # accounting key for "number of files" next to the per-class keys
_LISTING = "listing.json"


class IngestAccountingError(RuntimeError):
    """files seen != ingested + quarantined for some split or class: a file was lost or counted twice."""


def quarantine_record(path: str, label: str, split: str, reason: str) -> dict[str, str]:
    """A row of the quarantine report (`path` relative to the input base)."""
    return {"path": path, "label": label, "split": split, "reason": reason}


def converted_record(path: str, label: str, split: str, kind: str, note: str) -> dict[str, str]:
    """A row of the converted report: an ingested image stored re-encoded (`kind` orientation | transcode)."""
    return {"path": path, "label": label, "split": split, "kind": kind, "note": note}


def count_keys(split: str, label: str, multilabel: bool) -> list[tuple[str, str]]:
    """The (split, key) counters one file adds to: the split's file count and each of its classes."""
    return [(split, FILES)] + [(split, key) for key in sources.class_keys(label, multilabel)]


def write_listing(quarantine_dir: str, split_names: list[str], found: Iterable[sources.Source],
                  rejected: Iterable[sources.Rejected], warnings: list[str], multilabel: bool, leakage: str,
                  unused_folders: Iterable[str] = (), excluded: Iterable[sources.Rejected] = (),
                  skipped: Iterable[sources.Rejected] = ()) -> None:
    """What was seen, per split and class, before any file was read: the left side of the accounting
    (`unused_folders`: subfolders of a pre-split data root that no split reads, listed in the summary;
    `excluded`: files the class selection left out, seen and accounted for, never read; `skipped`: hidden/system
    files, listed but not inputs)."""
    excluded = list(excluded)
    seen: Counter[tuple[str, str]] = Counter()
    for item in [*found, *rejected, *excluded]:
        seen.update(count_keys(item.split, item.label, multilabel))
    listing = {"splits": split_names, "multilabel": multilabel, "leakage": leakage, "warnings": warnings,
               "skipped": [r.to_record() for r in skipped],
               "unused_folders": list(unused_folders), "excluded": [item.to_record() for item in excluded],
               "seen": [{"split": split, "key": key, "count": count} for (split, key), count in sorted(seen.items())]}
    with fileio.open(os.path.join(quarantine_dir, _LISTING), "w") as handle:
        handle.write(json.dumps(listing))


def _read_rows(quarantine_dir: str) -> dict[str, list[Any]]:
    """The Beam job's report rows, by kind (`REJECTS`, `COUNTS`, `LEAKS`, `DUPLICATES`, `CONVERTED`, `SEEN`)."""
    rows: dict[str, list[Any]] = {kind: [] for kind in (REJECTS, COUNTS, LEAKS, DUPLICATES, CONVERTED, SEEN)}
    for shard in sorted(fileio.glob(os.path.join(quarantine_dir, f"{ROWS}-*.jsonl"))):
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
    records = sorted(rows[REJECTS], key=lambda r: (r["split"], r["path"], r["reason"]))
    leaks = sorted(rows[LEAKS], key=lambda r: (r["eval_path"], r["train_path"]))
    duplicates = rows[DUPLICATES]
    converted = sorted(rows[CONVERTED], key=lambda r: (r["split"], r["path"]))
    skipped = listing.get("skipped", [])

    seen = Counter({(row["split"], row["key"]): row["count"] for row in listing["seen"]})
    seen.update({(row["split"], row["key"]): row["count"] for row in rows[SEEN]})
    ingested = Counter({(row["split"], row["key"]): row["count"] for row in rows[COUNTS]})
    quarantined: Counter[tuple[str, str]] = Counter()
    for record in records:
        quarantined.update(count_keys(record["split"], record["label"], multilabel))
    left_out = sorted(listing.get("excluded", []), key=lambda r: (r["split"], r["path"]))
    excluded: Counter[tuple[str, str]] = Counter()
    for record in left_out:
        excluded.update(count_keys(record["split"], record["label"], multilabel))

    splits = list(listing["splits"]) + sorted({split for split, _ in seen + quarantined + excluded}
                                              - set(listing["splits"]))
    per_split: dict[str, Any] = {}
    mismatches: list[str] = []
    for split in splits:
        classes = sorted({key for s, key in seen + ingested + quarantined + excluded
                          if s == split and key != FILES})
        per_split[split] = {
            "files_seen": seen[(split, FILES)], "ingested": ingested[(split, FILES)],
            "quarantined": quarantined[(split, FILES)], "excluded": excluded[(split, FILES)],
            "classes": {name: {"seen": seen[(split, name)], "ingested": ingested[(split, name)],
                               "quarantined": quarantined[(split, name)], "excluded": excluded[(split, name)]}
                        for name in classes},
        }
        for key in [FILES, *classes]:
            if seen[(split, key)] != ingested[(split, key)] + quarantined[(split, key)] + excluded[(split, key)]:
                what = "files" if key == FILES else f"class {key!r}"
                mismatches.append(f"split {split!r}, {what}: seen {seen[(split, key)]} != ingested "
                                  f"{ingested[(split, key)]} + quarantined {quarantined[(split, key)]} + excluded "
                                  f"{excluded[(split, key)]}")

    report_path = os.path.join(examples_uri, QUARANTINE_REPORT)
    with fileio.open(report_path, "w") as handle:
        writer = csv.DictWriter(handle, fieldnames=["path", "label", "split", "reason"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(records)
    excluded_path = os.path.join(examples_uri, EXCLUDED_REPORT)
    if left_out:
        with fileio.open(excluded_path, "w") as handle:
            writer = csv.DictWriter(handle, fieldnames=["path", "label", "split", "reason"], lineterminator="\n")
            writer.writeheader()
            writer.writerows(left_out)
    leakage_path = os.path.join(examples_uri, LEAKAGE_REPORT)
    with fileio.open(leakage_path, "w") as handle:
        writer = csv.DictWriter(handle, fieldnames=["eval_path", "train_path", "sha256"], lineterminator="\n",
                                extrasaction="ignore")
        writer.writeheader()
        writer.writerows(leaks)
    converted_path = os.path.join(examples_uri, CONVERTED_REPORT)
    with fileio.open(converted_path, "w") as handle:
        writer = csv.DictWriter(handle, fieldnames=["path", "label", "split", "kind", "note"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(converted)

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
        "excluded": len(left_out),  # left out by the class selection (data.classes / data.exclude_classes)
        "excluded_by_reason": dict(Counter(r["reason"] for r in left_out).most_common()),
        "excluded_report": excluded_path if left_out else "",
        "multilabel": multilabel,
        "per_split": per_split,
        "unused_folders": listing.get("unused_folders", []),
        "duplicates": {
            "within_split_extra_copies": {s: within[s] for s in splits},
            "label_conflicts": len(conflicts),  # identical content under different labels
            "label_conflict_examples": conflicts[:10],
        },
        "leakage": {
            "mode": listing["leakage"],
            "eval_files_duplicating_train": len(leaks),
            "removed": sum(1 for r in records if r["reason"].startswith(LEAK_REASON_PREFIX)),
            "report": leakage_path,
        },
        "warnings": list(listing["warnings"]) + _class_warnings(per_split, leaks, listing["leakage"])
        + ([f"{len(conflicts)} set(s) of byte-identical images carry different labels, e.g. "
            f"{', '.join(conflicts[0])}"] if conflicts else []),
        "accounting_ok": not mismatches,
        # ingested images stored as PNG instead of their original bytes (EXIF orientation applied, transcoded)
        "converted": {"count": len(converted), "by_kind": dict(Counter(r["kind"] for r in converted)),
                      "report": converted_path},
        # hidden/system files (.DS_Store, Thumbs.db, ._* AppleDouble, desktop.ini): not inputs, so not in files_seen
        "skipped": {"count": len(skipped), "files": [{"path": r["path"], "split": r["split"], "reason": r["reason"]}
                                                      for r in skipped]},
    }
    if converted:
        summary["warnings"].append(f"{len(converted)} image(s) stored re-encoded as PNG ("
                                   + ", ".join(f"{kind}: {n}" for kind, n in sorted(summary["converted"]["by_kind"]
                                                                                    .items()))
                                   + f"); see {CONVERTED_REPORT}")
    if skipped:  # not inputs, but said once so that nobody wonders where a file went
        summary["warnings"].append(f"{len(skipped)} hidden/system file(s) skipped (e.g. {skipped[0]['path']}); "
                                   f"listed under 'skipped' in {INGEST_SUMMARY}")
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
            if cls["seen"] > cls.get("excluded", 0) and not cls["ingested"] and name != sources.NO_LABEL:
                warnings.append(f"class '{name}' has no images in split '{split}' "
                                f"(all {cls['quarantined']} file(s) quarantined)")
            elif cls["ingested"] == 1 and name != sources.NO_LABEL:
                why = "too few to learn the class from" if split == TRAIN_SPLIT else "its metrics rest on one image"
                warnings.append(f"class '{name}' has only one image in split '{split}' ({why})")
        if split != TRAIN_SPLIT:
            for name in sorted(set(train) - set(counts["classes"]) - {sources.NO_LABEL}):
                if train[name]["ingested"]:
                    use = "not validated" if split == VALIDATION_SPLIT else "not evaluated"
                    warnings.append(f"class '{name}' has no images in split '{split}' ({use})")
    if leaks:
        action = "removed from eval" if leakage == "remove" else "kept (data.leakage=report)"
        warnings.append(f"{len(leaks)} eval image(s) are byte-identical to train images (train/eval leakage), "
                        f"{action}; see {LEAKAGE_REPORT}")
    return warnings


def _reason_kind(reason: str) -> str:
    """Group reasons for the summary: text before the first ':' or '(' (file names stripped)."""
    text = reason.split(": ", 1)[1] if reason.split(":", 1)[0].endswith((".csv", ".tsv", ".txt")) else reason
    if text.startswith(LEAK_REASON_PREFIX):
        return "duplicate of a train image (train/eval leakage)"
    if text.startswith("file already listed on line "):
        return "file already listed in the manifest"
    return text.split("(")[0].split(":")[0].strip()
