"""The pipeline configuration on the command line: the config flags shared by `run`, `config`, `schema`,
`last-run` and `compile`, their resolution into a `PipelineConfig` (config file → named flags → `--set`
overrides), and the ML Metadata store of a work dir for the commands that take only `--work-dir`.
"""

from __future__ import annotations

import argparse
import json
import os

from pipeline import demo_data, presets
from pipeline.configs import PipelineConfig


def add_config_args(p: argparse.ArgumentParser) -> None:
    """The config flags shared by `run`, `config`, `last-run` and `compile`."""
    p.add_argument("--config", help="YAML/JSON config file (see README)")
    p.add_argument("--data", help="data root: class folders, train/test trees, a CSV manifest or TFRecords")
    p.add_argument("--demo", action="store_true", help="use the embedded digits demo data (and the demo preset)")
    p.add_argument("--preset", choices=presets.names(),
                   help="a named set of config values under yours: default (transfer learning for photos), fast, "
                        "accurate, demo (see `visionline config`)")
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


def resolve_config(args: argparse.Namespace) -> PipelineConfig:
    """Preset → config file → named flags → `--set` overrides (later wins). `--demo` selects the demo preset unless
    a preset is named."""
    config = PipelineConfig.load(args.config) if args.config else PipelineConfig()
    overrides: list[str] = [f"preset={args.preset}"] if args.preset else []
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
    named = "preset" in config.user_values() or args.preset or any(
        assignment.split("=", 1)[0].strip() == "preset" for assignment in args.set)
    if not named:
        demo.insert(0, f"preset={presets.DEMO}")
    if not config.data.schema_path and os.path.exists(demo_data.DEMO_SCHEMA):
        demo.append(f"data.schema_path={demo_data.DEMO_SCHEMA}")
    return config.override(demo + overrides + list(args.set))


def add_work_dir_arg(p: argparse.ArgumentParser) -> None:
    """`--work-dir` alone, for the commands that read a pipeline's run records (`report`, `runs`)."""
    p.add_argument("--work-dir", help="the pipeline's work dir (default: the config default, .visionline)")


def metadata_path(work_dir: str | None) -> str:
    """The ML Metadata store of the pipeline whose work dir is `work_dir` (default: the config's default)."""
    config = PipelineConfig().override([f"work_dir={work_dir}"]) if work_dir else PipelineConfig()
    return config.metadata_path
