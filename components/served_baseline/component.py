"""`ServedModelBaseline`: a TFX component whose output Model is the model the push destination serves now (the
newest complete version, `components.pusher.serving_layout.latest_complete_version`), for the Evaluator's
`baseline_model`.

TFX's latest-blessed-model Resolver finds the baseline in ML Metadata and runs only where TFX's resolver nodes
run (local runs, Vertex). This component reads the push destination instead, so "no regression" means "no worse
than the model in production" on any orchestrator, open-source Kubeflow included. It reads a location, not its
inputs, so an orchestrator must never serve it from a cache (the Kubeflow compiler turns its cache off).
"""

from __future__ import annotations

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

from components.served_baseline import executor
from components.served_baseline.executor import Executor


class ServedModelBaselineSpec(types.ComponentSpec):
    """Parameter: the push destination; output: the served model (empty when nothing is served)."""

    PARAMETERS = {executor.BASE_DIRECTORY: ExecutionParameter(type=str)}
    INPUTS: dict[str, ChannelParameter] = {}
    OUTPUTS = {executor.OUTPUT: ChannelParameter(type=standard_artifacts.Model)}


class ServedModelBaseline(base_component.BaseComponent):
    """The model served under `base_directory` now, as a Model artifact (see the module doc)."""

    SPEC_CLASS = ServedModelBaselineSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(self, base_directory: str) -> None:
        super().__init__(spec=ServedModelBaselineSpec(
            base_directory=base_directory,
            baseline_model=types.Channel(type=standard_artifacts.Model)))
