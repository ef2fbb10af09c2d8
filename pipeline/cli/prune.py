"""`visionline prune`: free the disk of a local pipeline by pruning the artifacts of all but its newest runs.

    visionline prune [--keep-runs N] [--dry-run] [--json] [--work-dir DIR | run's config flags]

What is kept and why: pipeline/runs/retention.py. Prints the runs kept, what the next run still needs beyond them,
and the artifacts pruned by producing component with the space freed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
from typing import TYPE_CHECKING

from pipeline import run_lock
from pipeline.cli import errors
from pipeline.cli.options import add_config_args, resolve_config

if TYPE_CHECKING:
    from pipeline.configs import PipelineConfig
    from pipeline.runs.retention import RetentionPlan

DEFAULT_KEEP_RUNS = 3


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `prune`."""
    prune = subparsers.add_parser(
        "prune", help="remove the artifacts of all but the newest runs (frees the pipeline root's disk)",
        description="Prunes every artifact under the pipeline root that none of the newest --keep-runs runs read "
                    "or wrote, except the newest blessed model and the statistics the gate last accepted (the "
                    "next run's baselines): marked DELETED in ML Metadata (TFX's cache and resolvers then skip "
                    "them), then their folders removed. Pushed model versions and reports stay. Run it between "
                    "pipeline runs: it refuses while a run of the same pipeline is in progress.")
    add_config_args(prune)
    prune.add_argument("--keep-runs", type=int, metavar="N",
                       help="how many of the newest runs keep everything they used (default: the config's "
                            f"keep_runs when set, else {DEFAULT_KEEP_RUNS})")
    prune.add_argument("--dry-run", action="store_true", help="say what would be pruned; change nothing")
    prune.add_argument("--json", action="store_true", help="print the plan (and any problems) as JSON")
    prune.set_defaults(handler=prune_runs)


def prune(config: PipelineConfig, keep_runs: int, dry_run: bool = False,
          purpose: str = "prune") -> tuple[RetentionPlan, list[str]]:
    """Plan the prune of all but the `keep_runs` newest runs and (unless `dry_run`) apply it under the pipeline's
    lock; the plan and the folders that could not be removed."""
    from pipeline.runs import retention  # ML Metadata loads here, not at import
    from pipeline.runs.store import open_store

    store = open_store(config.metadata_path, writable=True)  # first: a wrong --work-dir gets no lock file
    with contextlib.nullcontext() if dry_run else run_lock.exclusive(config.metadata_path, purpose):
        plan = retention.plan(store, config.pipeline_root, keep_runs)
        return plan, [] if dry_run else retention.apply(store, plan)


def prune_runs(args: argparse.Namespace) -> int:
    """Plan the prune, apply it unless --dry-run, and print what it kept and freed."""
    config = resolve_config(args)
    keep_runs = args.keep_runs if args.keep_runs is not None else config.keep_runs or DEFAULT_KEEP_RUNS
    plan, problems = prune(config, keep_runs, args.dry_run)
    if args.json:
        print(json.dumps({
            "dry_run": args.dry_run, "pipeline_root": plan.pipeline_root, "kept_runs": plan.kept_runs,
            "pruned_runs": plan.pruned_runs, "kept_for_next_run": plan.kept_for_next_run,
            "freed_bytes": plan.freed_bytes, "outside_pipeline_root": plan.outside_root,
            "artifacts": [{"id": a.artifact_id, "type": a.type_name, "producer": a.producer, "uri": a.uri,
                           "bytes": a.size_bytes} for a in plan.prune],
            "problems": problems}, indent=2))
    else:
        print(format_plan(plan, args.dry_run, problems))
    return errors.API_ERROR if problems else errors.OK


def format_plan(plan: RetentionPlan, dry_run: bool, problems: list[str]) -> str:
    """The human-readable account of a prune."""
    lines = [f"runs kept: {len(plan.kept_runs)} (newest {plan.kept_runs[-1] if plan.kept_runs else '—'}); "
             f"runs pruned: {len(plan.pruned_runs)}"]
    lines += [f"  also kept for the next run: {reason}" for reason in plan.kept_for_next_run]
    verb = "would prune" if dry_run else "pruned"
    if not plan.prune:
        lines.append(f"nothing to prune under {plan.pipeline_root}")
    else:
        lines.append(f"{verb} {len(plan.prune)} artifacts under {plan.pipeline_root}, "
                     f"{megabytes(plan.freed_bytes)} {'would be ' if dry_run else ''}freed:")
        lines += [f"  {producer:<28} {count:>4} artifacts  {megabytes(size):>10}"
                  for producer, count, size in plan.by_producer()]
    if plan.outside_root:
        lines.append(f"left alone: {plan.outside_root} artifacts outside the pipeline root")
    lines += [f"could not remove {problem} (marked DELETED; `visionline prune` retries)" for problem in problems]
    return "\n".join(lines)


def megabytes(size: int) -> str:
    """Bytes as "12.3 MB"."""
    return f"{size / 2**20:,.1f} MB"
