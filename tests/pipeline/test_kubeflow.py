"""Kubeflow Pipelines: the compiled spec (DAG, image, runtime parameters and their defaults), runtime overrides,
the ExampleGen task run the way KFP's launcher runs it, schedule/submit requests (dry-run objects, and the kfp
client against a fake KFP API server on 127.0.0.1), and the CLI round trip."""

from __future__ import annotations

import argparse
import email.parser
import email.policy
import glob
import json
import os
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import kfp_server_api
import pytest
import tensorflow as tf
import tensorflow_model_analysis as tfma
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2
from tfx.utils import json_utils, proto_utils

from pipeline import cli, kfp_client, kubeflow_runner
from pipeline.cli import kubeflow
from pipeline.configs import ConfigError, PipelineConfig
from pipeline.eval_config import eval_config

IMAGE = "europe-docker.pkg.dev/acme/ml/visionline:0.1.0"
TASKS = {
    "ImageExampleGen": [],
    "StatisticsGen": ["ImageExampleGen"],
    "ImportSchemaGen": [],
    "ExampleValidator": ["ImportSchemaGen", "StatisticsGen"],
    "AcceptedStatisticsBaseline": [],  # the statistics the gate last accepted: the drift baseline without a Resolver
    "ValidationGate": ["AcceptedStatisticsBaseline", "ExampleValidator", "ImportSchemaGen", "StatisticsGen"],
    "Transform": ["ImageExampleGen", "ImportSchemaGen", "ValidationGate"],
    "Tuner": ["ImageExampleGen", "ImportSchemaGen", "Transform"],
    "Trainer": ["ImageExampleGen", "ImportSchemaGen", "Transform", "Tuner"],
    "ServedModelBaseline": ["Trainer"],  # the model served now: the no-regression baseline without a Resolver
    "Evaluator": ["ImageExampleGen", "ServedModelBaseline", "Trainer"],
    "Pusher": ["Evaluator", "Trainer"],
}


@pytest.fixture(scope="module")
def cluster_config(digits_root):
    from pipeline.demo_data import DEMO_SCHEMA

    return PipelineConfig().override([
        "preset=demo", f"data.root={digits_root}", "work_dir=gs://acme-ml/visionline",
        f"data.schema_path={DEMO_SCHEMA}",
        "train.epochs=7", "eval.min_kappa=0.6", "beam.direct_running_mode=in_memory"])


@pytest.fixture(scope="module")
def compiled(cluster_config, tmp_path_factory):
    out = tmp_path_factory.mktemp("kfp") / "pipeline.json"
    return kubeflow_runner.compile_for_cluster(cluster_config, str(out), IMAGE)


def _spec(path):
    with open(path) as handle:
        return json_format.ParseDict(json.load(handle), pipeline_spec_pb2.PipelineSpec())


def _executors(spec):
    """deploymentSpec is a Struct in PipelineSpec: read it as the PipelineDeploymentConfig it holds."""
    deployment = json_format.ParseDict(json_format.MessageToDict(spec.deployment_spec),
                                       pipeline_spec_pb2.PipelineDeploymentConfig())
    return deployment.executors


