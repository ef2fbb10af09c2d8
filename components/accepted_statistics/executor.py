"""Executor of `AcceptedStatisticsBaseline`: copy the newest complete entry of the accepted-statistics store into
the output ExampleStatistics artifact, in StatisticsGen's layout (`Split-<name>/FeatureStats.pb`), for the
ValidationGate's `baseline_statistics`.

The copy is a snapshot: the gate compares with exactly the statistics that were newest when this task ran, even if
another run accepts data meanwhile. With no entry yet the artifact has no splits and says so (`FOUND` = 0); the gate
then reports "label drift not checked: no earlier run passed this gate (first run)", as it does locally when the
Resolver finds nothing. Either way `BASELINE_FILE` in the artifact says what was read.
"""

from __future__ import annotations

import json
import os
from typing import Any

from tfx import types
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils
from tfx.utils import io_utils

from components.accepted_statistics import store

STORE = "store"  # exec property: the store's folder, `<pipeline root>/accepted_statistics`
OUTPUT = "baseline_statistics"
FOUND = "found"  # ExampleStatistics custom property: 1 when an accepted entry was copied, 0 when there is none
ACCEPTED_PATH = "accepted_path"  # ExampleStatistics custom property: the entry copied
SOURCE_URI = "source_uri"  # ExampleStatistics custom property: the statistics artifact the gate accepted
BASELINE_FILE = "accepted_statistics.json"  # in the output artifact: what was read (or that nothing was)


class Executor(base_executor.BaseExecutor):
    """Copies the newest accepted statistics under `store` into the output ExampleStatistics."""

    def Do(self, input_dict: dict[str, list[types.Artifact]], output_dict: dict[str, list[types.Artifact]],
           exec_properties: dict[str, Any]) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        statistics = artifact_utils.get_single_instance(output_dict[OUTPUT])
        entry = store.latest(exec_properties[STORE])
        record: dict[str, Any] = {"store": exec_properties[STORE], "found": entry is not None}
        if entry is None:
            statistics.split_names = artifact_utils.encode_split_names([])
            statistics.set_int_custom_property(FOUND, 0)
        else:
            for split in entry.split_names:
                io_utils.copy_dir(store.split_folder(entry.path, split), store.split_folder(statistics.uri, split))
            statistics.split_names = artifact_utils.encode_split_names(entry.split_names)
            statistics.set_int_custom_property(FOUND, 1)
            statistics.set_string_custom_property(ACCEPTED_PATH, entry.path)
            statistics.set_string_custom_property(SOURCE_URI, entry.source_uri)
            record.update(path=entry.path, source_uri=entry.source_uri, accepted_at=entry.accepted_at,
                          split_names=entry.split_names)
        io_utils.write_string_file(os.path.join(statistics.uri, BASELINE_FILE), json.dumps(record, indent=2))
