"""End to end per task type on tiny real data (scikit-learn digits): `binary` (two digit folders) and
`multilabel` (digit attributes from a `|`-separated CSV manifest) through the whole DAG, Evaluator gates,
Pusher and the served SavedModel. The `multiclass` run is the session fixture used by tests/e2e/test_e2e.py.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from pipeline import demo_data
from pipeline.configs import PipelineConfig
from pipeline.local_runner import run_local

COMMON = ["preset=demo", "beam.direct_running_mode=in_memory", "transform.image_size=16", "train.conv_filters=[16, 32]",
          "train.batch_size=16", "train.learning_rate=0.005", "eval.min_kappa=0", "eval.max_regression=1",
          "train.tflite=false"]  # TFLite per task: tests/components/test_tflite_export.py


def _pushed_model(summary) -> Path:
    assert summary.pushed, f"nothing pushed: blessed={summary.blessed}, metrics={summary.metrics}"
    path = Path(summary.pushed_model)
    assert (path / "saved_model.pb").exists()
    return path


@pytest.fixture(scope="module")
def binary_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 real digits each of 0 and 1."""
    every = demo_data.materialize_digits(tmp_path_factory.mktemp("digits40") / "digits", per_class=40)
    data = tmp_path_factory.mktemp("binary") / "digits01"
    for digit in ("0", "1"):
        shutil.copytree(every / digit, data / digit)
    return data


@pytest.fixture(scope="module")
def binary_run(binary_root: Path, tmp_path_factory: pytest.TempPathFactory):
    data = binary_root
    work = tmp_path_factory.mktemp("binary-work")
    config = PipelineConfig().override([*COMMON, f"data.root={data}", f"work_dir={work}", "train.task=binary",
                                        "train.epochs=15", "train.learning_rate=0.001",
                                        "train.early_stopping_patience=6", "eval.min_accuracy=0.8"])
    return config, run_local(config)


@pytest.fixture(scope="module")
def multilabel_run(tmp_path_factory: pytest.TempPathFactory):
    manifest = demo_data.materialize_digit_attributes(tmp_path_factory.mktemp("attributes") / "digits",
                                                      per_class=30)
    work = tmp_path_factory.mktemp("multilabel-work")
    config = PipelineConfig().override([*COMMON, f"data.root={manifest}", f"work_dir={work}",
                                        "train.task=multilabel", "train.epochs=15", "train.early_stopping_patience=5",
                                        "eval.min_accuracy=0"])
    return config, run_local(config)


def test_binary_pipeline_evaluates_binary_metrics_and_pushes(binary_run, binary_root):
    config, summary = binary_run
    model = tf.saved_model.load(str(_pushed_model(summary)))
    images = [p.read_bytes() for digit in ("0", "1") for p in sorted((binary_root / digit).glob("*.png"))[:4]]
    out = model.signatures["serving_default"](images=tf.constant(images))
    probabilities = out["probabilities"].numpy()
    assert probabilities.shape == (8, 2) and np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    predicted = [name.decode() for name in out["predicted_class"].numpy()]
    assert sum(p == t for p, t in zip(predicted, ["0"] * 4 + ["1"] * 4)) >= 6
    for name in ("auc", "auc_precision_recall", "precision", "recall", "f1_score"):  # the binary metric set
        assert any(key.startswith(name) for key in summary.metrics), (name, sorted(summary.metrics))


def test_multilabel_pipeline_ingests_label_sets_trains_sigmoids_and_pushes(multilabel_run):
    config, summary = multilabel_run
    model = tf.saved_model.load(str(_pushed_model(summary)))
    root = Path(config.data.root).parent
    rows = [line.split(",") for line in Path(config.data.root).read_text().splitlines()[1:]]
    images = [(root / path).read_bytes() for path, _ in rows]
    out = model.signatures["serving_default"](images=tf.constant(images))
    classes = [c.decode() for c in out["classes"].numpy()[0]]
    assert sorted(classes) == sorted(demo_data.DIGIT_ATTRIBUTES)
    truth = np.array([[name in labels.split("|") for name in classes] for _, labels in rows], dtype=np.int64)
    predicted = out["predicted_labels"].numpy()
    assert predicted.shape == truth.shape
    assert (predicted == truth).mean() >= 0.7  # 1 - Hamming loss on (mostly training) data
    for name in ("subset_accuracy", "hamming_loss", "f1_micro", "f1_macro"):  # the multilabel metric set
        assert any(key.startswith(name) for key in summary.metrics), (name, sorted(summary.metrics))