def test_compiled_file_is_a_kfp_pipeline_spec_with_the_whole_dag(compiled):
    spec = _spec(compiled.path)  # the file KFP uploads: a bare PipelineSpec, schema 2.1.0 (KFP 2.x's only one)
    assert spec.pipeline_info.name == "visionline" and spec.schema_version == "2.1.0"
    tasks = spec.root.dag.tasks
    assert {name: sorted(task.dependent_tasks) for name, task in tasks.items()} == TASKS
    # open-source KFP cannot execute `resolver` executors: the baseline is the served model, read by a container
    # task that is never cached, and the Evaluator runs visionline's executor (an empty baseline is none)
    executors = _executors(spec)
    assert not any(e.HasField("resolver") for e in executors.values())
    baseline = tasks["Evaluator"].inputs.artifacts["baseline_model"].task_output_artifact
    assert (baseline.producer_task, baseline.output_artifact_key) == ("ServedModelBaseline", "baseline_model")
    assert not tasks["ServedModelBaseline"].caching_options.enable_cache
    served = list(executors["ServedModelBaseline_executor"].container.args)
    assert served[served.index("--executor_class_path") + 1] == "components.served_baseline.executor.Executor"
    evaluator = list(executors["Evaluator_executor"].container.args)
    assert evaluator[evaluator.index("--executor_class_path") + 1] == "components.evaluator.executor.Executor"
    assert tasks["ServedModelBaseline"].inputs.parameters["base_directory"].runtime_value.constant.string_value \
        == "gs://acme-ml/visionline/serving/visionline"
    assert tasks["Pusher"].inputs.artifacts["model_blessing"].task_output_artifact.producer_task == "Evaluator"
    assert not tasks["ImageExampleGen"].caching_options.enable_cache and tasks["Trainer"].caching_options.enable_cache
    for name, task in tasks.items():
        container = executors[spec.components[task.component_ref.name].executor_label].container
        assert container.image == IMAGE, name
        # TFX's V2 entrypoint; the ValidationGate's (it publishes visionline.DataVerdict): TFX's after registering
        # the project's artifact types (pipeline/kfp_entrypoint.py)
        entrypoint = "pipeline.kfp_entrypoint" if name == "ValidationGate" else \
            "tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor"
        assert container.command[-1] == entrypoint, name
    args = list(executors["ImageExampleGen_executor"].container.args)
    assert args[args.index("--executor_class_path") + 1] == "components.example_gen.executor.Executor"
    assert "--direct_running_mode=in_memory" in args  # beam.pipeline_args() baked in
    # the DirectRunner in the pod runs its workers in the pipeline image: named, so TFX builds no package of itself
    assert [a for a in args if a.startswith("--sdk_container_image")] == [f"--sdk_container_image={IMAGE}"]
    assert tasks["ImportSchemaGen"].inputs.parameters["schema_file"].runtime_value.constant.string_value == \
        "/opt/visionline/schema/digits/schema.pbtxt"  # the curated schema, inside the image
    assert spec.default_pipeline_root == "gs://acme-ml/visionline/pipelines/visionline"


def test_label_drift_baseline_is_the_store_the_gate_fills(compiled):
    """No Resolver on KFP: the gate copies what it accepts into `<pipeline root>/accepted_statistics` and a task that
    is never cached reads the newest entry back as the gate's `baseline_statistics`."""
    spec = _spec(compiled.path)
    tasks, executors = spec.root.dag.tasks, _executors(spec)
    store = "gs://acme-ml/visionline/pipelines/visionline/accepted_statistics"
    baseline = tasks["ValidationGate"].inputs.artifacts["baseline_statistics"].task_output_artifact
    assert (baseline.producer_task, baseline.output_artifact_key) == \
        ("AcceptedStatisticsBaseline", "baseline_statistics")
    assert not tasks["AcceptedStatisticsBaseline"].caching_options.enable_cache
    assert tasks["AcceptedStatisticsBaseline"].inputs.parameters["store"].runtime_value.constant.string_value == store
    assert tasks["ValidationGate"].inputs.parameters["accepted_statistics_root"].runtime_value.constant.string_value \
        == store
    args = list(executors["AcceptedStatisticsBaseline_executor"].container.args)
    assert args[args.index("--executor_class_path") + 1] == "components.accepted_statistics.executor.Executor"


