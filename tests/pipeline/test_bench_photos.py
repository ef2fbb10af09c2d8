"""A smoke test of `make bench-photos`' reporting (tests/benchmarks/bench_photos.py): its table is built from the
records a run leaves (the Evaluator's summary and the Trainer's history.json); no pipeline runs here."""

from __future__ import annotations

from tests.benchmarks import bench_photos

HISTORY = {
    "backbone": "efficientnet_lite0", "image_size": 224, "train_examples": 4500,
    "phases": [{"name": "head", "history": {"loss": [1.0] * 10}, "fit_seconds": 5.0, "extract_seconds": 45.0},
               {"name": "fine_tune", "history": {"loss": [1.0] * 4}, "fit_seconds": 360.0}],
    "export": {"saved_model_mb": 15.04, "cpu_latency_ms": 21.46},
    "tflite": {"seconds": 20.4},
}


def test_table_rows_come_from_the_runs_records():
    result = {"preset": "default", "wall_s": 600.0, "trainer_s": 450.0, "accuracy": 0.86123, "kappa": 0.84567,
              "blessed": True, "history": HISTORY}
    before = {"preset": "demo", "wall_s": 90.0, "trainer_s": None, "accuracy": None, "kappa": None,
              "blessed": None, "history": {}}
    lines = bench_photos.table("cifar10-dev", [("default", result), ("before", before)])
    assert lines[0].startswith("### cifar10-dev (≥ 0.90 accuracy")
    row = lines[4]
    assert "| default (`--preset default`) | efficientnet_lite0, 224 px | 0.8612 | 0.8457 | True | 10.0 min" in row
    # outside fit: 450 s less fit (365), feature extraction (45) and the TFLite variants (20.4)
    assert "| 450 s | 4 % | 20 s | head 9000, features 100, fine_tune 50 | 15.0 | 21.5 |" in row
    assert lines[5].count("–") >= 6  # a run without records: dashes, not invented figures


def test_accuracy_shows_the_count_behind_it():
    # 395 of 399 is 0.98997: "0.9900" alone would read as reaching a 0.99 target
    assert bench_photos.accuracy_cell(395 / 399, 399) == "0.9900 (395/399)"
    assert bench_photos.accuracy_cell(0.86123, None) == "0.8612"
    assert bench_photos.accuracy_cell(None, 399) == "–"
