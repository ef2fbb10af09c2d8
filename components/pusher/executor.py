"""Pusher executor that never exposes half a model and never pushes the same model twice.

TFX's filesystem Pusher copies straight into `<base>/<version>/` (saved_model.pb last). This executor copies
into a hidden sibling `<base>/.<version>.partial/` and renames it into place, so a model server polling the
base path (TF Serving ignores non-numeric names) only ever sees complete versions; on object stores without
atomic rename (gs://) the rename is a copy, and the saved_model.pb-last order still applies. Each version gets
`assets.extra/visionline_push.json` naming the Trainer model it came from; when the blessed model is already
served under some version (a re-run whose candidate is the last blessed model), nothing is copied and the
artifact records that version.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from tfx.components.pusher import executor as tfx_pusher
from tfx.dsl.io import fileio
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import io_utils, proto_utils

PUSH_RECORD = os.path.join("assets.extra", "visionline_push.json")


def find_pushed_version(base_directory: str, model_uri: str) -> str | None:
    """The version under `base_directory` that was pushed from `model_uri`, if any."""
    if not fileio.exists(base_directory):
        return None
    for name in sorted(fileio.listdir(base_directory)):
        name = name.rstrip("/")
        record = os.path.join(base_directory, name, PUSH_RECORD)
        if name.isdigit() and fileio.exists(record):
            with fileio.open(record, "r") as handle:
                if json.loads(handle.read()).get("model_uri") == model_uri:
                    return name
    return None


def push_atomically(model_path: str, base_directory: str, version: str, model_uri: str) -> str:
    """Copy a SavedModel to `<base>/<version>` through a hidden temporary folder and a rename; return the path."""
    serving_path = os.path.join(base_directory, version)
    if fileio.exists(serving_path):
        raise FileExistsError(f"serving version {serving_path} already exists")
    staging = os.path.join(base_directory, f".{version}.partial")
    if fileio.exists(staging):
        fileio.rmtree(staging)
    io_utils.copy_dir(model_path, staging, deny_regex_patterns=[r"saved_model\.pb"])
    io_utils.write_string_file(os.path.join(staging, PUSH_RECORD),
                               json.dumps({"model_uri": model_uri, "pushed_at": int(time.time())}))
    io_utils.copy_file(os.path.join(model_path, "saved_model.pb"), os.path.join(staging, "saved_model.pb"))
    fileio.rename(staging, serving_path)
    return serving_path


class Executor(tfx_pusher.Executor):
    """Filesystem push via `push_atomically`, skipping a model that is already served."""

    def Do(self, input_dict: dict[str, list], output_dict: dict[str, list], exec_properties: dict[str, Any]) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        model_push = artifact_utils.get_single_instance(output_dict[standard_component_specs.PUSHED_MODEL_KEY])
        if not self.CheckBlessing(input_dict):
            self._MarkNotPushed(model_push)
            return
        destination = pusher_pb2.PushDestination()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.PUSH_DESTINATION_KEY], destination)
        if destination.WhichOneof("destination") != "filesystem":
            raise NotImplementedError("visionline's Pusher pushes to a filesystem destination only")
        base = destination.filesystem.base_directory
        model_uri = artifact_utils.get_single_uri(input_dict[standard_component_specs.MODEL_KEY])
        version = find_pushed_version(base, model_uri)
        if version is None:
            version = str(int(time.time()))
            while fileio.exists(os.path.join(base, version)):  # two pushes within one second
                version = str(int(version) + 1)
            push_atomically(self.GetModelPath(input_dict), base, version, model_uri)
        io_utils.copy_dir(self.GetModelPath(input_dict), model_push.uri)
        self._MarkPushed(model_push, pushed_destination=os.path.join(base, version), pushed_version=version)
