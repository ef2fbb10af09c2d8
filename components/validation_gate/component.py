"""`ValidationGate`: a custom TFX component between ExampleValidator and Transform that stops a run before any
training when the data is wrong, and `DataVerdict`, the artifact type it publishes.

Inputs: StatisticsGen's `ExampleStatistics`, ExampleValidator's `ExampleAnomalies` (`Split-<name>/SchemaDiff.pb`),
the schema, and optionally the baseline statistics. The execution fails — so Transform, which the pipeline makes
depend on it, never runs — on schema anomalies, examples without image bytes, or label distribution drift above
`max_label_drift` against the baseline (the checks: `checks`; running them: `executor`).

The baseline comes from ML Metadata through a `tfx.dsl.Resolver` with `resolver.LatestAcceptedStatisticsStrategy`:
every gate execution that passes publishes a `DataVerdict` artifact naming the ExampleStatistics it accepted, and
the strategy returns the statistics of the newest accepted verdict. A run's own statistics can therefore only
become the baseline after its gate passed, so re-running on drifted data compares it with the last accepted data
again (not with itself), and an unchanged re-run resolves the same baseline artifact, so the gate is cached.
Compiled pipelines (Kubeflow, Vertex) cannot use that Resolver: there the gate gets `accepted_statistics_root`,
copies every statistics artifact it accepts into that store, and `components.accepted_statistics`'s
`AcceptedStatisticsBaseline` reads the newest one back as the next run's baseline (same semantics, no ML Metadata).

With `stop_on_anomalies` off the problems are recorded in the verdict (`verdict.json`, `accepted=0`) and the run
continues.
"""

from __future__ import annotations

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import artifact, standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

from components.validation_gate.executor import ACCEPTED_STATISTICS_ROOT, Executor


class DataVerdict(artifact.Artifact):
    """What the validation gate decided about one ExampleStatistics artifact (`verdict.json` inside)."""

    TYPE_NAME = "visionline.DataVerdict"  # `<namespace>.<Title>`: the form KFP's compiler accepts for custom types


class ValidationGateSpec(types.ComponentSpec):
    """Inputs: statistics, ExampleValidator's anomalies, schema, optional baseline statistics; output: verdict."""

    PARAMETERS = {
        "label_feature": ExecutionParameter(type=str),
        "image_feature": ExecutionParameter(type=str),
        "stop_on_anomalies": ExecutionParameter(type=int),
        "max_label_drift": ExecutionParameter(type=float),
        "code_fingerprint": ExecutionParameter(type=str, optional=True),
        # compiled pipelines: where accepted statistics are copied for the next run (components.accepted_statistics)
        ACCEPTED_STATISTICS_ROOT: ExecutionParameter(type=str, optional=True),
    }
    INPUTS = {
        "statistics": ChannelParameter(type=standard_artifacts.ExampleStatistics),
        "anomalies": ChannelParameter(type=standard_artifacts.ExampleAnomalies),
        "schema": ChannelParameter(type=standard_artifacts.Schema),
        "baseline_statistics": ChannelParameter(type=standard_artifacts.ExampleStatistics, optional=True),
    }
    OUTPUTS = {"verdict": ChannelParameter(type=DataVerdict)}


class ValidationGate(base_component.BaseComponent):
    """Stops the pipeline before Transform on schema anomalies, missing images or label drift (see module doc)."""

    SPEC_CLASS = ValidationGateSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(self, statistics: types.BaseChannel, anomalies: types.BaseChannel, schema: types.BaseChannel, *,
                 label_feature: str, image_feature: str, stop_on_anomalies: bool = True,
                 max_label_drift: float = 0.25, baseline_statistics: types.BaseChannel | None = None,
                 code_fingerprint: str = "", accepted_statistics_root: str = "") -> None:
        spec = ValidationGateSpec(
            statistics=statistics, anomalies=anomalies, schema=schema, baseline_statistics=baseline_statistics,
            label_feature=label_feature, image_feature=image_feature, stop_on_anomalies=int(stop_on_anomalies),
            max_label_drift=float(max_label_drift), code_fingerprint=code_fingerprint,
            accepted_statistics_root=accepted_statistics_root or None, verdict=types.Channel(type=DataVerdict))
        super().__init__(spec=spec)
