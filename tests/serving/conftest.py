"""Fixtures for the serving tests: a visionline SavedModel, pushed into a base path, and local servers over it.

The model is exported once per session by `tests.model_helpers` — the project's Transform and Trainer export
code run in-process on a few digit images per class (classes "0".."9"), untrained — so these tests need no
pipeline run. It is pushed as version 1 the way the Pusher pushes (`push_version`); tests copy or push the export
into their own base paths and never write into the fixture's. `server` runs in-process, `server_process` as a
subprocess (load, fuzz and crash-type security tests).
"""

from __future__ import annotations

import os
from pathlib import Path

import grpc
import numpy as np
import pytest
import tensorflow as tf

from serving.server.config import ModelConfig, ServerConfig
from serving.server.model_server import ServingServer
from tests.model_helpers import export_serving_model
from tests.serving.helpers import MODEL, build_slow_model, push_version
from tests.serving.process import REPO, ServerProcess

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")


@pytest.fixture(scope="session")
def serving_model_dir(digits_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A visionline SavedModel (every signature of the serving contract) for the digit classes "0".."9", as the
    Trainer exports it; the source tests copy or push versions from."""
    work = tmp_path_factory.mktemp("serving-model")
    images = {folder.name: [path.read_bytes() for path in sorted(folder.glob("*.png"))[:3]]
              for folder in sorted(digits_root.iterdir()) if folder.is_dir()}
    export_serving_model(work / "export", work, images)
    return work / "export"


@pytest.fixture(scope="session")
def slow_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`build_slow_model`: a SavedModel that sleeps the seconds it is given (a busy server on demand)."""
    return build_slow_model(tmp_path_factory.mktemp("slow-model") / "export")


@pytest.fixture(scope="session")
def model_base(serving_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`<tmp>/visionline/1/` – the model pushed as version 1 (staged and renamed, as the Pusher does)."""
    base = tmp_path_factory.mktemp("serving") / MODEL
    push_version(serving_model_dir, base, 1)
    return base


@pytest.fixture(scope="session")
def server(model_base: Path):
    """The local server (REST + gRPC on free loopback ports, no batching, 256 KiB request limit)."""
    config = ServerConfig(models=(ModelConfig(MODEL, str(model_base)),), rest_port=0, grpc_port=0,
                          poll_interval=0.5, max_request_bytes=256 * 1024, workers=4)
    with ServingServer(config) as running:
        yield running


@pytest.fixture(scope="session")
def server_process(model_base: Path, tmp_path_factory: pytest.TempPathFactory):
    """The server as a separate process (`python -m serving serve`) on the same model, so a crash ends that
    process rather than the test run; at most 64 rows per request so the limit is cheap to exceed; Prometheus
    metrics from the shipped `serving/monitoring.config`."""
    log = tmp_path_factory.mktemp("server-process") / "server.log"
    extra_args = ("--max-batch-rows", "64", "--monitoring-config-file", str(REPO / "serving" / "monitoring.config"))
    with ServerProcess(model_base, log, extra_args=extra_args) as running:
        yield running


@pytest.fixture(scope="session")
def digit_paths(digits_root: Path) -> dict[str, Path]:
    """One real PNG digit per class: class name → path."""
    return {folder.name: sorted(folder.glob("*.png"))[0] for folder in sorted(digits_root.iterdir()) if folder.is_dir()}


@pytest.fixture(scope="session")
def digit_pngs(digit_paths: dict[str, Path]) -> list[bytes]:
    """Encoded PNG bytes of one digit per class (class order 0..9)."""
    return [path.read_bytes() for _label, path in sorted(digit_paths.items())]


@pytest.fixture(scope="session")
def in_process(model_base: Path):
    """The SavedModel's signatures called in-process: the reference the servers must match."""
    loaded = tf.saved_model.load(str(model_base / "1"))

    def call(signature: str, **inputs: object) -> dict[str, np.ndarray]:
        outputs = loaded.signatures[signature](**{k: tf.constant(v) for k, v in inputs.items()})
        return {k: v.numpy() for k, v in outputs.items()}

    call.loaded = loaded
    return call


@pytest.fixture(scope="session")
def grpc_channel(server):
    channel = grpc.insecure_channel(server.grpc_target)
    yield channel
    channel.close()
