"""Version labels: TF Serving's `version_labels` map of a model in `models.config` (e.g. `stable` → 1,
`canary` → 2), requested as REST `/v1/models/NAME/labels/LABEL…` or gRPC `ModelSpec.version_label`.

Behaviour follows TF Serving's `ServerCore` (tensorflow_serving/model_servers/server_core.cc):

* labels are assigned when a config is applied (at start-up before any version is loaded, and on every config
  reload), and a label may only be assigned to a version that is AVAILABLE at that moment — otherwise the whole
  config is refused with FAILED_PRECONDITION `Request to assign label to version V of model M, which is not
  currently available for inference`;
* with `--allow_version_labels_for_unavailable_models` a label that is new, or that keeps its version, may point
  at a version that is not loaded (yet); moving an existing label to another version still needs that version
  AVAILABLE (so requests for the label are never routed to a version that is still loading);
* a request naming a label that is not assigned is INVALID_ARGUMENT `Unrecognized servable version label: L`;
  a label whose version is not loaded (any more) resolves to it anyway, and the request is then NOT_FOUND
  `Servable not found for request: Specific(M, V)`, as in TF Serving;
* GetModelStatus ignores the label (TF Serving's `GetModelStatusImpl` looks at `version` only), so the status of
  a label lists every version of the model.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping

import grpc

from serving.errors import ServingError, clip
from serving.server.config import ModelConfig

LabelMap = dict[str, dict[str, int]]  # model name -> label -> version


def not_available_message(model: str, version: int) -> str:
    """TF Serving's error text for a label assigned to a version that is not AVAILABLE."""
    return (f"Request to assign label to version {version} of model {model}, which is not currently available "
            "for inference")


def assign_labels(models: Iterable[ModelConfig], available: Callable[[str], Iterable[int]],
                  current: Mapping[str, Mapping[str, int]] | None = None,
                  allow_unavailable: bool = False) -> LabelMap:
    """The label map of `models`' `version_labels`, checked as TF Serving checks it.

    `available(name)` gives the model's AVAILABLE versions now; `current` is the label map in force (labels that
    keep their version may stay on an unavailable version when `allow_unavailable`). Raises FAILED_PRECONDITION
    on the first label that may not be assigned; nothing is changed then.
    """
    current = current or {}
    new: LabelMap = {}
    for model in models:
        name = model.name
        labels = dict(model.version_labels)
        if not labels:
            continue
        loaded = set(available(name))
        for label, version in labels.items():
            allowed = False
            if allow_unavailable:
                existing = current.get(name, {}).get(label)
                allowed = existing is None or existing == version
            if not allowed and version not in loaded:
                raise ServingError(grpc.StatusCode.FAILED_PRECONDITION, not_available_message(name, version))
            new.setdefault(name, {})[label] = version
    return new


class VersionLabels:
    """The label map in force (replaced as a whole by `apply`), and label → version resolution for requests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._map: LabelMap | None = None  # None until a config was applied (TF Serving: "does not init yet")

    def apply(self, models: Iterable[ModelConfig], available: Callable[[str], Iterable[int]],
              allow_unavailable: bool = False) -> LabelMap:
        """Check and install the labels of `models` (see `assign_labels`); the old map stays on error."""
        with self._lock:
            current = self._map or {}
        new = assign_labels(models, available, current, allow_unavailable)
        with self._lock:
            self._map = new
        return new

    def resolve(self, model: str, label: str) -> int:
        """The version `label` of `model` points at; INVALID_ARGUMENT if it is not assigned."""
        with self._lock:
            if self._map is None:
                raise ServingError(grpc.StatusCode.UNAVAILABLE, f"Model labels does not init yet.{label}")
            version = self._map.get(model, {}).get(label)
        if version is None:
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, f"Unrecognized servable version label: {clip(label)}")
        return version

    def snapshot(self) -> LabelMap:
        """A copy of the label map in force."""
        with self._lock:
            return {name: dict(labels) for name, labels in (self._map or {}).items()}
