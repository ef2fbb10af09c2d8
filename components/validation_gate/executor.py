"""The validation gate's executor: loads the statistics, anomalies, schema and baseline artifacts, runs
`checks.check`, and either publishes the verdict or stops the run.

A passing (or, with `stop_on_anomalies` off, a recorded) verdict goes into the DataVerdict artifact as
`verdict.json`, with custom properties `accepted` and `statistics_id` (which `resolver` reads to find the next
run's baseline). With `accepted_statistics_root` set (compiled pipelines, which have no Resolver) accepted
statistics are also copied into that store (`components.accepted_statistics.store`), where the next run's
`AcceptedStatisticsBaseline` finds them; the entry's path is recorded in the verdict (`accepted_statistics_path`).

A stopped run keeps its reason in ML Metadata: under TFX's portable launcher (LocalDagRunner) the executor
returns an `ExecutorOutput` whose `execution_result` has code `STOPPED_CODE` and the verdict as JSON in
`result_message`; the launcher fails the execution and stores that result on it (custom property
`__execution_result__`), where `visionline last-run` reads it. Where the caller ignores `Do`'s return value
(Kubeflow's v2 container entrypoint, which gives the executor no output URI) the executor raises
`DataValidationError` instead, which fails the step just the same.
"""

from __future__ import annotations

import json
import os
from typing import Any

from tensorflow_metadata.proto.v0 import anomalies_pb2, statistics_pb2
from tfx import types
from tfx.components.statistics_gen import stats_artifact_utils
from tfx.dsl.components.base import base_executor
from tfx.proto.orchestration import execution_result_pb2
from tfx.types import artifact_utils
from tfx.utils import io_utils

from components.accepted_statistics import store
from components.accepted_statistics.executor import SOURCE_URI
from components.validation_gate.checks import DRIFT_SPLIT, DataValidationError, Verdict, check

VERDICT_FILE = "verdict.json"
ACCEPTED = "accepted"  # DataVerdict custom property: 1 when the gate let the run continue with no problem
STATISTICS_ID = "statistics_id"  # DataVerdict custom property: ML Metadata id of the ExampleStatistics checked
ACCEPTED_STATISTICS_ROOT = "accepted_statistics_root"  # exec property: the store accepted statistics go to
ACCEPTED_STATISTICS_PATH = "accepted_statistics_path"  # DataVerdict custom property / verdict.json: the entry written
STOPPED_CODE = 9  # google.rpc.Code FAILED_PRECONDITION: the data is not in the state training requires
_SCHEMA_DIFF = "SchemaDiff.pb"


def stopped_output(verdict: Verdict) -> execution_result_pb2.ExecutorOutput:
    """The ExecutorOutput that fails the gate's execution and keeps the verdict (JSON) as its result message."""
    output = execution_result_pb2.ExecutorOutput()
    output.execution_result.code = STOPPED_CODE
    output.execution_result.result_message = json.dumps({**verdict.to_dict(), "stopped": True}, ensure_ascii=False)
    return output


def _split_statistics(stats_artifact: types.Artifact) -> dict[str, statistics_pb2.DatasetFeatureStatisticsList]:
    return {split: stats_artifact_utils.load_statistics(stats_artifact, split).proto()
            for split in artifact_utils.decode_split_names(stats_artifact.split_names)}


def _split_anomalies(anomalies_artifact: types.Artifact) -> dict[str, anomalies_pb2.Anomalies]:
    found = {}
    for split in artifact_utils.decode_split_names(anomalies_artifact.split_names):
        path = os.path.join(artifact_utils.get_split_uri([anomalies_artifact], split), _SCHEMA_DIFF)
        anomalies = anomalies_pb2.Anomalies()
        anomalies.ParseFromString(io_utils.read_bytes_file(path))
        found[split] = anomalies
    return found


class Executor(base_executor.BaseExecutor):
    """Runs `check` on the gate's inputs; when it must stop, fails the execution with the verdict as its result
    (`stopped_output`), or raises `DataValidationError` where no executor output is read (see the module doc)."""

    def Do(self, input_dict: dict[str, list[types.Artifact]], output_dict: dict[str, list[types.Artifact]],
           exec_properties: dict[str, Any]) -> execution_result_pb2.ExecutorOutput | None:
        self._log_startup(input_dict, output_dict, exec_properties)
        stats_artifact = artifact_utils.get_single_instance(input_dict["statistics"])
        anomalies_artifact = artifact_utils.get_single_instance(input_dict["anomalies"])
        schema = io_utils.SchemaReader().read(
            io_utils.get_only_uri_in_dir(artifact_utils.get_single_uri(input_dict["schema"])))
        baseline, baseline_uri = None, ""
        baselines = input_dict.get("baseline_statistics") or []
        if baselines:
            baseline_artifact = baselines[0]
            if DRIFT_SPLIT in artifact_utils.decode_split_names(baseline_artifact.split_names):
                baseline = stats_artifact_utils.load_statistics(baseline_artifact, DRIFT_SPLIT).proto()
                # compiled pipelines: the accepted run's statistics the snapshot was copied from (as a Resolver's)
                baseline_uri = baseline_artifact.get_string_custom_property(SOURCE_URI) or baseline_artifact.uri
        verdict = check(
            _split_statistics(stats_artifact), _split_anomalies(anomalies_artifact), schema,
            label_feature=exec_properties["label_feature"], image_feature=exec_properties["image_feature"],
            max_label_drift=float(exec_properties["max_label_drift"]), baseline=baseline, baseline_uri=baseline_uri)
        if verdict.problems and int(exec_properties["stop_on_anomalies"]):
            if self._context is not None and self._context.executor_output_uri:
                return stopped_output(verdict)
            raise DataValidationError(verdict.problems, verdict.notes)
        output = artifact_utils.get_single_instance(output_dict["verdict"])
        published = {}
        if not verdict.problems and exec_properties.get(ACCEPTED_STATISTICS_ROOT):
            published[ACCEPTED_STATISTICS_PATH] = store.publish(exec_properties[ACCEPTED_STATISTICS_ROOT],
                                                                stats_artifact)
            output.set_string_custom_property(ACCEPTED_STATISTICS_PATH, published[ACCEPTED_STATISTICS_PATH])
        io_utils.write_string_file(os.path.join(output.uri, VERDICT_FILE), json.dumps(
            {**verdict.to_dict(), "statistics_uri": stats_artifact.uri, **published}, indent=2, ensure_ascii=False))
        output.set_int_custom_property(ACCEPTED, int(not verdict.problems))
        output.set_int_custom_property(STATISTICS_ID, int(stats_artifact.id))
        if verdict.drift is not None:
            output.set_float_custom_property("label_drift", verdict.drift.distance)
        return None
