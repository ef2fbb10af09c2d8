"""`visionline evaluate`: a pushed model evaluated on a labelled folder that was not part of its pipeline run,
with the Evaluator's metrics and gates (pipeline/evaluate/), printed and written as an HTML + Markdown report.

    visionline evaluate MODEL DATA [--config F] [--set KEY=VALUE …] [--work-dir DIR] [--out DIR] [--json] [-v]

MODEL: a push base (its newest complete version) or a version folder. DATA: class folders, a train/test tree (its
test split) or a CSV manifest. The task, the gates and how a manifest is read come from the config (`train.task`,
`eval.*`, `data.path_column` / `label_column` / `manifest_kind` / `image_dir`). The report
goes to `--out`, default `<work_dir>/evaluations/<timestamp>/`. Exit 0 when evaluated (failed gates are shown,
not an error), 2 for a usage error (no model or data, classes the model does not know, bad config).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import math
import os
from typing import Any

from pipeline.cli import errors
from pipeline.configs import PipelineConfig, absolute

EVALUATIONS_DIR = "evaluations"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `evaluate`."""
    evaluate = subparsers.add_parser(
        "evaluate", help="evaluate a pushed model on a labelled folder (metrics, gates, HTML + Markdown report)",
        description="Evaluate a pushed model on labelled images that were not part of its pipeline run, with the "
                    "metrics and gates of the pipeline's Evaluator (TFMA); files ingestion would refuse are "
                    "quarantined and listed.",
    )
    evaluate.add_argument("model", metavar="MODEL", help="push base (newest complete version) or a version folder")
    evaluate.add_argument("data", metavar="DATA",
                          help="labelled images: class folders, a train/test tree (its test split) or a CSV manifest")
    evaluate.add_argument("--config", help="YAML/JSON config file: train.task, eval.* (metrics and gates) and a "
                                           "CSV manifest's data.path_column / label_column")
    evaluate.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                          help="override a config field, e.g. --set eval.min_accuracy=0.9 (repeatable)")
    evaluate.add_argument("--work-dir", help="the default report folder is <work_dir>/evaluations/<timestamp>/")
    evaluate.add_argument("--out", metavar="DIR", help="folder to write report.html, summary.md and TFMA's output")
    evaluate.add_argument("--json", action="store_true", help="print the results as JSON")
    evaluate.add_argument("-v", "--verbose", action="store_true", help="full TFMA/Beam logs")
    evaluate.set_defaults(handler=evaluate_model)


def evaluation_config(args: argparse.Namespace) -> PipelineConfig:
    """Config file → `--work-dir` → `--set` overrides; `data.root` is DATA (what is evaluated)."""
    config = PipelineConfig.load(args.config) if args.config else PipelineConfig()
    overrides = [f"data.root={args.data}"] + ([f"work_dir={args.work_dir}"] if args.work_dir else [])
    return config.override(overrides + list(args.set))


def default_out_dir(config: PipelineConfig, now: dt.datetime | None = None) -> str:
    """`<work_dir>/evaluations/<timestamp>/`."""
    stamp = (now or dt.datetime.now()).strftime("%Y%m%dT%H%M%S")
    return os.path.join(absolute(config.work_dir), EVALUATIONS_DIR, stamp)


def evaluate_model(args: argparse.Namespace) -> int:
    """Evaluate, print the results and where the report went."""
    config = evaluation_config(args)
    config.validate()
    out_dir = args.out or default_out_dir(config)
    # TensorFlow, TFMA, Beam and matplotlib load here, not at import: `visionline --help` stays fast.
    from pipeline.evaluate.analysis import evaluate
    from pipeline.evaluate.render import format_text, write_report
    from pipeline.local_runner import configure_logging

    configure_logging(args.verbose)
    result = evaluate(args.model, config.data.root, config, out_dir)
    paths = write_report(result, out_dir)
    if args.json:
        print(json.dumps(result_dict(result, paths), indent=2))
    else:
        print(format_text(result))
        print(f"\nreport: {paths.html}\nsummary: {paths.markdown}")
    return errors.OK


def result_dict(result: Any, paths: Any) -> dict[str, Any]:
    """The evaluation as plain data (`--json`): metrics with their gates, per-class rows, confusion matrix,
    quarantined files and the report's paths (NaN as null)."""
    from pipeline.evaluate.render import name_ordered, per_class  # matplotlib and Jinja2 stay out of --help

    def clean(value: Any) -> Any:
        return None if isinstance(value, float) and math.isnan(value) else value

    data, examples = result.data, result.examples
    classes = per_class(data)
    matrix = name_ordered(data)
    return {
        "model": result.model_dir,
        "data": examples.data_root,
        "layout": examples.layout,
        "task": data.task,
        "files_seen": examples.files_seen,
        "evaluated": examples.ingested,
        "quarantined": examples.quarantined,
        "metrics": {name: clean(value) for name, value in
                    [(m.name, m.value) for m in data.metrics] + list(data.other_metrics.items())},
        "gates": [{"metric": g.metric, "threshold": g.threshold, "value": clean(g.value), "status": g.status}
                  for m in data.metrics for g in m.gates],
        "per_class": [dataclasses.asdict(r) for r in classes.rows + [classes.macro, classes.weighted]]
        if classes else [dataclasses.asdict(r) for r in data.per_label],
        "confusion": dataclasses.asdict(matrix) if matrix else None,
        "report": {"html": paths.html, "markdown": paths.markdown, "tfma": result.output},
    }
