"""Tests for components.pusher: TF Serving's directory layout (`serving_layout`), and the executor's atomic pushes (no
partial versions, no duplicate versions of one model)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tfx.proto import pusher_pb2
from tfx.types import standard_artifacts
from tfx.utils import proto_utils

from components import warmup
from components.pusher import executor as pusher
from components.pusher import serving_layout


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
    record = json.loads((base / "1700000000" / serving_layout.PUSH_RECORD).read_text())
    assert record["model_uri"] == "/artifacts/Trainer/model/7"
    assert serving_layout.find_pushed_version(str(base), "/artifacts/Trainer/model/7") == "1700000000"
    assert serving_layout.find_pushed_version(str(base), "/artifacts/Trainer/model/8") is None
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


# ----- the layout -------------------------------------------------------------------------------------------------
def test_version_names_are_int64_directory_names():
    assert all(serving_layout.is_version_name(n) for n in ("0", "1", "1700000000", "9" * 18))
    assert not any(serving_layout.is_version_name(n) for n in ("", "-1", "1.5", "v1", ".1.partial", "9" * 19,
                                                                "١٢", "1 ", "01a"))
    assert os.path.basename(serving_layout.staging_dir("/b", 7)) == ".7.partial"
    assert not serving_layout.is_version_name(os.path.basename(serving_layout.staging_dir("/b", 7)))


def test_complete_versions_are_found_and_resolved(tmp_path):
    _saved_model(tmp_path / "3")
    _saved_model(tmp_path / "12")
    (tmp_path / "20").mkdir()  # half-written: nothing yet
    (tmp_path / "21" / "variables").mkdir(parents=True)  # half-written: no saved_model.pb
    (tmp_path / "22").mkdir()
    (tmp_path / "22" / "saved_model.pbtxt").write_text("")  # text SavedModel, but no variables/ yet
    _saved_model(tmp_path / ".30.partial")
    (tmp_path / "40").write_text("a file, not a directory")
    assert [v for v, _p in serving_layout.version_dirs(str(tmp_path))] == [3, 12, 20, 21, 22]
    assert serving_layout.incomplete_reason(str(tmp_path / "20")) == "no saved_model.pb yet"
    assert serving_layout.incomplete_reason(str(tmp_path / "21")) == "no saved_model.pb yet"
    assert serving_layout.incomplete_reason(str(tmp_path / "22")) == "no variables/ directory yet"
    assert serving_layout.saved_model_file(str(tmp_path / "22")) == str(tmp_path / "22" / "saved_model.pbtxt")
    assert serving_layout.incomplete_reason(str(tmp_path / "12")) is None
    assert serving_layout.resolve_version_dir(str(tmp_path)) == str(tmp_path / "12")  # newest complete, numerically
    assert serving_layout.resolve_version_dir(str(tmp_path / "3")) == str(tmp_path / "3")  # a version dir itself
    with pytest.raises(FileNotFoundError, match="does not exist"):
        serving_layout.resolve_version_dir(str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match="no complete SavedModel version directory"):
        serving_layout.resolve_version_dir(str(tmp_path / "21"))


def test_new_version_is_the_push_time_or_the_next_free_one(tmp_path):
    assert serving_layout.new_version(str(tmp_path), 1700000000.9) == "1700000000"
    (tmp_path / "1700000000").mkdir()
    (tmp_path / "1700000001").mkdir()
    assert serving_layout.new_version(str(tmp_path), 1700000000.2) == "1700000002"


def test_the_layout_needs_neither_tfx_nor_tensorflow():
    script = ("import sys, components.pusher.serving_layout; "
              "print(sorted(m for m in ('tfx', 'tensorflow') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2]).stdout
    assert out.strip() == "[]"


# ----- TF Serving's warm-up file ----------------------------------------------------------------------------------
def test_warmup_requests_round_trip_as_tf_servings_prediction_logs(tmp_path):
    from tensorflow.core.example import example_pb2

    examples = []
    for image in (b"png-1", None, b"png-2", b"png-3"):
        example = example_pb2.Example()
        if image is not None:
            example.features.feature["image"].bytes_list.value.append(image)
        examples.append(example.SerializeToString())
    images = warmup.images_from_examples(examples, "image", count=2)
    assert images == [b"png-1", b"png-2"]  # the example without an image is skipped
    path = warmup.write_warmup_requests(str(tmp_path), images, model_name="digits")
    assert path == str(tmp_path / "assets.extra" / "tf_serving_warmup_requests")
    logs = warmup.read_warmup_requests(str(tmp_path))
    assert [log.WhichOneof("log_type") for log in logs] == ["predict_log", "predict_log"]
    request = logs[1].predict_log.request
    assert (request.model_spec.name, request.model_spec.signature_name) == ("digits", "serving_default")
    assert list(request.inputs["images"].string_val) == [b"png-2"]
    assert [d.size for d in request.inputs["images"].tensor_shape.dim] == [1]
    assert warmup.read_warmup_requests(str(tmp_path / "no-such-model")) is None  # warm-up data is optional
    with pytest.raises(ValueError, match="no images"):
        warmup.write_warmup_requests(str(tmp_path), [])


def test_executor_does_not_push_a_model_whose_warmup_file_tf_serving_would_refuse(tmp_path):
    inputs, outputs, props = _executor_inputs(tmp_path, blessed=True)
    model = tmp_path / "Trainer" / "model" / "5" / "Format-Serving"
    (model / "assets.extra").mkdir()
    (model / "assets.extra" / "tf_serving_warmup_requests").write_bytes(b"not a TFRecord file, but long enough")
    with pytest.raises(warmup.WarmupFileError, match=r"tf_serving_warmup_requests: not a valid TFRecord"):
        pusher.Executor().Do(inputs, outputs, props)
    assert not (tmp_path / "serving" / "m").exists()
    warmup.write_warmup_requests(str(model), [b"png"])  # a valid one is pushed along with the model
    inputs, outputs, props = _executor_inputs(tmp_path, blessed=True)
    pusher.Executor().Do(inputs, outputs, props)
    (version,) = os.listdir(tmp_path / "serving" / "m")
    assert len(warmup.read_warmup_requests(str(tmp_path / "serving" / "m" / version))) == 1


# ----- TFLite variants: the accuracy gate ----------------------------------------------------------------------
def test_executor_withholds_a_tflite_variant_over_the_drop_and_records_why(tmp_path):
    inputs, outputs, props = _executor_inputs(tmp_path, blessed=True)
    model = tmp_path / "Trainer" / "model" / "5" / "Format-Serving"
    folder = model / "assets.extra" / "tflite"
    folder.mkdir(parents=True)
    for variant in ("float32", "float16", "int8"):
        (folder / f"model_{variant}.tflite").write_bytes(b"TFL3 " + variant.encode())
    (folder / "labels.txt").write_text("cat\ndog\n")
    (folder / "tflite.json").write_text(json.dumps({
        "saved_model": {"accuracy": 0.9}, "eval": {"images": 40},
        "variants": {"float32": {"accuracy": 0.9}, "float16": {"accuracy": 0.9}, "int8": {"accuracy": 0.85}}}))
    props["custom_config"] = json.dumps({"max_tflite_accuracy_drop": 0.02})
    pusher.Executor().Do(inputs, outputs, props)
    (version,) = os.listdir(tmp_path / "serving" / "m")
    shipped = tmp_path / "serving" / "m" / version / "assets.extra" / "tflite"
    assert sorted(os.listdir(shipped)) == ["labels.txt", "model_float16.tflite", "model_float32.tflite", "tflite.json"]
    assert "model_int8.tflite" not in os.listdir(Path(outputs["pushed_model"][0].uri) / "assets.extra" / "tflite")
    record = json.loads((tmp_path / "serving" / "m" / version / serving_layout.PUSH_RECORD).read_text())
    assert record["tflite"]["shipped"] == ["float32", "float16"]
    (withheld,) = record["tflite"]["withheld"]
    assert (withheld["variant"], withheld["accuracy"], withheld["saved_model_accuracy"], withheld["max_drop"]) == \
        ("int8", 0.85, 0.9, 0.02)
    line = outputs["pushed_model"][0].get_string_custom_property("tflite")
    assert line.startswith("TFLite shipped: float32, float16; withheld int8: accuracy 0.8500 vs the SavedModel's")
    assert "> eval.max_tflite_accuracy_drop 0.02" in line

    inputs, outputs, props2 = _executor_inputs(tmp_path, blessed=True)  # the same model again: nothing copied
    pusher.Executor().Do(inputs, outputs, {**props2, "custom_config": json.dumps({"max_tflite_accuracy_drop": 0.1})})
    assert outputs["pushed_model"][0].get_string_custom_property("tflite").endswith(
        f"version {version} already serves this model and keeps the TFLite files of its first push")
    assert "model_int8.tflite" not in os.listdir(shipped)

    (folder / "tflite.json").write_text("{not json")  # unreadable figures: no variant ships, the SavedModel does
    gate = pusher.tflite_gate(str(model), props)
    assert gate.shipped == () and len(gate.withheld) == 3 and "tflite.json: not valid JSON" in gate.describe()
