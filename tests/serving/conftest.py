"""Fixtures for the serving tests: a copy of the session pipeline's pushed model and a local server on free ports.

The model comes from the shared `pipeline_run` fixture (one pipeline run per session); tests copy its version
directory into their own base paths and never touch the fixture's push directory. `server` runs in-process,
`server_process` as a subprocess (load, fuzz and crash-type security tests).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from tests.serving.helpers import MODEL, copy_version

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")


@pytest.fixture(scope="session")
def pushed_version_dir(pipeline_run) -> Path:
    """The newest version directory the session's pipeline run pushed."""
    base = Path(pipeline_run.config.push_base)
    versions = sorted(int(p.name) for p in base.iterdir() if p.name.isdigit() and (p / "saved_model.pb").exists())
    assert versions, f"the pipeline pushed no model under {base}"
    return base / str(versions[-1])


@pytest.fixture(scope="session")
def model_base(pushed_version_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`<tmp>/visionline/1/` – a private copy of the pushed model as version 1."""
    base = tmp_path_factory.mktemp("serving") / MODEL
    copy_version(pushed_version_dir, base, 1)
    return base


@pytest.fixture(scope="session")
def server(model_base: Path):
    """The local server (REST + gRPC on free loopback ports, no batching, 256 KiB request limit)."""
    from serving.server.config import ModelConfig, ServerConfig
    from serving.server.model_server import ServingServer

    config = ServerConfig(models=(ModelConfig(MODEL, str(model_base)),), rest_port=0, grpc_port=0,
                          poll_interval=0.5, max_request_bytes=256 * 1024, workers=4)
    with ServingServer(config) as running:
        yield running


@pytest.fixture(scope="session")
def server_process(model_base: Path, tmp_path_factory: pytest.TempPathFactory):
    """The server as a separate process (`python -m serving serve`) on the same model, so a crash ends that
    process rather than the test run; at most 64 rows per request so the limit is cheap to exceed; Prometheus
    metrics from the shipped `serving/monitoring.config`."""
    from tests.serving.process import REPO, ServerProcess

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
    import tensorflow as tf

    loaded = tf.saved_model.load(str(model_base / "1"))

    def call(signature: str, **inputs: object) -> dict[str, np.ndarray]:
        outputs = loaded.signatures[signature](**{k: tf.constant(v) for k, v in inputs.items()})
        return {k: v.numpy() for k, v in outputs.items()}

    call.loaded = loaded
    return call


@pytest.fixture(scope="session")
def grpc_channel(server):
    import grpc

    channel = grpc.insecure_channel(server.grpc_target)
    yield channel
    channel.close()
