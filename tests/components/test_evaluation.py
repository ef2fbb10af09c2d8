"""Tests for components.evaluator.catalogue: the `eval.gates` syntax and its validation (also through PipelineConfig and
`--set` overrides), how gates combine, reading eval settings back from a compiled EvalConfig, and gates decided by
TFMA's own metrics validator on hand-made predictions (value and change thresholds, upper bounds for Hamming loss),
as the CLI summary reports them."""

from __future__ import annotations

import json
import math

import pytest

from components.evaluator import catalogue as evaluation
from pipeline.configs import ConfigError, PipelineConfig
from pipeline.eval_config import eval_config
from pipeline.runs.summary import RunSummary, read_evaluation
from pipeline.runs.text import format_summary
from tests import evaluation_helpers as helpers


# ----- syntax -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("entry, expected", [
    ("auc>=0.85", evaluation.GateSpec("auc", ">=", 0.85, None, "auc>=0.85")),
    (" hamming_loss <= 0.1 ", evaluation.GateSpec("hamming_loss", "<=", 0.1, None, "hamming_loss <= 0.1")),
    ("f1_micro>=0.6,max_drop=0.01", evaluation.GateSpec("f1_micro", ">=", 0.6, 0.01, "f1_micro>=0.6,max_drop=0.01")),
    ("auc, max_drop = 0", evaluation.GateSpec("auc", None, None, 0.0, "auc, max_drop = 0")),
    ("kappa≥.5", evaluation.GateSpec("kappa", ">=", 0.5, None, "kappa≥.5")),
    ("example_count>=1e2", evaluation.GateSpec("example_count", ">=", 100.0, None, "example_count>=1e2")),
])
def test_parse_gate(entry, expected):
    assert evaluation.parse_gate(entry) == expected


@pytest.mark.parametrize("entry, message", [
    ("", "empty gate"),
    ("auc", "needs a bound"),
    ("auc>0.8", "use >= or <="),
    ("auc=0.8", "use >= or <="),
    ("auc>=high", "bound 'high' is not a number"),
    ("auc>=inf", "not a number"),
    ("auc>=0.8,min_drop=0.1", "unknown option 'min_drop=0.1'"),
    ("auc>=0.8,max_drop=-0.1", "max_drop must be >= 0"),
    ("auc>=0.8,max_drop=0.1,max_drop=0.2", "max_drop given twice"),
    ("max_drop=0.01", "names no metric"),  # what `--set eval.gates=[f1>=0.6,max_drop=0.01]` gives unquoted
    ("0.8<=auc", "expected METRIC>=BOUND"),
])
def test_parse_gate_errors(entry, message):
    with pytest.raises(evaluation.GateError, match=message):
        evaluation.parse_gate(entry)


# ----- resolving for a task -----------------------------------------------------------------------------------
def test_defaults_gate_accuracy_and_kappa_and_entries_combine_strictest():
    entries = ["accuracy>=0.7", "accuracy>=0.6,max_drop=0.05", "auc>=0.8", "auc>=0.85,max_drop=0.01", "f1,max_drop=0"]
    gates = evaluation.resolve_gates("binary", 0.5, 0.4, 0.02, entries)
    assert gates["sparse_categorical_accuracy"] == evaluation.Bounds(lower=0.7, max_drop=0.02)  # tighten, not loosen
    assert gates["cohen_kappa"] == evaluation.Bounds(lower=0.4, max_drop=0.02)
    assert gates["auc"] == evaluation.Bounds(lower=0.85, max_drop=0.01)
    assert gates["f1_score"] == evaluation.Bounds(max_drop=0.0)
    assert set(gates) == {"sparse_categorical_accuracy", "cohen_kappa", "auc", "f1_score"}


def test_multilabel_gates_subset_accuracy_by_default_and_hamming_loss_upwards():
    gates = evaluation.resolve_gates("multilabel", 0.3, 0.4, 0.02, ["hamming_loss<=0.1,max_drop=0.01",
                                                                      "hamming_loss<=0.2"])
    assert gates["subset_accuracy"] == evaluation.Bounds(lower=0.3, max_drop=0.02)
    assert "cohen_kappa" not in gates  # kappa is not computed for multilabel
    assert gates["hamming_loss"] == evaluation.Bounds(upper=0.1, max_drop=0.01, higher_is_better=False)


