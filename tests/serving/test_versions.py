"""Version management: policies, settling, broken and half-written versions, and a hot swap under load."""

from __future__ import annotations

import base64
import logging
import shutil
import threading
import time
from pathlib import Path

import grpc
import pytest
import requests
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from serving.server.config import ModelConfig, ServerConfig, VersionPolicy
from serving.server.manager import AVAILABLE, END, UNLOADING, ModelManager
from serving.server.model_server import ServingServer
from tests.serving.helpers import MODEL, copy_version


class FakeServable:
    def __init__(self, name: str, version: int, path: str) -> None:
        self.name, self.version, self.path = name, version, path
        self.closed = False

    def close(self) -> None:
        self.closed = True


def fake_loader(name: str, version: int, path: str) -> FakeServable:
    if (Path(path) / "BROKEN").exists():
        raise ValueError("this version is broken")
    return FakeServable(name, version, path)


def make_version(base: Path, version: int, broken: bool = False) -> Path:
    path = base / str(version)
    (path / "variables").mkdir(parents=True)
    (path / "saved_model.pb").write_bytes(b"pb")
    if broken:
        (path / "BROKEN").write_text("x")
    return path


def started_manager(base: Path, *versions: int, policy: VersionPolicy | None = None) -> ModelManager:
    """A manager (fake loader, no watcher polls: tests call `poll()`) over `base`, started after `versions` were
    made there."""
    for version in versions:
        make_version(base, version)
    manager = ModelManager([ModelConfig(MODEL, str(base), policy or VersionPolicy())], poll_interval=3600,
                           loader=fake_loader)
    manager.start()
    return manager


def settle(manager: ModelManager) -> None:
    """Two scans: a new or changed version is seen, then (unchanged) it has settled and is loaded."""
    manager.poll()
    manager.poll()


def states(manager: ModelManager) -> dict[int, str]:
    return {s.version: s.state for s in manager.status(MODEL)}


@pytest.mark.parametrize(("policy", "expected"), [
    (VersionPolicy("latest", num_versions=1), [3]),
    (VersionPolicy("latest", num_versions=2), [2, 3]),
    (VersionPolicy("all"), [1, 2, 3]),
    (VersionPolicy("specific", versions=(1, 3, 7)), [1, 3]),
])
def test_version_policies(tmp_path, policy, expected):
    manager = started_manager(tmp_path, 1, 2, 3, policy=policy)
    try:
        assert manager.available_versions(MODEL) == expected
        with manager.acquire(MODEL) as servable:
            assert servable.version == max(expected)
        with manager.acquire(MODEL, expected[0]) as servable:
            assert servable.version == expected[0]
    finally:
        manager.stop()


def test_new_version_loads_after_settling_and_old_one_is_unloaded(tmp_path):
    manager = started_manager(tmp_path, 1)
    with manager.acquire(MODEL) as first:
        pass
    make_version(tmp_path, 2)
    manager.poll()  # seen once: may still be being written
    assert manager.available_versions(MODEL) == [1]
    manager.poll()  # unchanged since the last scan: load, then retire version 1
    assert manager.available_versions(MODEL) == [2]
    assert states(manager) == {2: AVAILABLE, 1: END}
    assert first.closed
    manager.stop()


def test_in_flight_request_keeps_a_retired_version_alive(tmp_path):
    manager = started_manager(tmp_path, 1)
    with manager.acquire(MODEL) as held:
        make_version(tmp_path, 2)
        settle(manager)
        assert manager.available_versions(MODEL) == [2]  # new requests already go to version 2 …
        assert states(manager)[1] == UNLOADING  # … but version 1 waits for this request
        assert not held.closed
    deadline = time.monotonic() + 5
    while not held.closed and time.monotonic() < deadline:
        time.sleep(0.01)
    assert held.closed and states(manager)[1] == END
    manager.stop()


def test_incomplete_and_broken_versions_are_skipped_with_a_reason(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="serving.server.manager")
    make_version(tmp_path, 1)
    (tmp_path / "2").mkdir()  # half-written: nothing yet
    (tmp_path / "3" / "variables").mkdir(parents=True)  # half-written: no saved_model.pb
    make_version(tmp_path, 4, broken=True)
    (tmp_path / "5.tmp").mkdir()  # not a version directory
    (tmp_path / "notes.txt").write_text("ignored")
    manager = started_manager(tmp_path)
    assert manager.available_versions(MODEL) == [1]  # latest *good* version keeps serving
    status = {s.version: s for s in manager.status(MODEL)}
    assert status[4].state == END and "this version is broken" in status[4].error_message
    assert status[4].error_code != grpc.StatusCode.OK
    assert 2 not in status and 3 not in status
    text = caplog.text
    assert "skipping version 2" in text and "no saved_model.pb" in text
    assert "skipping version 3" in text
    assert "version 4" in text and "failed to load" in text
    # A failed version is not retried until its files change; then it is.
    manager.poll()
    assert manager.available_versions(MODEL) == [1]
    (tmp_path / "4" / "BROKEN").unlink()
    settle(manager)
    assert manager.available_versions(MODEL) == [4]
    manager.stop()


