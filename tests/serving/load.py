"""A bounded, loopback-only load run against a server process: N concurrent clients mixing REST and gRPC.

Used by `tests/serving/test_load.py` (short) and `tests/benchmarks/soak.py` (long). Even-numbered clients speak
REST (`requests`, one keep-alive session each), odd-numbered ones gRPC (official `tensorflow_serving.apis` stubs,
one channel with its own connection each). Every client loops over a weighted mix of calls until the deadline:

* REST  `:predict` row and columnar, `:classify`, `/metadata`, status, and a non-image (must be 400);
* gRPC  `Predict`, `Classify`, `GetModelMetadata`, `GetModelStatus`, and a non-image (must be INVALID_ARGUMENT).

Optionally a new model version is pushed `push_after` seconds in (the caller's `push` function, e.g. an atomic
copy the way the Pusher does it). A request *fails* when it raises (connection error, timeout), gets a status
other than the expected one, or a body of the wrong shape; HTTP 5xx and gRPC INTERNAL/UNKNOWN/UNAVAILABLE are
also counted on their own. The server's resident memory is sampled once a second.
"""

from __future__ import annotations

import base64
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
import numpy as np
import requests
from tensorflow.core.example import example_pb2
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from tensorflow_serving.apis import classification_pb2, get_model_metadata_pb2, get_model_status_pb2, predict_pb2

from tests.serving.helpers import grpc_stubs
from tests.serving.process import ServerProcess

NOT_AN_IMAGE = b"this is not an image, the server must answer 400 / INVALID_ARGUMENT"
SERVER_SIDE_GRPC = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.UNAVAILABLE,
                    grpc.StatusCode.DATA_LOSS}
REST_MIX = (("predict", 45), ("predict_columnar", 15), ("classify", 15), ("metadata", 5), ("status", 10),
            ("bad_image", 10))
GRPC_MIX = (("Predict", 55), ("Classify", 15), ("GetModelMetadata", 10), ("GetModelStatus", 10), ("bad_image", 10))


@dataclass
class LoadResult:
    """What one load run observed."""

    clients: int
    seconds: float
    calls: Counter = field(default_factory=Counter)  # "REST predict" -> count
    failures: list[str] = field(default_factory=list)  # first 50 failure descriptions
    failure_count: int = 0
    server_errors: int = 0  # HTTP 5xx + gRPC INTERNAL/UNKNOWN/UNAVAILABLE/DATA_LOSS
    expected_rejections: int = 0  # the deliberate non-images, answered 400 / INVALID_ARGUMENT
    latencies: list[float] = field(default_factory=list)
    versions_seen: set[int] = field(default_factory=set)  # model versions named in gRPC responses
    push_at: float | None = None  # seconds into the run
    pushed_version: int | None = None
    first_new_version_at: float | None = None  # first gRPC response from the pushed version
    rss: list[tuple[float, int]] = field(default_factory=list)  # (seconds into the run, bytes)
    server_alive: bool = True

    @property
    def total(self) -> int:
        """Calls made (all kinds)."""
        return sum(self.calls.values())

    def percentile_ms(self, q: float) -> float:
        """Latency percentile over all calls, in milliseconds."""
        return float(np.percentile(self.latencies, q) * 1000) if self.latencies else float("nan")


class _Recorder:
    def __init__(self, result: LoadResult, start: float) -> None:
        self.result = result
        self.start = start
        self.lock = threading.Lock()

    def ok(self, kind: str, seconds: float, expected_rejection: bool = False, version: int | None = None) -> None:
        with self.lock:
            self.result.calls[kind] += 1
            self.result.latencies.append(seconds)
            if expected_rejection:
                self.result.expected_rejections += 1
            if version is not None:
                self.result.versions_seen.add(version)
                if (version == self.result.pushed_version and self.result.first_new_version_at is None):
                    self.result.first_new_version_at = time.monotonic() - self.start

    def fail(self, kind: str, message: str, server_error: bool = False) -> None:
        with self.lock:
            self.result.calls[kind] += 1
            self.result.failure_count += 1
            if server_error:
                self.result.server_errors += 1
            if len(self.result.failures) < 50:
                self.result.failures.append(f"{kind} at {time.monotonic() - self.start:.1f}s: {message[:300]}")


