"""End to end: the whole TFX pipeline on real digit images → a pushed SavedModel that classifies PNG bytes;
then a re-run with an impossible kappa bound reuses the cache and must not push.
"""

from __future__ import annotations

import glob
import os

import numpy as np
import pytest
import tensorflow as tf
from sklearn.metrics import accuracy_score, cohen_kappa_score

from pipeline.cli import errors
from pipeline.cli.run import run_once, write_run_report
from pipeline.local_runner import run_local
from pipeline.runs.text import format_summary

pytestmark = pytest.mark.e2e


def _eval_split(config):
    pattern = os.path.join(config.pipeline_root, "ImageExampleGen", "examples", "*", "Split-eval", "*")
    images, labels = [], []
    for record in tf.data.TFRecordDataset(glob.glob(pattern), compression_type="GZIP"):
        feature = tf.train.Example.FromString(record.numpy()).features.feature
        images.append(feature["image"].bytes_list.value[0])
        labels.append(feature["label"].bytes_list.value[0].decode())
    return images, labels


def test_run_ingests_quarantines_evaluates_and_pushes(pipeline_run):
    summary = pipeline_run.summary
    assert summary.ingest["files_seen"] == 121
    assert summary.ingest["ingested"] == 120 and summary.ingest["quarantined"] == 1
    assert "corrupt or truncated image" in open(summary.ingest["quarantine_report"]).read()
    assert {c.node_id for c in summary.components} >= {"ImageExampleGen", "Transform", "Trainer", "Evaluator",
                                                       "Pusher"}
    assert all(c.state == "COMPLETE" for c in summary.components)
    assert summary.blessed is True and summary.failed_gates == []
    assert summary.pushed and os.path.dirname(summary.pushed_model) == pipeline_run.config.push_base
    assert os.path.exists(os.path.join(summary.pushed_model, "saved_model.pb"))
    assert summary.metrics["example_count"] > 0
    assert 0.3 <= summary.metrics["sparse_categorical_accuracy"] <= 1.0
    text = format_summary(summary)
    assert "cohen_kappa" in text and summary.pushed_model in text


