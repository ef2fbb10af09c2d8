"""Tests for pipeline.report and the `report` / `runs` commands (pipeline.cli.records): the HTML model report of
the session's pipeline run (every section, only embedded PNG images, per-class table equal to scikit-learn on the
model's own predictions), the Landis–Koch reading, HTML/Markdown escaping of hostile class names with synthetic
data, the run listing, and the report of each task type (multiclass, binary, multilabel) collected from real TFMA
evaluations of hand-made predictions (tests/evaluation_helpers.py) and checked against scikit-learn.
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import glob
import io
import json
import os
import re

import numpy as np
import pytest
from bs4 import BeautifulSoup
from PIL import Image

from pipeline.cli import errors, options, records
from pipeline.component_ids import EVALUATOR
from pipeline.configs import PipelineConfig
from pipeline.report.build import build_report
from pipeline.report.collect import collect_evaluation, collect_lineage
from pipeline.report.data import (
    ACCURACY,
    KAPPA,
    SECTIONS,
    TASKS,
    Gate,
    HeadlineMetric,
    LabelMetrics,
    LineageEntry,
    ReportData,
    Sample,
    kappa_reading,
    natural_key,
    per_class_metrics,
    sections,
    split_order,
)
from pipeline.report.listing import RunRow, format_runs, list_runs, runs_json
from pipeline.report.render import render_html, render_markdown
from pipeline.report.samples import MAX_SAMPLES
from pipeline.runs.data_health import Anomaly
from pipeline.runs.evaluation import BinaryConfusion
from pipeline.runs.record import ComponentRun, Node, RunRecord
from pipeline.runs.store import sanitize_run_id
from tests import evaluation_helpers

HOSTILE = "<script>alert(1)</script>"
DATA_URI = "data:image/png;base64,"


def _text(node) -> str:
    """A node's text with whitespace collapsed (templates wrap long lines)."""
    return " ".join(node.get_text(" ").split())


# ----- the session's real run ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def built(pipeline_run):
    """The report of the fixture's run (named explicitly: other tests may add later runs to the same store)."""
    return build_report(pipeline_run.config.metadata_path, run_id=pipeline_run.summary.run_id)


@pytest.fixture(scope="module")
def soup(built):
    with open(built.html, encoding="utf-8") as handle:
        return BeautifulSoup(handle.read(), "html.parser")


def _eval_predictions(pipeline_run):
    """(true labels, predicted labels, class names) of the run's model on the whole eval split, computed here."""
    import tensorflow as tf

    pattern = os.path.join(pipeline_run.config.pipeline_root, "ImageExampleGen", "examples", "*", "Split-eval", "*")
    images, labels = [], []
    for record in tf.data.TFRecordDataset(sorted(glob.glob(pattern)), compression_type="GZIP"):
        feature = tf.train.Example.FromString(record.numpy()).features.feature
        images.append(feature["image"].bytes_list.value[0])
        labels.append(feature["label"].bytes_list.value[0].decode())
    serve = tf.saved_model.load(pipeline_run.summary.pushed_model).signatures["serving_default"]
    outputs = serve(images=tf.constant(images))
    return labels, [p.decode() for p in outputs["predicted_class"].numpy()], [
        c.decode() for c in outputs["classes"].numpy()[0]]


@pytest.mark.e2e
def test_report_is_written_into_the_runs_folder(built, pipeline_run):
    expected = os.path.join(pipeline_run.config.pipeline_root, "reports", sanitize_run_id(built.run_id))
    assert built.run_id == pipeline_run.summary.run_id
    assert built.out_dir == expected
    assert os.path.isfile(built.html) and os.path.isfile(built.markdown)
    assert ":" not in os.path.basename(built.out_dir)


