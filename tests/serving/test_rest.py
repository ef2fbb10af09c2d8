"""REST API of the local server: TF Serving's JSON contract, predictions equal to the in-process call, errors."""

from __future__ import annotations

import base64
import http.client
import json

import numpy as np
import pytest
import requests
from tensorflow.core.example import example_pb2

MODEL = "visionline"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def post(server, path: str, body: object, **kwargs) -> requests.Response:
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return requests.post(server.rest_url + path, data=data, timeout=60, **kwargs)


def assert_error(response: requests.Response, status: int, fragment: str = "") -> str:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    payload = response.json()
    assert set(payload) == {"error"}, payload
    assert fragment.lower() in payload["error"].lower(), payload["error"]
    return payload["error"]


# ----- status and metadata -------------------------------------------------------------------------------------
def test_model_status_like_tf_serving(server):
    for path in (f"/v1/models/{MODEL}", f"/v1/models/{MODEL}/versions/1"):
        response = requests.get(server.rest_url + path, timeout=10)
        assert response.status_code == 200
        assert response.json() == {"model_version_status": [
            {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]}


def test_metadata_has_signature_defs_and_class_labels(server, digit_paths):
    response = requests.get(f"{server.rest_url}/v1/models/{MODEL}/metadata", timeout=10)
    assert response.status_code == 200
    payload = response.json()
    assert payload["model_spec"] == {"name": MODEL, "signature_name": "", "version": "1"}
    signatures = payload["metadata"]["signature_def"]["signature_def"]
    assert {"serving_default", "classification", "serving_examples", "transform_features"} <= set(signatures)
    default = signatures["serving_default"]
    assert default["method_name"] == "tensorflow/serving/predict"
    assert default["inputs"]["images"]["dtype"] == "DT_STRING"
    assert default["inputs"]["images"]["tensor_shape"]["dim"] == [{"size": "-1", "name": ""}]
    assert set(default["outputs"]) == {"probabilities", "classes", "predicted_class", "confidence"}
    assert signatures["classification"]["method_name"] == "tensorflow/serving/classify"
    assert sorted(payload["metadata"]["class_labels"]) == sorted(digit_paths)
    versioned = requests.get(f"{server.rest_url}/v1/models/{MODEL}/versions/1/metadata", timeout=10).json()
    assert versioned == payload


# ----- predict --------------------------------------------------------------------------------------------------
def test_predict_row_format_matches_in_process_call(server, digit_pngs, in_process):
    response = post(server, f"/v1/models/{MODEL}:predict", {"instances": [{"b64": b64(p)} for p in digit_pngs]})
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    expected = in_process("serving_default", images=digit_pngs)
    assert len(predictions) == len(digit_pngs)
    for i, row in enumerate(predictions):
        assert set(row) == {"probabilities", "classes", "predicted_class", "confidence"}
        np.testing.assert_array_equal(np.float32(row["probabilities"]), expected["probabilities"][i])
        assert row["classes"] == [c.decode() for c in expected["classes"][i]]
        assert row["predicted_class"] == expected["predicted_class"][i].decode()
        assert np.float32(row["confidence"]) == expected["confidence"][i]


def test_predict_named_instances_version_and_signature(server, digit_pngs, in_process):
    body = {"signature_name": "serving_default", "instances": [{"images": {"b64": b64(digit_pngs[3])}}]}
    response = post(server, f"/v1/models/{MODEL}/versions/1:predict", body)
    assert response.status_code == 200, response.text
    (row,) = response.json()["predictions"]
    expected = in_process("serving_default", images=[digit_pngs[3]])
    assert row["predicted_class"] == expected["predicted_class"][0].decode()


def test_predict_columnar_format(server, digit_pngs, in_process):
    for inputs in ([{"b64": b64(p)} for p in digit_pngs[:2]], {"images": [{"b64": b64(p)} for p in digit_pngs[:2]]}):
        response = post(server, f"/v1/models/{MODEL}:predict", {"inputs": inputs})
        assert response.status_code == 200, response.text
        outputs = response.json()["outputs"]
        expected = in_process("serving_default", images=digit_pngs[:2])
        np.testing.assert_array_equal(np.float32(outputs["probabilities"]), expected["probabilities"])
        assert outputs["predicted_class"] == [c.decode() for c in expected["predicted_class"]]


def test_predict_other_signature_serving_examples(server, digit_pngs, in_process):
    example = example_pb2.Example()
    example.features.feature["image"].bytes_list.value.append(digit_pngs[0])
    body = {"signature_name": "serving_examples", "instances": [{"b64": b64(example.SerializeToString())}]}
    response = post(server, f"/v1/models/{MODEL}:predict", body)
    assert response.status_code == 200, response.text
    expected = in_process("serving_default", images=[digit_pngs[0]])
    np.testing.assert_allclose(response.json()["predictions"][0]["probabilities"], expected["probabilities"][0],
                               rtol=1e-6)


def test_classify_like_tf_serving(server, digit_pngs, in_process):
    body = {"signature_name": "classification", "examples": [{"image": {"b64": b64(p)}} for p in digit_pngs[:3]]}
    response = post(server, f"/v1/models/{MODEL}:classify", body)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    expected = in_process("serving_default", images=digit_pngs[:3])
    assert len(results) == 3
    for i, pairs in enumerate(results):
        labels = [label for label, _score in pairs]
        scores = np.float32([score for _label, score in pairs])
        assert labels == [c.decode() for c in expected["classes"][i]]
        np.testing.assert_allclose(scores, expected["probabilities"][i], rtol=1e-6)
    # Without signature_name the local server picks the model's only classify signature.
    default = post(server, f"/v1/models/{MODEL}:classify", {"examples": body["examples"][:1]})
    assert default.status_code == 200 and default.json()["results"][0] == results[0]


def test_classify_context_is_merged(server, digit_pngs):
    body = {"signature_name": "classification", "context": {"image": {"b64": b64(digit_pngs[1])}},
            "examples": [{"path": "x.png"}]}
    response = post(server, f"/v1/models/{MODEL}:classify", body)
    assert response.status_code == 200, response.text
    single = post(server, f"/v1/models/{MODEL}:classify",
                  {"signature_name": "classification", "examples": [{"image": {"b64": b64(digit_pngs[1])}}]})
    assert response.json() == single.json()


# ----- errors ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("body", "fragment"), [
    (b"{not json", "JSON Parse error"),
    (b"", "empty"),
    (b"[1, 2]", "JSON object"),
    ({"instances": [{"b64": "***not base64***"}]}, "base64"),
    ({"instances": [{"b64": 123}]}, "b64"),
    ({"instances": [{"b64": b64(b"plain text, not an image")}]}, "image"),
    ({"instances": [[{"b64": "AAAA"}]]}, "shape"),
    ({"instances": [{"b64": "AAAA"}, [{"b64": "AAAA"}]]}, ""),
    ({"instances": []}, "at least one"),
    ({"instances": {"b64": "AAAA"}}, "list"),
    ({"something": []}, "Missing 'inputs' or 'instances'"),
    ({"instances": [], "inputs": []}, "Not both"),
    ({"instances": [{"pictures": {"b64": "AAAA"}}]}, "unknown"),
    ({"instances": [1.5]}, "string"),
    ({"inputs": {"images": [{"b64": "AAAA"}], "extra": [1]}}, "unknown"),
    ({"signature_name": "nope", "instances": [{"b64": "AAAA"}]}, 'signature key "nope" not found'),
    ({"signature_name": 7, "instances": [{"b64": "AAAA"}]}, "signature_name"),
])
def test_predict_bad_requests_are_400(server, body, fragment):
    assert_error(post(server, f"/v1/models/{MODEL}:predict", body), 400, fragment)