def test_pushed_model_classifies_raw_png_bytes_and_tfma_kappa_agrees_with_sklearn(pipeline_run):
    model = tf.saved_model.load(pipeline_run.summary.pushed_model)
    assert set(model.signatures) == {"serving_default", "serving_examples", "classification", "transform_features",
                                     "explain"}
    images, labels = _eval_split(pipeline_run.config)
    outputs = model.signatures["serving_default"](images=tf.constant(images))
    predicted = [p.decode() for p in outputs["predicted_class"].numpy()]
    class_names = [c.decode() for c in outputs["classes"].numpy()[0]]
    assert sorted(class_names) == [str(d) for d in range(10)]
    assert set(predicted) <= set(class_names)
    probabilities = outputs["probabilities"].numpy()
    assert probabilities.shape == (len(images), 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(outputs["confidence"].numpy(), probabilities.max(axis=1), rtol=1e-6)
    # The Evaluator's numbers are exactly what the served model does on the eval split.
    metrics = pipeline_run.summary.metrics
    assert metrics["example_count"] == len(labels)
    assert metrics["sparse_categorical_accuracy"] == pytest.approx(accuracy_score(labels, predicted), abs=1e-6)
    assert metrics["cohen_kappa"] == pytest.approx(cohen_kappa_score(labels, predicted), abs=1e-6)


def test_classification_signature_serves_tf_serving_classify(pipeline_run):
    from tensorflow.core.protobuf import saved_model_pb2

    saved = saved_model_pb2.SavedModel()
    with open(os.path.join(pipeline_run.summary.pushed_model, "saved_model.pb"), "rb") as handle:
        saved.ParseFromString(handle.read())
    signature = saved.meta_graphs[0].signature_def["classification"]
    assert signature.method_name == "tensorflow/serving/classify"
    assert set(signature.inputs) == {"inputs"} and set(signature.outputs) == {"classes", "scores"}
    images, _ = _eval_split(pipeline_run.config)
    example = tf.train.Example(features=tf.train.Features(
        feature={"image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[images[0]]))}))
    model = tf.saved_model.load(pipeline_run.summary.pushed_model)
    out = model.signatures["classification"](inputs=tf.constant([example.SerializeToString()]))
    assert out["scores"].shape == (1, 10)


def test_impossible_kappa_bound_blocks_the_push_and_reuses_the_cache(pipeline_run, capsys):
    versions_before = sorted(os.listdir(pipeline_run.config.push_base))
    config = pipeline_run.config.override(["eval.min_kappa=1.01"])
    code, summary = run_once(config, as_json=False)  # what `visionline run` does
    assert code == errors.NOT_BLESSED  # cron/CI tell "not blessed" from "pushed"
    states = {c.node_id: c.state for c in summary.components}
    for cached in ("ImageExampleGen", "StatisticsGen", "SchemaGen", "Transform", "Trainer"):
        assert states[cached] == "CACHED", states
    assert states["Evaluator"] == "COMPLETE"
    assert summary.blessed is False and not summary.pushed
    assert any(g.metric == "kappa" and g.key == "cohen_kappa" and "1.01" in g.threshold
               for g in summary.failed_gates)
    assert sorted(os.listdir(pipeline_run.config.push_base)) == versions_before
    assert "gate failed: kappa = " in format_summary(summary)  # as the config names it (eval.min_kappa)
    assert "gate failed: kappa = " in capsys.readouterr().out


def test_example_validator_found_no_anomalies_in_clean_data(pipeline_run):
    assert set(pipeline_run.summary.anomalies) == {"train", "eval"}
    assert pipeline_run.summary.anomalies == {"train": [], "eval": []}


def test_a_run_leaves_nothing_in_the_system_temporary_folder(pipeline_run):
    # TFX's Beam executors had each built a 52 MB sdist of the TFX install in a temporary folder never removed
    # (BeamConfig.pipeline_args): the disk of a machine running tests all day filled up.
    assert pipeline_run.temp_entries_left == []


def test_trainer_used_the_tuners_best_hyperparameters(pipeline_run):
    import json

    root = pipeline_run.config.pipeline_root
    best_files = glob.glob(os.path.join(root, "Tuner", "best_hyperparameters", "*", "*.txt"))
    assert len(best_files) == 1
    with open(best_files[0]) as handle:
        best = json.load(handle)["values"]
    (history_file,) = glob.glob(os.path.join(root, "Trainer", "model_run", "*", "history.json"))
    with open(history_file) as handle:
        used = json.load(handle)["hyperparameters"]
    for key in ("learning_rate", "dropout", "dense_units", "optimizer"):
        assert used[key] == best[key]


def test_cli_lists_runs_and_writes_the_report_after_a_run(pipeline_run, capsys):
    from pipeline import cli

    assert cli.main(["runs", "--work-dir", str(pipeline_run.work_dir)]) == 0
    assert pipeline_run.summary.run_id in capsys.readouterr().out
    assert write_run_report(pipeline_run.config.metadata_path, quiet=False) == 0
    shown = capsys.readouterr().out
    html = shown.split("report: ")[1].split("\n")[0]
    assert os.path.exists(html) and "Cohen" in open(html, encoding="utf-8").read()


def test_rerun_with_unchanged_inputs_is_cached_and_does_not_push_the_same_model_again(pipeline_run):
    versions_before = sorted(os.listdir(pipeline_run.config.push_base))
    summary = run_local(pipeline_run.config)
    states = {c.node_id: c.state for c in summary.components}
    assert all(states[n] == "CACHED" for n in ("ImageExampleGen", "Transform", "Tuner", "Trainer")), states
    assert summary.blessed is True and summary.pushed
    assert summary.pushed_model == pipeline_run.summary.pushed_model  # already served: same version
    assert sorted(os.listdir(pipeline_run.config.push_base)) == versions_before
