"""Compile the visionline pipeline for Kubeflow Pipelines 2.x (or Vertex AI Pipelines) with TFX's KubeflowV2DagRunner.

`compile_pipeline(config, output_path, image)` compiles the same `create_pipeline(config)` DAG that local runs use
into a KFP pipeline spec, with four runtime parameters so a scheduled run can change them without recompiling:

    data_root          ExampleGen `input_base` (for a CSV manifest: the folder holding it)
    transform_config   Transform `custom_config` (JSON: image_size, normalization, feature names)
    train_config       Tuner + Trainer `custom_config` (JSON: backbone, epochs, tuner on/off, …: TrainConfig)
    eval_config        Evaluator `eval_config` (tfma.EvalConfig as JSON: the accuracy / kappa gates)

TFX RuntimeParameters are scalars, so the three configs are JSON strings (TFX's documented way for protos). TFX
cannot put a RuntimeParameter *inside* a proto such as `eval_config`; the whole EvalConfig as one string parameter
is what it supports (`ExecutionParameter.type_check` skips proto parsing for runtime-parameter strings and the
Evaluator executor parses the JSON). `apply_overrides` turns `train.epochs=5` style keys into new values for these
parameters with the same code that built the defaults, so nobody edits the JSON by hand.

Targets:
  * `kubeflow` (default) — the open-source KFP 2.x backend: pipeline spec schema 2.1.0, root parameter defaults
    filled in (TFX leaves them out and the KFP API server rejects runs without them), the default pipeline root
    recorded, any `resolver` executor dropped with the inputs it fed (KFP's backend cannot execute them; the DAG
    compiled here has none: the Evaluator's baseline is `ServedModelBaseline`, the model served now, so the
    no-regression gate applies on KFP too) and ExampleGen caching off (the
    ExampleGen driver that fingerprints input files is a Vertex-only `preCacheCheck` hook; without it KFP would
    reuse the cached examples whenever `data_root` is unchanged, even if the files changed). Written as the bare
    PipelineSpec, which is what KFP's upload API and `kfp.Client` accept.
  * `vertex` — TFX's output as is (PipelineJob JSON; Vertex runs the ExampleGen driver), with the root parameter
    defaults added.

On both, the pods' CPU / memory / GPU come from `kubeflow.resources` (`pipeline.kubeflow_resources`), and
`ServedModelBaseline` and `AcceptedStatisticsBaseline` (the label-drift baseline: the statistics the
ValidationGate last accepted, from the store it fills under the pipeline root) are never cached (they read a
location, not their inputs), and a task with an artifact
of the project's own types (the ValidationGate's `visionline.DataVerdict`) runs `python -m pipeline.kfp_entrypoint`
instead of TFX's entrypoint, which cannot import such types (see there). `pipeline.kfp_local` executes the compiled
spec on this machine with kfp.local.

Nothing is written at compile time besides `output_path` (module paths, not module files, so no user-code wheels
are staged to the pipeline root; no local ML Metadata config), and the data root is only read when its layout has
to be detected (see `cluster_layout`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from components import features
from components.evaluator import catalogue as eval_settings
from components.settings import SettingsError
from components.trainer.settings import TrainSettings
from components.transform.settings import TransformSettings
from pipeline import kubeflow_resources
from pipeline.component_ids import ACCEPTED_STATISTICS_BASELINE, EXAMPLE_GEN, SERVED_BASELINE
from pipeline.component_settings import ModuleSettings, component_settings, config_sections
from pipeline.configs import ConfigError, PipelineConfig, absolute

TARGETS = ("kubeflow", "vertex")
IMAGE_ROOT = "/opt/visionline"  # where the Dockerfile puts the project (pip install -e . there)
REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_IMAGE = "visionline:0.1.0"
DATA_ROOT, TRANSFORM_CONFIG, TRAIN_CONFIG, EVAL_CONFIG = "data_root", "transform_config", "train_config", "eval_config"
PARAMETERS = {
    DATA_ROOT: "ExampleGen input_base: the data root (for a CSV manifest, the folder holding it)",
    TRANSFORM_CONFIG: "Transform custom_config (JSON)",
    TRAIN_CONFIG: "Tuner and Trainer custom_config (JSON): backbone, epochs, tuner settings, ...",
    EVAL_CONFIG: "Evaluator eval_config (tfma.EvalConfig JSON): accuracy and kappa gates",
}
# `section.key` overrides a scheduled run may apply (everything else is fixed at compile time)
RUNTIME_KEYS = ("data.root", "transform.", "train.", "tuner.", "eval.")
BEAM_RUNNERS = ("DirectRunner", "DataflowRunner", "FlinkRunner", "SparkRunner", "PortableRunner")
_TFRECORD = "tfrecord"


@dataclass
class Compiled:
    """What `compile` produced: the written file, the spec as a dict, parameter defaults and warnings."""

    path: str
    spec: dict[str, Any]
    defaults: dict[str, str]
    warnings: list[str] = field(default_factory=list)


# ----- layout -------------------------------------------------------------------------------------------------
def cluster_layout(config: PipelineConfig, splits: Sequence[str] | None = None) -> Any:
    """The data layout to compile with, reading the data root only when it has to.

    * `splits` given (e.g. `("train", "test")`) or `data.format` set with a URI data root (gs://…): declared from
      the config alone — class folders / TFRecords / one manifest, hash split unless `splits` names the train and
      eval sub-folders. Needed when the compiling machine cannot read the cluster's storage.
    * otherwise detected exactly as local runs do (the data root is read: a local path, or a URI readable here).
    """
    from components.example_gen import sources  # loads TFX: compile-time only, not for reading a config
    from pipeline.pipeline import detect_layout

    root = config.data.root.rstrip("/") or "/"
    data_format = config.data.format
    declared = splits is not None or ("://" in root and data_format != "auto")
    if not declared:
        try:
            return detect_layout(config)
        except sources.DataLayoutError:
            raise  # the data is there but unusable: the message says why
        except Exception as err:  # storage unreadable from here (no credentials / network): say what to do
            raise ConfigError(
                f"cannot read data root {root} to detect its layout ({type(err).__name__}: {err}); set "
                "data.format (folders, csv or tfrecord) and, for train/test sub-folders, --splits TRAIN,EVAL"
            ) from err
    if data_format == "auto":
        raise ConfigError("declaring the data layout needs data.format: folders, csv or tfrecord (not auto)")
    if data_format == "csv":
        if splits:
            raise ConfigError("a CSV manifest is hash-split or split by data.split_column: --splits does not apply")
        if config.data.split_column:
            raise ConfigError("data.split_column: the manifest must be readable at compile time (its rows say which "
                              "splits exist); compile where the data root can be read")
        if not root.lower().endswith((".csv", ".tsv", ".txt")):
            raise ConfigError(f"data.format=csv: data.root must be the manifest file, got {root}")
        return sources.Layout("csv", os.path.dirname(root), {"all": os.path.basename(root)})
    base = absolute(root)
    leaf = "*" if data_format == _TFRECORD else "*/*"
    if not splits:
        return sources.Layout(data_format, base, {"all": leaf})
    if len(splits) not in (2, 3) or not all(splits):
        raise ConfigError("--splits needs two folder names, TRAIN,EVAL (e.g. train,test), or three, TRAIN,VAL,TEST "
                          f"(e.g. train,val,test: val/ is the Trainer's validation data); got {','.join(splits)}")
    names = (features.TRAIN_SPLIT, features.EVAL_SPLIT) if len(splits) == 2 else (
        features.TRAIN_SPLIT, features.VALIDATION_SPLIT, features.EVAL_SPLIT)
    return sources.Layout(data_format, base, {name: f"{folder}/{leaf}" for name, folder in zip(names, splits)})


# ----- compile ------------------------------------------------------------------------------------------------
def compile_pipeline(config: PipelineConfig, output_path: str, image: str = DEFAULT_IMAGE, target: str = "kubeflow",
                     splits: Sequence[str] | None = None) -> str:
    """Compile `create_pipeline(config)` for `target` into `output_path` (.json, or .yaml/.yml); return the path."""
    return compile_for_cluster(config, output_path, image, target, splits).path


def compile_for_cluster(config: PipelineConfig, output_path: str, image: str = DEFAULT_IMAGE,
                        target: str = "kubeflow", splits: Sequence[str] | None = None) -> Compiled:
    """`compile_pipeline` with everything it found: the spec dict, parameter defaults, warnings to show."""
    # TFX, TFMA and KFP load here only: schedule/submit and `visionline --help` do not need them.
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2
    from tfx import v1 as tfx
    from tfx.orchestration import data_types

    from pipeline.pipeline import create_pipeline

    if target not in TARGETS:
        raise ConfigError(f"--target must be one of {TARGETS}, got {target!r}")
    if not image:
        raise ConfigError("an image is needed: the pipeline's code runs from it (see the Dockerfile)")
    config = cluster_config(config, image)
    layout = cluster_layout(config, splits)
    defaults: dict[str, str] = {}

    def parameter(name: str, value: Any) -> data_types.RuntimeParameter:
        default = parameter_value(value)
        defaults[name] = default
        return data_types.RuntimeParameter(name=name, ptype=str, default=default, description=PARAMETERS[name])

    pipeline = create_pipeline(config, layout=layout, parameter=parameter)
    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(
            default_image=image, use_pipeline_spec_2_1=True),  # KFP 2.x accepts schema 2.1.0 only
    )
    try:
        job = runner.run(pipeline, parameter_values=defaults, write_out=False)
    except ValueError as err:  # e.g. a pipeline name KFP does not accept
        raise ConfigError(f"cannot compile for Kubeflow: {err}") from err
    spec = job["pipelineSpec"]
    for name, default in defaults.items():
        root_param = spec["root"]["inputDefinitions"]["parameters"][name]
        root_param.update(defaultValue=default, isOptional=True, description=PARAMETERS[name])
    spec["defaultPipelineRoot"] = config.pipeline_root
    _entrypoint_for_custom_types(spec)
    try:  # kubeflow.resources: each task's CPU / memory / GPU, written into the spec (see kubeflow_resources)
        kubeflow_resources.apply(spec, config.kubeflow.resources, target)
    except kubeflow_resources.ResourceError as err:
        raise ConfigError(f"config field {err}") from None
    # ServedModelBaseline and AcceptedStatisticsBaseline read a location (what is served now, the newest accepted
    # statistics), not their inputs: never from a cache
    for task in (SERVED_BASELINE, ACCEPTED_STATISTICS_BASELINE):
        spec["root"]["dag"]["tasks"][task]["cachingOptions"] = {"enableCache": False}
    if target == "kubeflow":
        _drop_resolvers(spec)
        spec["root"]["dag"]["tasks"][EXAMPLE_GEN]["cachingOptions"] = {"enableCache": False}
        document = spec
    else:
        document = job
    json_format.ParseDict(spec, pipeline_spec_pb2.PipelineSpec())  # what KFP will parse: fail here, not there
    _write(document, output_path)
    warnings = cluster_warnings(config, image, layout.input_base) + kubeflow_resources.gpu_warnings(
        config.kubeflow.resources, config.train.device)
    return Compiled(output_path, spec, defaults, warnings)


def cluster_config(config: PipelineConfig, image: str) -> PipelineConfig:
    """The config as the cluster sees it: the curated schema at its path inside the image, and Dataflow (or the
    DirectRunner inside each task's pod) told the Beam workers run in the pipeline image (where `components` lives)
    unless a container is already given."""
    overrides = []
    if config.data.schema_path:
        overrides.append(f"data.schema_path={image_path(config.data.schema_path)}")
    extra = list(config.beam.extra_args)
    if config.beam.runner in ("DataflowRunner", "DirectRunner") and \
            not any(a.startswith("--sdk_container_image") for a in extra):
        overrides.append(f"beam.extra_args={json.dumps(extra + [f'--sdk_container_image={image}'])}")
    return config.override(overrides) if overrides else config


def image_path(path: str) -> str:
    """A path inside this checkout → the same file inside the image; URIs and other paths unchanged."""
    if "://" in path:
        return path
    resolved = Path(absolute(path)).resolve()
    try:
        return str(Path(IMAGE_ROOT) / resolved.relative_to(REPO_ROOT))
    except ValueError:
        return str(resolved)


def cluster_warnings(config: PipelineConfig, image: str, input_base: str) -> list[str]:
    """Things that compile but will not work on a cluster: local paths, an image nobody can pull, Beam options."""
    warnings = []
    for name, value in (("work_dir (pipeline root)", config.work_dir), ("serving_root (push destination)",
                                                                         config.serving_root or config.work_dir),
                        ("data root default", input_base)):
        if "://" not in value:
            warnings.append(f"{name} {absolute(value)} is a path on this machine: cluster pods cannot see it "
                            "(use gs://…, or pass data_root at run time)")
        elif not value.startswith("gs://"):
            warnings.append(f"{name} {value}: the image's TensorFlow file systems read gs:// only "
                            "(tensorflow-io-gcs-filesystem); other stores need tensorflow-io in the lock")
    schema = config.data.schema_path
    if schema and "://" not in schema and not schema.startswith(IMAGE_ROOT + "/"):
        warnings.append(f"data.schema_path {schema} is neither in the image nor a URI")
    if "/" not in image.split(":")[0]:
        warnings.append(f"image {image} has no registry: the cluster must be able to pull it (e.g. "
                        "europe-docker.pkg.dev/PROJECT/REPO/visionline:TAG)")
    runner = config.beam.runner
    args = " ".join(config.beam.extra_args)
    if runner not in BEAM_RUNNERS:
        warnings.append(f"beam.runner {runner} is not one of {BEAM_RUNNERS} (passed to Beam as is)")
    needs = {"DataflowRunner": ("--project", "--region", "--temp_location"), "FlinkRunner": ("--flink_master",),
             "SparkRunner": ("--spark_master_url",)}.get(runner, ())
    missing = [flag for flag in needs if flag not in args]
    if missing:
        warnings.append(f"beam.runner {runner} usually needs {', '.join(missing)} in beam.extra_args")
    if config.keep_runs:
        warnings.append(f"keep_runs={config.keep_runs} prunes local runs only (`visionline prune`); a compiled "
                        "pipeline keeps every run's artifacts: give its pipeline root's bucket a lifecycle rule")
    return warnings


def _drop_resolvers(spec: dict[str, Any]) -> None:
    """Remove `resolver` executors (the latest-blessed-model Resolver) and every input they fed."""
    executors = spec["deploymentSpec"]["executors"]
    tasks = spec["root"]["dag"]["tasks"]
    resolver_components = {name for name, component in spec["components"].items()
                           if "resolver" in executors.get(component.get("executorLabel", ""), {})}
    removed = {name for name, task in tasks.items() if task["componentRef"]["name"] in resolver_components}
    for name in removed:
        del tasks[name]
    for name in resolver_components:
        executors.pop(spec["components"].pop(name)["executorLabel"], None)
    for task in tasks.values():
        artifacts = task.get("inputs", {}).get("artifacts", {})
        dropped = [key for key, value in artifacts.items()
                   if value.get("taskOutputArtifact", {}).get("producerTask") in removed]
        for key in dropped:
            del artifacts[key]
        if "dependentTasks" in task:
            task["dependentTasks"] = [t for t in task["dependentTasks"] if t not in removed]
        if not dropped:
            continue
        component = spec["components"][task["componentRef"]["name"]]
        for key in dropped:
            component["inputDefinitions"]["artifacts"].pop(key, None)
        container = executors[component["executorLabel"]]["container"]
        args = container["args"]
        if "--json_serialized_inputs_spec_args" in args:  # TFX's entrypoint gets the inputs spec as an argument too
            index = args.index("--json_serialized_inputs_spec_args") + 1
            inputs_spec = json.loads(args[index])
            for key in dropped:
                inputs_spec.get("artifacts", {}).pop(key, None)
            args[index] = json.dumps(inputs_spec, indent=2, sort_keys=True)


def _entrypoint_for_custom_types(spec: dict[str, Any]) -> None:
    """Tasks with an artifact of one of the project's own types (the ValidationGate's DataVerdict) run
    `pipeline.kfp_entrypoint`, TFX's entrypoint that can import those types (see there); the others keep TFX's."""
    from pipeline import kfp_entrypoint  # loads TFX: compile-time only

    custom = set(kfp_entrypoint.class_paths())
    executors = spec["deploymentSpec"]["executors"]
    for component in spec["components"].values():
        container = executors.get(component.get("executorLabel", ""), {}).get("container")
        artifacts = [artifact for side in ("inputDefinitions", "outputDefinitions")
                     for artifact in component.get(side, {}).get("artifacts", {}).values()]
        titles = {yaml.safe_load(artifact["artifactType"]["instanceSchema"]).get("title")
                  for artifact in artifacts if "instanceSchema" in artifact.get("artifactType", {})}
        if container and titles & custom:
            container["command"] = [*container["command"][:-1], kfp_entrypoint.MODULE]


def _write(document: dict[str, Any], output_path: str) -> None:
    from tfx.dsl.io import fileio  # TFX's file systems (gs://…): compile-time only

    parent = os.path.dirname(output_path)
    if parent and not fileio.exists(parent):
        fileio.makedirs(parent)
    with fileio.open(output_path, "w") as handle:
        if output_path.endswith((".yaml", ".yml")):
            handle.write(yaml.safe_dump(document, sort_keys=True))
        else:
            handle.write(json.dumps(document, indent=2, sort_keys=True) + "\n")


# ----- runtime parameter values for a run ---------------------------------------------------------------------
def load_spec(path: str) -> dict[str, Any]:
    """A compiled pipeline file (PipelineSpec JSON/YAML, or a PipelineJob JSON) → the PipelineSpec dict."""
    with open(path, encoding="utf-8") as handle:
        document = yaml.safe_load(handle)
    if not isinstance(document, dict):
        raise ConfigError(f"{path}: not a compiled pipeline")
    spec = document.get("pipelineSpec", document)
    if "root" not in spec or "pipelineInfo" not in spec:
        raise ConfigError(f"{path}: not a KFP pipeline spec (no root / pipelineInfo)")
    return spec


def parameter_defaults(spec: dict[str, Any]) -> dict[str, Any]:
    """Root parameters of a compiled spec and their defaults."""
    parameters = spec["root"].get("inputDefinitions", {}).get("parameters", {})
    return {name: value.get("defaultValue") for name, value in parameters.items()}


def apply_overrides(defaults: dict[str, Any], assignments: Sequence[str]) -> dict[str, Any]:
    """Parameter values for a run: only those that differ from the compiled defaults.

    Each assignment is `parameter=value` (a root parameter, verbatim; the *_config ones must be JSON) or a config
    key `section.key=value` for data.root, transform.*, train.*, tuner.*, eval.* — those rebuild the JSON parameters
    from the compiled defaults with the same code that compiled them (`train.model` also follows through to the
    normalisation and weights when those were `auto`).
    """
    raw: dict[str, Any] = {}
    dotted: list[str] = []
    for assignment in assignments:
        if "=" not in assignment:
            raise ConfigError(f"--param {assignment!r}: expected name=value, e.g. train.epochs=5")
        key, value = assignment.split("=", 1)
        key = key.strip()
        if key in defaults:
            if key.endswith("_config"):
                try:
                    json.loads(value)
                except ValueError as err:
                    raise ConfigError(f"--param {key}: not JSON ({err})") from err
            raw[key] = value
        elif key.startswith(RUNTIME_KEYS) and "." in key:
            dotted.append(f"{key}={value}")
        else:
            keys = ", ".join(k + "…" if k.endswith(".") else k for k in RUNTIME_KEYS)
            raise ConfigError(f"--param {key}: not a runtime parameter of this pipeline ({', '.join(defaults)}) "
                              f"nor a runtime config key ({keys})")
    values: dict[str, Any] = {}
    if dotted:
        values = _derived_values(defaults, dotted)
    values.update(raw)
    return {name: value for name, value in values.items() if value != defaults.get(name)}


def parameter_value(value: Any) -> str:
    """A runtime parameter's string value: JSON for dicts (TFX's own encoding) and protos, strings as they are."""
    from google.protobuf import message  # protobuf and TFX's encoders: not on the light CLI paths
    from tfx.utils import json_utils, proto_utils

    if isinstance(value, message.Message):
        return proto_utils.proto_to_json(value)
    if isinstance(value, str):
        return value
    return json_utils.dumps(value)


def config_from_defaults(defaults: dict[str, Any]) -> PipelineConfig:
    """The runtime-changeable part of the config a pipeline was compiled with, read back from its defaults.

    Resolved values that equal what `auto` resolves to become `auto` again, so a new backbone brings its own
    normalisation and weights.
    """
    return _config_from(defaults, _settings_from(defaults))


def runtime_values(config: PipelineConfig, fingerprints: dict[str, str] | None = None) -> dict[str, str]:
    """The four parameter values for `config` — the payloads `create_pipeline` puts in the DAG, encoded as
    `compile` encodes them (TFRecord feature naming, so the feature names in `config.data` are used as they are).
    `fingerprints` (by parameter name) are the code fingerprints to carry; default: this checkout's code."""
    from pipeline.eval_config import eval_config  # loads TFMA: only when parameter values are rebuilt

    fingerprints = fingerprints or {}
    settings = component_settings(config, _TFRECORD, transform_code=fingerprints.get(TRANSFORM_CONFIG),
                                  train_code=fingerprints.get(TRAIN_CONFIG))
    return {
        DATA_ROOT: config.data.root,
        TRANSFORM_CONFIG: parameter_value(settings.transform.to_custom_config()),
        TRAIN_CONFIG: parameter_value(settings.train.to_custom_config()),
        EVAL_CONFIG: parameter_value(eval_config(config, settings.transform.label_feature)),
    }