def test_kappa_and_top_k_aliases_follow_the_config():
    gates = evaluation.resolve_gates("multiclass", 0.5, 0.4, 0.02, ["kappa>=0.6", "top_k_accuracy>=0.9"], top_k=3,
                                     kappa_weighting="quadratic")
    assert gates["cohen_kappa_quadratic"].lower == 0.6
    assert gates["top_3_accuracy"].lower == 0.9
    assert evaluation.resolve_gates("multiclass", 0.5, 0.4, 0.02, ["top_3_accuracy>=0.9"], top_k=3)


@pytest.mark.parametrize("task, entry, message", [
    ("binary", "aucc>=0.8", "unknown metric 'aucc' for task binary; gateable metrics: accuracy, auc, auc_pr"),
    ("multiclass", "auc>=0.8", "unknown metric 'auc' for task multiclass"),
    ("multilabel", "kappa>=0.5", "unknown metric 'kappa' for task multilabel"),
    ("multilabel", "hamming_loss>=0.1", "hamming_loss is lower-is-better, so its bound is hamming_loss<=BOUND"),
    ("binary", "auc<=0.9", "auc is higher-is-better"),
])
def test_resolve_errors_name_the_entry(task, entry, message):
    with pytest.raises(evaluation.GateError, match=r"eval\.gates\[1\] " + f"'{entry}'.*" + message.replace("(", r"\(")):
        evaluation.resolve_gates(task, 0.5, 0.4, 0.02, ["accuracy>=0.5", entry])


def test_config_validates_gates_and_eval_fields_naming_them(tmp_path):
    base = [f"data.root={tmp_path}"]
    config = PipelineConfig().override([*base, "train.task=multilabel",
                                        "eval.gates=[hamming_loss<=0.1, 'f1_micro>=0.6,max_drop=0.01']"])
    assert config.eval.gates == ["hamming_loss<=0.1", "f1_micro>=0.6,max_drop=0.01"]
    config.validate()
    single = PipelineConfig().override([*base, "eval.gates=top_k_accuracy>=0.9"])  # one entry, no brackets
    assert single.eval.gates == ["top_k_accuracy>=0.9"]
    single.validate()
    for override, message in (
        ("eval.gates=[f1_micro>=0.6,max_drop=0.01]", r"eval\.gates\[1\] 'max_drop=0\.01' names no metric"),
        ("eval.gates=[auc>=0.9]", r"config field eval\.gates\[0\] 'auc>=0\.9': unknown metric 'auc'"),
        ("eval.kappa_weighting=cubic", r"eval\.kappa_weighting must be one of"),
        ("eval.top_k=0", r"eval\.top_k must be >= 1"),
        ("eval.kappa_class_order=[a, b, a]", r"eval\.kappa_class_order lists a more than once"),
    ):
        with pytest.raises(ConfigError, match=message):
            PipelineConfig().override([*base, override]).validate()
    yaml_file = tmp_path / "config.yaml"
    yaml_file.write_text("train: {task: binary}\neval:\n  gates:\n    - auc>=0.85\n    - recall>=0.7,max_drop=0.02\n")
    loaded = PipelineConfig.load(yaml_file)
    assert loaded.eval.gates == ["auc>=0.85", "recall>=0.7,max_drop=0.02"]


@pytest.mark.parametrize("overrides", [
    [],
    ["eval.kappa_weighting=quadratic", "eval.kappa_class_order=[low, mid, high]", "eval.top_k=3"],
    ["eval.gates=[accuracy>=0.8, 'kappa,max_drop=0.005', top_k_accuracy>=0.9]", "eval.max_regression=0.03"],
    ["train.task=binary", "eval.gates=['auc>=0.9,max_drop=0.01', precision>=0.5, 'accuracy,max_drop=0.001']"],
    ["train.task=multilabel", "eval.min_accuracy=0.2", "eval.gates=['hamming_loss<=0.1,max_drop=0.01', f1_macro>=0.5]"],
])
def test_eval_settings_read_back_from_the_compiled_eval_config(overrides):
    """Kubeflow runs rebuild the eval config from the compiled one: the settings read back must build it again."""
    config = PipelineConfig().override(overrides)
    built = eval_config(config, "label")
    fields = evaluation.eval_fields_from_tfma(built, defaults=PipelineConfig().to_dict()["eval"])
    again = PipelineConfig().override([f"train.task={config.train.task}"])
    again = PipelineConfig.from_dict({**again.to_dict(), "eval": fields})
    assert eval_config(again, "label") == built
    assert evaluation.task_of(built) == config.train.task
    # Only the configured metrics: TFMA's defaults would reload the Keras model in every combiner for unread values.
    assert built.options.HasField("include_default_metrics") and not built.options.include_default_metrics.value


