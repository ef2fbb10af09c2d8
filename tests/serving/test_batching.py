"""Server-side batching: merging, splitting, isolation of bad requests, and a batching server end to end."""

from __future__ import annotations

import base64
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np
import pytest
import requests
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from serving.errors import ServingError, invalid
from serving.server.config import BatchingConfig, ModelConfig, ServerConfig
from serving.server.model_server import ServingServer
from serving.server.prometheus import DEFAULT_PATH, read_page, sample_value
from serving.server.request_batching import Batcher
from tests.serving.helpers import MODEL


def doubling(calls: list[int], delay: float = 0.0):
    def run(inputs):
        x = inputs["x"]
        calls.append(len(x))
        time.sleep(delay)
        if np.any(x < 0):
            raise invalid("negative input")
        return {"y": x * 2, "n": np.full(len(x), len(x))}

    return run


def test_concurrent_requests_are_merged_and_split_back():
    calls: list[int] = []
    batcher = Batcher(doubling(calls, delay=0.05), BatchingConfig(max_batch_size=8, batch_timeout_micros=200_000))
    futures = [batcher.submit({"x": np.array([i, 100 + i])}) for i in range(4)]
    results = [f.result(timeout=10) for f in futures]
    batcher.close()
    for i, result in enumerate(results):
        np.testing.assert_array_equal(result["y"], [2 * i, 2 * (100 + i)])
    assert calls == [8]  # one model call for four requests of two rows
    assert batcher.stats.max_rows == 8 and batcher.stats.batches == 1


def test_one_open_batch_at_a_time_even_with_several_batch_threads():
    # TF Serving's scheduler semantics: idle batch threads do not each open a batch and split the arrivals
    calls: list[int] = []
    batcher = Batcher(doubling(calls, delay=0.05),
                      BatchingConfig(max_batch_size=8, batch_timeout_micros=500_000, num_batch_threads=4))
    futures = []
    for i in range(12):  # arrivals spread over ~60 ms, well within the timeout
        futures.append(batcher.submit({"x": np.array([i])}))
        time.sleep(0.005)
    for future in futures:
        future.result(timeout=10)
    batcher.close()
    assert calls[0] == 8 and sum(calls) == 12, calls


def test_batch_timeout_counts_from_the_first_request_s_arrival():
    calls: list[int] = []
    batcher = Batcher(doubling(calls), BatchingConfig(max_batch_size=8, batch_timeout_micros=300_000,
                                                      num_batch_threads=1))
    start = time.monotonic()
    batcher.submit({"x": np.array([1])}).result(timeout=10)  # alone: waits out the timeout, no longer
    waited = time.monotonic() - start
    batcher.close()
    assert calls == [1] and 0.25 < waited < 5, waited


def test_max_batch_size_and_incompatible_shapes_start_new_batches():
    calls: list[int] = []
    batcher = Batcher(doubling(calls), BatchingConfig(max_batch_size=3, batch_timeout_micros=100_000))
    futures = [batcher.submit({"x": np.array([i, i])}) for i in range(3)]  # 2 + 2 > 3
    futures.append(batcher.submit({"x": np.array([[1, 2]])}))  # other per-row shape
    futures.append(batcher.submit({"x": np.arange(5)}))  # larger than max_batch_size: runs alone
    for future in futures:
        future.result(timeout=10)
    batcher.close()
    assert max(calls) == 5 and all(c <= 3 for c in calls if c != 5)


def test_one_bad_request_does_not_fail_its_batch():
    calls: list[int] = []
    batcher = Batcher(doubling(calls, delay=0.02), BatchingConfig(max_batch_size=16, batch_timeout_micros=200_000))
    futures = [batcher.submit({"x": np.array([v])}) for v in (1, -1, 3)]
    assert futures[0].result(timeout=10)["y"].tolist() == [2]
    assert futures[2].result(timeout=10)["y"].tolist() == [6]
    with pytest.raises(ServingError, match="negative"):
        futures[1].result(timeout=10)
    batcher.close()