def test_runtime_parameters_are_wired_with_defaults(compiled, cluster_config, digits_root):
    spec = _spec(compiled.path)
    params = spec.root.input_definitions.parameters
    assert set(params) == {"data_root", "transform_config", "train_config", "eval_config"}
    for name, param in params.items():
        assert param.parameter_type == pipeline_spec_pb2.ParameterType.STRING and param.is_optional, name
    defaults = {name: param.default_value.string_value for name, param in params.items()}
    assert defaults == compiled.defaults
    assert defaults["data_root"] == str(digits_root)
    train = json.loads(defaults["train_config"])
    assert (train["epochs"], train["model"], train["tuner"]["enabled"]) == (7, "simple_cnn", False)
    assert json.loads(defaults["transform_config"])["normalization"] == "zero_one"
    evaluation = proto_utils.json_to_proto(defaults["eval_config"], tfma.EvalConfig())
    assert evaluation == eval_config(cluster_config)
    wiring = {(task_name, key): value.component_input_parameter
              for task_name, task in spec.root.dag.tasks.items()
              for key, value in task.inputs.parameters.items() if value.component_input_parameter}
    assert wiring == {("ImageExampleGen", "input_base"): "data_root",
                      ("Transform", "custom_config"): "transform_config",
                      ("Tuner", "custom_config"): "train_config",
                      ("Trainer", "custom_config"): "train_config",
                      ("Evaluator", "eval_config"): "eval_config"}


def test_compile_writes_nothing_but_the_spec(digits_root, tmp_path):
    work = tmp_path / "work"
    config = PipelineConfig().override([f"data.root={digits_root}", f"work_dir={work}"])
    out = tmp_path / "out" / "spec.yaml"
    compiled = kubeflow_runner.compile_for_cluster(config, str(out), IMAGE)
    assert not work.exists()  # no wheels staged under the pipeline root, no ML Metadata folder
    assert os.listdir(tmp_path) == ["out"] and os.listdir(out.parent) == ["spec.yaml"]
    assert kubeflow_runner.load_spec(str(out))["pipelineInfo"]["name"] == "visionline"  # YAML too
    assert any("is a path on this machine" in w for w in compiled.warnings)
    assert not any("keep_runs" in w for w in compiled.warnings)
    pruning = kubeflow_runner.compile_for_cluster(config.override(["keep_runs=3"]), str(out), IMAGE)
    assert "keep_runs=3 prunes local runs only (`visionline prune`); a compiled pipeline keeps every run's " \
           "artifacts: give its pipeline root's bucket a lifecycle rule" in pruning.warnings


def test_vertex_target_writes_a_pipeline_job_with_the_served_baseline(cluster_config, tmp_path):
    out = tmp_path / "job.json"
    compiled = kubeflow_runner.compile_for_cluster(cluster_config, str(out), IMAGE, target="vertex")
    job = json.loads(out.read_text())
    assert set(job) >= {"pipelineSpec", "runtimeConfig"}
    assert job["runtimeConfig"]["parameterValues"]["train_config"] == compiled.defaults["train_config"]
    tasks = job["pipelineSpec"]["root"]["dag"]["tasks"]
    assert "ServedModelBaseline" in tasks["Evaluator"]["dependentTasks"]
    assert tasks["ServedModelBaseline"]["cachingOptions"] == {"enableCache": False}
    assert not any("resolver" in executor for executor in job["pipelineSpec"]["deploymentSpec"]["executors"].values())


def test_declared_layout_for_data_the_compiler_cannot_read():
    config = PipelineConfig().override(["data.root=gs://acme/images/", "data.format=folders"])
    assert kubeflow_runner.cluster_layout(config).split_patterns == {"all": "*/*"}
    presplit = kubeflow_runner.cluster_layout(config, ["train", "test"])
    assert (presplit.input_base, presplit.split_patterns) == ("gs://acme/images",
                                                              {"train": "train/*/*", "eval": "test/*/*"})
    three = kubeflow_runner.cluster_layout(config, ["train", "val", "test"])
    assert three.split_patterns == {"train": "train/*/*", "val": "val/*/*", "eval": "test/*/*"}
    with pytest.raises(ConfigError, match="--splits needs two folder names, TRAIN,EVAL .* or three, TRAIN,VAL,TEST"):
        kubeflow_runner.cluster_layout(config, ["train"])
    csv = PipelineConfig().override(["data.root=gs://acme/labels.csv", "data.format=csv"])
    assert kubeflow_runner.cluster_layout(csv).split_patterns == {"all": "labels.csv"}
    with pytest.raises(ConfigError, match="data.split_column: the manifest must be readable at compile time"):
        kubeflow_runner.cluster_layout(csv.override(["data.split_column=split"]))
    with pytest.raises(ConfigError, match="data.format"):
        kubeflow_runner.cluster_layout(PipelineConfig().override(["data.root=gs://a/b"]), ["train", "test"])


