"""kfp.local with the project standing in for the image (pipeline/kfp_local.py), unit level: a task's command as
kfp.local resolves it and as the handler runs it (input artifact types, interpreter, image paths), one real task
(ImportSchemaGen) executed through kfp.local, the ValidationGate's entrypoint, the image's ENV, and the CLI's
parameter check. The whole compiled pipeline runs in tests/e2e/test_kfp_local.py."""

from __future__ import annotations

import json
import sys

import pytest
from google.protobuf import json_format, struct_pb2
from kfp.local import config as local_config
from kfp.local import executor_input_utils, executor_output_utils, placeholder_utils, subprocess_task_handler
from kfp.local import utils as local_utils
from kfp.pipeline_spec import pipeline_spec_pb2
from tfx.orchestration.kubeflow.v2 import compiler_utils
from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_entrypoint_utils as entrypoint
from tfx.types import standard_artifacts

from components.validation_gate.component import DataVerdict
from pipeline import cli, kfp_entrypoint, kfp_local, kubeflow_runner
from pipeline.configs import ConfigError, PipelineConfig
from pipeline.demo_data import DEMO_SCHEMA
from tests.pipeline.test_dockerfile import ROOT, env_values, parse_dockerfile, stages


@pytest.fixture(scope="module")
def compiled(digits_root, tmp_path_factory):
    work = tmp_path_factory.mktemp("work")
    config = PipelineConfig().override(["preset=demo", f"data.root={digits_root}", f"work_dir={work}",
                                        f"data.schema_path={DEMO_SCHEMA}", "beam.direct_running_mode=in_memory"])
    return kubeflow_runner.compile_for_cluster(config, str(tmp_path_factory.mktemp("kfp") / "p.json"))


def _kfp_local_command(spec, task, arguments, task_root):
    """The resolved command kfp.local hands a task handler, built with kfp.local's own functions."""
    proto = json_format.ParseDict(spec, pipeline_spec_pb2.PipelineSpec())
    component = proto.components[task]
    executor = local_utils.struct_to_executor_spec(proto.deployment_spec["executors"][component.executor_label])
    executor_input = executor_input_utils.construct_executor_input(component, arguments, str(task_root),
                                                                   block_input_artifact=False)
    return placeholder_utils.replace_placeholders(
        list(executor.container.command) + list(executor.container.args),
        executor_input_utils.executor_input_to_dict(executor_input, component),
        "visionline-test", task, str(task_root.parent), "1")


def _inputs(command):
    executor_input = json_format.Parse(command[command.index(kfp_local.INVOCATION_FLAG) + 1],
                                       pipeline_spec_pb2.ExecutorInput())
    return entrypoint.parse_raw_artifact_dict(executor_input.inputs.artifacts)


def test_input_artifacts_reach_the_task_with_their_declared_type(compiled, tmp_path):
    """kfp.local hands StatisticsGen ImageExampleGen's Examples typed `system.Artifact`, which TFX's entrypoint
    cannot import; the handler's command types it as the spec declares, keeping URI and metadata."""
    spec = compiled.spec
    declared = spec["components"]["ImageExampleGen"]["outputDefinitions"]["artifacts"]["examples"]["artifactType"]
    produced = pipeline_spec_pb2.RuntimeArtifact(  # ImageExampleGen's output, as kfp.local reads it back
        name="examples", uri=str(tmp_path / "ImageExampleGen" / "examples"),
        type=json_format.ParseDict(declared, pipeline_spec_pb2.ArtifactTypeSchema()),
        metadata=json_format.ParseDict({"split_names": '["train", "eval"]', "span": 0.0}, struct_pb2.Struct()))
    upstream = executor_output_utils.artifact_list_to_dsl_artifact(
        pipeline_spec_pb2.ArtifactList(artifacts=[produced]), is_artifact_list=False)
    command = _kfp_local_command(spec, "StatisticsGen", {"examples": upstream, "exclude_splits": "[]"},
                                 tmp_path / "StatisticsGen")
    with pytest.raises(ImportError, match="system.Artifact"):
        _inputs(command)  # what TFX's entrypoint does with kfp.local's command as it is

    runnable = kfp_local.task_command(command)
    examples = _inputs(runnable)["examples"][0]
    assert isinstance(examples, standard_artifacts.Examples)
    assert examples.uri == produced.uri and examples.split_names == '["train", "eval"]'
    assert runnable[0] == sys.executable and runnable[1:3] == ["-m", command[2]]


