"""`visionline schema`: regenerate a curated TFDV schema (`schema/<name>/schema.pbtxt`) from the data, in one command.

The statistics come from the pipeline's own ingestion: the DAG is run up to StatisticsGen (a TFX partial run of
`create_pipeline`, under the pipeline name `<name>-schema` so the main pipeline's run history is untouched; an
unchanged data root is a cache hit, nothing is ingested twice). Then, the way `schema/digits/schema.pbtxt` was
curated by hand:

* `tfdv.infer_schema` on the train split, feature shapes inferred;
* the label (a string feature) gets a closed string domain `label` of every class seen in any split — SchemaGen
  would guess an integer domain for classes named by digits;
* the `format` feature gets the domain of every encoding ingestion accepts (JPEG/PNG/GIF/BMP), not only those seen;
* every other inferred string domain is dropped (image bytes and source paths are open-ended);
* features present in every example are required (`presence { min_fraction: 1 min_count: 1 }`); `width` and
  `height` must be ≥ 1.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import tensorflow_data_validation as tfdv
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2, statistics_pb2
from tfx import v1 as tfx
from tfx.components.statistics_gen import stats_artifact_utils
from tfx.orchestration.pipeline import RunOptions
from tfx.types import artifact_utils, standard_artifacts

from components.example_gen import images, sources
from components.validation_gate import checks
from pipeline import preflight
from pipeline.component_ids import STATISTICS_GEN
from pipeline.component_settings import component_settings
from pipeline.configs import PipelineConfig, absolute
from pipeline.pipeline import create_pipeline
from pipeline.runs.record import read_run

Statistics = dict[str, statistics_pb2.DatasetFeatureStatisticsList]

_FORMAT_DOMAIN = "format"
_LABEL_DOMAIN = "label"
_SIZE_FEATURES = ("width", "height")
_ORDER = ("path", "format", "height", "width")  # after the image and label features, as in schema/digits


@dataclass
class SchemaResult:
    """What `regenerate` wrote."""

    path: str
    labels: list[str]
    examples: dict[str, int]  # split -> examples counted by StatisticsGen
    features: list[str]


def split_statistics(config: PipelineConfig) -> tuple[Statistics, dict[str, str]]:
    """Run ingestion + StatisticsGen for `config` (pipeline `<name>-schema`); return statistics per split and the
    feature names (`image_feature`, `label_feature`, `format`)."""
    schema_config = config.override([f"pipeline_name={config.pipeline_name}-schema", "data.schema_path="])
    schema_config.validate()
    preflight.check_outputs(schema_config)
    os.makedirs(os.path.dirname(schema_config.metadata_path), exist_ok=True)
    tfx.orchestration.LocalDagRunner().run(create_pipeline(schema_config),
                                           run_options=RunOptions(to_nodes=[STATISTICS_GEN]))
    found = read_run(schema_config.metadata_path).outputs_by_type(STATISTICS_GEN).get("ExampleStatistics", [])
    if not found:
        raise LookupError(f"StatisticsGen produced no statistics in {schema_config.metadata_path}")
    stats_artifact = standard_artifacts.ExampleStatistics()
    stats_artifact.set_mlmd_artifact(found[0])
    statistics = {split: stats_artifact_utils.load_statistics(stats_artifact, split).proto()
                  for split in artifact_utils.decode_split_names(stats_artifact.split_names)}
    layout = sources.detect_layout(absolute(config.data.root), config.data.format)
    names = component_settings(config, layout.format).transform
    return statistics, {"image": names.image_feature, "label": names.label_feature,
                        "format": "format" if layout.format != "tfrecord" else ""}


def curate(statistics: Statistics, *, image_feature: str, label_feature: str, format_feature: str = "format",
           formats: tuple[str, ...] | None = None) -> schema_pb2.Schema:
    """The curated schema (a `tensorflow_metadata` Schema) for statistics per split (see the module doc)."""
    formats = tuple(sorted(formats or images.DECODABLE_FORMATS))
    train = statistics.get("train") or next(iter(statistics.values()))
    inferred = tfdv.infer_schema(train, infer_feature_shape=True)
    datasets = [checks.dataset_stats(s) for s in statistics.values()]
    labels: set[str] = set()
    always_present = {}
    for feature in inferred.feature:
        present = True
        for dataset in datasets:
            stats = checks.feature_stats(dataset, feature.name)
            count = 0 if stats is None else _non_missing(stats)
            present = present and count == dataset.num_examples
            if feature.name == label_feature and stats is not None and stats.HasField("string_stats"):
                labels.update(checks.value_counts(stats))
        always_present[feature.name] = present

    schema = schema_pb2.Schema()
    order = {name: i for i, name in enumerate((image_feature, label_feature, *_ORDER))}
    for source in sorted(inferred.feature, key=lambda f: (order.get(f.name, len(order)), f.name)):
        feature = schema.feature.add()
        feature.CopyFrom(source)
        feature.ClearField("domain_info")  # inferred domains: replaced below or dropped (bytes, paths)
        feature.ClearField("presence")
        if always_present[feature.name]:
            feature.presence.min_fraction = 1.0
            feature.presence.min_count = 1
        else:
            feature.presence.min_count = 1
        if feature.name == label_feature and source.type == schema_pb2.BYTES:
            feature.domain = _LABEL_DOMAIN
        elif feature.name == label_feature and source.HasField("int_domain"):
            feature.int_domain.CopyFrom(source.int_domain)  # integer labels (TFRecord passthrough) keep theirs
        elif feature.name == format_feature and source.type == schema_pb2.BYTES:
            feature.domain = _FORMAT_DOMAIN
        elif feature.name in _SIZE_FEATURES and source.type == schema_pb2.INT:
            feature.int_domain.min = 1
    if any(f.domain == _LABEL_DOMAIN for f in schema.feature):
        if not labels:
            raise ValueError(f"no values of the label feature {label_feature!r} in the statistics")
        schema.string_domain.add(name=_LABEL_DOMAIN, value=sorted(labels))
    if any(f.domain == _FORMAT_DOMAIN for f in schema.feature):
        schema.string_domain.add(name=_FORMAT_DOMAIN, value=list(formats))
    return schema


def _non_missing(stats: statistics_pb2.FeatureNameStatistics) -> int:
    kind = stats.WhichOneof("stats")
    return int(getattr(stats, kind).common_stats.num_non_missing) if kind else 0


def render(schema: schema_pb2.Schema, source: str, examples: dict[str, int]) -> str:
    """Text-format schema with a header saying where it came from and how to regenerate it."""
    counts = ", ".join(f"{split} {count}" for split, count in sorted(examples.items()))
    header = [
        f"# Curated schema of {source}, generated by `visionline schema` from {sum(examples.values())} examples "
        f"({counts}).",
        "# TFDV's inferred schema, then: the label is a string with the closed domain of every class seen, the format",
        "# domain lists every encoding ingestion accepts, features present in every example are required, width and",
        "# height are >= 1. ExampleValidator and the ValidationGate flag anything outside this. Regenerate with",
        "#   visionline schema --data DATA_ROOT --out THIS_FILE      (or `make schema` for the demo)",
    ]
    return "\n".join(header) + "\n" + text_format.MessageToString(schema)


def regenerate(config: PipelineConfig, out: str) -> SchemaResult:
    """Statistics of `config.data.root` (through the pipeline's ingestion) → curated schema written to `out`."""
    statistics, names = split_statistics(config)
    schema = curate(statistics, image_feature=names["image"], label_feature=names["label"],
                    format_feature=names["format"])
    examples = {split: int(checks.dataset_stats(s).num_examples) for split, s in statistics.items()}
    domain = next((d for d in schema.string_domain if d.name == _LABEL_DOMAIN), None)
    target = Path(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render(schema, Path(config.data.root.rstrip("/")).name or config.data.root, examples),
                      encoding="utf-8")
    return SchemaResult(str(target), list(domain.value) if domain else [], examples, [f.name for f in schema.feature])
