"""Fast fuzzing of the REST and gRPC APIs with hypothesis (a few hundred derandomized cases, a few seconds each)
against the server process: never a 5xx / UNKNOWN / INTERNAL, never a crash, still serving afterwards.

The long version (thousands of cases, random seeds) runs in `make soak` (`tests/benchmarks/soak.py`). The bugs
these searches found have their own regression tests in `test_security.py`.
"""

from __future__ import annotations

from tests.serving import fuzz


def test_rest_fuzz_never_answers_5xx(server_process, digit_pngs):
    assert fuzz.fuzz_rest(server_process, digit_pngs, max_examples=200) >= 200
    fuzz.check_still_serving(server_process, digit_pngs[0])


def test_raw_http_fuzz_never_answers_5xx(server_process, digit_pngs):
    assert fuzz.fuzz_raw_http(server_process, max_examples=100) >= 100
    fuzz.check_still_serving(server_process, digit_pngs[0])


def test_grpc_malformed_protobuf_bytes_are_invalid_argument(server_process, digit_pngs):
    assert fuzz.fuzz_grpc_bytes(server_process, digit_pngs, max_examples=150) >= 150
    fuzz.check_still_serving(server_process, digit_pngs[0])


def test_grpc_bad_tensors_names_and_fields_are_client_errors(server_process, digit_pngs):
    assert fuzz.fuzz_grpc_messages(server_process, digit_pngs, max_examples=150) >= 150
    fuzz.check_still_serving(server_process, digit_pngs[0])