def test_non_image_error_names_the_problem(server):
    message = assert_error(post(server, f"/v1/models/{MODEL}:predict", {"instances": [{"b64": b64(b"GIF89a junk")}]}),
                           400)
    assert "node" not in message.lower() and "[[" not in message  # TF's graph noise is stripped


@pytest.mark.parametrize(("body", "fragment"), [
    ({"examples": []}, "non-empty"),
    ({"examples": [{"image": True}]}, "strings"),
    ({"examples": [{"image": []}]}, "empty"),
    ({"examples": ["not an object"]}, "object"),
    ({"signature_name": "serving_default", "examples": [{"image": "x"}]}, "method_name"),
    ({"signature_name": "classification", "examples": [{"image": {"b64": b64(b"not an image")}}]}, "image"),
])
def test_classify_bad_requests_are_400(server, body, fragment):
    assert_error(post(server, f"/v1/models/{MODEL}:classify", body), 400, fragment)


@pytest.mark.parametrize(("method", "path", "fragment"), [
    ("POST", "/v1/models/unknown:predict", "Servable not found for request: Latest(unknown)"),
    ("POST", f"/v1/models/{MODEL}/versions/999:predict", f"Specific({MODEL}, 999)"),
    ("POST", f"/v1/models/{MODEL}/versions/999:classify", "Specific"),
    ("GET", "/v1/models/unknown", "Could not find any versions of model unknown"),
    ("GET", f"/v1/models/{MODEL}/versions/999", "Could not find version 999"),
    ("GET", "/v1/models/unknown/metadata", "Servable not found"),
    ("GET", f"/v1/models/{MODEL}/versions/999/metadata", "Servable not found"),
    ("GET", "/v2/whatever", "Malformed request"),
])
def test_unknown_model_or_version_is_404(server, method, path, fragment):
    response = requests.request(method, server.rest_url + path, data=json.dumps({"instances": [{"b64": "AAAA"}]}),
                                timeout=10)
    assert_error(response, 404, fragment)


