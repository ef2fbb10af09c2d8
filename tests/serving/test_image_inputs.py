"""Images as users have them, through every serving entry: GIFs whose frames exceed the pixel limit (REST, gRPC,
tf.Example inputs, the clients), EXIF-oriented JPEGs (the model sees what ingestion stored: no training/serving
skew), TIFF/WebP transcoded by the clients, and `predict-batch` never opening a file a symlink leads out of its
folder to."""

from __future__ import annotations

import base64
import csv
import io
import os

import grpc
import numpy as np
import pytest
import requests
import tensorflow as tf
from PIL import Image
from tensorflow.core.example import example_pb2
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from tensorflow_serving.apis import predict_pb2

from components.example_gen import images
from serving.clients.batch_prediction import predict_batch
from serving.clients.files import predict_files
from serving.clients.predictors import PredictorSpec
from tests.image_files import asymmetric, gif_with_frames, oriented_jpeg
from tests.serving.helpers import MODEL, grpc_stubs


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def rest_predict(server, values: list[bytes]) -> requests.Response:
    return requests.post(f"{server.rest_url}/v1/models/{MODEL}:predict",
                         json={"instances": [{"b64": b64(v)} for v in values]}, timeout=60)


def grpc_predict(server, values: list[bytes]):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = MODEL
    request.inputs["images"].CopyFrom(tensor_pb2.TensorProto(
        dtype=types_pb2.DT_STRING, string_val=values,
        tensor_shape=tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(
            size=len(values))])))
    channel = grpc.insecure_channel(server.grpc_target)
    prediction = grpc_stubs(channel)[0]
    try:
        return prediction.Predict(request, timeout=60)
    finally:
        channel.close()


# 42 Mpx GIF frame behind a 16x16 screen (~40 KB), and 41 frames of 1000x1000 (41 Mpx in all, ~50 KB)
BIG_FRAME = gif_with_frames((16, 16), [(16, 16), (7000, 6000)])
MANY_FRAMES = gif_with_frames((1000, 1000), [(1000, 1000)] * 41)


@pytest.mark.parametrize(("gif", "message"), [
    (BIG_FRAME, "input 'images'[1]: image too large: GIF frame 2 of 2 is 7000x6000 px (logical screen 16x16); "
                "TensorFlow decodes every frame onto a 7000x6000 px canvas, which exceeds the limit of 40000000 "
                "(--max-image-pixels)"),
    (MANY_FRAMES, "input 'images'[1]: image too large: 41 GIF frames decode to 41000000 px in all (TensorFlow "
                  "decodes every frame), which exceeds the limit of 40000000 (--max-image-pixels)"),
], ids=["big-frame", "many-frames"])
def test_gif_frames_over_the_limit_are_refused_before_decoding(server_process, digit_pngs, gif, message):
    assert len(gif) < 100_000
    response = rest_predict(server_process, [digit_pngs[0], gif])
    assert response.status_code == 400 and response.json()["error"] == message, response.text[:400]
    with pytest.raises(grpc.RpcError) as caught:
        grpc_predict(server_process, [digit_pngs[0], gif])
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT and message in caught.value.details()
    example = example_pb2.Example()
    example.features.feature["image"].bytes_list.value.append(gif)
    classify = requests.post(f"{server_process.rest_url}/v1/models/{MODEL}:classify",
                             json={"signature_name": "classification", "examples": [{"image": {"b64": b64(gif)}}]},
                             timeout=60)
    assert classify.status_code == 400 and "(tf.Example feature): image too large: " in classify.json()["error"]
    assert server_process.alive()


def test_clients_refuse_gif_frames_over_the_limit(tmp_path, server):
    path = tmp_path / "animation.gif"
    path.write_bytes(BIG_FRAME)
    [result] = predict_files([str(path)], PredictorSpec("rest", server.rest_url, MODEL).create())
    assert result.stage == "validate" and result.reason.startswith("image too large: GIF frame 2 of 2 is 7000x6000")


# ----- EXIF orientation: the served model gets what ingestion stored ----------------------------------------------
@pytest.fixture(scope="module")
def oriented() -> dict[str, bytes]:
    pixels = asymmetric(24, 40)
    return {"sideways": oriented_jpeg(pixels, 1), "6": oriented_jpeg(pixels, 6), "8": oriented_jpeg(pixels, 8)}


def _probabilities(response: requests.Response) -> list[list[float]]:
    assert response.status_code == 200, response.text[:300]
    return [row["probabilities"] for row in response.json()["predictions"]]


def test_server_applies_exif_orientation_as_ingestion_does(server, oriented):
    stored = {key: images.prepare_image(oriented[key]).data for key in ("6", "8")}  # what ingestion trains on
    assert all(data.startswith(b"\x89PNG") for data in stored.values())
    rest = _probabilities(rest_predict(server, [oriented["6"], stored["6"], oriented["8"], stored["8"],
                                                oriented["sideways"]]))
    assert rest[0] == rest[1] and rest[2] == rest[3]  # the same pixels reach the model
    assert rest[0] != rest[4] and rest[2] != rest[4] and rest[0] != rest[2]  # and orientation matters to it
    response = grpc_predict(server, [oriented["6"], stored["6"]])
    probabilities = tf.make_ndarray(response.outputs["probabilities"])
    np.testing.assert_array_equal(probabilities[0], probabilities[1])
    np.testing.assert_allclose(probabilities[0], rest[0], rtol=1e-6)
    # the classification signature (tf.Examples) gets the upright image too
    results = []
    for data in (oriented["6"], stored["6"]):
        response = requests.post(f"{server.rest_url}/v1/models/{MODEL}:classify", timeout=60, json={
            "signature_name": "classification", "examples": [{"image": {"b64": b64(data)}}]})
        assert response.status_code == 200, response.text[:300]
        results.append(response.json()["results"])
    assert results[0] == results[1]


