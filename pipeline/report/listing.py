"""The run listing behind `visionline runs`: every pipeline run in ML Metadata, newest first, with its state,
accuracy, kappa, blessing and pushed version, as an aligned table or JSON.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from components.evaluator import catalogue
from components.evaluator import metric_keys as mn
from pipeline.component_ids import EVALUATOR, PUSHER
from pipeline.report.render import fmt
from pipeline.runs import evaluation
from pipeline.runs.record import RunRecord, bool_prop, local_time, str_prop
from pipeline.runs.store import open_store, pipeline_runs

_UNFINISHED = ("FAILED", "RUNNING", "NEW", "CANCELED")  # the first of these any component is in is the run's state


@dataclass
class RunRow:
    """One pipeline run for `visionline runs`."""

    run_id: str
    time: str
    state: str
    accuracy: float | None
    kappa: float | None
    blessed: bool | None
    pushed_version: str | None


def list_runs(metadata_path: str) -> list[RunRow]:
    """Every pipeline run in ML Metadata, newest first, with accuracy, kappa, blessing and pushed version."""
    store = open_store(metadata_path)
    return [run_row(RunRecord.read(store, run)) for run in reversed(pipeline_runs(store))]


def run_row(record: RunRecord) -> RunRow:
    """The listing's row of one run."""
    states = {n.state for n in record.nodes.values()}
    state = next((s for s in _UNFINISHED if s in states), None)
    if state is None:
        producing = {n.state for n in record.nodes.values() if "resolver" not in n.node_id}
        state = "CACHED" if producing == {"CACHED"} else "COMPLETE"
    artifact = record.artifact(EVALUATOR, "evaluation", "ModelEvaluation")
    metrics = _overall_metrics(artifact.uri) if artifact is not None else {}
    pushed = record.artifact(PUSHER, "pushed_model", "PushedModel")
    blessing = record.artifact(EVALUATOR, "blessing", "ModelBlessing")
    return RunRow(
        run_id=record.run_id,
        time=local_time(record.run.create_time_since_epoch),
        state=state,
        accuracy=metrics.get(mn.ACCURACY, metrics.get(mn.SUBSET_ACCURACY)),
        kappa=next((v for k, v in sorted(metrics.items()) if catalogue.is_kappa(k)), None),
        blessed=bool_prop(blessing, "blessed"),
        pushed_version=str_prop(pushed, "pushed_version") or None if bool_prop(pushed, "pushed") else None,
    )


def _overall_metrics(uri: str) -> dict[str, float]:
    try:
        return evaluation.read_metrics(uri).values
    except Exception:  # noqa: BLE001 - a run whose evaluation cannot be read still gets listed
        return {}


def format_runs(rows: Sequence[RunRow]) -> str:
    """A plain aligned table of runs (newest first as given)."""
    header = ("RUN", "TIME", "STATE", "ACCURACY", "KAPPA", "BLESSED", "PUSHED")
    table = [header] + [(
        r.run_id, r.time, r.state, fmt(r.accuracy), fmt(r.kappa),
        "—" if r.blessed is None else ("yes" if r.blessed else "NO"), r.pushed_version or "—",
    ) for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    numeric = {3, 4}
    lines = ["  ".join(cell.rjust(widths[i]) if i in numeric else cell.ljust(widths[i])
                       for i, cell in enumerate(row)).rstrip() for row in table]
    if not rows:
        lines.append("(no runs recorded)")
    return "\n".join(lines)


def runs_json(rows: Sequence[RunRow]) -> str:
    """Rows as JSON (NaN as null)."""
    def clean(value: Any) -> Any:
        return None if isinstance(value, float) and math.isnan(value) else value

    return json.dumps([{k: clean(v) for k, v in dataclasses.asdict(r).items()} for r in rows], indent=2)
