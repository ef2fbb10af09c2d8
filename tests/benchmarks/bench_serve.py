"""Serving benchmark: latency (p50/p95/p99) and throughput of the local server, REST and gRPC, at several
concurrency levels, beside the in-process call of the same signature (the floor), with and without
server-side batching. Loopback only; a bounded number of requests per cell. Not collected by pytest.

    TF_USE_LEGACY_KERAS=1 .venv/bin/python tests/benchmarks/bench_serve.py [--model-base PATH] [--out FILE]

The server runs as a subprocess (`python -m serving serve`), so client and server do not share a GIL; they do
share the machine's cores. The REST/gRPC load comes from one asyncio loop (raw keep-alive HTTP/1.1 connections,
grpc.aio) so the load generator itself needs little CPU; in-process rows call the signature from N threads.
At concurrency 1 the unbatched server is also called with the official blocking stubs, Predict and
GetModelStatus (a round trip that runs no model: the transport and dispatch share of the latency).
Where Debian's h2load is installed (`make system-deps`), every server cell is measured again with that C load
generator (rows marked "(h2load)", see tests/benchmarks/h2load.py), which leaves more of the two cores to the
server; the targets are judged for each client. The unbatched server is also loaded by h2load with requests that
run no model (REST: GET the model status; gRPC: GetModelStatus) at the highest concurrency: with the model's
own batched throughput, that bounds what server-side batching can reach on this machine (a verdict line).
Each cell runs `--repeat` rounds (latencies pooled, throughput of the median round) because small shared VMs
are noisy. The server runs with `--monitoring`: its Prometheus page, read before and after each cell, gives the
server's own mean time per request (`request_latency`: from the handler's start to its response, without the
transport) and, with batching, the mean rows per merged model call (`processed_batch_size`). Prints a Markdown
table; `--out FILE` appends it as a dated section.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import platform
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

MODEL = "visionline"


@dataclass
class Cell:
    """One measured configuration."""

    path: str  # in-process | REST | gRPC
    batching: str
    concurrency: int
    latencies: list[float]
    seconds: float
    errors: int
    server_ms: float | None = None  # the server's mean request_latency over the cell (its Prometheus page)
    rows_per_batch: float | None = None  # mean processed_batch_size over the cell (batching on)

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies, q) * 1000) if self.latencies else float("nan")

    @property
    def throughput(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else float("nan")


def measure(call: Callable[[], None], concurrency: int, requests: int, warmup: int = 20) -> tuple[list[float], float,
                                                                                                    int]:
    """Run `requests` calls spread over `concurrency` threads; per-call latencies, wall time and errors."""
    for _ in range(warmup):
        call()
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    per_thread = [requests // concurrency + (1 if i < requests % concurrency else 0) for i in range(concurrency)]
    start_gate = threading.Barrier(concurrency + 1)

    def worker(count: int) -> None:
        local = []
        start_gate.wait()
        for _ in range(count):
            t0 = time.perf_counter()
            try:
                call()
            except Exception:  # counted, not raised: the table reports it
                with lock:
                    errors[0] += 1
                continue
            local.append(time.perf_counter() - t0)
        with lock:
            latencies.extend(local)

    threads = [threading.Thread(target=worker, args=(n,)) for n in per_thread]
    for thread in threads:
        thread.start()
    start_gate.wait()
    t0 = time.perf_counter()
    for thread in threads:
        thread.join()
    return latencies, time.perf_counter() - t0, errors[0]


def demo_png() -> bytes:
    """A real 8×8 handwritten digit from the demo dataset, as PNG."""
    from PIL import Image
    from sklearn.datasets import load_digits

    pixels = load_digits().images[0]
    image = np.clip(np.round(pixels * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(image, mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


def latest_version_dir(base: Path) -> Path:
    versions = sorted(int(p.name) for p in base.iterdir() if p.name.isdigit() and (p / "saved_model.pb").exists())
    if not versions:
        raise SystemExit(f"no pushed model under {base}: run `visionline run --demo` or pass --model-base")
    return base / str(versions[-1])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """`python -m serving serve` in a subprocess on free loopback ports."""

    def __init__(self, model_base: Path, batching_args: list[str]) -> None:
        self.rest_port, self.grpc_port = free_port(), free_port()
        command = [sys.executable, "-m", "serving", "serve", "--model-base", str(model_base), "--model-name", MODEL,
                   "--rest-port", str(self.rest_port), "--grpc-port", str(self.grpc_port), "--monitoring",
                   *batching_args]
        self.process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                        text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
        deadline = time.monotonic() + 180
        line = ""
        while "REST http" not in line:
            line = self.process.stdout.readline()
            if (not line and self.process.poll() is not None) or time.monotonic() > deadline:
                raise SystemExit("the server did not start")
        if not re.search(r"versions \[\d+\]", line):
            raise SystemExit(f"the server has no model: {line.strip()}")

    def metrics(self) -> dict[tuple[str, frozenset], float]:
        """The server's Prometheus page, read (`serving.server.prometheus.read_page`)."""
        import urllib.request

        from serving.server.prometheus import DEFAULT_PATH, read_page

        with urllib.request.urlopen(f"http://127.0.0.1:{self.rest_port}{DEFAULT_PATH}", timeout=30) as response:
            return read_page(response.read().decode())

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def load_signature(version_dir: Path) -> Callable:
    """The pushed version's `serving_default` signature, loaded once for every in-process measurement."""
    import tensorflow as tf

    return tf.saved_model.load(str(version_dir)).signatures["serving_default"]


