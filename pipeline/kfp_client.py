"""Upload, schedule and submit a compiled visionline pipeline on Kubeflow Pipelines 2.x with the kfp SDK client.

Each request is first built as the kfp client's own request object (`kfp_server_api` models) by `plan_schedule` /
`plan_submit`; `--dry-run` prints them as the JSON the KFP API receives, without touching the network. `schedule`
and `submit` then go through `kfp.Client` (create_experiment, upload_pipeline / upload_pipeline_version,
create_recurring_run, create_run_from_pipeline_package), which sends exactly these objects (tested against a fake
KFP API server).

Cron: KFP parses schedules with robfig/cron v1, whose expressions begin with a *seconds* field, so a standard
five-field `0 3 * * *` would mean "minute 3 of every hour" there. `kfp_cron` prefixes five-field expressions with
`0` (→ `0 0 3 * * *`, 03:00 every day, in the KFP controller's time zone, usually UTC).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import kfp_server_api
import yaml

from pipeline.configs import ConfigError
from pipeline.kubeflow_runner import apply_overrides, load_spec, parameter_defaults

# Stand-ins for IDs the server assigns, in dry-run output.
EXPERIMENT_ID = "<experiment_id>"
PIPELINE_ID = "<pipeline_id>"
VERSION_ID = "<pipeline_version_id>"
DEFAULT_EXPERIMENT = "visionline"
API = "/apis/v2beta1"


@dataclass(frozen=True)
class Package:
    """A compiled pipeline file, read: its spec, name, parameter defaults and default pipeline root."""

    path: str
    spec: dict[str, Any]
    name: str
    defaults: dict[str, Any]
    pipeline_root: str | None
    digest: str  # of the spec: names pipeline versions


def load_package(path: str) -> Package:
    """Read a file written by `visionline compile --target kubeflow`."""
    spec = load_spec(path)
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]
    return Package(path, spec, spec["pipelineInfo"]["name"], parameter_defaults(spec),
                   spec.get("defaultPipelineRoot") or None, digest)


@dataclass(frozen=True)
class UploadRequest:
    """`upload_pipeline` for the first upload of `pipeline_name`, `upload_pipeline_version` for later ones."""

    package_path: str
    pipeline_name: str
    version_name: str
    description: str | None = None


@dataclass
class SchedulePlan:
    """Requests of `schedule`: get-or-create the experiment, upload, create the recurring run."""

    experiment: kfp_server_api.V2beta1Experiment
    upload: UploadRequest
    recurring_run: kfp_server_api.V2beta1RecurringRun


@dataclass
class SubmitPlan:
    """Requests of `submit`: get-or-create the experiment, create the run (pipeline spec inline)."""

    experiment: kfp_server_api.V2beta1Experiment
    run: kfp_server_api.V2beta1Run


def kfp_cron(expression: str) -> str:
    """A cron expression as KFP's scheduler reads it (seconds first); five-field expressions get `0` seconds."""
    fields = expression.split()
    if len(fields) == 1 and fields[0].startswith("@"):
        return fields[0]  # @daily, @every 6h, …
    if len(fields) == 5:
        return " ".join(["0", *fields])
    if len(fields) == 6:
        return " ".join(fields)
    raise ConfigError(f"cron {expression!r}: expected 5 fields (min hour day month weekday), 6 (seconds first) "
                      "or a descriptor such as @daily")


def run_parameters(package: Package, assignments: Sequence[str]) -> dict[str, Any]:
    """`--param` assignments → the parameter values to send (only those that differ from the defaults)."""
    return apply_overrides(package.defaults, assignments)


