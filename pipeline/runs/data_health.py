"""What a run recorded about its data: ingestion facts (ImageExampleGen's `ingest_summary.json`), ExampleValidator's
anomalies per split, and the validation gate's verdict (its `verdict.json`, or the verdict a stopped gate's failed
execution keeps), with the verdict's lines for people; and the run's data warnings (`run_warnings`: ingestion's and
the Trainer's), the one list `visionline run`, `last-run` and `run --json` show.
"""

from __future__ import annotations

import glob
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ml_metadata.proto import metadata_store_pb2
from tensorflow_metadata.proto.v0 import anomalies_pb2

# Where TFX's launcher keeps a failed execution's ExecutionResult (JSON) — the validation gate's stopped verdict.
EXECUTION_RESULT = "__execution_result__"
INGEST_SUMMARY = "ingest_summary.json"
VERDICT_FILE = "verdict.json"
DATASET = "(dataset)"  # the feature name of a dataset-level anomaly
# How the Trainer's history.json says a phase kept its last epoch because the validation set was too small to choose
# by (components/trainer/fitting.py, `fit_phase`'s "kept_because").
LAST_EPOCH_KEPT = "the last epoch: "


@dataclass
class Anomaly:
    """One ExampleValidator finding."""

    feature: str
    severity: str
    short_description: str
    description: str


def ingest_facts(examples: Any, with_counts: bool = False) -> dict[str, Any]:
    """The Examples artifact's URI and its `ingest_summary.json`; `with_counts` first adds the files_seen /
    ingested / quarantined custom properties (the summary file, when present, has the final word)."""
    facts: dict[str, Any] = {"examples_uri": examples.uri}
    if with_counts:
        facts.update({k: examples.custom_properties[k].int_value
                      for k in ("files_seen", "ingested", "quarantined") if k in examples.custom_properties})
    path = os.path.join(examples.uri, INGEST_SUMMARY)
    if os.path.exists(path):
        facts.update(json.loads(Path(path).read_text(encoding="utf-8")))
    return facts


def run_warnings(ingest: dict[str, Any], history: dict[str, Any]) -> list[str]:
    """Every warning a run recorded about its data, in one list: ingestion's (`ingest_summary.json` "warnings" —
    whatever the listing and the accounting add: empty class folders, unused folders, a class with one image or none
    in a split, a class absent from eval, train/eval leakage, label conflicts) and the Trainer's (`history.json`: a
    validation set too small to choose an epoch by, so the last epoch was kept)."""
    found = [str(warning) for warning in ingest.get("warnings") or []]
    for phase in history.get("phases") or []:
        reason = str(phase.get("kept_because") or "")
        if reason.startswith(LAST_EPOCH_KEPT):
            found.append(f"training: {reason.removeprefix(LAST_EPOCH_KEPT)}")
    return list(dict.fromkeys(found))  # both Trainer phases may say the same


def read_anomalies(uri: str) -> dict[str, list[Anomaly]]:
    """ExampleValidator's findings per split in an ExampleAnomalies artifact folder (a dataset-level finding is
    listed last, under the feature name `DATASET`)."""
    found: dict[str, list[Anomaly]] = {}
    for path in sorted(glob.glob(os.path.join(uri, "Split-*", "SchemaDiff.pb"))):
        split = os.path.basename(os.path.dirname(path)).removeprefix("Split-")
        anomalies = anomalies_pb2.Anomalies.FromString(Path(path).read_bytes())
        infos = sorted(anomalies.anomaly_info.items())
        if anomalies.HasField("dataset_anomaly_info"):
            infos.append((DATASET, anomalies.dataset_anomaly_info))
        found[split] = [Anomaly(name, anomalies_pb2.AnomalyInfo.Severity.Name(info.severity), info.short_description,
                                info.description) for name, info in infos]
    return found


def anomaly_lines(anomalies: dict[str, list[Anomaly]]) -> dict[str, list[str]]:
    """Per split, "feature: description" for every feature-level finding (the run summary's form)."""
    return {split: [f"{a.feature}: {a.description or a.short_description}" for a in found if a.feature != DATASET]
            for split, found in anomalies.items()}


def read_verdict(uri: str) -> dict[str, Any]:
    """The ValidationGate's `verdict.json` in a DataVerdict artifact folder (written by
    components.validation_gate; read here without importing TFDV), or {} when there is none."""
    path = os.path.join(uri, VERDICT_FILE)
    if not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def stopped_verdict(execution: metadata_store_pb2.Execution) -> dict[str, Any]:
    """The verdict a validation gate execution failed with (kept by TFX's launcher in `__execution_result__`,
    see components.validation_gate.component), or {} for any other execution."""
    if EXECUTION_RESULT not in execution.custom_properties:
        return {}
    try:
        result = json.loads(execution.custom_properties[EXECUTION_RESULT].string_value)
        verdict = json.loads(result.get("resultMessage", ""))
    except (json.JSONDecodeError, AttributeError):
        return {}
    return verdict if isinstance(verdict, dict) and verdict.get("stopped") else {}


def data_gate_lines(verdict: dict[str, Any]) -> list[str]:
    """What the validation gate decided, for a run it let through: drift figure, notes, recorded problems."""
    if not verdict:
        return []
    drift = verdict.get("drift")
    if verdict.get("accepted"):
        text = "data gate: passed"
        if drift:
            change = drift["largest_change"]
            text += (f" (label drift L∞={drift['distance']:.3f} ≤ {drift['bound']:g} vs the previous accepted run"
                     + ("" if change == "none" else f"; largest change {change}") + ")")
        lines = [text]
    elif verdict.get("stopped"):
        lines = [f"data gate: STOPPED the run before training, {len(verdict.get('problems', []))} problem(s)"]
    else:
        lines = [f"data gate: {len(verdict.get('problems', []))} problem(s) recorded, run continued "
                 "(validation.stop_on_anomalies=false)"]
    if not verdict.get("accepted"):
        lines += [f"  data problem ({p['split']}): {p['message']}" for p in verdict.get("problems", [])]
    lines += [f"  note: {note}" for note in verdict.get("notes", [])]
    return lines