def test_close_drains_the_queue_and_refuses_new_work():
    calls: list[int] = []
    batcher = Batcher(doubling(calls, delay=0.01), BatchingConfig(max_batch_size=2, batch_timeout_micros=0,
                                                                  num_batch_threads=2))
    futures = [batcher.submit({"x": np.array([i])}) for i in range(10)]
    batcher.close()
    assert [f.result(timeout=10)["y"].tolist() for f in futures] == [[2 * i] for i in range(10)]
    with pytest.raises(ServingError) as info:
        batcher.submit({"x": np.array([1])})
    assert info.value.code == grpc.StatusCode.UNAVAILABLE


def test_full_queue_fails_fast_with_unavailable():
    gate = threading.Event()

    def blocked(inputs):
        gate.wait(10)
        return {"y": inputs["x"]}

    batcher = Batcher(blocked, BatchingConfig(max_batch_size=1, batch_timeout_micros=0, max_enqueued_batches=2))
    futures = [batcher.submit({"x": np.array([1])})]
    deadline = time.monotonic() + 10
    while batcher._queue.qsize() and time.monotonic() < deadline:  # until the worker holds the first request
        time.sleep(0.01)
    futures += [batcher.submit({"x": np.array([i])}) for i in range(2)]
    with pytest.raises(ServingError) as info:
        batcher.submit({"x": np.array([9])})
    assert info.value.code == grpc.StatusCode.UNAVAILABLE
    gate.set()
    for future in futures:
        future.result(timeout=10)
    batcher.close()


def test_batching_server_merges_concurrent_grpc_and_rest_requests(model_base, digit_pngs, in_process):
    config = ServerConfig(models=(ModelConfig(MODEL, str(model_base)),), rest_port=0, grpc_port=0,
                          batching=BatchingConfig(max_batch_size=16, batch_timeout_micros=50_000),
                          monitoring_path=DEFAULT_PATH)
    expected = in_process("serving_default", images=digit_pngs)
    with ServingServer(config) as server:
        channel = grpc.insecure_channel(server.grpc_target)
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)

        def grpc_call(i: int):
            request = predict_pb2.PredictRequest()
            request.model_spec.name = MODEL
            request.inputs["images"].CopyFrom(tf.make_tensor_proto([digit_pngs[i]], dtype=tf.string))
            return tf.make_ndarray(stub.Predict(request, timeout=60).outputs["probabilities"])[0]

        def rest_call(i: int):
            body = {"instances": [{"b64": base64.b64encode(digit_pngs[i]).decode()}]}
            response = requests.post(f"{server.rest_url}/v1/models/{MODEL}:predict", json=body, timeout=60)
            assert response.status_code == 200, response.text
            return np.float32(response.json()["predictions"][0]["probabilities"])

        with ThreadPoolExecutor(max_workers=20) as pool:
            grpc_results = list(pool.map(grpc_call, range(len(digit_pngs))))
            rest_results = list(pool.map(rest_call, range(len(digit_pngs))))
            bad = pool.submit(rest_call, 0), pool.submit(
                requests.post, f"{server.rest_url}/v1/models/{MODEL}:predict",
                json={"instances": [{"b64": base64.b64encode(b"not an image").decode()}]}, timeout=60)
            assert bad[1].result().status_code == 400
            bad[0].result()
        channel.close()
        for i in range(len(digit_pngs)):
            np.testing.assert_allclose(grpc_results[i], expected["probabilities"][i], rtol=1e-5, atol=1e-7)
            np.testing.assert_allclose(rest_results[i], expected["probabilities"][i], rtol=1e-5, atol=1e-7)
        with server.manager.acquire(MODEL) as servable:
            stats = servable.batch_stats()["serving_default"]
        assert stats.max_rows > 1, stats  # concurrent requests really were merged
        assert stats.requests >= 2 * len(digit_pngs)
        # the Prometheus page tells the same story (mean batch size = _sum / _count)
        page = read_page(requests.get(server.rest_url + DEFAULT_PATH, timeout=30).text)
        pool = {"thread_pool_name": f"batch-{MODEL}-1-serving_default"}
        size = ":tensorflow:serving:batching_session:processed_batch_size"
        assert sample_value(page, size + "_count", **pool) == stats.batches
        assert sample_value(page, size + "_sum", **pool) == stats.rows
        queuing = ":tensorflow:serving:batching_session:queuing_latency_count"
        assert sample_value(page, queuing, **pool) == stats.requests
        assert sample_value(page, ":tensorflow:serving:batching_session:wrapped_run_count") == stats.batches
