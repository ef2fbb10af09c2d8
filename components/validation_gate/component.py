"""The data validation gate: a custom TFX component between ExampleValidator and Transform that stops a run
before any training when the data is wrong.

`ValidationGate` reads ExampleValidator's `ExampleAnomalies` (`Split-<name>/SchemaDiff.pb`) and StatisticsGen's
`ExampleStatistics`, and fails its execution — so Transform, which the pipeline makes depend on it, never runs —
when it finds any of:

* a schema anomaly, e.g. a label outside the curated schema's string domain
  (`label: unexpected string values 'zebra' (3 examples)`);
* examples without image bytes (`image: missing in 3 of 120 examples`, or empty byte strings), checked on the
  statistics themselves, so it also holds with an inferred schema;
* label distribution drift: the L-infinity distance between this run's train label distribution and the one of
  the last run that passed the gate, measured by TFDV's drift comparator (`tfdv.validate_statistics(current,
  schema + infinity_norm comparator, previous_statistics=baseline)`), above `validation.max_label_drift`.

The baseline comes from ML Metadata through a `tfx.dsl.Resolver` with `LatestAcceptedStatisticsStrategy`: every
gate execution that passes publishes a `DataVerdict` artifact naming the ExampleStatistics it accepted, and the
strategy returns the statistics of the newest accepted verdict. A run's own statistics can therefore only become
the baseline after its gate passed, so re-running on drifted data compares it with the last accepted data again
(not with itself), and an unchanged re-run resolves the same baseline artifact, so the gate is cached.

`DataValidationError` carries the problems; with `stop_on_anomalies` off they are recorded in the verdict
(`verdict.json`, `accepted=0`) and the run continues.

A stopped run keeps its reason in ML Metadata: under TFX's portable launcher (LocalDagRunner) the executor
returns an `ExecutorOutput` whose `execution_result` has code `STOPPED_CODE` and the verdict as JSON in
`result_message`; the launcher fails the execution and stores that result on it (custom property
`__execution_result__`), where `visionline last-run` reads it. Where the caller ignores `Do`'s return value
(Kubeflow's v2 container entrypoint, which gives the executor no output URI) the executor raises
`DataValidationError` instead, which fails the step just the same.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any

import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2, statistics_pb2
from tfx import types
from tfx.components.statistics_gen import stats_artifact_utils
from tfx.dsl.components.base import base_component, base_executor, executor_spec
from tfx.dsl.components.common import resolver
from tfx.proto.orchestration import execution_result_pb2
from tfx.types import artifact, artifact_utils, standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter
from tfx.utils import io_utils

VERDICT_FILE = "verdict.json"
ACCEPTED = "accepted"  # DataVerdict custom property: 1 when the gate let the run continue with no problem
STATISTICS_ID = "statistics_id"  # DataVerdict custom property: ML Metadata id of the ExampleStatistics checked
DRIFT_SPLIT = "train"
STOPPED_CODE = 9  # google.rpc.Code FAILED_PRECONDITION: the data is not in the state training requires
_SCHEMA_DIFF = "SchemaDiff.pb"


class DataVerdict(artifact.Artifact):
    """What the validation gate decided about one ExampleStatistics artifact (`verdict.json` inside)."""

    TYPE_NAME = "visionline.DataVerdict"  # `<namespace>.<Title>`: the form KFP's compiler accepts for custom types


@dataclass
class Problem:
    """One reason to stop a run, readable on its own."""

    split: str
    feature: str
    kind: str  # unknown_label | missing_image | label_drift | schema
    message: str  # "label: unexpected string values 'zebra' (3 examples)"

    def __str__(self) -> str:
        return f"{self.split}: {self.message}"


@dataclass
class Drift:
    """The label distribution of this run's train split against the baseline's."""

    distance: float  # L-infinity, as TFDV's drift comparator measured it
    bound: float
    largest_change: str  # "'0' 10.0% → 34.9%"
    baseline_uri: str

    @property
    def exceeded(self) -> bool:
        """True when the distance is above the bound (TFDV's comparator semantics)."""
        return self.distance > self.bound


@dataclass
class Verdict:
    """The gate's findings for one run."""

    problems: list[Problem] = field(default_factory=list)
    drift: Drift | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form, written to `verdict.json`."""
        return {"accepted": not self.problems, "problems": [asdict(p) for p in self.problems],
                "drift": asdict(self.drift) if self.drift else None, "notes": self.notes}


class DataValidationError(RuntimeError):
    """The validation gate stopped the run before training; `problems` says why, feature by feature."""

    def __init__(self, problems: list[Problem], notes: list[str] | None = None) -> None:
        self.problems = list(problems)
        self.notes = list(notes or [])
        self.summary: Any = None  # the run's summary from ML Metadata, attached by the local runner
        lines = [f"data validation failed: {len(self.problems)} problem(s), the run stopped before training"]
        lines += [f"  {problem}" for problem in self.problems]
        super().__init__("\n".join(lines))

    @classmethod
    def from_verdict(cls, verdict: dict[str, Any]) -> DataValidationError:
        """Rebuild the error from a stopped verdict (`Verdict.to_dict()` plus `stopped`), as ML Metadata keeps it."""
        return cls([Problem(**problem) for problem in verdict.get("problems", [])], verdict.get("notes", []))


def stopped_output(verdict: Verdict) -> execution_result_pb2.ExecutorOutput:
    """The ExecutorOutput that fails the gate's execution and keeps the verdict (JSON) as its result message."""
    output = execution_result_pb2.ExecutorOutput()
    output.execution_result.code = STOPPED_CODE
    output.execution_result.result_message = json.dumps({**verdict.to_dict(), "stopped": True}, ensure_ascii=False)
    return output


# ----- reading statistics -------------------------------------------------------------------------------------
def dataset_stats(statistics: statistics_pb2.DatasetFeatureStatisticsList | statistics_pb2.DatasetFeatureStatistics
                  ) -> statistics_pb2.DatasetFeatureStatistics:
    """The (first) dataset of a statistics list, or the dataset itself."""
    if isinstance(statistics, statistics_pb2.DatasetFeatureStatisticsList):
        return statistics.datasets[0] if statistics.datasets else statistics_pb2.DatasetFeatureStatistics()
    return statistics


def feature_stats(dataset: statistics_pb2.DatasetFeatureStatistics, name: str
                  ) -> statistics_pb2.FeatureNameStatistics | None:
    """The statistics of top-level feature `name`, or None when no example has it."""
    for feature in dataset.features:
        if list(feature.path.step) == [name] or (not feature.path.step and feature.name == name):
            return feature
    return None


def value_counts(feature: statistics_pb2.FeatureNameStatistics) -> dict[str, int]:
    """Examples per string value, from the rank histogram (all values up to TFDV's 1,000 buckets) or top values."""
    stats = feature.string_stats
    if stats.rank_histogram.buckets:
        return {b.label: int(b.sample_count) for b in stats.rank_histogram.buckets}
    return {v.value: int(v.frequency) for v in stats.top_values}


def _common(feature: statistics_pb2.FeatureNameStatistics) -> statistics_pb2.CommonStatistics:
    kind = feature.WhichOneof("stats")
    if kind in ("num_stats", "string_stats", "bytes_stats"):
        return getattr(feature, kind).common_stats
    return statistics_pb2.CommonStatistics()


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


# ----- the checks ---------------------------------------------------------------------------------------------
def image_problems(split: str, dataset: statistics_pb2.DatasetFeatureStatistics, image_feature: str
                   ) -> list[Problem]:
    """Examples without an image: the feature absent, an empty value list, or empty bytes."""
    total = int(dataset.num_examples)
    feature = feature_stats(dataset, image_feature)
    if total == 0:
        return []
    if feature is None:
        return [Problem(split, image_feature, "missing_image", f"{image_feature}: missing in all {total} examples")]
    problems = []
    present = int(_common(feature).num_non_missing)
    if present < total:
        problems.append(Problem(split, image_feature, "missing_image",
                                f"{image_feature}: missing in {total - present} of {total} examples"))
    if present and _common(feature).min_num_values == 0:
        problems.append(Problem(split, image_feature, "missing_image",
                                f"{image_feature}: an empty value list (no image) in some examples"))
    if feature.HasField("bytes_stats") and present and feature.bytes_stats.min_num_bytes == 0:
        problems.append(Problem(split, image_feature, "missing_image",
                                f"{image_feature}: empty image bytes in some examples (smallest value: 0 bytes)"))
    elif feature.HasField("string_stats") and value_counts(feature).get("", 0):
        empty = value_counts(feature)[""]
        problems.append(Problem(split, image_feature, "missing_image",
                                f"{image_feature}: empty image bytes in {empty} of {total} examples"))
    return problems


def _string_domain(schema: schema_pb2.Schema, name: str) -> set[str] | None:
    for feature in schema.feature:
        if feature.name != name:
            continue
        if feature.HasField("string_domain"):
            return set(feature.string_domain.value)
        if feature.HasField("domain"):
            for domain in schema.string_domain:
                if domain.name == feature.domain:
                    return set(domain.value)
    return None


def _unexpected_values_message(name: str, dataset: statistics_pb2.DatasetFeatureStatistics,
                               schema: schema_pb2.Schema) -> str | None:
    """`label: unexpected string values 'zebra' (3 examples)` with exact counts from the statistics."""
    domain = _string_domain(schema, name)
    feature = feature_stats(dataset, name)
    if domain is None or feature is None:
        return None
    unexpected = {v: c for v, c in value_counts(feature).items() if v not in domain}
    if not unexpected:
        return None
    shown = sorted(unexpected.items(), key=lambda item: (-item[1], item[0]))
    values = ", ".join(f"{value!r} ({_plural(count, 'example')})" for value, count in shown[:10])
    more = f" and {len(shown) - 10} more" if len(shown) > 10 else ""
    return f"{name}: unexpected string values {values}{more}"


def anomaly_problems(split: str, anomalies: anomalies_pb2.Anomalies, dataset: statistics_pb2.DatasetFeatureStatistics,
                     schema: schema_pb2.Schema, *, label_feature: str, image_feature: str,
                     skip_features: frozenset[str] = frozenset()) -> list[Problem]:
    """ExampleValidator's anomalies of one split as readable problems (exact value counts where TFDV estimates)."""
    problems = []
    for name, info in sorted(anomalies.anomaly_info.items()):
        if name in skip_features:
            continue  # already reported from the statistics, with counts
        kind = "unknown_label" if name == label_feature else "missing_image" if name == image_feature else "schema"
        reasons = list(info.reason) or [anomalies_pb2.AnomalyInfo.Reason(
            short_description=info.short_description, description=info.description)]
        for reason in reasons:
            message = None
            if reason.type == anomalies_pb2.AnomalyInfo.ENUM_TYPE_UNEXPECTED_STRING_VALUES:
                message = _unexpected_values_message(name, dataset, schema)
            if message is None:
                text = (reason.description or reason.short_description).strip()
                message = f"{name}: {text}"
            problems.append(Problem(split, name, kind, message))
    if anomalies.HasField("dataset_anomaly_info"):
        for reason in anomalies.dataset_anomaly_info.reason:
            problems.append(Problem(split, "*", "schema", f"dataset: {reason.description or reason.short_description}"))
    return problems


def label_drift(current: statistics_pb2.DatasetFeatureStatisticsList,
                baseline: statistics_pb2.DatasetFeatureStatisticsList, schema: schema_pb2.Schema,
                label_feature: str, bound: float, baseline_uri: str = "") -> Drift | str:
    """L-infinity distance of the label distribution (TFDV's drift comparator), or why it cannot be measured."""
    checked = schema_pb2.Schema()
    checked.CopyFrom(schema)
    feature = next((f for f in checked.feature if f.name == label_feature), None)
    if feature is None:
        return f"label drift not checked: the schema has no feature {label_feature!r}"
    now = feature_stats(dataset_stats(current), label_feature)
    before = feature_stats(dataset_stats(baseline), label_feature)
    if now is None or before is None or not now.HasField("string_stats") or not before.HasField("string_stats"):
        return (f"label drift not checked: {label_feature!r} has no string statistics in both runs "
                "(integer labels have no per-class counts in TFDV statistics)")
    feature.drift_comparator.infinity_norm.threshold = bound
    anomalies = tfdv.validate_statistics(current, checked, previous_statistics=baseline)
    distance = None
    for info in anomalies.drift_skew_info:
        if list(info.path.step) == [label_feature]:
            for measurement in info.drift_measurements:
                if measurement.type == anomalies_pb2.DriftSkewInfo.Measurement.L_INFTY:
                    distance = float(measurement.value)
    if distance is None:
        return f"label drift not checked: TFDV reported no L-infinity measurement for {label_feature!r}"
    return Drift(distance, bound, _largest_change(value_counts(now), value_counts(before)), baseline_uri)


def _largest_change(now: dict[str, int], before: dict[str, int]) -> str:
    total_now, total_before = sum(now.values()) or 1, sum(before.values()) or 1
    changes = {v: (before.get(v, 0) / total_before, now.get(v, 0) / total_now) for v in set(now) | set(before)}
    if not changes:
        return "no values"
    value, (old, new) = max(sorted(changes.items()), key=lambda item: abs(item[1][1] - item[1][0]))
    if f"{old:.1%}" == f"{new:.1%}":
        return "none"
    return f"{value!r} {old:.1%} → {new:.1%}"


def check(statistics: dict[str, statistics_pb2.DatasetFeatureStatisticsList],
          anomalies: dict[str, anomalies_pb2.Anomalies], schema: schema_pb2.Schema, *, label_feature: str,
          image_feature: str, max_label_drift: float,
          baseline: statistics_pb2.DatasetFeatureStatisticsList | None = None, baseline_uri: str = "") -> Verdict:
    """Everything the gate checks, on protos (statistics and anomalies per split)."""
    verdict = Verdict()
    for split in sorted(statistics):
        dataset = dataset_stats(statistics[split])
        images = image_problems(split, dataset, image_feature)
        verdict.problems += images
        if split in anomalies:
            verdict.problems += anomaly_problems(
                split, anomalies[split], dataset, schema, label_feature=label_feature, image_feature=image_feature,
                skip_features=frozenset({image_feature}) if images else frozenset())
    if max_label_drift <= 0:
        verdict.notes.append("label drift not checked: validation.max_label_drift is 0")
    elif baseline is None:
        verdict.notes.append("label drift not checked: no earlier run passed this gate (first run)")
    elif DRIFT_SPLIT not in statistics:
        verdict.notes.append(f"label drift not checked: no {DRIFT_SPLIT!r} split")
    else:
        drift = label_drift(statistics[DRIFT_SPLIT], baseline, schema, label_feature, max_label_drift, baseline_uri)
        if isinstance(drift, str):
            verdict.notes.append(drift)
        else:
            verdict.drift = drift
            if drift.exceeded:
                verdict.problems.append(Problem(
                    DRIFT_SPLIT, label_feature, "label_drift",
                    f"{label_feature}: distribution drift L∞={drift.distance:.3f} > {drift.bound:g} vs the "
                    f"previous accepted run (largest change: {drift.largest_change})"))
    return verdict


# ----- the TFX component --------------------------------------------------------------------------------------
def _split_statistics(stats_artifact: types.Artifact) -> dict[str, statistics_pb2.DatasetFeatureStatisticsList]:
    return {split: stats_artifact_utils.load_statistics(stats_artifact, split).proto()
            for split in artifact_utils.decode_split_names(stats_artifact.split_names)}


def _split_anomalies(anomalies_artifact: types.Artifact) -> dict[str, anomalies_pb2.Anomalies]:
    found = {}
    for split in artifact_utils.decode_split_names(anomalies_artifact.split_names):
        path = os.path.join(artifact_utils.get_split_uri([anomalies_artifact], split), _SCHEMA_DIFF)
        anomalies = anomalies_pb2.Anomalies()
        anomalies.ParseFromString(io_utils.read_bytes_file(path))
        found[split] = anomalies
    return found


class Executor(base_executor.BaseExecutor):
    """Runs `check` on the gate's inputs; when it must stop, fails the execution with the verdict as its result
    (`stopped_output`), or raises `DataValidationError` where no executor output is read (see the module doc)."""

    def Do(self, input_dict: dict[str, list[types.Artifact]], output_dict: dict[str, list[types.Artifact]],
           exec_properties: dict[str, Any]) -> execution_result_pb2.ExecutorOutput | None:
        self._log_startup(input_dict, output_dict, exec_properties)
        stats_artifact = artifact_utils.get_single_instance(input_dict["statistics"])
        anomalies_artifact = artifact_utils.get_single_instance(input_dict["anomalies"])
        schema = io_utils.SchemaReader().read(
            io_utils.get_only_uri_in_dir(artifact_utils.get_single_uri(input_dict["schema"])))
        baseline, baseline_uri = None, ""
        baselines = input_dict.get("baseline_statistics") or []
        if baselines:
            baseline_artifact = baselines[0]
            if DRIFT_SPLIT in artifact_utils.decode_split_names(baseline_artifact.split_names):
                baseline = stats_artifact_utils.load_statistics(baseline_artifact, DRIFT_SPLIT).proto()
                baseline_uri = baseline_artifact.uri
        verdict = check(
            _split_statistics(stats_artifact), _split_anomalies(anomalies_artifact), schema,
            label_feature=exec_properties["label_feature"], image_feature=exec_properties["image_feature"],
            max_label_drift=float(exec_properties["max_label_drift"]), baseline=baseline, baseline_uri=baseline_uri)
        if verdict.problems and int(exec_properties["stop_on_anomalies"]):
            if self._context is not None and self._context.executor_output_uri:
                return stopped_output(verdict)
            raise DataValidationError(verdict.problems, verdict.notes)
        output = artifact_utils.get_single_instance(output_dict["verdict"])
        io_utils.write_string_file(os.path.join(output.uri, VERDICT_FILE), json.dumps(
            {**verdict.to_dict(), "statistics_uri": stats_artifact.uri}, indent=2, ensure_ascii=False))
        output.set_int_custom_property(ACCEPTED, int(not verdict.problems))
        output.set_int_custom_property(STATISTICS_ID, int(stats_artifact.id))
        if verdict.drift is not None:
            output.set_float_custom_property("label_drift", verdict.drift.distance)
        return None


class ValidationGateSpec(types.ComponentSpec):
    """Inputs: statistics, ExampleValidator's anomalies, schema, optional baseline statistics; output: verdict."""

    PARAMETERS = {
        "label_feature": ExecutionParameter(type=str),
        "image_feature": ExecutionParameter(type=str),
        "stop_on_anomalies": ExecutionParameter(type=int),
        "max_label_drift": ExecutionParameter(type=float),
        "code_fingerprint": ExecutionParameter(type=str, optional=True),
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
                 code_fingerprint: str = "") -> None:
        spec = ValidationGateSpec(
            statistics=statistics, anomalies=anomalies, schema=schema, baseline_statistics=baseline_statistics,
            label_feature=label_feature, image_feature=image_feature, stop_on_anomalies=int(stop_on_anomalies),
            max_label_drift=float(max_label_drift), code_fingerprint=code_fingerprint,
            verdict=types.Channel(type=DataVerdict))
        super().__init__(spec=spec)


class LatestAcceptedStatisticsStrategy(resolver.ResolverStrategy):
    """Resolver strategy: the ExampleStatistics of the newest `DataVerdict` with `accepted=1`.

    Use with `statistics=Channel(type=ExampleStatistics)` and `verdict=Channel(type=DataVerdict)`; both keys come
    back empty when no run has passed the gate yet (like `LatestBlessedModelStrategy` without a blessed model).
    """

    def resolve_artifacts(self, store: Any, input_dict: dict[str, list[types.Artifact]]
                          ) -> dict[str, list[types.Artifact]] | None:
        """Pick the statistics the latest accepted verdict names."""
        statistics = {a.id: a for a in input_dict.get("statistics", [])}
        for verdict in sorted(input_dict.get("verdict", []), key=lambda a: a.id, reverse=True):
            if verdict.get_int_custom_property(ACCEPTED) == 1:
                accepted = statistics.get(verdict.get_int_custom_property(STATISTICS_ID))
                if accepted is not None:
                    return {"statistics": [accepted], "verdict": [verdict]}
        return {"statistics": [], "verdict": []}
