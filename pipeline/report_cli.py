"""The `visionline report` and `visionline runs` sub-commands (wired into pipeline/cli.py via `register` and
`dispatch`).

    visionline report [RUN] [--work-dir DIR] [--out DIR]   # HTML + Markdown report of the latest (or given) run
    visionline runs [--work-dir DIR] [--json]               # every run: time, accuracy, kappa, blessed, pushed
"""

from __future__ import annotations

import argparse
import sys

from pipeline.configs import ConfigError, PipelineConfig

_COMMAND = "_report_cli_command"


def metadata_path(work_dir: str | None) -> str:
    """The ML Metadata store of the pipeline whose work dir is `work_dir` (default: the config's default)."""
    config = PipelineConfig().override([f"work_dir={work_dir}"]) if work_dir else PipelineConfig()
    return config.metadata_path


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `report` and `runs` sub-commands to the `visionline` parser."""
    report = subparsers.add_parser(
        "report", help="write the HTML model report (and a Markdown summary) of a pipeline run",
        description="Self-contained HTML report + summary.md of the latest (or given) run, read from ML Metadata; "
                    "written to <pipeline_root>/reports/<run id>/ unless --out is given.",
    )
    report.add_argument("run", nargs="?", metavar="RUN",
                        help="run id (or a unique prefix) as listed by `visionline runs`; default: the latest run")
    report.add_argument("--work-dir", help="the pipeline's work dir (default: the config default, .visionline)")
    report.add_argument("--out", metavar="DIR", help="folder to write report.html and summary.md into")
    report.set_defaults(**{_COMMAND: "report"})

    runs = subparsers.add_parser("runs", help="list every pipeline run recorded in ML Metadata, newest first")
    runs.add_argument("--work-dir", help="the pipeline's work dir (default: the config default, .visionline)")
    runs.add_argument("--json", action="store_true", help="print the runs as JSON")
    runs.set_defaults(**{_COMMAND: "runs"})


def dispatch(args: argparse.Namespace) -> int | None:
    """Run `report` / `runs` and return the exit code; None for any other command."""
    command = getattr(args, _COMMAND, None)
    if command not in ("report", "runs"):
        return None
    from pipeline import report

    try:
        store = metadata_path(args.work_dir)
        if command == "runs":
            rows = report.list_runs(store)
            print(report.runs_json(rows) if args.json else report.format_runs(rows))
            return 0
        paths = report.build_report(store, out_dir=args.out, run_id=args.run)
        print(f"report of run {paths.run_id}:")
        print(f"  {paths.html}")
        print(f"  {paths.markdown}")
        return 0
    except (ConfigError, FileNotFoundError, LookupError, ValueError) as err:
        print(f"visionline: error: {err}", file=sys.stderr)
        return 2
