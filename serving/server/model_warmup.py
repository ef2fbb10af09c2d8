"""Replaying a version's warm-up file before it takes traffic (TF Serving's `--enable_model_warmup`).

TF Serving reads `<version>/assets.extra/tf_serving_warmup_requests` (a TFRecord of `PredictionLog`s; the format
is `components.warmup`) while loading a version and runs every record, `num_request_iterations` times
(`--num_request_iterations_for_warmup`, default 1), through the real signature before the version becomes
AVAILABLE; a record that fails, or a file that cannot be read, fails the load. `replay_warmup` does the same for
the local server: `predict_log` records through `Servable.run` on their signature (inputs converted and checked
as a gRPC Predict's are), `classify_log` records through the classification signature. Other log types
(`regress_log`, `multi_inference_log`, `session_run_log`) are errors here: the local server serves neither
Regress nor MultiInference (TF Serving replays the first two, and refuses `session_run_log` too).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import grpc

from components.warmup import MAX_RECORDS, WarmupFileError, read_warmup_requests, warmup_path
from serving.errors import ServingError, invalid
from serving.server.tensors import check_inputs, tensor_proto_to_array

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WarmupResult:
    """What a replay did: records read, model calls made, seconds taken (0 records when there is no file)."""

    records: int
    calls: int
    seconds: float


def _inputs(request: Any) -> dict[str, Any]:
    return {key: tensor_proto_to_array(proto, f"input {key!r}") for key, proto in request.inputs.items()}


def _run_record(servable: Any, record: Any) -> None:
    kind = record.WhichOneof("log_type")
    if kind == "predict_log":
        request = record.predict_log.request
        signature = servable.signature(request.model_spec.signature_name or None)
        inputs = _inputs(request)
        check_inputs(inputs, signature)
        servable.run(signature, inputs)
    elif kind == "classify_log":
        request = record.classify_log.request
        signature = servable.classify_signature(request.model_spec.signature_name or None)
        examples = [example.SerializeToString() for example in request.input.example_list.examples]
        if not examples:
            raise invalid("classify_log request has no example_list examples")
        servable.classify(signature, examples)
    else:
        raise invalid(f"log type {kind} is not supported for warm-up by the local server "
                      "(predict_log and classify_log are)")


def replay_warmup(servable: Any, iterations: int = 1) -> WarmupResult:
    """Run every record of `servable.path`'s warm-up file `iterations` times; raises a `ServingError` naming the
    file and the record when the file is malformed (`WarmupFileError`'s status) or a record fails (its code)."""
    if iterations < 1:
        raise ValueError(f"warm-up iterations must be >= 1, got {iterations}")
    started = time.perf_counter()
    try:
        records = read_warmup_requests(servable.path)
    except WarmupFileError as err:  # with TF Serving's status: DATA_LOSS (not a TFRecord) or INVALID_ARGUMENT
        raise ServingError(grpc.StatusCode[err.status], str(err)) from None
    if records is None:
        log.info("model %s: no warm-up data file at %s", servable.name, warmup_path(servable.path))
        return WarmupResult(0, 0, 0.0)
    calls = 0
    for number, record in enumerate(records, start=1):
        for _ in range(iterations):
            try:
                _run_record(servable, record)
            except ServingError as err:
                raise ServingError(err.code, f"{warmup_path(servable.path)}: warm-up record {number} of "
                                             f"{len(records)} failed: {err.message}") from None
            calls += 1
    seconds = time.perf_counter() - started
    log.info("model %s: version %s warmed up with %d record(s) × %d in %.0f ms (%s)", servable.name,
             servable.version, len(records), iterations, seconds * 1000, warmup_path(servable.path))
    return WarmupResult(len(records), calls, seconds)


__all__ = ["MAX_RECORDS", "WarmupFileError", "WarmupResult", "replay_warmup"]
