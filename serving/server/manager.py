"""Version management: watch each model's base path, load what the version policy asks for, retire the rest.

TF Serving's layout is `<base_path>/<version>/` with an integer directory name (the rules are
`components.pusher.serving_layout`, which the Pusher writes by). A polling thread scans every
`poll_interval` seconds; a version directory becomes a candidate only when it is *complete*
(`saved_model.pb` and `variables/` present) and *settled* (its files' sizes and mtimes did not change between
two scans — a copy in progress is never loaded; on the first scan at start-up everything present counts as
settled). Incomplete directories are skipped with a logged reason. The policy (latest N / specific / all)
picks among candidates; new versions are loaded *before* old ones are retired, so the model stays available
during a swap. A version that fails to load is logged, reported as END with its error by the status API,
excluded from the policy (so "latest" keeps serving the previous good version) and retried only if its files
change. Nothing ever crashes the server. Loading a version includes its warm-up (the built-in probe, then the
replay of `assets.extra/tf_serving_warmup_requests` unless `warmup_iterations` is 0): a version is LOADING until
both succeeded and only then AVAILABLE and routed to, so `is_ready()` (a model has an AVAILABLE version) is the
readiness a probe asks for. `reconfigure()` changes the set of models while serving (TF Serving's ReloadConfig;
`serving.server.config_watcher` calls it when `--model_config_file` changes).

Requests hold a version through `acquire()`, a reference count: a retired version leaves the routing table at
once (new requests go to the new version) but is only closed when its last in-flight request finished, so
no request is dropped by a swap; its memory is then collected at once (`gc.collect()`: a loaded SavedModel is
full of reference cycles, which the cyclic GC would otherwise free only tens of seconds later). Directory names
come from listing the configured base path only; nothing a client sends is ever joined into a filesystem
path.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc

from components.pusher.serving_layout import incomplete_reason, version_dirs
from serving.errors import ServingError, clean_tf_message, invalid, not_found
from serving.server.config import BatchingConfig, ModelConfig, validate_model_name
from serving.server.polling import Poller
from serving.server.prometheus import ServingMetrics
from serving.server.servable import Servable
from serving.server.version_labels import VersionLabels

log = logging.getLogger(__name__)

# TF Serving's ModelVersionStatus.State names (get_model_status.proto).
START, LOADING, AVAILABLE, UNLOADING, END = "START", "LOADING", "AVAILABLE", "UNLOADING", "END"
MAX_ENDED_STATUSES = 16  # status history kept per model for versions that were unloaded or failed

Loader = Callable[[str, int, str], Any]  # (model name, version, version dir) -> Servable


@dataclass
class VersionStatus:
    """What the status API reports for one version."""

    version: int
    state: str
    error_code: grpc.StatusCode = grpc.StatusCode.OK
    error_message: str = ""


@dataclass
class _Slot:
    servable: Any
    inflight: int = 0
    retired: bool = False
    finalized: bool = False


@dataclass
class _Model:
    config: ModelConfig
    slots: dict[int, _Slot] = field(default_factory=dict)  # versions currently routed to
    status: dict[int, VersionStatus] = field(default_factory=dict)
    seen: dict[int, tuple] = field(default_factory=dict)  # last fingerprint observed per version dir
    failed: dict[int, tuple] = field(default_factory=dict)  # fingerprint at the time loading failed
    logged: dict[Any, str] = field(default_factory=dict)  # last message logged per subject (no log spam)
    scanned: bool = False  # its base path was scanned at least once


def fingerprint(version_dir: str) -> tuple:
    """(relative path, size, mtime) of every file below `version_dir`, sorted: changes while files are written."""
    items = []
    for root, _dirs, files in os.walk(version_dir):
        for name in files:
            path = os.path.join(root, name)
            try:
                stat = os.stat(path)
            except OSError:
                continue
            items.append((os.path.relpath(path, version_dir), stat.st_size, stat.st_mtime_ns))
    return tuple(sorted(items))


class ModelManager:
    """Keeps the policy's versions of every configured model loaded; see the module docstring."""

    def __init__(self, models: tuple[ModelConfig, ...] | list[ModelConfig], *, poll_interval: float = 2.0,
                 batching: BatchingConfig | None = None, loader: Loader | None = None,
                 metrics: ServingMetrics | None = None, allow_version_labels_for_unavailable_models: bool = False,
                 warmup_iterations: int = 1) -> None:
        self._models = {m.name: _Model(config=m) for m in models}
        self.labels = VersionLabels()  # version labels of the config in force (`apply_version_labels`)
        self._allow_unavailable_labels = allow_version_labels_for_unavailable_models
        self._batching = batching
        self._metrics = metrics
        self._warmup_iterations = warmup_iterations  # 0: the warm-up file is not replayed
        self._loader = loader or self._default_loader
        self._lock = threading.Lock()
        self._poll_lock = threading.Lock()
        self._watcher = Poller("model-watcher", poll_interval, self.poll, "model watcher: poll failed; will retry")
        self._readiness_checks: list[Callable[[], str | None]] = []

    def _default_loader(self, name: str, version: int, path: str) -> Any:
        return Servable.load(name, version, path, self._batching, self._metrics, self._warmup_iterations)

    # ----- lifecycle -------------------------------------------------------------------------------------------
    def start(self) -> None:
        """Load what is on disk now (synchronously), then keep watching in a daemon thread."""
        self.apply_version_labels()  # as TF Serving: labels are checked before any version is loaded
        self.poll(initial=True)
        self._watcher.start()

    def stop(self) -> None:
        """Stop watching and unload every version (after in-flight requests)."""
        self._watcher.stop()
        with self._lock:
            retire = [(m, v, slot) for m in self._models.values() for v, slot in m.slots.items()]
            for m, v, _slot in retire:
                del m.slots[v]
        for m, v, slot in retire:
            self._retire(m, v, slot)

    # ----- polling ---------------------------------------------------------------------------------------------
    def poll(self, initial: bool = False) -> None:
        """One scan of every base path: load, retire and update statuses. A model's first scan (at start-up, or
        after `reconfigure` added it) counts everything present as settled."""
        with self._poll_lock:
            for model in list(self._models.values()):
                self._poll_model(model, initial or not model.scanned)
                model.scanned = True

    def _note(self, model: _Model, subject: Any, level: int, message: str) -> None:
        if model.logged.get(subject) != message:
            model.logged[subject] = message
            log.log(level, "model %s: %s", model.config.name, message)

    def _scan(self, model: _Model) -> dict[int, tuple[str, tuple]]:
        base = model.config.base_path
        try:
            versions = version_dirs(base)
        except FileNotFoundError:
            self._note(model, "base", logging.WARNING, f"base path {base} does not exist (yet); watching it")
            return {}
        except OSError as err:
            self._note(model, "base", logging.WARNING, f"cannot list base path {base}: {err}")
            return {}
        model.logged.pop("base", None)
        found = {}
        for version, path in versions:
            reason = incomplete_reason(path)
            if reason is not None:
                self._note(model, version, logging.INFO, f"skipping version {version} ({path}): {reason}")
                continue
            found[version] = (path, fingerprint(path))
        return found

    def _poll_model(self, model: _Model, initial: bool) -> None:
        on_disk = self._scan(model)
        candidates: set[int] = set()
        for version, (_path, print_) in on_disk.items():
            settled = initial or model.seen.get(version) == print_
            model.seen[version] = print_
            if version in model.slots:
                candidates.add(version)
            elif model.failed.get(version) == print_:
                continue  # failed before and unchanged since: not retried
            elif settled:
                candidates.add(version)
            else:
                self._note(model, version, logging.INFO, f"version {version} is being written; waiting for it "
                                                         "to settle")
        for version in list(model.seen):
            if version not in on_disk:
                del model.seen[version]
                model.failed.pop(version, None)
        policy = model.config.policy
        if policy.kind == "specific":
            absent = sorted(set(policy.versions) - set(on_disk))
            if absent:
                self._note(model, "specific", logging.WARNING, f"policy asks for versions {absent}, not found "
                                                               f"under {model.config.base_path}")
        while True:  # load newest first; a failure removes the version and the policy picks again
            aspired = policy.select(candidates)
            to_load = sorted(aspired - set(model.slots), reverse=True)
            if not to_load:
                break
            for version in to_load:
                if not self._load(model, version, on_disk[version][0]):
                    model.failed[version] = on_disk[version][1]
                    candidates.discard(version)
        with self._lock:
            retire = [(v, slot) for v, slot in model.slots.items() if v not in aspired]
            for version, _slot in retire:
                del model.slots[version]
        for version, slot in retire:
            self._retire(model, version, slot)

    def _load(self, model: _Model, version: int, path: str) -> bool:
        name = model.config.name
        with self._lock:
            model.status[version] = VersionStatus(version, LOADING)
        try:
            servable = self._loader(name, version, path)
        except Exception as err:  # a broken version must never take the server down
            detail = clean_tf_message(getattr(err, "message", None) or str(err)) or "(no message)"
            message = f"{type(err).__name__}: {detail[:500]}"
            code = err.code if isinstance(err, ServingError) else grpc.StatusCode.UNKNOWN
            with self._lock:
                model.status[version] = VersionStatus(version, END, code, f"loading failed: {message}")
                self._trim(model)
            self._note(model, version, logging.WARNING,
                       f"version {version} ({path}) failed to load and is skipped: {message}")
            return False
        with self._lock:
            model.slots[version] = _Slot(servable)
            model.status[version] = VersionStatus(version, AVAILABLE)
        model.logged.pop(version, None)
        log.info("model %s: version %s is AVAILABLE (%s)", name, version, path)
        return True

    def _retire(self, model: _Model, version: int, slot: _Slot) -> None:
        with self._lock:
            slot.retired = True
            model.status[version] = VersionStatus(version, UNLOADING)
            finalize = slot.inflight == 0 and not slot.finalized
            if finalize:
                slot.finalized = True
        log.info("model %s: retiring version %s", model.config.name, version)
        if finalize:
            self._finalize(model, version, slot)

    def _finalize(self, model: _Model, version: int, slot: _Slot) -> None:
        try:
            slot.servable.close()
        except Exception:
            log.exception("model %s: closing version %s failed", model.config.name, version)
        with self._lock:
            if model.status.get(version, VersionStatus(version, END)).state == UNLOADING:
                model.status[version] = VersionStatus(version, END)
            self._trim(model)
        log.info("model %s: version %s unloaded", model.config.name, version)
        slot.servable = None
        # A loaded SavedModel is full of reference cycles: collect now so its memory is given back when the
        # version is unloaded, not whenever the cyclic GC next runs (measured: ~50 s later under load).
        gc.collect()

    def _trim(self, model: _Model) -> None:
        ended = sorted(v for v, s in model.status.items() if s.state == END)
        for version in ended[:-MAX_ENDED_STATUSES]:
            del model.status[version]

    # ----- live configuration (TF Serving's ReloadConfig) ------------------------------------------------------
    def reconfigure(self, models: Sequence[ModelConfig]) -> dict[str, list[str]]:
        """Serve exactly `models` from now on, without a restart: a model no longer listed is removed (its
        versions retired after their in-flight requests; requests for it are NOT_FOUND at once), a new one is
        loaded now, one whose version policy changed gets it at this poll, one whose base path changed has its
        versions retired and is loaded afresh from the new path. Returns the names added, removed and changed.
        ValueError (nothing changed) when two entries share a name."""
        names = [m.name for m in models]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"model names must be unique; duplicated: {duplicates}")
        try:  # TF Serving assigns the new config's version labels first; a label it may not assign rejects the config
            self.apply_version_labels(list(models))
        except ServingError as err:
            raise ValueError(err.message) from None
        wanted = {m.name: m for m in models}
        retire: list[tuple[_Model, int, _Slot]] = []
        with self._poll_lock, self._lock:
            removed = sorted(n for n in self._models if n not in wanted)
            added = sorted(n for n in wanted if n not in self._models)
            changed = sorted(n for n in wanted if n in self._models and self._models[n].config != wanted[n])
            for name in removed:
                model = self._models.pop(name)
                retire += [(model, v, slot) for v, slot in model.slots.items()]
                model.slots = {}
            for name in added:
                self._models[name] = _Model(config=wanted[name])
            for name in changed:
                model = self._models[name]
                if model.config.base_path != wanted[name].base_path:
                    retire += [(model, v, slot) for v, slot in model.slots.items()]
                    self._models[name] = model = _Model(config=wanted[name], status=model.status)
                model.config = wanted[name]
        if self._metrics is not None:
            self._metrics.add_model_names(added)
        for model, version, slot in retire:
            self._retire(model, version, slot)
        for kind, subjects in (("added", added), ("removed", removed), ("changed", changed)):
            if subjects:
                log.info("model config: %s %s", kind, ", ".join(subjects))
        if added or changed:
            self.poll()
        return {"added": added, "removed": removed, "changed": changed}

    def is_ready(self, name: str | None = None) -> bool:
        """Readiness: model `name` has a version AVAILABLE (loaded *and* warmed up: a version is routed to only
        after its warm-up replay succeeded); with no name, every configured model has one (False when none is
        configured). What a readiness probe asks."""
        if name is None:
            with self._lock:
                configured = bool(self._models)
            return configured and not self.not_ready_reasons()
        with self._lock:
            model = self._models.get(name)
            return model is not None and bool(model.slots)

    # ----- requests --------------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def acquire(self, name: str, version: int | None = None) -> Iterator[Any]:
        """Hold the requested version (latest when None) for the duration of one request; NOT_FOUND if absent."""
        validate_model_name(name)
        with self._lock:
            model = self._models.get(name)
            slots = model.slots if model is not None else {}
            if version is None:
                if not slots:
                    raise not_found(f"Servable not found for request: Latest({name})")
                version = max(slots)
            elif version not in slots:
                raise not_found(f"Servable not found for request: Specific({name}, {version})")
            slot = slots[version]
            slot.inflight += 1
        try:
            yield slot.servable
        finally:
            with self._lock:
                slot.inflight -= 1
                finalize = slot.retired and slot.inflight == 0 and not slot.finalized
                if finalize:
                    slot.finalized = True
            if finalize:  # off the request thread (it may be the REST event loop)
                threading.Thread(target=self._finalize, args=(model, version, slot), daemon=True).start()

    def status(self, name: str, version: int | None = None) -> list[VersionStatus]:
        """TF Serving's GetModelStatus: every known version (newest first), or just `version`."""
        validate_model_name(name)
        with self._lock:
            model = self._models.get(name)
            statuses = dict(model.status) if model is not None else {}
        if version is not None:
            if version not in statuses:
                raise not_found(f"Could not find version {version} of model {name}")
            return [statuses[version]]
        if not statuses:
            raise not_found(f"Could not find any versions of model {name}")
        return [statuses[v] for v in sorted(statuses, reverse=True)]

    def add_readiness_check(self, check: Callable[[], str | None]) -> None:
        """One more condition for `not_ready_reasons()`: `check()` returns why the server is not ready, or None."""
        self._readiness_checks.append(check)

    def not_ready_reasons(self) -> list[str]:
        """Why the server should not take traffic (empty: ready; the gRPC health service's SERVING): a configured
        model without an AVAILABLE version, and whatever an `add_readiness_check` check reports."""
        with self._lock:
            reasons = [f"model {name} has no AVAILABLE version" for name, m in sorted(self._models.items())
                       if not m.slots]
        reasons += [reason for check in self._readiness_checks if (reason := check())]
        return reasons

    def available_versions(self, name: str) -> list[int]:
        """Versions currently routed to, ascending."""
        with self._lock:
            model = self._models.get(name)
            return sorted(model.slots) if model is not None else []

    def apply_version_labels(self, models: list[ModelConfig] | None = None) -> None:
        """Assign the `version_labels` of `models` (default: the configured ones) against the versions AVAILABLE
        now, as TF Serving does whenever a config is applied; FAILED_PRECONDITION (nothing changed) if a label
        may not be assigned (`serving.server.version_labels`)."""
        configs = models if models is not None else [m.config for m in self._models.values()]
        try:
            self.labels.apply(configs, self.available_versions, self._allow_unavailable_labels)
        except ServingError as err:
            hint = ("" if self._allow_unavailable_labels else " (labels are assigned before versions load: "
                    "--allow-version-labels-for-unavailable-models lets a new label name a version not loaded yet)")
            raise ServingError(err.code, err.message + hint) from None

    def resolve_version(self, name: str, version: int | None, label: str | None) -> int | None:
        """The version a request names: `version`, or the one `label` points at (INVALID_ARGUMENT if the label
        is not assigned), or None for the latest."""
        if label is None or label == "":
            return version
        if version is not None:
            raise invalid(f"Both model version ({version}) and model version label ({label}) cannot be supplied.")
        return self.labels.resolve(name, label)

    def model_names(self) -> list[str]:
        """Configured model names."""
        return sorted(self._models)

    def model_config(self, name: str) -> ModelConfig:
        """The configuration of model `name` (KeyError if not configured)."""
        return self._models[name].config