def _pick(rng: random.Random, mix: Sequence[tuple[str, int]]) -> str:
    return rng.choices([name for name, _ in mix], weights=[weight for _, weight in mix])[0]


def _rest_client(index: int, server: ServerProcess, pngs: Sequence[bytes], stop: threading.Event,
                 rec: _Recorder, timeout: float) -> None:
    rng = random.Random(index)
    session = requests.Session()
    base = f"{server.rest_url}/v1/models/{server.model}"
    b64 = [base64.b64encode(p).decode() for p in pngs]
    bad = base64.b64encode(NOT_AN_IMAGE).decode()
    while not stop.is_set():
        op = _pick(rng, REST_MIX)
        kind = f"REST {op}"
        image = rng.choice(b64)
        began = time.monotonic()
        try:
            if op == "predict":
                response = session.post(f"{base}:predict", json={"instances": [{"b64": image}]}, timeout=timeout)
                check = lambda doc: len(doc["predictions"]) == 1 and "predicted_class" in doc["predictions"][0]  # noqa: E731
            elif op == "predict_columnar":
                response = session.post(f"{base}:predict", json={"inputs": {"images": [{"b64": image}] * 2}},
                                        timeout=timeout)
                check = lambda doc: len(doc["outputs"]["predicted_class"]) == 2  # noqa: E731
            elif op == "classify":
                response = session.post(f"{base}:classify", json={
                    "signature_name": "classification", "examples": [{"image": {"b64": image}}]}, timeout=timeout)
                check = lambda doc: len(doc["results"]) == 1 and len(doc["results"][0]) >= 2  # noqa: E731
            elif op == "metadata":
                response = session.get(f"{base}/metadata", timeout=timeout)
                check = lambda doc: "serving_default" in doc["metadata"]["signature_def"]["signature_def"]  # noqa: E731
            elif op == "status":
                response = session.get(base, timeout=timeout)
                check = lambda doc: any(s["state"] == "AVAILABLE" for s in doc["model_version_status"])  # noqa: E731
            else:
                response = session.post(f"{base}:predict", json={"instances": [{"b64": bad}]}, timeout=timeout)
                check = None
        except requests.RequestException as err:
            rec.fail(kind, f"{type(err).__name__}: {err}")
            continue
        seconds = time.monotonic() - began
        status = response.status_code
        if status >= 500:
            rec.fail(kind, f"HTTP {status}: {response.text[:200]}", server_error=True)
        elif check is None:
            if status == 400 and "error" in response.json():
                rec.ok(kind, seconds, expected_rejection=True)
            else:
                rec.fail(kind, f"non-image answered HTTP {status}: {response.text[:200]}")
        elif status != 200:
            rec.fail(kind, f"HTTP {status}: {response.text[:200]}")
        else:
            try:
                good = check(response.json())
            except (ValueError, KeyError, TypeError, IndexError) as err:
                good, response_error = False, err
            else:
                response_error = None
            if good:
                rec.ok(kind, seconds)
            else:
                rec.fail(kind, f"unexpected body ({response_error}): {response.text[:200]}")
    session.close()


