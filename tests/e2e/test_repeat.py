"""End to end: `visionline run --repeat 2` — two normal runs with seeds train.seed and +1 (the second reuses
ingestion and Transform, its Trainer re-runs), then one JSON document with each run's accuracy and kappa and their
mean ± sample std.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.cli import errors
from pipeline.configs import PipelineConfig
from pipeline.runs.record import read_run
from pipeline.runs.store import open_store, pipeline_runs

pytestmark = pytest.mark.e2e


SETTINGS = ["--in-memory", "--preset", "demo", "--set", "train.epochs=3", "--set", "train.conv_filters=[8]",
            "--set", "transform.image_size=16", "--set", "eval.min_accuracy=0", "--set", "eval.min_kappa=-1",
            "--set", "eval.max_regression=2",  # blessed: a 3-epoch run 2 may be worse
            "--set", "train.tflite=false"]


def _visionline(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline", *args], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[2], timeout=900)


@pytest.fixture(scope="module")
def repeated(digits_root, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """`run --repeat 2` (seeds 5 and 6) in a work dir of its own."""
    work_dir = tmp_path_factory.mktemp("repeat") / "work"
    done = _visionline("run", "--data", str(digits_root), "--work-dir", str(work_dir), "--repeat", "2", "--json",
                       "--set", "train.seed=5", *SETTINGS)
    return work_dir, done


def test_run_repeat_twice_reports_each_run_and_the_spread(repeated):
    work_dir, done = repeated
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


def test_prune_keeps_the_newest_run_and_a_pruned_artifact_is_never_taken_from_the_cache(repeated, digits_root):
    # runs after the test above: it prunes the shared work dir
    work_dir, _ = repeated
    metadata = PipelineConfig().override([f"work_dir={work_dir}"]).metadata_path
    first_id, second_id = (run.name for run in pipeline_runs(open_store(metadata)))
    pruned = _visionline("prune", "--work-dir", str(work_dir), "--keep-runs", "1", "--json")
    assert pruned.returncode == 0, pruned.stderr
    document = json.loads(pruned.stdout)
    assert document["kept_runs"] == [second_id] and document["pruned_runs"] == [first_id]
    assert document["freed_bytes"] > 0 and document["problems"] == []
    first, second = read_run(metadata, first_id), read_run(metadata, second_id)
    assert "Tuner.best_hyperparameters" in first.pruned and second.pruned == []
    assert not os.path.exists(first.output("Tuner", "best_hyperparameters").uri)
    assert os.path.isdir(second.output("ImageExampleGen", "examples").uri)  # run 2 reused it: kept

    for seed, tuner in ((6, "CACHED"), (5, "COMPLETE")):  # run 2's tuning is kept, run 1's was pruned
        again = _visionline("run", "--data", str(digits_root), "--work-dir", str(work_dir), "--set",
                            f"train.seed={seed}", *SETTINGS, *(["--set", "keep_runs=1"] if seed == 5 else []))
        assert again.returncode == 0, again.stderr[-2000:]
        record = read_run(metadata)
        assert record.node("ImageExampleGen").state == "CACHED", seed
        assert record.node("Tuner").state == tuner, seed
    # keep_runs=1 pruned after the last run: of runs 1, 2 and the seed-6 rerun, whatever the last did not use
    assert re.search(r"^pruned \(keep_runs=1\): [1-9]\d* artifacts of 3 older runs, [\d.,]+ MB freed$", again.stdout,
                     re.MULTILINE), again.stdout[-1500:]
    assert [r.name for r in pipeline_runs(open_store(metadata)) if read_run(metadata, r.name).pruned == []] == \
        [record.run_id]
