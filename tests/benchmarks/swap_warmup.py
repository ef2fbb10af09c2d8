"""bench-serve's warm-up rows: the first request's latency right after a version swap, with and without warm-up.

For each of `--enable-model-warmup` and `--no-enable-model-warmup` a server process (`python -m serving serve`)
watches a scratch base path; `swaps` times a copy of the pushed version is pushed there as the next version (staged
and renamed, as the Pusher does), the server is polled until that version is AVAILABLE and the previous one unloaded
(then 0.5 s more: the unload's `gc.collect()` would otherwise land in the figures), and then one REST Predict is
sent to it (`/versions/N:predict`, the demo PNG): its latency is the *first request*; the next one, sent at once,
the *second request* (steady state); a third, sent to the same version after another 0.5 s and a status poll, is
the control (a request after the same idle wait on a version long warm). The version carries
`assets.extra/tf_serving_warmup_requests` as the Trainer writes it; a pushed model from before warm-up files
existed gets one written from real demo digits (said in the output). Both modes keep the server's built-in probe
of a tiny PNG (it reads the class labels), so the difference measured is what replaying real requests adds.
"""

from __future__ import annotations

import base64
import io
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import requests

from components import warmup
from tests.serving.helpers import push_version
from tests.serving.process import ServerProcess

MODEL = "visionline"


def _demo_digits(count: int) -> list[bytes]:
    from PIL import Image
    from sklearn.datasets import load_digits

    images = []
    for pixels in load_digits().images[1:count + 1]:
        buffer = io.BytesIO()
        Image.fromarray(np.clip(np.round(pixels * (255.0 / 16.0)), 0, 255).astype(np.uint8), mode="L").save(
            buffer, format="PNG")
        images.append(buffer.getvalue())
    return images


def _wait_state(url: str, version: int, state: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reply = requests.get(f"{url}/v1/models/{MODEL}/versions/{version}", timeout=30)
        if reply.status_code == 200 and reply.json()["model_version_status"][0]["state"] == state:
            return
        time.sleep(0.05)
    raise SystemExit(f"version {version} did not become {state} within {timeout:.0f} s")


def _swaps(source: Path, work: Path, enabled: bool, png: bytes,
           swaps: int) -> tuple[list[float], list[float], list[float]]:
    base = work / ("on" if enabled else "off") / MODEL
    push_version(source, base, 1)
    flag = "--enable-model-warmup" if enabled else "--no-enable-model-warmup"
    body = {"instances": [{"b64": base64.b64encode(png).decode()}]}
    first, second, idle = [], [], []
    with ServerProcess(base, work / f"server-{flag}.log", extra_args=(flag,), poll_interval=0.2) as server:
        session = requests.Session()
        for version in range(2, swaps + 2):
            push_version(source, base, version)
            _wait_state(server.rest_url, version, "AVAILABLE")
            _wait_state(server.rest_url, version - 1, "END")  # the old version unloaded …
            time.sleep(0.5)  # … and its memory collected (gc.collect() right after END holds the GIL): not timed
            _wait_state(server.rest_url, version, "AVAILABLE")
            for sink in (first, second, idle):
                if sink is idle:  # control: the same warm version after the idle wait a swap has before it
                    time.sleep(0.5)
                    _wait_state(server.rest_url, version, "AVAILABLE")
                started = time.perf_counter()
                reply = session.post(f"{server.rest_url}/v1/models/{MODEL}/versions/{version}:predict", json=body,
                                     timeout=120)
                sink.append(time.perf_counter() - started)
                if reply.status_code != 200:
                    raise SystemExit(f"predict on version {version} failed: {reply.status_code} {reply.text[:200]}")
    return first, second, idle


def bench_swap_warmup(version_dir: Path, png: bytes, swaps: int) -> str:
    """Markdown: a header line and a table of the first and second request's latency after `swaps` swaps per mode."""
    work = Path(tempfile.mkdtemp(prefix="bench-swap-warmup-"))
    try:
        source = work / "source"
        shutil.copytree(version_dir, source)
        records = warmup.read_warmup_requests(str(source))
        note = f"the pushed version's warm-up file ({len(records)} records)" if records else ""
        if not records:
            warmup.write_warmup_requests(str(source), _demo_digits(warmup.DEFAULT_IMAGES), MODEL)
            note = (f"no warm-up file in the pushed version (pushed before the Trainer wrote one): "
                    f"{warmup.DEFAULT_IMAGES} demo digits written as the Trainer would")
        rows = []
        for enabled in (False, True):
            first, second, idle = _swaps(source, work, enabled, png, swaps)
            rows.append(f"| {'on' if enabled else 'off'} | {swaps} | {np.median(first) * 1000:.1f} | "
                        f"{max(first) * 1000:.1f} | {np.median(second) * 1000:.1f} | {np.median(idle) * 1000:.1f} |")
        header = (f"First REST Predict on a version right after it became AVAILABLE (version swaps under `latest`), "
                  f"server started with and without `--enable-model-warmup`; {note}.")
        columns = ("| warm-up | swaps | first request ms (median) | first request ms (max) "
                   "| second request ms (median) "
                   "| after 0.5 s idle ms (median) |")
        return "\n".join([header, "", columns, "|---|---:|---:|---:|---:|---:|", *rows])
    finally:
        shutil.rmtree(work, ignore_errors=True)
