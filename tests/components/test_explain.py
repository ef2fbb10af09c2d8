"""Tests for components.trainer.explain: the `explain` signature's Grad-CAM heatmaps point at the class evidence,
exist for every backbone family, and cover the binary, multilabel and test-time-augmentation variants."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft

from components.trainer import explain, export, inputs, training
from components.trainer import model as models
from tests.conftest import encode
from tests.model_helpers import raw_rows, trainer_config, transform_graph

SIZE = 32


def _picture(rng: np.random.Generator, left: int | None) -> np.ndarray:
    """A dim noisy background; with `left` given, a bright 10 px square whose left edge is at that column."""
    pixels = np.clip(rng.normal(60, 15, (SIZE, SIZE, 3)), 0, 255).astype(np.uint8)
    if left is not None:
        top = int(rng.integers(2, SIZE - 12))
        pixels[top:top + 10, left:left + 10] = 230
    return pixels


@pytest.fixture(scope="module")
def square_model(tmp_path_factory):
    """A simple CNN trained (seconds) to tell "square" (a bright square anywhere) from "blank", exported with the
    project's Transform graph and signatures; returns the loaded SavedModel and its class names."""
    tmp = tmp_path_factory.mktemp("explain")
    rng = np.random.default_rng(7)
    pictures = {"square": [_picture(rng, int(rng.integers(0, SIZE - 10))) for _ in range(48)],
                "blank": [_picture(rng, None) for _ in range(48)]}
    images = {label: [encode(p, "PNG") for p in group] for label, group in pictures.items()}
    config = trainer_config(**{"transform.image_size": SIZE, "train.conv_filters": [8, 16]})
    tft_output = tft.TFTransformOutput(transform_graph(tmp, raw_rows(images), config))
    names = inputs.class_names(tft_output)
    raw = tf.constant([[image] for label in names for image in images[label]])
    x = tft_output.transform_features_layer()({"image": raw})["image_xf"]
    y = np.repeat(np.arange(len(names)), 48)
    tf.keras.utils.set_random_seed(3)
    classifier, *_ = training.build_model(config, len(names), training.hyperparameters(config, None))
    models.compile_classifier(classifier, "adam", 3e-3)
    classifier.fit(x, y, epochs=12, batch_size=16, shuffle=True, verbose=0)
    export.save_serving_model(classifier, tft_output, str(tmp / "model"), names)
    return tf.saved_model.load(str(tmp / "model")), names


def test_heatmap_is_stronger_on_the_side_holding_the_evidence(square_model):
    model, names = square_model
    rng = np.random.default_rng(11)
    left, right = _picture(rng, 3), _picture(rng, SIZE - 13)
    images = tf.constant([encode(left, "PNG"), encode(right, "PNG")])
    out = model.signatures[explain.EXPLAIN](images=images, class_index=tf.constant([-1, -1], tf.int64))
    square = names.index("square")
    assert out["class_index"].numpy().tolist() == [square, square]  # the top class, as serving_default says
    assert [n.decode() for n in out["explained_class"].numpy()] == ["square", "square"]
    served = model.signatures["serving_default"](images=images)["probabilities"].numpy()
    np.testing.assert_allclose(out["probabilities"].numpy(), served, atol=1e-5)
    heat = out["heatmap"].numpy()
    assert heat.shape == (2, SIZE, SIZE) and heat.dtype == np.float32
    assert heat.min() >= 0.0 and heat.max() <= 1.0 and heat.max() > 0.9  # scaled per image
    half = SIZE // 2
    assert heat[0, :, :half].mean() > 2 * heat[0, :, half:].mean()
    assert heat[1, :, half:].mean() > 2 * heat[1, :, :half].mean()
    # a requested class is explained even when it is not the top one
    asked = model.signatures[explain.EXPLAIN](images=images[:1], class_index=tf.constant([names.index("blank")],
                                                                                         tf.int64))
    assert asked["class_index"].numpy().tolist() == [names.index("blank")]
    assert not np.allclose(asked["heatmap"].numpy()[0], heat[0])


def test_bad_class_index_is_refused_naming_the_input(square_model):
    model, _ = square_model
    image = tf.constant([encode(_picture(np.random.default_rng(0), 3), "PNG")])
    for wrong in (2, -2):
        with pytest.raises(tf.errors.InvalidArgumentError, match=r"class_index must be -1 \(top class\) or 0 to 1"):
            model.signatures[explain.EXPLAIN](images=image, class_index=tf.constant([wrong], tf.int64))
    with pytest.raises(tf.errors.InvalidArgumentError, match="input class_index needs one value per image"):
        model.signatures[explain.EXPLAIN](images=image, class_index=tf.constant([0, 1], tf.int64))


# one backbone per family of the registry (untrained: shapes only), at its smallest accepted size
@pytest.mark.parametrize(("backbone", "size"), [
    ("simple_cnn", 16), ("efficientnet_lite0", 32), ("mobilenet_v2", 32), ("efficientnet_b0", 32),
    ("resnet50v2", 32), ("xception", 71), ("inception_v3", 75), ("vgg16", 32),
])
def test_every_backbone_family_gets_heatmaps_of_the_input_size(backbone, size):
    config = trainer_config(**{"transform.image_size": size, "train.model": backbone, "train.weights": "none",
                               "train.conv_filters": [4, 8]})
    classifier, *_ = training.build_model(config, 3, training.hyperparameters(config, None))
    gradcam = explain.GradCam(classifier, ["a", "b", "c"])
    assert len(gradcam.features.outputs[0].shape) == 4  # a spatial feature map
    images = tf.random.uniform((2, size, size, 3), seed=1)
    out = tf.function(gradcam.explain)(images, tf.constant([-1, 2], tf.int64))
    assert out["heatmap"].shape == (2, size, size)
    assert out["class_index"].numpy()[1] == 2
    assert out["probabilities"].shape == (2, 3)


def test_binary_multilabel_and_mirror_averaged_explanations():
    images = tf.random.uniform((2, 16, 16, 3), seed=2)
    for task in ("binary", "multilabel"):
        config = trainer_config(**{"transform.image_size": 16, "train.conv_filters": [4, 8], "train.task": task})
        classes = 2 if task == "binary" else 3
        classifier, *_ = training.build_model(config, classes, training.hyperparameters(config, None))
        names = [f"c{i}" for i in range(classes)]
        out = tf.function(explain.GradCam(classifier, names, task).explain)(images, tf.constant([-1, 1], tf.int64))
        assert out["heatmap"].shape == (2, 16, 16) and out["probabilities"].shape == (2, classes)
        if task == "multilabel":  # one map per label; the requested label's map is its `heatmap`
            assert out["label_heatmaps"].shape == (2, 3, 16, 16) and out["predicted_labels"].shape == (2, 3)
            np.testing.assert_allclose(out["label_heatmaps"].numpy()[1, 1], out["heatmap"].numpy()[1], atol=1e-5)
        mirrored = tf.function(explain.GradCam(classifier, names, task, tta_flip=True).explain)(
            tf.concat([images[:1], tf.image.flip_left_right(images[:1])], axis=0), tf.constant([1, 1], tf.int64))
        heat = mirrored["heatmap"].numpy()  # an image and its mirror: mirrored heatmaps
        np.testing.assert_allclose(heat[1], heat[0][:, ::-1], atol=1e-4)
