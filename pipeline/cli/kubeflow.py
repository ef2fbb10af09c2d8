"""`visionline compile | schedule | submit`: the Kubeflow Pipelines sub-commands (docs/kubeflow.md).

    visionline compile --target kubeflow [--image IMG] [--out FILE] [--splits TRAIN,EVAL | TRAIN,VAL,TEST]
                       [run's config flags]
    visionline schedule --host URL --cron "0 3 * * *" [--experiment NAME] [--pipeline-json FILE] [--param K=V …]
                        [--dry-run]
    visionline submit --host URL [--pipeline-json FILE] [--param K=V …] [--dry-run]
    visionline kfp-local [--out FILE | --pipeline-json FILE] [--param K=V …] [--stream] [run's config flags]

`compile` takes the same config flags as `run` (`options.add_config_args`, resolved by `options.resolve_config`,
Beam runner flags included). `--param` takes a runtime parameter (`data_root=gs://…`, `train_config='{…}'`) or a
config key (`train.epochs=5`, `tuner.enabled=true`, `eval.min_kappa=0.8`, `data.root=gs://…`): see
`pipeline.kubeflow_runner.apply_overrides`. Errors of the KFP API (its client library, connection errors) exit 1.
`kfp-local` compiles like `compile --target kubeflow` (or takes a compiled `--pipeline-json`) and executes the spec
here with kfp.local (`pipeline.kfp_local`); a failed task exits 5 (the ValidationGate: 4, as `run`).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from pipeline import kfp_client, kfp_local, kubeflow_runner
from pipeline.cli import errors
from pipeline.cli.options import add_config_args, resolve_config
from pipeline.component_ids import VALIDATION_GATE
from pipeline.configs import ConfigError

DEFAULT_PIPELINE_FILE = "visionline_pipeline.json"
KFP_API = "Kubeflow Pipelines API"
KFP_MODULES = ("kfp_server_api", "urllib3", "kfp")  # whose errors are the API's (kfp_server_api.ApiException, …)
LOG_TAIL = 40  # lines of a failed task's output shown


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `compile`, `schedule` and `submit`."""
    comp = subparsers.add_parser(
        "compile",
        help="compile the pipeline for Kubeflow Pipelines (TFX KubeflowV2DagRunner) into a pipeline spec",
        description="Compile the same DAG `run` executes into a KFP pipeline spec with runtime parameters "
                    "(data_root, transform_config, train_config, eval_config). See docs/kubeflow.md.")
    comp.add_argument("--target", choices=kubeflow_runner.TARGETS, default="kubeflow",
                      help="kubeflow: open-source KFP 2.x (default); vertex: Vertex AI Pipelines")
    comp.add_argument("--image", default=os.environ.get("VISIONLINE_IMAGE", kubeflow_runner.DEFAULT_IMAGE),
                      help="pipeline image built from the Dockerfile ($VISIONLINE_IMAGE)")
    comp.add_argument("--out", default=DEFAULT_PIPELINE_FILE, help="output file (.json, or .yaml)")
    comp.add_argument("--splits", metavar="TRAIN,EVAL",
                      help="train/eval (or train,val,test) sub-folder names of a data root that is not read at "
                           "compile time")
    add_config_args(comp)
    comp.set_defaults(handler=compile_pipeline)

    sched = subparsers.add_parser("schedule", help="upload the compiled pipeline and run it on a cron schedule")
    _client_args(sched)
    sched.add_argument("--cron", required=True,
                       help='standard 5-field cron, e.g. "0 3 * * *" (converted to KFP\'s seconds-first form)')
    sched.add_argument("--name", help="recurring run name (default <pipeline>-scheduled)")
    sched.set_defaults(handler=schedule)

    sub = subparsers.add_parser("submit", help="start one run of the compiled pipeline now")
    _client_args(sub)
    sub.add_argument("--name", help="run name (default '<pipeline> <timestamp>')")
    sub.set_defaults(handler=submit)

    here = subparsers.add_parser(
        "kfp-local", help="compile for Kubeflow, then execute the compiled spec here with kfp.local",
        description="Compile like `compile --target kubeflow` (or take --pipeline-json), then execute every task of "
                    "the spec on this machine with KFP's local orchestrator, this checkout standing in for the "
                    "image; print the pushed model and its metrics. See docs/kubeflow.md.")
    here.add_argument("--image", default=os.environ.get("VISIONLINE_IMAGE", kubeflow_runner.DEFAULT_IMAGE),
                      help="the image the spec names ($VISIONLINE_IMAGE); the checkout stands in for it")
    here.add_argument("--out", default=DEFAULT_PIPELINE_FILE, help="where to write the compiled spec")
    here.add_argument("--pipeline-json", help="execute this compiled spec instead of compiling (config flags unused)")
    here.add_argument("--splits", metavar="TRAIN,EVAL", help="as for `compile`")
    here.add_argument("--param", action="append", default=[], metavar="K=V",
                      help="runtime parameter or config key for this run, e.g. train.epochs=5 (repeatable)")
    here.add_argument("--pipeline-root", help="where task outputs go (default: the spec's, <work_dir>/pipelines/…)")
    here.add_argument("--stream", action="store_true", help="print every task's output (default: its task.log)")
    add_config_args(here)
    here.set_defaults(handler=run_local)


