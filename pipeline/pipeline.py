"""`create_pipeline`: the visionline TFX DAG built from one `PipelineConfig`.

ImageExampleGen (image folders, CSV manifests, TFRecords: every file or record checked) → StatisticsGen → SchemaGen (or
ImportSchemaGen from a curated schema) → ExampleValidator → ValidationGate (anomalies, missing images, label drift
vs. the last accepted statistics — compiled for an orchestrator: from AcceptedStatisticsBaseline, the store the gate
fills —: stops the run) → Transform → Tuner → Trainer → Resolver (latest blessed model;
compiled for an orchestrator: ServedModelBaseline, the model served now) → Evaluator (per-task metrics; accuracy +
Cohen's kappa bounds and `eval.gates`, no regression vs. the baseline) → Pusher (only if blessed).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tfx import v1 as tfx
from tfx.dsl.components.base import base_component, executor_spec
from tfx.orchestration import data_types
from tfx.proto import example_gen_pb2
from tfx.types import standard_component_specs

from components import features
from components.accepted_statistics import store as accepted_statistics
from components.accepted_statistics.component import AcceptedStatisticsBaseline
from components.evaluator.component import ServedBaselineEvaluator
from components.example_gen import manifest, records, sources
from components.example_gen.class_selection import ClassSelection
from components.example_gen.component import ImageExampleGen
from components.pusher import executor as atomic_pusher
from components.served_baseline.component import ServedModelBaseline
from components.tflite_variants import MAX_DROP_KEY as MAX_TFLITE_DROP
from components.validation_gate import component as validation
from components.validation_gate.resolver import LatestAcceptedStatisticsStrategy
from pipeline import fingerprint
from pipeline.component_ids import (
    ACCEPTED_STATISTICS_BASELINE,
    EVALUATOR,
    EXAMPLE_GEN,
    MODEL_BASELINE,
    PUSHER,
    SERVED_BASELINE,
    STATISTICS_BASELINE,
    TRAINER,
    TUNER,
    VALIDATION_GATE,
)
from pipeline.component_settings import component_settings
from pipeline.configs import ConfigError, PipelineConfig, absolute
from pipeline.eval_config import eval_config

TRANSFORM_FN = "components.modules.transform_module.preprocessing_fn"
TRAINER_FN = "components.modules.trainer_module.run_fn"
TUNER_FN = "components.modules.tuner_module.tuner_fn"


def example_gen_configs(layout: sources.Layout, train_fraction: float) -> tuple[example_gen_pb2.Input,
                                                                                example_gen_pb2.Output | None]:
    """Input splits from the layout; a deterministic hash split (on the source path, `<file>#<index>` for a
    TFRecord record) when not pre-split."""
    if layout.presplit:
        splits = [example_gen_pb2.Input.Split(name=name, pattern=pattern)
                  for name, pattern in layout.split_patterns.items()]
        return example_gen_pb2.Input(splits=splits), None
    train_buckets = max(1, round(train_fraction * 100))
    split_config = example_gen_pb2.SplitConfig(
        splits=[
            example_gen_pb2.SplitConfig.Split(name="train", hash_buckets=train_buckets),
            example_gen_pb2.SplitConfig.Split(name="eval", hash_buckets=100 - train_buckets),
        ],
        partition_feature_name=features.PATH,  # split on the source path: stable across re-labelling
    )
    output = example_gen_pb2.Output(split_config=split_config)
    pattern = layout.split_patterns["all"]
    return example_gen_pb2.Input(splits=[example_gen_pb2.Input.Split(name="all", pattern=pattern)]), output


def detect_layout(config: PipelineConfig) -> sources.Layout:
    """The data root's layout as ImageExampleGen will read it (the root is read): class folders, trees, TFRecords or
    a manifest — split by its split column when `data.split_column` names one."""
    layout = sources.detect_layout(absolute(config.data.root), config.data.format)
    return manifest.with_split_column(layout, manifest.ManifestOptions.from_dict(config.data.manifest_options()),
                                      multilabel=config.train.task == "multilabel")


def _constant(name: str, value: Any) -> Any:
    return value


def _late_custom_config(component: base_component.BaseComponent, value: Any) -> base_component.BaseComponent:
    """Transform and Tuner JSON-encode `custom_config` in their constructors, which would freeze a RuntimeParameter
    into a constant; their specs take a str-typed RuntimeParameter, so it is set on the built component."""
    if isinstance(value, data_types.RuntimeParameter):
        component.exec_properties[standard_component_specs.CUSTOM_CONFIG_KEY] = value
    return component


def create_pipeline(config: PipelineConfig, layout: sources.Layout | None = None,
                    parameter: Callable[[str, Any], Any] | None = None) -> tfx.dsl.Pipeline:
    """The full visionline DAG for `config` (validated first).

    Local runs pass only `config` (the data root is read to detect its layout). Compilers for remote
    orchestrators may pass `layout` (the data root is then not read) and `parameter(name, value)`, which returns
    the value to use — e.g. a TFX RuntimeParameter defaulting to it — for `data_root` (ExampleGen input_base),
    `transform_config` (Transform custom_config), `train_config` (Tuner and Trainer custom_config, JSON dicts:
    pipeline/component_settings.py) and `eval_config` (the Evaluator's tfma.EvalConfig, pipeline/eval_config.py);
    no local ML Metadata config is made then.
    """
    config.validate()
    param = parameter or _constant
    layout = layout or detect_layout(config)
    input_config, output_config = example_gen_configs(layout, config.data.train_fraction)
    input_base = param("data_root", layout.input_base)
    settings = component_settings(config, layout.format)
    label_names = tuple(config.data.label_names)
    if layout.format == "tfrecord" and parameter is None:  # labels.txt read here: editing it re-runs ingestion
        label_names = records.resolve_label_names(layout.input_base, label_names)
    selection = ClassSelection(tuple(config.data.classes), tuple(config.data.exclude_classes),
                               dict(config.data.class_map))
    if layout.format == "tfrecord" and selection.active:
        raise ConfigError("config field data.classes / data.exclude_classes / data.class_map: a TFRecord's label is "
                          "only known once the record is read; choose classes for image folders or CSV manifests")
    example_gen = ImageExampleGen(
        input_base=input_base,
        input_config=input_config,
        output_config=output_config,
        data_format=layout.format,
        max_image_pixels=config.data.max_image_pixels,
        code_fingerprint=fingerprint.source_fingerprint(fingerprint.INGEST_SOURCES),
        multilabel=config.train.task == "multilabel",
        leakage=config.data.leakage,
        min_image_side=config.data.min_image_side,
        transcode=config.data.transcode,
        image_feature=settings.transform.image_feature,
        label_feature=settings.transform.label_feature,
        label_names=label_names,
        manifest=config.data.manifest_options(),
        selection=selection,
    ).with_id(EXAMPLE_GEN)
    examples = example_gen.outputs["examples"]

    statistics_gen = tfx.components.StatisticsGen(examples=examples)
    if config.data.schema_path:
        schema_gen = tfx.components.ImportSchemaGen(schema_file=absolute(config.data.schema_path))
    else:
        schema_gen = tfx.components.SchemaGen(statistics=statistics_gen.outputs["statistics"], infer_feature_shape=True)
    schema = schema_gen.outputs["schema"]
    example_validator = tfx.components.ExampleValidator(statistics=statistics_gen.outputs["statistics"], schema=schema)
    # The statistics of the last run that passed the gate, for the label-drift check. Local runs: ML Metadata,
    # through a Resolver. Compiled for an orchestrator (TFX's Kubeflow V2 compiler accepts just its two built-in
    # resolver strategies; open-source KFP runs none): the gate copies what it accepts into a store under the
    # pipeline root and AcceptedStatisticsBaseline reads the newest entry back before the gate.
    accepted_store = accepted_statistics.store_root(config.pipeline_root) if parameter else ""
    if parameter:
        baseline_resolver = AcceptedStatisticsBaseline(store=accepted_store).with_id(ACCEPTED_STATISTICS_BASELINE)
        baseline_statistics = baseline_resolver.outputs["baseline_statistics"]
    else:
        baseline_resolver = tfx.dsl.Resolver(
            strategy_class=LatestAcceptedStatisticsStrategy,
            statistics=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ExampleStatistics),
            verdict=tfx.dsl.Channel(type=validation.DataVerdict),
        ).with_id(STATISTICS_BASELINE)
        baseline_statistics = baseline_resolver.outputs["statistics"]
    validation_gate = validation.ValidationGate(
        statistics=statistics_gen.outputs["statistics"],
        anomalies=example_validator.outputs["anomalies"],
        schema=schema,
        baseline_statistics=baseline_statistics,
        accepted_statistics_root=accepted_store,
        label_feature=settings.transform.label_feature,
        image_feature=settings.transform.image_feature,
        stop_on_anomalies=config.validation.stop_on_anomalies,
        max_label_drift=config.validation.max_label_drift,
        code_fingerprint=fingerprint.source_fingerprint(fingerprint.VALIDATION_SOURCES),
    ).with_id(VALIDATION_GATE)

    # The Tuner's and Trainer's eval_args: a val/ folder (three-way split) is their validation data; without one
    # they carve train.validation_fraction off train and the eval split is only the Evaluator's.
    fit_eval_split = features.VALIDATION_SPLIT if features.VALIDATION_SPLIT in layout.split_patterns \
        else features.EVAL_SPLIT
    transform_config = param("transform_config", settings.transform.to_custom_config())
    transform = _late_custom_config(tfx.components.Transform(
        examples=examples,
        schema=schema,
        preprocessing_fn=TRANSFORM_FN,
        materialize=False,
        disable_statistics=True,
        custom_config=transform_config,
    ), transform_config)
    transform.add_upstream_node(validation_gate)  # never transforms (or trains on) data the gate stopped
    trainer_config = param("train_config", settings.train.to_custom_config())
    # Always in the DAG: with tuning off for a run it returns the config's values without training.
    tuner = _late_custom_config(tfx.components.Tuner(
        tuner_fn=TUNER_FN,
        examples=examples,
        transform_graph=transform.outputs["transform_graph"],
        schema=schema,
        train_args=tfx.proto.TrainArgs(splits=[features.TRAIN_SPLIT]),
        eval_args=tfx.proto.EvalArgs(splits=[fit_eval_split]),
        custom_config=trainer_config,
    ), trainer_config).with_id(TUNER)
    trainer = tfx.components.Trainer(
        run_fn=TRAINER_FN,
        examples=examples,
        transform_graph=transform.outputs["transform_graph"],
        schema=schema,
        hyperparameters=tuner.outputs["best_hyperparameters"],
        train_args=tfx.proto.TrainArgs(splits=[features.TRAIN_SPLIT]),
        eval_args=tfx.proto.EvalArgs(splits=[fit_eval_split]),
        custom_config=trainer_config,
    ).with_id(TRAINER)
    # The no-regression baseline. Local runs: the latest blessed model in ML Metadata (TFX's Resolver). Compiled for
    # an orchestrator: the model the push destination serves now, read just before the evaluation (open-source KFP
    # cannot run resolver nodes; the served model is "production" on every orchestrator).
    if parameter:
        model_baseline = ServedModelBaseline(base_directory=config.push_base).with_id(SERVED_BASELINE)
        model_baseline.add_upstream_node(trainer)
        baseline_model, evaluator_class = model_baseline.outputs["baseline_model"], ServedBaselineEvaluator
    else:
        model_baseline = tfx.dsl.Resolver(
            strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
            model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
            model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
        ).with_id(MODEL_BASELINE)
        baseline_model, evaluator_class = model_baseline.outputs["model"], tfx.components.Evaluator
    evaluator = evaluator_class(
        examples=examples,
        model=trainer.outputs["model"],
        baseline_model=baseline_model,
        example_splits=[features.EVAL_SPLIT],
        eval_config=param("eval_config", eval_config(config, settings.transform.label_feature)),
    ).with_id(EVALUATOR)
    pusher = tfx.components.Pusher(
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(base_directory=config.push_base)
        ),
        custom_executor_spec=executor_spec.ExecutorClassSpec(atomic_pusher.Executor),  # atomic, no duplicate versions
        # TFLite variants more than this below the SavedModel's accuracy are not pushed (components/tflite_variants.py)
        custom_config={MAX_TFLITE_DROP: config.eval.max_tflite_accuracy_drop},
    ).with_id(PUSHER)

    return tfx.dsl.Pipeline(
        pipeline_name=config.pipeline_name,
        pipeline_root=config.pipeline_root,
        components=[example_gen, statistics_gen, schema_gen, example_validator,
                    baseline_resolver, validation_gate, transform, tuner, trainer,
                    model_baseline, evaluator, pusher],
        enable_cache=config.enable_cache,
        # With `parameter` (a remote orchestrator with its own ML Metadata) no local SQLite config: building one
        # creates its folder, which would be a side effect (or, under a gs:// work_dir, a network call) at compile.
        metadata_connection_config=None if parameter else tfx.orchestration.metadata.sqlite_metadata_connection_config(
            config.metadata_path
        ),
        beam_pipeline_args=config.beam.pipeline_args(),
    )
