"""Load from h2load (nghttp2's C load generator, Debian `nghttp2-client`) for bench-serve.

On a 2-core machine the load generator competes with the server for the CPU; a Python client spends a large
share of it. h2load sends the same requests from C:
- REST: `POST /v1/models/{name}:predict` over HTTP/1.1 keep-alive connections, one per concurrent client;
- gRPC: `PredictionService/Predict` as raw HTTP/2 streams (gRPC's 5-byte length prefix + the serialized
  `PredictRequest`, `content-type: application/grpc`) on one connection carrying N concurrent streams, as a
  grpc.aio channel does.

h2load sees only HTTP statuses, and a failed gRPC call is an HTTP 200 whose trailers carry the error (no
message). So gRPC failures are counted from the response DATA bytes: every successful response is the same
message of `expected_response_bytes` (the same image, so the same outputs, whose encoded size is fixed); fewer
bytes than `requests × expected` means that many calls failed. Latencies come from h2load's per-request log
(start time and time to the end of the response, in µs); the round's wall time runs from the first request's
start to the last response's end (connection set-up excluded).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

GRPC_PREDICT_PATH = "/tensorflow.serving.PredictionService/Predict"
GRPC_MODEL_STATUS_PATH = "/tensorflow.serving.ModelService/GetModelStatus"


def h2load_binary() -> str | None:
    """Path of the `h2load` executable, or None when nghttp2-client is not installed."""
    return shutil.which("h2load")


def grpc_frame(message: bytes) -> bytes:
    """One uncompressed gRPC message as it travels in an HTTP/2 DATA frame: flag byte, 4-byte length, bytes."""
    return b"\x00" + len(message).to_bytes(4, "big") + message


@dataclass
class H2loadRound:
    """One measured h2load run."""

    latencies: list[float]  # seconds, one per completed request
    seconds: float  # first request start → last response end
    errors: int  # requests that did not succeed (see the module docstring for gRPC)
    succeeded: int
    data_bytes: int


def parse_summary(stdout: str) -> dict[str, int]:
    """What `run` counts from h2load's summary: responses with a 2xx status, and the response DATA bytes."""
    def number(pattern: str) -> int:
        match = re.search(pattern, stdout)
        if match is None:
            raise ValueError(f"h2load output has no {pattern!r}:\n{stdout}")
        return int(match.group(1))

    return {"status_2xx": number(r"status codes: (\d+) 2xx"), "data_bytes": number(r"\((\d+)\) data")}


def parse_log(text: str) -> tuple[list[float], float]:
    """Latencies (s) and the wall time (s) from h2load's `--log-file` (start µs, status, duration µs)."""
    starts, ends, latencies = [], [], []
    for line in text.splitlines():
        if not line.strip():
            continue
        start, _status, duration = (int(field) for field in line.split("\t")[:3])
        starts.append(start)
        ends.append(start + duration)
        latencies.append(duration / 1e6)
    seconds = (max(ends) - min(starts)) / 1e6 if starts else 0.0
    return latencies, seconds


def run(url: str, body: bytes | None, concurrency: int, requests: int, *, grpc: bool,
        expected_response_bytes: int | None = None, timeout: float = 600.0) -> H2loadRound:
    """Send `requests` POSTs of `body` (REST: GETs when `body` is None) to `url` from `concurrency` concurrent
    clients (REST: HTTP/1.1 connections; gRPC: streams on one HTTP/2 connection). For gRPC,
    `expected_response_bytes` is the DATA payload of one successful response (its frame, prefix included)."""
    binary = h2load_binary()
    if binary is None:
        raise FileNotFoundError("h2load not found: install Debian's nghttp2-client (`make system-deps`)")
    if grpc and (not expected_response_bytes or body is None):
        raise ValueError("gRPC rounds need a body and expected_response_bytes to count failed calls")
    with tempfile.TemporaryDirectory(prefix="h2load-") as tmp:
        body_path, log_path = Path(tmp) / "body", Path(tmp) / "requests.log"
        command = [binary, "-n", str(requests), "--log-file", str(log_path)]
        if body is not None:
            body_path.write_bytes(body)
            command += ["-d", str(body_path)]
        if grpc:
            command += ["-c", "1", "-m", str(concurrency), "-H", "content-type: application/grpc",
                        "-H", "te: trailers"]
        else:
            command += ["--h1", "-c", str(concurrency), "-m", "1"]
            if body is not None:
                command += ["-H", "content-type: application/json"]
        result = subprocess.run([*command, url], capture_output=True, text=True, timeout=timeout, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"h2load exited with {result.returncode}: {result.stderr or result.stdout}")
        summary = parse_summary(result.stdout)
        latencies, seconds = parse_log(log_path.read_text())
    if grpc:
        succeeded = min(summary["status_2xx"], summary["data_bytes"] // expected_response_bytes)
    else:
        succeeded = summary["status_2xx"]
    return H2loadRound(latencies=latencies, seconds=seconds, errors=requests - succeeded, succeeded=succeeded,
                       data_bytes=summary["data_bytes"])


def grpc_response_frame_bytes(target: str, message: bytes, path: str = GRPC_PREDICT_PATH) -> int:
    """Send `message` once through grpcio (bytes in, bytes out: no proto round trip, so it is exactly what
    h2load will send) and return the size of the successful response's frame; raises if the call fails."""
    import grpc

    with grpc.insecure_channel(target) as channel:
        response = channel.unary_unary(path)(message, timeout=60)
    return len(grpc_frame(response))