def _client_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default=os.environ.get("KF_PIPELINES_ENDPOINT"),
                   help="KFP API endpoint, e.g. http://localhost:8080 ($KF_PIPELINES_ENDPOINT)")
    p.add_argument("--pipeline-json", default=DEFAULT_PIPELINE_FILE, help="compiled pipeline (visionline compile)")
    p.add_argument("--experiment", default="visionline", help="KFP experiment (created when missing)")
    p.add_argument("--namespace", help="Kubernetes namespace (multi-user KFP)")
    p.add_argument("--pipeline-root", help="override the compiled default pipeline root (gs://…)")
    p.add_argument("--param", action="append", default=[], metavar="K=V",
                   help="runtime parameter or config key for this run, e.g. train.epochs=5 (repeatable)")
    p.add_argument("--dry-run", action="store_true", help="print the exact requests; no network")


def compile_pipeline(args: argparse.Namespace) -> int:
    """Compile the DAG into a KFP pipeline spec; print what it holds."""
    with errors.remote_api(KFP_API, KFP_MODULES):
        config = resolve_config(args)
        splits = [s.strip() for s in args.splits.split(",")] if args.splits else None
        compiled = kubeflow_runner.compile_for_cluster(config, args.out, args.image, args.target, splits)
    for warning in compiled.warnings:
        print(f"visionline: warning: {warning}", file=sys.stderr)
    tasks = sorted(compiled.spec["root"]["dag"]["tasks"])
    print(f"compiled {compiled.spec['pipelineInfo']['name']} for {args.target} → {compiled.path}")
    print(f"  image       {args.image}")
    print(f"  tasks       {', '.join(tasks)}")
    print(f"  parameters  {', '.join(compiled.defaults)}")
    print(f"  root        {compiled.spec.get('defaultPipelineRoot')}")
    print("  baseline    the model served now under the push destination (ServedModelBaseline)")
    print("  drift       vs the statistics the ValidationGate last accepted (AcceptedStatisticsBaseline)")
    for task, values in sorted(config.kubeflow.resources.items()):
        print(f"  resources   {task}: {', '.join(f'{key}={value}' for key, value in values.items() if value)}")
    if args.target == "kubeflow":
        print("  note        ExampleGen not cached")
    return errors.OK


def schedule(args: argparse.Namespace) -> int:
    """Upload the compiled pipeline and create its recurring run (or print the requests with --dry-run)."""
    with errors.remote_api(KFP_API, KFP_MODULES):
        kfp_client.schedule(_host(args), args.pipeline_json, args.cron, **_client_options(args))
    return errors.OK


