"""The prediction page in a real headless Chromium, driven through chromedriver's W3C WebDriver HTTP API.

Needs Debian's `chromium` and `chromium-driver` (`apt-get install -y chromium chromium-driver`); skipped only when
/usr/bin/chromium or /usr/bin/chromedriver is missing. The screenshot is saved to the test's tmp dir.
"""

from __future__ import annotations

import base64
import contextlib
import io
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from PIL import Image

from components.example_gen import images
from serving.server.config import ModelConfig, ServerConfig
from serving.server.model_server import ServingServer
from tests.image_files import asymmetric, oriented_jpeg
from tests.serving.helpers import MODEL, build_tiny_model

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
REAL_BINARY = Path("/usr/lib/chromium/chromium")  # Debian's /usr/bin/chromium is a launcher script
ELEMENT = "element-6066-11e4-a52e-4f735466cecf"  # W3C web element identifier key

pytestmark = pytest.mark.skipif(
    not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
    reason="browser test needs /usr/bin/chromium and /usr/bin/chromedriver (apt-get install chromium chromium-driver)",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class WebDriver:
    """The handful of W3C WebDriver endpoints the test needs."""

    def __init__(self, url: str, session_id: str) -> None:
        self.base = f"{url}/session/{session_id}"

    def call(self, method: str, path: str, payload: dict | None = None):
        response = requests.request(method, self.base + path, json=payload, timeout=60)
        value = response.json().get("value")
        assert response.status_code == 200, (path, value)
        return value

    def find(self, css: str) -> str:
        return self.call("POST", "/element", {"using": "css selector", "value": css})[ELEMENT]

    def find_all(self, css: str) -> list[str]:
        return [e[ELEMENT] for e in self.call("POST", "/elements", {"using": "css selector", "value": css})]

    def text(self, element: str) -> str:
        return self.call("GET", f"/element/{element}/text")

    def wait_text(self, css: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.text(self.find(css))
            if text:
                return text
            time.sleep(0.1)
        error = self.text(self.find("#error"))
        raise AssertionError(f"{css} stayed empty; page error: {error!r}")


@pytest.fixture()
def browser(tmp_path):
    port = free_port()
    log = open(tmp_path / "chromedriver.log", "w")  # noqa: SIM115 - closed below
    driver = subprocess.Popen([str(CHROMEDRIVER), f"--port={port}"], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    session_id = None
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if requests.get(f"{url}/status", timeout=2).json()["value"]["ready"]:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, "chromedriver did not start"
            time.sleep(0.1)
        options = {
            "binary": str(REAL_BINARY if REAL_BINARY.exists() else CHROMIUM),
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1000,860"],
        }
        response = requests.post(f"{url}/session", json={"capabilities": {"alwaysMatch": {
            "browserName": "chrome", "goog:chromeOptions": options}}}, timeout=60)
        assert response.status_code == 200, response.text
        session_id = response.json()["value"]["sessionId"]
        yield WebDriver(url, session_id)
    finally:
        if session_id:
            requests.delete(f"{url}/session/{session_id}", timeout=30)
        driver.terminate()
        driver.wait(timeout=20)
        log.close()


def test_page_uploads_an_image_and_shows_top_classes(server, browser, digit_paths, tmp_path):
    label, png_path = sorted(digit_paths.items())[7]
    browser.call("POST", "/url", {"url": server.rest_url + "/"})
    assert browser.call("GET", "/title").startswith("visionline")
    assert browser.call("POST", "/execute/sync", {"script": "return document.getElementById('server-url').value",
                                                  "args": []}) == server.rest_url
    browser.call("POST", f"/element/{browser.find('#file-input')}/value", {"text": str(png_path)})
    predicted = browser.wait_text("#top1")
    assert predicted in digit_paths  # one of the model's class names
    labels = [browser.text(e) for e in browser.find_all("#results li .label")]
    assert len(labels) == 5 and labels[0] == predicted and set(labels) <= set(digit_paths)
    percents = [browser.text(e) for e in browser.find_all("#results li .pct")]
    assert all(p.endswith("%") for p in percents)
    values = [float(p.rstrip("%")) for p in percents]
    assert values == sorted(values, reverse=True)
    assert browser.text(browser.find("#error")) == ""
    assert browser.call("POST", "/execute/sync", {"script": "return document.getElementById('preview').naturalWidth",
                                                  "args": []}) > 0
    screenshot = tmp_path / "prediction-page.png"
    screenshot.write_bytes(base64.b64decode(browser.call("GET", "/screenshot")))
    assert screenshot.stat().st_size > 1000

    # Drag and drop: dispatch a real `drop` event carrying a File.
    other_label, other_path = sorted(digit_paths.items())[1]
    script = """
        const bytes = Uint8Array.from(atob(arguments[0]), c => c.charCodeAt(0));
        const transfer = new DataTransfer();
        transfer.items.add(new File([bytes], "dropped.png", {type: "image/png"}));
        document.getElementById("top1").textContent = "";
        document.getElementById("drop-zone").dispatchEvent(
            new DragEvent("drop", {dataTransfer: transfer, bubbles: true, cancelable: true}));
    """
    browser.call("POST", "/execute/sync", {"script": script,
                                           "args": [base64.b64encode(other_path.read_bytes()).decode()]})
    assert browser.wait_text("#top1") in digit_paths
    assert "dropped.png" in browser.text(browser.find("#status"))


def test_why_overlays_the_explain_heatmap_on_the_preview(server, browser, digit_paths, in_process, tmp_path):
    _label, png_path = sorted(digit_paths.items())[3]
    browser.call("POST", "/url", {"url": server.rest_url + "/"})
    hidden = "return document.getElementById('heatmap').hidden"
    browser.call("POST", f"/element/{browser.find('#why')}/click", {})  # "Why?" on
    browser.call("POST", f"/element/{browser.find('#file-input')}/value", {"text": str(png_path)})
    deadline = time.monotonic() + 30
    while not (status := browser.text(browser.find("#why-status"))).startswith(("Where", "No heatmap")):
        assert time.monotonic() < deadline, "no heatmap and no message"
        time.sleep(0.1)
    expected = in_process("explain", images=[png_path.read_bytes()], class_index=np.array([-1], np.int64))
    assert status == f"Where the model saw {expected['explained_class'][0].decode()} (Grad-CAM)"
    assert browser.call("POST", "/execute/sync", {"script": hidden, "args": []}) is False
    alpha = browser.call("POST", "/execute/sync", {"script": """
        const canvas = document.getElementById('heatmap');
        const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
        return [canvas.width, canvas.height, Array.from(data.filter((_, i) => i % 4 === 3))];""", "args": []})
    heat = expected["heatmap"][0]
    assert heat.max() > 0.5  # a real map (scaled to a peak of 1), so the comparison below means something
    assert alpha[:2] == [heat.shape[1], heat.shape[0]]  # the model's input size, stretched over the preview
    np.testing.assert_allclose(np.reshape(alpha[2], heat.shape), np.round(255 * 0.6 * heat), atol=1)
    screenshot = tmp_path / "why-page.png"
    screenshot.write_bytes(base64.b64decode(browser.call("GET", "/screenshot")))
    browser.call("POST", f"/element/{browser.find('#why')}/click", {})  # off again: the overlay goes
    assert browser.call("POST", "/execute/sync", {"script": hidden, "args": []}) is True
    assert browser.text(browser.find("#error")) == ""


def test_page_shows_server_errors_as_text(server, browser, tmp_path):
    not_image = tmp_path / "fake.png"
    not_image.write_bytes(b"<img src=x onerror=alert(1)> not a PNG")
    browser.call("POST", "/url", {"url": server.rest_url + "/?model=unknown-model"})
    browser.call("POST", f"/element/{browser.find('#file-input')}/value", {"text": str(not_image)})
    error = browser.wait_text("#error")
    assert "Servable not found" in error and "unknown-model" in error
    assert browser.call("POST", "/execute/sync", {"script": "return document.querySelectorAll('#error *').length",
                                                  "args": []}) == 0


XSS_LABEL = "<script>alert(1)</script>"
IMG_LABEL = '<img src=x onerror="alert(2)">'


@contextlib.contextmanager
def tiny_models_server(root: Path, models: dict[str, dict]) -> Iterator[Any]:
    """The local server (REST only) over tiny models: model name → `build_tiny_model` keyword arguments."""
    for name, kwargs in models.items():
        build_tiny_model(root / name / "1", **kwargs)
    config = ServerConfig(models=tuple(ModelConfig(name, str(root / name)) for name in models), rest_port=0,
                          grpc_port=None, workers=2)
    with ServingServer(config) as running:
        yield running


@pytest.fixture()
def xss_label_server(tmp_path):
    """The local server over a tiny model whose class names are HTML/script payloads."""
    with tiny_models_server(tmp_path / "models", {
            MODEL: {"class_names": [XSS_LABEL, IMG_LABEL, "plain & <b>bold</b>"]}}) as running:
        yield running


def test_class_names_with_html_are_shown_as_text(xss_label_server, browser, digit_paths, tmp_path):
    server = xss_label_server
    browser.call("POST", "/url", {"url": server.rest_url + "/"})
    count_nodes = ("return [document.querySelectorAll('script').length, document.querySelectorAll('img').length, "
                   "document.querySelectorAll('b').length]")
    before = browser.call("POST", "/execute/sync", {"script": count_nodes, "args": []})
    # Record any alert/confirm/prompt instead of blocking on it (a payload would have to run to call one).
    trap = ("window.__alerts = []; "
            "for (const f of ['alert', 'confirm', 'prompt']) window[f] = m => { window.__alerts.push(String(m)); };")
    browser.call("POST", "/execute/sync", {"script": trap, "args": []})
    _label, png_path = sorted(digit_paths.items())[0]
    browser.call("POST", f"/element/{browser.find('#file-input')}/value", {"text": str(png_path)})
    assert browser.wait_text("#top1") == XSS_LABEL  # the literal string, as text
    labels = [browser.text(e) for e in browser.find_all("#results li .label")]
    assert labels[0] == XSS_LABEL and set(labels) == {XSS_LABEL, IMG_LABEL, "plain & <b>bold</b>"}
    assert browser.call("POST", "/execute/sync", {
        "script": "return Array.from(document.querySelectorAll('#results li .label')).map(e => e.title)",
        "args": []})[0] == XSS_LABEL
    after = browser.call("POST", "/execute/sync", {"script": count_nodes, "args": []})
    assert after == before  # no <script>, <img> or <b> element was injected
    assert browser.call("POST", "/execute/sync", {
        "script": "return document.querySelectorAll('#results *:not(li):not(span):not(div), #top1 *').length",
        "args": []}) == 0
    assert browser.call("POST", "/execute/sync", {"script": "return window.__alerts", "args": []}) == []
    no_alert = requests.get(f"{browser.base}/alert/text", timeout=30)
    assert no_alert.status_code == 404 and no_alert.json()["value"]["error"] == "no such alert"
    assert browser.text(browser.find("#error")) == ""
    screenshot = tmp_path / "escaped-labels.png"
    screenshot.write_bytes(base64.b64decode(browser.call("GET", "/screenshot")))
    assert screenshot.stat().st_size > 1000


@pytest.fixture()
def multilabel_server(tmp_path):
    """The local server over a tiny multilabel model (sigmoid per label, `predicted_labels`) and, as model
    `single`, a tiny single-label one."""
    with tiny_models_server(tmp_path / "models", {
            MODEL: {"class_names": ["smiling", "eyeglasses", "hat", "beard"], "multilabel": True},
            "single": {"class_names": ["cat", "dog"]}}) as running:
        yield running


def test_page_shows_a_multilabel_models_predicted_label_set(multilabel_server, browser, digit_paths, tmp_path):
    _label, png_path = sorted(digit_paths.items())[0]
    browser.call("POST", "/url", {"url": multilabel_server.rest_url + "/"})
    assert browser.call("POST", "/execute/sync", {
        "script": "return document.getElementById('labels-box').hidden", "args": []}) is True
    browser.call("POST", f"/element/{browser.find('#file-input')}/value", {"text": str(png_path)})
    assert browser.wait_text("#top1") == "smiling"
    assert browser.wait_text("#labels") == "smiling, eyeglasses"  # the p ≥ 0.5 set, most probable first
    assert browser.call("POST", "/execute/sync", {
        "script": "return document.getElementById('labels-box').hidden", "args": []}) is False
    screenshot = tmp_path / "multilabel-page.png"
    screenshot.write_bytes(base64.b64decode(browser.call("GET", "/screenshot")))
    assert screenshot.stat().st_size > 1000

    # A single-label model on the same page hides the box again.
    browser.call("POST", "/execute/sync", {
        "script": "document.getElementById('model-name').value = 'single'", "args": []})
    _other, other_path = sorted(digit_paths.items())[1]  # another file: choosing the same one fires no change
    browser.call("POST", f"/element/{browser.find('#file-input')}/value", {"text": str(other_path)})
    deadline = time.monotonic() + 30
    while not (status := browser.text(browser.find("#status"))).startswith(other_path.name) or not status.endswith(
            " ms"):  # "<file> – N ms" once that prediction is shown
        assert time.monotonic() < deadline, browser.text(browser.find("#error"))
        time.sleep(0.1)
    assert browser.text(browser.find("#top1")) == "cat"
    assert browser.call("POST", "/execute/sync", {
        "script": "return [document.getElementById('labels-box').hidden, "
                  "document.getElementById('labels').textContent]", "args": []}) == [True, ""]


CAPTURE = """window.__sent = [];
const original = window.fetch;
window.fetch = (url, init) => {
  window.__sent.push(JSON.parse(init.body).instances[0].b64);
  return original(url, init);
};"""


def test_page_sends_what_ingestion_stores_upright_jpegs_and_transcoded_webp(server, browser, digit_paths, tmp_path):
    pixels = asymmetric(24, 40)
    files = {"phone.jpg": oriented_jpeg(pixels, 6), "plain.png": next(iter(digit_paths.values())).read_bytes()}
    webp, tiff = io.BytesIO(), io.BytesIO()
    Image.fromarray(pixels).save(webp, format="WEBP", lossless=True)
    Image.fromarray(pixels).save(tiff, format="TIFF")
    files |= {"scan.webp": webp.getvalue(), "scan.tiff": tiff.getvalue()}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    browser.call("POST", "/url", {"url": server.rest_url + "/"})
    browser.call("POST", "/execute/sync", {"script": CAPTURE, "args": []})

    def send(name: str) -> None:
        browser.call("POST", "/execute/sync", {"script": "document.getElementById('status').textContent = '';"
                                                         "document.getElementById('error').textContent = '';",
                                               "args": []})
        browser.call("POST", f"/element/{browser.find('#file-input')}/value", {"text": str(tmp_path / name)})
        deadline = time.monotonic() + 30
        while not (browser.text(browser.find("#status")).endswith(" ms") or browser.text(browser.find("#error"))):
            assert time.monotonic() < deadline, "no prediction and no error"
            time.sleep(0.1)

    def sent() -> bytes:
        return base64.b64decode(browser.call("POST", "/execute/sync", {"script": "return window.__sent.pop()",
                                                                       "args": []}))

    send("phone.jpg")
    assert "(EXIF orientation 6 applied, sent as PNG)" in browser.text(browser.find("#status"))
    png = sent()
    assert png.startswith(b"\x89PNG")
    browser_pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.int16)
    ingested = np.asarray(Image.open(io.BytesIO(images.prepare_image(files["phone.jpg"]).data)), dtype=np.int16)
    assert browser_pixels.shape == ingested.shape == (40, 24, 3)  # upright, as ingestion stores it
    assert np.abs(browser_pixels - ingested).max() <= 3  # the browser's JPEG decoder vs Pillow's: a level or so

    send("scan.webp")
    assert "(WEBP sent as PNG)" in browser.text(browser.find("#status"))
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(sent())).convert("RGB")), pixels)  # lossless

    send("plain.png")
    assert sent() == files["plain.png"]  # nothing to do: the original bytes

    send("scan.tiff")
    assert browser.text(browser.find("#error")) == (
        "Prediction failed: scan.tiff: this browser cannot decode this TIFF image; convert it to PNG or JPEG first, "
        "or use `visionline predict`, which transcodes TIFF and WebP")
    assert browser.call("POST", "/execute/sync", {"script": "return window.__sent.length", "args": []}) == 0


