"""gRPC API of the local server through the official TF Serving stubs."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.example import example_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    predict_pb2,
    regression_pb2,
)

from tests.serving.helpers import MODEL, classify_request, grpc_stubs


@pytest.fixture(scope="module")
def prediction(grpc_channel):
    return grpc_stubs(grpc_channel).prediction


@pytest.fixture(scope="module")
def models(grpc_channel):
    return grpc_stubs(grpc_channel).models


def predict_request(images: list[bytes], name: str = MODEL, version: int | None = None,
                    signature: str = "serving_default") -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    request.model_spec.signature_name = signature
    if version is not None:
        request.model_spec.version.value = version
    request.inputs["images"].CopyFrom(tf.make_tensor_proto(images, dtype=tf.string))
    return request


def example(png: bytes) -> example_pb2.Example:
    result = example_pb2.Example()
    result.features.feature["image"].bytes_list.value.append(png)
    return result


def test_predict_matches_in_process_call(prediction, digit_pngs, in_process):
    response = prediction.Predict(predict_request(digit_pngs), timeout=60)
    assert response.model_spec.name == MODEL and response.model_spec.version.value == 1
    assert response.model_spec.signature_name == "serving_default"
    expected = in_process("serving_default", images=digit_pngs)
    assert set(response.outputs) == set(expected)
    for key, value in expected.items():
        np.testing.assert_array_equal(tf.make_ndarray(response.outputs[key]), value)


def test_predict_output_filter_and_version(prediction, digit_pngs):
    request = predict_request(digit_pngs[:2], version=1)
    request.output_filter.append("predicted_class")
    response = prediction.Predict(request, timeout=60)
    assert list(response.outputs) == ["predicted_class"]
    assert tf.make_ndarray(response.outputs["predicted_class"]).shape == (2,)


def test_classify(prediction, digit_pngs, in_process):
    response = prediction.Classify(classify_request(digit_pngs[:3]), timeout=60)
    assert response.model_spec.version.value == 1
    expected = in_process("serving_default", images=digit_pngs[:3])
    assert len(response.result.classifications) == 3
    for i, classification in enumerate(response.result.classifications):
        assert [c.label for c in classification.classes] == [c.decode() for c in expected["classes"][i]]
        np.testing.assert_allclose([c.score for c in classification.classes], expected["probabilities"][i],
                                   rtol=1e-6)


def test_classify_with_context(prediction, digit_pngs):
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = MODEL
    request.model_spec.signature_name = "classification"
    request.input.example_list_with_context.context.CopyFrom(example(digit_pngs[4]))
    request.input.example_list_with_context.examples.add()
    response = prediction.Classify(request, timeout=60)
    (classification,) = response.result.classifications
    assert len(classification.classes) == len(digit_pngs)


def test_get_model_metadata(prediction, digit_paths):
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = MODEL
    request.metadata_field.extend(["signature_def", "class_labels"])
    response = prediction.GetModelMetadata(request, timeout=30)
    assert response.model_spec.version.value == 1
    signatures = get_model_metadata_pb2.SignatureDefMap()
    assert response.metadata["signature_def"].Unpack(signatures)
    assert signatures.signature_def["serving_default"].inputs["images"].dtype == tf.string.as_datatype_enum
    assert signatures.signature_def["classification"].method_name == "tensorflow/serving/classify"
    labels = tf.make_tensor_proto([""])
    assert response.metadata["class_labels"].Unpack(labels)
    assert sorted(x.decode() for x in tf.make_ndarray(labels)) == sorted(digit_paths)


def test_get_model_status(models):
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = MODEL
    response = models.GetModelStatus(request, timeout=30)
    (status,) = response.model_version_status
    assert status.version == 1
    assert status.state == get_model_status_pb2.ModelVersionStatus.AVAILABLE
    assert status.status.error_code == 0 and status.status.error_message == ""
    request.model_spec.version.value = 1
    assert models.GetModelStatus(request, timeout=30).model_version_status[0].version == 1


def _code(call, request) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as info:
        call(request, timeout=60)
    return info.value.code(), info.value.details()


def test_malformed_requests_are_invalid_argument(prediction, digit_pngs):
    cases = []
    cases.append(predict_request([b"definitely not an image"]))  # undecodable bytes
    missing = predict_request(digit_pngs[:1])
    del missing.inputs["images"]
    missing.inputs["pictures"].CopyFrom(tf.make_tensor_proto([digit_pngs[0]], dtype=tf.string))
    cases.append(missing)  # wrong input name
    wrong_dtype = predict_request(digit_pngs[:1])
    wrong_dtype.inputs["images"].CopyFrom(tf.make_tensor_proto([1.0, 2.0], dtype=tf.float32))
    cases.append(wrong_dtype)
    wrong_rank = predict_request(digit_pngs[:1])
    wrong_rank.inputs["images"].CopyFrom(tf.make_tensor_proto([[digit_pngs[0]]], dtype=tf.string))
    cases.append(wrong_rank)
    bad_filter = predict_request(digit_pngs[:1])
    bad_filter.output_filter.append("nope")
    cases.append(bad_filter)
    cases.append(predict_request(digit_pngs[:1], name="../etc"))  # invalid model name
    labelled = predict_request(digit_pngs[:1])
    labelled.model_spec.version_label = "stable"
    cases.append(labelled)
    for request in cases:
        code, details = _code(prediction.Predict, request)
        assert code == grpc.StatusCode.INVALID_ARGUMENT, (code, details)
        assert details
    code, details = _code(prediction.Predict, predict_request([b"junk"]))
    assert "image" in details.lower() and "[[" not in details


def test_other_invalid_arguments(prediction, models):
    empty = classification_pb2.ClassificationRequest()
    empty.model_spec.name = MODEL
    assert _code(prediction.Classify, empty)[0] == grpc.StatusCode.INVALID_ARGUMENT
    wrong_signature = classification_pb2.ClassificationRequest()
    wrong_signature.model_spec.name = MODEL
    wrong_signature.model_spec.signature_name = "serving_default"
    wrong_signature.input.example_list.examples.add()
    code, details = _code(prediction.Classify, wrong_signature)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "method_name" in details
    no_fields = get_model_metadata_pb2.GetModelMetadataRequest()
    no_fields.model_spec.name = MODEL
    assert _code(prediction.GetModelMetadata, no_fields)[0] == grpc.StatusCode.INVALID_ARGUMENT
    no_fields.metadata_field.append("weights")
    assert _code(prediction.GetModelMetadata, no_fields)[0] == grpc.StatusCode.INVALID_ARGUMENT
    bad_name = get_model_status_pb2.GetModelStatusRequest()
    bad_name.model_spec.name = "a/b"
    assert _code(models.GetModelStatus, bad_name)[0] == grpc.StatusCode.INVALID_ARGUMENT


def test_unknown_signature_is_failed_precondition_like_tf_serving(prediction, digit_pngs):
    code, details = _code(prediction.Predict, predict_request(digit_pngs[:1], signature="nope"))
    assert code == grpc.StatusCode.FAILED_PRECONDITION and 'signature key "nope"' in details


def test_unknown_model_or_version_is_not_found(prediction, models, digit_pngs):
    assert _code(prediction.Predict, predict_request(digit_pngs[:1], name="unknown"))[0] == grpc.StatusCode.NOT_FOUND
    code, details = _code(prediction.Predict, predict_request(digit_pngs[:1], version=999))
    assert code == grpc.StatusCode.NOT_FOUND and "999" in details
    metadata = get_model_metadata_pb2.GetModelMetadataRequest()
    metadata.model_spec.name = "unknown"
    metadata.metadata_field.append("signature_def")
    assert _code(prediction.GetModelMetadata, metadata)[0] == grpc.StatusCode.NOT_FOUND
    status = get_model_status_pb2.GetModelStatusRequest()
    status.model_spec.name = "unknown"
    assert _code(models.GetModelStatus, status)[0] == grpc.StatusCode.NOT_FOUND
    status.model_spec.name = MODEL
    status.model_spec.version.value = 999
    assert _code(models.GetModelStatus, status)[0] == grpc.StatusCode.NOT_FOUND


def test_message_over_the_limit_is_resource_exhausted(prediction, server):
    code, _details = _code(prediction.Predict, predict_request([b"x" * (server.config.max_request_bytes + 1)]))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_unimplemented_methods(prediction):
    request = inference_pb2.MultiInferenceRequest()
    assert _code(prediction.MultiInference, request)[0] == grpc.StatusCode.UNIMPLEMENTED
    regress = regression_pb2.RegressionRequest()  # as TF Serving for a model without a regression signature
    regress.model_spec.name = MODEL
    regress.model_spec.signature_name = "classification"
    code, details = _code(prediction.Regress, regress)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "Was: tensorflow/serving/classify" in details
