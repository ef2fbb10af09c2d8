"""Per-task pod resources of compiled pipelines (`kubeflow.resources` in the config): validated here, written into
the compiled PipelineSpec by `apply` (each task's `deploymentSpec.executors[*].container.resources`).

    kubeflow:
      resources:
        Trainer: {cpu: 4, memory: 16Gi, gpu: 1}        # requests; a GPU (limit) for the Trainer and the Tuner
        Tuner: {cpu: 4, memory: 16Gi, gpu: 1}
        Transform: {cpu: 2, memory: 8Gi, memory_limit: 12Gi}

Keys per task: `cpu`, `memory` (requests), `cpu_limit`, `memory_limit` (Kubernetes quantities: `500m`, `4`;
`512Mi`, `16G`), `gpu` (a count) and `accelerator`. With `--target kubeflow` the accelerator is the Kubernetes
resource the pod asks for (default `nvidia.com/gpu`; KFP's driver uses it as the resource name), and the GPU
*model* is the node pool's business (one GPU type per pool, or a node selector KFP sets outside this spec); with
`--target vertex` it is Vertex's accelerator type (`NVIDIA_TESLA_T4`, …: required there), and Vertex picks the
machine from the limits.

Why not TFX's `with_platform_config`: TFX 1.16's Kubeflow V2 step builder copies a component's platform config
into its container spec, except for FileBasedExampleGen (ImageExampleGen), whose container spec it builds without
it (tfx issue #6146; tests/pipeline/test_kubeflow_resources.py checks it), and it checks only the deprecated float
fields. So `apply` writes the compiled spec itself, every task alike, in both encodings KFP reads: the quantity
strings (`resourceCpuRequest`, …, `accelerator.resourceType` / `resourceCount`: KFP 2.4+ drivers read them first)
and the deprecated numbers (`cpuRequest` in cores, `memoryRequest` in GB, `accelerator.type` / `count`: what KFP
2.0–2.3 drivers and Vertex read; kfp 2.9's own compiler writes only these). No TFX here: config validation uses it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pipeline import component_ids

KEYS = ("cpu", "memory", "cpu_limit", "memory_limit", "gpu", "accelerator")
TASKS = (component_ids.EXAMPLE_GEN, component_ids.STATISTICS_GEN, component_ids.SCHEMA_GEN,
         component_ids.IMPORT_SCHEMA_GEN, component_ids.EXAMPLE_VALIDATOR, component_ids.ACCEPTED_STATISTICS_BASELINE,
         component_ids.VALIDATION_GATE, component_ids.TRANSFORM, component_ids.TUNER, component_ids.TRAINER,
         component_ids.SERVED_BASELINE, component_ids.EVALUATOR, component_ids.PUSHER)
KUBERNETES_GPU = "nvidia.com/gpu"  # the accelerator on Kubernetes when none is named
_CPU = re.compile(r"^([0-9]*[.])?[0-9]+m?$")  # kfp's own check (PipelineTask.set_cpu_request)
_MEMORY = re.compile(r"^([0-9]*[.])?[0-9]+(E|Ei|P|Pi|T|Ti|G|Gi|M|Mi|K|Ki)?$")  # kfp's, decimals allowed
_UNITS = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
          "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_KUBERNETES_RESOURCE = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?/[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_VERTEX_ACCELERATOR = re.compile(r"^[A-Z][A-Z0-9_]+$")


class ResourceError(ValueError):
    """A `kubeflow.resources` entry that cannot be used; the message starts with the field's name."""


def check(resources: Mapping[str, Mapping[str, str]]) -> None:
    """Raise `ResourceError` naming the first field of `resources` that is unknown or malformed."""
    for task, values in resources.items():
        where = f"kubeflow.resources.{task}"
        if task not in TASKS:
            raise ResourceError(f"{where}: not a task of the visionline pipeline ({', '.join(TASKS)})")
        unknown = sorted(set(values) - set(KEYS))
        if unknown:
            raise ResourceError(f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(KEYS)})")
        for key in ("cpu", "cpu_limit"):
            if values.get(key) and not _CPU.match(values[key]):
                raise ResourceError(f"{where}.{key}: {values[key]!r} is not a CPU quantity (e.g. 4, 0.5, 500m)")
        for key in ("memory", "memory_limit"):
            if values.get(key) and not _MEMORY.match(values[key]):
                raise ResourceError(f"{where}.{key}: {values[key]!r} is not a memory quantity (e.g. 16Gi, 512Mi, "
                                    "16G)")
        gpu = values.get("gpu", "")
        if gpu and not re.match(r"^[0-9]+$", gpu):
            raise ResourceError(f"{where}.gpu: {gpu!r} is not a whole number of GPUs")
        if values.get("accelerator") and not int(gpu or 0):
            raise ResourceError(f"{where}.accelerator: set gpu too (how many)")
        for request, limit, parse in (("cpu", "cpu_limit", cpu_cores), ("memory", "memory_limit", memory_gb)):
            if values.get(request) and values.get(limit) and parse(values[limit]) < parse(values[request]):
                raise ResourceError(f"{where}.{limit}: {values[limit]} is below the request {values[request]}")


