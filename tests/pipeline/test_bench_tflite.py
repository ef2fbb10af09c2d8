"""A smoke test of `make bench-tflite`'s reporting (tests/benchmarks/bench_tflite.py): its rows come from the
Trainer's tflite.json and the Pusher's decision in the push record; no pipeline runs here."""

from __future__ import annotations

from tests.benchmarks import bench_tflite

REPORT = {
    "metric": "top-1 accuracy", "eval": {"split": "eval", "images": 1000},
    "saved_model": {"accuracy": 0.85, "parameters": 3_400_000, "size_mb": 15.04, "cpu_latency_ms": 21.46},
    "variants": {
        "float32": {"quantization": "none", "accuracy": 0.85, "top1_agreement_with_saved_model": 1.0,
                    "size_mb": 13.2, "cpu_latency_ms": 18.0},
        "int8": {"quantization": "int8 (full integer, calibrated)", "accuracy": 0.80,
                 "top1_agreement_with_saved_model": 0.93, "size_mb": 3.6, "cpu_latency_ms": 6.5},
        "float16": {"error": "conversion failed: boom"},
    },
}
PUSH = {"shipped": ["float32"], "withheld": [{"variant": "int8", "reason": "int8: accuracy 0.8000 vs … > 0.02"},
                                            {"variant": "float16", "reason": "float16: conversion failed: boom"}]}


def test_rows_come_from_tflite_json_and_the_pushers_decision():
    result = {"name": "cifar10-dev", "exit": 0, "wall_s": 600.0, "log": "run.log", "report": REPORT, "push": PUSH,
              "evaluator_accuracy": 0.8512}
    rows = bench_tflite.rows(result)
    assert rows[0] == ("| cifar10-dev | SavedModel | 0.8500 | — | 15.04 | 21.46 (decoding included) | 3,400,000 "
                       "| yes |")
    assert rows[1].startswith("| cifar10-dev | TFLite float32 (none) | 0.8500 | 1.0000 | 13.20 | 18.00 |")
    assert rows[2].startswith("| cifar10-dev | TFLite int8 (full integer, calibrated) | 0.8000 | 0.9300 | 3.60 |")
    assert rows[2].endswith("| no: int8: accuracy 0.8000 vs … > 0.02 |")
    assert "no: conversion failed: boom" in rows[3]
    assert "1000 `eval` images (the Evaluator's accuracy: 0.8512); whole run 10.0 min" in rows[4]


def test_a_run_without_tflite_json_says_so_instead_of_inventing_figures():
    rows = bench_tflite.rows({"name": "demo", "exit": 3, "wall_s": 1.0, "log": "x/run.log", "report": None,
                              "push": None, "evaluator_accuracy": None})
    assert rows == ["| demo | run failed (exit 3) or no tflite.json: see x/run.log | | | | | | |"]
