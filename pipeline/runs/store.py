"""The pipeline's ML Metadata store, read-only: opening the SQLite file, its `pipeline_run` contexts (oldest
first), finding the latest run or a named one, and ML Metadata `Value`s as Python.

A run is the `pipeline_run` context TFX creates per `LocalDagRunner` run; its name is a timestamp
(`2026-01-02T03:04:05.678901`), shown by `visionline runs` and accepted (or a unique prefix of it, or its
folder-safe form from `sanitize_run_id`) wherever a run can be named.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

from google.protobuf import json_format
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2

RUN_CONTEXT = "pipeline_run"


def open_store(metadata_path: str, writable: bool = False) -> metadata_store.MetadataStore:
    """The SQLite ML Metadata store at `metadata_path`, opened read-only (or read-write: `visionline prune`)
    (FileNotFoundError when missing, LookupError when it cannot be read)."""
    if not os.path.exists(metadata_path):
        raise FileNotFoundError(f"no ML Metadata store at {metadata_path}: has the pipeline run yet?")
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = metadata_path
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE if writable else \
        metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    try:
        return metadata_store.MetadataStore(config)
    except RuntimeError as err:  # e.g. a file no pipeline run has initialised: read-only cannot create its tables
        raise LookupError(f"cannot read ML Metadata store {metadata_path} (read-only): {err}") from err


def pipeline_runs(store: metadata_store.MetadataStore) -> list[metadata_store_pb2.Context]:
    """Every `pipeline_run` context, oldest first."""
    return sorted(store.get_contexts_by_type(RUN_CONTEXT), key=lambda c: (c.create_time_since_epoch, c.id))


def find_run(store: metadata_store.MetadataStore, run_id: str | None, metadata_path: str) -> metadata_store_pb2.Context:
    """The latest run (`run_id` None), or the run named `run_id`: its name, its `sanitize_run_id` form or a unique
    prefix of its name. LookupError when the store records no run, or no single run matches."""
    runs = pipeline_runs(store)
    if not runs:
        raise LookupError(f"ML Metadata store {metadata_path} records no pipeline run")
    if run_id is None:
        return runs[-1]
    exact = [r for r in runs if r.name == run_id or sanitize_run_id(r.name) == run_id]
    matches = exact or [r for r in runs if r.name.startswith(run_id)]
    if len(matches) == 1:
        return matches[0]
    known = ", ".join(r.name for r in runs[-5:])
    what = "several runs match" if matches else "no run named"
    raise LookupError(f"{what} {run_id!r}; latest runs: {known}")


def sanitize_run_id(run_id: str) -> str:
    """A folder name for a run id (pipeline_run contexts are named by timestamps with ':')."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", run_id).strip("._") or "run"


def mlmd_value(value: metadata_store_pb2.Value) -> Any:
    """An ML Metadata `Value` as Python (JSON strings parsed, structs as dicts)."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    raw = getattr(value, kind)
    if kind == "string_value":
        text = raw.strip()
        if text[:1] in ("{", "[") or text == "null":
            try:
                return json.loads(text)
            except ValueError:
                return raw
        return raw
    if kind == "struct_value":
        return json_format.MessageToDict(raw)
    return raw
