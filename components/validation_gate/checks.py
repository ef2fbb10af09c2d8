"""The validation gate's checks, on TFDV statistics and anomaly protos (no TFX): what stops a run before training.

* `image_problems` – examples without image bytes (the feature absent, an empty value list, empty bytes), read from
  the statistics themselves, so it also holds with an inferred schema;
* `anomaly_problems` – ExampleValidator's schema anomalies of one split as readable problems, with exact counts
  for unexpected label values (`label: unexpected string values 'zebra' (3 examples)`);
* `label_drift` – the L-infinity distance between this run's train label distribution and a baseline's, measured by
  TFDV's drift comparator (`tfdv.validate_statistics(current, schema + infinity_norm comparator,
  previous_statistics=baseline)`);
* `check` – all of them over every split (train, val, eval — a three-way split's validation split is checked like
  the others): a `Verdict` (problems, drift, notes).

`DataValidationError` is how a stopped run reports its problems to the caller.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2, statistics_pb2

from components import features

DRIFT_SPLIT = features.TRAIN_SPLIT
_PIPELINE_ORDER = (features.TRAIN_SPLIT, features.VALIDATION_SPLIT, features.EVAL_SPLIT)  # how problems are listed


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


def _split_order(split: str) -> tuple[int, str]:
    """Splits in pipeline order (train, val, eval), any other after them by name."""
    return (_PIPELINE_ORDER.index(split) if split in _PIPELINE_ORDER else len(_PIPELINE_ORDER), split)


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
    for split in sorted(statistics, key=_split_order):
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
