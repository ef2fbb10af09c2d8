"""TF Serving's gRPC health service (`--enable_grpc_healthcheck_service`) on the running server: NOT_SERVING until
the model has an AVAILABLE version, SERVING then; absent unless enabled (as in TF Serving)."""

from __future__ import annotations

import argparse
import time

import grpc
import pytest
import requests
from grpc_health.v1 import health_pb2, health_pb2_grpc

from serving import cli
from serving.server.config import ModelConfig, ServerConfig
from serving.server.health import SERVICES
from serving.server.model_server import ServingServer
from tests.serving.helpers import SLOW, push_version
from tests.serving.process import ServerProcess


def statuses(target: str) -> dict[str, str]:
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        return {service: health_pb2.HealthCheckResponse.ServingStatus.Name(
            stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status) for service in SERVICES}


def test_serving_only_once_the_model_is_available(slow_model_dir, tmp_path):
    base = tmp_path / SLOW  # nothing pushed yet
    config = ServerConfig(models=(ModelConfig(SLOW, str(base)),), rest_port=None, grpc_port=0, poll_interval=0.2,
                          grpc_health=True)
    with ServingServer(config) as server:
        assert set(statuses(server.grpc_target).values()) == {"NOT_SERVING"}
        push_version(slow_model_dir, base, 1)
        end = time.monotonic() + 20
        while statuses(server.grpc_target)[""] != "SERVING" and time.monotonic() < end:
            time.sleep(0.1)
        assert server.manager.available_versions(SLOW) == [1]
        assert set(statuses(server.grpc_target).values()) == {"SERVING"}


def test_health_service_is_off_unless_enabled(slow_model_dir, tmp_path):
    push_version(slow_model_dir, tmp_path / SLOW, 1)
    config = ServerConfig(models=(ModelConfig(SLOW, str(tmp_path / SLOW)),), rest_port=None, grpc_port=0)
    with ServingServer(config) as server, pytest.raises(grpc.RpcError) as off:
        statuses(server.grpc_target)
    assert off.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_serve_flags_health_timeout_and_access_log(slow_model_dir, tmp_path):
    """`visionline serve` as a process with TF Serving's flag names: health SERVING, an access line per call."""
    push_version(slow_model_dir, tmp_path / SLOW, 1)
    flags = ("--enable-grpc-healthcheck-service", "--rest-api-timeout-in-ms", "5000")
    with ServerProcess(tmp_path / SLOW, tmp_path / "server.log", extra_args=flags) as server:
        assert statuses(server.grpc_target) == dict.fromkeys(SERVICES, "SERVING")
        assert requests.get(f"{server.rest_url}/v1/models/{SLOW}", timeout=10).ok
        server.stop()
        log = (tmp_path / "server.log").read_text()
    assert f"access api=rest method=GET path=/v1/models/{SLOW} model={SLOW} version=- status=200 code=OK" in log
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    config = cli.server_config(parser.parse_args(["serve", "--model-base", "/m", *flags, "--no-access-log"]))
    assert (config.grpc_health, config.rest_api_timeout_ms, config.access_log) == (True, 5000, False)
    default = cli.server_config(parser.parse_args(["serve", "--model-base", "/m"]))
    assert (default.grpc_health, default.rest_api_timeout_ms, default.access_log) == (False, 30000, True)
