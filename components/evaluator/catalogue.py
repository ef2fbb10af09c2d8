"""What the Evaluator computes and gates for each task (`train.task`), and the `eval.gates` syntax.

Plain Python, no TensorFlow: `PipelineConfig.validate()` checks gates with it, `pipeline.eval_config` turns it into a
`tfma.EvalConfig`, the CLI summary and the report take metric labels and directions from it, and
`eval_fields_from_tfma` reads the `eval.*` settings back from a compiled EvalConfig (Kubeflow runtime parameters).

Metrics per task (TFMA metric names in `components.evaluator.metric_keys`):

* multiclass — accuracy, top-k accuracy (`eval.top_k`, default 5; 1.0 by construction when k ≥ the number of
  classes), Cohen's kappa (`eval.kappa_weighting`: none | linear | quadratic), example count, confusion matrix;
* binary — the model outputs [1 - p, p]; the positive class is vocabulary index 1 (`train.positive_class`, default
  the second of the two sorted class names). Accuracy, precision, recall, F1 and the confusion matrix at threshold
  0.5, AUC-ROC, AUC-PR, Cohen's kappa, example count;
* multilabel — per-label precision/recall/F1/support and TP/FP/FN/TN, micro and macro precision/recall/F1, subset
  accuracy (exact match), Hamming loss (lower is better), example count; a label is predicted at probability ≥ 0.5.

Gates: `eval.min_accuracy` (the task's accuracy; subset accuracy for multilabel) and `eval.min_kappa` (not for
multilabel) are lower bounds, each with a no-regression change threshold `eval.max_regression`. `eval.gates` adds
any number of gates, one string each:

    METRIC >= BOUND                 e.g. "auc>=0.85"             lower bound (higher-is-better metrics)
    METRIC <= BOUND                 e.g. "hamming_loss<=0.1"     upper bound (lower-is-better metrics)
    METRIC OP BOUND,max_drop=D      e.g. "f1_micro>=0.6,max_drop=0.01"   and at most D worse than the baseline
    METRIC,max_drop=D               e.g. "auc,max_drop=0.005"    no-regression only

METRIC is a short name from `gate_metrics(task)` (or the TFMA metric name). Gates on the same metric combine, the
strictest bound winning (so `eval.gates` can tighten but not loosen `eval.min_accuracy`). All gates apply to the
overall slice only; the change threshold applies once a blessed baseline model exists.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from components.evaluator import metric_keys as names
from components.transform.settings import TASKS

DEFAULT_TOP_K = 5


class GateError(ValueError):
    """An `eval.gates` entry (or another eval setting) is invalid; the message names it."""


@dataclass(frozen=True)
class MetricInfo:
    """One metric the Evaluator reports for a task."""

    key: str  # the TFMA metric name
    alias: str  # the short name used in `eval.gates`
    label: str  # for people
    higher_is_better: bool = True


@dataclass(frozen=True)
class Bounds:
    """The combined gate on one metric: absolute bounds and the allowed drop against the baseline."""

    lower: float | None = None
    upper: float | None = None
    max_drop: float | None = None  # for lower-is-better metrics: the allowed rise
    higher_is_better: bool = True

    def merge(self, other: Bounds) -> Bounds:
        """Both gates at once: the higher lower bound, the lower upper bound, the smaller allowed drop."""
        def pick(a: float | None, b: float | None, choose: Any) -> float | None:
            return a if b is None else b if a is None else choose(a, b)

        return Bounds(pick(self.lower, other.lower, max), pick(self.upper, other.upper, min),
                      pick(self.max_drop, other.max_drop, min), self.higher_is_better)


@dataclass(frozen=True)
class GateSpec:
    """One parsed `eval.gates` entry (metric as written, not yet resolved for a task)."""

    metric: str
    op: str | None = None  # ">=" | "<=" | None
    bound: float | None = None
    max_drop: float | None = None
    entry: str = ""


def _kappa_label(weighting: str | None) -> str:
    return f"Cohen's kappa ({'unweighted' if weighting in (None, 'none') else weighting + '-weighted'})"


def task_metrics(task: str, top_k: int = DEFAULT_TOP_K, kappa_weighting: str = "none") -> list[MetricInfo]:
    """The scalar metrics the Evaluator computes for `task`, headline first."""
    if task not in TASKS:
        raise GateError(f"unknown task {task!r}; expected one of {TASKS}")
    kappa = MetricInfo(names.kappa_name(kappa_weighting), "kappa", _kappa_label(kappa_weighting))
    count = MetricInfo(names.EXAMPLE_COUNT, "example_count", "Eval examples")
    if task == "multiclass":
        return [MetricInfo(names.ACCURACY, "accuracy", "Accuracy"), kappa,
                MetricInfo(names.top_k_name(top_k), "top_k_accuracy", f"Top-{top_k} accuracy"), count]
    if task == "binary":
        return [MetricInfo(names.ACCURACY, "accuracy", "Accuracy"), kappa,
                MetricInfo(names.PRECISION, "precision", "Precision"), MetricInfo(names.RECALL, "recall", "Recall"),
                MetricInfo(names.F1_SCORE, "f1", "F1"), MetricInfo(names.AUC, "auc", "AUC-ROC"),
                MetricInfo(names.AUC_PR, "auc_pr", "AUC-PR"), count]
    return [MetricInfo(names.SUBSET_ACCURACY, "accuracy", "Subset accuracy (exact match)"),
            MetricInfo(names.HAMMING_LOSS, "hamming_loss", "Hamming loss", higher_is_better=False),
            MetricInfo(names.F1_MICRO, "f1_micro", "Micro F1"), MetricInfo(names.F1_MACRO, "f1_macro", "Macro F1"),
            MetricInfo(names.PRECISION_MICRO, "precision_micro", "Micro precision"),
            MetricInfo(names.RECALL_MICRO, "recall_micro", "Micro recall"),
            MetricInfo(names.PRECISION_MACRO, "precision_macro", "Macro precision"),
            MetricInfo(names.RECALL_MACRO, "recall_macro", "Macro recall"), count]


def gate_metrics(task: str, top_k: int = DEFAULT_TOP_K, kappa_weighting: str = "none") -> dict[str, MetricInfo]:
    """Every name a gate may use for `task` (short alias and TFMA name) → the metric."""
    found: dict[str, MetricInfo] = {}
    for info in task_metrics(task, top_k, kappa_weighting):
        found[info.alias] = info
        found[info.key] = info
    if task == "multilabel":
        found["subset_accuracy"] = found[names.SUBSET_ACCURACY]
    return found


_LABELS = {info.key: info.label for task in TASKS for info in task_metrics(task)}
_LABELS[names.SUBSET_ACCURACY] = "Subset accuracy"
_ALIASES = {info.key: info.alias for task in TASKS for info in task_metrics(task)}  # one alias per key, any task
_TOP_K = re.compile(r"^top_(\d+)_accuracy$")


def metric_label(name: str) -> str:
    """Display label of any metric name the Evaluator writes (the name itself when unknown)."""
    if name in _LABELS:
        return _LABELS[name]
    try:
        return _kappa_label(names.kappa_weighting(name))
    except ValueError:
        pass
    match = _TOP_K.match(name)
    return f"Top-{match.group(1)} accuracy" if match else name


def config_name(name: str) -> str:
    """The name the config uses for a TFMA metric name (`eval.gates` aliases, `eval.min_accuracy` → `accuracy`,
    `eval.min_kappa` → `kappa`): `accuracy` for sparse_categorical_accuracy and (multilabel) subset_accuracy, `kappa`
    for cohen_kappa and its weighted variants, `top_k_accuracy` for top_5_accuracy, `f1` for f1_score, `auc_pr` for
    auc_precision_recall; other names as they are."""
    if name in _ALIASES:
        return _ALIASES[name]
    if is_kappa(name):
        return "kappa"
    return "top_k_accuracy" if _TOP_K.match(name) else name


def is_kappa(name: str) -> bool:
    """True for cohen_kappa and its weighted variants."""
    try:
        names.kappa_weighting(name)
    except ValueError:
        return False
    return True


def higher_is_better(name: str) -> bool:
    """Direction of a metric (only Hamming loss is lower-is-better)."""
    return name not in names.LOWER_IS_BETTER


def headline_order(metric_names: Iterable[str]) -> list[str]:
    """`metric_names` that are known scalar metrics, in catalogue order (accuracy, kappa, …, example count last)."""
    present = set(metric_names)
    order: list[str] = []
    for task in TASKS:
        for info in task_metrics(task):
            if info.key != names.EXAMPLE_COUNT and info.key not in order:
                order.append(info.key)
    ranked = [n for n in order if n in present]
    extra = sorted(n for n in present if n not in order and (is_kappa(n) or _TOP_K.match(n)))
    ranked[1:1] = [n for n in extra if is_kappa(n)]  # right after accuracy
    ranked += [n for n in extra if not is_kappa(n)]
    if names.EXAMPLE_COUNT in present:
        ranked.append(names.EXAMPLE_COUNT)
    return ranked


# ----- gate syntax --------------------------------------------------------------------------------------------
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_HEAD = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*(?:(?P<op>>=|<=|≥|≤|>|<|==|=)\s*(?P<bound>\S.*?))?$")
_OPTION = re.compile(r"^(?P<key>[A-Za-z_]+)\s*=\s*(?P<value>\S.*?)$")
_EXAMPLES = '"auc>=0.85", "hamming_loss<=0.1", "f1_micro>=0.6,max_drop=0.01"'


def _number(text: str, what: str, entry: str) -> float:
    if not re.fullmatch(_NUMBER, text.strip()):
        raise GateError(f"{entry!r}: {what} {text.strip()!r} is not a number")
    value = float(text)
    if not math.isfinite(value):
        raise GateError(f"{entry!r}: {what} must be finite")
    return value


def parse_gate(entry: str) -> GateSpec:
    """Parse one `eval.gates` entry (syntax only; `resolve_gates` checks the metric for a task)."""
    text = str(entry).strip()
    if not text:
        raise GateError(f"empty gate; examples: {_EXAMPLES}")
    head, *options = [part.strip() for part in text.split(",")]
    if _OPTION.match(head) and head.split("=", 1)[0].strip() == "max_drop":
        raise GateError(f"{text!r} names no metric. Options belong to the gate before them in the same string; "
                        "on the command line quote entries with commas: "
                        "--set 'eval.gates=[\"f1_micro>=0.6,max_drop=0.01\"]'")
    match = _HEAD.match(head)
    if not match:
        raise GateError(f"{text!r}: expected METRIC>=BOUND, METRIC<=BOUND or METRIC,max_drop=D; examples: {_EXAMPLES}")
    op, bound = match.group("op"), None
    if op is not None:
        op = {"≥": ">=", "≤": "<="}.get(op, op)
        if op not in (">=", "<="):
            raise GateError(f"{text!r}: use >= or <= (bounds are inclusive), not {op!r}")
        bound = _number(match.group("bound"), "bound", text)
    max_drop = None
    for option in options:
        found = _OPTION.match(option)
        if not found or found.group("key") != "max_drop":
            raise GateError(f"{text!r}: unknown option {option!r}; the only option is max_drop=D (the allowed drop "
                            "against the latest blessed model)")
        if max_drop is not None:
            raise GateError(f"{text!r}: max_drop given twice")
        max_drop = _number(found.group("value"), "max_drop", text)
        if max_drop < 0:
            raise GateError(f"{text!r}: max_drop must be >= 0 (how much worse than the baseline is allowed)")
    if op is None and max_drop is None:
        raise GateError(f"{text!r}: a gate needs a bound (>= or <=) and/or max_drop=D; examples: {_EXAMPLES}")
    return GateSpec(match.group("name"), op, bound, max_drop, text)


def resolve_gates(task: str, min_accuracy: float, min_kappa: float, max_regression: float,
                  gates: Sequence[str] = (), top_k: int = DEFAULT_TOP_K,
                  kappa_weighting: str = "none") -> dict[str, Bounds]:
    """TFMA metric name → its combined gate, from the eval settings. GateError names the offending entry."""
    catalogue = gate_metrics(task, top_k, kappa_weighting)
    accuracy = catalogue["accuracy"]
    resolved: dict[str, Bounds] = {accuracy.key: Bounds(lower=min_accuracy, max_drop=max_regression)}
    if "kappa" in catalogue:
        resolved[catalogue["kappa"].key] = Bounds(lower=min_kappa, max_drop=max_regression)
    specs = []
    for index, entry in enumerate(gates):  # syntax first: an unquoted comma on the command line shows up here
        try:
            specs.append(parse_gate(entry))
        except GateError as err:
            raise GateError(f"eval.gates[{index}] {err}") from None
    for index, spec in enumerate(specs):
        where = f"eval.gates[{index}]"
        info = catalogue.get(spec.metric)
        if info is None:
            known = ", ".join(sorted({i.alias for i in catalogue.values()}))
            raise GateError(f"{where} {spec.entry!r}: unknown metric {spec.metric!r} for task {task}; "
                            f"gateable metrics: {known}")
        if spec.op is not None and (spec.op == ">=") != info.higher_is_better:
            better = "higher" if info.higher_is_better else "lower"
            want = ">=" if info.higher_is_better else "<="
            raise GateError(f"{where} {spec.entry!r}: {spec.metric} is {better}-is-better, so its bound is "
                            f"{spec.metric}{want}BOUND")
        bounds = Bounds(lower=spec.bound if spec.op == ">=" else None, upper=spec.bound if spec.op == "<=" else None,
                        max_drop=spec.max_drop, higher_is_better=info.higher_is_better)
        resolved[info.key] = resolved[info.key].merge(bounds) if info.key in resolved else bounds
    return resolved


def validate_eval(task: str, min_accuracy: float, min_kappa: float, max_regression: float, gates: Sequence[str],
                  top_k: int, kappa_weighting: str, kappa_class_order: Sequence[str]) -> None:
    """Every eval setting, checked; GateError names the field (PipelineConfig.validate turns it into ConfigError)."""
    if kappa_weighting not in names.KAPPA_WEIGHTINGS:
        raise GateError(f"eval.kappa_weighting must be one of {names.KAPPA_WEIGHTINGS}; got {kappa_weighting!r}")
    if top_k < 1:
        raise GateError(f"eval.top_k must be >= 1; got {top_k!r}")
    duplicates = sorted({n for n in kappa_class_order if list(kappa_class_order).count(n) > 1})
    if duplicates:
        raise GateError(f"eval.kappa_class_order lists {', '.join(duplicates)} more than once")
    resolve_gates(task, min_accuracy, min_kappa, max_regression, gates, top_k, kappa_weighting)


def gate_text(name: str, bounds: Bounds) -> str:
    """The `eval.gates` entry that expresses `bounds` on metric `name` (its TFMA name)."""
    head = name
    if bounds.lower is not None:
        head += f">={bounds.lower!r}"
    elif bounds.upper is not None:
        head += f"<={bounds.upper!r}"
    return head + (f",max_drop={bounds.max_drop!r}" if bounds.max_drop is not None else "")


# ----- reading an EvalConfig back -----------------------------------------------------------------------------
def _options(metric: Any) -> dict[str, Any]:
    text = metric.config.strip()
    if not text:
        return {}
    return json.loads(text if text.startswith("{") else "{" + text + "}")


def task_of(evaluation: Any) -> str:
    """The task a tfma.EvalConfig made by `pipeline.eval_config` evaluates (from the metrics it configures)."""
    classes = {m.class_name for spec in evaluation.metrics_specs for m in spec.metrics}
    if "MultiLabelScore" in classes or "PerLabelMetrics" in classes:
        return "multilabel"
    if any(spec.HasField("binarize") for spec in evaluation.metrics_specs):
        return "binary"
    return "multiclass"


def configured_bounds(evaluation: Any) -> dict[str, Bounds]:
    """Metric name → the overall-slice gate in a tfma.EvalConfig made by `pipeline.eval_config`."""
    found: dict[str, Bounds] = {}
    for spec in evaluation.metrics_specs:
        for metric in spec.metrics:
            name = _options(metric).get("name") or metric.class_name
            for per_slice in metric.per_slice_thresholds:
                if per_slice.slicing_specs and not any(not s.ListFields() for s in per_slice.slicing_specs):
                    continue  # not the overall slice
                threshold = per_slice.threshold
                value = threshold.value_threshold
                change = threshold.change_threshold
                bounds = Bounds(
                    lower=value.lower_bound.value if value.HasField("lower_bound") else None,
                    upper=value.upper_bound.value if value.HasField("upper_bound") else None,
                    max_drop=abs(change.absolute.value) if change.HasField("absolute") else None,
                    higher_is_better=higher_is_better(name),
                )
                found[name] = found[name].merge(bounds) if name in found else bounds
    return found


def eval_fields_from_tfma(evaluation: Any, defaults: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The `eval.*` config fields that make `pipeline.eval_config` build `evaluation` again (an equivalent config:
    gates that the defaults express come back as min_accuracy / min_kappa / max_regression, the rest as
    `eval.gates` entries). `defaults` supplies the fields the EvalConfig cannot tell (e.g. min_kappa for
    multilabel)."""
    fields: dict[str, Any] = dict(defaults or {})
    task = task_of(evaluation)
    for spec in evaluation.metrics_specs:
        for metric in spec.metrics:
            options = _options(metric)
            if metric.class_name == "CohenKappa":
                fields["kappa_weighting"] = options.get("weighting") or "none"
                fields["kappa_class_order"] = [str(n) for n in options.get("class_order") or []]
            elif metric.class_name == "SparseTopKCategoricalAccuracy":
                fields["top_k"] = int(options.get("k", DEFAULT_TOP_K))
    catalogue = gate_metrics(task, int(fields.get("top_k", DEFAULT_TOP_K)), fields.get("kappa_weighting", "none"))
    bounds = configured_bounds(evaluation)
    accuracy = bounds.get(catalogue["accuracy"].key, Bounds())
    kappa = bounds.get(catalogue["kappa"].key, Bounds()) if "kappa" in catalogue else None
    fields["min_accuracy"] = accuracy.lower if accuracy.lower is not None else fields.get("min_accuracy", 0.0)
    # Gates combine strictest-first, so the defaults take the looser drop and a gate restores the tighter one.
    drops = [b.max_drop for b in (accuracy, kappa) if b is not None and b.max_drop is not None]
    fields["max_regression"] = max(drops) if drops else fields.get("max_regression", 0.0)
    if kappa is not None and kappa.lower is not None:
        fields["min_kappa"] = kappa.lower
    defaults_made = {catalogue["accuracy"].key: Bounds(fields["min_accuracy"], None, fields["max_regression"])}
    if kappa is not None:
        defaults_made[catalogue["kappa"].key] = Bounds(fields.get("min_kappa", 0.0), None, fields["max_regression"])
    gates = []
    for name, wanted in bounds.items():
        made = defaults_made.get(name)
        if made is not None and (made.lower, made.upper, made.max_drop) == (wanted.lower, wanted.upper,
                                                                            wanted.max_drop):
            continue
        gates.append(gate_text(name, wanted))
    fields["gates"] = gates
    return fields
