"""Version labels (TF Serving's `version_labels`): models.config parsing, TF Serving's assignment rule, and requests
by label over REST (`/labels/L`) and gRPC (`ModelSpec.version_label`) against a running server with two versions."""

from __future__ import annotations

import argparse
import base64
import json

import grpc
import pytest
import requests
import tensorflow as tf
from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2, predict_pb2

from serving.cli import register, server_config
from serving.errors import ServingError
from serving.server.config import ModelConfig, ServerConfig, VersionPolicy, load_models_config
from serving.server.model_server import ServingServer
from serving.server.version_labels import assign_labels
from tests.serving.helpers import MODEL, classify_request, grpc_stubs, push_version

NOT_AVAILABLE = ("Request to assign label to version 2 of model visionline, which is not currently available for "
                 "inference")


def model(**labels: int) -> ModelConfig:
    return ModelConfig(MODEL, "/unused", version_labels=tuple(sorted(labels.items())))


# ----- TF Serving's assignment rule (server_core.cc UpdateModelVersionLabelMap) ------------------------------------
def test_a_label_may_only_name_an_available_version():
    assert assign_labels([model(stable=1)], lambda name: {1}) == {MODEL: {"stable": 1}}
    with pytest.raises(ServingError) as caught:
        assign_labels([model(stable=1, canary=2)], lambda name: {1})
    assert caught.value.code == grpc.StatusCode.FAILED_PRECONDITION and caught.value.message == NOT_AVAILABLE


def test_allow_unavailable_covers_new_labels_only():
    nothing_loaded = lambda name: set()  # noqa: E731
    assert assign_labels([model(canary=2)], nothing_loaded, {}, allow_unavailable=True) == {MODEL: {"canary": 2}}
    # An existing label keeping its version is fine; moving it to a version that is not loaded is not.
    assert assign_labels([model(canary=2)], nothing_loaded, {MODEL: {"canary": 2}}, allow_unavailable=True)
    with pytest.raises(ServingError, match="version 2 of model visionline"):
        assign_labels([model(canary=2)], nothing_loaded, {MODEL: {"canary": 1}}, allow_unavailable=True)
    assert assign_labels([model(canary=2)], lambda name: {2}, {MODEL: {"canary": 1}}) == {MODEL: {"canary": 2}}


# ----- models.config --------------------------------------------------------------------------------------------------
CONFIG = """model_config_list {
  config {
    name: "visionline"
    base_path: "/models/visionline"
    model_platform: "tensorflow"
    model_version_policy { specific { versions: 1 versions: 2 } }
    version_labels { key: "stable" value: 1 }
    version_labels { key: "canary" value: 2 }
  }
}
"""


def test_models_config_version_labels_are_read(tmp_path):
    path = tmp_path / "models.config"
    path.write_text(CONFIG)
    (config,) = load_models_config(path)
    assert config.version_labels == (("canary", 2), ("stable", 1))
    assert config.policy == VersionPolicy("specific", versions=(1, 2))
    # `serve --model-config-file … --model-base …` keeps the labels.
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["serve", "--model-config-file", str(path), "--model-base", str(tmp_path),
                              "--allow-version-labels-for-unavailable-models"])
    served = server_config(args)
    assert served.models[0].version_labels == config.version_labels
    assert served.allow_version_labels_for_unavailable_models is True


def test_bad_version_label_names_the_file_and_model(tmp_path):
    path = tmp_path / "models.config"
    path.write_text(CONFIG.replace('key: "canary" value: 2', 'key: "canary" value: -2'))
    with pytest.raises(ValueError, match=r"models.config: model 'visionline': version_labels .*'canary'"):
        load_models_config(path)


# ----- the running server ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def two_versions(serving_model_dir, tmp_path_factory):
    base = tmp_path_factory.mktemp("labels") / MODEL
    push_version(serving_model_dir, base, 1)
    push_version(serving_model_dir, base, 2)
    return base


def labelled_config(base, allow: bool, **labels: int) -> ServerConfig:
    models = (ModelConfig(MODEL, str(base), VersionPolicy("all"), tuple(sorted(labels.items()))),)
    return ServerConfig(models=models, rest_port=0, grpc_port=0, poll_interval=0.5, workers=2,
                        allow_version_labels_for_unavailable_models=allow)


