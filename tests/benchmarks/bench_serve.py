"""Serving benchmark: latency (p50/p95/p99) and throughput of the local server, REST and gRPC, at several
concurrency levels, beside the in-process call of the same signature (the floor), with and without
server-side batching. Loopback only; a bounded number of requests per cell. Not collected by pytest.

    TF_USE_LEGACY_KERAS=1 .venv/bin/python tests/benchmarks/bench_serve.py [--model-base PATH] [--out FILE]

The server runs as a subprocess (`python -m serving serve`), so client and server do not share a GIL; they do
share the machine's cores, which is worth remembering when reading the concurrency-32 rows on a small box.
Prints a Markdown table; `--out FILE` appends it as a dated section.
"""

from __future__ import annotations

import argparse
import base64
import io
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
from datetime import UTC, datetime
from pathlib import Path

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
                   "--rest-port", str(self.rest_port), "--grpc-port", str(self.grpc_port), *batching_args]
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

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def bench_in_process(version_dir: Path, png: bytes, levels: list[int], requests: int) -> list[Cell]:
    import tensorflow as tf

    fn = tf.saved_model.load(str(version_dir)).signatures["serving_default"]

    def call() -> None:
        outputs = fn(images=tf.constant([png]))
        {k: v.numpy() for k, v in outputs.items()}

    cells = []
    for level in levels:
        latencies, seconds, errors = measure(call, level, requests)
        cells.append(Cell("in-process", "–", level, latencies, seconds, errors))
    return cells


def bench_server(server: ServerProcess, label: str, png: bytes, levels: list[int], requests: int) -> list[Cell]:
    import grpc
    import requests as http
    from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    url = f"http://127.0.0.1:{server.rest_port}/v1/models/{MODEL}:predict"
    body = f'{{"instances": [{{"b64": "{base64.b64encode(png).decode()}"}}]}}'.encode()
    sessions = threading.local()

    def rest_call() -> None:
        session = getattr(sessions, "session", None)
        if session is None:
            session = sessions.session = http.Session()
        response = session.post(url, data=body, headers={"Content-Type": "application/json"}, timeout=60)
        if response.status_code != 200:
            raise RuntimeError(response.text)
        response.json()

    channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = MODEL
    request.inputs["images"].CopyFrom(tensor_pb2.TensorProto(
        dtype=types_pb2.DT_STRING, string_val=[png],
        tensor_shape=tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=1)])))

    def grpc_call() -> None:
        stub.Predict(request, timeout=60)

    cells = []
    for name, call in (("REST", rest_call), ("gRPC", grpc_call)):
        for level in levels:
            latencies, seconds, errors = measure(call, level, requests)
            cells.append(Cell(name, label, level, latencies, seconds, errors))
    channel.close()
    return cells


def table(cells: list[Cell], requests: int) -> str:
    lines = ["| path | server batching | concurrency | requests | errors | p50 ms | p95 ms | p99 ms | req/s |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for c in cells:
        lines.append(f"| {c.path} | {c.batching} | {c.concurrency} | {len(c.latencies)} | {c.errors} | "
                     f"{c.percentile(50):.2f} | {c.percentile(95):.2f} | {c.percentile(99):.2f} | "
                     f"{c.throughput:.0f} |")
    return "\n".join(lines)


def verdicts(cells: list[Cell]) -> list[str]:
    def find(path: str, batching: str, level: int) -> Cell | None:
        return next((c for c in cells if c.path == path and c.batching == batching and c.concurrency == level), None)

    notes = []
    floor, grpc1 = find("in-process", "–", 1), find("gRPC", "off", 1)
    if floor and grpc1:
        gap = grpc1.percentile(50) - floor.percentile(50)
        notes.append(f"- gRPC p50 at concurrency 1 is {gap:.2f} ms above the in-process call "
                     f"({grpc1.percentile(50):.2f} vs {floor.percentile(50):.2f} ms): target ≤ 2 ms "
                     f"{'**met**' if gap <= 2 else '**not met**'}.")
    for path in ("REST", "gRPC"):
        off, on = find(path, "off", 32), next((c for c in cells if c.path == path and c.batching != "off"
                                               and c.batching != "–" and c.concurrency == 32), None)
        if off and on:
            ratio = on.throughput / off.throughput
            notes.append(f"- {path} at concurrency 32: batching gives {ratio:.2f}× the throughput "
                         f"({on.throughput:.0f} vs {off.throughput:.0f} req/s): target ≥ 2× "
                         f"{'**met**' if ratio >= 2 else '**not met**'}.")
    return notes


def main(argv: list[str] | None = None) -> int:
    from pipeline.configs import PipelineConfig

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-base", default=PipelineConfig().push_base,
                        help="TF Serving base path with pushed versions (default: the demo push dir)")
    parser.add_argument("--requests", type=int, default=400, help="measured requests per cell (after 20 warm-up)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--batch-timeout-micros", type=int, default=1000)
    parser.add_argument("--num-batch-threads", type=int, default=1)
    parser.add_argument("--skip-unbatched", action="store_true")
    parser.add_argument("--out", help="append the results as a dated Markdown section to this file")
    args = parser.parse_args(argv)

    model_base = Path(args.model_base).resolve()
    version_dir = latest_version_dir(model_base)
    png = demo_png()
    levels = sorted(set(args.concurrency))
    print(f"model {version_dir}, image {len(png)} bytes PNG, {args.requests} requests per cell", file=sys.stderr)

    cells = bench_in_process(version_dir, png, levels, args.requests)
    batching_label = (f"on (max {args.max_batch_size}, {args.batch_timeout_micros} µs, "
                      f"{args.num_batch_threads} thr)")
    modes = [("off", [])] if not args.skip_unbatched else []
    modes.append((batching_label, ["--batching", "--max-batch-size", str(args.max_batch_size),
                                   "--batch-timeout-micros", str(args.batch_timeout_micros),
                                   "--num-batch-threads", str(args.num_batch_threads)]))
    for label, extra in modes:
        print(f"server, batching {label} …", file=sys.stderr)
        server = ServerProcess(model_base, extra)
        try:
            cells += bench_server(server, label, png, levels, args.requests)
        finally:
            server.stop()

    import tensorflow as tf

    header = (f"{os.cpu_count()} CPUs ({platform.machine()}), Python {platform.python_version()}, "
              f"TensorFlow {tf.__version__}; model `{version_dir.name}` (demo digits CNN); one {len(png)}-byte PNG "
              f"per request; {args.requests} requests per row after 20 warm-up; client and server on the same "
              f"machine over loopback (server in a subprocess).")
    report = "\n".join([header, "", table(cells, args.requests), "", *verdicts(cells)])
    print(report)
    if args.out:
        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        with open(args.out, "a", encoding="utf-8") as handle:
            handle.write(f"\n## Serving benchmark — {stamp}\n\n{report}\n")
        print(f"appended to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
