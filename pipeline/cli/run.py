"""`visionline run` (the whole pipeline locally, then its summary and report) and `visionline config` (the
effective configuration).

    visionline run --demo | --data PATH [--config F] [--set KEY=VALUE …] [--json] [-v]
    visionline config [--config F] [--set …]

`run` exits 0 when the run finished and its report was written, 3 when the run finished but the report failed,
4 when the data validation gate stopped it (the problems on stderr, with what to do).
"""

from __future__ import annotations

import argparse
import sys

from pipeline.cli import errors
from pipeline.cli.options import add_config_args, resolve_config
from pipeline.configs import dumps


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `run` and `config`."""
    run = subparsers.add_parser("run", help="run the whole pipeline locally (LocalDagRunner + Beam)")
    add_config_args(run)
    run.add_argument("--json", action="store_true", help="print the run summary as JSON")
    run.add_argument("-v", "--verbose", action="store_true", help="full TFX/Beam logs")
    run.set_defaults(handler=run_pipeline)

    show = subparsers.add_parser("config", help="print the effective configuration")
    add_config_args(show)
    show.set_defaults(handler=show_config)


def show_config(args: argparse.Namespace) -> int:
    """Print the effective configuration."""
    print(dumps(resolve_config(args)))
    return errors.OK


def run_pipeline(args: argparse.Namespace) -> int:
    """Run the DAG locally, print its summary (or why the data gate stopped it), write its report."""
    config = resolve_config(args)
    # TFX, Beam and TensorFlow load here, not at import: `visionline --help` and `config` stay fast.
    from components.validation_gate.checks import DataValidationError
    from pipeline.local_runner import configure_logging, run_local
    from pipeline.runs.text import format_stopped, format_summary

    config.validate()
    configure_logging(args.verbose)
    try:
        summary = run_local(config)
    except DataValidationError as err:  # expected: the data gate stopped the run; say why, no traceback
        if args.json and err.summary is not None:
            print(err.summary.to_json())
        print(format_stopped(None if args.json else err.summary, err.problems, err.notes), file=sys.stderr)
        return errors.DATA_STOPPED
    print(summary.to_json() if args.json else format_summary(summary))
    return write_run_report(config.metadata_path, quiet=args.json)


def write_run_report(metadata_path: str, quiet: bool) -> int:
    """The model report for the run that just finished; exit code 3 if the run succeeded but the report failed."""
    from pipeline.report.build import build_report  # TensorFlow, TFMA and matplotlib load here, not at import

    try:
        paths = build_report(metadata_path)
    except Exception as err:  # noqa: BLE001  (the run itself succeeded: say what failed, don't hide it)
        print(f"visionline: the run finished but its report could not be written: {err!r}", file=sys.stderr)
        return errors.REPORT_FAILED
    if not quiet:
        print(f"report: {paths.html}\nsummary: {paths.markdown}")
    return errors.OK
