"""Crash recovery: `python -m pipeline run` SIGKILLed while the Trainer fits, then run again.

The killed run must leave nothing in the serving directory; the re-run must reuse every upstream component from
the cache (ML Metadata state CACHED), resume training from the Trainer's per-epoch backup, and push exactly one
complete version (saved_model.pb and variables/). Tiny data (3 classes × 8 digits), Beam in memory, CPU only.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.configs import PipelineConfig
from pipeline.demo_data import materialize_digits
from pipeline.runs.summary import latest_run

pytestmark = pytest.mark.e2e

EPOCHS = 24
KILL_AFTER = EPOCHS // 2  # epochs backed up when the run is killed: the re-run trains the rest
REPO = Path(__file__).resolve().parents[2]


def _command(data: Path, work: Path) -> list[str]:
    return [sys.executable, "-m", "pipeline", "run", "--data", str(data), "--work-dir", str(work), "--in-memory",
            "--epochs", str(EPOCHS), "--min-accuracy", "0", "--min-kappa", "-1",
            "--preset", "demo", "--set", "transform.image_size=32", "--set", f"train.early_stopping_patience={EPOCHS}",
            "--set", "train.batch_size=8", "--set", "train.tflite=false"]  # TFLite: its own tests


def _saved_epochs(pipeline_root: str) -> int:
    """Epochs the running Trainer has backed up (BackupAndRestore saves `ckpt-<n>` after every epoch)."""
    saved = 0
    for state in glob.glob(os.path.join(pipeline_root, "Trainer", "backup", "*", "head", "**", "checkpoint"),
                           recursive=True):
        match = re.search(r'model_checkpoint_path: "ckpt-(\d+)"', Path(state).read_text())
        saved = max(saved, int(match.group(1)) if match else 0)
    return saved


def _wait_for_training(process: subprocess.Popen, pipeline_root: str, epochs: int, timeout: float = 900) -> float:
    """Seconds until the Trainer's fit has backed up `epochs` epochs."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if process.poll() is not None:
            raise AssertionError(f"the run ended (exit {process.returncode}) before the Trainer could be killed")
        try:
            if _saved_epochs(pipeline_root) >= epochs:
                return time.monotonic() - start
        except OSError:
            pass  # the checkpoint state file is being replaced
        time.sleep(0.2)
    raise AssertionError(f"the Trainer did not back up {epochs} epochs within {timeout} s")


def test_killed_trainer_pushes_nothing_and_the_rerun_reuses_the_cache(tmp_path):
    digits = materialize_digits(tmp_path / "digits", per_class=8)
    data = tmp_path / "data"
    for label in ("0", "1", "2"):
        shutil.copytree(digits / label, data / label)
    work = tmp_path / "work"
    config = PipelineConfig().override(["preset=demo", f"data.root={data}", f"work_dir={work}"])
    env = {**os.environ, "PYTHONPATH": str(REPO)}

    first = subprocess.Popen(_command(data, work), cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        to_training = _wait_for_training(first, config.pipeline_root, KILL_AFTER)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)  # the run's own process group: nothing else
        first.wait()
    assert first.returncode == -signal.SIGKILL
    killed = latest_run(config.metadata_path)
    assert {c.node_id: c.state for c in killed.components}["Trainer"] == "RUNNING"  # never published
    assert os.listdir(config.push_base) == []  # no version, no partial copy

    started = time.monotonic()
    second = subprocess.run(_command(data, work), cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    rerun_seconds = time.monotonic() - started
    assert second.returncode == 0, second.stderr[-3000:]
    summary = latest_run(config.metadata_path)
    states = {c.node_id: c.state for c in summary.components}
    for node in ("ImageExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator", "Transform"):
        assert states[node] == "CACHED", states
    assert states["Trainer"] == "COMPLETE" and states["Pusher"] == "COMPLETE", states
    assert summary.pushed

    (history_file,) = glob.glob(os.path.join(config.pipeline_root, "Trainer", "model_run", "*", "history.json"))
    epochs_after_resume = len(json.loads(Path(history_file).read_text())["history"]["loss"])
    assert 0 < epochs_after_resume <= EPOCHS - KILL_AFTER  # resumed from the killed run's backup, not from epoch 1

    versions = os.listdir(config.push_base)
    assert len(versions) == 1 and versions[0].isdigit(), versions  # only complete versions, no hidden .partial
    version = Path(config.push_base) / versions[0]
    assert (version / "saved_model.pb").is_file() and (version / "variables").is_dir()
    assert str(version) == summary.pushed_model
    print(f"\ncrash recovery: Trainer fitting {to_training:.1f} s after start (killed then); re-run "
          f"{rerun_seconds:.1f} s, resumed with {epochs_after_resume}/{EPOCHS} epochs left; re-run components: "
          + ", ".join(f"{c.node_id} {c.state} {c.seconds:.1f} s" for c in summary.components))