@pytest.fixture(scope="module")
def labelled_server(two_versions):
    """Versions 1 and 2 served; stable → 1, canary → 2, and `gone` → 7 (not on disk; allowed as a new label)."""
    with ServingServer(labelled_config(two_versions, True, stable=1, canary=2, gone=7)) as running:
        yield running


def test_labels_pointing_at_versions_not_loaded_stop_the_start_without_the_flag(two_versions):
    server = ServingServer(labelled_config(two_versions, False, stable=1, canary=2))
    with pytest.raises(ServingError) as caught:
        server.start()
    server.stop()
    assert caught.value.code == grpc.StatusCode.FAILED_PRECONDITION
    assert caught.value.message.startswith("Request to assign label to version")  # TF Serving's words, then a hint
    assert "--allow-version-labels-for-unavailable-models" in caught.value.message


@pytest.mark.parametrize(("label", "version"), [("stable", "1"), ("canary", "2")])
def test_rest_metadata_and_predict_by_label(labelled_server, digit_pngs, label, version):
    url = f"{labelled_server.rest_url}/v1/models/{MODEL}/labels/{label}"
    metadata = requests.get(f"{url}/metadata", timeout=30)
    assert metadata.status_code == 200, metadata.text
    assert metadata.json()["model_spec"]["version"] == version
    body = {"instances": [{"b64": base64.b64encode(digit_pngs[0]).decode()}]}
    predicted = requests.post(f"{url}:predict", data=json.dumps(body), timeout=60)
    assert predicted.status_code == 200 and len(predicted.json()["predictions"]) == 1, predicted.text
    classified = requests.post(f"{url}:classify", timeout=60, data=json.dumps(
        {"signature_name": "classification", "examples": [{"image": body["instances"][0]}]}))
    assert classified.status_code == 200 and len(classified.json()["results"]) == 1, classified.text


def test_rest_label_errors_like_tf_serving(labelled_server):
    base = f"{labelled_server.rest_url}/v1/models/{MODEL}"
    unknown = requests.post(f"{base}/labels/nope:predict", data="{}", timeout=30)
    assert unknown.status_code == 400 and unknown.json() == {"error": "Unrecognized servable version label: nope"}
    gone = requests.get(f"{base}/labels/gone/metadata", timeout=30)
    assert gone.status_code == 404 and gone.json() == {"error": f"Servable not found for request: Specific({MODEL}, 7)"}
    # GetModelStatus ignores the label (as TF Serving's): every version is listed.
    status = requests.get(f"{base}/labels/nope", timeout=30)
    assert status.status_code == 200 and [s["version"] for s in status.json()["model_version_status"]] == ["2", "1"]


def test_grpc_by_version_label(labelled_server, digit_pngs):
    with grpc.insecure_channel(labelled_server.grpc_target) as channel:
        stubs = grpc_stubs(channel)
        for label, version in (("stable", 1), ("canary", 2)):
            request = predict_pb2.PredictRequest()
            request.model_spec.name, request.model_spec.version_label = MODEL, label
            request.inputs["images"].CopyFrom(tf.make_tensor_proto(digit_pngs[:1], dtype=tf.string))
            assert stubs.prediction.Predict(request, timeout=60).model_spec.version.value == version
            metadata = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
            metadata.model_spec.name, metadata.model_spec.version_label = MODEL, label
            assert stubs.prediction.GetModelMetadata(metadata, timeout=30).model_spec.version.value == version
            classify = classify_request(digit_pngs[:1])
            classify.model_spec.version_label = label
            assert stubs.prediction.Classify(classify, timeout=60).model_spec.version.value == version
        request = predict_pb2.PredictRequest()
        request.model_spec.name, request.model_spec.version_label = MODEL, "nope"
        with pytest.raises(grpc.RpcError) as caught:
            stubs.prediction.Predict(request, timeout=30)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert caught.value.details() == "Unrecognized servable version label: nope"
        request.model_spec.version_label = "gone"
        with pytest.raises(grpc.RpcError) as caught:
            stubs.prediction.Predict(request, timeout=30)
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
        status = get_model_status_pb2.GetModelStatusRequest()
        status.model_spec.name, status.model_spec.version_label = MODEL, "stable"
        assert [s.version for s in stubs.models.GetModelStatus(status, timeout=30).model_version_status] == [2, 1]