def _grpc_client(index: int, server: ServerProcess, pngs: Sequence[bytes], stop: threading.Event,
                 rec: _Recorder, timeout: float) -> None:
    rng = random.Random(index)
    channel = grpc.insecure_channel(server.grpc_target, options=[("grpc.use_local_subchannel_pool", 1)])
    prediction, models = grpc_stubs(channel)

    def images(values: list[bytes]) -> Any:
        shape = tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=len(values))])
        return tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING, tensor_shape=shape, string_val=values)

    while not stop.is_set():
        op = _pick(rng, GRPC_MIX)
        kind = f"gRPC {op}"
        png = rng.choice(pngs)
        began = time.monotonic()
        version = None
        try:
            if op in ("Predict", "bad_image"):
                request = predict_pb2.PredictRequest()
                request.model_spec.name = server.model
                request.model_spec.signature_name = "serving_default"
                count = 1 if op == "bad_image" else rng.choice((1, 2))
                request.inputs["images"].CopyFrom(images([NOT_AN_IMAGE] if op == "bad_image" else [png] * count))
                response = prediction.Predict(request, timeout=timeout)
                if op == "bad_image":
                    rec.fail(kind, "a non-image was answered OK")
                    continue
                good = list(response.outputs["predicted_class"].tensor_shape.dim)[0].size == count
                version = response.model_spec.version.value
            elif op == "Classify":
                request = classification_pb2.ClassificationRequest()
                request.model_spec.name = server.model
                request.model_spec.signature_name = "classification"
                example = example_pb2.Example()
                example.features.feature["image"].bytes_list.value.append(png)
                request.input.example_list.examples.append(example)
                response = prediction.Classify(request, timeout=timeout)
                good = len(response.result.classifications) == 1
                version = response.model_spec.version.value
            elif op == "GetModelMetadata":
                request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
                request.model_spec.name = server.model
                response = prediction.GetModelMetadata(request, timeout=timeout)
                good = "signature_def" in response.metadata
                version = response.model_spec.version.value
            else:
                request = get_model_status_pb2.GetModelStatusRequest()
                request.model_spec.name = server.model
                response = models.GetModelStatus(request, timeout=timeout)
                good = any(s.state == get_model_status_pb2.ModelVersionStatus.AVAILABLE
                           for s in response.model_version_status)
        except grpc.RpcError as err:
            code = err.code()
            if op == "bad_image" and code == grpc.StatusCode.INVALID_ARGUMENT:
                rec.ok(kind, time.monotonic() - began, expected_rejection=True)
            else:
                rec.fail(kind, f"{code.name}: {err.details()}", server_error=code in SERVER_SIDE_GRPC)
            continue
        if good:
            rec.ok(kind, time.monotonic() - began, version=version)
        else:
            rec.fail(kind, f"unexpected response: {str(response)[:200]}")
    channel.close()


def _push(push: Callable[[], int], result: LoadResult, rec: _Recorder, start: float) -> None:
    try:
        version = push()
    except Exception as err:  # a failed push is a failed run, reported like a failed request
        rec.fail("push", f"{type(err).__name__}: {err}")
        return
    with rec.lock:
        result.pushed_version = version
        if version in result.versions_seen and result.first_new_version_at is None:
            result.first_new_version_at = time.monotonic() - start


def run_load(server: ServerProcess, pngs: Sequence[bytes], clients: int, seconds: float,
             push: Callable[[], int] | None = None, push_after: float | None = None,
             timeout: float = 60.0, rss_interval: float = 1.0, until_new_version: float = 0.0,
             progress: Callable[[str], None] | None = None) -> LoadResult:
    """Run `clients` concurrent clients for `seconds` against `server`; `push()` (returning the new version
    number) is called once, `push_after` seconds in (default: half-way). With `until_new_version` > 0 the load
    goes on past `seconds` (for at most that many more seconds) until a response came from the pushed version,
    so a short run on a slow machine still covers the swap."""
    result = LoadResult(clients=clients, seconds=seconds)
    start = time.monotonic()
    rec = _Recorder(result, start)
    stop = threading.Event()
    threads = [threading.Thread(target=_rest_client if i % 2 == 0 else _grpc_client,
                                args=(i, server, pngs, stop, rec, timeout), name=f"load-client-{i}", daemon=True)
               for i in range(clients)]
    for thread in threads:
        thread.start()
    pushed = push is None
    push_after = seconds / 2 if push_after is None else push_after
    next_sample = start
    while True:
        now = time.monotonic()
        if now >= next_sample:
            if not server.alive():
                result.server_alive = False
                break
            result.rss.append((now - start, server.rss_bytes()))
            next_sample += rss_interval
            if progress is not None and len(result.rss) % 10 == 0:
                progress(f"{now - start:5.0f} s: {result.total} calls, {result.failure_count} failures, "
                         f"RSS {result.rss[-1][1] / 2**20:.0f} MiB")
        if not pushed and now - start >= push_after:
            pushed = True
            result.push_at = now - start
            pusher = threading.Thread(target=_push, args=(push, result, rec, start), name="load-push", daemon=True)
            pusher.start()  # off this loop, so memory sampling goes on while the files are copied
        waiting_for_swap = (push is not None and result.first_new_version_at is None
                            and now - start < seconds + until_new_version)
        if now - start >= seconds and not waiting_for_swap:
            break
        time.sleep(min(0.05, max(0.0, next_sample - time.monotonic())))
    stop.set()
    for thread in threads:
        thread.join(timeout=timeout + 10)
    result.seconds = time.monotonic() - start
    result.server_alive = result.server_alive and server.alive()
    return result
