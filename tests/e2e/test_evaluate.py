"""End to end: `visionline evaluate` on the session run's pushed model and a held-out digits folder (with a file
ingestion quarantines), its figures checked against scikit-learn on the served signature's own predictions; classes
the model does not know; and the session run in the `visionline runs` comparison.
"""

from __future__ import annotations

import contextlib
import glob
import io
import json
import os
import shutil

import pytest
from bs4 import BeautifulSoup

from pipeline import cli
from pipeline.cli import errors
from pipeline.demo_data import materialize_digits
from pipeline.report import listing
from pipeline.runs.model_facts import ModelFacts
from pipeline.runs.record import read_run

pytestmark = pytest.mark.e2e
SETTINGS = ["--set", "beam.direct_running_mode=in_memory", "--set", "eval.min_accuracy=0.3",
            "--set", "eval.min_kappa=0.2"]


@pytest.fixture(scope="module")
def held_out(tmp_path_factory):
    """5 digit images per class, plus a file that is not an image in class 3."""
    root = materialize_digits(tmp_path_factory.mktemp("held_out") / "digits", per_class=5)
    (root / "3" / "broken.png").write_bytes(b"this is not a PNG")
    return root


def _main(argv):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(argv)
    return code, out.getvalue()


@pytest.fixture(scope="module")
def evaluated(pipeline_run, held_out, tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("evaluation")
    base = os.path.dirname(pipeline_run.summary.pushed_model)  # the push base: its newest complete version
    code, stdout = _main(["evaluate", base, str(held_out), "--out", str(out_dir), "--json", *SETTINGS])
    assert code == errors.OK
    return json.loads(stdout), out_dir


def _served_predictions(pipeline_run, held_out):
    """(true, predicted) labels of every image in `held_out` from the pushed model's serving_default signature."""
    import tensorflow as tf

    serve = tf.saved_model.load(pipeline_run.summary.pushed_model).signatures["serving_default"]
    paths = sorted(p for p in glob.glob(os.path.join(held_out, "*", "*")) if not p.endswith("broken.png"))
    images = [open(p, "rb").read() for p in paths]
    predicted = [p.decode() for p in serve(images=tf.constant(images))["predicted_class"].numpy()]
    return [os.path.basename(os.path.dirname(p)) for p in paths], predicted


def test_evaluate_matches_sklearn_on_the_served_predictions(evaluated, pipeline_run, held_out):
    from sklearn.metrics import accuracy_score, classification_report, cohen_kappa_score, confusion_matrix

    result, _ = evaluated
    truth, predicted = _served_predictions(pipeline_run, held_out)
    assert result["model"] == pipeline_run.summary.pushed_model
    assert (result["files_seen"], result["evaluated"]) == (51, 50)
    assert result["metrics"]["example_count"] == 50
    assert result["metrics"]["sparse_categorical_accuracy"] == pytest.approx(accuracy_score(truth, predicted))
    assert result["metrics"]["cohen_kappa"] == pytest.approx(cohen_kappa_score(truth, predicted))
    expected = classification_report(truth, predicted, output_dict=True, zero_division=0)
    rows = {r["name"]: r for r in result["per_class"]}
    assert set(rows) == set(truth) | set(predicted) | {"macro avg", "weighted avg"}
    for name, row in rows.items():
        want = expected[name]
        assert [row["precision"], row["recall"], row["f1"], row["support"]] == pytest.approx(
            [want["precision"], want["recall"], want["f1-score"], want["support"]]), name
    names = result["confusion"]["names"]
    assert names == [str(d) for d in range(10)]
    assert result["confusion"]["rows"] == confusion_matrix(truth, predicted, labels=names).tolist()
    gates = {g["metric"]: g for g in result["gates"]}
    assert gates["sparse_categorical_accuracy"]["threshold"] == "≥ 0.3000"
    assert gates["sparse_categorical_accuracy"]["status"] == ("pass" if accuracy_score(truth, predicted) >= 0.3
                                                              else "fail")
    assert "cohen_kappa" in gates


def test_quarantined_files_are_listed_with_their_reason(evaluated):
    result, out_dir = evaluated
    assert result["quarantined"] == [{"path": "3/broken.png", "label": "3", "split": "all",
                                      "reason": "not an image (format not recognised)"}]
    with open(out_dir / "quarantine_report.csv", encoding="utf-8") as handle:
        assert "3/broken.png,3,all,not an image (format not recognised)" in handle.read()


def test_report_pages(evaluated):
    result, out_dir = evaluated
    assert result["report"] == {"html": str(out_dir / "report.html"), "markdown": str(out_dir / "summary.md"),
                                "tfma": str(out_dir / "tfma")}
    soup = BeautifulSoup((out_dir / "report.html").read_text(encoding="utf-8"), "html.parser")
    for section in ("metrics", "kappa", "per-class", "confusion", "data"):
        assert soup.find("section", id=section) is not None, section
    table = soup.find("table", id="per-class-table")
    rows = {tr.find("td").get_text(strip=True): [float(td["data-value"]) for td in tr.find_all("td")[1:]]
            for tr in table.find_all("tr")[1:]}
    for row in result["per_class"]:
        assert rows[row["name"]] == pytest.approx([row["precision"], row["recall"], row["f1"], row["support"]])
    cells = [[float(td["data-value"]) for td in tr.find_all("td")]
             for tr in soup.find("table", id="confusion-table").find_all("tr")[1:]]
    assert cells == result["confusion"]["rows"]
    assert soup.find("img")["src"].startswith("data:image/png;base64,")
    assert "3/broken.png" in soup.find("table", id="quarantine-table").get_text()
    markdown = (out_dir / "summary.md").read_text(encoding="utf-8")
    assert markdown.startswith("# Evaluation: ") and "agreement (Landis–Koch)" in markdown
    assert "quarantined: 3/broken.png" in markdown


def test_text_output_and_default_report_folder(pipeline_run, held_out, tmp_path):
    work_dir = tmp_path / "work"
    code, stdout = _main(["evaluate", pipeline_run.summary.pushed_model, str(held_out), "--work-dir", str(work_dir),
                          *SETTINGS])
    assert code == errors.OK
    assert stdout.startswith(f"evaluated {pipeline_run.summary.pushed_model}\n")
    assert "per class (worst F1 first):" in stdout and "confusion matrix (rows: actual, columns: predicted):" in stdout
    assert "3/broken.png (3): not an image (format not recognised)" in stdout
    reports = glob.glob(str(work_dir / "evaluations" / "*" / "report.html"))
    assert len(reports) == 1 and f"report: {reports[0]}" in stdout


def test_classes_the_model_does_not_know_are_an_error(pipeline_run, held_out, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(held_out, data)
    for name in ("cat", "dog"):
        (data / name).mkdir()
        shutil.copy(data / "1" / sorted(os.listdir(data / "1"))[0], data / name / "x.png")
    code = cli.main(["evaluate", pipeline_run.summary.pushed_model, str(data), "--out", str(tmp_path / "out"),
                     *SETTINGS])
    assert code == errors.USAGE_ERROR
    error = capsys.readouterr().err
    assert "2 class(es) the model does not know: 'cat', 'dog'" in error


def test_missing_model_or_data_is_a_usage_error(pipeline_run, held_out, tmp_path, capsys):
    assert cli.main(["evaluate", str(tmp_path / "none"), str(held_out), "--out", str(tmp_path)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert cli.main(["evaluate", pipeline_run.summary.pushed_model, str(tmp_path / "none"),
                     "--out", str(tmp_path)]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_the_session_run_in_the_runs_comparison(pipeline_run):
    """Its facts are what its Trainer's history.json records ('—' for those it does not)."""
    rows = listing.list_runs(pipeline_run.config.metadata_path)
    row = next(r for r in rows if r.run_id == pipeline_run.summary.run_id)
    model_run = read_run(pipeline_run.config.metadata_path, row.run_id).artifact("Trainer", "model_run", "ModelRun")
    with open(os.path.join(model_run.uri, "history.json"), encoding="utf-8") as handle:
        recorded = ModelFacts.from_history(json.load(handle))
    assert ModelFacts(*(getattr(row, name) for name in ModelFacts().as_dict())) == recorded
    line = next(line for line in listing.format_runs(rows).splitlines() if line.startswith(row.run_id))
    assert line.split()[2] == (recorded.backbone or "—")
