"""The report's cost table (pipeline/report/cost.py, templates cost.html / cost.md): the SavedModel and each TFLite
variant with accuracy, size, latency and parameters, and what the Pusher shipped or withheld."""

from __future__ import annotations

import json

from bs4 import BeautifulSoup

from components.pusher.serving_layout import PUSH_RECORD
from pipeline.report.cost import cost_rows
from pipeline.report.data import ReportData
from pipeline.report.render import render_html, render_markdown

HISTORY = {
    "parameters": 4491, "export": {"saved_model_mb": 0.47, "cpu_latency_ms": 0.63},
    "tflite": {
        "metric": "top-1 accuracy", "eval": {"split": "eval", "images": 24},
        "saved_model": {"accuracy": 0.9, "parameters": 4491, "size_mb": 0.47, "cpu_latency_ms": 0.63},
        "variants": {"float32": {"accuracy": 0.9, "size_mb": 0.0203, "cpu_latency_ms": 0.03, "quantization": "none"},
                     "int8": {"accuracy": 0.8, "size_mb": 0.0101, "cpu_latency_ms": 0.021,
                              "quantization": "int8 (full integer, calibrated)"}}},
}


def test_cost_table_lists_every_model_and_what_the_pusher_did(tmp_path):
    (tmp_path / PUSH_RECORD).parent.mkdir(parents=True)
    (tmp_path / PUSH_RECORD).write_text(json.dumps({"model_uri": "m", "tflite": {
        "shipped": ["float32"], "withheld": [{"variant": "int8", "reason": "int8: accuracy 0.8000 vs 0.9000"}]}}))
    rows, note = cost_rows(HISTORY, str(tmp_path))
    assert [(r.model, r.accuracy, r.size_mb, r.cpu_latency_ms, r.parameters) for r in rows] == [
        ("SavedModel", 0.9, 0.47, 0.63, 4491), ("TFLite float32", 0.9, 0.0203, 0.03, 4491),
        ("TFLite int8", 0.8, 0.0101, 0.021, 4491)]
    assert rows[1].note == "none; shipped"
    assert rows[2].note == "int8 (full integer, calibrated); withheld (int8: accuracy 0.8000 vs 0.9000)"
    assert "top-1 accuracy on the same 24 images of the eval split" in note

    data = ReportData(run_id="r", cost=rows, cost_note=note)
    soup = BeautifulSoup(render_html(data), "html.parser")
    cells = [[td.get_text(" ", strip=True) for td in tr.find_all("td")] for tr in soup.select("#cost tbody tr")]
    assert cells[2][:5] == ["TFLite int8", "0.8000", "0.010", "0.021", "4,491"]
    assert "| TFLite int8 | 0.8000 | 0.010 | 0.021 |" in render_markdown(data)


def test_cost_table_of_a_run_without_tflite_variants_says_why():
    rows, note = cost_rows({"export": HISTORY["export"], "parameters": 10})
    assert [(r.model, r.size_mb, r.parameters) for r in rows] == [("SavedModel", 0.47, 10)]
    assert note.startswith("No TFLite variants in this run (train.tflite=false")
    assert cost_rows({}) == ([], "")


def test_the_session_runs_report_has_its_cost_table(pipeline_run):
    from pipeline.report.collect import collect_report_data  # reads ML Metadata: only for this test

    data = collect_report_data(pipeline_run.config.metadata_path, pipeline_run.summary.run_id, max_samples=0)
    assert [row.model for row in data.cost] == ["SavedModel", "TFLite float32", "TFLite float16", "TFLite int8"]
    assert all(row.size_mb and row.cpu_latency_ms and row.accuracy is not None for row in data.cost)
    assert all(row.note.endswith(("shipped", ")")) for row in data.cost[1:])  # shipped, or withheld (reason)
    assert "of the eval split" in data.cost_note