def test_clients_send_the_upright_image(tmp_path, server, model_base, oriented):
    path = tmp_path / "phone.jpg"
    path.write_bytes(oriented["6"])
    expected = _probabilities(rest_predict(server, [images.prepare_image(oriented["6"]).data]))[0]
    names = requests.post(f"{server.rest_url}/v1/models/{MODEL}:predict", timeout=60,
                          json={"instances": [{"b64": b64(oriented["6"])}]}).json()["predictions"][0]["classes"]
    want = sorted(zip(names, expected, strict=True), key=lambda pair: -pair[1])[:3]
    for spec in (PredictorSpec("rest", server.rest_url, MODEL, top_k=3),
                 PredictorSpec("saved_model", str(model_base), top_k=3)):  # in-process: no server to orient it
        [result] = predict_files([str(path)], spec.create())
        assert [name for name, _ in result.prediction.top_k] == [name for name, _ in want]
        np.testing.assert_allclose([p for _, p in result.prediction.top_k], [p for _, p in want], rtol=1e-5)


# ----- TIFF / WebP: transcoded by the clients; HEIC refused with its reason ------------------------------------
def test_clients_transcode_tiff_and_webp(tmp_path, model_base):
    pixels = asymmetric(24, 40, seed=3)
    png = io.BytesIO()
    Image.fromarray(pixels).save(png, format="PNG")
    paths = []
    for fmt, args in (("TIFF", {}), ("WEBP", {"lossless": True})):
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format=fmt, **args)
        paths.append(tmp_path / f"scan.{fmt.lower()}")
        paths[-1].write_bytes(buffer.getvalue())
    (tmp_path / "same.png").write_bytes(png.getvalue())
    heic = tmp_path / "phone.heic"
    heic.write_bytes(b"\0\0\0\x18ftypheic\0\0\0\0mif1heic" + bytes(64))
    predictor = PredictorSpec("saved_model", str(model_base), top_k=10).create()
    tiff, webp, same, refused = predict_files([str(p) for p in (*paths, tmp_path / "same.png", heic)], predictor)
    assert tiff.prediction is not None and tiff.prediction.top_k == same.prediction.top_k
    assert webp.prediction is not None and webp.prediction.top_k == same.prediction.top_k
    assert (refused.stage, refused.reason) == ("validate", "HEIC/HEIF image: Pillow needs the pillow-heif plugin to "
                                                           "read it, which is not installed; convert it to JPEG or "
                                                           "PNG first")


# ----- predict-batch never opens what a symlink out of the folder points to -------------------------------------
def _atime_updates(path) -> bool:
    """Whether reading a file updates its access time here (relatime does when atime <= mtime)."""
    os.utime(path, (1_000_000, os.stat(path).st_mtime))
    path.read_bytes()
    return os.stat(path).st_atime != 1_000_000


def test_predict_batch_refuses_symlinks_leaving_the_folder_without_opening_them(tmp_path, model_base, digit_pngs):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "inside.png").write_bytes(digit_pngs[0])
    outside = tmp_path / "private"
    outside.mkdir()
    secret = outside / "secret.png"  # a real image: the old code predicted it
    secret.write_bytes(digit_pngs[1])
    os.symlink(secret, folder / "escape.png")
    os.symlink(folder / "inside.png", folder / "alias.png")  # a symlink within the folder is fine
    watch_atime = _atime_updates(secret)
    os.utime(secret, (1_000_000, os.stat(secret).st_mtime))
    out = tmp_path / "out" / "predictions.csv"
    summary = predict_batch(str(folder), str(out), PredictorSpec("saved_model", str(model_base)))
    assert (summary.files, summary.predicted, summary.quarantined) == (3, 2, 1)
    with open(summary.quarantine_csv, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows == [{"path": "escape.png", "stage": "read",
                     "reason": "symlink points outside the folder (not followed)"}]
    if watch_atime:
        assert os.stat(secret).st_atime == 1_000_000  # never read


def test_predict_batch_lists_linked_folders_and_special_files_instead_of_skipping_them(tmp_path, model_base,
                                                                                         digit_pngs):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "a.png").write_bytes(digit_pngs[0])
    (folder / "more").mkdir()
    (folder / "more" / "b.png").write_bytes(digit_pngs[1])
    os.symlink(folder / "more", folder / "linked")  # inside the folder, but os.walk does not enter it
    os.mkfifo(folder / "pipe.png")  # opening it would block
    os.symlink(tmp_path / "gone.png", folder / "broken.png")
    out = tmp_path / "out" / "predictions.csv"
    summary = predict_batch(str(folder), str(out), PredictorSpec("saved_model", str(model_base)))
    assert (summary.files, summary.predicted, summary.quarantined) == (5, 2, 3)
    with open(summary.quarantine_csv, newline="") as handle:
        rows = sorted((row["path"], row["reason"]) for row in csv.DictReader(handle))
    assert rows == [("broken.png", "symlink points outside the folder (not followed)"),
                    ("linked", "a folder, not an image file (symlinked folders are not followed)"),
                    ("pipe.png", "not a regular file (a FIFO, socket, device or broken symlink): not opened")]
