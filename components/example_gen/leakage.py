"""Cross-split checks against the training split, as plain functions the Beam executor applies.

* `find_duplicates`: one content hash (sha256 of the original bytes) and its copies → train/eval leakage rows
  (an eval file byte-identical to a train file), copies within one split, and identical content under different
  labels.
* `eval_rejection`: why an eval image must be quarantined — a class without training images, or (leakage mode
  `remove`) a byte-identical copy of a train image — or None to keep it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

LEAK_REASON_PREFIX = "duplicate of train image "  # how a removed leak's quarantine reason starts


def find_duplicates(sha256: str, members: Iterable[tuple[str, str, str]], train_split: str
                    ) -> tuple[list[dict[str, str]], list[dict[str, Any]]]:
    """One content hash and its (split, path, label) copies → (leakage rows: the eval copies of a train image,
    duplicate rows: `within_split` extra copies per split and `label_conflict` path sets)."""
    members = sorted(members)
    by_split: dict[str, list[str]] = defaultdict(list)
    for split, path, _ in members:
        by_split[split].append(path)
    duplicates: list[dict[str, Any]] = [{"kind": "within_split", "split": split, "extra_copies": len(paths) - 1}
                                        for split, paths in by_split.items() if len(paths) > 1]
    if len(members) > 1 and len({label for _, _, label in members}) > 1:
        duplicates.append({"kind": "label_conflict", "sha256": sha256, "paths": [path for _, path, _ in members]})
    leaks: list[dict[str, str]] = []
    train_paths = by_split.get(train_split)
    if train_paths:
        leaks = [{"eval_path": path, "train_path": train_paths[0], "sha256": sha256, "split": split}
                 for split, path, _ in members if split != train_split]
    return leaks, duplicates


def eval_rejection(labels: Sequence[str], path: str, train_labels: Collection[str], leaks: Mapping[str, str],
                   remove_leaks: bool) -> str | None:
    """The quarantine reason of an eval image with `labels` at `path`, or None to keep it. `leaks` maps leaked eval
    paths to the train path they duplicate."""
    missing = [label for label in labels if label not in train_labels]
    if missing:
        names = ", ".join(repr(label) for label in missing)
        verb = "has" if len(missing) == 1 else "have"
        return f"class{'es' if len(missing) > 1 else ''} {names} {verb} no training images"
    if remove_leaks and path in leaks:
        return f"{LEAK_REASON_PREFIX}{leaks[path]} (train/eval leakage)"
    return None