@pytest.mark.e2e
def test_report_has_every_section(soup, pipeline_run):
    for section_id, title in SECTIONS:
        section = soup.find("section", id=section_id)
        assert section is not None, section_id
        assert section.find("h2").get_text(strip=True) == title
    text = _text(soup)
    assert "Blessed and pushed as version" in text
    assert os.path.basename(pipeline_run.summary.pushed_model) in text
    assert pipeline_run.summary.run_id in text
    # Ingestion: counts, the quarantined corrupt JPEG and a link to the quarantine report.
    ingestion = soup.find("section", id="ingestion")
    assert "corrupt.jpg" in _text(ingestion)
    assert any(a["href"].endswith("quarantine_report.csv") for a in ingestion.find_all("a"))
    # Thresholds from the Evaluator's config (conftest: min accuracy 0.3, min kappa 0.2).
    metrics = _text(soup.find("section", id="metrics"))
    assert "≥ 0.3000" in metrics and "≥ 0.2000" in metrics
    assert "no baseline model yet" in metrics  # first model: change-vs-baseline gates not applied
    kappa = pipeline_run.summary.metrics["cohen_kappa"]
    assert kappa_reading(kappa) in _text(soup.find("section", id="kappa"))
    lineage = _text(soup.find("section", id="lineage"))
    for kind in ("Examples", "ExampleStatistics", "Schema", "TransformGraph", "Model", "ModelEvaluation",
                 "PushedModel"):
        assert f" {kind} " in f" {lineage} ", kind
    hyper = _text(soup.find("section", id="hyperparameters"))
    assert "batch_size 16" in hyper and "epochs 12" in hyper
    assert soup.find("section", id="anomalies").find(string=re.compile("no anomalies"))
    assert not soup.select("ul.notes li"), [li.get_text() for li in soup.select("ul.notes li")]


@pytest.mark.e2e
def test_every_image_is_an_embedded_png_and_nothing_is_fetched(soup, built):
    images = soup.find_all("img")
    assert len(images) >= 3 + 1  # confusion, training, distribution charts + samples
    for img in images:
        src = img["src"]
        assert src.startswith(DATA_URI), src[:60]
        picture = Image.open(io.BytesIO(base64.b64decode(src[len(DATA_URI):], validate=True)))
        assert picture.format == "PNG"
        picture.verify()
    assert len(soup.select("#samples figure")) == min(MAX_SAMPLES, 24)
    assert not soup.find_all(["script", "link", "iframe"])
    with open(built.html, encoding="utf-8") as handle:
        assert not re.search(r"""(src|href)=["']https?://""", handle.read())


@pytest.mark.e2e
def test_per_class_table_equals_sklearn_on_the_models_predictions(soup, pipeline_run):
    from sklearn.metrics import classification_report

    labels, predicted, classes = _eval_predictions(pipeline_run)
    names = sorted(set(labels) | set(predicted))
    expected = classification_report(labels, predicted, output_dict=True, zero_division=0)
    table = soup.find("table", id="per-class-table")
    rows = {}
    for tr in table.find_all("tr")[1:]:
        cells = tr.find_all("td")
        rows[cells[0].get_text(strip=True)] = [float(td["data-value"]) for td in cells[1:]]
    assert set(rows) == set(names) | {"macro avg", "weighted avg"}
    for name, values in rows.items():
        want = expected[name]
        assert values == pytest.approx([want["precision"], want["recall"], want["f1-score"], want["support"]],
                                       abs=1e-9), name
    f1s = [rows[td.get_text(strip=True)][2] for td in table.select("tr.class-row td:first-child")]
    assert f1s == sorted(f1s)  # worst first
    # the fixture's eval split is tiny: some classes may be missing
    absent = sorted(set(classes) - set(names), key=natural_key)
    if absent:
        assert f"never predicted (left out of the averages): {', '.join(absent)}." in _text(table.parent)


@pytest.mark.e2e
def test_markdown_summary(built, pipeline_run):
    with open(built.markdown, encoding="utf-8") as handle:
        text = handle.read()
    assert text.startswith("# Model report")
    assert "blessed and pushed as version" in text
    assert "Landis–Koch" in text and "[report.html](report.html)" in text
    assert "1 quarantined" in text


