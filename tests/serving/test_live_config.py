"""Many models and a live config: `--model-config-file` with several models and
`--model-config-file-poll-wait-seconds` (TF Serving's flags), against the server running as its own process:
models added to the file are loaded, models removed unloaded, a bad edit is logged and the previous config kept."""

from __future__ import annotations

import base64
import time
from pathlib import Path

import grpc
import pytest
import requests
from tensorflow_serving.apis import get_model_status_pb2

from serving.server.config import ModelConfig, VersionPolicy, reload_models_config
from serving.server.config_watcher import ConfigFileWatcher
from serving.server.manager import ModelManager
from tests.serving.helpers import grpc_stubs, push_version
from tests.serving.process import ServerProcess


def _config(*models: tuple[str, Path]) -> str:
    entries = "".join(f'  config {{\n    name: "{name}"\n    base_path: "{base}"\n    model_platform: "tensorflow"\n'
                      "  }\n" for name, base in models)
    return f"model_config_list {{\n{entries}}}\n"


def _wait_for(check, timeout: float = 90.0):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.25)


def _predict(url: str, model: str, image: bytes) -> requests.Response:
    body = {"instances": [{"b64": base64.b64encode(image).decode()}]}
    return requests.post(f"{url}/v1/models/{model}:predict", json=body, timeout=60)


def test_models_added_to_and_removed_from_the_config_file_are_loaded_and_unloaded_without_a_restart(
        serving_model_dir, digit_pngs, tmp_path):
    first, second = tmp_path / "models" / "digits", tmp_path / "models" / "letters"
    push_version(serving_model_dir, first, 1)
    push_version(serving_model_dir, second, 7)
    config = tmp_path / "models.config"
    config.write_text(_config(("digits", first)))
    args = ("--model-config-file", str(config), "--model-config-file-poll-wait-seconds", "0.5")
    with ServerProcess(None, tmp_path / "server.log", extra_args=args) as server:
        assert _predict(server.rest_url, "digits", digit_pngs[0]).status_code == 200
        assert _predict(server.rest_url, "letters", digit_pngs[0]).status_code == 404

        config.write_text(_config(("digits", first), ("letters", second)))  # add a second model
        reply = _wait_for(lambda: (r := _predict(server.rest_url, "letters", digit_pngs[0])).status_code == 200 and r)
        assert len(reply.json()["predictions"]) == 1
        with grpc.insecure_channel(server.grpc_target) as channel:
            status = grpc_stubs(channel).models.GetModelStatus(
                get_model_status_pb2.GetModelStatusRequest(model_spec={"name": "letters"}), timeout=30)
            assert [(v.version, v.state) for v in status.model_version_status] == [(7, 30)]  # AVAILABLE

        config.write_text("model_config_list { config { name: 'digits' base_path: ")  # a bad edit (truncated)
        time.sleep(2.0)
        assert _predict(server.rest_url, "letters", digit_pngs[0]).status_code == 200  # previous config kept
        assert "keeping the previous configuration" in server.log_tail(200)

        config.write_text(_config(("letters", second)))  # remove the first model
        _wait_for(lambda: _predict(server.rest_url, "digits", digit_pngs[0]).status_code == 404)
        with grpc.insecure_channel(server.grpc_target) as channel:
            with pytest.raises(grpc.RpcError) as caught:
                grpc_stubs(channel).models.GetModelStatus(
                    get_model_status_pb2.GetModelStatusRequest(model_spec={"name": "digits"}), timeout=30)
            assert caught.value.code() == grpc.StatusCode.NOT_FOUND
        assert _predict(server.rest_url, "letters", digit_pngs[0]).status_code == 200
        assert server.alive()


class _Loaded:
    def __init__(self, name: str, version: int, path: str) -> None:
        self.name, self.version, self.path, self.closed = name, version, path, False

    def close(self) -> None:
        self.closed = True


def _version(base: Path, version: int) -> None:
    (base / str(version) / "variables").mkdir(parents=True)
    (base / str(version) / "saved_model.pb").write_bytes(b"pb")


def test_reconfigure_applies_policy_and_base_path_changes_and_bad_files_keep_the_config(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for version in (1, 2):
        _version(a, version)
    _version(b, 5)
    manager = ModelManager([ModelConfig("m", str(a))], poll_interval=3600, loader=_Loaded)
    manager.start()
    try:
        assert manager.available_versions("m") == [2]
        changes = manager.reconfigure([ModelConfig("m", str(a), VersionPolicy("all"))])
        assert changes == {"added": [], "removed": [], "changed": ["m"]}
        assert manager.available_versions("m") == [1, 2]
        manager.reconfigure([ModelConfig("m", str(b))])  # a new base path: served from there
        assert manager.available_versions("m") == [5]
        with pytest.raises(ValueError, match="duplicated"):
            manager.reconfigure([ModelConfig("m", str(a)), ModelConfig("m", str(b))])
        assert manager.available_versions("m") == [5]
        # a re-read config's version labels are assigned first, under TF Serving's rule: one naming a version that
        # is not loaded rejects the whole config (nothing changes); one naming a loaded version is applied
        with pytest.raises(ValueError, match="version 9 of model m, which is not currently available"):
            manager.reconfigure([ModelConfig("m", str(a), version_labels=(("canary", 9),))])
        assert manager.available_versions("m") == [5]
        manager.reconfigure([ModelConfig("m", str(b), version_labels=(("stable", 5),))])
        assert manager.resolve_version("m", None, "stable") == 5

        config = tmp_path / "models.config"
        config.write_text(_config(("m", b), ("n", a)))
        watcher = ConfigFileWatcher(manager, str(config), 3600, (ModelConfig("m", str(b)),))
        assert watcher.check() and manager.model_names() == ["m", "n"] and manager.is_ready()
        assert not watcher.check()  # unchanged: nothing to do
        for bad, message in (("model_config_list { config { name: 'x' }", "cannot read the model config"),
                             (_config(("m", b), ("m", a)), "duplicated"),
                             (_config(("../etc", a)), "invalid model name")):
            config.write_text(bad)
            with pytest.raises(ValueError, match=message):
                reload_models_config(config)
            assert not watcher.check() and manager.model_names() == ["m", "n"]
        config.unlink()
        assert not watcher.check() and manager.model_names() == ["m", "n"]
        config.write_text("model_config_list {}\n")  # an empty list is valid: everything is unloaded
        assert watcher.check() and manager.model_names() == [] and not manager.is_ready()
    finally:
        manager.stop()