def submit(args: argparse.Namespace) -> int:
    """Start one run of the compiled pipeline (or print the requests with --dry-run)."""
    with errors.remote_api(KFP_API, KFP_MODULES):
        kfp_client.submit(_host(args), args.pipeline_json, **_client_options(args))
    return errors.OK


def run_local(args: argparse.Namespace) -> int:
    """Compile (unless --pipeline-json), execute every task with kfp.local, print the pushed model and metrics."""
    spec_path = args.pipeline_json
    if not spec_path:
        config = resolve_config(args)
        splits = [s.strip() for s in args.splits.split(",")] if args.splits else None
        compiled = kubeflow_runner.compile_for_cluster(config, args.out, args.image, "kubeflow", splits)
        spec_path = compiled.path
        print(f"compiled {compiled.spec['pipelineInfo']['name']} for kubeflow → {spec_path}", flush=True)
    defaults = kubeflow_runner.parameter_defaults(kubeflow_runner.load_spec(spec_path))
    arguments = kubeflow_runner.apply_overrides(defaults, args.param)
    run = kfp_local.run_compiled(spec_path, arguments, args.pipeline_root, stream=args.stream)
    print(f"\nkfp.local: {run.run_dir or run.pipeline_root}")
    for task in run.tasks:
        print(f"  {task.name:<20} {task.seconds:6.1f} s  {'ok' if task.returncode == 0 else 'FAILED'}")
    failed = run.failed
    if failed is not None:
        with open(failed.log_path, encoding="utf-8", errors="replace") as log:
            tail = log.readlines()[-LOG_TAIL:]
        print("".join(tail), end="", file=sys.stderr)
        print(f"visionline: error: task {failed.name} failed (exit {failed.returncode}); its output: "
              f"{failed.log_path}", file=sys.stderr)
        return errors.DATA_STOPPED if failed.name == VALIDATION_GATE else errors.TASK_FAILED
    print(f"ran {len(run.tasks)} of {run.expected_tasks} tasks in {sum(t.seconds for t in run.tasks):.0f} s")
    pushed = run.pushed()
    if pushed:
        print(f"pushed model   {pushed[0]}  (version {pushed[1]})")
    else:
        print(f"pushed model   none: the Evaluator {'blessed' if run.blessed() else 'did not bless'} the model")
    metrics = run.metrics()
    print("metrics        " + "  ".join(f"{name} {value:.4f}" for name, value in sorted(metrics.items())))
    baseline = run.baseline()
    print(f"baseline       {f'served version {baseline}' if baseline else 'none served yet: absolute bounds only'}")
    print(f"data gate      {_gate_line(run.data_gate())}")
    return errors.OK if pushed else errors.NOT_BLESSED  # as `run`: cron and CI tell "not blessed" from "pushed"


def _gate_line(verdict: dict[str, Any]) -> str:
    """The ValidationGate's outcome in one line: the label drift and its baseline, or why it was not checked."""
    state = "accepted" if verdict.get("accepted") else "problems recorded (validation.stop_on_anomalies off)"
    drift = verdict.get("drift")
    if drift:
        return f"{state}, label drift L∞ {drift['distance']:.3f} (bound {drift['bound']:g}) vs {drift['baseline_uri']}"
    return "; ".join([state, *[note for note in verdict.get("notes", []) if "drift" in note]])


def _host(args: argparse.Namespace) -> str:
    if not args.host and not args.dry_run:
        raise ConfigError("--host is needed (or $KF_PIPELINES_ENDPOINT), e.g. http://localhost:8080")
    return args.host or "<host>"


def _client_options(args: argparse.Namespace) -> dict[str, Any]:
    return dict(experiment=args.experiment, name=args.name, dry_run=args.dry_run, params=args.param,
                namespace=args.namespace, pipeline_root=args.pipeline_root)