def cpu_cores(quantity: str) -> float:
    """A CPU quantity in cores (`500m` → 0.5)."""
    return float(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


def memory_gb(quantity: str) -> float:
    """A memory quantity in GB (10^9 bytes), the unit of the PipelineSpec's deprecated memory fields."""
    number, unit = re.match(r"^([0-9.]+)([A-Za-z]*)$", quantity).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit] / 10**9


def container_resources(values: Mapping[str, str], target: str) -> dict[str, Any]:
    """The `PipelineContainerSpec.ResourceSpec` (JSON) of one task's settings for `target` (kubeflow | vertex)."""
    spec: dict[str, Any] = {}
    for key, field in (("cpu", "CpuRequest"), ("cpu_limit", "CpuLimit")):
        if values.get(key):
            spec[field[0].lower() + field[1:]] = cpu_cores(values[key])
            spec["resource" + field] = values[key]
    for key, field in (("memory", "MemoryRequest"), ("memory_limit", "MemoryLimit")):
        if values.get(key):
            spec[field[0].lower() + field[1:]] = memory_gb(values[key])
            spec["resource" + field] = values[key]
    count = int(values.get("gpu") or 0)
    if count:
        accelerator = values.get("accelerator", "")
        if target == "kubeflow":
            accelerator = accelerator or KUBERNETES_GPU
            if not _KUBERNETES_RESOURCE.match(accelerator):
                raise ResourceError(f"kubeflow.resources.*.accelerator: {accelerator!r} is not a Kubernetes resource "
                                    f"name: on KFP name the resource (e.g. {KUBERNETES_GPU}) and choose the GPU "
                                    "model with the node pool (NVIDIA_TESLA_T4-style names are Vertex's)")
        elif not _VERTEX_ACCELERATOR.match(accelerator):
            raise ResourceError(f"kubeflow.resources.*.accelerator: Vertex needs its accelerator type (e.g. "
                                f"NVIDIA_TESLA_T4), got {accelerator!r}")
        spec["accelerator"] = {"type": accelerator, "count": str(count),
                               "resourceType": accelerator, "resourceCount": str(count)}
    return spec


def gpu_warnings(resources: Mapping[str, Mapping[str, str]], train_device: str) -> list[str]:
    """Why a GPU asked for in `resources` may sit idle: `train.device=cpu` hides it; with `auto` an image built
    without the CUDA libraries (the Dockerfile's default) trains on the CPU without complaint."""
    gpu_tasks = sorted(task for task, values in resources.items() if int(values.get("gpu") or 0))
    if not gpu_tasks:
        return []
    if train_device == "cpu":
        return [f"kubeflow.resources: {', '.join(gpu_tasks)} get a GPU, but train.device=cpu hides it"]
    if train_device == "gpu":
        return []  # an image without CUDA libraries fails the Trainer, naming the fix
    return [f"kubeflow.resources: {', '.join(gpu_tasks)} get a GPU: build the image with `docker build --build-arg "
            "GPU=1` (the default image has no CUDA libraries, and TensorFlow would train on the CPU), and set "
            "train.device=gpu to fail rather than train on the CPU"]


def apply(spec: dict[str, Any], resources: Mapping[str, Mapping[str, str]], target: str) -> None:
    """Write `resources` into the compiled `spec` (a PipelineSpec dict) for `target`."""
    check(resources)
    tasks = spec["root"]["dag"]["tasks"]
    for task, values in resources.items():
        if task not in tasks:
            raise ResourceError(f"kubeflow.resources.{task}: this pipeline has no {task} task "
                                f"(tasks: {', '.join(sorted(tasks))})")
        try:
            settings = container_resources(values, target)
        except ResourceError as err:
            raise ResourceError(str(err).replace(".*.", f".{task}.", 1)) from None
        label = spec["components"][tasks[task]["componentRef"]["name"]]["executorLabel"]
        container = spec["deploymentSpec"]["executors"][label]["container"]
        container["resources"] = settings
