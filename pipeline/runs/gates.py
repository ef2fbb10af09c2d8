"""The Evaluator's gates: the thresholds an EvalConfig sets on the overall slice, checking a value against them,
the failures TFMA recorded in its validation result, and all of these in words ("≥ 0.4000",
"change vs baseline ≥ -0.0200").
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

import tensorflow_model_analysis as tfma
from tensorflow_model_analysis.proto import config_pb2


@dataclass
class GateFailure:
    """One threshold TFMA found failed, on one slice."""

    metric: str
    is_diff: bool  # a change-vs-baseline threshold
    value: float | None  # the metric, or its change vs the baseline
    threshold: Any  # tfma MetricThreshold
    slice: str  # "" for the overall slice, else "slice column=value, …"
    message: str  # TFMA's own message (usually empty)

    @property
    def kind(self) -> str:
        """"change" (vs the baseline) or "value" (absolute bound)."""
        return "change" if self.is_diff else "value"

    def reason(self) -> str:
        """Why it failed, in words, with the slice in front ("slice x=1: 0.2 is below the lower bound 0.3")."""
        where = f"{self.slice}: " if self.slice else ""
        return where + (self.message or failure_text(self.value, self.threshold))


def read_failures(uri: str) -> list[GateFailure]:
    """Every failed threshold in a ModelEvaluation artifact's validation result, on every slice."""
    found = []
    for per_slice in tfma.load_validation_result(uri).metric_validations_per_slice:
        keys = per_slice.slice_key.single_slice_keys
        where = "" if not keys else "slice " + ", ".join(f"{k.column}={_slice_value(k)}" for k in keys)
        for failure in per_slice.failures:
            value = failure.metric_value.double_value.value if failure.metric_value.HasField("double_value") else None
            found.append(GateFailure(failure.metric_key.name, failure.metric_key.is_diff, value,
                                     failure.metric_threshold, where, failure.message))
    return found


def _slice_value(key: Any) -> str:
    kind = key.WhichOneof("kind")
    value = getattr(key, kind) if kind else ""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def value_threshold_text(threshold: Any) -> str:
    """'≥ 0.4000' for a TFMA GenericValueThreshold."""
    parts = []
    if threshold.HasField("lower_bound"):
        parts.append(f"≥ {threshold.lower_bound.value:.4f}")
    if threshold.HasField("upper_bound"):
        parts.append(f"≤ {threshold.upper_bound.value:.4f}")
    return " and ".join(parts) or "any value"


def change_threshold_text(threshold: Any) -> str:
    """'change vs baseline ≥ -0.0200' for a TFMA GenericChangeThreshold."""
    sign = "≤" if threshold.direction == config_pb2.MetricDirection.LOWER_IS_BETTER else "≥"
    parts = []
    for field, what in (("absolute", "change vs baseline"), ("relative", "relative change vs baseline")):
        if threshold.HasField(field):
            parts.append(f"{what} {sign} {getattr(threshold, field).value:+.4f}")
    return " and ".join(parts) or "any change"


def threshold_text(threshold: Any) -> str:
    """Readable form of a TFMA MetricThreshold (value bounds and/or change vs baseline)."""
    parts = []
    if threshold.HasField("value_threshold"):
        parts.append(value_threshold_text(threshold.value_threshold))
    if threshold.HasField("change_threshold"):
        parts.append(change_threshold_text(threshold.change_threshold))
    return " and ".join(parts) or str(threshold).replace("\n", " ").strip()


def failure_text(value: float | None, threshold: Any) -> str:
    """Why TFMA failed a metric with `value` against `threshold`, in words (its failures usually carry no
    message)."""
    shown = "n/a" if value is None else f"{value:.4f}"
    if threshold.HasField("value_threshold"):
        bounds = threshold.value_threshold
        if value is not None and bounds.HasField("lower_bound") and value < bounds.lower_bound.value:
            return f"{shown} is below the lower bound {bounds.lower_bound.value:.4f}"
        if value is not None and bounds.HasField("upper_bound") and value > bounds.upper_bound.value:
            return f"{shown} is above the upper bound {bounds.upper_bound.value:.4f}"
        return f"{shown} is outside {value_threshold_text(bounds)}"
    if threshold.HasField("change_threshold"):
        return f"changed by {'n/a' if value is None else f'{value:+.4f}'} vs the baseline; needs " \
               f"{change_threshold_text(threshold.change_threshold)}"
    return f"{shown} fails {str(threshold).strip() or 'its threshold'}"


def overall_thresholds(config: tfma.EvalConfig | None) -> dict[str, Any]:
    """metric name → MetricThreshold on the overall slice, from every MetricsSpec of an EvalConfig.

    Plain `threshold`s and `per_slice_thresholds` whose slicing specs include the overall slice (an empty
    `SlicingSpec`) count; thresholds for other slices only are not headline gates.
    """
    found: dict[str, Any] = {}
    if config is None:
        return found

    def overall(per_slice: Any) -> bool:
        return not per_slice.slicing_specs or any(not spec.ListFields() for spec in per_slice.slicing_specs)

    for spec in config.metrics_specs:
        for metric in spec.metrics:
            options = json.loads(metric.config) if metric.config else {}
            name = options.get("name") or _snake(metric.class_name)
            if metric.HasField("threshold"):
                found[name] = metric.threshold
            for per_slice in metric.per_slice_thresholds:
                if overall(per_slice):
                    found[name] = per_slice.threshold
        for name, threshold in spec.thresholds.items():
            found[name] = threshold
        for name, per_slice_thresholds in spec.per_slice_thresholds.items():
            for per_slice in per_slice_thresholds.thresholds:
                if overall(per_slice):
                    found[name] = per_slice.threshold
    return found


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def value_ok(threshold: Any, value: float | None) -> bool | None:
    """Whether `value` is within a GenericValueThreshold; None when there is no value."""
    if value is None or math.isnan(value):
        return None
    low = threshold.lower_bound.value if threshold.HasField("lower_bound") else -math.inf
    high = threshold.upper_bound.value if threshold.HasField("upper_bound") else math.inf
    return low <= value <= high


def change_ok(threshold: Any, diff: float | None, baseline: float | None) -> bool | None:
    """Whether a change vs the baseline meets a GenericChangeThreshold; None when there is no change."""
    if diff is None or math.isnan(diff):
        return None
    lower = threshold.direction == tfma.MetricDirection.LOWER_IS_BETTER
    ok = True
    if threshold.HasField("absolute"):
        ok = ok and (diff <= threshold.absolute.value if lower else diff >= threshold.absolute.value)
    if threshold.HasField("relative") and baseline:
        ratio = diff / baseline
        ok = ok and (ratio <= threshold.relative.value if lower else ratio >= threshold.relative.value)
    return ok
