"""TFX's Evaluator executor, told that an empty `ServedModelBaseline` output is no baseline.

`ServedModelBaseline` always publishes a Model (an orchestrator's output cannot be missing); with nothing served
yet it is empty and marked `served` = 0. This executor drops such a baseline before TFX's executor runs, which then
evaluates as it does when a Resolver finds no blessed model: absolute bounds apply, change thresholds are skipped
(TFX's `rubber_stamp`). Any other baseline (a Resolver's Model, a served snapshot) is passed on unchanged.
"""

from __future__ import annotations

from typing import Any

from tfx import types
from tfx.components.evaluator import executor as tfx_evaluator
from tfx.types import standard_component_specs

from components.served_baseline.executor import SERVED


def without_empty_baseline(input_dict: dict[str, list[types.Artifact]]) -> dict[str, list[types.Artifact]]:
    """`input_dict` with the baseline removed when it is a `ServedModelBaseline` output that found nothing."""
    key = standard_component_specs.BASELINE_MODEL_KEY
    baselines = input_dict.get(key) or []
    empty = [b for b in baselines if b.has_custom_property(SERVED) and not b.get_int_custom_property(SERVED)]
    if not empty:
        return input_dict
    return {**input_dict, key: [b for b in baselines if b not in empty]}


class Executor(tfx_evaluator.Executor):
    """TFX's Evaluator, without an empty served baseline."""

    def Do(self, input_dict: dict[str, list[types.Artifact]], output_dict: dict[str, list[types.Artifact]],
           exec_properties: dict[str, Any]) -> None:
        super().Do(without_empty_baseline(input_dict), output_dict, exec_properties)