@pytest.fixture()
def other_origin_server(tmp_path):
    """A second local server (another origin: its own port) over a tiny cat/dog model, with CORS for any page."""
    build_tiny_model(tmp_path / "other" / MODEL / "1", class_names=["cat", "dog"])
    config = ServerConfig(models=(ModelConfig(MODEL, str(tmp_path / "other" / MODEL)),), rest_port=0, grpc_port=None,
                          workers=2, cors_origin="*")
    with ServingServer(config) as running:
        yield running


def test_page_names_another_server_and_asks_before_sending_there(server, other_origin_server, browser, digit_paths):
    other = other_origin_server.rest_url
    browser.call("POST", "/url", {"url": f"{server.rest_url}/?url={other}"})
    destination = browser.text(browser.find("#destination"))
    assert other in destination and "another server" in destination and server.rest_url in destination
    png = str(sorted(digit_paths.values())[0])

    browser.call("POST", f"/element/{browser.find('#file-input')}/value", {"text": png})
    assert other in browser.call("GET", "/alert/text")
    browser.call("POST", "/alert/dismiss", {})
    assert browser.wait_text("#error") == f"Not sent: you declined to send the image to {other}."
    assert browser.text(browser.find("#top1")) == ""

    browser.call("POST", "/execute/sync", {"script": "document.getElementById('file-input').value = ''", "args": []})
    browser.call("POST", f"/element/{browser.find('#file-input')}/value", {"text": png})
    browser.call("POST", "/alert/accept", {})
    assert browser.wait_text("#top1") in ("cat", "dog")  # the other server's model answered

    browser.call("POST", "/execute/sync", {"script": "document.getElementById('file-input').value = ''", "args": []})
    browser.call("POST", f"/element/{browser.find('#file-input')}/value", {"text": png})  # asked once per origin
    assert requests.get(f"{browser.base}/alert/text", timeout=30).status_code == 404
    # The page's own server: named, no warning, no question.
    browser.call("POST", "/url", {"url": server.rest_url + "/"})
    assert browser.text(browser.find("#destination")) == f"Images are sent to {server.rest_url}"
