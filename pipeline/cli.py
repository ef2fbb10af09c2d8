"""The `visionline` command line (also `python -m pipeline`).

    visionline run --demo                      # embedded digits demo, end to end, prints metrics + pushed model
    visionline run --data PATH [--config F] [--set train.epochs=5 …]
    visionline demo-data [DEST]                # write the demo PNG class folders
    visionline weights                         # convert + cache EfficientNet-Lite0 ImageNet weights
    visionline config [--config F] [--set …]   # print the effective configuration
    visionline schema --data PATH --out schema/NAME/schema.pbtxt   # regenerate a curated TFDV schema
    visionline last-run                        # summary of the latest run from ML Metadata
    visionline runs | report [RUN]             # list runs; (re)build a run's HTML + Markdown report
    visionline serve | predict IMG… | predict-batch DIR   # TF Serving-compatible local server and clients
    visionline compile --target kubeflow | schedule | submit  # Kubeflow Pipelines (docs/kubeflow.md)
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import components.environment  # noqa: F401  (Keras 2 before TensorFlow loads)
from pipeline import demo_data, kfp_cli, report_cli
from pipeline.configs import ConfigError, PipelineConfig, dumps
from serving import cli as serving_cli


def add_config_args(p: argparse.ArgumentParser) -> None:
    """The config flags shared by `run`, `config`, `last-run` and `compile`."""
    p.add_argument("--config", help="YAML/JSON config file (see README)")
    p.add_argument("--data", help="data root: class folders, train/test trees, a CSV manifest or TFRecords")
    p.add_argument("--demo", action="store_true", help="use the embedded digits demo data")
    p.add_argument("--work-dir", help="where pipeline artifacts, ML Metadata and the serving root go")
    p.add_argument("--serving-root", help="push destination root (model goes to <root>/<model_name>/<version>)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--min-accuracy", type=float, help="Evaluator lower bound on accuracy")
    p.add_argument("--min-kappa", type=float, help="Evaluator lower bound on Cohen's kappa")
    p.add_argument("--in-memory", action="store_true", help="Beam DirectRunner in_memory (fast for tiny data)")
    p.add_argument("--no-cache", action="store_true", help="re-run every component")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config field, e.g. --set train.batch_size=64 (repeatable)")
    p.add_argument("--beam-runner", help="Beam runner for every Beam-powered component: DirectRunner (default), "
                                         "DataflowRunner, FlinkRunner, SparkRunner")
    p.add_argument("--beam-arg", action="append", default=[], metavar="ARG",
                   help="extra Beam pipeline option, passed through verbatim, e.g. --beam-arg=--region=europe-west1 "
                        "(repeatable)")


def build_parser() -> argparse.ArgumentParser:
    """Argument parser for every sub-command."""
    parser = argparse.ArgumentParser(
        prog="visionline", description="Labelled images → tuned, gated, served classifier."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the whole pipeline locally (LocalDagRunner + Beam)")
    add_config_args(run)
    run.add_argument("--json", action="store_true", help="print the run summary as JSON")
    run.add_argument("-v", "--verbose", action="store_true", help="full TFX/Beam logs")

    show = sub.add_parser("config", help="print the effective configuration")
    add_config_args(show)

    schema = sub.add_parser("schema", help="regenerate a curated TFDV schema from the data (see schema/README.md)")
    add_config_args(schema)
    schema.add_argument("--out", required=True, help="schema.pbtxt to write, e.g. schema/NAME/schema.pbtxt")

    demo = sub.add_parser("demo-data", help="write the embedded demo images as PNG class folders")
    demo.add_argument("dest", nargs="?", help=f"default {demo_data.DEFAULT_DEMO_DIR} "
                      f"(--multilabel: {demo_data.DEFAULT_MULTILABEL_DIR})")
    demo.add_argument("--per-class", type=int, help="keep only N images per digit")
    demo.add_argument("--multilabel", action="store_true",
                      help="digit attributes (even|prime|loop) in a CSV manifest; prints the manifest to use as "
                           "data.root with train.task=multilabel")

    sub.add_parser("weights", help="convert and cache EfficientNet-Lite0's ImageNet weights (offline); print the path")

    last = sub.add_parser("last-run", help="summary of the latest run (from ML Metadata)")
    add_config_args(last)
    last.add_argument("--json", action="store_true")
    report_cli.register(sub)
    serving_cli.register(sub, default_model_base=PipelineConfig().push_base)
    kfp_cli.register(sub)
    return parser


def resolve_config(args: argparse.Namespace) -> PipelineConfig:
    """Config file → named flags → `--set` overrides (later wins)."""
    config = PipelineConfig.load(args.config) if args.config else PipelineConfig()
    overrides: list[str] = []
    for flag, key in (("data", "data.root"), ("work_dir", "work_dir"), ("serving_root", "serving_root"),
                      ("epochs", "train.epochs"), ("min_accuracy", "eval.min_accuracy"),
                      ("min_kappa", "eval.min_kappa")):
        value = getattr(args, flag)
        if value is not None:
            overrides.append(f"{key}={value}")
    if args.in_memory:
        overrides.append("beam.direct_running_mode=in_memory")
    if args.no_cache:
        overrides.append("enable_cache=false")
    if args.beam_runner:
        overrides.append(f"beam.runner={args.beam_runner}")
    if args.beam_arg:
        overrides.append(f"beam.extra_args={json.dumps(config.beam.extra_args + args.beam_arg)}")
    if not args.demo:
        return config.override(overrides + list(args.set))
    # --demo: the demo images live under the run's own work dir (flags and --set may still replace data.root)
    work_dir = config.override(overrides + list(args.set)).work_dir
    demo = [f"data.root={demo_data.materialize_digits(demo_data.demo_dir(work_dir))}"]
    if not config.data.schema_path and os.path.exists(demo_data.DEMO_SCHEMA):
        demo.append(f"data.schema_path={demo_data.DEMO_SCHEMA}")
    return config.override(demo + overrides + list(args.set))


def _write_report(metadata_path: str, quiet: bool) -> int:
    """The model report for the run that just finished; exit code 3 if the run succeeded but the report failed."""
    from pipeline import report

    try:
        paths = report.build_report(metadata_path)
    except Exception as err:  # noqa: BLE001  (the run itself succeeded: say what failed, don't hide it)
        print(f"visionline: the run finished but its report could not be written: {err!r}", file=sys.stderr)
        return 3
    if not quiet:
        print(f"report: {paths.html}\nsummary: {paths.markdown}")
    return 0


def _regenerate_schema(config: PipelineConfig, out: str) -> int:
    from pipeline import schema_tool
    from pipeline.local_runner import configure_logging

    config.validate()
    configure_logging(verbose=False)
    result = schema_tool.regenerate(config, out)
    examples = ", ".join(f"{split} {count}" for split, count in sorted(result.examples.items()))
    print(f"wrote {result.path}: {len(result.features)} features, label domain of {len(result.labels)} classes "
          f"({', '.join(result.labels[:12])}{', …' if len(result.labels) > 12 else ''}) from {examples} examples")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = build_parser().parse_args(argv)
    for commands in (report_cli, serving_cli, kfp_cli):  # their commands take their own flags, not the run config
        delegated = commands.dispatch(args)
        if delegated is not None:
            return delegated
    try:
        if args.command == "demo-data":
            if args.multilabel:
                print(demo_data.materialize_digit_attributes(args.dest or demo_data.DEFAULT_MULTILABEL_DIR,
                                                             per_class=args.per_class))
            else:
                print(demo_data.materialize_digits(args.dest or demo_data.DEFAULT_DEMO_DIR, per_class=args.per_class))
            return 0
        if args.command == "weights":
            from components.trainer.backbones.efficientnet_lite import LITE0
            from components.trainer.backbones.efficientnet_lite_weights import cached_imagenet_weights

            print(cached_imagenet_weights(LITE0))
            return 0
        config = resolve_config(args)
        if args.command == "config":
            print(dumps(config))
            return 0
        from pipeline import results

        if args.command == "schema":
            return _regenerate_schema(config, args.out)
        if args.command == "last-run":
            summary = results.latest_run(config.metadata_path)
        else:
            from components.validation_gate.checks import DataValidationError
            from pipeline.local_runner import configure_logging, run_local

            config.validate()
            configure_logging(args.verbose)
            try:
                summary = run_local(config)
            except DataValidationError as err:  # expected: the data gate stopped the run; say why, no traceback
                if args.json and err.summary is not None:
                    print(err.summary.to_json())
                print(results.format_stopped(None if args.json else err.summary, err.problems, err.notes),
                      file=sys.stderr)
                return 4
            print(summary.to_json() if args.json else results.format_summary(summary))
            return _write_report(config.metadata_path, quiet=args.json)
        print(summary.to_json() if args.json else results.format_summary(summary))
        return 0
    except (ConfigError, FileNotFoundError, LookupError, ValueError) as err:
        print(f"visionline: error: {err}", file=sys.stderr)
        return 2