def test_overrides_rebuild_parameters_from_the_compiled_defaults(compiled):
    defaults = compiled.defaults
    assert kubeflow_runner.apply_overrides(defaults, []) == {}
    assert kubeflow_runner.apply_overrides(defaults, ["train.epochs=7", "eval.min_kappa=0.6"]) == {}  # no change
    values = kubeflow_runner.apply_overrides(defaults, [
        "train.epochs=3", "tuner.enabled=true", "train.model=efficientnet_lite0", "transform.image_size=64",
        "eval.min_accuracy=0.9", "data.root=gs://acme/images-2026-11"])
    assert set(values) == {"data_root", "transform_config", "train_config", "eval_config"}
    train, transform = json.loads(values["train_config"]), json.loads(values["transform_config"])
    assert (train["epochs"], train["tuner"]["enabled"], train["model"]) == (3, True, "efficientnet_lite0")
    assert train["weights"] == "imagenet" and transform["normalization"] == train["normalization"] == "lite"
    assert transform["image_size"] == train["image_size"] == 64
    assert train["code_fingerprint"] == json.loads(defaults["train_config"])["code_fingerprint"]
    gates = {m.class_name: m.per_slice_thresholds[0].threshold for m in
             proto_utils.json_to_proto(values["eval_config"], tfma.EvalConfig()).metrics_specs[0].metrics
             if m.per_slice_thresholds}
    assert gates["SparseCategoricalAccuracy"].value_threshold.lower_bound.value == 0.9
    assert gates["CohenKappa"].value_threshold.lower_bound.value == 0.6  # unchanged
    assert values["data_root"] == "gs://acme/images-2026-11"
    assert kubeflow_runner.apply_overrides(defaults, ["data_root=gs://x"]) == {"data_root": "gs://x"}
    for bad in ("beam.runner=DataflowRunner", "epochs=3", "train_config={not json", "train.epochs=0"):
        with pytest.raises(ConfigError):
            kubeflow_runner.apply_overrides(defaults, [bad])


def _executor_input(spec, task_name, values, tmp_path):
    """What KFP's driver hands a task: its parameters resolved from the run's root values, fresh output URIs."""
    task = spec["root"]["dag"]["tasks"][task_name]
    component = spec["components"][task["componentRef"]["name"]]
    parameters = {}
    for key, value in task["inputs"].get("parameters", {}).items():
        parameters[key] = (values[value["componentInputParameter"]] if "componentInputParameter" in value
                           else value["runtimeValue"]["constant"])
    outputs = {key: {"artifacts": [{"name": f"{task_name}-{key}", "type": artifact["artifactType"],
                                    "uri": str(tmp_path / task_name / key)}]}
               for key, artifact in component["outputDefinitions"]["artifacts"].items()}
    return {"inputs": {"parameterValues": parameters},
            "outputs": {"artifacts": outputs, "outputFile": str(tmp_path / task_name / "executor_output.json")}}


