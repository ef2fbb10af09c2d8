"""`ServedBaselineEvaluator`: TFX's Evaluator component with `components.evaluator.executor`, which evaluates
without a baseline when `ServedModelBaseline` found nothing served (see there). Used where the baseline is the
served model (compiled pipelines); local runs keep TFX's Evaluator and its Resolver baseline."""

from __future__ import annotations

from tfx import v1 as tfx
from tfx.dsl.components.base import executor_spec

from components.evaluator.executor import Executor


class ServedBaselineEvaluator(tfx.components.Evaluator):
    """TFX's Evaluator; an empty served baseline is no baseline."""

    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)