def test_metric_labels_and_headline_order():
    assert evaluation.metric_label("cohen_kappa") == "Cohen's kappa (unweighted)"
    assert evaluation.metric_label("cohen_kappa_quadratic") == "Cohen's kappa (quadratic-weighted)"
    assert evaluation.metric_label("top_7_accuracy") == "Top-7 accuracy"
    assert evaluation.metric_label("auc_precision_recall") == "AUC-PR"
    assert evaluation.metric_label("something_else") == "something_else"
    assert evaluation.headline_order(["example_count", "top_5_accuracy", "cohen_kappa_linear", "zzz",
                                      "sparse_categorical_accuracy"]) == [
        "sparse_categorical_accuracy", "cohen_kappa_linear", "top_5_accuracy", "example_count"]


# ----- gates decided by TFMA ----------------------------------------------------------------------------------
def _failures(run: helpers.Evaluated) -> dict[tuple[str, bool], float]:
    found = {}
    for per_slice in run.validation.metric_validations_per_slice:
        assert not per_slice.slice_key.single_slice_keys  # gates apply to the overall slice only
        for failure in per_slice.failures:
            found[(failure.metric_key.name, failure.metric_key.is_diff)] = failure.metric_value.double_value.value
    return found


def _expected(run: helpers.Evaluated, with_baseline: bool = True) -> set[tuple[str, bool]]:
    """Which gates should fail, recomputed here from TFMA's candidate and baseline values and the config."""
    config = run.config.eval
    candidate = {name: value for (name, _), value in run.overall().items()}
    baseline = {name: value for (name, _), value in run.overall(helpers.BASELINE).items()}
    failing = set()
    for name, bounds in evaluation.resolve_gates(run.config.train.task, config.min_accuracy, config.min_kappa,
                                                 config.max_regression, config.gates, config.top_k,
                                                 config.kappa_weighting).items():
        value = candidate[name]
        if (bounds.lower is not None and value < bounds.lower) or (bounds.upper is not None and value > bounds.upper):
            failing.add((name, False))
        if with_baseline and bounds.max_drop is not None:
            drop = baseline[name] - value if bounds.higher_is_better else value - baseline[name]
            if drop > bounds.max_drop + 1e-12:
                failing.add((name, True))
    return failing


@pytest.mark.parametrize("make_run", [helpers.binary_run, helpers.multilabel_run, helpers.multiclass_run],
                         ids=["binary", "multilabel", "multiclass"])
def test_tfma_validation_fails_exactly_the_violated_gates(make_run):
    run = make_run()
    expected = _expected(run)
    got = _failures(run)
    assert set(got) == expected
    custom = {evaluation.gate_metrics(run.config.train.task, run.config.eval.top_k,
                                      run.config.eval.kappa_weighting)[evaluation.parse_gate(g).metric].key
              for g in run.config.eval.gates}
    assert {name for name, _ in expected} & custom  # an eval.gates entry fails ...
    assert custom - {name for name, _ in expected}  # ... and another passes: the data exercise both
    assert run.validation.validation_ok is False  # TFX's Evaluator writes NOT_BLESSED: Pusher does not push


def test_binary_gate_failures_are_explained_by_the_cli_summary():
    run = helpers.binary_run()
    summary = RunSummary(run_id="r1", blessed=run.validation.validation_ok)
    read_evaluation(run.output, summary)
    values = {name: value for (name, _), value in run.overall().items()}
    assert summary.metrics["auc"] == pytest.approx(values["auc"])
    assert summary.baseline_metrics["precision"] > summary.metrics["precision"]
    gates = {g.metric: g for g in summary.failed_gates}
    assert set(gates) == {"auc", "precision (change vs baseline)"}
    assert gates["auc"].threshold == "≥ 0.9900" and gates["auc"].value == pytest.approx(values["auc"])
    drop = gates["precision (change vs baseline)"]
    assert drop.threshold == "change vs baseline ≥ +0.0000"
    assert drop.value == pytest.approx(values["precision"] - summary.baseline_metrics["precision"])
    text = format_summary(summary)
    assert f"gate failed: auc = {values['auc']:.4f}; threshold ≥ 0.9900" in text
    assert "blessed: NO" in text and "pushed model: none (model not blessed, nothing pushed)" in text
    lines = text.splitlines()
    for label in ("accuracy", "cohen_kappa", "precision", "recall", "f1", "auc", "auc_pr", "eval examples"):
        assert any(line.startswith(label + " ") for line in lines), label


