"""The deployment files for the real TensorFlow Serving parse and agree with each other and with the pipeline."""

from __future__ import annotations

from pathlib import Path

import requests
import yaml
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from serving.server.config import (
    BatchingConfig,
    ServerConfig,
    VersionPolicy,
    load_models_config,
    parse_batching_config,
)
from serving.server.model_server import ServingServer
from serving.server.prometheus import parse_monitoring_config
from tests.serving.helpers import push_version

SERVING = Path(__file__).resolve().parents[2] / "serving"


def flags(args: list[str]) -> dict[str, str]:
    return dict(arg.removeprefix("--").split("=", 1) for arg in args)


def test_models_config_is_a_model_server_config():
    config = text_format.Parse((SERVING / "models.config").read_text(),
                               model_server_config_pb2.ModelServerConfig())
    (model,) = config.model_config_list.config
    assert model.name == "visionline"  # = PipelineConfig.model_name
    assert model.base_path == "/models/visionline"
    assert model.model_platform == "tensorflow"
    assert model.model_version_policy.WhichOneof("policy_choice") == "latest"
    assert model.model_version_policy.latest.num_versions == 1


def test_local_server_reads_the_same_models_config(tmp_path):
    (model,) = load_models_config(SERVING / "models.config", {"visionline": str(tmp_path)})
    assert model.name == "visionline" and model.base_path == str(tmp_path)
    assert model.policy == VersionPolicy("latest", num_versions=1)


def test_batching_config_parses():
    config = parse_batching_config((SERVING / "batching.config").read_text())
    assert isinstance(config, BatchingConfig)
    assert config.max_batch_size >= 2 and config.batch_timeout_micros > 0 and config.num_batch_threads >= 1


def test_docker_compose_runs_tf_serving_with_both_configs():
    compose = yaml.safe_load((SERVING / "docker-compose.yml").read_text())
    service = compose["services"]["tfserving"]
    assert service["image"].startswith("tensorflow/serving:")
    assert {p.rsplit(":", 1)[-1] for p in service["ports"]} == {"8500", "8501"}
    assert all(p.startswith("127.0.0.1:") for p in service["ports"])
    command = flags(service["command"])
    assert command["port"] == "8500" and command["rest_api_port"] == "8501"
    assert command["enable_batching"] == "true"
    mounts = {v.split(":")[-2] if v.endswith(":ro") else v.split(":")[-1]: v for v in service["volumes"]}
    assert command["model_config_file"] in mounts and command["batching_parameters_file"] in mounts
    assert "./models.config" in mounts[command["model_config_file"]]
    assert "./batching.config" in mounts[command["batching_parameters_file"]]
    assert "./monitoring.config" in mounts[command["monitoring_config_file"]]
    assert any(target == "/models" for target in mounts)  # the push dir, where models.config's base_path points


def test_kubernetes_manifests():
    (deployment,) = list(yaml.safe_load_all((SERVING / "k8s" / "deployment.yaml").read_text()))
    (service,) = list(yaml.safe_load_all((SERVING / "k8s" / "service.yaml").read_text()))
    assert deployment["kind"] == "Deployment" and service["kind"] == "Service"
    pod = deployment["spec"]["template"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    (container,) = pod["spec"]["containers"]
    assert container["image"].startswith("tensorflow/serving:")
    args = flags(container["args"])
    assert args["model_config_file"] == "/config/models.config"
    assert args["batching_parameters_file"] == "/config/batching.config"
    assert args["monitoring_config_file"] == "/config/monitoring.config"
    annotations = pod["metadata"]["annotations"]  # Prometheus scrapes the path serving/monitoring.config sets
    assert annotations["prometheus.io/path"] == parse_monitoring_config((SERVING / "monitoring.config").read_text())
    assert int(annotations["prometheus.io/port"]) == 8501
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"grpc": 8500, "http": 8501}
    assert {p["port"] for p in service["spec"]["ports"]} == {8500, 8501}
    assert {p["targetPort"] for p in service["spec"]["ports"]} == set(ports)
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert mounts["/models"] in volumes and mounts["/config"] in volumes
    assert args["enable_grpc_healthcheck_service"] == "true"  # the gRPC health service the probes call
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"]["port"] == ports["grpc"], probe


def test_canary_config_serves_two_labelled_versions_on_the_local_server(serving_model_dir, tmp_path):
    """models.canary.config is what TF Serving reads during a canary rollout; the local server serves it too."""
    (model,) = load_models_config(SERVING / "models.canary.config", {"visionline": str(tmp_path / "visionline")})
    labels = dict(model.version_labels)
    assert set(labels) == {"stable", "canary"} and labels["stable"] < labels["canary"]
    assert model.policy == VersionPolicy("specific", versions=tuple(sorted(labels.values())))
    for version in labels.values():
        push_version(serving_model_dir, tmp_path / "visionline", version)
    config = ServerConfig(models=(model,), rest_port=0, grpc_port=None, workers=2,
                          allow_version_labels_for_unavailable_models=True)  # as the deployment files run it
    with ServingServer(config) as server:
        for label, version in labels.items():
            response = requests.get(f"{server.rest_url}/v1/models/visionline/labels/{label}/metadata", timeout=30)
            assert response.status_code == 200 and response.json()["model_spec"]["version"] == str(version)


def test_deployments_allow_new_labels_for_versions_still_loading():
    compose = yaml.safe_load((SERVING / "docker-compose.yml").read_text())
    assert flags(compose["services"]["tfserving"]["command"])["allow_version_labels_for_unavailable_models"] == "true"
    deployment = yaml.safe_load((SERVING / "k8s" / "deployment.yaml").read_text())
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert flags(container["args"])["allow_version_labels_for_unavailable_models"] == "true"
    canary = text_format.Parse((SERVING / "models.canary.config").read_text(),
                               model_server_config_pb2.ModelServerConfig())
    assert dict(canary.model_config_list.config[0].version_labels).keys() == {"stable", "canary"}
