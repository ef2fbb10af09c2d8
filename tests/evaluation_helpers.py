"""Hand-made predictions through the real TFMA evaluation, for the metric, gate and report tests.

The eval config is the one `pipeline.eval_config` builds, used as it is except for its model specs: TFMA reads
"materialized" predictions from the tf.Examples (model type MATERIALIZED_PREDICTION) — `probabilities` for the
candidate and `baseline_probabilities` for the baseline — instead of running a SavedModel. Everything else (metric
computations, slicing, the metrics validator that decides the blessing, the writers) is TFMA's own code path. With a
baseline the change thresholds apply; without one they are dropped exactly as TFX's Evaluator does (rubber stamp).

Runs are cached per process (`binary_run`, `multiclass_run`, `multilabel_run`) so several test modules share them.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import tempfile
from dataclasses import dataclass

import numpy as np
import tensorflow as tf
import tensorflow_model_analysis as tfma
from tensorflow_model_analysis.utils import config_util

from pipeline.configs import PipelineConfig
from pipeline.eval_config import eval_config

CANDIDATE, BASELINE = "candidate", "baseline"
LABEL_FEATURE = "label"


@dataclass
class Evaluated:
    """One TFMA evaluation of hand-made predictions and what went into it."""

    config: PipelineConfig
    evaluation: tfma.EvalConfig  # as pipeline.eval_config built it
    output: str  # TFMA output directory (metrics, plots, validations, eval_config.json)
    labels: np.ndarray  # label_xf: class ids [N] or multi-hot [N, C]
    probabilities: np.ndarray  # candidate [N, C]
    baseline_probabilities: np.ndarray | None
    class_names: list[str]  # vocabulary order (index -> name)

    @property
    def validation(self) -> object:
        """TFMA's ValidationResult (validation_ok decides the blessing)."""
        return tfma.load_validation_result(self.output)

    def overall(self, model: str = CANDIDATE) -> dict[tuple[str, int | None], float]:
        """(metric name, sub_key class id or None) -> value on the overall slice for one model."""
        found: dict[tuple[str, int | None], float] = {}
        for slice_metrics in tfma.load_metrics(self.output):
            if slice_metrics.slice_key.single_slice_keys:
                continue
            for item in slice_metrics.metric_keys_and_values:
                key = item.key
                names = (model, "") if model == CANDIDATE else (model,)  # a single model is unnamed
                if key.is_diff or key.model_name not in names or not item.value.HasField("double_value"):
                    continue
                class_id = key.sub_key.class_id.value if key.sub_key.HasField("class_id") else None
                found[(key.name, class_id)] = float(item.value.double_value.value)
        return found


def materialized(evaluation: tfma.EvalConfig, baseline: bool) -> tfma.EvalConfig:
    """`evaluation` with model specs that read the predictions from the examples."""
    config = tfma.EvalConfig()
    config.CopyFrom(evaluation)
    del config.model_specs[:]
    config.model_specs.add(name=CANDIDATE, label_key="label_xf", prediction_key="probabilities")
    if baseline:
        config.model_specs.add(name=BASELINE, label_key="label_xf", prediction_key="baseline_probabilities",
                               is_baseline=True)
    return config


def _feature(values: np.ndarray | list) -> tf.train.Feature:
    array = np.asarray(values).reshape(-1)
    if array.dtype.kind in "fc":
        return tf.train.Feature(float_list=tf.train.FloatList(value=array.astype(float).tolist()))
    if array.dtype.kind in "iu":
        return tf.train.Feature(int64_list=tf.train.Int64List(value=array.astype(int).tolist()))
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[str(v).encode() for v in array]))


def write_examples(path: str, labels: np.ndarray, probabilities: np.ndarray,
                   baseline_probabilities: np.ndarray | None, raw_labels: list[list[str]]) -> None:
    """One tf.Example per row: label_xf, probabilities, baseline_probabilities, and the raw label feature."""
    with tf.io.TFRecordWriter(path) as writer:
        for i, (label, probs) in enumerate(zip(labels, probabilities)):
            feature = {"label_xf": _feature(label), "probabilities": _feature(np.asarray(probs, dtype=np.float32)),
                       LABEL_FEATURE: _feature(np.array(raw_labels[i], dtype=object))}
            if baseline_probabilities is not None:
                feature["baseline_probabilities"] = _feature(np.asarray(baseline_probabilities[i], dtype=np.float32))
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())


def evaluate(config: PipelineConfig, labels: np.ndarray, probabilities: np.ndarray,
             baseline_probabilities: np.ndarray | None, class_names: list[str], out_dir: str) -> Evaluated:
    """Build the eval config for `config`, write the examples and run TFMA into `out_dir`."""
    labels = np.asarray(labels)
    if labels.ndim == 1:
        raw = [[class_names[int(i)]] for i in labels]
    else:
        raw = [[class_names[j] for j in np.flatnonzero(row)] for row in labels]
    os.makedirs(out_dir, exist_ok=True)
    data = os.path.join(out_dir, "examples.tfrecord")
    write_examples(data, labels, probabilities, baseline_probabilities, raw)
    built = eval_config(config, LABEL_FEATURE)
    has_baseline = baseline_probabilities is not None
    # What TFX's Evaluator does before calling TFMA (rubber_stamp=True: no change thresholds without a baseline).
    run_config = config_util.update_eval_config_with_defaults(materialized(built, has_baseline),
                                                              has_baseline=has_baseline, rubber_stamp=True)
    models = [tfma.types.EvalSharedModel(model_path="", model_name=name,
                                         model_type=tfma.constants.MATERIALIZED_PREDICTION)
              for name in ([CANDIDATE, BASELINE] if has_baseline else [CANDIDATE])]
    output = os.path.join(out_dir, "evaluation")
    tfma.run_model_analysis(eval_shared_model=models if has_baseline else models[0], eval_config=run_config,
                            data_location=data, output_path=output)
    return Evaluated(config, built, output, labels, np.asarray(probabilities),
                     None if baseline_probabilities is None else np.asarray(baseline_probabilities), class_names)


