"""Tests for the ImageExampleGen executor's TFX-free pieces on their own: the cross-split checks
(components.example_gen.leakage) and the accounting reports (components.example_gen.accounting). The executor's
real Beam runs: tests/components/test_example_gen.py."""

from __future__ import annotations

import csv
import json
import os

import pytest

from components.example_gen import accounting, sources
from components.example_gen.leakage import eval_rejection, find_duplicates


def test_find_duplicates_reports_leaks_copies_and_label_conflicts():
    members = [("train", "t/2.png", "dog"), ("eval", "e/1.png", "cat"), ("train", "t/1.png", "cat")]
    leaks, duplicates = find_duplicates("abc", members, "train")
    assert leaks == [{"eval_path": "e/1.png", "train_path": "t/1.png", "sha256": "abc", "split": "eval"}]
    assert duplicates == [{"kind": "within_split", "split": "train", "extra_copies": 1},
                          {"kind": "label_conflict", "sha256": "abc", "paths": ["e/1.png", "t/1.png", "t/2.png"]}]
    assert find_duplicates("def", [("eval", "e/1.png", "cat"), ("eval", "e/2.png", "cat")], "train") == (
        [], [{"kind": "within_split", "split": "eval", "extra_copies": 1}])
    assert find_duplicates("0", [("train", "t/1.png", "cat")], "train") == ([], [])


def test_eval_rejection_names_unseen_classes_before_leaks():
    leaks = {"e/1.png": "t/1.png"}
    assert eval_rejection(["cat"], "e/2.png", {"cat"}, leaks, True) is None
    assert eval_rejection(["cow"], "e/1.png", {"cat"}, leaks, True) == "class 'cow' has no training images"
    assert eval_rejection(["cow", "owl"], "e/2.png", {"cat"}, leaks, True) == \
        "classes 'cow', 'owl' have no training images"
    assert eval_rejection(["cat"], "e/1.png", {"cat"}, leaks, True) == \
        "duplicate of train image t/1.png (train/eval leakage)"
    assert eval_rejection(["cat"], "e/1.png", {"cat"}, leaks, False) is None  # leakage=report keeps it


def _shard(quarantine_dir, rows):
    with open(os.path.join(quarantine_dir, f"{accounting.ROWS}-00000-of-00001.jsonl"), "w") as handle:
        handle.write("".join(json.dumps({"record": kind, "data": row}) + "\n" for kind, row in rows))


def _listing(quarantine_dir):
    found = [sources.Source(f"/d/{p}", p, label, split)
             for p, label, split in [("t/a.png", "a", "train"), ("t/b.png", "b", "train"), ("e/a.png", "a", "eval")]]
    rejected = [sources.Rejected("e/x.png", "b", "eval", "file does not exist")]
    accounting.write_listing(str(quarantine_dir), ["train", "eval"], found, rejected, [], False, "remove")


def test_reports_merge_the_listing_and_the_beam_rows(tmp_path):
    quarantine_dir = tmp_path / accounting.QUARANTINE_DIR
    quarantine_dir.mkdir()
    _listing(quarantine_dir)
    counts = [("train", accounting.FILES, 2), ("train", "a", 1), ("train", "b", 1)]
    _shard(quarantine_dir, [(accounting.COUNTS, {"split": s, "key": k, "count": c}) for s, k, c in counts] + [
        (accounting.REJECTS, accounting.quarantine_record("e/x.png", "b", "eval", "file does not exist")),
        (accounting.REJECTS, accounting.quarantine_record("e/a.png", "a", "eval",
                                                          "duplicate of train image t/a.png (train/eval leakage)")),
        (accounting.LEAKS, {"eval_path": "e/a.png", "train_path": "t/a.png", "sha256": "f00", "split": "eval"})])
    summary = accounting.write_quarantine_report(str(quarantine_dir), str(tmp_path))
    assert (summary["files_seen"], summary["ingested"], summary["quarantined"]) == (4, 2, 2)
    assert summary["accounting_ok"] and summary["leakage"]["removed"] == 1
    assert summary["quarantined_by_reason"] == {"file does not exist": 1,
                                                "duplicate of a train image (train/eval leakage)": 1}
    assert summary["per_split"]["eval"]["classes"]["b"] == {"seen": 1, "ingested": 0, "quarantined": 1,
                                                            "excluded": 0}
    assert "split 'eval' has no images after ingestion" in summary["warnings"]
    assert [w for w in summary["warnings"] if "only one image" in w] == [
        "class 'a' has only one image in split 'train' (too few to learn the class from)",
        "class 'b' has only one image in split 'train' (too few to learn the class from)"]
    with open(tmp_path / accounting.LEAKAGE_REPORT, newline="") as handle:
        assert list(csv.DictReader(handle)) == [{"eval_path": "e/a.png", "train_path": "t/a.png", "sha256": "f00"}]
    with open(tmp_path / accounting.INGEST_SUMMARY) as handle:
        assert json.load(handle) == summary


def test_a_lost_file_fails_the_accounting_after_writing_the_summary(tmp_path):
    quarantine_dir = tmp_path / accounting.QUARANTINE_DIR
    quarantine_dir.mkdir()
    _listing(quarantine_dir)
    _shard(quarantine_dir, [(accounting.COUNTS, {"split": "train", "key": key, "count": 1})
                            for key in (accounting.FILES, "a")])
    with pytest.raises(accounting.IngestAccountingError, match=r"split 'train', files: seen 2 != ingested 1"):
        accounting.write_quarantine_report(str(quarantine_dir), str(tmp_path))
    with open(tmp_path / accounting.INGEST_SUMMARY) as handle:
        assert json.load(handle)["accounting_ok"] is False