def test_multilabel_upper_bound_gate_is_explained():
    run = helpers.multilabel_run()
    summary = RunSummary(run_id="r2")
    read_evaluation(run.output, summary)
    gates = {g.metric: g for g in summary.failed_gates}
    assert gates["hamming_loss"].threshold == "≤ 0.0100"
    assert gates["f1_macro (change vs baseline)"].threshold == "change vs baseline ≥ +0.0000"
    assert "f1_micro (change vs baseline)" not in gates  # dropped, but by less than its max_drop=0.2
    assert not any(name.startswith("label_") for name in summary.metrics)  # per-label values stay in the report
    text = format_summary(summary)
    assert f"gate failed: hamming_loss = {summary.metrics['hamming_loss']:.4f}; threshold ≤ 0.0100" in text
    assert "subset_accuracy" in text and "f1_micro" in text


def test_multiclass_gate_failures_name_metrics_as_the_config_does():
    """top_2_accuracy and cohen_kappa_quadratic are gated as `top_k_accuracy` and `kappa` in the config: the
    summary names them so (their TFMA names stay in `key`)."""
    run = helpers.multiclass_run()
    summary = RunSummary(run_id="r3")
    read_evaluation(run.output, summary)
    failed = {(g.metric, g.key) for g in summary.failed_gates}
    assert {(name, key) for name, key in failed if not name.endswith("(change vs baseline)")} == {
        (evaluation.config_name(key), key) for key, is_diff in _failures(run) if not is_diff}
    assert ("top_k_accuracy", "top_2_accuracy") in failed  # eval.gates "top_k_accuracy>=0.99"
    text = format_summary(summary)
    assert "gate failed: top_k_accuracy = " in text and "top_2_accuracy =" not in text


def test_without_a_baseline_only_value_gates_apply(tmp_path):
    """The first model: TFX drops change thresholds (rubber stamp), so only the absolute bounds decide."""
    labels, candidate, _ = helpers.binary_data()
    config = PipelineConfig().override(["train.task=binary", "eval.gates=['f1>=0.5,max_drop=0', auc_pr>=0.999]"])
    run = helpers.evaluate(config, labels, candidate, None, helpers.BINARY_NAMES, str(tmp_path))
    assert set(_failures(run)) == _expected(run, with_baseline=False) == {("auc_precision_recall", False)}
    assert not math.isnan(run.overall()[("f1_score", 1)])
    applied = json.loads((tmp_path / "evaluation" / "eval_config.json").read_text())
    assert "changeThreshold" not in json.dumps(applied) and "valueThreshold" in json.dumps(applied)


@pytest.mark.parametrize("overrides", [
    ["train.task=binary", "eval.gates=['auc>=0.9,max_drop=0.01', recall>=0.5]", "eval.kappa_weighting=linear"],
    ["train.task=multilabel", "eval.gates=[hamming_loss<=0.1]"],
    ["eval.top_k=3", "eval.gates=[top_k_accuracy>=0.9]"],
])
def test_kubeflow_runtime_parameters_keep_every_eval_setting(tmp_path, overrides):
    """`--param train.epochs=…` on a compiled pipeline rebuilds eval_config from the compiled defaults: gates,
    weighting and top-k must survive."""
    from pipeline import kubeflow_runner

    config = PipelineConfig().override([f"data.root={tmp_path}", *overrides])
    values = kubeflow_runner.runtime_values(config, fingerprints={"transform_config": "t", "train_config": "t"})
    back = kubeflow_runner.config_from_defaults(values)
    assert eval_config(back, "label") == eval_config(config, "label")
    rebuilt = kubeflow_runner.apply_overrides(values, ["train.epochs=3"])
    assert "eval_config" not in rebuilt  # unchanged, so not sent as a new value
