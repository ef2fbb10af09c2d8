"""Executor of `ServedModelBaseline`: copy the newest complete version under the push destination into the output
Model artifact, in the layout TFX's Evaluator reads (`<uri>/Format-Serving`).

The copy is a snapshot: the evaluation compares against exactly the model that was served when the task ran,
even if a later push or a clean-up changes the destination meanwhile. With nothing served yet the artifact stays
empty and says so (`SERVED` = 0); `components.evaluator.executor` then evaluates without a baseline, as TFX's
Evaluator does when a Resolver finds no blessed model (absolute bounds apply, change thresholds are skipped).
"""

from __future__ import annotations

from typing import Any

from tfx import types
from tfx.dsl.components.base import base_executor
from tfx.dsl.io import fileio
from tfx.types import artifact_utils
from tfx.utils import io_utils, path_utils

from components.pusher import serving_layout

BASE_DIRECTORY = "base_directory"  # exec property: the push destination, `<serving_root>/<model_name>`
OUTPUT = "baseline_model"
SERVED = "served"  # Model custom property: 1 when a served version was copied, 0 when nothing is served
SERVED_VERSION = "served_version"  # Model custom property: the version copied
SERVED_PATH = "served_path"  # Model custom property: the version folder it was copied from


class Executor(base_executor.BaseExecutor):
    """Copies the served model (the newest complete version under `base_directory`) into the output Model."""

    def Do(self, input_dict: dict[str, list[types.Artifact]], output_dict: dict[str, list[types.Artifact]],
           exec_properties: dict[str, Any]) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        model = artifact_utils.get_single_instance(output_dict[OUTPUT])
        found = serving_layout.latest_complete_version(exec_properties[BASE_DIRECTORY], fileio)
        if found is None:
            model.set_int_custom_property(SERVED, 0)
            return
        version, path = found
        io_utils.copy_dir(path, path_utils.serving_model_dir(model.uri))
        model.set_int_custom_property(SERVED, 1)
        model.set_string_custom_property(SERVED_VERSION, version)
        model.set_string_custom_property(SERVED_PATH, path)
