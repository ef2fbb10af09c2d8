"""gRPC's standard health service (`grpc.health.v1.Health`), as TF Serving's `--enable_grpc_healthcheck_service`.

TF Serving registers the services "" (the whole server), "ModelService" and "PredictionService" and reports them
SERVING once it runs (it only starts serving after the models of its config loaded). The local server reports the
same three names SERVING only while `ModelManager.not_ready_reasons()` is empty — every configured model has an
AVAILABLE version, plus whatever readiness checks were added (e.g. warm-up) — and NOT_SERVING otherwise: a
`HealthReporter` thread re-evaluates it every `interval` seconds, and it is NOT_SERVING for good once the server
shuts down. Changes are logged with their reason. Kubernetes' native `grpc:` probe calls `Check` for service "".
"""

from __future__ import annotations

import logging
import threading

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from serving.server.manager import ModelManager

log = logging.getLogger(__name__)

SERVICES = ("", "ModelService", "PredictionService")  # the names TF Serving's server.cc registers
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class HealthReporter:
    """Keeps a `grpc_health` `HealthServicer` in step with the manager's readiness; see the module docstring."""

    def __init__(self, manager: ModelManager, interval: float = 0.5) -> None:
        self.servicer = health.HealthServicer()
        self._manager = manager
        self._interval = interval
        self._stop = threading.Event()
        self._status: int | None = None
        self.update()
        self._thread = threading.Thread(target=self._run, name="grpc-health", daemon=True)
        self._thread.start()

    def add_to(self, server: grpc.Server) -> None:
        """Register the health service on `server`."""
        health_pb2_grpc.add_HealthServicer_to_server(self.servicer, server)

    def update(self) -> None:
        """Re-evaluate readiness now and publish it."""
        reasons = self._manager.not_ready_reasons()
        status = NOT_SERVING if reasons else SERVING
        if status == self._status:
            return
        self._status = status
        for service in SERVICES:
            self.servicer.set(service, status)
        log.info("gRPC health: %s%s", health_pb2.HealthCheckResponse.ServingStatus.Name(status),
                 f" ({'; '.join(reasons)})" if reasons else "")

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.update()
            except Exception:  # the reporter must outlive any surprise; readiness is retried next round
                log.exception("gRPC health: readiness check failed")

    def stop(self) -> None:
        """NOT_SERVING from now on (shutting down), and stop re-evaluating."""
        self._stop.set()
        self._thread.join(timeout=5)
        self.servicer.enter_graceful_shutdown()
        log.info("gRPC health: NOT_SERVING (shutting down)")
