"""The `serve`, `predict` and `predict-batch` sub-commands, for any argparse-based CLI.

    parser = argparse.ArgumentParser(prog="visionline")
    sub = parser.add_subparsers(dest="command", required=True)
    serving.cli.register(sub, default_model_base=".visionline/serving/visionline")  # serve / predict / predict-batch
    code = serving.cli.dispatch(parser.parse_args())   # exit code for these commands, None for others

    visionline serve [--model-base PATH] [--model-name NAME] [--rest-port 8501] [--grpc-port 8500] [--batching …]
    visionline predict IMG… [--url http://127.0.0.1:8501 | --grpc host:port | --tflite FILE] [--model NAME] [--top-k 5]
                            [--explain DIR]   # also the Grad-CAM heatmap over each image: DIR/<name>.why.png
    visionline predict-batch FOLDER --out predictions.csv [--quarantine FILE] [--url … | --grpc … | --model-base …]

Exit codes: 0 success; 1 some inputs could not be predicted (`predict`); 2 usage/configuration/service
errors. `predict-batch` exits 0 when every file was either predicted or quarantined with a reason.
"""

from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import json
import logging
import os
import sys
from typing import Any

from serving.clients.explanations import ExplainedFile, GrpcExplainer, RestExplainer, explain_files
from serving.clients.files import DEFAULT_MAX_PIXELS, predict_read, read_files
from serving.clients.predictors import DEFAULT_MODEL, DEFAULT_TOP_K, DEFAULT_URL, PredictorSpec
from serving.clients.results import ServiceError, format_result, result_json
from serving.clients.tflite_predictor import TFLitePredictor
from serving.errors import ServingError
from serving.server.config import (
    DEFAULT_MAX_BATCH_ROWS,
    DEFAULT_MAX_IMAGE_PIXELS,
    DEFAULT_MAX_REQUEST_BYTES,
    POLICIES,
    BatchingConfig,
    ModelConfig,
    ServerConfig,
    VersionPolicy,
    load_models_config,
    parse_batching_config,
)
from serving.server.prometheus import DEFAULT_PATH as DEFAULT_METRICS_PATH
from serving.server.prometheus import parse_monitoring_config

COMMANDS = ("serve", "predict", "predict-batch")
_KEY = "serving_command"