@pytest.mark.e2e
def test_list_runs_lists_the_fixture_run(pipeline_run):
    rows = list_runs(pipeline_run.config.metadata_path)
    assert [r.time for r in rows] == sorted((r.time for r in rows), reverse=True)
    row = next(r for r in rows if r.run_id == pipeline_run.summary.run_id)
    summary = pipeline_run.summary
    assert row.accuracy == pytest.approx(summary.metrics["sparse_categorical_accuracy"])
    assert row.kappa == pytest.approx(summary.metrics["cohen_kappa"])
    assert row.blessed is True and row.state == "COMPLETE"
    assert row.pushed_version == os.path.basename(summary.pushed_model)
    table = format_runs(rows).splitlines()
    assert table[0].split() == ["RUN", "STATE", "BACKBONE", "PRESET", "IMAGE", "PARAMS", "MODEL_MB", "TRAIN",
                                "CPU_MS", "ACCURACY", "KAPPA", "BLESSED", "PUSHED"]
    assert any(line.startswith(summary.run_id) and row.pushed_version in line for line in table)


@pytest.mark.e2e
def test_cli_runs_json_and_errors(pipeline_run, capsys, tmp_path):
    parser = argparse.ArgumentParser(prog="visionline")
    sub = parser.add_subparsers(dest="command", required=True)
    records.register(sub)
    sub.add_parser("other")
    work_dir = str(pipeline_run.work_dir)

    def dispatch(argv):
        args = parser.parse_args(argv)
        return errors.run_handler(args.handler, args) if hasattr(args, "handler") else None

    assert options.metadata_path(work_dir) == pipeline_run.config.metadata_path
    assert dispatch(["other"]) is None
    assert dispatch(["runs", "--work-dir", work_dir, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert pipeline_run.summary.run_id in [r["run_id"] for r in listed]
    assert dispatch(["report", "no-such-run", "--work-dir", work_dir]) == 2
    assert "no run named 'no-such-run'" in capsys.readouterr().err
    args = parser.parse_args(["report", "--work-dir", work_dir, "--out", "/tmp/x"])
    assert (args.run, args.out) == (None, "/tmp/x")
    # the config's report.* fields reach `visionline report` as they reach the report after `run`
    out = tmp_path / "configured"
    assert dispatch(["report", pipeline_run.summary.run_id, "--work-dir", work_dir, "--out", str(out),
                     "--set", "report.label_issues=false"]) == 0
    assert "turned off (report.label_issues=false)" in (out / "report.html").read_text(encoding="utf-8")
    assert str(out / "report.html") in capsys.readouterr().out


# ----- pure functions and the renderer on synthetic data ------------------------------------------------------
@pytest.mark.parametrize("kappa, reading", [
    (-1.0, "poor"), (-0.0001, "poor"), (0.0, "slight"), (0.1, "slight"), (0.20, "slight"), (0.21, "fair"),
    (0.40, "fair"), (0.41, "moderate"), (0.60, "moderate"), (0.61, "substantial"), (0.80, "substantial"),
    (0.81, "almost perfect"), (1.0, "almost perfect"), (float("nan"), "undefined"), (None, "undefined"),
])
def test_kappa_reading_landis_koch_boundaries(kappa, reading):
    assert kappa_reading(kappa) == reading


@pytest.mark.parametrize("seed", range(4))
def test_per_class_metrics_match_sklearn(seed):
    from sklearn.metrics import classification_report, confusion_matrix

    rng = np.random.default_rng(seed)
    names = ["cat", "dog", "bird", "fish", "never"]
    y_true = rng.integers(0, 4, 200)  # class 4 never occurs ...
    y_pred = np.where(rng.random(200) < 0.6, y_true, rng.integers(0, 4, 200))
    y_pred[:3] = 4  # ... but is predicted a few times (precision 0, recall 0 by zero_division=0)
    matrix = confusion_matrix(y_true, y_pred, labels=range(5))
    result = per_class_metrics(matrix, names)
    expected = classification_report([names[i] for i in y_true], [names[i] for i in y_pred], labels=names,
                                     output_dict=True, zero_division=0)
    for row in [*result.rows, result.macro, result.weighted]:
        want = expected[row.name]
        assert (row.precision, row.recall, row.f1, row.support) == pytest.approx(
            (want["precision"], want["recall"], want["f1-score"], want["support"]), abs=1e-12)
    assert result.accuracy == pytest.approx(np.mean(y_true == y_pred))
    assert [r.f1 for r in result.rows] == sorted(r.f1 for r in result.rows)


def test_per_class_metrics_leave_out_classes_without_data_like_sklearn():
    from sklearn.metrics import classification_report

    names = ["a", "b", "c", "d"]
    y_true, y_pred = ["a", "a", "b", "b", "b"], ["a", "b", "b", "b", "d"]  # c: never seen; d: only predicted
    matrix = np.zeros((4, 4))
    for t, p in zip(y_true, y_pred):
        matrix[names.index(t), names.index(p)] += 1
    result = per_class_metrics(matrix, names)
    expected = classification_report(y_true, y_pred, output_dict=True, zero_division=0)
    assert result.absent == ["c"]
    assert sorted(r.name for r in result.rows) == ["a", "b", "d"]
    for row in [*result.rows, result.macro, result.weighted]:
        want = expected[row.name]
        assert (row.precision, row.recall, row.f1, row.support) == pytest.approx(
            (want["precision"], want["recall"], want["f1-score"], want["support"]), abs=1e-12)


def _png(colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (6, 6), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def _synthetic(names: list[str], **overrides) -> ReportData:
    gate = Gate(KAPPA, "value", "≥ 0.9000", 0.55, "fail", f"kappa of {names[0]} too low")
    data = ReportData(
        run_id=f"run {HOSTILE}",
        pipeline_name="visionline",
        components=[ComponentRun("Trainer", "COMPLETE", 3.0)],
        metrics=[HeadlineMetric(ACCURACY, 0.7, 0.72, [Gate(ACCURACY, "value", "≥ 0.5000",
                                                                                0.7)]),
                 HeadlineMetric(KAPPA, 0.55, None, [gate])],
        blessed=False,
        class_names=names,
        confusion=[[5, 1, 0], [2, 3, 1], [0, 0, 4]],
        history={"loss": [1.0, 0.5, 0.4], "val_loss": [1.1, 0.6, 0.7], "accuracy": [0.5, 0.7, 0.8],
                 "val_accuracy": [0.4, 0.6, 0.6]},
        best_epoch=2,
        class_distribution={"train": {n: 10.0 for n in names}, "eval": {n: 4.0 for n in names}},
        samples=[Sample(_png((255, 0, 0)), names[0], names[1], 0.8, f"{names[0]}/a.png"),
                 Sample(_png((0, 255, 0)), names[2], names[2], 0.9, "")],
        samples_scanned=2,
        samples_misclassified=1,
        hyperparameters={"model": HOSTILE, "conv_filters": [16, 32]},
        lineage=[LineageEntry("Trainer", "model", "Model", 7, f"/tmp/{HOSTILE}/model")],
        ingest={"files_seen": 3, "ingested": 2, "quarantined": 1, "quarantine_report": f"/tmp/{HOSTILE}.csv",
                "quarantined_by_reason": {HOSTILE: 1}},
        quarantine_rows=[{"path": f"{HOSTILE}.jpg", "label": names[0], "split": "train", "reason": HOSTILE}],
        anomalies={"train": [Anomaly("label", "ERROR", HOSTILE, f"Unexpected value {HOSTILE}")]},
        notes=[f"note {HOSTILE}"],
    )
    return dataclasses.replace(data, **overrides)


def test_renderer_escapes_hostile_labels_everywhere():
    names = [HOSTILE, "cat & dog", "$x_1$ | *b*"]
    data = _synthetic(names)
    html = render_html(data)
    assert "<script" not in html.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "cat &amp; dog" in html
    soup = BeautifulSoup(html, "html.parser")
    assert not soup.find_all("script")
    table_names = [td.get_text() for td in soup.select("#per-class-table tr.class-row td:first-child")]
    assert sorted(table_names) == sorted(names)  # shown as text, exactly as named
    captions = " ".join(f.get_text(" ") for f in soup.select("#samples figcaption"))
    assert HOSTILE in captions
    for img in soup.find_all("img"):
        assert img["src"].startswith(DATA_URI)
        Image.open(io.BytesIO(base64.b64decode(img["src"][len(DATA_URI):]))).verify()
    markdown = render_markdown(data)
    assert "<script" not in markdown.lower() and "&lt;script&gt;" in markdown


def test_not_blessed_and_cached_runs_render_their_reasons():
    names = ["a", "b", "c"]
    data = _synthetic(names, components=[ComponentRun(n, "CACHED", 0.0) for n in
                                         ("ImageExampleGen", "Trainer", "Evaluator", "Pusher")]
                      + [ComponentRun("latest_blessed_model_resolver", "COMPLETE", 0.0)])
    assert data.fully_cached
    soup = BeautifulSoup(render_html(data), "html.parser")
    verdict = _text(soup.find("section", id="verdict"))
    assert "NOT blessed" in verdict and "failed 1 gate" in verdict
    assert "Cohen's kappa" in verdict and "kappa of a too low" in verdict
    assert "cached" in verdict
    assert "NOT blessed: failed Cohen's kappa (unweighted) value gate" in render_markdown(data)
    assert "- gate failed: kappa (value) = " in render_markdown(data)  # as the config names it (eval.min_kappa)


def test_renderer_copes_with_a_run_that_never_got_to_evaluation():
    data = ReportData(run_id="2026-01-01T00:00:00", evaluation_note="the Evaluator did not run",
                             components=[ComponentRun("ImageExampleGen", "FAILED", 1.0)])
    soup = BeautifulSoup(render_html(data), "html.parser")
    assert all(soup.find("section", id=section_id) for section_id, _ in SECTIONS)
    assert "Not evaluated" in _text(soup.find("section", id="verdict"))
    assert not soup.find_all("img")
    assert "not evaluated" in render_markdown(data)


def test_format_runs_aligns_columns():
    rows = [RunRow("2026-01-02T00:00:00.1", "2026-01-02 00:00:00", "COMPLETE", 0.98765, 0.9, True, "17"),
            RunRow("2026-01-01T00:00:00.1", "2026-01-01 00:00:00", "FAILED", None, float("nan"), None, None)]
    lines = format_runs(rows).splitlines()
    assert len(lines) == 3 and len({line.index("STATE") for line in lines[:1]}) == 1
    assert "0.9877" in lines[1] and "yes" in lines[1] and lines[1].endswith("17")
    assert "—" in lines[2] and "nan" in lines[2]
    assert lines[1].index("COMPLETE") == lines[2].index("FAILED") == lines[0].index("STATE")
    assert json.loads(runs_json(rows))[1]["kappa"] is None
    assert format_runs([]).endswith("(no runs recorded)")


# ----- every task type, from real TFMA evaluations of hand-made predictions -----------------------------------
def _facts(run, blessed: bool) -> RunRecord:
    """ML Metadata facts of a run whose Evaluator produced `run.output` (protos as ML Metadata returns them)."""
    from ml_metadata.proto import metadata_store_pb2
    from tfx.utils import proto_utils

    execution = metadata_store_pb2.Execution(id=1, last_known_state=metadata_store_pb2.Execution.COMPLETE)
    execution.custom_properties["eval_config"].string_value = proto_utils.proto_to_json(run.evaluation)
    evaluation = metadata_store_pb2.Artifact(id=2, type_id=10, uri=run.output)
    blessing = metadata_store_pb2.Artifact(id=3, type_id=11, uri=run.output + "-blessing")
    blessing.custom_properties["blessed"].int_value = int(blessed)
    baseline = metadata_store_pb2.Artifact(id=4, type_id=12, uri="/models/baseline")
    node = Node(EVALUATOR, execution, "COMPLETE", inputs={"baseline_model": [baseline]},
                        outputs={"evaluation": [evaluation], "blessing": [blessing]})
    return RunRecord(run=metadata_store_pb2.Context(name="run-1"), pipeline_name="visionline", executions=[node],
                     type_names={10: "ModelEvaluation", 11: "ModelBlessing", 12: "Model"})


def _collected(run, **fields) -> ReportData:
    data = ReportData(run_id="run-1", class_names=list(run.class_names), **fields)
    facts = _facts(run, bool(run.validation.validation_ok))
    collect_lineage(facts, data)
    collect_evaluation(facts, data)
    return data


def _check_page(html: str, task: str) -> BeautifulSoup:
    """Every section with its task heading, and every image an embedded PNG that decodes."""
    soup = BeautifulSoup(html, "html.parser")
    for section_id, title in sections(task):
        section = soup.find("section", id=section_id)
        assert section is not None, section_id
        assert section.find("h2").get_text(strip=True) == title
    images = soup.find_all("img")
    assert images
    for img in images:
        src = img["src"]
        assert src.startswith(DATA_URI)
        picture = Image.open(io.BytesIO(base64.b64decode(src[len(DATA_URI):], validate=True)))
        assert picture.format == "PNG"
        picture.verify()
    return soup


def _table(table) -> dict[str, list[float]]:
    rows = {}
    for tr in table.find_all("tr")[1:]:
        cells = tr.find_all("td")
        rows[cells[0].get_text(strip=True)] = [float(td["data-value"]) for td in cells[1:] if td.has_attr("data-value")]
    return rows


def test_binary_report_from_tfma_matches_sklearn_and_names_the_positive_class():
    from sklearn.metrics import classification_report, confusion_matrix, roc_auc_score

    run = evaluation_helpers.binary_run()
    data = _collected(run)
    assert data.task == "binary" and data.positive_class == "dog"  # vocabulary index 1
    labels, p = run.labels, run.probabilities[:, 1]
    predicted = (p > 0.5).astype(int)
    tn, fp, fn, tp = confusion_matrix(labels, predicted).ravel()
    b = data.binary_confusion
    assert (b.threshold, b.tp, b.fp, b.fn, b.tn) == (0.5, tp, fp, fn, tn)
    by_name = {m.name: m for m in data.metrics}
    assert [m.name for m in data.metrics] == ["sparse_categorical_accuracy", "cohen_kappa", "precision", "recall",
                                              "f1_score", "auc", "auc_precision_recall", "example_count"]
    assert by_name["auc"].value == pytest.approx(roc_auc_score(labels, p), abs=1e-3)
    assert {(g.metric, g.kind): g.status for m in data.metrics for g in m.gates} == {
        ("sparse_categorical_accuracy", "value"): "pass", ("sparse_categorical_accuracy", "change"): "pass",
        ("cohen_kappa", "value"): "pass", ("cohen_kappa", "change"): "pass",
        ("precision", "change"): "fail", ("recall", "value"): "pass", ("recall", "change"): "pass",
        ("f1_score", "value"): "pass", ("auc", "value"): "fail", ("auc_precision_recall", "value"): "pass"}
    assert data.blessed is False and len(data.failed_gates) == 2

    soup = _check_page(render_html(data), "binary")
    assert soup.find(id="positive-class").get_text(strip=True) == "dog"
    cells = {td.get_text(" ", strip=True).split()[0]: float(td["data-value"])
             for td in soup.select("#binary-confusion td")}
    assert cells == {"TN": tn, "FP": fp, "FN": fn, "TP": tp}
    names = run.class_names
    expected = classification_report([names[i] for i in labels], [names[i] for i in predicted], output_dict=True)
    for name, values in _table(soup.find("table", id="per-class-table")).items():
        want = expected[name]
        assert values == pytest.approx([want["precision"], want["recall"], want["f1-score"], want["support"]]), name
    metrics = _text(soup.find("section", id="metrics"))
    for label in ("AUC-ROC", "AUC-PR", "Precision", "Recall", "F1", "Cohen's kappa (unweighted)"):
        assert label in metrics, label
    assert "NOT blessed" in _text(soup.find("section", id="verdict"))
    markdown = render_markdown(data)
    assert f"Positive class: dog (vocabulary index 1); at threshold 0.5: TP {tp}, FP {fp}, FN {fn}, TN {tn}" in markdown
    assert "AUC-ROC" in markdown


def test_multilabel_report_from_tfma_has_per_label_table_equal_to_sklearn():
    from sklearn.metrics import f1_score, hamming_loss, precision_recall_fscore_support

    run = evaluation_helpers.multilabel_run()
    data = _collected(run, samples=[Sample(_png((9, 9, 9)), "car, sky", "sky", 0.8, "a.png"),
                                    Sample(_png((0, 99, 0)), "tree", "tree", 0.9, "b.png")])
    assert data.task == "multilabel" and data.confusion is None
    truth, predicted = run.labels, (run.probabilities >= 0.5).astype(int)
    p, r, f, support = precision_recall_fscore_support(truth, predicted, zero_division=0)
    rows = {row.name: row for row in data.per_label}
    assert list(rows) == [r.name for r in sorted(data.per_label, key=lambda r: r.f1)]  # worst F1 first
    for i, name in enumerate(run.class_names):
        row = rows[name]
        assert (row.precision, row.recall, row.f1, row.support) == pytest.approx((p[i], r[i], f[i], support[i]))
        assert row.tp + row.fn == support[i] and row.tp + row.fp + row.fn + row.tn == len(truth)
    assert data.value("hamming_loss") == pytest.approx(hamming_loss(truth, predicted))
    assert [m.name for m in data.metrics][:4] == ["subset_accuracy", "hamming_loss", "f1_micro", "f1_macro"]
    hamming = next(m for m in data.metrics if m.name == "hamming_loss")
    assert [(g.kind, g.threshold, g.status) for g in hamming.gates] == [("value", "≤ 0.0100", "fail")]

    soup = _check_page(render_html(data), "multilabel")
    table = _table(soup.find("table", id="per-label-table"))
    assert list(table)[:len(run.class_names)] == [row.name for row in data.per_label]
    for i, name in enumerate(run.class_names):
        assert table[name][:4] == pytest.approx([p[i], r[i], f[i], support[i]])
    assert table["micro avg"][2] == pytest.approx(f1_score(truth, predicted, average="micro"))
    assert table["macro avg"][2] == pytest.approx(f1_score(truth, predicted, average="macro"))
    assert "does not apply to a multilabel model" in _text(soup.find("section", id="confusion"))
    assert "Not computed for a multilabel model" in _text(soup.find("section", id="kappa"))
    assert "Subset accuracy" in _text(soup.find(id="multilabel-scores"))
    assert len(soup.select("#samples figure.wrong")) == 1
    markdown = render_markdown(data)
    assert f"Weakest labels by F1: {data.per_label[0].name}" in markdown and "Hamming loss" in markdown
    assert "Landis" not in markdown


def test_multiclass_report_names_the_kappa_weighting_and_top_k():
    run = evaluation_helpers.multiclass_run()
    data = _collected(run)
    assert data.task == "multiclass"
    assert [m.name for m in data.metrics] == ["sparse_categorical_accuracy", "cohen_kappa_quadratic",
                                              "top_2_accuracy", "example_count"]
    assert data.kappa_label == "Cohen's kappa (quadratic-weighted)"
    soup = _check_page(render_html(data), "multiclass")
    assert "Cohen's kappa (quadratic-weighted): κ =" in _text(soup.find("section", id="kappa"))
    top = next(m for m in data.metrics if m.name == "top_2_accuracy")
    assert [(g.kind, g.status) for g in top.gates] == [("value", "fail")]
    assert "- gate failed: top\\_k\\_accuracy (value) = " in render_markdown(data)  # eval.gates names it so
    assert "Top-2 accuracy" in _text(soup.find("section", id="metrics"))
    assert set(_table(soup.find("table", id="per-class-table"))) == {*run.class_names, "macro avg", "weighted avg"}


def test_synthetic_reports_render_every_section_for_every_task():
    for task in TASKS:
        data = _synthetic(["a", "b", "c"], task=task)
        if task == "binary":
            data = dataclasses.replace(data, class_names=["neg", "pos"], confusion=[[5, 1], [2, 7]],
                                       binary_confusion=BinaryConfusion(0.5, 7, 1, 2, 5))
        if task == "multilabel":
            data = dataclasses.replace(data, confusion=None, per_label=[
                LabelMetrics("c", 0.5, 0.25, 1 / 3, 4, 1, 1, 3, 5),
                LabelMetrics("a", 1.0, 1.0, 1.0, 2, 2, 0, 0, 8)])
        soup = _check_page(render_html(data), task)
        assert len(soup.find_all("img")) >= 3 + 1, task  # confusion (or per-label counts), training, distribution
        assert render_markdown(data).startswith("# Model report")
    assert [t for _, t in sections("multilabel")] != [t for _, t in SECTIONS]


def test_top_k_at_or_above_the_class_count_is_flagged(tmp_path):
    labels, candidate, _ = evaluation_helpers.multiclass_data(classes=3)
    config = PipelineConfig().override(["eval.top_k=3"])
    run = evaluation_helpers.evaluate(config, labels, candidate, None, ["a", "b", "c"], str(tmp_path))
    data = _collected(run)
    assert data.value("top_3_accuracy") == 1.0
    assert "Top-3 accuracy is 1.0 by construction: the model has only 3 classes (lower eval.top_k)" in data.notes


def test_ingestion_section_shows_leakage_accounting_and_warnings():
    names = ["a", "b", "c"]
    ingest = {"files_seen": 5, "ingested": 3, "quarantined": 2, "accounting_ok": True,
              "leakage": {"mode": "remove", "eval_files_duplicating_train": 2, "removed": 2,
                          "report": "/tmp/x/leakage_report.csv"},
              "warnings": [f"empty class folder 'train/{HOSTILE}': class gets no images from it"]}
    soup = BeautifulSoup(render_html(_synthetic(names, ingest=ingest)), "html.parser")
    section = soup.find(id="ingestion")
    text = section.get_text(" ")
    assert "2 removed from eval" in text and "data.leakage=remove" in text
    assert any(a["href"].endswith("leakage_report.csv") for a in section.find_all("a"))
    assert [li.get_text() for li in section.select("ul.warnings li")] == ingest["warnings"]  # escaped, as text
    assert not soup.find_all("script")
    ok = soup.find(string=lambda s: s and "files seen = ingested + quarantined" in s)
    assert ok is not None and ok.find_parent("tr").find("td").get_text() == "yes"


def test_anomalies_section_shows_the_data_gate_verdict():
    lines = ["data gate: passed (label drift L∞=0.012 ≤ 0.25 vs the previous accepted run)", "  note: <b>x</b>"]
    soup = BeautifulSoup(render_html(_synthetic(["a", "b", "c"], data_gate=lines)), "html.parser")
    assert [li.get_text() for li in soup.select("#anomalies ul.data-gate li")] == lines
    assert not soup.select("#anomalies ul.data-gate b")  # escaped, shown as text


def test_training_recipe_from_the_trainers_history():
    from pipeline.report.collect import training_recipe

    history = {
        "backbone": "efficientnet_lite0", "preset": "default", "image_size": 224, "parameters": 3_500_000,
        "device": "CPU (2 cores)", "mixed_precision": False, "batch_size": 32, "train_seconds": 300.4,
        "fit_seconds": 250.2, "train_examples": 4500, "validation_examples": 500,
        "phases": [
            {"name": "head", "cached_features": True, "augmentation": "none", "kept_epoch": 9, "epochs_run": 14,
             "kept_because": "the best val_accuracy (0.8100; early stopping from epoch 4 on, patience 5)"},
            {"name": "fine_tune", "fine_tune": "all", "unfrozen_layers": 80, "augmentation": "horizontal flip",
             "kept_epoch": 4, "epochs_run": 4, "kept_because": "the best val_accuracy (0.9000; early stopping)"},
        ],
        "export": {"saved_model_mb": 15.2, "cpu_latency_ms": 21.5},
    }
    lines = training_recipe(history)
    assert lines[0] == "preset default: efficientnet_lite0 at 224 px, 3,500,000 parameters"
    assert lines[1] == "trained on CPU (2 cores) (float32, batch size 32) in 300 s, 250 s of it in model.fit"
    assert "fine_tune; unfrozen: all (80 layers with weights); augmentation: horizontal flip; kept epoch 4 of 4" \
        in lines[4]
    assert lines[-1].startswith("exported SavedModel: 15.2 MB, 21.5 ms per image")
    assert training_recipe({"history": {"loss": [1.0]}}) == []  # an older run's history.json: nothing invented


def test_a_three_way_split_is_shown_in_pipeline_order():
    assert split_order({"eval": {}, "val": {}, "train": {}, "extra": {}}) == ["train", "val", "eval", "extra"]
