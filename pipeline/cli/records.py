"""The commands that read run records from ML Metadata: `visionline last-run`, `report` and `runs`.

    visionline last-run [--work-dir DIR | run's config flags] [--json]   # summary of the latest run
    visionline report [RUN] [--work-dir DIR | run's config flags] [--out DIR]   # HTML + Markdown report of the
                                                            # latest (or given) run, as the config's report.* say
    visionline runs [--work-dir DIR] [--json]               # every run compared: backbone, preset, image size,
                                                            # parameters, model MB, training time, CPU latency,
                                                            # accuracy, kappa, blessed, pushed
"""

from __future__ import annotations

import argparse

from pipeline.cli import errors
from pipeline.cli.options import add_config_args, add_work_dir_arg, metadata_path, resolve_config


def register_last_run(subparsers: argparse._SubParsersAction) -> None:
    """Add `last-run`."""
    last = subparsers.add_parser("last-run", help="summary of the latest run (from ML Metadata)")
    add_config_args(last)
    last.add_argument("--json", action="store_true")
    last.set_defaults(handler=show_last_run)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `report` and `runs`."""
    report = subparsers.add_parser(
        "report", help="write the HTML model report (and a Markdown summary) of a pipeline run",
        description="Self-contained HTML report + summary.md of the latest (or given) run, read from ML Metadata; "
                    "written to <pipeline_root>/reports/<run id>/ unless --out is given. The config's report.* "
                    "fields (e.g. --set report.label_issues=false) say how it looks for likely mislabelled images.",
    )
    report.add_argument("run", nargs="?", metavar="RUN",
                        help="run id (or a unique prefix) as listed by `visionline runs`; default: the latest run")
    add_config_args(report)
    report.add_argument("--out", metavar="DIR", help="folder to write report.html and summary.md into")
    report.set_defaults(handler=write_report)

    runs = subparsers.add_parser(
        "runs", help="compare every pipeline run recorded in ML Metadata, newest first",
        description="One row per run, newest first: state, backbone, preset, image size, parameters, exported "
                    "model size (MB), training time, per-image CPU latency of the exported model (ms), accuracy, "
                    "kappa, blessed, pushed version. Runs recorded before the Trainer kept a fact show '—'.",
    )
    add_work_dir_arg(runs)
    runs.add_argument("--json", action="store_true", help="print the runs as JSON")
    runs.set_defaults(handler=list_runs)


def show_last_run(args: argparse.Namespace) -> int:
    """Print the summary of the latest run (as JSON with --json)."""
    config = resolve_config(args)
    # ML Metadata and TFMA load here, not at import: `visionline --help` stays fast.
    from pipeline.runs.summary import latest_run
    from pipeline.runs.text import format_summary

    summary = latest_run(config.metadata_path)
    print(summary.to_json() if args.json else format_summary(summary))
    return errors.OK


def write_report(args: argparse.Namespace) -> int:
    """Write the report of the latest (or given) run and print where."""
    from pipeline.report.build import build_report  # TensorFlow, TFMA and matplotlib load here, not at import

    config = resolve_config(args)
    paths = build_report(config.metadata_path, out_dir=args.out, run_id=args.run, settings=config.report)
    print(f"report of run {paths.run_id}:")
    print(f"  {paths.html}")
    print(f"  {paths.markdown}")
    if paths.label_issues_line():
        print(f"  {paths.label_issues_line()}")
    return errors.OK


def list_runs(args: argparse.Namespace) -> int:
    """Print every run as a comparison table, newest first (as JSON with --json)."""
    from pipeline.report import listing  # ML Metadata and TFMA load here, not at import

    rows = listing.list_runs(metadata_path(args.work_dir))
    print(listing.runs_json(rows) if args.json else listing.format_runs(rows))
    return errors.OK
