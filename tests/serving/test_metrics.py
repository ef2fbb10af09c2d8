"""Prometheus metrics (TF Serving's names) of the local server: the monitoring config, the page, and what the
REST and gRPC APIs and the batcher record in it."""

from __future__ import annotations

import base64
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
import requests
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from serving.server.config import BatchingConfig, ModelConfig, ServerConfig
from serving.server.prometheus import DEFAULT_PATH, ServingMetrics, parse_monitoring_config, read_page, sample_value
from serving.server.request_batching import Batcher
from tests.serving.helpers import MODEL, classify_request

SERVING = Path(__file__).resolve().parents[2] / "serving"
REQUESTS = ":tensorflow:serving:request_count"
LATENCY = ":tensorflow:serving:request_latency"
RUNTIME = ":tensorflow:serving:runtime_latency"


def scrape(rest_url: str) -> dict[tuple[str, frozenset], float]:
    response = requests.get(rest_url + DEFAULT_PATH, timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/plain")
    return read_page(response.text)


# ----- monitoring config ------------------------------------------------------------------------------------------
def test_shipped_monitoring_config_enables_the_default_path():
    assert parse_monitoring_config((SERVING / "monitoring.config").read_text()) == DEFAULT_PATH


@pytest.mark.parametrize("text, expected", [
    ('prometheus_config { enable: true path: "/metrics" }', "/metrics"),
    ("prometheus_config { enable: true }", DEFAULT_PATH),
    ('prometheus_config { enable: false path: "/metrics" }', None),
    ("", None),
])
def test_monitoring_config_variants(text, expected):
    assert parse_monitoring_config(text) == expected


def test_monitoring_config_errors_name_the_field():
    with pytest.raises(ValueError, match="monitoring config: .*enabl"):
        parse_monitoring_config("prometheus_config { enabl: true }")


@pytest.mark.parametrize("path", ["/", "/v1/models/visionline", "metrics"])
def test_monitoring_path_may_not_clash_with_the_api(path):
    with pytest.raises(ValueError, match="monitoring_path"):
        ServerConfig(models=(ModelConfig(MODEL, "/tmp/x"),), monitoring_path=path)


# ----- the page -----------------------------------------------------------------------------------------------
def test_page_uses_tf_serving_names_and_keeps_unknown_models_out_of_the_labels():
    metrics = ServingMetrics([MODEL])
    metrics.record_request(MODEL, "Predict", "REST", "OK", 0.004)
    metrics.record_request(MODEL, "Predict", "GRPC", "INVALID_ARGUMENT", 0.001)
    metrics.record_request("no-such-model", "Predict", "GRPC", "NOT_FOUND", 0.001)
    page = metrics.page().decode()
    assert "# TYPE :tensorflow:serving:request_count counter" in page
    assert "_total" not in page and "_created" not in page  # as TF Serving's page
    parsed = read_page(page)
    assert sample_value(parsed, REQUESTS, model_name=MODEL, status="OK") == 1
    assert sample_value(parsed, REQUESTS, model_name=MODEL, status="INVALID_ARGUMENT") == 1
    assert sample_value(parsed, REQUESTS, model_name="", status="NOT_FOUND") == 1
    assert not any("no-such-model" in str(key) for key in parsed)
    # latency only for the successful request, in microseconds
    assert sample_value(parsed, LATENCY + "_count", model_name=MODEL, API="Predict", entrypoint="REST") == 1
    rest_sum = sample_value(parsed, LATENCY + "_sum", model_name=MODEL, API="Predict", entrypoint="REST")
    assert rest_sum == pytest.approx(4000)
    assert sample_value(parsed, LATENCY + "_count", model_name=MODEL, API="Predict", entrypoint="GRPC") == 0


def test_batcher_records_batch_size_queuing_and_model_calls():
    metrics = ServingMetrics([MODEL])

    def run(inputs):
        time.sleep(0.05)
        return {"y": inputs["x"] * 2}

    batcher = Batcher(run, BatchingConfig(max_batch_size=8, batch_timeout_micros=200_000), name="pool",
                      metrics=metrics)
    futures = [batcher.submit({"x": np.array([i, i])}) for i in range(4)]
    for future in futures:
        future.result(timeout=10)
    batcher.close()
    parsed = read_page(metrics.page().decode())
    assert sample_value(parsed, ":tensorflow:serving:batching_session:wrapped_run_count") == batcher.stats.batches == 1
    size = ":tensorflow:serving:batching_session:processed_batch_size"
    assert sample_value(parsed, size + "_count", thread_pool_name="pool") == 1
    assert sample_value(parsed, size + "_sum", thread_pool_name="pool") == 8
    assert sample_value(parsed, size + "_bucket", thread_pool_name="pool", le="4.0") == 0
    assert sample_value(parsed, size + "_bucket", thread_pool_name="pool", le="8.0") == 1
    queuing = ":tensorflow:serving:batching_session:queuing_latency"
    assert sample_value(parsed, queuing + "_count", thread_pool_name="pool") == 4


# ----- the servers --------------------------------------------------------------------------------------------
def test_rest_and_grpc_requests_are_counted_by_status(server_process, digit_pngs):
    before = scrape(server_process.rest_url)
    url = f"{server_process.rest_url}/v1/models/{MODEL}:predict"
    ok = requests.post(url, json={"instances": [{"b64": base64.b64encode(p).decode()} for p in digit_pngs[:2]]},
                       timeout=60)
    assert ok.status_code == 200, ok.text
    bad = requests.post(url, json={"instances": [{"b64": "!!not base64!!"}]}, timeout=60)
    assert bad.status_code == 400
    with grpc.insecure_channel(server_process.grpc_target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        request = predict_pb2.PredictRequest()
        request.model_spec.name = MODEL
        request.inputs["images"].CopyFrom(tf.make_tensor_proto([digit_pngs[0]], dtype=tf.string))
        stub.Predict(request, timeout=60)
        request.model_spec.name = "no-such-model"
        with pytest.raises(grpc.RpcError) as missing:
            stub.Predict(request, timeout=60)
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
        stub.Classify(classify_request(digit_pngs[1:2]), timeout=60)
    after = scrape(server_process.rest_url)

    def delta(name: str, **labels: str) -> float:
        return sample_value(after, name, **labels) - sample_value(before, name, **labels)

    assert delta(REQUESTS, model_name=MODEL, status="OK") == 3
    assert delta(REQUESTS, model_name=MODEL, status="INVALID_ARGUMENT") == 1
    assert delta(REQUESTS, model_name="", status="NOT_FOUND") == 1
    for api, entrypoint in (("Predict", "REST"), ("Predict", "GRPC"), ("Classify", "GRPC")):
        assert delta(LATENCY + "_count", model_name=MODEL, API=api, entrypoint=entrypoint) == 1, (api, entrypoint)
        assert delta(LATENCY + "_sum", model_name=MODEL, API=api, entrypoint=entrypoint) > 0
    # the model ran for the two successful predicts and the classify; the bad request never reached it
    assert delta(RUNTIME + "_count", model_name=MODEL, API="Predict", runtime="TF2") == 2
    assert delta(RUNTIME + "_count", model_name=MODEL, API="Classify", runtime="TF2") == 1
    # no batching configured: nothing recorded there
    assert sample_value(after, ":tensorflow:serving:batching_session:wrapped_run_count") == 0


def test_metrics_page_is_off_unless_configured(server):
    assert server.config.monitoring_path is None
    response = requests.get(server.rest_url + DEFAULT_PATH, timeout=30)
    assert response.status_code == 404 and "error" in response.json()