def plan_schedule(package: Package, cron: str, experiment: str = DEFAULT_EXPERIMENT, name: str | None = None,
                  params: dict[str, Any] | None = None, namespace: str | None = None,
                  pipeline_root: str | None = None, max_concurrency: int = 1, no_catchup: bool = True,
                  now: datetime.datetime | None = None) -> SchedulePlan:
    """The requests `schedule` sends, as kfp_server_api objects (server-assigned IDs as placeholders).

    One run at a time and no catch-up by default: a paused schedule resumes with one run, not a backfill storm.
    """
    stamp = (now or datetime.datetime.now(datetime.UTC)).strftime("%Y%m%d-%H%M%S")
    upload = UploadRequest(package.path, package.name, f"{package.name}-{stamp}-{package.digest}",
                           "visionline: labelled images → gated, pushed image classifier (TFX)")
    recurring_run = kfp_server_api.V2beta1RecurringRun(
        experiment_id=EXPERIMENT_ID,
        mode=kfp_server_api.RecurringRunMode.ENABLE,
        pipeline_spec=None,
        pipeline_version_reference=kfp_server_api.V2beta1PipelineVersionReference(
            pipeline_id=PIPELINE_ID, pipeline_version_id=VERSION_ID),
        runtime_config=kfp_server_api.V2beta1RuntimeConfig(
            pipeline_root=pipeline_root or package.pipeline_root, parameters=dict(params or {})),
        display_name=name or f"{package.name}-scheduled",
        description=f"visionline on cron {cron!r}",
        no_catchup=no_catchup,
        trigger=kfp_server_api.V2beta1Trigger(cron_schedule=kfp_server_api.V2beta1CronSchedule(
            start_time=None, end_time=None, cron=kfp_cron(cron))),
        max_concurrency=max_concurrency,
        service_account=None,
    )
    return SchedulePlan(_experiment(experiment, namespace), upload, recurring_run)


def plan_submit(package: Package, experiment: str = DEFAULT_EXPERIMENT, name: str | None = None,
                params: dict[str, Any] | None = None, namespace: str | None = None,
                pipeline_root: str | None = None, now: datetime.datetime | None = None) -> SubmitPlan:
    """The requests `submit` sends, as kfp_server_api objects (the experiment ID as a placeholder)."""
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2

    stamp = (now or datetime.datetime.now()).strftime("%Y-%m-%d %H-%M-%S")
    spec = json_format.MessageToDict(json_format.ParseDict(package.spec, pipeline_spec_pb2.PipelineSpec()))
    run = kfp_server_api.V2beta1Run(
        experiment_id=EXPERIMENT_ID,
        display_name=name or f"{package.name} {stamp}",
        pipeline_spec=spec,
        pipeline_version_reference=None,
        runtime_config=kfp_server_api.V2beta1RuntimeConfig(
            pipeline_root=pipeline_root or package.pipeline_root, parameters=dict(params or {})),
        service_account=None,
    )
    return SubmitPlan(_experiment(experiment, namespace), run)


def _experiment(name: str, namespace: str | None) -> kfp_server_api.V2beta1Experiment:
    return kfp_server_api.V2beta1Experiment(display_name=name, description=None, namespace=namespace)


def to_json(obj: Any) -> Any:
    """A kfp_server_api object as the JSON the API receives (field names as on the wire)."""
    return kfp_server_api.ApiClient().sanitize_for_serialization(obj)


def describe_schedule(plan: SchedulePlan, host: str) -> str:
    """The dry-run text of `schedule`: every request, in order."""
    upload = plan.upload
    return "\n".join([
        f"POST {host}{API}/experiments   (create_experiment; an existing experiment of that name is reused)",
        json.dumps(to_json(plan.experiment), indent=2, sort_keys=True),
        f"POST {host}{API}/pipelines/upload?name={upload.pipeline_name}   (upload_pipeline, file "
        f"{upload.package_path}) — or, when a pipeline named {upload.pipeline_name!r} exists:",
        f"POST {host}{API}/pipelines/upload_version?name={upload.version_name}&pipelineid={PIPELINE_ID}"
        "   (upload_pipeline_version)",
        f"POST {host}{API}/recurringruns   (create_recurring_run)",
        json.dumps(to_json(plan.recurring_run), indent=2, sort_keys=True),
    ])


def describe_submit(plan: SubmitPlan, host: str) -> str:
    """The dry-run text of `submit` (the inline pipeline spec abbreviated)."""
    run = to_json(plan.run)
    run["pipeline_spec"] = f"<{len(json.dumps(run['pipeline_spec']))} bytes: the compiled PipelineSpec>"
    return "\n".join([
        f"POST {host}{API}/experiments   (create_experiment; an existing experiment of that name is reused)",
        json.dumps(to_json(plan.experiment), indent=2, sort_keys=True),
        f"POST {host}{API}/runs   (create_run_from_pipeline_package)",
        json.dumps(run, indent=2, sort_keys=True),
    ])


