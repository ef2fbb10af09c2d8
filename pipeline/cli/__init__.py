"""The `visionline` command line (also `python -m pipeline`): the parser of every sub-command and `main`.

    visionline run --demo                      # embedded digits demo, end to end, prints metrics + pushed model
    visionline run --data PATH [--config F] [--set train.epochs=5 …]
    visionline demo-data [DEST]                # write the demo PNG class folders
    visionline weights                         # convert + cache EfficientNet-Lite0 ImageNet weights
    visionline config [--config F] [--set …]   # print the effective configuration
    visionline schema --data PATH --out schema/NAME/schema.pbtxt   # regenerate a curated TFDV schema
    visionline last-run                        # summary of the latest run from ML Metadata
    visionline runs | report [RUN]             # compare runs; (re)build a run's HTML + Markdown report
    visionline prune [--keep-runs N]           # remove the artifacts of older runs (keeps what the next run needs)
    visionline evaluate MODEL DATA             # a pushed model on a labelled folder: metrics, gates, report
    visionline serve | predict IMG… | predict-batch DIR   # TF Serving-compatible local server and clients
    visionline compile --target kubeflow | schedule | submit  # Kubeflow Pipelines (docs/kubeflow.md)
    visionline kfp-local --demo                # compile for Kubeflow, execute the spec here with kfp.local

Each command family registers its sub-commands with a handler (`set_defaults(handler=…)`, see `run`, `schema`,
`assets`, `records`, `prune`, `evaluate`, `kubeflow`); `errors.run_handler` maps their errors to exit codes. The serving
commands keep their own dispatch and exit codes (`serving.cli`).
"""

from __future__ import annotations

import argparse

import components.environment  # noqa: F401  (Keras 2 before TensorFlow loads)
from pipeline.cli import assets, errors, evaluate, kubeflow, prune, records, run, schema
from pipeline.configs import PipelineConfig
from serving import cli as serving_cli


def build_parser() -> argparse.ArgumentParser:
    """Argument parser for every sub-command."""
    parser = argparse.ArgumentParser(
        prog="visionline", description="Labelled images → tuned, gated, served classifier."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run.register(sub)
    schema.register(sub)
    assets.register(sub)
    records.register_last_run(sub)
    records.register(sub)
    prune.register(sub)
    evaluate.register(sub)
    serving_cli.register(sub, default_model_base=PipelineConfig().push_base)
    kubeflow.register(sub)
    return parser


def dispatch(args: argparse.Namespace) -> int:
    """Run the parsed command and return its exit code."""
    handler = getattr(args, "handler", None)
    if handler is None:  # serve, predict, predict-batch: serving.cli's own dispatch and error handling
        return serving_cli.dispatch(args)
    return errors.run_handler(handler, args)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    return dispatch(build_parser().parse_args(argv))
