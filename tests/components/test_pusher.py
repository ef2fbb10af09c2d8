"""Tests for components.pusher.executor: atomic pushes, no partial versions, no duplicate versions of one model."""

from __future__ import annotations

import json
import os

import pytest
from tfx.proto import pusher_pb2
from tfx.types import standard_artifacts
from tfx.utils import proto_utils

from components.pusher import executor as pusher


def _saved_model(path):
    (path / "variables").mkdir(parents=True)
    (path / "variables" / "variables.index").write_bytes(b"index")
    (path / "saved_model.pb").write_bytes(b"graph")
    return path


def test_push_goes_through_a_hidden_folder_and_records_its_source(tmp_path):
    model = _saved_model(tmp_path / "model")
    base = tmp_path / "serving" / "digits"
    path = pusher.push_atomically(str(model), str(base), "1700000000", "/artifacts/Trainer/model/7")
    assert path == str(base / "1700000000")
    assert sorted(os.listdir(base)) == ["1700000000"]  # the .partial staging folder is gone
    assert (base / "1700000000" / "saved_model.pb").read_bytes() == b"graph"
    record = json.loads((base / "1700000000" / pusher.PUSH_RECORD).read_text())
    assert record["model_uri"] == "/artifacts/Trainer/model/7"
    assert pusher.find_pushed_version(str(base), "/artifacts/Trainer/model/7") == "1700000000"
    assert pusher.find_pushed_version(str(base), "/artifacts/Trainer/model/8") is None
    with pytest.raises(FileExistsError):
        pusher.push_atomically(str(model), str(base), "1700000000", "x")


def _executor_inputs(tmp_path, blessed):
    model = standard_artifacts.Model()
    model.uri = str(tmp_path / "Trainer" / "model" / "5")
    if not (tmp_path / "Trainer").exists():
        _saved_model(tmp_path / "Trainer" / "model" / "5" / "Format-Serving")
    blessing = standard_artifacts.ModelBlessing()
    blessing.uri = str(tmp_path / "blessing")
    blessing.set_int_custom_property("blessed", int(blessed))
    pushed = standard_artifacts.PushedModel()
    pushed.uri = str(tmp_path / "pushed" / str(len(list(tmp_path.glob("pushed/*")))))
    destination = pusher_pb2.PushDestination(
        filesystem=pusher_pb2.PushDestination.Filesystem(base_directory=str(tmp_path / "serving" / "m")))
    return ({"model": [model], "model_blessing": [blessing]}, {"pushed_model": [pushed]},
            {"push_destination": proto_utils.proto_to_json(destination)})


def test_executor_pushes_a_blessed_model_once(tmp_path):
    inputs, outputs, props = _executor_inputs(tmp_path, blessed=True)
    pusher.Executor().Do(inputs, outputs, props)
    first = outputs["pushed_model"][0]
    assert first.get_int_custom_property("pushed") == 1
    versions = os.listdir(tmp_path / "serving" / "m")
    assert len(versions) == 1 and first.get_string_custom_property("pushed_version") == versions[0]
    inputs, outputs, props = _executor_inputs(tmp_path, blessed=True)  # same model blessed again
    pusher.Executor().Do(inputs, outputs, props)
    assert os.listdir(tmp_path / "serving" / "m") == versions
    assert outputs["pushed_model"][0].get_string_custom_property("pushed_version") == versions[0]


def test_executor_does_not_push_an_unblessed_model(tmp_path):
    inputs, outputs, props = _executor_inputs(tmp_path, blessed=False)
    pusher.Executor().Do(inputs, outputs, props)
    assert outputs["pushed_model"][0].get_int_custom_property("pushed") == 0
    assert not (tmp_path / "serving" / "m").exists()
