"""bench-serve's h2load load generator against the real local server: every request counted, failures seen.

h2load only sees HTTP statuses; a failed gRPC call is an HTTP 200 with the error in its trailers, so these tests
prove the byte-count check catches it (a benchmark row with silent errors would report a fast, wrong server).
"""

from __future__ import annotations

import json

import grpc
import pytest

from serving.clients.predictors import predict_body, predict_request
from tests.benchmarks import h2load
from tests.serving.helpers import MODEL

pytestmark = pytest.mark.skipif(h2load.h2load_binary() is None,
                                reason="h2load not installed (Debian nghttp2-client: `make system-deps`)")


def _rest_body(png: bytes) -> bytes:
    return json.dumps(predict_body([png])).encode()


def test_h2load_rounds_count_every_rest_and_grpc_request(server, digit_pngs: list[bytes]) -> None:
    png = digit_pngs[0]
    rest = h2load.run(f"{server.rest_url}/v1/models/{MODEL}:predict", _rest_body(png), 4, 12, grpc=False)
    assert (rest.succeeded, rest.errors, len(rest.latencies)) == (12, 0, 12)
    assert rest.seconds > 0 and min(rest.latencies) > 0

    message = predict_request([png], MODEL).SerializeToString()
    expected = h2load.grpc_response_frame_bytes(server.grpc_target, message)
    rpc = h2load.run(f"http://{server.grpc_target}{h2load.GRPC_PREDICT_PATH}", h2load.grpc_frame(message), 4, 12,
                     grpc=True, expected_response_bytes=expected)
    assert (rpc.succeeded, rpc.errors, len(rpc.latencies)) == (12, 0, 12)
    assert rpc.data_bytes == 12 * expected


def test_h2load_counts_failed_calls(server, digit_pngs: list[bytes]) -> None:
    png = digit_pngs[0]
    rest = h2load.run(f"{server.rest_url}/v1/models/no_such_model:predict", _rest_body(png), 2, 6, grpc=False)
    assert (rest.succeeded, rest.errors) == (0, 6)

    good = predict_request([png], MODEL).SerializeToString()
    expected = h2load.grpc_response_frame_bytes(server.grpc_target, good)
    bad = predict_request([png], "no_such_model").SerializeToString()
    with pytest.raises(grpc.RpcError):
        h2load.grpc_response_frame_bytes(server.grpc_target, bad)
    rpc = h2load.run(f"http://{server.grpc_target}{h2load.GRPC_PREDICT_PATH}", h2load.grpc_frame(bad), 2, 6,
                     grpc=True, expected_response_bytes=expected)
    assert (rpc.succeeded, rpc.errors, rpc.data_bytes) == (0, 6, 0)


def test_h2load_rest_gets_without_a_body(server) -> None:
    # bench-serve's no-model REST row: GET the model status, the cheapest request the REST API answers.
    status = h2load.run(f"{server.rest_url}/v1/models/{MODEL}", None, 2, 8, grpc=False)
    assert (status.succeeded, status.errors, len(status.latencies)) == (8, 0, 8)
    assert status.data_bytes > 0
    missing = h2load.run(f"{server.rest_url}/v1/models/no_such_model", None, 2, 4, grpc=False)
    assert (missing.succeeded, missing.errors) == (0, 4)
    with pytest.raises(ValueError, match="gRPC rounds need a body"):
        h2load.run(f"http://{server.grpc_target}{h2load.GRPC_PREDICT_PATH}", None, 1, 1, grpc=True,
                   expected_response_bytes=10)