def test_example_gen_task_runs_as_kfp_launches_it_with_a_runtime_data_root(compiled, digits_root, tmp_path):
    """The container command and args of the compiled ExampleGen, `{{$}}` replaced as KFP's launcher does, with
    `data_root` given at run time: TFX's V2 entrypoint runs our executor on it."""
    from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_run_executor

    subset = tmp_path / "digits"
    for label in ("0", "1"):
        (subset / label).mkdir(parents=True)
        for path in sorted(glob.glob(str(digits_root / label / "*")))[:6]:
            (subset / label / os.path.basename(path)).write_bytes(open(path, "rb").read())
    spec = compiled.spec
    values = {**compiled.defaults, **kubeflow_runner.apply_overrides(compiled.defaults, [f"data.root={subset}"])}
    executor_input = json.dumps(_executor_input(spec, "ImageExampleGen", values, tmp_path))
    container = spec["deploymentSpec"]["executors"]["ImageExampleGen_executor"]["container"]
    argv = [executor_input if arg == "{{$}}" else arg for arg in container["args"]]
    kubeflow_v2_run_executor.main(kubeflow_v2_run_executor._parse_flags(argv))
    examples = tmp_path / "ImageExampleGen" / "examples"
    summary = json.loads((examples / "ingest_summary.json").read_text())
    assert summary["files_seen"] == summary["ingested"] == 12
    records = sum(1 for split in ("train", "eval") for f in glob.glob(str(examples / f"Split-{split}" / "*"))
                  for _ in tf.data.TFRecordDataset(f, compression_type="GZIP"))
    assert records == 12
    output = json.loads((tmp_path / "ImageExampleGen" / "executor_output.json").read_text())
    assert output["artifacts"]["examples"]["artifacts"][0]["metadata"]["ingested"] == 12


def test_json_parameters_reach_the_executors_as_they_expect(compiled, tmp_path):
    """TFX's V2 entrypoint turns the run's string parameters into exec properties; the executors parse them."""
    from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_entrypoint_utils as entrypoint

    spec = compiled.spec
    values = {**compiled.defaults, **kubeflow_runner.apply_overrides(compiled.defaults, ["train.epochs=2"])}
    for task_name, key, check in (
            ("Trainer", "custom_config", lambda v: json_utils.loads(v)["epochs"] == 2),
            ("Tuner", "custom_config", lambda v: json_utils.loads(v)["tuner"]["enabled"] is False),
            ("Transform", "custom_config", lambda v: json_utils.loads(v)["image_size"] == 32),
            ("Evaluator", "eval_config", lambda v: proto_utils.json_to_proto(v, tfma.EvalConfig()).metrics_specs)):
        executor_input = json_format.ParseDict(_executor_input(spec, task_name, values, tmp_path),
                                               pipeline_spec_pb2.ExecutorInput())
        inputs_spec = json_format.ParseDict(spec["components"][task_name]["inputDefinitions"],
                                            pipeline_spec_pb2.ComponentInputsSpec())
        props = entrypoint.parse_execution_properties(executor_input.inputs.parameter_values, {}, inputs_spec)
        assert check(props[key]), task_name


# ----- schedule / submit ------------------------------------------------------------------------------------------
def test_kfp_cron_adds_the_seconds_field():
    assert kfp_client.kfp_cron("0 3 * * *") == "0 0 3 * * *"
    assert kfp_client.kfp_cron("30 0 3 * * 1-5") == "30 0 3 * * 1-5"
    assert kfp_client.kfp_cron("@daily") == "@daily"
    with pytest.raises(ConfigError):
        kfp_client.kfp_cron("0 3 *")


def test_schedule_plan_is_the_recurring_run_kfp_expects(compiled):
    package = kfp_client.load_package(compiled.path)
    params = kfp_client.run_parameters(package, ["tuner.enabled=true"])
    plan = kfp_client.plan_schedule(package, "0 3 * * *", experiment="nightly", params=params)
    run = plan.recurring_run
    assert isinstance(run, kfp_server_api.V2beta1RecurringRun)
    assert run.trigger == kfp_server_api.V2beta1Trigger(
        cron_schedule=kfp_server_api.V2beta1CronSchedule(cron="0 0 3 * * *"))
    assert run.pipeline_version_reference == kfp_server_api.V2beta1PipelineVersionReference(
        pipeline_id=kfp_client.PIPELINE_ID, pipeline_version_id=kfp_client.VERSION_ID)
    assert run.mode == kfp_server_api.RecurringRunMode.ENABLE and run.max_concurrency == 1 and run.no_catchup
    assert run.runtime_config == kfp_server_api.V2beta1RuntimeConfig(
        pipeline_root="gs://acme-ml/visionline/pipelines/visionline", parameters=params)
    assert set(params) == {"train_config"} and json.loads(params["train_config"])["tuner"]["enabled"] is True
    assert plan.experiment == kfp_server_api.V2beta1Experiment(display_name="nightly")
    assert plan.upload.pipeline_name == "visionline" and plan.upload.version_name.endswith(package.digest)