@functools.cache
def _scratch() -> str:
    path = tempfile.mkdtemp(prefix="visionline-eval-tests-")
    atexit.register(shutil.rmtree, path, True)
    return path


# ----- hand-made predictions ----------------------------------------------------------------------------------
def binary_data(seed: int = 1, n: int = 300) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(label ids, candidate [1 - p, p], baseline [1 - q, q]). The baseline ranks exactly as the candidate (same AUC)
    but is more conservative at 0.5 (q = sigmoid(logit p - 1.2)): higher precision, lower recall."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    z = 2.0 * (2 * labels - 1) + rng.normal(0, 1.6, n)
    p, q = 1.0 / (1.0 + np.exp(-z)), 1.0 / (1.0 + np.exp(-(z - 1.2)))
    return labels, np.stack([1 - p, p], axis=1), np.stack([1 - q, q], axis=1)


def multiclass_data(seed: int = 2, n: int = 300, classes: int = 5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(label ids, candidate softmax, weaker baseline softmax)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)

    def softmax(strength: float) -> np.ndarray:
        logits = rng.normal(size=(n, classes)) + strength * np.eye(classes)[labels]
        return np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)

    return labels, softmax(1.6), softmax(1.2)


def multilabel_data(seed: int = 3, n: int = 300, labels: int = 4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(multi-hot [N, C], candidate sigmoids, baseline sigmoids). Label 3 is rare and hard for the candidate; the
    baseline equals the candidate on labels 0-2 and is much better on label 3."""
    rng = np.random.default_rng(seed)
    rates = np.array([0.5, 0.35, 0.25, 0.08])[:labels]
    truth = (rng.random((n, labels)) < rates).astype(np.float32)
    signal = (2 * truth - 1) * np.array([3.0, 2.5, 2.0, 0.6])[:labels]
    candidate = 1.0 / (1.0 + np.exp(-(signal + rng.normal(0, 1.5, (n, labels)) - 0.3)))
    baseline = candidate.copy()
    baseline[:, -1] = 1.0 / (1.0 + np.exp(-((2 * truth[:, -1] - 1) * 3.0 + rng.normal(0, 1.0, n))))
    return truth, candidate, baseline


# Gates chosen so that on this data some pass and some fail (the tests derive the expected outcome from
# scikit-learn's values, not from these comments).
BINARY_GATES = ["auc>=0.99", "f1>=0.5", "precision,max_drop=0", "recall>=0.3,max_drop=0.5", "auc_pr>=0.5"]
MULTILABEL_GATES = ["hamming_loss<=0.01", "f1_micro>=0.5,max_drop=0.2", "f1_macro,max_drop=0", "recall_macro>=0.5"]
MULTICLASS_GATES = ["top_k_accuracy>=0.99", "kappa>=0.1,max_drop=0.5"]
BINARY_NAMES = ["cat", "dog"]  # vocabulary order: "dog" (index 1) is the positive class
MULTICLASS_NAMES = ["3", "0", "10", "2", "1"]  # frequency order of a vocabulary, not the natural order
MULTILABEL_NAMES = ["sky", "tree", "car", "boat"]


@functools.cache
def binary_run() -> Evaluated:
    """Binary candidate vs baseline with BINARY_GATES."""
    labels, candidate, baseline = binary_data()
    config = PipelineConfig().override(["train.task=binary", "eval.min_accuracy=0.6", "eval.min_kappa=0.3",
                                        f"eval.gates={BINARY_GATES!r}"])
    return evaluate(config, labels, candidate, baseline, BINARY_NAMES, os.path.join(_scratch(), "binary"))


@functools.cache
def multiclass_run() -> Evaluated:
    """Multiclass candidate vs baseline: top-2 accuracy, quadratic-weighted kappa, MULTICLASS_GATES."""
    labels, candidate, baseline = multiclass_data()
    config = PipelineConfig().override(["eval.top_k=2", "eval.kappa_weighting=quadratic",
                                        f"eval.gates={MULTICLASS_GATES!r}"])
    return evaluate(config, labels, candidate, baseline, MULTICLASS_NAMES, os.path.join(_scratch(), "multiclass"))


@functools.cache
def multilabel_run() -> Evaluated:
    """Multilabel candidate vs baseline with MULTILABEL_GATES (subset accuracy gated by eval.min_accuracy)."""
    labels, candidate, baseline = multilabel_data()
    config = PipelineConfig().override(["train.task=multilabel", "eval.min_accuracy=0.2",
                                        f"eval.gates={MULTILABEL_GATES!r}"])
    return evaluate(config, labels, candidate, baseline, MULTILABEL_NAMES, os.path.join(_scratch(), "multilabel"))