def test_request_over_the_size_limit_is_413(server):
    limit = server.config.max_request_bytes
    big = {"instances": [{"b64": "A" * (limit + 10)}]}
    assert_error(post(server, f"/v1/models/{MODEL}:predict", big), 413, "too large")

    def chunks():  # no Content-Length: the limit is enforced while streaming
        payload = json.dumps(big).encode()
        for start in range(0, len(payload), 32 * 1024):
            yield payload[start:start + 32 * 1024]

    assert_error(requests.post(f"{server.rest_url}/v1/models/{MODEL}:predict", data=chunks(), timeout=30), 413)
    # The server is still healthy afterwards.
    assert requests.get(f"{server.rest_url}/v1/models/{MODEL}", timeout=10).status_code == 200


@pytest.mark.parametrize("path", [
    "/v1/models/..%2F..%2Fetc%2Fpasswd",
    "/v1/models/..%2F..%2Fetc%2Fpasswd/metadata",
    "/v1/models/%2e%2e/metadata",
    f"/v1/models/{MODEL}/versions/..%2F1/metadata",
    f"/v1/models/{MODEL}/versions/-1",
])
def test_path_traversal_is_rejected(server, path):
    response = requests.get(server.rest_url + path, timeout=10)
    assert response.status_code == 400, response.text
    # A version that is not digits does not match TF Serving's path grammar at all: "Malformed request".
    assert "invalid model" in response.json()["error"] or "Malformed request" in response.json()["error"]
    assert "root:" not in response.text


def test_raw_dot_segments_never_reach_the_filesystem(server):
    host, port = server.rest_url.removeprefix("http://").rsplit(":", 1)
    for path in ("/v1/models/../../../etc/passwd", f"/v1/models/{MODEL}/versions/../../../../etc/passwd/metadata",
                 "/../../etc/passwd"):
        connection = http.client.HTTPConnection(host, int(port), timeout=10)
        connection.request("GET", path)  # http.client sends the path verbatim (no dot-segment normalisation)
        response = connection.getresponse()
        body = response.read().decode()
        connection.close()
        assert response.status in (400, 404), (path, response.status, body)
        assert "root:" not in body and "error" in json.loads(body)


def test_unsupported_verbs(server):
    # As TF Serving for a model without a regression signature: 400, never a 5xx.
    assert_error(post(server, f"/v1/models/{MODEL}:regress", {"examples": []}), 400,
                 "Expected regression signature method_name to be tensorflow/serving/regress. Was: "
                 "tensorflow/serving/predict")
    assert_error(post(server, f"/v1/models/{MODEL}:regress", {"signature_name": "nope", "examples": []}), 400,
                 'signature key "nope" not found')
    assert_error(post(server, f"/v1/models/{MODEL}:explode", {}), 400, "Malformed request")
    # Labels: tests/serving/test_version_labels.py (an unassigned label is 400, as in TF Serving).
    assert_error(requests.get(f"{server.rest_url}/v1/models/{MODEL}/labels/stable/metadata", timeout=10), 400,
                 "Unrecognized servable version label: stable")


# ----- the page -------------------------------------------------------------------------------------------------
def test_page_is_self_contained_and_safe(server):
    response = requests.get(server.rest_url + "/", timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    html = response.text
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src 'sha256-" in csp and "unsafe-inline" not in csp
    assert "http://" not in html.split("<script>")[0] and "https://" not in html  # no CDN, no external assets
    assert ":predict" in html and 'type="file"' in html
    assert f'content="{MODEL}"' in html
    script = html.split("<script>", 1)[1]
    assert "innerHTML" not in script and "insertAdjacentHTML" not in script and "textContent" in script
