"""End to end: `visionline run --repeat 2` — two normal runs with seeds train.seed and +1 (the second reuses
ingestion and Transform, its Trainer re-runs), then one JSON document with each run's accuracy and kappa and their
mean ± sample std.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.cli import errors
from pipeline.configs import PipelineConfig
from pipeline.runs.record import read_run

pytestmark = pytest.mark.e2e


def test_run_repeat_twice_reports_each_run_and_the_spread(digits_root, tmp_path):
    work_dir = tmp_path / "work"
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "run", "--data", str(digits_root), "--work-dir", str(work_dir),
         "--in-memory", "--repeat", "2", "--json", "--preset", "demo", "--set", "train.seed=5",
         "--set", "train.epochs=3",
         "--set", "train.conv_filters=[8]", "--set", "transform.image_size=16", "--set", "eval.min_accuracy=0",
         "--set", "eval.min_kappa=-1", "--set", "eval.max_regression=2",
         "--set", "train.tflite=false"],  # blessed: a 3-epoch run 2 may be worse
        capture_output=True, text=True, cwd=Path(__file__).resolve().parents[2], timeout=900)
    code = done.returncode
    lines = done.stdout.splitlines()  # Keras' fit progress goes to stdout too: the document is the last object
    document = json.loads("\n".join(lines[max(i for i, line in enumerate(lines) if line == "{"):]))
    assert "=== run 2 of 2: train.seed=6 ===" in done.stderr
    runs = document["runs"]
    assert code == document["exit_code"] == errors.OK
    assert [r["seed"] for r in runs] == [5, 6] and document["requested"] == 2
    assert len({r["run_id"] for r in runs}) == 2
    accuracies = [r["accuracy"] for r in runs]
    assert document["accuracy"]["mean"] == pytest.approx(statistics.fmean(accuracies))
    assert document["accuracy"]["std"] == pytest.approx(statistics.stdev(accuracies))
    assert document["kappa"]["n"] == 2

    metadata = PipelineConfig().override([f"work_dir={work_dir}"]).metadata_path
    first, second = (read_run(metadata, r["run_id"]) for r in runs)
    assert first.node("Trainer").state == second.node("Trainer").state == "COMPLETE"
    assert second.node("ImageExampleGen").state == second.node("Transform").state == "CACHED"
    seeds = [record.node("Trainer").prop("custom_config")["seed"] for record in (first, second)]
    assert seeds == [5, 6]
