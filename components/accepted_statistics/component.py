"""`AcceptedStatisticsBaseline`: a TFX component whose output ExampleStatistics are those of the last run the
ValidationGate accepted, read from the accepted-statistics store (`store`), for the gate's `baseline_statistics`.

Locally the gate's baseline comes from ML Metadata through a Resolver
(`components.validation_gate.resolver.LatestAcceptedStatisticsStrategy`); TFX's Kubeflow V2 compiler accepts only
its two built-in resolver strategies and open-source KFP runs no resolver at all. Compiled pipelines therefore give
the gate the store's folder (`ValidationGate(accepted_statistics_root=…)`: every accepted statistics artifact is
copied there) and run this component before it. It reads a location, not its inputs, so an orchestrator must never
serve it from a cache (the Kubeflow compiler turns its cache off).
"""

from __future__ import annotations

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

from components.accepted_statistics import executor
from components.accepted_statistics.executor import Executor


class AcceptedStatisticsBaselineSpec(types.ComponentSpec):
    """Parameter: the store's folder; output: the newest accepted statistics (no splits when there are none)."""

    PARAMETERS = {executor.STORE: ExecutionParameter(type=str)}
    INPUTS: dict[str, ChannelParameter] = {}
    OUTPUTS = {executor.OUTPUT: ChannelParameter(type=standard_artifacts.ExampleStatistics)}


class AcceptedStatisticsBaseline(base_component.BaseComponent):
    """The newest statistics the ValidationGate accepted under `store`, as an ExampleStatistics (see module doc)."""

    SPEC_CLASS = AcceptedStatisticsBaselineSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(self, store: str) -> None:
        super().__init__(spec=AcceptedStatisticsBaselineSpec(
            store=store, baseline_statistics=types.Channel(type=standard_artifacts.ExampleStatistics)))
