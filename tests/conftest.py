"""Shared fixtures: small real image files, and ONE end-to-end pipeline run per test session.

`pipeline_run` runs the whole TFX DAG (Beam in_memory) on 12 real digit images per class and is reused by every
test that needs a trained, pushed model (end-to-end, export, serving), so the slow part happens once.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import components.environment  # noqa: E402,F401


def encode(array: np.ndarray, fmt: str, **save_args: object) -> bytes:
    """Encode a uint8 array with Pillow."""
    buffer = io.BytesIO()
    mode = {2: "L", 3: "RGB"}[array.ndim] if array.ndim != 3 or array.shape[-1] != 4 else "RGBA"
    Image.fromarray(array, mode=mode).save(buffer, format=fmt, **save_args)
    return buffer.getvalue()


@pytest.fixture(scope="session")
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture()
def rgb_png(rng: np.random.Generator) -> bytes:
    return encode(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8), "PNG")


@pytest.fixture(scope="session")
def digits_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 real sklearn digits per class as PNG class folders."""
    from pipeline.demo_data import materialize_digits

    return materialize_digits(tmp_path_factory.mktemp("data") / "digits", per_class=12)


@dataclass
class PipelineRun:
    """What the session's end-to-end run produced."""

    config: object
    summary: object
    work_dir: Path
    temp_entries_left: list[str]  # what appeared in the system temporary folder during the run and stayed


@pytest.fixture(scope="session")
def pipeline_run(digits_root: Path, tmp_path_factory: pytest.TempPathFactory) -> PipelineRun:
    """The whole pipeline (Tuner searching 2 trials), run once, on a copy of `digits_root` plus one corrupt JPEG;
    a blessed model is pushed."""
    from pipeline.configs import PipelineConfig
    from pipeline.local_runner import run_local

    data = tmp_path_factory.mktemp("e2e") / "digits"
    shutil.copytree(digits_root, data)
    (data / "3" / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 this JPEG stops here")
    work_dir = tmp_path_factory.mktemp("work")
    config = PipelineConfig().override([
        "preset=demo",
        f"data.root={data}",
        f"work_dir={work_dir}",
        "train.epochs=12",
        "train.batch_size=16",
        "train.conv_filters=[16, 32]",
        "transform.image_size=16",
        "tuner.enabled=true",
        "tuner.max_trials=2",
        "tuner.epochs_per_trial=3",
        "eval.min_accuracy=0.3",
        "eval.min_kappa=0.2",
        "beam.direct_running_mode=in_memory",
    ])
    temp = Path(tempfile.gettempdir())
    before = set(os.listdir(temp))
    summary = run_local(config)
    # TF's AutoGraph keeps its generated modules there until the interpreter exits (then removes them)
    left = sorted(name for name in set(os.listdir(temp)) - before
                  if not name.startswith(("pytest-of-", "__autograph_generated_file")))
    return PipelineRun(config=config, summary=summary, work_dir=work_dir, temp_entries_left=left)


@pytest.fixture(scope="session")
def tflite_model(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A small multiclass model trained and exported by the Trainer's code, with its three TFLite variants
    (tests/tflite_helpers.py)."""
    from tests.tflite_helpers import trained_variants  # loads TensorFlow: only for the tests that use it

    return trained_variants(tmp_path_factory.mktemp("tflite"), "multiclass", through_trainer=True)