def test_multilabel_label_sets_through_rest_grpc_and_batch_prediction(multilabel_run, tmp_path):
    from serving.clients.batch_prediction import predict_batch
    from serving.clients.predictors import PredictorSpec
    from serving.server.config import ModelConfig, ServerConfig
    from serving.server.model_server import ServingServer

    config, summary = multilabel_run
    version = _pushed_model(summary)
    root = Path(config.data.root).parent
    paths = [root / line.split(",")[0] for line in Path(config.data.root).read_text().splitlines()[1:9]]
    images = [p.read_bytes() for p in paths]
    out = tf.saved_model.load(str(version)).signatures["serving_default"](images=tf.constant(images))
    names = [c.decode() for c in out["classes"].numpy()[0]]
    expected = [{names[j] for j in np.flatnonzero(row)} for row in out["predicted_labels"].numpy()]
    served = ServerConfig(models=(ModelConfig("attributes", str(version.parent)),), rest_port=0, grpc_port=0)
    with ServingServer(served) as server:
        for spec in (PredictorSpec("rest", server.rest_url, "attributes", top_k=2),
                     PredictorSpec("grpc", server.grpc_target, "attributes", top_k=2),
                     PredictorSpec("saved_model", str(version.parent), top_k=2)):
            predictor = spec.create()
            try:
                predictions = predictor.predict(images)
            finally:
                predictor.close()
            assert [set(p.labels) for p in predictions] == expected, spec.kind
            assert all(len(p.top_k) == 2 for p in predictions)
    folder = tmp_path / "unlabelled"
    folder.mkdir()
    for path in paths:
        shutil.copy(path, folder / path.name)
    predict_batch(str(folder), str(tmp_path / "predictions.csv"), PredictorSpec("saved_model", str(version)))
    with open(tmp_path / "predictions.csv", newline="") as handle:
        rows = {row["path"]: set(json.loads(row["labels"])) for row in csv.DictReader(handle)}
    assert rows == {path.name: labels for path, labels in zip(paths, expected)}


@pytest.mark.parametrize("run", ["binary_run", "multilabel_run"])
def test_report_explains_and_looks_for_mislabelled_images_for_binary_and_multilabel(run, request, tmp_path):
    from bs4 import BeautifulSoup

    from pipeline.report.build import build_report

    config, summary = request.getfixturevalue(run)
    built = build_report(config.metadata_path, out_dir=str(tmp_path), run_id=summary.run_id)
    soup = BeautifulSoup(Path(built.html).read_text(encoding="utf-8"), "html.parser")
    issues = soup.find("section", id="label-issues")
    assert issues.find(id="label-issues-skipped") is None, issues.get_text(" ", strip=True)  # computed
    assert issues.find(id="label-issues-summary") is not None
    assert issues.find(id="label-issues-unprocessed") is None  # every train image was embedded and scored
    rows = list(csv.DictReader((tmp_path / "label_issues.csv").open(encoding="utf-8")))
    assert all(row["given_label"] != row["suggested_label"] for row in rows)
    heatmaps = soup.find("section", id="explanations").select("figure.why")
    assert heatmaps, soup.find("section", id="explanations").get_text(" ", strip=True)
    errors = soup.find("section", id="errors")
    if run == "multilabel_run":
        assert errors.find(id="label-errors") is not None, errors.get_text(" ", strip=True)
        # labels taken for each other, from the sample scan's per-image predictions (computed, found or not)
        assert errors.find(id="label-swaps") or "no label was missed" in " ".join(errors.get_text(" ").split())
    else:  # the two error kinds, or none at all
        assert errors.find(id="error-kinds") or "No misclassified eval examples" in errors.get_text(" ", strip=True)
