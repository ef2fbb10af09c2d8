"""Per-task pod resources from `kubeflow.resources`: validated in the config, carried by the compiled PipelineSpec
(both the quantity strings newer KFP drivers read and the numbers KFP 2.0–2.3 and Vertex read) for every task,
ImageExampleGen included — where TFX's own `with_platform_config` is dropped (tfx #6146, checked here)."""

from __future__ import annotations

import json

import pytest
from google.protobuf import json_format
from kfp import components as kfp_components
from kfp.pipeline_spec import pipeline_spec_pb2

from pipeline import cli, kfp_local, kubeflow_runner
from pipeline.configs import ConfigError, PipelineConfig
from pipeline.demo_data import DEMO_SCHEMA

IMAGE = "europe-docker.pkg.dev/acme/ml/visionline:0.1.0"
RESOURCES = ("kubeflow.resources={Trainer: {cpu: 4, memory: 16Gi, gpu: 1}, Tuner: {cpu: 500m, gpu: 2}, "
             "ImageExampleGen: {cpu: 2, memory: 8G, memory_limit: 12G}, Transform: {cpu_limit: 3}}")


def _config(digits_root, *overrides):
    return PipelineConfig().override([
        "preset=demo", f"data.root={digits_root}", "work_dir=gs://acme-ml/visionline",
        f"data.schema_path={DEMO_SCHEMA}", *overrides])


def _executors(spec: dict):
    """Each task's container spec, parsed as KFP parses the compiled file."""
    parsed = json_format.ParseDict(spec, pipeline_spec_pb2.PipelineSpec())
    deployment = json_format.ParseDict(json_format.MessageToDict(parsed.deployment_spec),
                                       pipeline_spec_pb2.PipelineDeploymentConfig())
    return {name: deployment.executors[parsed.components[task.component_ref.name].executor_label].container
            for name, task in parsed.root.dag.tasks.items()}


