"""Unit tests of configuration parsing (including TensorFlow's thread pools), name validation and the
JSON/TensorProto codecs (no model needed)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from serving.errors import ServingError, clean_tf_message
from serving.server.config import (
    BatchingConfig,
    ModelConfig,
    ServerConfig,
    VersionPolicy,
    parse_batching_config,
    parse_version,
    validate_model_name,
)
from serving.server.model_server import ServingServer
from serving.server.tensors import (
    DT_STRING,
    SignatureInfo,
    TensorInfo,
    array_to_json,
    array_to_tensor_proto,
    b64_bytes,
    json_to_array,
    predict_inputs_from_json,
    predict_outputs_to_json,
    tensor_proto_to_array,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["visionline", "model-2", "a.b_c", "X"])
def test_valid_model_names(name):
    assert validate_model_name(name) == name


@pytest.mark.parametrize("name", ["", "..", "../etc", "a/b", "a\\b", ".hidden", "a..b", "a b", "a:b", "x" * 200,
                                  "%2e%2e", "é"])
def test_invalid_model_names(name):
    with pytest.raises(ServingError) as info:
        validate_model_name(name)
    assert info.value.http_status == 400


@pytest.mark.parametrize("text", ["-1", "1.5", "..", "1e3", "", "0x10", "9" * 19, " 1"])
def test_invalid_versions(text):
    with pytest.raises(ServingError):
        parse_version(text)


def test_version_policy_selection():
    candidates = {3, 1, 7}
    assert VersionPolicy().select(candidates) == {7}
    assert VersionPolicy("latest", num_versions=2).select(candidates) == {3, 7}
    assert VersionPolicy("all").select(candidates) == candidates
    assert VersionPolicy("specific", versions=(1, 9)).select(candidates) == {1}
    with pytest.raises(ValueError):
        VersionPolicy("newest")
    with pytest.raises(ValueError):
        VersionPolicy("specific")


def test_server_config_validation(tmp_path):
    model = ModelConfig("m", str(tmp_path))
    with pytest.raises(ValueError):
        ServerConfig(models=())
    with pytest.raises(ValueError):
        ServerConfig(models=(model, model))
    with pytest.raises(ServingError):
        ModelConfig("../x", str(tmp_path))
    assert ServerConfig(models=(model,)).host == "127.0.0.1"  # loopback unless told otherwise
    with pytest.raises(ValueError, match="intra_op_threads"):
        ServerConfig(models=(model,), intra_op_threads=-1)


def test_tf_thread_pools_are_set_before_tensorflow_runs_and_refused_after():
    # A fresh interpreter: in this one TensorFlow is already running.
    script = textwrap.dedent("""
        import tensorflow as tf
        from serving.server.servable import configure_tf_threads
        configure_tf_threads(1, 2)
        threading = tf.config.threading
        print(threading.get_intra_op_parallelism_threads(), threading.get_inter_op_parallelism_threads())
        tf.constant(1.0) + 1.0  # TensorFlow is running now
        configure_tf_threads(1, 2)  # the same setting again: fine
        configure_tf_threads(0, 0)  # TensorFlow's default: leaves the setting alone
        try:
            configure_tf_threads(2, 2)
        except RuntimeError as err:
            print(err)
    """)
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True,
                         cwd=REPO).stdout.splitlines()
    assert out[0] == "1 2"
    assert out[1].startswith("cannot set TensorFlow's intra-op threads to 2: TensorFlow is already running")


def test_batching_config_parser():
    text = """
    # comment
    max_batch_size { value: 8 }
    batch_timeout_micros { value: 500 }  # trailing comment
    num_batch_threads { value: 3 }
    pad_variable_length_inputs: true
    allowed_batch_sizes: 4
    """
    assert parse_batching_config(text) == BatchingConfig(max_batch_size=8, batch_timeout_micros=500,
                                                         num_batch_threads=3)
    for bad in ("max_batch_size: 8", "unknown_field { value: 1 }", "max_batch_size {", "max_batch_size { value: 0 }"):
        with pytest.raises(ValueError):
            parse_batching_config(bad)


def test_b64_variants():
    assert b64_bytes({"b64": "aGVsbG8="}, "x") == b"hello"
    assert b64_bytes({"b64": "aGVsbG8"}, "x") == b"hello"  # padding optional
    assert b64_bytes({"b64": "-_8"}, "x") == b"\xfb\xff"  # URL-safe alphabet
    for bad in ("a$b", "a", 5):
        with pytest.raises(ServingError):
            b64_bytes({"b64": bad}, "x")


FLOAT_SIG = SignatureInfo("s", "tensorflow/serving/predict",
                          inputs={"x": TensorInfo("x", 1, (None, 2)), "k": TensorInfo("k", 9, (None,))},
                          outputs={"y": TensorInfo("y", 1, (None,))})


def test_numeric_json_inputs_rows_and_columns():
    rows, row_format = predict_inputs_from_json({"instances": [{"x": [1, 2], "k": 3}, {"x": [3.5, 4], "k": 4}]},
                                                FLOAT_SIG)
    assert row_format and rows["x"].dtype == np.float32 and rows["x"].shape == (2, 2)
    assert rows["k"].dtype == np.int64 and rows["k"].tolist() == [3, 4]
    columns, row_format = predict_inputs_from_json({"inputs": {"x": [[1, 2]], "k": [5]}}, FLOAT_SIG)
    assert not row_format and columns["x"].tolist() == [[1.0, 2.0]]
    for bad in ({"instances": [{"x": [1, 2]}]}, {"instances": [{"x": [1, "a"], "k": 1}]},
                {"instances": [{"x": [1, 2], "k": 1.5}]}, {"instances": [{"x": [[1], [2, 3]], "k": 1}]},
                {"instances": [1, 2]}, {"inputs": [1, 2]}, {"instances": [{"x": {"b64": "AA"}, "k": 1}]}):
        with pytest.raises(ServingError):
            predict_inputs_from_json(bad, FLOAT_SIG)


def test_string_json_leaves():
    spec = TensorInfo("s", DT_STRING, (None,))
    array = json_to_array(["text", {"b64": "AAE="}], spec, "x")
    assert array.tolist() == [b"text", b"\x00\x01"]
    with pytest.raises(ServingError):
        json_to_array([None], spec, "x")


def test_outputs_to_json_like_tf_serving():
    outputs = {"classes": np.array([[b"a", b"b"]], dtype=object), "scores": np.float32([[0.25, 0.75]]),
               "raw_bytes": np.array([b"\xff\x00"], dtype=object), "name": np.array([b"\xff"], dtype=object)}
    rows = predict_outputs_to_json(outputs, row_format=True)["predictions"]
    assert rows == [{"classes": ["a", "b"], "scores": [0.25, 0.75], "raw_bytes": {"b64": "/wA="},
                     "name": {"b64": "/w=="}}]
    assert predict_outputs_to_json({"y": np.float32([1, 2])}, row_format=True) == {"predictions": [1.0, 2.0]}
    assert predict_outputs_to_json({"y": np.float32([1, 2])}, row_format=False) == {"outputs": [1.0, 2.0]}
    assert array_to_json(np.array([b"x"], dtype=object), "label") == ["x"]
    with pytest.raises(ServingError):
        predict_outputs_to_json({"a": np.zeros(2), "b": np.zeros(3)}, row_format=True)


def test_tensor_proto_round_trip():
    for array in (np.float32([[1.5, 2]]), np.int64([3, 4]), np.array([b"a", b"bc"], dtype=object), np.bool_([True])):
        back = tensor_proto_to_array(array_to_tensor_proto(array), "t")
        np.testing.assert_array_equal(back, array)
        assert back.shape == array.shape


def test_clean_tf_message():
    raw = ("Graph execution error:\n\nDetected at node map/while/decode_image/DecodeImage defined at (most recent "
           "call last):\n<stack traces unavailable>\nUnknown image file format. One of JPEG, PNG, GIF, BMP required."
           "\n\t [[{{node map/while/decode_image/DecodeImage}}]] [Op:__inference_signature_wrapper_1522]")
    assert clean_tf_message(raw) == "Unknown image file format. One of JPEG, PNG, GIF, BMP required."


def test_server_start_applies_the_thread_pool_setting(tmp_path):
    tf.constant(1.0) + 1.0  # TensorFlow runs in this process: a new pool size can only be refused
    wanted = tf.config.threading.get_intra_op_parallelism_threads() + 3
    server = ServingServer(ServerConfig(models=(ModelConfig("m", str(tmp_path)),), rest_port=None, grpc_port=None,
                                        intra_op_threads=wanted))
    with pytest.raises(RuntimeError, match=f"intra-op threads to {wanted}"):
        server.start()