def register(subparsers: argparse._SubParsersAction, *, default_model_base: str | None = None) -> None:
    """Add the serving sub-commands to `subparsers`.

    `default_model_base` is the caller's default for `serve --model-base` (`visionline` passes its push
    directory); without one, `serve` needs `--model-base` or `--model-config-file`.
    """
    serve = subparsers.add_parser(
        "serve", help="serve pushed models over TF Serving's REST and gRPC APIs (local server)",
        description="Local TF Serving-compatible server over the push directory; watches it for new versions.")
    serve.set_defaults(**{_KEY: "serve", "default_model_base": default_model_base})
    serve.add_argument("--model-base", help="TF Serving model base path <serving_root>/<model_name>"
                       + (f" (default: {default_model_base})" if default_model_base else ""))
    serve.add_argument("--model-name", help="model name in URLs (default: the base path's last component)")
    serve.add_argument("--model-config-file", help="TF Serving models.config (text ModelServerConfig) instead of "
                                                   "--model-base/--model-name; with --model-base, that path replaces "
                                                   "the base_path of its single model")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: loopback only)")
    serve.add_argument("--rest-port", type=int, default=8501, help="REST port (0: any free port)")
    serve.add_argument("--grpc-port", type=int, default=8500, help="gRPC port (0: any free port)")
    serve.add_argument("--no-rest", action="store_true", help="disable the REST API")
    serve.add_argument("--no-grpc", action="store_true", help="disable the gRPC API")
    serve.add_argument("--version-policy", choices=POLICIES, default="latest",
                       help="which versions to serve (default: latest)")
    serve.add_argument("--num-versions", type=int, default=1, help="for --version-policy latest")
    serve.add_argument("--versions", type=int, nargs="+", default=[], help="for --version-policy specific")
    serve.add_argument("--poll-interval", type=float, default=2.0, help="seconds between base path scans")
    serve.add_argument("--batching", action="store_true", help="enable server-side batching")
    serve.add_argument("--batching-parameters-file", help="TF Serving batching.config (implies --batching)")
    serve.add_argument("--max-batch-size", type=int, default=32)
    serve.add_argument("--batch-timeout-micros", type=int, default=1000)
    serve.add_argument("--num-batch-threads", type=int, default=2)
    serve.add_argument("--max-request-bytes", type=int, default=DEFAULT_MAX_REQUEST_BYTES,
                       help="REST body / gRPC message limit (413 / RESOURCE_EXHAUSTED beyond)")
    serve.add_argument("--max-batch-rows", type=int, default=DEFAULT_MAX_BATCH_ROWS,
                       help="rows (images, examples) per predict/classify request (400 / INVALID_ARGUMENT beyond)")
    serve.add_argument("--max-image-pixels", type=int, default=DEFAULT_MAX_IMAGE_PIXELS,
                       help="largest image (width × height) a request may contain (400 / INVALID_ARGUMENT beyond)")
    serve.add_argument("--workers", type=int, default=8, help="REST inference threads")
    serve.add_argument("--tensorflow-intra-op-parallelism", type=int, default=0, metavar="N",
                       help="threads one TensorFlow op may use (0: one per core; TF Serving's flag of that name)")
    serve.add_argument("--tensorflow-inter-op-parallelism", type=int, default=0, metavar="N",
                       help="TensorFlow ops run concurrently (0: one per core; TF Serving's flag of that name)")
    serve.add_argument("--monitoring", action="store_true",
                       help="serve Prometheus metrics at /monitoring/prometheus/metrics on the REST port")
    serve.add_argument("--monitoring-config-file",
                       help="TF Serving monitoring config (text MonitoringConfig, e.g. serving/monitoring.config)")
    serve.add_argument("--allow-version-labels-for-unavailable-models", action="store_true",
                       help="let a new version label of --model-config-file name a version not loaded yet (TF "
                            "Serving's --allow_version_labels_for_unavailable_models)")
    serve.add_argument("--cors-origin", help="send Access-Control-Allow-Origin (e.g. '*') for pages on other origins")
    serve.add_argument("-v", "--verbose", action="store_true", help="also log why each failed request failed")
    # Deadlines, health and access log (issue 24); TF Serving's flags of these names where it has them.
    serve.add_argument("--rest-api-timeout-in-ms", type=int, default=30000, metavar="MS",
                       help="REST request timeout: 504 after MS ms, its queued model call dropped (0: none; "
                            "default 30000, as TF Serving's --rest_api_timeout_in_ms)")
    serve.add_argument("--enable-grpc-healthcheck-service", action="store_true",
                       help="serve grpc.health.v1.Health on the gRPC port: SERVING once every model has an AVAILABLE "
                            "version (TF Serving's flag of that name)")
    serve.add_argument("--no-access-log", action="store_true",
                       help="no access-log line per request (default: one structured line per REST request and "
                            "gRPC call)")
    # Warm-up and live model config (TF Serving's flags of these names).
    serve.add_argument("--enable-model-warmup", action=argparse.BooleanOptionalAction, default=True,
                       help="replay each version's assets.extra/tf_serving_warmup_requests before it becomes "
                            "AVAILABLE (default: on, as TF Serving)")
    serve.add_argument("--num-request-iterations-for-warmup", type=int, default=1, metavar="N",
                       help="times each warm-up record is replayed (default 1)")
    serve.add_argument("--model-config-file-poll-wait-seconds", type=float, default=0, metavar="S",
                       help="re-read --model-config-file every S seconds: models added/removed there are "
                            "loaded/unloaded without a restart (default 0: read once)")

    def client_args(p: argparse.ArgumentParser) -> Any:
        where = p.add_mutually_exclusive_group()
        where.add_argument("--url", default=None, help=f"REST base URL (default {DEFAULT_URL})")
        where.add_argument("--grpc", metavar="HOST:PORT", help="use gRPC at HOST:PORT instead of REST")
        p.add_argument("--model", default=DEFAULT_MODEL, help=f"model name (default {DEFAULT_MODEL})")
        p.add_argument("--version", type=int, help="model version (default: the latest served)")
        p.add_argument("--top-k", type=int, default=DEFAULT_TOP_K, help="classes to report per image")
        p.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
        p.add_argument("--max-image-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                       help="larger images are rejected (as at ingestion)")
        return where

    predict = subparsers.add_parser("predict", help="classify image files with a served model",
                                    description="Classify images through TF Serving's REST or gRPC API, or "
                                                "in-process with a visionline TFLite file (--tflite).")
    predict.set_defaults(**{_KEY: "predict"})
    predict.add_argument("images", nargs="+", metavar="IMG", help="image files (JPEG/PNG/GIF/BMP)")
    client_args(predict).add_argument(
        "--tflite", metavar="FILE", help="predict in-process with a visionline TFLite file (e.g. <version>/"
                                         "assets.extra/tflite/model_int8.tflite; class names from labels.txt beside "
                                         "it) instead of calling a server")
    predict.add_argument("--json", action="store_true", help="print JSON lines instead of text")
    predict.add_argument("--explain", metavar="DIR",
                         help="also ask the served model's `explain` signature (Grad-CAM) why, and write each image "
                              "with its heatmap over it to DIR/<name>.why.png (REST or gRPC; not with --tflite)")

    batch = subparsers.add_parser("predict-batch", help="classify a folder of images (Apache Beam) into a CSV",
                                  description="Beam job over a folder of unlabelled images: predictions CSV plus "
                                              "a quarantine CSV for unreadable/non-image files.")
    batch.set_defaults(**{_KEY: "predict-batch"})
    batch.add_argument("folder", help="folder of images (searched recursively)")
    batch.add_argument("--out", default="predictions.csv", help="predictions CSV (path,top1,probability,top_k,labels)")
    batch.add_argument("--quarantine", help="quarantine CSV (default: <out>.quarantine.csv)")
    group = client_args(batch)
    group.add_argument("--model-base", help="predict in-process from a pushed SavedModel (base path or version dir) "
                                            "instead of calling a server")
    batch.add_argument("--batch-size", type=int, default=16, help="images per prediction request")
    batch.add_argument("--beam-arg", action="append", default=[], metavar="ARG",
                       help="extra Beam pipeline argument (repeatable), e.g. --beam-arg=--direct_num_workers=2")


def dispatch(args: argparse.Namespace) -> int | None:
    """Run the serving command in `args`; returns its exit code, or None if `args` is another command."""
    command = getattr(args, _KEY, None)
    if command not in COMMANDS:
        return None
    try:
        if command == "serve":
            return _serve(args)
        if command == "predict":
            return _predict(args)
        return _predict_batch(args)
    except (ServiceError, ServingError, ValueError, OSError) as err:
        print(f"visionline {command}: error: {err}", file=sys.stderr)
        return 2


# ----- serve --------------------------------------------------------------------------------------------------
def server_config(args: argparse.Namespace) -> ServerConfig:
    """The `ServerConfig` described by `serve`'s flags."""
    overrides: tuple[tuple[str, str], ...] = ()
    if args.model_config_file:
        models = load_models_config(args.model_config_file)
        if args.model_base:
            if len(models) != 1:
                raise ValueError("--model-base with --model-config-file needs exactly one model in the file")
            models = (dataclasses.replace(models[0], base_path=os.path.abspath(args.model_base)),)
            overrides = ((models[0].name, models[0].base_path),)
    else:
        base = args.model_base or getattr(args, "default_model_base", None)
        if not base:
            raise ValueError("serve needs --model-base (or --model-config-file)")
        base = os.path.abspath(base)
        name = args.model_name or os.path.basename(base.rstrip(os.sep))
        policy = VersionPolicy(args.version_policy, num_versions=args.num_versions, versions=tuple(args.versions))
        models = (ModelConfig(name, base, policy),)
    batching = None
    if args.batching_parameters_file:
        with open(args.batching_parameters_file, encoding="utf-8") as handle:
            batching = parse_batching_config(handle.read())
    elif args.batching:
        batching = BatchingConfig(max_batch_size=args.max_batch_size, batch_timeout_micros=args.batch_timeout_micros,
                                  num_batch_threads=args.num_batch_threads)
    monitoring_path = DEFAULT_METRICS_PATH if args.monitoring else None
    if args.monitoring_config_file:
        with open(args.monitoring_config_file, encoding="utf-8") as handle:
            monitoring_path = parse_monitoring_config(handle.read())
    return ServerConfig(
        models=tuple(models), host=args.host,
        rest_port=None if args.no_rest else args.rest_port, grpc_port=None if args.no_grpc else args.grpc_port,
        poll_interval=args.poll_interval, batching=batching, max_request_bytes=args.max_request_bytes,
        max_batch_rows=args.max_batch_rows, max_image_pixels=args.max_image_pixels,
        workers=args.workers, cors_origin=args.cors_origin, monitoring_path=monitoring_path,
        intra_op_threads=args.tensorflow_intra_op_parallelism, inter_op_threads=args.tensorflow_inter_op_parallelism,
        rest_api_timeout_ms=args.rest_api_timeout_in_ms, grpc_health=args.enable_grpc_healthcheck_service,
        access_log=not args.no_access_log,
        allow_version_labels_for_unavailable_models=args.allow_version_labels_for_unavailable_models,
        enable_model_warmup=args.enable_model_warmup, warmup_iterations=args.num_request_iterations_for_warmup,
        model_config_file=os.path.abspath(args.model_config_file) if args.model_config_file else None,
        model_config_poll_seconds=args.model_config_file_poll_wait_seconds, model_base_overrides=overrides,
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _serve(args: argparse.Namespace) -> int:
    from serving.server.model_server import ServingServer  # loads TensorFlow: not at module level (--help stays light)

    config = server_config(args)
    logging.basicConfig(level=logging.INFO, format="visionline serve: %(message)s")
    if args.verbose:  # each failed request's reason (rest.py / grpc_api.py debug lines)
        logging.getLogger("serving.server").setLevel(logging.DEBUG)
    if not _is_loopback(config.host):
        logging.warning("binding %s: the models are reachable from the network, without authentication", config.host)
    server = ServingServer(config)
    server.start()
    parts = []
    if server.rest_port is not None:
        parts.append(f"REST {server.rest_url}")
    if server.grpc_port is not None:
        parts.append(f"gRPC {server.grpc_target}")
    for model in config.models:
        versions = server.manager.available_versions(model.name)
        parts.append(f"model {model.name} versions {versions or 'none yet'}")
    if server.rest_port is not None and config.monitoring_path:
        parts.append(f"metrics {server.rest_url}{config.monitoring_path}")
    server.serve_forever(ready=lambda: print("visionline serve: " + "  ".join(parts) + "  (Ctrl-C to stop)",
                                             flush=True))
    return 0


# ----- predict ------------------------------------------------------------------------------------------------
def _predictor_spec(args: argparse.Namespace) -> PredictorSpec:
    if args.top_k < 1:
        raise ValueError("--top-k must be >= 1")
    if getattr(args, "model_base", None):
        path = os.path.abspath(args.model_base)
        if args.version is not None:
            path = os.path.join(path, str(args.version))
        return PredictorSpec("saved_model", path, args.model, args.version, args.top_k)
    if args.grpc:
        return PredictorSpec("grpc", args.grpc, args.model, args.version, args.top_k, args.timeout)
    return PredictorSpec("rest", args.url or DEFAULT_URL, args.model, args.version, args.top_k, args.timeout)


def _predict(args: argparse.Namespace) -> int:
    if args.tflite:
        if args.explain:
            raise ValueError("--explain needs the served SavedModel (REST or gRPC): TFLite files have no `explain` "
                             "signature")
        if args.top_k < 1:
            raise ValueError("--top-k must be >= 1")
        predictor: Any = TFLitePredictor(args.tflite, args.top_k)
    else:
        predictor = _predictor_spec(args).create()
    refused, usable = read_files(args.images, args.max_image_pixels)  # each file read and checked once
    try:
        results = predict_read(args.images, refused, usable, predictor)
    finally:
        predictor.close()
    predicted = {r.path for r in results if r.prediction is not None}
    why = _explain([item for item in usable if item[0] in predicted], args) if args.explain else {}
    for result in results:
        explained = why.get(result.path)
        if args.json:
            out = result_json(result)
            if explained is not None:
                out.update({"explanation": explained.overlay, "explained": explained.explained} if explained.overlay
                           else {"explanation_error": explained.reason})
            print(json.dumps(out))
            continue
        print(format_result(result))
        if explained is not None:
            print(f"  why: {explained.overlay} (heatmap of {explained.explained!r})" if explained.overlay
                  else f"  why: not explained: {explained.reason}")
    ok = all(r.prediction is not None for r in results) and all(e.overlay for e in why.values())
    return 0 if ok else 1


def _explain(items: list[tuple[str, bytes]], args: argparse.Namespace) -> dict[str, ExplainedFile]:
    explainer: Any = GrpcExplainer(args.grpc, args.model, args.version, args.timeout) if args.grpc else \
        RestExplainer(args.url or DEFAULT_URL, args.model, args.version, args.timeout)
    try:
        return explain_files(items, explainer, args.explain)
    finally:
        explainer.close()


def _predict_batch(args: argparse.Namespace) -> int:
    from serving.clients.batch_prediction import predict_batch  # loads Apache Beam: not at module level (light CLI)

    if args.batch_size < 1:
        raise ValueError("--batch-size must be >= 1")
    summary = predict_batch(args.folder, args.out, _predictor_spec(args), quarantine_csv=args.quarantine,
                            batch_size=args.batch_size, max_pixels=args.max_image_pixels, beam_args=args.beam_arg)
    print(f"visionline predict-batch: {summary.files} files: {summary.predicted} predicted → "
          f"{summary.predictions_csv}; {summary.quarantined} quarantined → {summary.quarantine_csv}")
    return 0
