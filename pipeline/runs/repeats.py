"""Repeated runs (`visionline run --repeat N`): the same pipeline run N times with seeds `train.seed`, +1, …, each
a normal run (ingestion and Transform cached, the Trainer and what follows re-run), and the spread of their
accuracy and kappa — mean ± sample standard deviation — as a table or JSON.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from pipeline.configs import PipelineConfig
from pipeline.runs import evaluation
from pipeline.runs.summary import RunSummary

RunOnce = Callable[[PipelineConfig], "tuple[int, RunSummary | None]"]  # a config → (exit code, its summary)


@dataclass
class RepeatedRun:
    """One of the repeated runs: its seed, exit code and headline figures (None when it did not get that far)."""

    seed: int
    exit_code: int
    run_id: str | None = None
    accuracy: float | None = None
    kappa: float | None = None
    blessed: bool | None = None
    pushed_model: str | None = None

    @classmethod
    def of(cls, seed: int, exit_code: int, summary: RunSummary | None) -> RepeatedRun:
        """The row of a run that ended with `exit_code` and (unless the data gate stopped it) `summary`."""
        if summary is None:
            return cls(seed, exit_code)
        return cls(seed, exit_code, summary.run_id, evaluation.headline_accuracy(summary.metrics),
                   evaluation.headline_kappa(summary.metrics), summary.blessed, summary.pushed_model)


@dataclass
class Spread:
    """Mean and sample standard deviation (n - 1; None for a single value) of one figure over the runs."""

    mean: float
    std: float | None
    n: int

    def text(self, digits: int = 4) -> str:
        """'0.9123 ± 0.0101' ('0.9123' alone for one value)."""
        if self.std is None:
            return f"{self.mean:.{digits}f}"
        return f"{self.mean:.{digits}f} ± {self.std:.{digits}f}"


def spread(values: Sequence[float | None]) -> Spread | None:
    """Spread of the values that exist (None and NaN left out); None when there are none."""
    present = [float(v) for v in values if v is not None and not math.isnan(v)]
    if not present:
        return None
    return Spread(statistics.fmean(present), statistics.stdev(present) if len(present) > 1 else None, len(present))


def seeds(first: int, times: int) -> list[int]:
    """The seeds of `times` runs: first, first + 1, …"""
    return [first + i for i in range(times)]


def repeat_runs(config: PipelineConfig, times: int, run_once: RunOnce, stopped_code: int,
                announce: Callable[[int, int, int], None] | None = None) -> list[RepeatedRun]:
    """Run `config` `times` times with seeds train.seed, +1, …; `announce(i, times, seed)` before each.

    A run that ends with `stopped_code` (the data gate stopped it) ends the repetition: the seed changes the
    training only, so the next run would stop at the same gate."""
    done: list[RepeatedRun] = []
    for index, seed in enumerate(seeds(config.train.seed, times), start=1):
        if announce is not None:
            announce(index, times, seed)
        code, summary = run_once(config.override([f"train.seed={seed}"]))
        done.append(RepeatedRun.of(seed, code, summary))
        if code == stopped_code:
            break
    return done


def worst_exit_code(runs: Sequence[RepeatedRun]) -> int:
    """The exit code of the worst run (the highest: 5 not blessed > 4 data gate stopped > 3 report failed > 0; a
    data-gate stop ends the repetition)."""
    return max((r.exit_code for r in runs), default=0)


def format_repeats(runs: Sequence[RepeatedRun], times: int | None = None) -> str:
    """Each run's seed, accuracy, kappa and verdict, then their mean ± std."""
    def number(value: float | None) -> str:
        return "—" if value is None else ("nan" if math.isnan(value) else f"{value:.4f}")

    def verdict(run: RepeatedRun) -> str:
        if run.run_id is None:
            return f"stopped (exit {run.exit_code})"
        if run.blessed is None:
            return "not evaluated"
        return ("blessed" if run.blessed else "NOT blessed") + (f", exit {run.exit_code}" if run.exit_code else "")

    header = ("SEED", "RUN", "ACCURACY", "KAPPA", "VERDICT")
    table = [header] + [(str(r.seed), r.run_id or "—", number(r.accuracy), number(r.kappa), verdict(r))
                        for r in runs]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = ["  ".join(cell.rjust(widths[i]) if i in (2, 3) else cell.ljust(widths[i])
                       for i, cell in enumerate(row)).rstrip() for row in table]
    for name, figure in (("accuracy", spread([r.accuracy for r in runs])), ("kappa", spread([r.kappa for r in runs]))):
        lines.append(f"{name}: " + ("—" if figure is None else
                                     f"{figure.text()} (mean ± sample std over {figure.n} run"
                                     f"{'s' if figure.n != 1 else ''})"))
    if times is not None and len(runs) < times:
        lines.append(f"stopped after {len(runs)} of {times} runs: the data validation gate stopped the run "
                     "(the seed changes training only)")
    return "\n".join(lines)


def repeats_dict(runs: Sequence[RepeatedRun], times: int | None = None) -> dict[str, Any]:
    """The runs and the spread of accuracy and kappa as plain data (NaN as None)."""
    def clean(value: Any) -> Any:
        return None if isinstance(value, float) and math.isnan(value) else value

    figures = {name: spread([getattr(r, name) for r in runs]) for name in ("accuracy", "kappa")}
    return {
        "runs": [{k: clean(v) for k, v in asdict(r).items()} for r in runs],
        **{name: (asdict(figure) if figure else None) for name, figure in figures.items()},
        "requested": times if times is not None else len(runs),
        "exit_code": worst_exit_code(runs),
    }


def repeats_json(runs: Sequence[RepeatedRun], times: int | None = None) -> str:
    """`repeats_dict` as JSON."""
    return json.dumps(repeats_dict(runs, times), indent=2)
