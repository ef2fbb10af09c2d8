"""A pushed model evaluated on a labelled data root with TFMA, as the pipeline's Evaluator would: the data root
becomes raw tf.Examples (`examples`), TFMA runs the model's `serving_examples` signature with the very EvalConfig
the pipeline builds from the config (`pipeline.eval_config`; change-vs-baseline gates dropped as the Evaluator drops
them without a baseline), and its output is read into the model report's data (`pipeline.report.data`).

MODEL is a SavedModel version folder or a push base (its newest complete version), resolved by
`components.pusher.serving_layout`. Classes in the data the model does not know are an error naming them.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from typing import Any

import tensorflow as tf
import tensorflow_model_analysis as tfma
from apache_beam.options.pipeline_options import PipelineOptions

from components.evaluator import catalogue
from components.example_gen.manifest import ManifestOptions
from components.pusher import serving_layout
from components.trainer.export import SERVING_EXAMPLES
from pipeline.configs import PipelineConfig
from pipeline.eval_config import eval_config
from pipeline.evaluate.examples import QUARANTINE_REPORT, ExampleSet, write_examples, write_quarantine_report
from pipeline.report.data import Gate, HeadlineMetric, ReportData, per_label_metrics, set_confusion
from pipeline.runs import evaluation, gates

TFMA_DIR = "tfma"  # TFMA's metrics, plots, validations and eval_config.json, inside the output folder


@dataclass
class OfflineEvaluation:
    """An evaluation of a model on a data root: the report's data and where everything came from and went."""

    model_dir: str  # the SavedModel version folder evaluated
    examples: ExampleSet
    output: str  # TFMA's output folder
    data: ReportData


def model_outputs(model_dir: str, serialized_example: bytes) -> dict[str, Any]:
    """The `serving_examples` outputs of the model for one raw Example (numpy)."""
    signature = tf.saved_model.load(model_dir).signatures[SERVING_EXAMPLES]
    return {k: v.numpy() for k, v in signature(examples=tf.constant([serialized_example])).items()}


def first_example(tfrecord: str) -> bytes:
    """The first serialized record of a TFRecord file."""
    for record in tf.data.TFRecordDataset([tfrecord]).take(1):
        return bytes(record.numpy())
    raise ValueError(f"{tfrecord} holds no example")


def check_model(model_dir: str, examples: ExampleSet, task: str) -> list[str]:
    """The model's class names (index order); ValueError when the data has classes the model does not know or
    the model's task is not `task`."""
    outputs = model_outputs(model_dir, first_example(examples.tfrecord))
    classes = [c.decode("utf-8") for c in outputs["classes"][0]]
    multilabel = "predicted_labels" in outputs
    if multilabel != (task == "multilabel"):
        actual = "a multilabel" if multilabel else "a single-label"
        raise ValueError(f"{model_dir} is {actual} model but the config's train.task is {task!r}: set "
                         f"train.task to the model's task (--set train.task=…)")
    unknown = sorted(examples.labels - set(classes))
    if unknown:
        raise ValueError(f"{examples.data_root} has {len(unknown)} class(es) the model does not know: "
                         f"{', '.join(repr(c) for c in unknown)} (the model knows {', '.join(classes)})")
    return classes


def evaluate(model_path: str, data_root: str, config: PipelineConfig, out_dir: str) -> OfflineEvaluation:
    """Evaluate the model at `model_path` on `data_root`; TFMA's output and the quarantine report (when a file
    was quarantined) go into `out_dir`."""
    model_dir = serving_layout.resolve_version_dir(model_path)
    os.makedirs(out_dir, exist_ok=True)
    output = os.path.join(out_dir, TFMA_DIR)
    config_used = tfma.utils.update_eval_config_with_defaults(eval_config(config), has_baseline=False,
                                                              rubber_stamp=True)
    with tempfile.TemporaryDirectory(prefix="visionline-evaluate-") as scratch:
        examples = write_examples(data_root, os.path.join(scratch, "examples.tfrecord"),
                                  multilabel=config.train.task == "multilabel",
                                  max_image_pixels=config.data.max_image_pixels,
                                  options=ManifestOptions.from_dict(config.data.manifest_options()))
        classes = check_model(model_dir, examples, config.train.task)
        shared = tfma.default_eval_shared_model(eval_saved_model_path=model_dir, eval_config=config_used)
        tfma.run_model_analysis(eval_shared_model=shared, eval_config=config_used, data_location=examples.tfrecord,
                                output_path=output, pipeline_options=PipelineOptions(config.beam.pipeline_args()))
    data = ReportData(run_id=f"{model_dir} on {data_root}", task=config.train.task, class_names=classes)
    collect(output, data)
    data.class_distribution = {"evaluated": {k: float(v) for k, v in examples.class_counts.items()}}
    data.ingest = {"files_seen": examples.files_seen, "ingested": examples.ingested,
                   "quarantined": len(examples.quarantined),
                   "quarantined_by_reason": examples.quarantined_by_reason()}
    if examples.quarantined:
        data.ingest["quarantine_report"] = write_quarantine_report(examples, os.path.join(out_dir, QUARANTINE_REPORT))
        data.quarantine_rows = list(examples.quarantined)
    return OfflineEvaluation(model_dir=model_dir, examples=examples, output=output, data=data)


def collect(output: str, data: ReportData) -> None:
    """TFMA's output folder read into `data`: headline metrics with their value gates (pass or fail on this
    data), other metrics, and the confusion matrix (multiclass, binary) or per-label rows (multilabel)."""
    applied = evaluation.applied_eval_config(output)
    found = evaluation.read_metrics(output)
    thresholds = gates.overall_thresholds(applied)
    failures: dict[str, str] = {}
    for failure in gates.read_failures(output):
        if not failure.is_diff:
            failures[failure.metric] = "; ".join(filter(None, (failures.get(failure.metric), failure.reason())))
    names = catalogue.headline_order(found.values)
    names += sorted(n for n in thresholds if n not in names)
    for name in names:
        metric = HeadlineMetric(name, found.values.get(name))
        threshold = thresholds.get(name)
        if threshold is not None and threshold.HasField("value_threshold"):
            ok = gates.value_ok(threshold.value_threshold, metric.value)
            failed = name in failures or ok is False
            metric.gates.append(Gate(name, "value", gates.value_threshold_text(threshold.value_threshold),
                                     metric.value, "fail" if failed else "pass", failures.get(name, "")))
        data.metrics.append(metric)
    data.other_metrics = {k: v for k, v in sorted(found.values.items()) if k not in names}
    data.binary_confusion = found.binary_counts
    if data.task == "multilabel":
        data.per_label = per_label_metrics(found.per_label, data.class_names)
        return
    set_confusion(data, evaluation.read_confusion(output))
