"""The accepted-statistics store: the ExampleStatistics the ValidationGate accepted, one entry per accepted run,
kept at a stable location so the next run finds them without ML Metadata (open-source KFP cannot run TFX's
Resolver, which finds them in ML Metadata for local runs).

    <root>/                                   `<pipeline root>/accepted_statistics` (`ROOT_NAME`)
        <YYYYmmddTHHMMSSffffff>Z-<hash8>/     one accepted statistics artifact: its UTC acceptance time and a
                                              hash of its URI (two runs accepting in the same microsecond differ)
            Split-train/FeatureStats.pb …     a copy of the artifact's split folders, as StatisticsGen wrote them
            accepted.json                     written last (`MARKER`): split names, source URI, time

An entry is *complete* once `accepted.json` exists: it is one object written after every statistics file, so a
reader (on a local disk or an object store such as gs://) never takes a half-copied entry; a gate that died while
copying leaves an entry without it, which is skipped. The newest complete entry (names sort by time) is the
baseline. Entries are never removed here; each is the size of one statistics artifact (kilobytes to a few MB).
Reads and writes go through TFX's `fileio` (local paths, gs://).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import re
from dataclasses import dataclass

from tfx import types
from tfx.dsl.io import fileio
from tfx.types import artifact_utils
from tfx.utils import io_utils

ROOT_NAME = "accepted_statistics"  # the store's folder under the pipeline root
MARKER = "accepted.json"  # written last: the entry is complete
ENTRY_RE = re.compile(r"^[0-9]{8}T[0-9]{12}Z-[0-9a-f]{8}$")


@dataclass(frozen=True)
class Entry:
    """One complete entry of the store."""

    path: str  # <root>/<name>
    split_names: list[str]
    source_uri: str  # the ExampleStatistics artifact it was copied from
    accepted_at: str  # UTC, ISO 8601


def store_root(pipeline_root: str) -> str:
    """The store of the pipeline whose root is `pipeline_root`."""
    return os.path.join(pipeline_root, ROOT_NAME)


def publish(root: str, statistics: types.Artifact, now: datetime.datetime | None = None) -> str:
    """Copy the accepted `statistics` artifact into a new entry under `root`; return the entry's path."""
    now = now or datetime.datetime.now(datetime.UTC)
    suffix = hashlib.sha256(statistics.uri.encode()).hexdigest()[:8]
    entry = os.path.join(root, f"{now:%Y%m%dT%H%M%S%f}Z-{suffix}")
    splits = artifact_utils.decode_split_names(statistics.split_names)
    for split in splits:
        io_utils.copy_dir(artifact_utils.get_split_uri([statistics], split), split_folder(entry, split))
    io_utils.write_string_file(os.path.join(entry, MARKER), json.dumps(
        {"split_names": splits, "source_uri": statistics.uri, "accepted_at": now.isoformat()}, indent=2))
    return entry


def latest(root: str) -> Entry | None:
    """The newest complete entry under `root`; None when there is none (no run accepted yet, or no store)."""
    if not fileio.exists(root):
        return None
    names = sorted((name.rstrip("/") for name in fileio.listdir(root)), reverse=True)  # gs:// lists folders as x/
    for name in names:
        marker = os.path.join(root, name, MARKER)
        if ENTRY_RE.match(name) and fileio.exists(marker):
            record = json.loads(io_utils.read_string_file(marker))
            return Entry(os.path.join(root, name), list(record["split_names"]), record["source_uri"],
                         record["accepted_at"])
    return None


def split_folder(uri: str, split: str) -> str:
    """Where split `split` of a statistics artifact at `uri` lives: TFX's layout (`artifact_utils.get_split_uri`)."""
    return os.path.join(uri, f"Split-{split}")
