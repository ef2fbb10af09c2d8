"""Configuration of the local model server, and readers for TF Serving's own config files.

* `ModelConfig` / `VersionPolicy` – which model names are served from which base path and which versions
  (TF Serving's `model_version_policy`: latest N, specific versions, or all);
* `BatchingConfig` – server-side batching (TF Serving's `BatchingParameters`);
* `ServerConfig` – ports, host, limits and the above;
* `load_models_config` (with `parse_version_labels`) / `parse_batching_config` read the very files the real TF
  Serving is deployed with (`serving/models.config`, `serving/batching.config`), so the local server and the real
  one agree;
* `validate_model_name` / `parse_version` – the only names and versions any request may refer to.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from components.example_gen.images import MAX_IMAGE_PIXELS
from components.pusher.serving_layout import is_version_name
from serving.errors import ServingError, clip, invalid

MODEL_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
POLICIES = ("latest", "all", "specific")
DEFAULT_MAX_REQUEST_BYTES = 16 * 1024 * 1024
DEFAULT_MAX_BATCH_ROWS = 1024  # rows (images, examples) per predict/classify request
DEFAULT_MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS  # per encoded image in a request, as at ingestion


def validate_model_name(name: str) -> str:
    """Return `name` if it is a plain model name (no '/', '..', or odd characters); else INVALID_ARGUMENT."""
    if not isinstance(name, str) or not MODEL_NAME_RE.match(name) or ".." in name:
        shown = clip(name) if isinstance(name, str) else name
        raise invalid(f"invalid model name {shown!r}: expected letters, digits, '_', '-', '.' (no '/' or '..')")
    return name


def parse_version(text: str | int) -> int:
    """A model version from a URL segment or directory name (non-negative int64); else INVALID_ARGUMENT."""
    if isinstance(text, int) and not isinstance(text, bool) and 0 <= text < 10**18:
        return text
    if isinstance(text, str) and is_version_name(text):
        return int(text)
    raise invalid(f"invalid model version {str(text)[:40]!r}: expected a non-negative integer")


@dataclass(frozen=True)
class VersionPolicy:
    """Which of the complete versions on disk are served (TF Serving's `ServableVersionPolicy`)."""

    kind: str = "latest"  # latest | all | specific
    num_versions: int = 1  # for `latest`
    versions: tuple[int, ...] = ()  # for `specific`

    def __post_init__(self) -> None:
        if self.kind not in POLICIES:
            raise ValueError(f"version policy must be one of {POLICIES}, got {self.kind!r}")
        if self.kind == "latest" and self.num_versions < 1:
            raise ValueError("version policy 'latest' needs num_versions >= 1")
        if self.kind == "specific" and not self.versions:
            raise ValueError("version policy 'specific' needs at least one version")

    def select(self, candidates: set[int]) -> set[int]:
        """The versions to serve among the loadable `candidates`."""
        if self.kind == "all":
            return set(candidates)
        if self.kind == "specific":
            return set(candidates) & set(self.versions)
        return set(sorted(candidates)[-self.num_versions:])

    def describe(self) -> str:
        """Short human description, e.g. 'latest 1'."""
        if self.kind == "latest":
            return f"latest {self.num_versions}"
        if self.kind == "specific":
            return "specific " + ",".join(str(v) for v in self.versions)
        return "all"


@dataclass(frozen=True)
class ModelConfig:
    """One served model: its name and TF Serving base path (`<base_path>/<version>/saved_model.pb`)."""

    name: str
    base_path: str
    policy: VersionPolicy = field(default_factory=VersionPolicy)
    # TF Serving's `version_labels` (label, version) pairs, e.g. (("stable", 1), ("canary", 2)); see version_labels.py
    version_labels: tuple[tuple[str, int], ...] = ()

    def __post_init__(self) -> None:
        validate_model_name(self.name)
        for label, version in self.version_labels:
            if not label or not isinstance(version, int) or version < 0:
                raise ValueError(f"model {self.name}: version label {label!r} -> {version!r}: expected a non-empty "
                                 "label and a version >= 0")


@dataclass(frozen=True)
class BatchingConfig:
    """Server-side batching of concurrent requests (field names as in TF Serving's `BatchingParameters`)."""

    max_batch_size: int = 32  # rows per merged batch
    batch_timeout_micros: int = 1000  # how long the first request of a batch waits for company
    num_batch_threads: int = 2  # batches processed in parallel (per signature); about the number of cores
    max_enqueued_batches: int = 64  # queue bound (in batches); beyond it requests fail with UNAVAILABLE

    def __post_init__(self) -> None:
        for name in ("max_batch_size", "num_batch_threads", "max_enqueued_batches"):
            if getattr(self, name) < 1:
                raise ValueError(f"batching {name} must be >= 1")
        if self.batch_timeout_micros < 0:
            raise ValueError("batching batch_timeout_micros must be >= 0")


@dataclass(frozen=True)
class ServerConfig:
    """Everything the local server needs."""

    models: tuple[ModelConfig, ...]
    host: str = "127.0.0.1"
    rest_port: int | None = 8501  # None = REST disabled, 0 = any free port
    grpc_port: int | None = 8500  # None = gRPC disabled, 0 = any free port
    poll_interval: float = 2.0  # seconds between scans of the base paths (TF Serving's file_system_poll_wait)
    batching: BatchingConfig | None = None  # None = off (TF Serving's default)
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES  # REST body / gRPC message limit (413 / RESOURCE_EXHAUSTED)
    max_batch_rows: int = DEFAULT_MAX_BATCH_ROWS  # rows per predict/classify request (400 / INVALID_ARGUMENT)
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS  # decompression-bomb guard per image (400 / INVALID_ARGUMENT)
    workers: int = 8  # threads running un-batched inference for REST, and gRPC handler threads / 4
    cors_origin: str | None = None  # e.g. "*" to let a page on another origin call the REST API
    monitoring_path: str | None = None  # REST path of the Prometheus metrics page (None = off, as in TF Serving)
    # TensorFlow's thread pools (TF Serving's --tensorflow_intra_op_parallelism / _inter_op_): 0 = TensorFlow's choice
    intra_op_threads: int = 0
    inter_op_threads: int = 0
    # Deadlines, health, access log (issue 24):
    rest_api_timeout_ms: int = 30000  # TF Serving's --rest_api_timeout_in_ms (504 beyond; 0 = no timeout)
    grpc_health: bool = False  # TF Serving's --enable_grpc_healthcheck_service (grpc.health.v1.Health)
    access_log: bool = True  # one structured line per REST request / gRPC call (logger serving.access)
    # TF Serving's --allow_version_labels_for_unavailable_models: a new label may name a version not loaded yet
    allow_version_labels_for_unavailable_models: bool = False
    # TF Serving's --enable_model_warmup (on by default there too) and --num_request_iterations_for_warmup
    enable_model_warmup: bool = True
    warmup_iterations: int = 1
    # TF Serving's --model_config_file / --model_config_file_poll_wait_seconds (0: read once at start-up);
    # `model_base_overrides` (name, local path) replace base paths the file names (container paths) at every read
    model_config_file: str | None = None
    model_config_poll_seconds: float = 0.0
    model_base_overrides: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if not self.models:
            raise ValueError("at least one model must be configured")
        names = [m.name for m in self.models]
        if len(set(names)) != len(names):
            raise ValueError(f"model names must be unique, got {names}")
        if self.max_request_bytes < 1024:
            raise ValueError("max_request_bytes must be at least 1024")
        if self.max_batch_rows < 1:
            raise ValueError("max_batch_rows must be >= 1")
        if self.max_image_pixels < 1:
            raise ValueError("max_image_pixels must be >= 1")
        if self.poll_interval <= 0:
            raise ValueError("poll_interval must be > 0")
        if self.workers < 1:
            raise ValueError("workers must be >= 1")
        if self.rest_api_timeout_ms < 0:
            raise ValueError("rest_api_timeout_ms must be >= 0 (0: no timeout)")
        if self.intra_op_threads < 0 or self.inter_op_threads < 0:
            raise ValueError("intra_op_threads and inter_op_threads must be >= 0 (0: TensorFlow's default)")
        if self.warmup_iterations < 1:
            raise ValueError("warmup_iterations must be >= 1")
        if self.model_config_poll_seconds < 0:
            raise ValueError("model_config_poll_seconds must be >= 0 (0: the file is read once)")
        if self.model_config_poll_seconds > 0 and not self.model_config_file:
            raise ValueError("model_config_poll_seconds needs model_config_file")
        if self.monitoring_path is not None and (not self.monitoring_path.startswith("/")
                                                 or self.monitoring_path == "/"
                                                 or self.monitoring_path.startswith("/v1/")):
            raise ValueError(f"monitoring_path {self.monitoring_path!r} must start with '/' and not clash with "
                             "the API (/v1/) or the page (/)")


def load_models_config(path: str | os.PathLike[str], base_path_override: dict[str, str] | None = None,
                       ) -> tuple[ModelConfig, ...]:
    """Read a TF Serving `--model_config_file` (text `ModelServerConfig`) into `ModelConfig`s.

    `base_path_override` maps model names to local paths (the file usually names container paths such as
    `/models/visionline`). `version_labels` are read by `parse_version_labels`.
    """
    with open(path, encoding="utf-8") as handle:
        config = text_format.Parse(handle.read(), model_server_config_pb2.ModelServerConfig())
    if config.WhichOneof("config") != "model_config_list":
        raise ValueError(f"{path}: only model_config_list is supported")
    models = []
    for entry in config.model_config_list.config:
        if entry.model_platform not in ("", "tensorflow"):
            raise ValueError(f"{path}: model {entry.name!r}: platform {entry.model_platform!r} is not supported")
        policy_proto = entry.model_version_policy
        choice = policy_proto.WhichOneof("policy_choice") or "latest"
        if choice == "latest":
            policy = VersionPolicy("latest", num_versions=policy_proto.latest.num_versions or 1)
        elif choice == "specific":
            policy = VersionPolicy("specific", versions=tuple(sorted(policy_proto.specific.versions)))
        else:
            policy = VersionPolicy("all")
        base = (base_path_override or {}).get(entry.name, entry.base_path)
        models.append(ModelConfig(name=entry.name, base_path=base, policy=policy,
                                  version_labels=parse_version_labels(entry, path)))
    return tuple(models)


def parse_version_labels(entry: model_server_config_pb2.ModelConfig, path: str | os.PathLike[str] = "models.config",
                         ) -> tuple[tuple[str, int], ...]:
    """The `version_labels` map of one `ModelConfig` entry as sorted (label, version) pairs; a ValueError naming
    the file, model and label for an empty label or a negative version (TF Serving's versions are >= 0)."""
    pairs = []
    for label, version in sorted(entry.version_labels.items()):
        if not label or version < 0:
            raise ValueError(f"{path}: model {entry.name!r}: version_labels {{ key: {label!r} value: {version} }}: "
                             "expected a non-empty label and a version >= 0")
        pairs.append((label, int(version)))
    return tuple(pairs)


def reload_models_config(path: str | os.PathLike[str], base_path_override: dict[str, str] | None = None,
                         ) -> tuple[ModelConfig, ...]:
    """Re-read a `--model_config_file` while serving (`--model_config_file_poll_wait_seconds`): as
    `load_models_config`, but every problem (unreadable file, text that does not parse as a
    `ModelServerConfig`, an invalid entry, duplicate names) is a `ValueError` naming the file, so the caller can
    log it and keep the previous configuration, as TF Serving does. An empty `model_config_list` is valid (no
    models: everything is unloaded)."""
    try:
        models = load_models_config(path, base_path_override)
    except (OSError, UnicodeDecodeError, text_format.ParseError) as err:
        raise ValueError(f"{path}: cannot read the model config: {err}") from None
    except (ValueError, ServingError) as err:  # an invalid entry (platform, policy, model name)
        message = getattr(err, "message", None) or str(err)
        raise ValueError(message if str(path) in message else f"{path}: {message}") from None
    names = [m.name for m in models]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"{path}: model names must be unique; duplicated: {duplicates}")
    return models


