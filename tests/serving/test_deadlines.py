"""Deadlines and timeouts against the running server: work for a request whose deadline passed or whose client went
away is not computed (model calls counted by the server's own Prometheus `runtime_latency`).

The model is a real SavedModel whose `serving_default` sleeps `max(seconds)` (`build_slow_model`), so "the server is
busy" is exact: with one batch thread (or one REST worker) a 1 s request holds it while others queue.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import numpy as np
import pytest
import requests
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2

from serving.server.config import BatchingConfig, ModelConfig, ServerConfig
from serving.server.model_server import ServingServer
from serving.server.prometheus import read_page, sample_value
from serving.server.tensors import array_to_tensor_proto
from tests.serving.helpers import SLOW, grpc_stubs, push_version


@pytest.fixture(scope="module")
def slow_base(slow_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("slow") / SLOW
    push_version(slow_model_dir, base, 1)
    return base


def model_calls(server: ServingServer) -> float:
    page = read_page(server.metrics.page().decode())
    return sample_value(page, ":tensorflow:serving:runtime_latency_count", model_name=SLOW, API="Predict",
                        runtime="TF2")


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def grpc_request(seconds: float) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = SLOW
    request.inputs["seconds"].CopyFrom(array_to_tensor_proto(np.array([seconds], dtype=np.float32)))
    return request


def config(base: Path, **overrides: object) -> ServerConfig:
    return ServerConfig(models=(ModelConfig(SLOW, str(base)),), rest_port=0, grpc_port=0, poll_interval=0.3,
                        **overrides)


def test_grpc_call_past_its_deadline_is_dropped_from_the_batch_queue(slow_base):
    batching = BatchingConfig(max_batch_size=4, batch_timeout_micros=1000, num_batch_threads=1)
    with ServingServer(config(slow_base, batching=batching)) as server, \
            grpc.insecure_channel(server.grpc_target) as channel:
        stub = grpc_stubs(channel).prediction
        busy = stub.Predict.future(grpc_request(1.0))  # holds the only batch thread for 1 s
        assert wait_until(lambda: server.manager.available_versions(SLOW) and busy.running())
        time.sleep(0.2)
        with pytest.raises(grpc.RpcError) as late:
            stub.Predict(grpc_request(0.0), timeout=0.2)
        assert late.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert tf.make_ndarray(busy.result(timeout=10).outputs["doubled"]).tolist() == [2.0]
        with server.manager.acquire(SLOW) as servable:
            stats = servable.batch_stats()["serving_default"]
        time.sleep(0.5)  # the batch thread is free again: it takes the expired request off the queue
        assert model_calls(server) == 1, "the server computed for a caller whose deadline had passed"
        assert stats.requests == 1 and stats.dropped == 1


def test_rest_timeout_answers_504_and_drops_the_queued_call(slow_base):
    with ServingServer(config(slow_base, rest_api_timeout_ms=400, workers=1)) as server:
        url = f"{server.rest_url}/v1/models/{SLOW}:predict"
        answers: dict[str, requests.Response] = {}

        def post(key: str, seconds: float) -> None:
            answers[key] = requests.post(url, json={"instances": [seconds]}, timeout=30)

        busy = threading.Thread(target=post, args=("busy", 1.5))
        busy.start()  # holds the only REST worker for 1.5 s (the model call is not interrupted)
        time.sleep(0.2)
        post("queued", 0.0)
        busy.join()
        for key in ("busy", "queued"):
            assert answers[key].status_code == 504, answers[key].text
            assert "Deadline exceeded" in answers[key].json()["error"]
        assert wait_until(lambda: model_calls(server) >= 1)
        time.sleep(0.5)
        assert model_calls(server) == 1, "the timed-out request waiting for a worker was still computed"
        ok = requests.post(url, json={"instances": [0.0]}, timeout=30)
        assert ok.status_code == 200 and ok.json() == {"predictions": [0.0]}


def test_rest_client_that_disconnects_is_not_computed(slow_base):
    batching = BatchingConfig(max_batch_size=4, batch_timeout_micros=1000, num_batch_threads=1)
    with ServingServer(config(slow_base, batching=batching)) as server:
        url = f"{server.rest_url}/v1/models/{SLOW}:predict"
        busy = threading.Thread(target=requests.post, args=(url,), kwargs={"json": {"instances": [1.0]}})
        busy.start()
        time.sleep(0.2)
        body = json.dumps({"instances": [0.0]}).encode()
        with socket.create_connection(("127.0.0.1", server.rest_port)) as sock:
            sock.sendall(f"POST /v1/models/{SLOW}:predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
            time.sleep(0.2)  # queued behind the busy request, then the client gives up
        busy.join()
        assert wait_until(lambda: model_calls(server) >= 1)
        time.sleep(0.5)
        assert model_calls(server) == 1, "the server computed for a client that had closed its connection"