def make_client(host: str, namespace: str | None = None) -> Any:
    """`kfp.Client` for `host` (auth as kfp does it: KF_PIPELINES_* environment, ~/.config/kfp/context.json)."""
    import kfp

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return kfp.Client(host=host, namespace=namespace or "kubeflow")


def schedule(host: str, pipeline_json: str, cron: str, experiment: str = DEFAULT_EXPERIMENT,
             name: str | None = None, dry_run: bool = False, params: Sequence[str] = (),
             namespace: str | None = None, pipeline_root: str | None = None,
             client: Any = None, out: Callable[[str], None] = print) -> dict[str, Any]:
    """Upload `pipeline_json` (a new pipeline, or a new version of it) and create a recurring run on `cron`."""
    package = load_package(pipeline_json)
    plan = plan_schedule(package, cron, experiment, name, run_parameters(package, params), namespace, pipeline_root)
    if dry_run:
        out(describe_schedule(plan, host))
        return {"dry_run": True}
    client = client or make_client(host, namespace)
    experiment_id = client.create_experiment(name=experiment, namespace=namespace).experiment_id
    pipeline_id, version_id = upload(client, plan.upload)
    recurring = plan.recurring_run
    created = client.create_recurring_run(
        experiment_id=experiment_id,
        job_name=recurring.display_name,
        description=recurring.description,
        cron_expression=recurring.trigger.cron_schedule.cron,
        max_concurrency=recurring.max_concurrency,
        no_catchup=recurring.no_catchup,
        params=recurring.runtime_config.parameters,
        pipeline_id=pipeline_id,
        version_id=version_id,
        enabled=True,
        pipeline_root=recurring.runtime_config.pipeline_root,
    )
    result = {"experiment_id": experiment_id, "pipeline_id": pipeline_id, "pipeline_version_id": version_id,
              "recurring_run_id": created.recurring_run_id, "cron": recurring.trigger.cron_schedule.cron}
    out(json.dumps(result, indent=2))
    return result


def upload(client: Any, request: UploadRequest) -> tuple[str, str]:
    """Upload a new pipeline, or a new version when one of that name exists; return (pipeline id, version id)."""
    pipeline_id = client.get_pipeline_id(request.pipeline_name)
    if pipeline_id is None:
        pipeline = client.upload_pipeline(request.package_path, pipeline_name=request.pipeline_name,
                                          description=request.description)
        versions = client.list_pipeline_versions(pipeline.pipeline_id, sort_by="created_at desc", page_size=1)
        return pipeline.pipeline_id, versions.pipeline_versions[0].pipeline_version_id
    version = client.upload_pipeline_version(request.package_path, pipeline_version_name=request.version_name,
                                             pipeline_id=pipeline_id, description=request.description)
    return pipeline_id, version.pipeline_version_id


def submit(host: str, pipeline_json: str, experiment: str = DEFAULT_EXPERIMENT, name: str | None = None,
           dry_run: bool = False, params: Sequence[str] = (), namespace: str | None = None,
           pipeline_root: str | None = None, client: Any = None,
           out: Callable[[str], None] = print) -> dict[str, Any]:
    """Start one run of `pipeline_json` now (the spec travels inline; nothing is uploaded)."""
    package = load_package(pipeline_json)
    plan = plan_submit(package, experiment, name, run_parameters(package, params), namespace, pipeline_root)
    if dry_run:
        out(describe_submit(plan, host))
        return {"dry_run": True}
    client = client or make_client(host, namespace)
    run = plan.run
    with tempfile.TemporaryDirectory() as tmp:
        # kfp reads packages named *.yaml/*.yml (or archives); JSON is YAML, so a .json spec is copied as such
        path = pipeline_json
        if not path.endswith((".yaml", ".yml")):
            path = os.path.join(tmp, "pipeline.yaml")
            with open(path, "w", encoding="utf-8") as handle:
                yaml.safe_dump(package.spec, handle, sort_keys=True)
        result = client.create_run_from_pipeline_package(
            pipeline_file=path,
            arguments=run.runtime_config.parameters,
            run_name=run.display_name,
            experiment_name=experiment,
            namespace=namespace,
            pipeline_root=run.runtime_config.pipeline_root,
        )
    summary = {"run_id": result.run_id, "run_name": run.display_name}
    out(json.dumps(summary, indent=2))
    return summary
