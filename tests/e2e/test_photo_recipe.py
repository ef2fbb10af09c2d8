"""End to end with the `default` preset — the photo recipe users get for their own data: EfficientNet-Lite0 with its
real ImageNet weights, the head on cached features, then fine-tuning with random resized crop, flip, colour jitter,
label smoothing, AdamW and warm-up + cosine. Small here (3 digit classes, 32 px, a few epochs) so it stays quick;
what it proves is that every component handles that model: the Evaluator (TFMA reloads the exported model in Beam
workers that never import visionline), the Pusher, and the run records and report that describe it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import tensorflow as tf

from pipeline import demo_data
from pipeline.configs import PipelineConfig
from pipeline.local_runner import run_local
from pipeline.report.build import build_report

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def photo_run(tmp_path_factory: pytest.TempPathFactory):
    every = demo_data.materialize_digits(tmp_path_factory.mktemp("digits20") / "digits", per_class=20)
    data = tmp_path_factory.mktemp("photo") / "digits"
    for digit in ("0", "1", "2"):
        shutil.copytree(every / digit, data / digit)
    work = tmp_path_factory.mktemp("photo-work")
    config = PipelineConfig().override([
        f"data.root={data}", f"work_dir={work}", "beam.direct_running_mode=in_memory", "transform.image_size=32",
        "train.epochs=3", "train.fine_tune_epochs=1", "train.batch_size=8", "eval.min_accuracy=0",
        "eval.min_kappa=-1", "train.tflite=false"])  # TFLite: tests/components/test_tflite_export.py
    assert config.preset == "default" and config.train.model == "efficientnet_lite0"
    return config, run_local(config), work


def test_the_photo_recipe_trains_evaluates_and_pushes(photo_run):
    config, summary, work = photo_run
    states = {c.node_id: c.state for c in summary.components}
    assert states["Trainer"] == states["Evaluator"] == "COMPLETE", states
    assert summary.metrics["example_count"] > 0 and "cohen_kappa" in summary.metrics  # TFMA loaded the model
    assert summary.pushed and (Path(summary.pushed_model) / "saved_model.pb").exists()
    (history_path,) = work.glob("pipelines/*/Trainer/model_run/*/history.json")
    history = json.loads(history_path.read_text())
    head, fine_tune = history["phases"]
    assert head["cached_features"] is True and head["augmentation"] == "none"
    assert fine_tune["fine_tune"] == "all" and "random resized crop" in fine_tune["augmentation"]
    assert history["backbone"] == "efficientnet_lite0" and history["preset"] == "default"
    assert history["export"]["saved_model_mb"] > 1 and history["export"]["cpu_latency_ms"] > 0
    served = tf.saved_model.load(summary.pushed_model).signatures["serving_default"]
    png = next((Path(config.data.root) / "1").glob("*.png")).read_bytes()
    assert served(images=tf.constant([png]))["probabilities"].shape == (1, 3)


def test_the_report_says_how_the_model_was_trained(photo_run):
    config, _, _ = photo_run
    html = Path(build_report(config.metadata_path).html).read_text(encoding="utf-8")
    assert "preset default: efficientnet_lite0 at 32 px" in html
    assert "unfrozen: all" in html and "random resized crop (50%–100% of the area)" in html