_WRAPPED_INT = re.compile(r"^\s*(\w+)\s*\{\s*value\s*:\s*(-?\d+)\s*\}\s*$")
_PLAIN_FIELD = re.compile(r"^\s*(\w+)\s*:\s*(\S+)\s*$")
_KNOWN_IGNORED = {"allowed_batch_sizes", "pad_variable_length_inputs", "thread_pool_name",
                  "enable_large_batch_splitting", "max_execution_batch_size"}


def parse_batching_config(text: str) -> BatchingConfig:
    """Parse TF Serving's `--batching_parameters_file` text format (`max_batch_size { value: 32 }` …).

    The protobuf of that file is not shipped with tensorflow-serving-api, so this reads the handful of
    fields that matter; fields the local server does not implement are accepted and ignored, anything
    else is an error.
    """
    values: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        wrapped = _WRAPPED_INT.match(line)
        plain = _PLAIN_FIELD.match(line)
        name = wrapped.group(1) if wrapped else plain.group(1) if plain else None
        if name is None:
            raise ValueError(f"batching config line {number}: cannot parse {raw.strip()!r}")
        if name in _KNOWN_IGNORED:
            continue
        if name not in BatchingConfig.__dataclass_fields__ or not wrapped:
            raise ValueError(f"batching config line {number}: unknown or malformed field {name!r}")
        values[name] = int(wrapped.group(2))
    return BatchingConfig(**values)
