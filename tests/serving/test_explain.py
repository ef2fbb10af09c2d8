"""The `explain` signature (Grad-CAM heatmaps) through the running local server: REST :predict in the row and the
columnar format, gRPC Predict, and a bad class index refused with 400 naming the input."""

from __future__ import annotations

import base64

import numpy as np
import requests
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2

from tests.serving.helpers import MODEL, grpc_stubs

SIZE = 16  # the fixture model's input size (tests/model_helpers.py)


def _b64(data: bytes) -> dict[str, str]:
    return {"b64": base64.b64encode(data).decode("ascii")}


def _predict(server, body: dict) -> requests.Response:
    return requests.post(f"{server.rest_url}/v1/models/{MODEL}:predict", json=body, timeout=60)


def test_rest_explain_rows_and_columns_match_the_in_process_call(server, digit_pngs, in_process):
    images, wanted = digit_pngs[:3], [-1, 4, -1]
    expected = in_process("explain", images=images, class_index=np.array(wanted, np.int64))
    rows = _predict(server, {"signature_name": "explain", "instances": [
        {"images": _b64(image), "class_index": index} for image, index in zip(images, wanted)]})
    assert rows.status_code == 200, rows.text
    predictions = rows.json()["predictions"]
    assert len(predictions) == 3
    assert set(predictions[0]) == {"heatmap", "class_index", "explained_class", "probabilities", "classes"}
    heat = np.array([p["heatmap"] for p in predictions], np.float32)
    assert heat.shape == (3, SIZE, SIZE) and 0.0 <= heat.min() and heat.max() <= 1.0
    np.testing.assert_allclose(heat, expected["heatmap"], atol=1e-6)
    assert [p["class_index"] for p in predictions] == expected["class_index"].tolist()
    assert predictions[1]["class_index"] == 4 and predictions[1]["explained_class"] == "4"
    columns = _predict(server, {"signature_name": "explain",
                                "inputs": {"images": [_b64(i) for i in images], "class_index": wanted}})
    assert columns.status_code == 200, columns.text
    outputs = columns.json()["outputs"]
    np.testing.assert_allclose(np.array(outputs["heatmap"], np.float32), expected["heatmap"], atol=1e-6)
    assert outputs["explained_class"] == [c.decode() for c in expected["explained_class"]]


def test_rest_explain_refuses_a_class_index_out_of_range(server, digit_pngs):
    response = _predict(server, {"signature_name": "explain",
                                 "instances": [{"images": _b64(digit_pngs[0]), "class_index": 10}]})
    assert response.status_code == 400
    assert "class_index must be -1 (top class) or 0 to 9" in response.json()["error"]
    missing = _predict(server, {"signature_name": "explain", "instances": [{"images": _b64(digit_pngs[0])}]})
    assert missing.status_code == 400 and "class_index" in missing.json()["error"]


def test_grpc_explain_matches_the_in_process_call(grpc_channel, digit_pngs, in_process):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = MODEL
    request.model_spec.signature_name = "explain"
    request.inputs["images"].CopyFrom(tf.make_tensor_proto(digit_pngs[:2], dtype=tf.string))
    request.inputs["class_index"].CopyFrom(tf.make_tensor_proto([-1, 7], dtype=tf.int64))
    response = grpc_stubs(grpc_channel).prediction.Predict(request, timeout=60)
    expected = in_process("explain", images=digit_pngs[:2], class_index=np.array([-1, 7], np.int64))
    assert set(response.outputs) == set(expected)
    for key, value in expected.items():
        np.testing.assert_array_equal(tf.make_ndarray(response.outputs[key]), value)
    assert tf.make_ndarray(response.outputs["heatmap"]).shape == (2, SIZE, SIZE)
