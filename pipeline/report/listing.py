"""The run listing behind `visionline runs`: every pipeline run in ML Metadata, newest first, as a comparison table
(or JSON) with its state, the model's backbone, preset, image size, parameters, exported size and CPU latency, the
training time (from the Trainer's history.json, `pipeline.runs.model_facts`), accuracy, kappa, blessing and pushed
version. Facts a run did not record (older runs), or whose artifacts `visionline prune` removed (state PRUNED),
show as "—" (null in JSON).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.component_ids import EVALUATOR, PUSHER
from pipeline.report.render import fmt
from pipeline.runs import evaluation
from pipeline.runs.model_facts import model_facts
from pipeline.runs.record import RunRecord, bool_prop, local_time, str_prop
from pipeline.runs.store import open_store, pipeline_runs

_UNFINISHED = ("FAILED", "RUNNING", "NEW", "CANCELED")  # the first of these any component is in is the run's state
MISSING = "—"


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
    backbone: str | None = None
    preset: str | None = None
    image_size: int | None = None
    parameters: int | None = None
    saved_model_mb: float | None = None  # the exported SavedModel on disk
    train_seconds: float | None = None  # the Trainer's whole run
    fit_seconds: float | None = None  # inside model.fit
    device: str | None = None
    cpu_latency_ms: float | None = None  # per image, the exported model on CPU


def list_runs(metadata_path: str) -> list[RunRow]:
    """Every pipeline run in ML Metadata, newest first, with its model's facts, metrics, blessing and push."""
    store = open_store(metadata_path)
    return [run_row(RunRecord.read(store, run)) for run in reversed(pipeline_runs(store))]


def run_row(record: RunRecord) -> RunRow:
    """The listing's row of one run."""
    states = {n.state for n in record.nodes.values()}
    state = next((s for s in _UNFINISHED if s in states), None)
    if state is None:
        producing = {n.state for n in record.nodes.values() if "resolver" not in n.node_id}
        state = "CACHED" if producing == {"CACHED"} else "COMPLETE"
        if record.pruned:  # `visionline prune` removed some of its artifacts: facts and metrics may be gone
            state = "PRUNED"
    artifact = record.artifact(EVALUATOR, "evaluation", "ModelEvaluation")
    metrics = _overall_metrics(artifact.uri) if artifact is not None else {}
    pushed = record.artifact(PUSHER, "pushed_model", "PushedModel")
    blessing = record.artifact(EVALUATOR, "blessing", "ModelBlessing")
    try:
        facts = model_facts(record).as_dict()
    except (OSError, ValueError):  # an unreadable history.json: the run is still listed, without its facts
        facts = {}
    return RunRow(
        run_id=record.run_id,
        time=local_time(record.run.create_time_since_epoch),
        state=state,
        accuracy=evaluation.headline_accuracy(metrics),
        kappa=evaluation.headline_kappa(metrics),
        blessed=bool_prop(blessing, "blessed"),
        pushed_version=str_prop(pushed, "pushed_version") or None if bool_prop(pushed, "pushed") else None,
        **facts,
    )


def _overall_metrics(uri: str) -> dict[str, float]:
    try:
        return evaluation.read_metrics(uri).values
    except Exception:  # noqa: BLE001 - a run whose evaluation cannot be read still gets listed
        return {}


def parameters_text(count: int | None) -> str:
    """A parameter count for people: 845, 12.3k, 4.01M."""
    if count is None:
        return MISSING
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if count >= scale:
            return f"{count / scale:.3g}{suffix}"
    return str(count)


def duration_text(seconds: float | None) -> str:
    """A duration for people: 42.1s, 3m07s, 1h02m."""
    if seconds is None or math.isnan(seconds):
        return MISSING
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def _number(value: float | None, digits: int) -> str:
    return MISSING if value is None else fmt(float(value), digits)


# IMAGE: input side in pixels; MODEL_MB: the exported SavedModel on disk; TRAIN: the Trainer's wall-clock time;
# CPU_MS: per-image latency of the exported model on CPU.
HEADER = ("RUN", "STATE", "BACKBONE", "PRESET", "IMAGE", "PARAMS", "MODEL_MB", "TRAIN", "CPU_MS", "ACCURACY",
          "KAPPA", "BLESSED", "PUSHED")
_NUMERIC = {4, 5, 6, 7, 8, 9, 10}  # right-aligned columns


def format_runs(rows: Sequence[RunRow]) -> str:
    """A plain aligned comparison table of runs (newest first as given)."""
    table = [HEADER] + [(
        r.run_id, r.state, r.backbone or MISSING, r.preset or MISSING,
        MISSING if r.image_size is None else str(r.image_size), parameters_text(r.parameters),
        _number(r.saved_model_mb, 1), duration_text(r.train_seconds), _number(r.cpu_latency_ms, 2),
        fmt(r.accuracy), fmt(r.kappa),
        MISSING if r.blessed is None else ("yes" if r.blessed else "NO"), r.pushed_version or MISSING,
    ) for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(HEADER))]
    lines = ["  ".join(cell.rjust(widths[i]) if i in _NUMERIC else cell.ljust(widths[i])
                       for i, cell in enumerate(row)).rstrip() for row in table]
    if not rows:
        lines.append("(no runs recorded)")
    return "\n".join(lines)


def runs_json(rows: Sequence[RunRow]) -> str:
    """Rows as JSON (NaN as null)."""
    def clean(value: Any) -> Any:
        return None if isinstance(value, float) and math.isnan(value) else value

    return json.dumps([{k: clean(v) for k, v in dataclasses.asdict(r).items()} for r in rows], indent=2)
