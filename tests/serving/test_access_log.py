"""Logs of the running server: one access-log line per REST request and gRPC call (switchable), long model names
cut in error bodies and log lines, no traceback for methods the server does not implement."""

from __future__ import annotations

import logging

import grpc
import numpy as np
import pytest
import requests
from tensorflow_serving.apis import inference_pb2, model_management_pb2, predict_pb2

from serving.server.config import ModelConfig, ServerConfig
from serving.server.model_server import ServingServer
from serving.server.tensors import array_to_tensor_proto
from tests.serving.helpers import SLOW, grpc_stubs, push_version

LONG = "m" * 5000


@pytest.fixture(scope="module")
def slow_base(slow_model_dir, tmp_path_factory):
    base = tmp_path_factory.mktemp("access-log") / SLOW
    push_version(slow_model_dir, base, 1)
    return base


def serve(base, **overrides) -> ServingServer:
    return ServingServer(ServerConfig(models=(ModelConfig(SLOW, str(base)),), rest_port=0, grpc_port=0, **overrides))


def predict_request(name: str = SLOW) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    request.inputs["seconds"].CopyFrom(array_to_tensor_proto(np.array([0.0], dtype=np.float32)))
    return request


def access_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "serving.access"]


def test_one_access_line_per_request_on_both_apis(slow_base, caplog):
    caplog.set_level(logging.INFO, logger="serving.access")
    with serve(slow_base) as server, grpc.insecure_channel(server.grpc_target) as channel:
        assert requests.post(f"{server.rest_url}/v1/models/{SLOW}:predict", json={"instances": [0.0]}).ok
        assert requests.get(f"{server.rest_url}/v1/models/{SLOW}/versions/7").status_code == 404
        grpc_stubs(channel).prediction.Predict(predict_request(), timeout=10)
    lines = access_lines(caplog)
    assert len(lines) == 3, lines
    rest_ok, rest_404, grpc_ok = lines
    assert rest_ok.startswith(f"access api=rest method=POST path=/v1/models/{SLOW}:predict model={SLOW} version=1 "
                              "status=200 code=OK ms=")
    assert f"model={SLOW} version=7 status=404 code=NOT_FOUND ms=" in rest_404
    assert grpc_ok.startswith(f"access api=grpc rpc=Predict model={SLOW} version=1 status=OK ms=")


def test_access_log_can_be_switched_off(slow_base, caplog):
    caplog.set_level(logging.INFO, logger="serving.access")
    with serve(slow_base, access_log=False) as server, grpc.insecure_channel(server.grpc_target) as channel:
        assert requests.post(f"{server.rest_url}/v1/models/{SLOW}:predict", json={"instances": [0.0]}).ok
        grpc_stubs(channel).prediction.Predict(predict_request(), timeout=10)
    assert access_lines(caplog) == []


def test_long_model_names_are_cut_in_error_bodies_and_log_lines(slow_base, caplog):
    caplog.set_level(logging.DEBUG)
    with serve(slow_base) as server, grpc.insecure_channel(server.grpc_target) as channel:
        answer = requests.post(f"{server.rest_url}/v1/models/{LONG}:predict", json={"instances": [0.0]})
        with pytest.raises(grpc.RpcError) as failed:
            grpc_stubs(channel).prediction.Predict(predict_request(LONG), timeout=10)
    assert answer.status_code == 400 and "m" * 199 + "…" in answer.json()["error"]
    assert len(answer.json()["error"]) < 400
    assert failed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "m" * 199 + "…" in failed.value.details() and len(failed.value.details()) < 400
    server_records = [r for r in caplog.records if r.name.startswith(("serving", "tornado", "grpc"))]
    assert any(r.name == "serving.access" for r in server_records)
    assert all(len(r.getMessage()) < 1000 for r in server_records), [r.getMessage()[:300] for r in server_records]


def test_unimplemented_methods_log_no_traceback(slow_base, caplog):
    caplog.set_level(logging.DEBUG)
    with serve(slow_base) as server, grpc.insecure_channel(server.grpc_target) as channel:
        stubs = grpc_stubs(channel)
        for call, request in ((stubs.prediction.MultiInference, inference_pb2.MultiInferenceRequest()),
                              (stubs.models.HandleReloadConfigRequest, model_management_pb2.ReloadConfigRequest())):
            with pytest.raises(grpc.RpcError) as failed:
                call(request, timeout=10)
            assert failed.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert not [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]
