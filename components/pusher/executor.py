"""Pusher executor that never exposes half a model and never pushes the same model twice.

TFX's filesystem Pusher copies straight into `<base>/<version>/` (saved_model.pb last). This executor copies
into a hidden sibling `<base>/.<version>.partial/` and renames it into place, so a model server polling the
base path (TF Serving ignores non-numeric names) only ever sees complete versions; on object stores without
atomic rename (gs://) the rename is a copy, and the saved_model.pb-last order still applies. Each version gets
`assets.extra/visionline_push.json` naming the Trainer model it came from; when the blessed model is already
served under some version (a re-run whose candidate is the last blessed model), nothing is copied and the
artifact records that version. A model whose warm-up file (`assets.extra/tf_serving_warmup_requests`, written by
the Trainer's export, `components.warmup`) is malformed is not pushed: TF Serving would fail to load it.
TFLite variants (`assets.extra/tflite/`, `components.tflite_variants`) whose accuracy dropped more than
`eval.max_tflite_accuracy_drop` (the custom_config's `max_tflite_accuracy_drop`) below the SavedModel's are not
copied; the push record's `tflite` entry and the PushedModel's `tflite` property say what shipped and why not.
The layout itself (version names, staging folder, push record) is
`components.pusher.serving_layout`, shared with the serving package.
"""

from __future__ import annotations

import dataclasses
import os
import re
import time
from typing import Any

from tfx.components.pusher import executor as tfx_pusher
from tfx.dsl.io import fileio
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import io_utils, json_utils, proto_utils

from components import tflite_variants, warmup
from components.pusher import serving_layout

TFLITE_PROPERTY = "tflite"  # the PushedModel's custom property: GateResult.describe()


def push_atomically(model_path: str, base_directory: str, version: str, model_uri: str,
                    tflite: tflite_variants.GateResult | None = None) -> str:
    """Copy a SavedModel to `<base>/<version>` through a hidden temporary folder and a rename; return the path.
    `tflite`: the TFLite gate's verdict (its withheld variants are not copied; the push record names them)."""
    serving_path = serving_layout.version_dir(base_directory, version)
    if fileio.exists(serving_path):
        raise FileExistsError(f"serving version {serving_path} already exists")
    staging = serving_layout.staging_dir(base_directory, version)
    if fileio.exists(staging):
        fileio.rmtree(staging)
    saved_model = serving_layout.SAVED_MODEL_PB
    withheld = tflite.deny_patterns() if tflite else []
    io_utils.copy_dir(model_path, staging, deny_regex_patterns=[re.escape(saved_model), *withheld])
    io_utils.write_string_file(os.path.join(staging, serving_layout.PUSH_RECORD), serving_layout.push_record(
        model_uri, int(time.time()), tflite.as_dict() if tflite else None))
    io_utils.copy_file(os.path.join(model_path, saved_model), os.path.join(staging, saved_model))
    fileio.rename(staging, serving_path)
    return serving_path


def tflite_gate(model_path: str, exec_properties: dict[str, Any]) -> tflite_variants.GateResult:
    """The TFLite variants of the model at `model_path` that may ship: those within the custom_config's
    `max_tflite_accuracy_drop` (`eval.max_tflite_accuracy_drop`) of the SavedModel's accuracy
    (`tflite_variants.gate`)."""
    config = json_utils.loads(exec_properties.get(standard_component_specs.CUSTOM_CONFIG_KEY) or "null") or {}
    max_drop = float(config.get(tflite_variants.MAX_DROP_KEY, tflite_variants.DEFAULT_MAX_ACCURACY_DROP))
    path = tflite_variants.report_path(model_path)
    if not fileio.exists(path):
        return tflite_variants.gate(None, max_drop)
    with fileio.open(path, "r") as handle:
        text = handle.read()
    try:
        report = tflite_variants.load_report(text, path)
    except ValueError as err:  # unreadable figures: no variant ships, the SavedModel still does
        report = {"variants": {variant: {"error": str(err)} for variant in tflite_variants.VARIANTS}}
    return tflite_variants.gate(report, max_drop)


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
        model_path = self.GetModelPath(input_dict)
        tflite = tflite_gate(model_path, exec_properties)
        version = serving_layout.find_pushed_version(base, model_uri, fileio)
        if version is None:
            # A version TF Serving would refuse to load (malformed warm-up file) is not pushed: WarmupFileError.
            warmup.read_warmup_requests(model_path)
            version = serving_layout.new_version(base, time.time(), fileio)
            push_atomically(model_path, base, version, model_uri, tflite)
        else:  # nothing is copied: the version keeps what its first push shipped
            tflite = dataclasses.replace(tflite, notes=(*tflite.notes, f"version {version} already serves this model "
                                                        "and keeps the TFLite files of its first push"))
        print(tflite.describe(), flush=True)
        model_push.set_string_custom_property(TFLITE_PROPERTY, tflite.describe())
        io_utils.copy_dir(model_path, model_push.uri, deny_regex_patterns=tflite.deny_patterns())
        self._MarkPushed(model_push, pushed_destination=serving_layout.version_dir(base, version),
                         pushed_version=version)
