"""`visionline run` (the whole pipeline locally, then its summary and report) and `visionline config` (the
effective configuration).

    visionline run --demo | --data PATH [--config F] [--set KEY=VALUE …] [--json] [-v] [--repeat N]
    visionline config [--config F] [--set …]

`run` exits 0 when the run finished, its model was blessed (and pushed) and its report was written; 3 when the run
finished but the report failed; 4 when the data validation gate stopped it (the problems on stderr, with what to
do); 5 when the run finished but its model failed an Evaluator gate (not blessed, nothing pushed: the summary names
each failed gate). `--repeat N` runs it N times with seeds train.seed, +1, … (see pipeline/runs/repeats.py), then
prints each run's accuracy and kappa with their mean ± std, and exits with the worst (highest) run's code.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, TextIO

from pipeline.cli import errors
from pipeline.cli.options import add_config_args, resolve_config
from pipeline.configs import PipelineConfig, ReportConfig, dumps

if TYPE_CHECKING:  # ML Metadata and TFMA stay out of `visionline --help`
    from pipeline.runs.summary import RunSummary


EXIT_CODES = f"""exit codes:
  {errors.OK}  the model was blessed and pushed (or, blessed before, is already served), the report written
  {errors.USAGE_ERROR}  usage or configuration error (bad config, missing data root, …)
  {errors.REPORT_FAILED}  the run finished but its report could not be written
  {errors.DATA_STOPPED}  the data validation gate stopped the run before training
  {errors.NOT_BLESSED}  the model failed an Evaluator gate: not blessed, nothing pushed
  with --repeat: the highest code of the runs"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `run` and `config`."""
    run = subparsers.add_parser(
        "run", help="run the whole pipeline locally (LocalDagRunner + Beam)",
        description="Run the whole pipeline locally, print its summary (ingestion counts and warnings, data gate, "
                    "metrics, failed gates, pushed model) and write its report.",
        epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(run)
    run.add_argument("--json", action="store_true", help="print the run summary as JSON")
    run.add_argument("-v", "--verbose", action="store_true", help="full TFX/Beam logs")
    run.add_argument("--repeat", type=int, default=1, metavar="N",
                     help="run N times with seeds train.seed, +1, … (the Trainer re-runs, ingestion and Transform "
                          "are cached), then print each run's accuracy and kappa with their mean ± std")
    run.set_defaults(handler=run_pipeline)

    show = subparsers.add_parser("config", help="print the effective configuration")
    add_config_args(show)
    show.set_defaults(handler=show_config)


def show_config(args: argparse.Namespace) -> int:
    """Print the effective configuration."""
    print(dumps(resolve_config(args)))
    return errors.OK


def run_pipeline(args: argparse.Namespace) -> int:
    """Run the DAG locally (`--repeat` times), print its summary (or why the data gate stopped it), write its
    report."""
    config = resolve_config(args)
    if args.repeat < 1:
        raise ValueError(f"--repeat must be at least 1, got {args.repeat}")
    # TFX, Beam and TensorFlow load here, not at import: `visionline --help` and `config` stay fast.
    from pipeline.local_runner import configure_logging

    config.validate()
    configure_logging(args.verbose)
    print(recipe_line(config), file=sys.stderr if args.json else sys.stdout, flush=True)
    if args.repeat == 1:
        return run_once(config, args.json)[0]
    return run_repeated(config, args.repeat, args.json)


def recipe_line(config: PipelineConfig) -> str:
    """One line saying what the run will train: the preset, the backbone at its size, the phases."""
    train = config.train
    weights = config.resolved_weights()
    line = (f"preset {config.preset}: {train.model} at {config.resolved_image_size()} px"
            f"{' (ImageNet weights)' if weights == 'imagenet' else ''}")
    if weights != "none":
        line += f"; head for up to {train.epochs} epochs on cached features"
        if train.fine_tune_epochs and train.fine_tune != "none":
            line += f", then fine-tune {train.fine_tune} of the backbone for {train.fine_tune_epochs} epochs"
    else:
        line += f"; trained from scratch for up to {train.epochs} epochs"
    return line + " (`visionline config` shows every value)"


def run_once(config: PipelineConfig, as_json: bool, quiet: bool = False) -> tuple[int, RunSummary | None]:
    """One run: its exit code and summary (None when the data gate stopped it); `quiet` prints no summary."""
    from components.validation_gate.checks import DataValidationError
    from pipeline.local_runner import run_local
    from pipeline.runs.text import format_stopped, format_summary

    try:
        summary = run_local(config)
    except DataValidationError as err:  # expected: the data gate stopped the run; say why, no traceback
        if as_json and err.summary is not None and not quiet:
            print(err.summary.to_json())
        print(format_stopped(None if as_json else err.summary, err.problems, err.notes), file=sys.stderr)
        return errors.DATA_STOPPED, None
    if not quiet:
        print(summary.to_json() if as_json else format_summary(summary))
    code = write_run_report(config.metadata_path, quiet=as_json, report=config.report)
    if config.keep_runs:
        prune_after_run(config, sys.stderr if as_json else sys.stdout)
    return run_exit_code(summary, code), summary


def prune_after_run(config: PipelineConfig, out: TextIO) -> None:
    """`keep_runs` > 0: prune all but the newest `keep_runs` runs (pipeline/runs/retention.py) and say what was
    freed in one line; a failure is reported and does not change the run's exit code (the run itself is done)."""
    from pipeline.cli.prune import megabytes, prune

    try:
        plan, problems = prune(config, config.keep_runs, purpose="prune after run")
    except Exception as err:  # noqa: BLE001 - the run succeeded; a failed clean-up is said, not raised
        print(f"visionline: the run finished but pruning older runs failed: {err!r}", file=sys.stderr)
        return
    print(f"pruned (keep_runs={config.keep_runs}): {len(plan.prune)} artifacts of {len(plan.pruned_runs)} older "
          f"runs, {megabytes(plan.freed_bytes)} freed", file=out)
    for problem in problems:
        print(f"visionline: could not remove {problem} (marked DELETED; the next prune retries)", file=sys.stderr)


def run_exit_code(summary: RunSummary, report_code: int) -> int:
    """A finished run's exit code: `NOT_BLESSED` when the Evaluator did not bless its model (a gate failed, nothing
    was pushed), else the report's (`OK` or `REPORT_FAILED`)."""
    return errors.NOT_BLESSED if summary.blessed is False else report_code


def run_repeated(config: PipelineConfig, times: int, as_json: bool) -> int:
    """`times` runs with seeds train.seed, +1, …; then each run's accuracy and kappa with their mean ± std (with
    `as_json`, one JSON document with every run and the spread, instead of each run's summary)."""
    from pipeline.runs import repeats

    def announce(index: int, total: int, seed: int) -> None:
        print(f"=== run {index} of {total}: train.seed={seed} ===", file=sys.stderr if as_json else sys.stdout,
              flush=True)

    runs = repeats.repeat_runs(config, times, lambda c: run_once(c, as_json, quiet=as_json), errors.DATA_STOPPED,
                               announce)
    print(repeats.repeats_json(runs, times) if as_json else "\n" + repeats.format_repeats(runs, times))
    return repeats.worst_exit_code(runs)


def write_run_report(metadata_path: str, quiet: bool, report: ReportConfig | None = None) -> int:
    """The model report for the run that just finished (`report`: the config's report section); exit code 3 if the
    run succeeded but the report failed."""
    from pipeline.report.build import build_report  # TensorFlow, TFMA and matplotlib load here, not at import

    try:
        paths = build_report(metadata_path, settings=report)
    except Exception as err:  # noqa: BLE001  (the run itself succeeded: say what failed, don't hide it)
        print(f"visionline: the run finished but its report could not be written: {err!r}", file=sys.stderr)
        return errors.REPORT_FAILED
    if not quiet:
        print(f"report: {paths.html}\nsummary: {paths.markdown}")
        if paths.label_issues_line():
            print(paths.label_issues_line())
    return errors.OK
