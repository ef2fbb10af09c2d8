"""The local model server: one `ModelManager`, the REST server and the gRPC server, started and stopped together.

    config = ServerConfig(models=(ModelConfig("visionline", "/path/to/serving/visionline"),), rest_port=0, grpc_port=0)
    with ServingServer(config) as server:
        print(server.rest_url, server.grpc_target)

`start()` first sizes TensorFlow's thread pools when the config asks (TF Serving's
`--tensorflow_intra_op_parallelism` / `--tensorflow_inter_op_parallelism`), then returns once the versions on
disk are loaded (like TF Serving, requests never see an empty server that is merely still starting) and both
ports are bound; port 0 picks a free port. Binds 127.0.0.1 unless told otherwise. `serve_forever()` blocks until
SIGINT/SIGTERM and shuts down gracefully (in-flight gRPC calls get a grace period, retired versions are closed
after their last request). Both APIs and the model calls record TF Serving's Prometheus metrics in
`server.metrics`; the REST port serves them at `config.monitoring_path` when that is set (TF Serving's
`--monitoring_config_file`).

With `config.grpc_health` the gRPC port also serves `grpc.health.v1.Health` (`serving.server.health`: SERVING only
while every model has an AVAILABLE version), NOT_SERVING from the moment `stop()` begins. Both APIs write the
access log unless `config.access_log` is off; REST requests time out after `config.rest_api_timeout_ms`.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from serving.server.access_log import AccessLog
from serving.server.config import ServerConfig
from serving.server.config_watcher import ConfigFileWatcher
from serving.server.grpc_api import start_grpc_server
from serving.server.health import HealthReporter
from serving.server.manager import Loader, ModelManager
from serving.server.prometheus import ServingMetrics
from serving.server.rest import RestContext, RestServer
from serving.server.servable import configure_tf_threads

log = logging.getLogger(__name__)


class ServingServer:
    """REST + gRPC over the configured models; see the module docstring."""

    def __init__(self, config: ServerConfig, loader: Loader | None = None) -> None:
        self.config = config
        self.metrics = ServingMetrics(m.name for m in config.models)
        self.manager = ModelManager(config.models, poll_interval=config.poll_interval, batching=config.batching,
                                    loader=loader, metrics=self.metrics,
                                    allow_version_labels_for_unavailable_models=(
                                        config.allow_version_labels_for_unavailable_models),
                                    warmup_iterations=config.warmup_iterations if config.enable_model_warmup else 0)
        self.config_watcher: ConfigFileWatcher | None = None
        if config.model_config_file and config.model_config_poll_seconds > 0:  # TF Serving's live config reload
            self.config_watcher = ConfigFileWatcher(self.manager, config.model_config_file,
                                                    config.model_config_poll_seconds, config.models,
                                                    dict(config.model_base_overrides))
        self._executor: ThreadPoolExecutor | None = None
        self._rest: Any = None
        self._grpc: Any = None
        self.health: HealthReporter | None = None
        self.rest_port: int | None = None
        self.grpc_port: int | None = None
        self._stopped = threading.Event()

    @property
    def rest_url(self) -> str:
        """Base URL of the REST API, e.g. http://127.0.0.1:8501."""
        host = f"[{self.config.host}]" if ":" in self.config.host else self.config.host
        return f"http://{host}:{self.rest_port}"

    @property
    def grpc_target(self) -> str:
        """host:port of the gRPC API."""
        host = f"[{self.config.host}]" if ":" in self.config.host else self.config.host
        return f"{host}:{self.grpc_port}"

    def grpc_threads(self) -> int:
        """gRPC handler threads: enough for concurrent callers to fill a batch."""
        batch = self.config.batching.max_batch_size if self.config.batching else 0
        return max(4 * self.config.workers, 2 * batch, 16)

    def start(self) -> ServingServer:
        """Load models, bind and start both APIs."""
        configure_tf_threads(self.config.intra_op_threads, self.config.inter_op_threads)
        self.manager.start()
        if self.config_watcher is not None:
            self.config_watcher.start()
        try:
            self._executor = ThreadPoolExecutor(max_workers=self.config.workers, thread_name_prefix="inference")
            if self.config.rest_port is not None:
                self._rest = RestServer(RestContext(self.manager, self.config, self._executor, self.metrics),
                                        self.config.host, self.config.rest_port)
                self.rest_port = self._rest.start()
            if self.config.grpc_port is not None:
                if self.config.grpc_health:
                    self.health = HealthReporter(self.manager, interval=min(self.config.poll_interval, 1.0))
                self._grpc, self.grpc_port = start_grpc_server(self.manager, self.config.host, self.config.grpc_port,
                                                               self.grpc_threads(), self.config.max_request_bytes,
                                                               self.config.max_batch_rows,
                                                               self.config.max_image_pixels, self.metrics,
                                                               AccessLog(self.config.access_log), self.health)
        except BaseException:
            self.stop()
            raise
        for model in self.config.models:
            log.info("serving model %s from %s (policy %s): versions %s", model.name, model.base_path,
                     model.policy.describe(), self.manager.available_versions(model.name) or "none yet")
        return self

    def stop(self, grace: float = 5.0) -> None:
        """Stop both APIs (gRPC gets `grace` seconds for in-flight calls) and unload every version."""
        if self.health is not None:  # probes see NOT_SERVING while in-flight calls finish
            self.health.stop()
            self.health = None
        if self._grpc is not None:
            self._grpc.stop(grace).wait(grace + 1)
            self._grpc = None
        if self._rest is not None:
            self._rest.stop()
            self._rest = None
        if self.config_watcher is not None:
            self.config_watcher.stop()
        self.manager.stop()
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=False)
            self._executor = None
        self._stopped.set()

    def serve_forever(self, ready: Callable[[], None] | None = None) -> None:
        """Block until SIGINT/SIGTERM (main thread only), then stop. `ready` runs once the signal handlers are in
        place (e.g. to print the "serving" line), so a supervisor that signals right after it stops gracefully."""
        stop = threading.Event()
        previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            if ready is not None:
                ready()
            while not stop.wait(0.5):
                pass
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.stop()

    def __enter__(self) -> ServingServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