def _derived_values(defaults: dict[str, Any], dotted: list[str]) -> dict[str, str]:
    settings = _settings_from(defaults)
    config = _config_from(defaults, settings).override(dotted).validate()
    fingerprints = {TRANSFORM_CONFIG: settings.transform.code_fingerprint,  # the image's code, not this checkout's
                    TRAIN_CONFIG: settings.train.code_fingerprint}
    return runtime_values(config, fingerprints)


def _settings_from(defaults: dict[str, Any]) -> ModuleSettings:
    """The component settings a compiled pipeline's `transform_config` / `train_config` defaults hold."""
    missing = [name for name in PARAMETERS if name not in defaults]
    if missing:
        raise ConfigError(f"the compiled pipeline has no {', '.join(missing)} parameter(s): compiled by visionline?")
    try:
        return ModuleSettings(transform=TransformSettings.from_custom_config(json.loads(defaults[TRANSFORM_CONFIG])),
                              train=TrainSettings.from_custom_config(json.loads(defaults[TRAIN_CONFIG])))
    except (ValueError, SettingsError) as err:  # not JSON, or not the settings this code reads
        raise ConfigError(f"the compiled pipeline's parameter defaults: {err}") from err


def _config_from(defaults: dict[str, Any], settings: ModuleSettings) -> PipelineConfig:
    sections = config_sections(settings)
    return PipelineConfig.from_dict({
        **sections,
        "data": {"root": defaults[DATA_ROOT], **sections["data"]},
        "eval": _thresholds(defaults[EVAL_CONFIG]),
    })


def _thresholds(evaluation_json: str) -> dict[str, Any]:
    """The eval.* settings (bounds, max_regression, gates, kappa weighting, top-k) of an EvalConfig JSON made by
    `pipeline.eval_config.eval_config`, such that it builds the same EvalConfig again
    (components/evaluator/catalogue.py)."""
    import tensorflow_model_analysis as tfma  # TFMA and TFX: only when parameter values are rebuilt
    from tfx.utils import proto_utils

    evaluation = proto_utils.json_to_proto(evaluation_json, tfma.EvalConfig())
    task = eval_settings.task_of(evaluation)
    accuracy = eval_settings.gate_metrics(task)["accuracy"].key
    if accuracy not in eval_settings.configured_bounds(evaluation):
        raise ConfigError("the eval_config default has no visionline accuracy gate")
    return eval_settings.eval_fields_from_tfma(evaluation, defaults=PipelineConfig().to_dict()["eval"])