def test_task_command_refuses_what_it_cannot_run():
    with pytest.raises(ConfigError, match="not a Python task"):
        kfp_local.task_command(["/bin/sh", "-c", "true"])
    with pytest.raises(ConfigError, match="no --json_serialized_invocation_args"):
        kfp_local.task_command(["python", "-m", "something"])


def test_a_compiled_task_runs_through_kfp_local(compiled, tmp_path):
    """ImportSchemaGen alone, executed by kfp.local with the handler: the curated schema, which the spec names
    inside the image (/opt/visionline/…), is read from this checkout; kfp.local's own handler and global config
    are restored afterwards."""
    spec = json.loads(json.dumps(compiled.spec))
    spec["root"]["dag"]["tasks"] = {"ImportSchemaGen": spec["root"]["dag"]["tasks"]["ImportSchemaGen"]}
    path = tmp_path / "one_task.json"
    path.write_text(json.dumps(spec))
    run = kfp_local.run_compiled(str(path), pipeline_root=str(tmp_path / "root"))
    [task] = run.tasks
    assert (task.name, task.returncode, run.failed, run.expected_tasks) == ("ImportSchemaGen", 0, None, 1)
    schema = task.output_artifact("schema")
    assert (tmp_path / "root").as_posix() in schema["uri"]
    assert open(f"{schema['uri']}/schema.pbtxt").read() == open(DEMO_SCHEMA).read()
    assert "Starting executor" in open(task.log_path).read()
    assert local_config.LocalExecutionConfig.instance is None
    assert subprocess_task_handler.SubprocessTaskHandler.__name__ == "SubprocessTaskHandler"


def test_run_refuses_a_remote_pipeline_root_and_unknown_parameters(compiled):
    with pytest.raises(ConfigError, match="local folders only"):
        kfp_local.run_compiled(compiled.path, pipeline_root="gs://bucket/root")
    with pytest.raises(ConfigError, match="not a parameter"):
        kfp_local.run_compiled(compiled.path, {"epochs": "3"})


def test_validation_gate_runs_an_entrypoint_that_can_import_its_verdict_type(compiled, monkeypatch):
    """TFX's entrypoint imports a custom type's schema title as a class path: `visionline.DataVerdict` is not one.
    The compiled ValidationGate runs pipeline.kfp_entrypoint, which registers it first."""
    spec = compiled.spec
    container = spec["deploymentSpec"]["executors"]["ValidationGate_executor"]["container"]
    assert container["command"] == ["python", "-m", kfp_entrypoint.MODULE]
    declared = spec["components"]["ValidationGate"]["outputDefinitions"]["artifacts"]["verdict"]["artifactType"]
    artifact_type = json_format.ParseDict(declared, pipeline_spec_pb2.ArtifactTypeSchema())
    verdict = pipeline_spec_pb2.ArtifactList(
        artifacts=[pipeline_spec_pb2.RuntimeArtifact(name="verdict", uri="/tmp/verdict", type=artifact_type)])
    with pytest.raises(ImportError, match="visionline.DataVerdict"):
        entrypoint.parse_raw_artifact_dict({"verdict": verdict})
    monkeypatch.setattr(compiler_utils, "TITLE_TO_CLASS_PATH", dict(compiler_utils.TITLE_TO_CLASS_PATH))
    kfp_entrypoint.register()
    assert isinstance(entrypoint.parse_raw_artifact_dict({"verdict": verdict})["verdict"][0], DataVerdict)


def test_the_emulated_environment_is_the_images():
    image_env = env_values(stages(parse_dockerfile((ROOT / "Dockerfile").read_text()))[-1])
    assert {name: image_env[name] for name in kfp_local.IMAGE_ENV} == kfp_local.IMAGE_ENV
    env = kfp_local.task_environment({"PYTHONPATH": "/elsewhere", "TF_USE_LEGACY_KERAS": "0"})
    assert env["PYTHONPATH"].split(":") == [str(kubeflow_runner.REPO_ROOT), "/elsewhere"]
    assert env["TF_USE_LEGACY_KERAS"] == "1"


def test_cli_checks_parameters_before_running(compiled, capsys):
    args = cli.build_parser().parse_args(["kfp-local", "--pipeline-json", compiled.path, "--param", "nope=1"])
    assert cli.dispatch(args) == 2 and "not a runtime parameter" in capsys.readouterr().err
