"""Tests for the report's error analysis: the most-confused pairs, binary error kinds and multilabel misses /
false alarms (pipeline.report.confusions), the search for likely mislabelled training images on a real small
SavedModel (pipeline.report.mislabelled, embeddings: a corrupt image is listed, a mislabelled one is found), its
section, label_issues.csv and console line, and the `report.*` config fields.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import os

import numpy as np
import pytest
from bs4 import BeautifulSoup
from PIL import Image

from pipeline.component_ids import EXAMPLE_GEN, TRAINER
from pipeline.configs import LABEL_ISSUE_RANKINGS, ConfigError, PipelineConfig
from pipeline.report.build import write_report
from pipeline.report.confusions import binary_error_kinds, confused_pairs, error_analysis, label_errors, label_swaps
from pipeline.report.data import NO_LABELS, LabelMetrics
from pipeline.report.label_issues import RANKINGS, LabelIssue, LabelIssueReport, LabelIssueSettings
from pipeline.report.mislabelled import CSV_COLUMNS, CSV_NAME, collect_label_issues
from pipeline.report.render import render_html, render_markdown
from pipeline.report.samples import label_text, read_examples
from pipeline.runs.evaluation import BinaryConfusion
from pipeline.runs.record import Node, RunRecord
from tests.pipeline.test_report import HOSTILE, _check_page, _png, _synthetic, _text


# ----- most-confused pairs, error kinds, per-label errors ---------------------------------------------------
def test_confused_pairs_rank_by_count_and_by_share_like_a_brute_force_count():
    from sklearn.metrics import confusion_matrix

    rng = np.random.default_rng(0)
    names = ["big", "small", "c", "d"]
    y_true = np.concatenate([np.zeros(200, int), np.ones(10, int), np.full(60, 2), np.full(60, 3)])
    y_pred = np.where(rng.random(len(y_true)) < 0.8, y_true, rng.integers(0, 4, len(y_true)))
    y_pred[200:208] = 2  # 8 of the 10 "small" examples predicted "c": the largest share, not the largest count
    matrix = confusion_matrix(y_true, y_pred, labels=range(4))
    by_count, by_share = confused_pairs(matrix, names, limit=100)
    expected = {(names[a], names[p]): (np.sum((y_true == a) & (y_pred == p)), np.mean(y_pred[y_true == a] == p))
                for a in range(4) for p in range(4) if a != p and np.any((y_true == a) & (y_pred == p))}
    assert {(x.actual, x.predicted): (x.count, pytest.approx(x.share)) for x in by_count} == expected
    assert [x.count for x in by_count] == sorted((x.count for x in by_count), reverse=True)
    assert [x.share for x in by_share] == sorted((x.share for x in by_share), reverse=True)
    assert (by_share[0].actual, by_share[0].predicted, by_share[0].share) == ("small", "c", pytest.approx(0.8))
    assert by_count[0].actual == "big"
    assert len(confused_pairs(matrix, names, limit=3)[0]) == 3
    # examples with no prediction count in the actual class's share
    (pair,), _ = confused_pairs([[3, 1], [0, 4]], ["a", "b"], unpredicted=[4, 0])
    assert (pair.count, pair.share) == (1, 0.125)


def test_binary_error_kinds_and_multilabel_label_errors():
    kinds = binary_error_kinds(tp=7, fp=1, fn=2, tn=5, negative="cat", positive="dog")
    assert [(k.kind, k.actual, k.predicted, k.count) for k in kinds] == [
        ("false negative", "dog", "cat", 2), ("false positive", "cat", "dog", 1)]
    assert kinds[0].share == pytest.approx(2 / 9) and kinds[1].share == pytest.approx(1 / 6)
    rows = [LabelMetrics("sky", 1, 1, 1, 4, tp=4, fp=0, fn=0, tn=6), LabelMetrics("car", .5, .25, .3, 4, 1, 1, 3, 5)]
    errors = label_errors(rows)
    assert [e.label for e in errors] == ["car", "sky"]
    assert (errors[0].missed, errors[0].missed_share, errors[0].false_alarms, errors[0].false_alarm_share) == (
        3, pytest.approx(0.75), 1, pytest.approx(1 / 6))


def test_error_section_for_every_task_is_escaped():
    names = [HOSTILE, "cat", "dog"]
    soup = _check_page(render_html(_synthetic(names)), "multiclass")
    rows = [[td.get_text(strip=True) for td in tr.find_all("td")] for tr in soup.select("#confused-by-count tr")[1:]]
    assert rows[0][:3] == ["cat", HOSTILE, "2"]  # confusion [[5, 1, 0], [2, 3, 1], [0, 0, 4]]: cat → <script> twice
    assert [r[:2] for r in rows] == [["cat", HOSTILE], [HOSTILE, "cat"], ["cat", "dog"]]
    share = soup.select("#confused-by-share tr")[1].find_all("td")
    assert float(share[3]["data-value"]) == pytest.approx(2 / 6)
    assert "4 of 16 eval examples misclassified" in _text(soup.find(id="errors"))
    assert not soup.find_all("script")

    binary = dataclasses.replace(_synthetic(["neg", "pos", "x"]), task="binary", class_names=["neg", "pos"],
                                 confusion=[[5, 1], [2, 7]], binary_confusion=BinaryConfusion(0.5, 7, 1, 2, 5))
    soup = _check_page(render_html(binary), "binary")
    cells = [[td.get_text(strip=True) for td in tr.find_all("td")] for tr in soup.select("#error-kinds tr")[1:]]
    assert cells == [["false negative", "pos", "neg", "2", "22.2%"], ["false positive", "neg", "pos", "1", "16.7%"]]

    multilabel = _synthetic(["a", "c", "x"], task="multilabel", confusion=None, per_label=[
        LabelMetrics("c", 0.5, 0.25, 1 / 3, 4, 1, 1, 3, 5), LabelMetrics("a", 1.0, 1.0, 1.0, 2, 2, 0, 0, 8)])
    soup = _check_page(render_html(multilabel), "multilabel")
    assert [tr.find("td").get_text() for tr in soup.select("#label-errors tr.label-error-row")] == ["c", "a"]
    assert "Not computed: no sample scan" in _text(soup.find(id="errors"))  # no scanned label sets
    swapped = dataclasses.replace(multilabel, scanned_label_sets=[((HOSTILE,), ("c",)), (("a",), ("a",))])
    soup = _check_page(render_html(swapped), "multilabel")
    assert [[td.get_text() for td in tr.find_all("td")] for tr in soup.select("#label-swaps tr.swap-row")] == [
        [HOSTILE, "c", "1", "100.0%"]]
    assert "On the 2 eval images of the sample scan" in _text(soup.find(id="errors"))
    clean = dataclasses.replace(multilabel, scanned_label_sets=[(("a",), ("a",))])
    assert "no label was missed while another was predicted" in _text(_check_page(render_html(clean),
                                                                                   "multilabel").find(id="errors"))
    assert error_analysis(_synthetic(["a", "b", "c"], confusion=None)).by_count == []


def test_label_swaps_count_each_missed_label_against_each_label_predicted_instead():
    sets = [(("cat", "dog"), ("cat", "fox")),  # dog missed, fox instead
            (("dog",), ("fox", "owl")),  # dog missed: fox and owl instead
            (("dog",), ("dog",)), (("owl",), ()),  # right; owl missed with nothing instead: no pair
            ((), ("cat",))]  # a false alarm with nothing missed: no pair
    swaps = label_swaps(sets)
    assert [(p.actual, p.predicted, p.count) for p in swaps] == [("dog", "fox", 2), ("dog", "owl", 1)]
    assert swaps[0].share == pytest.approx(2 / 3)  # of the three images carrying dog
    assert label_swaps(sets, limit=1) == swaps[:1]


def test_sample_scan_reads_label_sets_whole_even_when_a_name_holds_the_separator(tmp_path):
    import tensorflow as tf

    def example(labels: list[bytes]) -> bytes:
        feature = {"image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"png"])),
                   "label": tf.train.Feature(bytes_list=tf.train.BytesList(value=labels)),
                   "path": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"a/1.png"]))}
        return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()

    path = str(tmp_path / "eval.tfrecord")
    with tf.io.TFRecordWriter(path) as writer:
        for labels in ([b"red, dark", b"round"], []):
            writer.write(example(labels))
    records = list(read_examples([path], "image", "label", 10))
    assert [labels for _, labels, _ in records] == [("red, dark", "round"), ()]  # not split at the ", "
    assert [label_text(labels, multilabel=True) for _, labels, _ in records] == ["red, dark, round", NO_LABELS]
    assert label_text(("cat",), multilabel=False) == "cat" and label_text((), multilabel=False) == ""
    swaps = label_swaps([(records[0][1], ("round", "pale"))])
    assert [(p.actual, p.predicted) for p in swaps] == [("red, dark", "pale")]


# ----- likely mislabelled training images on a real (small, untrained) SavedModel ---------------------------
def _image(colour: tuple[int, int, int], rng: np.random.Generator) -> bytes:
    pixels = np.clip(np.array(colour) + rng.integers(-20, 21, (16, 16, 3)), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _example(image: bytes, label: str, path: str) -> bytes:
    import tensorflow as tf

    feature = {"image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[image])),
               "label": tf.train.Feature(bytes_list=tf.train.BytesList(value=[label.encode()])),
               "path": tf.train.Feature(bytes_list=tf.train.BytesList(value=[path.encode()]))}
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


@pytest.fixture(scope="module", params=["multiclass", "binary"])
def small_run(request, tmp_path_factory):
    """A run record with a real exported model (Trainer; multiclass or binary) and a train split (ExampleGen): 14
    red and 14 blue images, one red image labelled blue, one example whose image bytes are not an image and one
    with a label the model does not know."""
    import tensorflow as tf
    from ml_metadata.proto import metadata_store_pb2

    from tests.model_helpers import export_serving_model

    root = tmp_path_factory.mktemp("label_issues")
    rng = np.random.default_rng(0)
    red = [_image((220, 30, 30), rng) for _ in range(14)]
    blue = [_image((30, 30, 220), rng) for _ in range(14)]
    names = export_serving_model(root / "model" / "Format-Serving", root / "work", {"blue": blue[:3], "red": red[:3]},
                                 **{"train.task": request.param})
    rows = [(image, "red", f"red/{i}.png") for i, image in enumerate(red[:-1])]
    rows += [(image, "blue", f"blue/{i}.png") for i, image in enumerate(blue)]
    rows += [(red[-1], "blue", "blue/actually_red.png"), (b"not an image", "red", "red/broken.png"),
             (blue[0], "green", "green/0.png")]
    os.makedirs(root / "examples" / "Split-train")
    with tf.io.TFRecordWriter(str(root / "examples" / "Split-train" / "data.gz"), options="GZIP") as writer:
        for image, label, path in rows:
            writer.write(_example(image, label, path))
    model = metadata_store_pb2.Artifact(id=1, type_id=1, uri=str(root / "model"))
    examples = metadata_store_pb2.Artifact(id=2, type_id=2, uri=str(root / "examples"))
    execution = metadata_store_pb2.Execution(id=1)
    execution.properties["task"].string_value = request.param  # read back by the test (the report's data.task)
    record = RunRecord(run=metadata_store_pb2.Context(name="run-1"), pipeline_name="visionline", executions=[
        Node(EXAMPLE_GEN, execution, "COMPLETE", outputs={"examples": [examples]}),
        Node(TRAINER, execution, "COMPLETE", outputs={"model": [model]})], type_names={1: "Model", 2: "Examples"})
    return record, names, len(rows)


def test_a_mislabelled_image_is_found_and_a_broken_one_listed(small_run, tmp_path):
    record, names, total = small_run
    data = _synthetic([*names, "x"], samples=[], confusion=None, class_names=names)
    data.task = record.nodes[TRAINER].execution.properties["task"].string_value
    collect_label_issues(record, data, LabelIssueSettings(folds=4, shown=1))
    found = data.label_issues
    assert found.skipped == "" and found.folds == 4
    assert found.examples + len(found.unprocessed) == total  # every example embedded or listed
    assert [record for record, _ in found.unprocessed] == ["red/broken.png", "green/0.png"]
    assert "Unknown image file format" in found.unprocessed[0][1]  # with its reason, as TensorFlow gives it
    assert found.unprocessed[1][1] == "label not in the model's vocabulary"
    assert found.candidates and found.candidates[0].record == "blue/actually_red.png"
    assert (found.candidates[0].given, found.candidates[0].suggested) == ("blue", "red")
    assert found.candidates[0].image_png.startswith(b"\x89PNG")
    assert all(not c.image_png for c in found.candidates[1:])  # shown=1: one thumbnail, the CSV has them all
    assert len(found.candidates) <= 3
    assert set(found.thresholds) == {"blue", "red"}

    paths = write_report(data, str(tmp_path))
    assert paths.label_issues_csv == os.path.join(str(tmp_path), CSV_NAME) == found.csv_path
    with open(paths.label_issues_csv, encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    assert tuple(rows[0]) == CSV_COLUMNS and len(rows) == 1 + len(found.candidates)
    assert rows[1][:5] == ["1", "blue/actually_red.png", "", "blue", "red"]
    assert paths.label_issues_line() == (f"likely mislabelled training images: {len(found.candidates)} "
                                         f"(for review: {paths.label_issues_csv})")
    soup = BeautifulSoup(open(paths.html, encoding="utf-8").read(), "html.parser")
    section = soup.find(id="label-issues")
    assert f"{len(found.candidates)} likely mislabelled of {found.examples} train images" in _text(section)
    assert section.find("a")["href"].endswith(CSV_NAME)
    assert len(section.select("figure.label-issue")) == 1
    assert "red/broken.png" in _text(soup.find(id="label-issues-unprocessed"))
    assert "label\\_issues.csv" in open(paths.markdown, encoding="utf-8").read()


def test_the_search_is_skipped_with_its_reason(small_run, tmp_path):
    record, names, total = small_run
    data = _synthetic([*names, "x"], samples=[], class_names=names, confusion=None)
    collect_label_issues(record, data, LabelIssueSettings(max_images=total - 1))
    assert data.label_issues.skipped.startswith(f"the train split has more than {total - 1} images")
    collect_label_issues(record, data, LabelIssueSettings(enabled=False))
    assert data.label_issues.skipped == "turned off (report.label_issues=false)"
    paths = write_report(data, str(tmp_path))
    assert paths.label_issues_csv == "" and paths.label_issues_line() == ""
    assert not os.path.exists(tmp_path / CSV_NAME)
    soup = BeautifulSoup(open(paths.html, encoding="utf-8").read(), "html.parser")
    assert "Not computed: turned off (report.label_issues=false)." in _text(soup.find(id="label-issues"))


def test_label_issue_section_escapes_and_shows_multilabel_rows():
    found = LabelIssueReport(examples=10, method="4-fold", folds=4, candidates=[
        LabelIssue(f"{HOSTILE}.png", "present", "absent", 0.1, 0.1, 0.9, label=HOSTILE, image_png=_png((1, 2, 3)))])
    data = dataclasses.replace(_synthetic(["a", "b", "c"], task="multilabel", confusion=None), label_issues=found)
    html = render_html(data)
    assert "<script" not in html.lower()
    caption = _text(BeautifulSoup(html, "html.parser").select_one("#label-issues figcaption"))
    assert caption.startswith(f"label {HOSTILE}") and "given present, suggested absent (90.0%)" in caption
    assert "Likely mislabelled training images: 1 of 10" in render_markdown(data)


# ----- config ------------------------------------------------------------------------------------------------
def test_report_config_fields_are_validated_by_name():
    config = PipelineConfig().override(["data.root=/tmp", "report.label_issues_max_images=50"])
    assert config.report.label_issues_max_images == 50 and config.to_dict()["report"]["label_issues"] is True
    assert LABEL_ISSUE_RANKINGS == RANKINGS
    for assignment, field in [("report.label_issues_folds=1", "report.label_issues_folds"),
                              ("report.label_issues_max_images=0", "report.label_issues_max_images"),
                              ("report.label_issues_ranking=loss", "report.label_issues_ranking"),
                              ("report.label_issues_shown=-1", "report.label_issues_shown")]:
        with pytest.raises(ConfigError, match=f"config field {field} "):
            PipelineConfig().override(["data.root=/tmp", assignment]).validate()