def test_submit_plan_carries_the_spec_inline(compiled):
    package = kfp_client.load_package(compiled.path)
    plan = kfp_client.plan_submit(package, name="adhoc", params={"data_root": "gs://acme/new"})
    assert isinstance(plan.run, kfp_server_api.V2beta1Run) and plan.run.display_name == "adhoc"
    assert plan.run.pipeline_spec["pipelineInfo"] == {"name": "visionline"}
    assert plan.run.runtime_config.parameters == {"data_root": "gs://acme/new"}


class _FakeKfp(BaseHTTPRequestHandler):
    """Just enough of the KFP v2beta1 REST API for kfp.Client's schedule and submit paths."""

    requests: list = []
    pipelines: dict = {}

    def log_message(self, *args):
        pass

    def _reply(self, body):
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        self.requests.append(("GET", url.path, query, None))
        if url.path.endswith("/healthz"):
            return self._reply({"multi_user": False})
        if url.path.endswith("/pipelines"):
            name = json.loads(query["filter"])["predicates"][0]["stringValue"]
            found = [{"pipeline_id": pid, "display_name": name} for pid, n in self.pipelines.items() if n == name]
            return self._reply({"pipelines": found} if found else {})
        if url.path.endswith("/versions"):
            return self._reply({"pipeline_versions": [{"pipeline_id": url.path.split("/")[-2],
                                                       "pipeline_version_id": "v-first"}]})
        return self._reply({})  # experiments: none yet

    def do_POST(self):
        url = urllib.parse.urlparse(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        length = int(self.headers.get("Content-Length", 0))
        raw = self.rfile.read(length)
        if "multipart" in self.headers.get("Content-Type", ""):
            head = f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode()
            part = next(email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + raw).iter_parts())
            body = {"filename": part.get_filename(), "content": part.get_payload(decode=True)}
        else:
            body = json.loads(raw or b"{}")
        self.requests.append(("POST", url.path, query, body))
        if url.path.endswith("/pipelines/upload"):
            self.pipelines["p-1"] = query["name"]
            return self._reply({"pipeline_id": "p-1", "display_name": query["name"]})
        if url.path.endswith("/upload_version"):
            return self._reply({"pipeline_id": query["pipelineid"], "pipeline_version_id": "v-2"})
        if url.path.endswith("/experiments"):
            return self._reply({**body, "experiment_id": "e-1"})
        if url.path.endswith("/recurringruns"):
            return self._reply({**body, "recurring_run_id": "rr-1"})
        if url.path.endswith("/runs"):
            return self._reply({**body, "run_id": "r-1"})
        self.send_error(404)


@pytest.fixture()
def fake_kfp(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.config/kfp/context.json from the machine
    _FakeKfp.requests, _FakeKfp.pipelines = [], {}
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeKfp)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _FakeKfp
    server.shutdown()
    server.server_close()


def _posted(fake, suffix):
    return [body for method, path, _, body in fake.requests if method == "POST" and path.endswith(suffix)]


