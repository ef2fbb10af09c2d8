"""Pipeline configuration: the single `PipelineConfig` object that flows CLI → pipeline → components.

Everything a run needs (where the data is, how it is split, the image size and normalisation, training
hyper-parameters, evaluation gates, Beam options, output locations) lives here. The defaults are the `default`
preset — transfer learning for colour photos — and a `preset` field layers another set of values under what the
user sets (pipeline/presets.py). It loads from YAML/JSON, accepts `key=value` overrides and validates itself;
pipeline/component_settings.py turns it into the typed settings the TFX components receive as `custom_config`.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from components.evaluator.catalogue import GateError, validate_eval
from components.example_gen.images import MAX_IMAGE_PIXELS, MIN_IMAGE_SIDE
from components.tflite_variants import DEFAULT_MAX_ACCURACY_DROP as DEFAULT_MAX_TFLITE_DROP
from components.trainer.settings import (
    CLASS_WEIGHTS,
    CNN_POOLING,
    DEVICES,
    EARLY_STOPPING_MONITORS,
    LR_SCHEDULES,
    MIXED_PRECISION,
    OPTIMIZERS,
    TUNER_ALGORITHMS,
    parse_fine_tune,
)
from components.transform import settings as transform_settings
from components.transform.settings import TASKS
from pipeline import config_values, kubeflow_resources, presets
from pipeline.config_values import ConfigError

# Pixel normalisations the Transform step knows; each backbone names the one it was trained with.
NORMALIZATIONS = ("auto", *transform_settings.NORMALIZATIONS)  # auto: the backbone's own
DATA_FORMATS = ("auto", "folders", "csv", "tfrecord")
LEAKAGE_MODES = ("remove", "report")  # what ingestion does with eval images identical to train images
MANIFEST_KINDS = ("auto", "labels", "attributes")  # = components.example_gen.manifest's (which loads TFX)
BEAM_MODES = ("multi_processing", "in_memory", "multi_threading")


@dataclass
class DataConfig:
    """Where the labelled images are and how they are read and split."""

    root: str = ""  # folder of class folders, a CSV manifest, or a folder of TFRecord files
    format: str = "auto"  # auto | folders | csv | tfrecord
    train_fraction: float = 0.8  # hash split when the data has no train/test sub-trees
    image_feature: str = "image"  # tfrecord passthrough: feature holding encoded image bytes
    label_feature: str = "label"  # tfrecord passthrough: bytes or int64 label feature
    # TFRecord integer labels' class names: item i names label i (the examples and the served model then carry
    # names); empty = a labels.txt beside the split folders if there is one (TFX/TFDS style), else the numbers.
    label_names: list[str] = field(default_factory=list)
    max_image_pixels: int = MAX_IMAGE_PIXELS  # decompression-bomb guard: larger images are quarantined
    # Images smaller than this many pixels on either side (1x1 tracking pixels, broken thumbnails) are quarantined.
    min_image_side: int = MIN_IMAGE_SIDE
    # TIFF and WebP files (TensorFlow cannot decode them) are transcoded losslessly to PNG at ingestion and listed
    # in the ingest summary; false quarantines them. EXIF-oriented images are turned upright either way.
    transcode: bool = True
    # Eval images byte-identical (sha256) to a train image, i.e. train/eval leakage: "remove" (quarantined with
    # their train twin named) or "report" (kept); both list them in the Examples' leakage_report.csv.
    leakage: str = "remove"
    schema_path: str = ""  # curated schema.pbtxt (ImportSchemaGen); empty = infer with SchemaGen
    # CSV manifests (components/example_gen/manifest.py): the column holding the image path and the one holding the
    # label, each by header name or 0-based index. "" = a column named like a path (path, filename, image, …), else
    # the first; and one named like a label (label, class, tags, …), else the first other one.
    path_column: str = ""
    label_column: str = ""
    # labels (a path and a label column) | attributes (one 1/-1 or 0/1 column per attribute, read as multilabel
    # data: CelebA's list_attr_celeba.txt or a CSV path,attr1,attr2,…) | auto: attributes for CelebA's shape or a
    # multilabel manifest whose header has 3+ columns, none named like a label column; else labels.
    manifest_kind: str = "auto"
    # The folder a CSV manifest's paths are relative to: "" = the manifest's own folder; a relative value is resolved
    # against it (CelebA: data.root=…/Anno/list_attr_celeba.txt, data.image_dir=../img_align_celeba).
    image_dir: str = ""
    # A CSV manifest's column naming each row's split (train / val / test; header name or 0-based index): keeps the
    # dataset's own split instead of the hash split. "" = hash split (data.train_fraction).
    split_column: str = ""

    def manifest_options(self) -> dict[str, str]:
        """How ImageExampleGen reads a CSV manifest (`components.example_gen.manifest.ManifestOptions`' dict)."""
        return {"path_column": self.path_column, "label_column": self.label_column, "kind": self.manifest_kind,
                "image_dir": self.image_dir, "split_column": self.split_column}
    # Choosing classes without rewriting the data (folders: class folder names; CSV: label cells), applied in this
    # order: leave out `exclude_classes`, rename/merge with `class_map` ({folder: class}, e.g. five scan folders →
    # photo / not_photo), then keep only `classes` (names after the map). Files left out are listed with the reason
    # (excluded_files.csv, "excluded" counts); a name no file carries is an error. Not for multilabel.
    classes: list[str] = field(default_factory=list)
    exclude_classes: list[str] = field(default_factory=list)
    class_map: dict[str, str] = field(default_factory=dict)


@dataclass
class TransformConfig:
    """How raw encoded images become model inputs."""

    image_size: int = 0  # square side, pixels; 0 = the backbone's native resolution (224/240/260 for Lite0/1/2)
    normalization: str = "auto"  # auto (the backbone's own) | zero_one | minus_one_one | lite | raw | caffe


@dataclass
class TrainConfig:
    """Model and optimisation settings for the Trainer."""

    model: str = "efficientnet_lite0"  # backbone name, see components/trainer/backbones/registry.py
    weights: str = "auto"  # auto (imagenet if the backbone has weights) | imagenet | none | /path/to/weights.h5
    task: str = "multiclass"  # multiclass (softmax) | binary (one sigmoid unit) | multilabel (a sigmoid per label;
    #                          CSV manifest labels separated by "|")
    # binary: the class whose probability the model outputs as "positive" (label index 1; precision, recall and
    # AUC are about it). Empty = the second of the two class names in sorted order (e.g. "photo" of
    # "not_photo"/"photo"). Class indices are always stable: sorted names, or a curated schema's label domain.
    positive_class: str = ""
    epochs: int = 30  # phase 1: the new head (backbone frozen when pretrained; on cached features)
    fine_tune_epochs: int = 4  # phase 2: unfreeze (part of) the backbone, with augmentation
    fine_tune: str = "all"  # what phase 2 unfreezes: none | all | a share such as 30% | a count such as 20 layers
    fine_tune_learning_rate: float = 3e-4
    batch_size: int = 32
    learning_rate: float = 1e-3
    optimizer: str = "adamw"  # adamw | adam | sgd | rmsprop
    weight_decay: float = 0.05  # adamw's decoupled weight decay
    dropout: float = 0.3
    dense_units: int = 0  # hidden layer in the head (0 = none)
    conv_filters: tuple[int, ...] = (32, 64, 128)  # simple_cnn only
    cnn_pooling: str = "avg"  # simple_cnn only: avg (global average pooling) | flatten (keeps the spatial layout)
    cnn_block_dropout: float = 0.0  # simple_cnn only: dropout after each conv block's pooling
    augment_flip: bool = True  # random horizontal flip (training only)
    augment_rotation: float = 0.0  # fraction of a full turn, e.g. 0.05
    augment_zoom: float = 0.0
    augment_translation: float = 0.0
    augment_crop: float = 0.5  # random resized crop: each crop keeps 50–100 % of the image area (0 = off)
    augment_color: float = 0.1  # colour jitter: brightness ±0.1, contrast and saturation ×0.9–1.1 (0 = off)
    label_smoothing: float = 0.1  # multiclass: targets (1 - s) + s / C instead of one-hot
    tta_flip: bool = False  # serving averages each image's and its mirror image's probabilities (2x inference)
    class_weights: str = "auto"  # auto (on when the largest class is over 3x the smallest) | on | off
    cache_features: bool = True  # frozen backbone and no augmentation: compute features once, train the head
    cache_dataset_mb: int = 2048  # decoded train/validation images kept in memory when they fit (0 = decode each epoch)
    early_stopping_patience: int = 5
    early_stopping_monitor: str = "val_accuracy"  # val_loss | val_accuracy: what early stopping (and learning-rate
    #   reduction) watches, and so which epoch's weights are kept at the end — the best by it, not the last
    reduce_lr_patience: int = 0  # > 0: divide the learning rate by 3 after that many epochs without progress
    lr_schedule: str = "cosine"  # constant | cosine (from the phase's learning rate down to 0)
    warmup_epochs: float = 0.5  # cosine: linear warm-up over this many epochs first, step by step (0 = none)
    validation_fraction: float = 0.1  # carved from train by content hash, used for early stopping
    seed: int = 42
    device: str = "auto"  # auto (a GPU when TensorFlow sees one) | cpu | gpu
    mixed_precision: str = "auto"  # auto (on for a GPU) | on | off: float16 compute, float32 weights and export
    gpu_batch_size: int = 0  # batch size on a GPU; 0 = 4 × batch_size
    # TFLite float32 / float16 / int8 variants beside the SavedModel (assets.extra/tflite/), each measured against it
    # on up to tflite_eval_images images of the eval split (the Pusher gates them: eval.max_tflite_accuracy_drop)
    tflite: bool = True
    tflite_eval_images: int = 200


@dataclass
class TunerConfig:
    """KerasTuner search run by the TFX Tuner component (the seeds' search space)."""

    enabled: bool = False
    algorithm: str = "random"  # random | hyperband | bayesian
    max_trials: int = 4
    epochs_per_trial: int = 2


@dataclass
class EvaluationConfig:
    """Evaluator metrics and gates (absolute bounds, allowed drop against the last blessed model); the metrics per
    task and the `gates` syntax are described in components/evaluator/catalogue.py."""

    min_accuracy: float = 0.5  # the task's accuracy (multilabel: subset accuracy)
    # Cohen's kappa as weighted by kappa_weighting (multiclass, binary). Kappa is agreement beyond chance, so one
    # bound fits any number of classes and any imbalance: 0.6 ("substantial", Landis & Koch 1977) means the model
    # closes 60 % of the gap between chance and perfect — e.g. accuracy >= 0.64 on 10 balanced classes, >= 0.80 on
    # two, and well above the majority share on imbalanced data, where accuracy alone says little.
    min_kappa: float = 0.6
    max_regression: float = 0.02  # candidate may be at most this much worse than the baseline (accuracy, kappa)
    top_k: int = 5  # multiclass top-k accuracy (1.0 by construction when k >= the number of classes)
    kappa_weighting: str = "none"  # none | linear | quadratic (ordinal classes, ordered by name)
    kappa_class_order: list[str] = field(default_factory=list)  # real order of the classes for weighted kappa
    gates: list[str] = field(default_factory=list)  # more gates, e.g. "auc>=0.85", "f1_micro>=0.6,max_drop=0.01"
    # a TFLite variant whose accuracy (multilabel: subset accuracy) is more than this below the SavedModel's on the
    # same eval images is not pushed (the SavedModel and the other variants still are)
    max_tflite_accuracy_drop: float = DEFAULT_MAX_TFLITE_DROP


@dataclass
class ValidationConfig:
    """The data validation gate before training, and the pre-flight checks of the output locations."""

    stop_on_anomalies: bool = True  # schema anomalies, missing images or label drift stop the run before Transform
    max_label_drift: float = 0.25  # L-infinity bound on the train label distribution vs the last accepted run; 0 = off
    min_free_disk_mb: int = 500  # every output location needs this much free space before a run starts
    free_disk_input_factor: float = 3.0  # ... and the pipeline root this multiple of the input data size (0 = off)


# = pipeline.report.label_issues.RANKINGS (not imported: pipeline.report → pipeline.runs → this module)
LABEL_ISSUE_RANKINGS = ("self_confidence", "normalized_margin")


@dataclass
class ReportConfig:
    """The model report written after each run (`visionline report` uses these defaults): how it looks for likely
    mislabelled training images (confident learning on held-out probabilities, pipeline/report/mislabelled.py)."""

    label_issues: bool = True  # search the training split for likely mislabelled images (off: the report says so)
    label_issues_max_images: int = 2000  # train images embedded at most; a larger train split: skipped, says why
    label_issues_folds: int = 5  # K of the K-fold logistic regression on the embeddings (held-out probabilities)
    label_issues_ranking: str = "self_confidence"  # self_confidence | normalized_margin: how candidates are ranked
    label_issues_shown: int = 24  # thumbnails in the report; label_issues.csv lists every candidate


# Beam options by which workers get their Python dependencies: with one of them set, TFX builds no package itself.
WORKER_DEPENDENCY_OPTIONS = ("extra_package", "setup_file", "requirements_file", "worker_harness_container_image",
                             "sdk_container_image")


@dataclass
class BeamConfig:
    """Apache Beam runner settings shared by every Beam-powered component."""

    runner: str = "DirectRunner"
    direct_running_mode: str = "multi_processing"
    direct_num_workers: int = 2
    extra_args: list[str] = field(default_factory=list)  # passed through verbatim (e.g. Dataflow options)

    def pipeline_args(self) -> list[str]:
        """Beam pipeline arguments for `Pipeline(beam_pipeline_args=...)`.

        On the DirectRunner the workers are this interpreter, so their dependencies are already in place; the
        arguments say so by naming an SDK container (Beam's default image, the environment Beam records when none
        is named; the DirectRunner never pulls it) unless `extra_args` already names how workers get their code.
        Without that, every TFX Beam executor repackages the whole TFX install into a fresh sdist (about 1.5 s and
        52 MB in a temporary folder TFX never removes) for each component of each run:
        `tfx.utils.dependency_utils.make_beam_dependency_flags`.
        """
        args = [f"--runner={self.runner}"]
        if self.runner == "DirectRunner":
            args.append(f"--direct_running_mode={self.direct_running_mode}")
            args.append(f"--direct_num_workers={self.direct_num_workers}")
            if not any(arg.lstrip("-").startswith(WORKER_DEPENDENCY_OPTIONS) for arg in self.extra_args):
                from apache_beam.transforms.environments import DockerEnvironment  # heavy: only when building

                args.append(f"--sdk_container_image={DockerEnvironment.default_docker_image()}")
        return args + list(self.extra_args)


@dataclass
class KubeflowConfig:
    """Compiled pipelines only (`compile`, `kfp-local` ignores it): what each task's pod asks the cluster for."""

    # task id → {cpu, memory (requests), cpu_limit, memory_limit, gpu, accelerator}, e.g. {Trainer: {cpu: 4, memory:
    # 16Gi, gpu: 1}}; accelerator: kubeflow = the Kubernetes resource (default nvidia.com/gpu), vertex = its
    # accelerator type (NVIDIA_TESLA_T4). Written into the compiled spec: pipeline/kubeflow_resources.py
    resources: dict[str, dict[str, str]] = field(default_factory=dict, metadata={"nested": True})


@dataclass
class PipelineConfig:
    """Everything one visionline run needs."""

    preset: str = presets.DEFAULT  # default | fast | accurate | demo: values layered under the user's (presets.py)
    pipeline_name: str = "visionline"
    model_name: str = "visionline"
    work_dir: str = ".visionline"  # pipeline root, ML Metadata and (by default) the serving root live here
    serving_root: str = ""  # empty = <work_dir>/serving
    enable_cache: bool = True
    keep_runs: int = 0  # after each local run, prune all but the newest N runs' artifacts (`visionline prune`); 0: off
    data: DataConfig = field(default_factory=DataConfig)
    transform: TransformConfig = field(default_factory=TransformConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    tuner: TunerConfig = field(default_factory=TunerConfig)
    eval: EvaluationConfig = field(default_factory=EvaluationConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    beam: BeamConfig = field(default_factory=BeamConfig)
    kubeflow: KubeflowConfig = field(default_factory=KubeflowConfig)

    def __post_init__(self) -> None:
        # The values the user set (file, flags, --set), without the preset's: `override` re-layers the preset
        # under them, so `--set preset=fast` after a config file still swaps the preset's values.
        self._explicit: dict[str, Any] = {}

    # ----- derived locations -------------------------------------------------------------------------
    @property
    def pipeline_root(self) -> str:
        """Folder under which TFX writes every component's artifacts."""
        return os.path.join(absolute(self.work_dir), "pipelines", self.pipeline_name)

    @property
    def metadata_path(self) -> str:
        """SQLite ML Metadata store of this pipeline."""
        return os.path.join(absolute(self.work_dir), "metadata", f"{self.pipeline_name}.sqlite")

    @property
    def push_base(self) -> str:
        """`<serving_root>/<model_name>`: TF Serving's model base path; Pusher adds `<version>/`."""
        root = self.serving_root or os.path.join(self.work_dir, "serving")
        return os.path.join(absolute(root), self.model_name)

    # ----- values resolved from `auto` ------------------------------------------------------------------
    def resolved_image_size(self) -> int:
        """The image size: as configured, or the backbone's native resolution for 0."""
        if self.transform.image_size:
            return self.transform.image_size
        from components.trainer.backbones.registry import get_backbone  # loads TensorFlow: only when resolving

        return get_backbone(self.train.model).default_size

    def normalization(self) -> str:
        """The pixel normalisation: as configured, or the backbone's own for `auto`."""
        if self.transform.normalization != "auto":
            return self.transform.normalization
        from components.trainer.backbones.registry import get_backbone  # loads TensorFlow: only when resolving

        return get_backbone(self.train.model).normalization

    def resolved_weights(self) -> str:
        """`auto` → `imagenet` for backbones that have published weights, else `none`."""
        if self.train.weights != "auto":
            return self.train.weights
        from components.trainer.backbones.registry import get_backbone  # loads TensorFlow: only when resolving

        return "imagenet" if get_backbone(self.train.model).pretrainable else "none"

    # ----- loading, overriding, validating -----------------------------------------------------------
    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> PipelineConfig:
        """Build a config from a nested dict, rejecting unknown keys by name. The preset `values` names (default:
        `default`) is layered under them: any value in `values` wins over the preset's."""
        name = values.get("preset", presets.DEFAULT) if isinstance(values, dict) else None
        if name not in presets.PRESETS:
            raise ConfigError(f"config field preset must be one of {presets.names()}; got {name!r}")
        config = config_values.build(cls, presets.merge(presets.nested(name), values), prefix="")
        config._explicit = copy.deepcopy(values)
        return config

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> PipelineConfig:
        """Read a YAML or JSON config file."""
        text = Path(path).read_text(encoding="utf-8")
        try:
            values = yaml.safe_load(text) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML/JSON: {err}") from err
        if not isinstance(values, dict):
            raise ConfigError(f"{path}: top level must be a mapping, got {type(values).__name__}")
        return cls.from_dict(values)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (round-trips through `from_dict`)."""
        return dataclasses.asdict(self)

    def override(self, assignments: list[str]) -> PipelineConfig:
        """Apply `section.key=value` strings (values parsed as YAML scalars/lists) to what the user set; the preset
        (possibly a new one: `preset=fast`) is layered under the result again."""
        full = self.to_dict()
        values = self.user_values()
        for assignment in assignments:
            if "=" not in assignment:
                raise ConfigError(f"override {assignment!r}: expected key=value, e.g. train.epochs=5")
            dotted, raw = assignment.split("=", 1)
            node, known = values, full
            parts = dotted.strip().split(".")
            for part in parts[:-1]:
                if not isinstance(known.get(part), dict):
                    raise ConfigError(f"override {assignment!r}: unknown section {part!r}")
                known, node = known[part], node.setdefault(part, {})
            if parts[-1] not in known:
                raise ConfigError(f"override {assignment!r}: unknown field {dotted!r}{config_values.renamed(dotted)}")
            node[parts[-1]] = yaml.safe_load(raw) if raw.strip() else ""
        return PipelineConfig.from_dict(values)

    def user_values(self) -> dict[str, Any]:
        """What the user set, as a nested dict: the explicit values, plus any field that differs from what its
        preset gives (so a config built or changed in code keeps its values through `override`)."""
        baseline = PipelineConfig.from_dict({"preset": self.preset}).to_dict() if self.preset in presets.PRESETS \
            else {}
        return presets.merge(config_values.difference(self.to_dict(), baseline), self._explicit)

    def validate(self) -> PipelineConfig:
        """Check ranges and choices; raise `ConfigError` naming the offending field."""
        checks = [
            (self.data.format in DATA_FORMATS, "data.format", f"one of {DATA_FORMATS}"),
            (0.0 < self.data.train_fraction < 1.0, "data.train_fraction", "strictly between 0 and 1"),
            (self.data.max_image_pixels > 0, "data.max_image_pixels", "positive"),
            (self.data.min_image_side >= 1, "data.min_image_side", "at least 1 (1 accepts every size)"),
            (isinstance(self.data.transcode, bool), "data.transcode", "true or false"),
            (self.data.leakage in LEAKAGE_MODES, "data.leakage", f"one of {LEAKAGE_MODES}"),
            (all(name.strip() for name in self.data.label_names)
             and len(set(self.data.label_names)) == len(self.data.label_names), "data.label_names",
             "distinct, non-empty class names (item i names integer label i)"),
            (not (self.data.label_names and self.data.format in ("folders", "csv")), "data.label_names",
             "empty with data.format=folders or csv (it names the integer labels of TFRecord data)"),
            (self.data.manifest_kind in MANIFEST_KINDS, "data.manifest_kind", f"one of {MANIFEST_KINDS}"),
            (not (self.data.image_dir and self.data.format in ("folders", "tfrecord")), "data.image_dir",
             "empty with data.format=folders or tfrecord (it is where a CSV manifest's paths point)"),
            (not self.data.path_column.lstrip().startswith("-"), "data.path_column",
             "a header name or a 0-based column index"),
            (not self.data.label_column.lstrip().startswith("-"), "data.label_column",
             "a header name or a 0-based column index"),
            (not (self.data.label_column and self.data.label_column == self.data.path_column), "data.label_column",
             "a different column than data.path_column"),
            (not (self.data.split_column and self.data.split_column in (self.data.path_column,
                                                                       self.data.label_column)),
             "data.split_column", "a different column than data.path_column and data.label_column"),
            (not (self.data.manifest_kind == "attributes" and self.data.label_column), "data.label_column",
             "empty with data.manifest_kind=attributes (every column but the path is an attribute)"),
            (not (self.data.manifest_kind == "attributes" and self.train.task != "multilabel"), "train.task",
             "multilabel with data.manifest_kind=attributes (an attribute table gives each image a label set)"),
            (not (self.train.task == "multilabel" and self.data.format == "folders"), "train.task",
             "multiclass or binary with data.format=folders (multilabel needs a CSV manifest with labels "
             "separated by '|')"),
            (self.transform.image_size == 0 or 8 <= self.transform.image_size <= 1024, "transform.image_size",
             "0 (the backbone's native size) or between 8 and 1024"),
            (self.transform.normalization in NORMALIZATIONS, "transform.normalization", f"one of {NORMALIZATIONS}"),
            (self.train.task in TASKS, "train.task", f"one of {TASKS}"),
            (not self.train.positive_class or self.train.task == "binary", "train.positive_class",
             "empty unless train.task=binary (it names the binary task's positive class)"),
            (self.train.optimizer in OPTIMIZERS, "train.optimizer", f"one of {OPTIMIZERS}"),
            (self.train.class_weights in CLASS_WEIGHTS, "train.class_weights", "auto, on or off"),
            (self.train.fine_tune_epochs >= 0, "train.fine_tune_epochs", ">= 0"),
            (config_values.parses(parse_fine_tune, self.train.fine_tune), "train.fine_tune",
             "none, all, a share such as 30% or a count such as 20 layers (a bare number is ambiguous)"),
            (0.0 <= self.train.augment_crop < 1.0, "train.augment_crop", "in [0, 1) (smallest area share kept)"),
            (0.0 <= self.train.augment_color <= 0.5, "train.augment_color", "in [0, 0.5]"),
            (0.0 <= self.train.weight_decay < 1.0, "train.weight_decay", "in [0, 1)"),
            (0.0 <= self.train.label_smoothing < 0.5, "train.label_smoothing", "in [0, 0.5)"),
            (self.train.warmup_epochs >= 0, "train.warmup_epochs", ">= 0"),
            (self.train.device in DEVICES, "train.device", f"one of {DEVICES}"),
            (self.train.mixed_precision in MIXED_PRECISION, "train.mixed_precision", f"one of {MIXED_PRECISION}"),
            (self.train.gpu_batch_size >= 0, "train.gpu_batch_size", ">= 0 (0 = 4 × train.batch_size)"),
            (self.train.fine_tune_learning_rate > 0, "train.fine_tune_learning_rate", "> 0"),
            (self.train.dense_units >= 0, "train.dense_units", ">= 0"),
            (0.0 <= self.train.augment_rotation <= 0.5, "train.augment_rotation", "in [0, 0.5] (fraction of a turn)"),
            (0.0 <= self.train.augment_zoom < 1.0, "train.augment_zoom", "in [0, 1)"),
            (0.0 <= self.train.augment_translation < 1.0, "train.augment_translation", "in [0, 1)"),
            (self.tuner.algorithm in TUNER_ALGORITHMS, "tuner.algorithm", f"one of {TUNER_ALGORITHMS}"),
            (self.tuner.max_trials >= 1, "tuner.max_trials", ">= 1"),
            (self.tuner.epochs_per_trial >= 1, "tuner.epochs_per_trial", ">= 1"),
            (self.train.epochs >= 1, "train.epochs", ">= 1"),
            (self.train.batch_size >= 1, "train.batch_size", ">= 1"),
            (self.train.learning_rate > 0, "train.learning_rate", "> 0"),
            (0.0 <= self.train.dropout < 1.0, "train.dropout", "in [0, 1)"),
            (len(self.train.conv_filters) >= 1, "train.conv_filters", "at least one conv block"),
            (self.train.cnn_pooling in CNN_POOLING, "train.cnn_pooling", f"one of {CNN_POOLING}"),
            (0.0 <= self.train.cnn_block_dropout < 1.0, "train.cnn_block_dropout", "in [0, 1)"),
            (0.0 < self.train.validation_fraction < 0.5, "train.validation_fraction", "in (0, 0.5)"),
            (self.train.early_stopping_patience >= 0, "train.early_stopping_patience", ">= 0"),
            (self.train.early_stopping_monitor in EARLY_STOPPING_MONITORS, "train.early_stopping_monitor",
             f"one of {EARLY_STOPPING_MONITORS}"),
            (self.train.reduce_lr_patience >= 0, "train.reduce_lr_patience", ">= 0"),
            (self.train.cache_dataset_mb >= 0, "train.cache_dataset_mb", ">= 0 (0 = off)"),
            (self.train.lr_schedule in LR_SCHEDULES, "train.lr_schedule", f"one of {LR_SCHEDULES}"),
            (not (self.train.lr_schedule == "cosine" and self.train.reduce_lr_patience > 0), "train.lr_schedule",
             "constant when train.reduce_lr_patience > 0 (a cosine schedule and ReduceLROnPlateau would fight)"),
            (self.eval.max_regression >= 0, "eval.max_regression", ">= 0"),
            (0.0 <= self.eval.max_tflite_accuracy_drop <= 1.0, "eval.max_tflite_accuracy_drop", "in [0, 1]"),
            (self.train.tflite_eval_images >= 1, "train.tflite_eval_images", ">= 1"),
            (0.0 <= self.validation.max_label_drift <= 1.0, "validation.max_label_drift", "in [0, 1] (0 = off)"),
            (self.validation.min_free_disk_mb >= 0, "validation.min_free_disk_mb", ">= 0"),
            (self.validation.free_disk_input_factor >= 0, "validation.free_disk_input_factor", ">= 0"),
            (isinstance(self.report.label_issues, bool), "report.label_issues", "true or false"),
            (self.report.label_issues_max_images >= 1, "report.label_issues_max_images",
             ">= 1 (turn the search off with report.label_issues=false)"),
            (2 <= self.report.label_issues_folds <= 20, "report.label_issues_folds", "between 2 and 20"),
            (self.report.label_issues_ranking in LABEL_ISSUE_RANKINGS, "report.label_issues_ranking",
             f"one of {LABEL_ISSUE_RANKINGS}"),
            (self.report.label_issues_shown >= 0, "report.label_issues_shown", ">= 0"),
            (self.beam.direct_running_mode in BEAM_MODES, "beam.direct_running_mode", f"one of {BEAM_MODES}"),
            (self.beam.direct_num_workers >= 1, "beam.direct_num_workers", ">= 1"),
            (self.keep_runs >= 0, "keep_runs", ">= 0 (0: never prune)"),
            (bool(self.pipeline_name.strip()), "pipeline_name", "non-empty"),
            (bool(self.model_name) and "/" not in self.model_name and ".." not in self.model_name,
             "model_name", "a non-empty name without '/' or '..'"),
        ]
        for ok, name, expected in checks:
            if not ok:
                value = config_values.get_dotted(self, name)
                raise ConfigError(f"config field {name} must be {expected}; got {value!r}")
        self._validate_class_selection()
        try:
            kubeflow_resources.check(self.kubeflow.resources)
        except kubeflow_resources.ResourceError as err:
            raise ConfigError(f"config field {err}") from None
        try:
            validate_eval(self.train.task, self.eval.min_accuracy, self.eval.min_kappa, self.eval.max_regression,
                          self.eval.gates, self.eval.top_k, self.eval.kappa_weighting, self.eval.kappa_class_order)
        except GateError as err:
            raise ConfigError(f"config field {err}") from None
        if not self.data.root:
            raise ConfigError("config field data.root is empty: point it at your images (or use --demo)")
        from components.trainer.backbones.registry import get_backbone, resolve_weights  # TensorFlow: on validate

        try:
            backbone = get_backbone(self.train.model)
            backbone.check_size(self.resolved_image_size())
            resolve_weights(backbone, self.resolved_weights())
        except ValueError as err:
            raise ConfigError(f"config field train.model / train.weights / transform.image_size: {err}") from err
        return self


    def _validate_class_selection(self) -> None:
        """data.classes / exclude_classes / class_map: well-formed, consistent, not multilabel (ConfigError)."""
        data, problem = self.data, None
        mapping = data.class_map
        selected = data.classes or data.exclude_classes or mapping
        if not isinstance(mapping, dict) or not all(isinstance(k, str) and isinstance(v, str) and k.strip()
                                                    and v.strip() for k, v in mapping.items()):
            problem = ("data.class_map must map folder (or label) names to class names, e.g. {scan_a: photo}; "
                       f"got {mapping!r}")
        elif any(not name.strip() for name in [*data.classes, *data.exclude_classes]):
            problem = f"data.classes / data.exclude_classes must list non-empty names; got {data.classes!r}, " \
                      f"{data.exclude_classes!r}"
        elif set(data.exclude_classes) & set(mapping):
            problem = (f"data.class_map maps {sorted(set(data.exclude_classes) & set(mapping))}, which "
                       "data.exclude_classes leaves out: do one or the other")
        elif selected and self.train.task == "multilabel":
            problem = "data.classes / data.exclude_classes / data.class_map apply to multiclass and binary tasks " \
                      "(a multilabel row has a set of labels, not one class)"
        elif data.classes and self.train.positive_class and self.train.positive_class not in data.classes:
            problem = f"train.positive_class {self.train.positive_class!r} must be one of data.classes " \
                      f"{data.classes!r}"
        if problem:
            raise ConfigError(f"config field {problem}")


def absolute(path: str) -> str:
    """Absolute local path (Beam workers and TFX record artifact URIs); URIs like gs://… are left alone."""
    return path if "://" in path else os.path.abspath(os.path.expanduser(path))


def dumps(config: PipelineConfig) -> str:
    """Human-readable JSON of a config (for logs and run records)."""
    return json.dumps(config.to_dict(), indent=2, sort_keys=True)
