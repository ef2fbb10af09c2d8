"""Short load test: 8 concurrent clients mixing REST and gRPC against a server *process* while a new version is
pushed atomically (as the Pusher does it): no failed request, no 5xx, no crash, both versions answer.

The long version (32 clients, 60 s, memory figures) is `make soak` (`tests/benchmarks/soak.py`).
"""

from __future__ import annotations

from tests.serving.helpers import MODEL, copy_version, push_version
from tests.serving.load import run_load
from tests.serving.process import ServerProcess


def test_mixed_rest_and_grpc_load_with_a_push_mid_test(tmp_path, serving_model_dir, digit_pngs):
    base = tmp_path / MODEL
    copy_version(serving_model_dir, base, 1)
    with ServerProcess(base, tmp_path / "server.log") as server:
        assert server.versions == [1]

        def push() -> int:
            push_version(serving_model_dir, base, 2)
            return 2

        result = run_load(server, digit_pngs, clients=8, seconds=5, push=push, push_after=2, until_new_version=120)
        alive = server.alive()
        log = server.log_tail()
        exit_code = server.stop()
    assert alive and result.server_alive, log
    assert result.failure_count == 0, (result.failures, log)
    assert result.server_errors == 0
    assert result.versions_seen == {1, 2}, log  # requests were answered by the old and then the new version
    assert result.expected_rejections > 0  # the deliberate non-images were answered 400 / INVALID_ARGUMENT
    kinds = {kind.split()[0] for kind in result.calls}
    assert kinds == {"REST", "gRPC"} and len(result.calls) >= 8, result.calls
    assert sorted(p.name for p in base.iterdir()) == ["1", "2"]  # no staging folder left behind
    assert exit_code == 0, log  # graceful shutdown after the load