def test_schedule_sends_the_planned_requests_through_the_kfp_client(compiled, fake_kfp):
    host, fake = fake_kfp
    package = kfp_client.load_package(compiled.path)
    params = ["train.epochs=3", "data_root=gs://acme/images"]
    first = kfp_client.schedule(host, compiled.path, "0 3 * * *", experiment="nightly", params=params,
                                out=lambda _: None)
    assert first == {"experiment_id": "e-1", "pipeline_id": "p-1", "pipeline_version_id": "v-first",
                     "recurring_run_id": "rr-1", "cron": "0 0 3 * * *"}
    plan = kfp_client.plan_schedule(package, "0 3 * * *", "nightly", params=kfp_client.run_parameters(package, params))
    expected = kfp_client.to_json(plan.recurring_run)
    expected["experiment_id"] = "e-1"
    expected["pipeline_version_reference"] = {"pipeline_id": "p-1", "pipeline_version_id": "v-first"}
    assert _posted(fake, "/recurringruns") == [expected]  # kfp's create_recurring_run sent exactly our plan
    assert _posted(fake, "/experiments")[0]["display_name"] == "nightly"
    upload = _posted(fake, "/pipelines/upload")[0]
    assert upload["filename"] == "pipeline.json" and json.loads(upload["content"]) == package.spec
    # the second time the pipeline exists: a new version of it
    second = kfp_client.schedule(host, compiled.path, "0 3 * * *", experiment="nightly", out=lambda _: None)
    assert second["pipeline_version_id"] == "v-2"
    version_query = [q for m, p, q, _ in fake.requests if p.endswith("/upload_version")][0]
    assert version_query["pipelineid"] == "p-1" and version_query["name"].startswith("visionline-")


def test_submit_sends_the_planned_run_through_the_kfp_client(compiled, fake_kfp):
    host, fake = fake_kfp
    package = kfp_client.load_package(compiled.path)
    result = kfp_client.submit(host, compiled.path, name="adhoc", params=["data_root=gs://acme/new"],
                               out=lambda _: None)
    assert result == {"run_id": "r-1", "run_name": "adhoc"}
    expected = kfp_client.to_json(kfp_client.plan_submit(package, name="adhoc",
                                                         params={"data_root": "gs://acme/new"}).run)
    expected["experiment_id"] = "e-1"
    assert _posted(fake, "/runs") == [expected]


# ----- CLI --------------------------------------------------------------------------------------------------------
def _parser():
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    if "compile" not in sub.choices:  # until cli.py registers the commands itself
        kubeflow.register(sub)
    return parser


def test_cli_register_dispatch_round_trip(digits_root, tmp_path, capsys):
    parser = _parser()
    out = tmp_path / "p.json"
    args = parser.parse_args(["compile", "--target", "kubeflow", "--data", str(digits_root), "--epochs", "4",
                              "--work-dir", "gs://acme/vl", "--image", IMAGE, "--out", str(out),
                              "--beam-runner", "DataflowRunner", "--beam-arg=--region=europe-west1"])
    assert cli.dispatch(args) == 0
    spec = json.loads(out.read_text())
    assert json.loads(spec["root"]["inputDefinitions"]["parameters"]["train_config"]["defaultValue"])["epochs"] == 4
    beam = spec["deploymentSpec"]["executors"]["Transform_executor"]["container"]["args"]
    assert {"--runner=DataflowRunner", "--region=europe-west1", f"--sdk_container_image={IMAGE}"} <= set(beam)
    assert "--project" in capsys.readouterr().err  # warned: Dataflow needs it

    args = parser.parse_args(["schedule", "--host", "http://127.0.0.1:9", "--cron", "0 3 * * *", "--dry-run",
                              "--pipeline-json", str(out), "--param", "tuner.enabled=true"])
    assert cli.dispatch(args) == 0
    printed = capsys.readouterr().out
    assert '"cron": "0 0 3 * * *"' in printed and "/apis/v2beta1/recurringruns" in printed

    args = parser.parse_args(["submit", "--dry-run", "--pipeline-json", str(out), "--param", "nope=1"])
    assert cli.dispatch(args) == 2 and "not a runtime parameter" in capsys.readouterr().err
    assert parser.parse_args(["config"]).handler.__module__ != kubeflow.__name__  # not ours