@pytest.fixture(scope="module")
def compiled(digits_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("kfp") / "pipeline.json"
    kubeflow_runner.compile_for_cluster(_config(digits_root, RESOURCES), str(out), IMAGE)
    return str(out)


def test_compiled_spec_carries_each_tasks_resources(compiled):
    spec = kubeflow_runner.load_spec(compiled)  # the file as written
    containers = _executors(spec)
    trainer = containers["Trainer"].resources
    assert (trainer.resource_cpu_request, trainer.resource_memory_request) == ("4", "16Gi")
    assert (trainer.cpu_request, trainer.memory_request) == (4.0, pytest.approx(16 * 2**30 / 1e9))  # KFP ≤ 2.3: GB
    assert (trainer.accelerator.resource_type, trainer.accelerator.resource_count) == ("nvidia.com/gpu", "1")
    assert (trainer.accelerator.type, trainer.accelerator.count) == ("nvidia.com/gpu", 1)  # KFP ≤ 2.3's fields
    assert not trainer.resource_cpu_limit and not trainer.cpu_limit  # only what was asked for
    tuner = containers["Tuner"].resources
    assert (tuner.resource_cpu_request, tuner.cpu_request, tuner.accelerator.count) == ("500m", 0.5, 2)
    example_gen = containers["ImageExampleGen"].resources  # TFX's platform config would be dropped here
    assert (example_gen.resource_memory_request, example_gen.resource_memory_limit) == ("8G", "12G")
    assert (example_gen.memory_request, example_gen.memory_limit, example_gen.cpu_request) == (8.0, 12.0, 2.0)
    assert not example_gen.HasField("accelerator")
    assert (containers["Transform"].resources.resource_cpu_limit, containers["Transform"].resources.cpu_limit) \
        == ("3", 3.0)
    untouched = {name for name, container in containers.items() if not container.HasField("resources")}
    assert untouched == set(containers) - {"Trainer", "Tuner", "ImageExampleGen", "Transform"}
    # kfp's own loader (what kfp.local and `kfp.Client` use) reads the file with them
    loaded = kfp_components.load_component_from_text(json.dumps(kfp_local.kfp_local_names(spec)))
    assert loaded.pipeline_spec.deployment_spec["executors"]["Trainer_executor"]["container"]["resources"] \
        ["resourceCpuRequest"] == "4"


def test_accelerator_is_a_kubernetes_resource_on_kfp_and_a_gpu_type_on_vertex(digits_root, tmp_path):
    t4 = "kubeflow.resources={Trainer: {gpu: 1, accelerator: NVIDIA_TESLA_T4}}"
    with pytest.raises(ConfigError, match=r"kubeflow\.resources\.Trainer\.accelerator: 'NVIDIA_TESLA_T4' is not a "
                                          r"Kubernetes resource name"):
        kubeflow_runner.compile_for_cluster(_config(digits_root, t4), str(tmp_path / "k.json"), IMAGE)
    compiled = kubeflow_runner.compile_for_cluster(_config(digits_root, t4), str(tmp_path / "v.json"), IMAGE,
                                                   target="vertex")
    accelerator = _executors(compiled.spec)["Trainer"].resources.accelerator
    assert (accelerator.type, accelerator.count, accelerator.resource_type) == ("NVIDIA_TESLA_T4", 1, "NVIDIA_TESLA_T4")
    assert "NVIDIA_TESLA_T4" in open(tmp_path / "v.json").read()  # in the PipelineJob Vertex receives
    amd = "kubeflow.resources={Tuner: {gpu: 1, accelerator: amd.com/gpu}}"
    compiled = kubeflow_runner.compile_for_cluster(_config(digits_root, amd), str(tmp_path / "a.json"), IMAGE)
    assert _executors(compiled.spec)["Tuner"].resources.accelerator.resource_type == "amd.com/gpu"
    with pytest.raises(ConfigError, match=r"kubeflow\.resources\.Trainer\.accelerator: Vertex needs"):
        kubeflow_runner.compile_for_cluster(_config(digits_root, "kubeflow.resources={Trainer: {gpu: 1}}"),
                                            str(tmp_path / "n.json"), IMAGE, target="vertex")
    with pytest.raises(ConfigError, match=r"kubeflow\.resources\.SchemaGen: this pipeline has no SchemaGen task"):
        kubeflow_runner.compile_for_cluster(_config(digits_root, "kubeflow.resources={SchemaGen: {cpu: 1}}"),
                                            str(tmp_path / "s.json"), IMAGE)  # a curated schema: ImportSchemaGen


def test_a_gpu_the_image_cannot_use_is_warned_about(digits_root, tmp_path, capsys):
    gpu = "kubeflow.resources={Trainer: {gpu: 1}, Tuner: {gpu: 1}}"
    compiled = kubeflow_runner.compile_for_cluster(_config(digits_root, gpu, "train.device=cpu"),
                                                   str(tmp_path / "g.json"), IMAGE)
    assert "kubeflow.resources: Trainer, Tuner get a GPU, but train.device=cpu hides it" in compiled.warnings
    auto = kubeflow_runner.compile_for_cluster(_config(digits_root, gpu), str(tmp_path / "a.json"), IMAGE).warnings
    build = [w for w in auto if "--build-arg GPU=1" in w]  # the default image has no CUDA libraries
    assert len(build) == 1 and build[0].startswith("kubeflow.resources: Trainer, Tuner get a GPU")
    insist = kubeflow_runner.compile_for_cluster(_config(digits_root, gpu, "train.device=gpu"),
                                                 str(tmp_path / "i.json"), IMAGE).warnings
    assert not [w for w in insist if "kubeflow.resources" in w]  # a CPU-only image then fails the Trainer loudly
    assert not [w for w in kubeflow_runner.compile_for_cluster(_config(digits_root), str(tmp_path / "c.json"),
                                                               IMAGE).warnings if "kubeflow.resources" in w]


@pytest.mark.parametrize(("value", "message"), [
    ("{Trainr: {cpu: 4}}", r"kubeflow\.resources\.Trainr: not a task of the visionline pipeline"),
    ("{Trainer: {gpus: 1}}", r"kubeflow\.resources\.Trainer: unknown key\(s\) gpus"),
    ("{Trainer: {cpu: lots}}", r"kubeflow\.resources\.Trainer\.cpu: 'lots' is not a CPU quantity"),
    ("{Trainer: {memory: 16GB}}", r"kubeflow\.resources\.Trainer\.memory: '16GB' is not a memory quantity"),
    ("{Trainer: {gpu: 0.5}}", r"kubeflow\.resources\.Trainer\.gpu: '0\.5' is not a whole number"),
    ("{Trainer: {accelerator: nvidia.com/gpu}}", r"kubeflow\.resources\.Trainer\.accelerator: set gpu too"),
    ("{Trainer: {memory: 4Gi, memory_limit: 2Gi}}", r"kubeflow\.resources\.Trainer\.memory_limit: 2Gi is below"),
    ("{Trainer: 4}", r"kubeflow\.resources must map names to mappings"),
])
def test_bad_resources_are_named(value, message):
    with pytest.raises(ConfigError, match=message):
        PipelineConfig().override(["data.root=/data", f"kubeflow.resources={value}"]).validate()


def test_config_shows_the_resources(capsys, tmp_path):
    config = tmp_path / "prod.yaml"
    config.write_text("kubeflow:\n  resources:\n    Trainer: {cpu: 4, memory: 16Gi, gpu: 1}\n")
    assert cli.main(["config", "--config", str(config), "--data", str(tmp_path)]) == 0
    shown = capsys.readouterr().out
    assert "kubeflow" in shown and "16Gi" in shown


def test_tfx_drops_the_platform_config_of_example_gen(digits_root):
    """Why `kubeflow_resources.apply` writes the compiled spec itself: TFX 1.16's Kubeflow V2 step builder keeps a
    component's `with_platform_config` ResourceSpec, except FileBasedExampleGen's (ImageExampleGen)."""
    from tfx import v1 as tfx
    from tfx.orchestration import data_types

    from pipeline.pipeline import create_pipeline

    config = kubeflow_runner.cluster_config(_config(digits_root), IMAGE)
    pipeline = create_pipeline(config, layout=kubeflow_runner.cluster_layout(config), parameter=lambda name, value:
                               data_types.RuntimeParameter(name=name, ptype=str,
                                                           default=kubeflow_runner.parameter_value(value)))
    resources = pipeline_spec_pb2.PipelineDeploymentConfig.PipelineContainerSpec.ResourceSpec(cpu_limit=2.0)
    for component in pipeline.components:
        if component.id in ("ImageExampleGen", "Trainer"):
            component.with_platform_config(resources)
    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(default_image=IMAGE,
                                                                        use_pipeline_spec_2_1=True))
    spec = runner.run(pipeline, write_out=False)["pipelineSpec"]
    containers = _executors(spec)
    assert containers["Trainer"].resources.cpu_limit == 2.0
    assert not containers["ImageExampleGen"].HasField("resources")