def test_missing_base_path_is_watched_not_fatal(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="serving.server.manager")
    base = tmp_path / "not-yet"
    manager = started_manager(base)
    assert manager.available_versions(MODEL) == []
    assert "does not exist" in caplog.text
    make_version(base, 5)
    settle(manager)
    assert manager.available_versions(MODEL) == [5]
    manager.stop()


def test_deleted_version_is_unloaded(tmp_path):
    manager = started_manager(tmp_path, 1, 2, policy=VersionPolicy("all"))
    shutil.rmtree(tmp_path / "2")
    manager.poll()
    assert manager.available_versions(MODEL) == [1]
    manager.stop()


def test_real_broken_savedmodel_does_not_crash_the_server(tmp_path, serving_model_dir, caplog):
    """A real version dir with a corrupt saved_model.pb next to a good version."""
    caplog.set_level(logging.WARNING, logger="serving.server.manager")
    copy_version(serving_model_dir, tmp_path, 1)
    broken = copy_version(serving_model_dir, tmp_path, 2)
    (broken / "saved_model.pb").write_bytes(b"\x00garbage, not a protobuf")
    config = ServerConfig(models=(ModelConfig(MODEL, str(tmp_path)),), rest_port=0, grpc_port=None)
    with ServingServer(config) as server:
        statuses = requests.get(f"{server.rest_url}/v1/models/{MODEL}", timeout=10).json()["model_version_status"]
        by_version = {s["version"]: s for s in statuses}
        assert by_version["1"]["state"] == "AVAILABLE"
        assert by_version["2"]["state"] == "END" and by_version["2"]["status"]["error_code"] != "OK"
        assert by_version["2"]["status"]["error_message"].startswith("loading failed")
        assert "version 2" in caplog.text and "failed to load" in caplog.text


def test_hot_reload_under_load_drops_nothing(tmp_path, serving_model_dir, digit_pngs):
    """Clients loop on REST and gRPC while version 2 is copied in; every request must succeed."""
    copy_version(serving_model_dir, tmp_path, 1)
    config = ServerConfig(models=(ModelConfig(MODEL, str(tmp_path)),), rest_port=0, grpc_port=0, poll_interval=0.2)
    body = {"instances": [{"b64": base64.b64encode(digit_pngs[0]).decode()}]}
    with ServingServer(config) as server:
        stop = threading.Event()
        failures: list[str] = []
        versions_seen: set[int] = set()
        counts = {"rest": 0, "grpc": 0}

        def rest_loop() -> None:
            session = requests.Session()
            while not stop.is_set():
                try:
                    response = session.post(f"{server.rest_url}/v1/models/{MODEL}:predict", json=body, timeout=30)
                    if response.status_code != 200:
                        failures.append(f"REST {response.status_code}: {response.text[:200]}")
                except requests.RequestException as err:
                    failures.append(f"REST {err}")
                counts["rest"] += 1

        def grpc_loop() -> None:
            channel = grpc.insecure_channel(server.grpc_target)
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            request = predict_pb2.PredictRequest()
            request.model_spec.name = MODEL
            request.inputs["images"].string_val.append(digit_pngs[0])
            request.inputs["images"].dtype = 7
            request.inputs["images"].tensor_shape.dim.add(size=1)
            while not stop.is_set():
                try:
                    versions_seen.add(stub.Predict(request, timeout=30).model_spec.version.value)
                except grpc.RpcError as err:
                    failures.append(f"gRPC {err.code().name}: {err.details()}")
                counts["grpc"] += 1
            channel.close()

        threads = [threading.Thread(target=rest_loop), threading.Thread(target=grpc_loop)]
        for thread in threads:
            thread.start()
        try:
            time.sleep(0.5)
            copy_version(serving_model_dir, tmp_path, 2)  # a plain, non-atomic copy
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                states_now = {s.version: s.state for s in server.manager.status(MODEL)}
                if states_now.get(2) == AVAILABLE and states_now.get(1) == END and 2 in versions_seen:
                    break
                time.sleep(0.1)
            time.sleep(0.5)  # keep the load on for a moment after the swap
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=60)
        assert failures == []
        assert versions_seen == {1, 2}
        assert server.manager.available_versions(MODEL) == [2]
        assert {s.version: s.state for s in server.manager.status(MODEL)} == {2: AVAILABLE, 1: END}
        assert counts["rest"] > 10 and counts["grpc"] > 10, counts