def _signature_call(fn: Callable, pngs: list[bytes]) -> Callable[[], None]:
    """One in-process call of the signature on these encoded images, outputs fetched to numpy."""
    import tensorflow as tf

    images = tf.constant(pngs)

    def call() -> None:
        outputs = fn(images=images)
        {k: v.numpy() for k, v in outputs.items()}

    return call


def bench_in_process(fn: Callable, png: bytes, levels: list[int], requests: int, repeat: int) -> list[Cell]:
    call = _signature_call(fn, [png])
    cells = []
    for level in levels:
        cells.append(_combine("in-process", "–", level, [measure(call, level, requests) for _ in range(repeat)]))
    return cells


def batched_ceiling(fn: Callable, png: bytes, batch: int, requests: int, repeat: int) -> tuple[float, float]:
    """Images/s of the in-process signature called on whole batches of `batch` images (the best of 1 and 2
    calling threads, median round) and its p50 ms per batch: what server-side batching could at most reach on
    this machine, before any request handling."""
    call = _signature_call(fn, [png] * batch)
    calls = max(5, requests // batch)
    best = max((_combine("in-process", "–", level, [measure(call, level, calls, warmup=3) for _ in range(repeat)])
                for level in (1, 2)), key=lambda cell: cell.throughput)
    return best.throughput * batch, best.percentile(50)


def server_side(before: dict, after: dict, entrypoint: str) -> tuple[float | None, float | None]:
    """From two reads of the server's Prometheus page: its mean Predict request_latency (ms) for `entrypoint`
    (REST | GRPC) and the mean rows per batch (None where nothing was recorded)."""
    from serving.server.prometheus import sample_value

    def delta(name: str, **labels: str) -> float:
        return sample_value(after, name, **labels) - sample_value(before, name, **labels)

    latency = ":tensorflow:serving:request_latency"
    labels = {"model_name": MODEL, "API": "Predict", "entrypoint": entrypoint}
    count = delta(latency + "_count", **labels)
    server_ms = delta(latency + "_sum", **labels) / count / 1000 if count else None
    size = ":tensorflow:serving:batching_session:processed_batch_size"
    pools = {dict(k[1]).get("thread_pool_name") for k in after if k[0] == size + "_count"}
    batches = sum(delta(size + "_count", thread_pool_name=pool) for pool in pools)
    rows = sum(delta(size + "_sum", thread_pool_name=pool) for pool in pools)
    return server_ms, (rows / batches if batches else None)


def _observed(server: ServerProcess, path: str, measure_cell: Callable[[], Cell]) -> Cell:
    """Run one cell and attach the server's own view of it (mean request time, mean rows per batch)."""
    before = server.metrics()
    cell = measure_cell()
    cell.server_ms, cell.rows_per_batch = server_side(before, server.metrics(),
                                                      "GRPC" if path.startswith("gRPC") else "REST")
    return cell


def bench_server(server: ServerProcess, label: str, png: bytes, levels: list[int], requests: int,
                 repeat: int) -> list[Cell]:
    """REST and gRPC cells; load comes from one asyncio loop (keep-alive HTTP/1.1 connections, grpc.aio), so the
    load generator needs little CPU and the numbers describe the server rather than 32 client threads."""
    cells = []
    for path in ("REST", "gRPC"):
        for level in levels:
            cells.append(_observed(server, path, lambda path=path, level=level: _combine(
                path, label, level, [asyncio.run(_async_round(server, path, png, level, requests))
                                     for _ in range(repeat)])))
    return cells


def bench_blocking_grpc(server: ServerProcess, label: str, png: bytes, requests: int, repeat: int) -> list[Cell]:
    """Concurrency 1 with the official blocking stubs (how a single client usually calls TF Serving): Predict,
    and GetModelStatus — a round trip through the same server that runs no model, i.e. the transport and
    dispatch part of the Predict latency."""
    import grpc
    from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

    from serving.clients.predictors import predict_request

    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        predict = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict
        status = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus
        request = predict_request([png], MODEL)
        status_request = _status_request()
        calls = [("gRPC, blocking stub", lambda: predict(request, timeout=60)),
                 ("gRPC GetModelStatus (no model), blocking stub", lambda: status(status_request, timeout=60))]
        return [_observed(server, path, lambda path=path, call=call: _combine(
                    path, label, 1, [measure(call, 1, requests) for _ in range(repeat)]))
                for path, call in calls]


def _status_request() -> Any:
    """GetModelStatus for the benchmarked model: the gRPC request that runs no model."""
    from tensorflow_serving.apis import get_model_status_pb2

    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = MODEL
    return request


def _h2load_warm_up(url: str, body: bytes | None, is_grpc: bool, expected: int, level: int) -> None:
    """A short unmeasured h2load run before a cell (outside the server-metrics window of `_observed`)."""
    from tests.benchmarks import h2load

    h2load.run(url, body, level, max(20, 2 * level), grpc=is_grpc, expected_response_bytes=expected)


def _h2load_cell(path: str, label: str, url: str, body: bytes | None, is_grpc: bool, expected: int, level: int,
                 requests: int, repeat: int) -> Cell:
    """`repeat` measured h2load rounds pooled into a cell."""
    from tests.benchmarks import h2load

    rounds = [h2load.run(url, body, level, requests, grpc=is_grpc, expected_response_bytes=expected)
              for _ in range(repeat)]
    return _combine(path, label, level, [(r.latencies, r.seconds, r.errors) for r in rounds])


def bench_h2load(server: ServerProcess, label: str, png: bytes, levels: list[int], requests: int,
                 repeat: int) -> list[Cell]:
    """REST and gRPC cells with h2load as the load generator (after a warm-up run per cell)."""
    from serving.clients.predictors import predict_body, predict_request
    from tests.benchmarks import h2load

    rest_body = json.dumps(predict_body([png])).encode()
    message = predict_request([png], MODEL).SerializeToString()
    expected = h2load.grpc_response_frame_bytes(f"127.0.0.1:{server.grpc_port}", message)
    targets = {
        "REST": (f"http://127.0.0.1:{server.rest_port}/v1/models/{MODEL}:predict", rest_body, False),
        "gRPC": (f"http://127.0.0.1:{server.grpc_port}{h2load.GRPC_PREDICT_PATH}", h2load.grpc_frame(message), True),
    }
    cells = []
    for path, (url, body, is_grpc) in targets.items():
        for level in levels:
            _h2load_warm_up(url, body, is_grpc, expected, level)
            cells.append(_observed(server, path, lambda path=path, url=url, body=body, is_grpc=is_grpc, level=level:
                                   _h2load_cell(f"{path} (h2load)", label, url, body, is_grpc, expected, level,
                                                requests, repeat)))
    return cells


NO_MODEL_PATHS = {"REST": "REST GET model status (no model) (h2load)",
                  "gRPC": "gRPC GetModelStatus (no model) (h2load)"}


def bench_no_model_h2load(server: ServerProcess, level: int, requests: int, repeat: int) -> list[Cell]:
    """The most requests per second each API answers when no model runs (REST: GET the model's status; gRPC:
    GetModelStatus), from h2load at `level` concurrent clients: the server's per-request cost for transport and
    dispatch alone, which bounds what batching can reach (see `verdicts`)."""
    from tests.benchmarks import h2load

    message = _status_request().SerializeToString()
    status_path = h2load.GRPC_MODEL_STATUS_PATH
    expected = h2load.grpc_response_frame_bytes(f"127.0.0.1:{server.grpc_port}", message, status_path)
    targets = {"REST": (f"http://127.0.0.1:{server.rest_port}/v1/models/{MODEL}", None, False),
               "gRPC": (f"http://127.0.0.1:{server.grpc_port}{status_path}", h2load.grpc_frame(message), True)}
    cells = []
    for path, (url, body, is_grpc) in targets.items():
        _h2load_warm_up(url, body, is_grpc, expected, level)
        cells.append(_h2load_cell(NO_MODEL_PATHS[path], "off", url, body, is_grpc, expected, level, requests, repeat))
    return cells


def _combine(path: str, label: str, level: int, rounds: list[tuple[list[float], float, int]]) -> Cell:
    """Pool the rounds' latencies; throughput from the median round."""
    latencies = [x for r in rounds for x in r[0]]
    median = sorted(rounds, key=lambda r: len(r[0]) / r[1])[len(rounds) // 2]
    cell = Cell(path, label, level, latencies, median[1] * len(latencies) / max(1, len(median[0])),
                sum(r[2] for r in rounds))
    return cell


async def _async_round(server: ServerProcess, path: str, png: bytes, concurrency: int,
                       requests: int, warmup: int = 20) -> tuple[list[float], float, int]:
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    from serving.clients.predictors import predict_body, predict_request

    body = json.dumps(predict_body([png])).encode()
    head = (f"POST /v1/models/{MODEL}:predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    request = predict_request([png], MODEL)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.grpc_port}") if path == "gRPC" else None
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel) if channel else None
    latencies: list[float] = []
    errors = [0]
    remaining = [requests]

    async def worker(count_warmup: int) -> None:
        reader = writer = None
        if path == "REST":
            reader, writer = await asyncio.open_connection("127.0.0.1", server.rest_port)

        async def one() -> None:
            if stub is not None:
                await stub.Predict(request, timeout=60)
                return
            writer.write(head + body)
            status = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            if b" 200 " not in status:
                raise RuntimeError(status)

        for _ in range(count_warmup):
            await one()
        await start.wait()
        while remaining[0] > 0:
            remaining[0] -= 1
            t0 = time.perf_counter()
            try:
                await one()
                latencies.append(time.perf_counter() - t0)
            except Exception:  # counted in the table
                errors[0] += 1
        if writer is not None:
            writer.close()

    start = asyncio.Event()
    tasks = [asyncio.create_task(worker(max(1, warmup // concurrency))) for _ in range(concurrency)]
    await asyncio.sleep(0.5)  # connections open and warmed up
    t0 = time.perf_counter()
    start.set()
    await asyncio.gather(*tasks)
    seconds = time.perf_counter() - t0
    if channel is not None:
        await channel.close()
    return latencies, seconds, errors[0]


def table(cells: list[Cell]) -> str:
    lines = ["| path | server batching | concurrency | requests | errors | p50 ms | p95 ms | p99 ms | req/s "
             "| server mean ms | rows/batch |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for c in cells:
        server_ms = f"{c.server_ms:.2f}" if c.server_ms is not None else "–"
        rows = f"{c.rows_per_batch:.1f}" if c.rows_per_batch is not None else "–"
        lines.append(f"| {c.path} | {c.batching} | {c.concurrency} | {len(c.latencies)} | {c.errors} | "
                     f"{c.percentile(50):.2f} | {c.percentile(95):.2f} | {c.percentile(99):.2f} | "
                     f"{c.throughput:.0f} | {server_ms} | {rows} |")
    return "\n".join(lines)


def verdicts(cells: list[Cell], ceiling: tuple[int, float, float] | None = None) -> list[str]:
    def find(path: str, batching: str, level: int) -> Cell | None:
        return next((c for c in cells if c.path == path and c.batching == batching and c.concurrency == level), None)

    notes = []
    floor = find("in-process", "–", 1)
    for path, client in (("gRPC", "grpc.aio client"), ("gRPC, blocking stub", "blocking stub"),
                         ("gRPC (h2load)", "h2load client")):
        grpc1 = find(path, "off", 1)
        if floor and grpc1:
            gap = grpc1.percentile(50) - floor.percentile(50)
            notes.append(f"- gRPC p50 at concurrency 1 ({client}) is {abs(gap):.2f} ms "
                         f"{'above' if gap >= 0 else 'below'} the in-process call "
                         f"({grpc1.percentile(50):.2f} vs {floor.percentile(50):.2f} ms): target ≤ 2 ms "
                         f"{'**met**' if gap <= 2 else '**not met**'}.")
    status = find("gRPC GetModelStatus (no model), blocking stub", "off", 1)
    if status:
        notes.append(f"- A gRPC round trip that runs no model (GetModelStatus, blocking stub) takes "
                     f"{status.percentile(50):.2f} ms at p50: that much of the gap is transport and dispatch.")
    for path in ("REST", "gRPC", "REST (h2load)", "gRPC (h2load)"):
        off, on = find(path, "off", 32), next((c for c in cells if c.path == path and c.batching != "off"
                                               and c.batching != "–" and c.concurrency == 32), None)
        if off and on:
            ratio = on.throughput / off.throughput
            rows = (f"; the server merged {on.rows_per_batch:.1f} requests per model call on average"
                    if on.rows_per_batch is not None else "")
            notes.append(f"- {path} at concurrency 32: batching gives {ratio:.2f}× the throughput "
                         f"({on.throughput:.0f} vs {off.throughput:.0f} req/s): target ≥ 2× "
                         f"{'**met**' if ratio >= 2 else '**not met**'}{rows}.")
    if ceiling:
        images_per_s = ceiling[1]
        for path, no_model_path in NO_MODEL_PATHS.items():
            off, no_model = find(f"{path} (h2load)", "off", 32), find(no_model_path, "off", 32)
            if off and no_model:
                bound = 1 / (1 / no_model.throughput + 1 / images_per_s)
                ratio = bound / off.throughput
                notes.append(f"- Bound for {path} (h2load) at concurrency 32: the server answers at most "
                             f"{no_model.throughput:.0f} no-model requests/s and the model on whole batches runs "
                             f"{images_per_s:.0f} images/s on the same cores, so even with free request handling "
                             f"and full batches Predict stays under ~{bound:.0f} req/s: {ratio:.2f}× the unbatched "
                             f"{off.throughput:.0f} req/s "
                             f"({'2× is out of reach here' if ratio < 2 else 'room for 2×'}).")
    unbatched = find("gRPC", "off", 32)
    if ceiling and unbatched:
        batch, images_per_s, p50 = ceiling
        ratio = images_per_s / unbatched.throughput
        notes.append(f"- Ceiling: the in-process signature on whole batches of {batch} images does "
                     f"{images_per_s:.0f} images/s ({p50:.1f} ms per batch), {ratio:.2f}× "
                     f"the unbatched gRPC server at concurrency 32; server-side batching cannot exceed that here, "
                     f"and request handling and the load generator share the same cores.")
    return notes


def main(argv: list[str] | None = None) -> int:
    from pipeline.configs import PipelineConfig

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-base", default=PipelineConfig().push_base,
                        help="TF Serving base path with pushed versions (default: the demo push dir)")
    parser.add_argument("--requests", type=int, default=300, help="measured requests per round (after 20 warm-up)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds per cell (latencies pooled, median throughput)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--batch-timeout-micros", type=int, default=1000)
    parser.add_argument("--num-batch-threads", type=int, default=2)
    parser.add_argument("--skip-unbatched", action="store_true")
    parser.add_argument("--no-h2load", action="store_true", help="skip the h2load rows even if h2load is installed")
    parser.add_argument("--server-arg", action="append", default=[], metavar="FLAG",
                        help="extra `visionline serve` flag for every server row, e.g. "
                             "--server-arg=--tensorflow-intra-op-parallelism=1 (repeatable; with --out, written to "
                             "a section of its own named after the flags)")
    parser.add_argument("--out", help="append the results as a dated Markdown section to this file")
    parser.add_argument("--swaps", type=int, default=5, help="version swaps per warm-up mode for the first-request "
                                                             "rows (tests/benchmarks/swap_warmup.py; 0: none)")
    parser.add_argument("--only-swap-warmup", action="store_true", help="measure just the first-request rows")
    args = parser.parse_args(argv)

    model_base = Path(args.model_base).resolve()
    version_dir = latest_version_dir(model_base)
    png = demo_png()
    levels = sorted(set(args.concurrency))
    from tests.benchmarks.h2load import h2load_binary

    use_h2load = not args.no_h2load and h2load_binary() is not None
    if not args.no_h2load and not use_h2load:
        print("h2load not found (Debian nghttp2-client, `make system-deps`): no h2load rows", file=sys.stderr)
    print(f"model {version_dir}, image {len(png)} bytes PNG, {args.repeat}×{args.requests} requests per cell",
          file=sys.stderr)

    if args.only_swap_warmup:
        from tests.benchmarks.swap_warmup import bench_swap_warmup

        report = bench_swap_warmup(version_dir, png, args.swaps)
        print(report)
        if args.out:  # a section of its own, so the full bench-serve section stays as it was measured
            from tests.benchmarks.markdown import machine_line, write_section

            name = f"bench-serve-swap-warmup-{version_dir.parent.name}"
            write_section(args.out, name, f"## bench-serve: first request after a version swap, "
                                          f"`{version_dir.parent.name}` model\n\n{machine_line()}\n\n{report}")
            print(f"wrote section {name} of {args.out}", file=sys.stderr)
        return 0
    signature = load_signature(version_dir)
    cells = bench_in_process(signature, png, levels, args.requests, args.repeat)
    # The ceiling is compared with the unbatched server, so it is only measured when that runs.
    ceiling = None if args.skip_unbatched else (
        args.max_batch_size, *batched_ceiling(signature, png, args.max_batch_size, args.requests * 4, args.repeat))
    batching_label = (f"on (max {args.max_batch_size}, {args.batch_timeout_micros} µs, "
                      f"{args.num_batch_threads} thr)")
    modes = [("off", [])] if not args.skip_unbatched else []
    modes.append((batching_label, ["--batching", "--max-batch-size", str(args.max_batch_size),
                                   "--batch-timeout-micros", str(args.batch_timeout_micros),
                                   "--num-batch-threads", str(args.num_batch_threads)]))
    for label, extra in modes:
        print(f"server, batching {label} …", file=sys.stderr)
        server = ServerProcess(model_base, [*extra, *args.server_arg])
        try:
            cells += bench_server(server, label, png, levels, args.requests, args.repeat)
            if label == "off" and 1 in levels:
                cells += bench_blocking_grpc(server, label, png, args.requests, args.repeat)
            if use_h2load:
                cells += bench_h2load(server, label, png, levels, args.requests, args.repeat)
                if label == "off":
                    cells += bench_no_model_h2load(server, max(levels), max(args.requests, 2000), args.repeat)
        finally:
            server.stop()

    import tensorflow as tf

    header = (
        f"{os.cpu_count()} CPUs ({platform.machine()}), Python {platform.python_version()}, "
        f"TensorFlow {tf.__version__}; model `{version_dir.parent.name}/{version_dir.name}`; "
        f"one {len(png)}-byte PNG per request; {args.repeat} rounds × {args.requests} requests per row "
        "(latencies pooled, req/s of the median round), 20 warm-up requests per round; client and server share "
        "the machine, over loopback (server in a subprocess; REST/gRPC load from one asyncio loop with keep-alive "
        "connections / grpc.aio, or the blocking stubs where a row says so; in-process rows call the signature from "
        "N threads). Server mean ms and rows/batch come from the server's Prometheus page (`--monitoring`), "
        "read before and after each row: its mean Predict request_latency (handler start to response, no "
        "transport) and mean processed_batch_size."
    )
    if args.server_arg:
        header += f" Every server row ran with `{' '.join(args.server_arg)}`."
    if use_h2load:
        header += (" Rows marked (h2load): the same requests from nghttp2's C load generator h2load "
                   "(REST: one HTTP/1.1 keep-alive connection per client; gRPC: one HTTP/2 connection with N "
                   "concurrent streams; gRPC failures counted from the response bytes).")
    report = "\n".join([header, "", table(cells), "", *verdicts(cells, ceiling)])
    if args.swaps > 0:
        from tests.benchmarks.swap_warmup import bench_swap_warmup

        report += "\n\n" + bench_swap_warmup(version_dir, png, args.swaps)
    print(report)
    if args.out:
        from tests.benchmarks.markdown import machine_line, write_section

        name = f"bench-serve-{version_dir.parent.name}"
        title = f"## bench-serve: `{version_dir.parent.name}` model"
        if args.server_arg:  # a section of its own beside the default server's
            name += "-" + re.sub(r"[^a-z0-9]+", "-", " ".join(args.server_arg).lower()).strip("-")
            title += f", server `{' '.join(args.server_arg)}`"
        write_section(args.out, name, f"{title}\n\n{machine_line()}\n\n{report}")
        print(f"wrote section {name} of {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
