"""End to end on a train/ val/ test/ data root (tiny real digits, demo preset): three ExampleGen splits, the val/
folder as the Trainer's validation data, test/ as the Evaluator's, and an extra folder named, not dropped."""

from __future__ import annotations

import glob
import json
import os
import shutil
from pathlib import Path

import pytest

from pipeline import demo_data
from pipeline.configs import PipelineConfig
from pipeline.local_runner import run_local

pytestmark = pytest.mark.e2e
COMMON = ["preset=demo", "beam.direct_running_mode=in_memory", "transform.image_size=16", "train.conv_filters=[16]",
          "train.batch_size=16", "train.epochs=2", "eval.min_accuracy=0", "eval.min_kappa=0", "eval.max_regression=1"]


@pytest.fixture(scope="module")
def three_way_run(tmp_path_factory: pytest.TempPathFactory):
    every = demo_data.materialize_digits(tmp_path_factory.mktemp("digits") / "digits", per_class=12)
    root = tmp_path_factory.mktemp("three-way") / "data"
    for digit in ("3", "5", "8"):
        files = sorted((every / digit).glob("*.png"))
        for split, chosen in (("train", files[:6]), ("val", files[6:9]), ("test", files[9:]), ("extra", files[:1])):
            (root / split / digit).mkdir(parents=True, exist_ok=True)
            for path in chosen:
                shutil.copy(path, root / split / digit / path.name)
    work = tmp_path_factory.mktemp("three-way-work")
    config = PipelineConfig().override([*COMMON, f"data.root={root}", f"work_dir={work}"])
    return config, run_local(config)


def test_val_trains_the_early_stopping_and_test_is_evaluated(three_way_run):
    config, summary = three_way_run
    ingest = summary.ingest
    assert list(ingest["per_split"]) == ["train", "val", "eval"]
    assert [ingest["per_split"][s]["ingested"] for s in ("train", "val", "eval")] == [18, 9, 9]
    assert ingest["unused_folders"] == ["extra"] and any("'extra/'" in w for w in ingest["warnings"])
    (history_file,) = glob.glob(os.path.join(config.pipeline_root, "Trainer", "model_run", "*", "history.json"))
    history = json.loads(Path(history_file).read_text())
    assert history["validation_source"] == "the val/ folder (split 'val')"
    assert history["validation_examples"] == 9 and history["train_examples"] == 18  # nothing carved off train
    assert history["class_names"] == ["3", "5", "8"]
    assert summary.metrics["example_count"] == 9  # the test/ folder


def test_tflite_variants_are_measured_on_the_test_folder_not_on_val(three_way_run):
    config, summary = three_way_run
    (history_file,) = glob.glob(os.path.join(config.pipeline_root, "Trainer", "model_run", "*", "history.json"))
    report = json.loads(Path(history_file).read_text())["tflite"]
    assert report["eval"] == {"split": "eval", "images": 9, "max_images": 200}  # the test/ folder (the Evaluator's)
    assert set(report["variants"]) == {"float32", "float16", "int8"}
