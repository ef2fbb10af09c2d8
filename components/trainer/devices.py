"""Where the Trainer computes: the CPU, or a GPU with mixed precision and a larger batch.

`plan_device` is the decision as a plain function of what TensorFlow sees (unit-tested without a GPU);
`visible_gpus` asks TensorFlow; `apply_plan` makes the choice effective before the model is built.

* `train.device`: `auto` takes the first GPU TensorFlow sees, else the CPU; `gpu` insists (an error without one);
  `cpu` hides the GPUs from TensorFlow.
* `train.mixed_precision`: `auto` is on for a GPU of compute capability 7.0 or newer (tensor cores) and off on the
  CPU; float16 compute keeps float32 weights, and the model is exported in float32 (the Trainer rebuilds it), so a
  CPU server never runs float16 kernels.
* `train.gpu_batch_size`: the batch size on a GPU; 0 means 4 × `train.batch_size` (a GPU is starved by the CPU's
  small batches; the learning rates stay as configured).

Installing TensorFlow's CUDA libraries: `make setup GPU=1` (requirements-gpu.lock); in the pipeline image
`docker build --build-arg GPU=1`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import tensorflow as tf
import tf_keras as keras

GPU_BATCH_FACTOR = 4
MIN_MIXED_PRECISION_CAPABILITY = (7, 0)


@dataclass(frozen=True)
class GpuInfo:
    """One GPU as TensorFlow describes it."""

    name: str  # e.g. "/physical_device:GPU:0"
    description: str  # e.g. "NVIDIA H100 80GB HBM3"
    compute_capability: tuple[int, int] | None = None


@dataclass(frozen=True)
class DevicePlan:
    """Where and how the Trainer computes."""

    kind: str  # "GPU" | "CPU"
    description: str  # printed at the start of training and recorded in history.json
    mixed_precision: bool
    batch_size: int
    hide_gpus: bool = False  # `train.device=cpu` with GPUs visible


def plan_device(device: str, mixed_precision: str, batch_size: int, gpu_batch_size: int,
                gpus: Sequence[GpuInfo], cpu_count: int | None = None) -> DevicePlan:
    """The device, precision and batch size for the configured values and the GPUs TensorFlow sees."""
    if device not in ("auto", "cpu", "gpu"):
        raise ValueError(f"train.device must be auto, cpu or gpu; got {device!r}")
    if mixed_precision not in ("auto", "on", "off"):
        raise ValueError(f"train.mixed_precision must be auto, on or off; got {mixed_precision!r}")
    if device == "gpu" and not gpus:
        raise RuntimeError("train.device=gpu but TensorFlow sees no GPU (install the CUDA libraries with "
                           "`make setup GPU=1`, or build the pipeline image with `docker build --build-arg GPU=1`, "
                           "on a machine with an NVIDIA driver; or use train.device=auto)")
    if device == "cpu" or not gpus:
        if mixed_precision == "on":
            raise ValueError("train.mixed_precision=on needs a GPU (float16 is slower than float32 on a CPU)")
        cores = cpu_count or os.cpu_count() or 1
        return DevicePlan("CPU", f"CPU ({cores} cores)", False, batch_size, hide_gpus=bool(gpus))
    gpu = gpus[0]
    capable = gpu.compute_capability is None or gpu.compute_capability >= MIN_MIXED_PRECISION_CAPABILITY
    mixed = mixed_precision == "on" or (mixed_precision == "auto" and capable)
    batch = gpu_batch_size or GPU_BATCH_FACTOR * batch_size
    capability = "" if gpu.compute_capability is None else \
        f", compute capability {gpu.compute_capability[0]}.{gpu.compute_capability[1]}"
    return DevicePlan("GPU", f"GPU 0: {gpu.description}{capability}", mixed, batch)


def visible_gpus() -> list[GpuInfo]:
    """The GPUs TensorFlow sees, with their names and compute capabilities where it reports them."""
    found = []
    for device in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(device)
        capability = details.get("compute_capability")
        found.append(GpuInfo(device.name, str(details.get("device_name", device.name)),
                             tuple(capability) if capability else None))
    return found


def apply_plan(plan: DevicePlan) -> None:
    """Hide the GPUs (CPU on a GPU machine) and set Keras' precision policy; call before building the model."""
    if plan.hide_gpus:
        tf.config.set_visible_devices([], "GPU")
    keras.mixed_precision.set_global_policy("mixed_float16" if plan.mixed_precision else "float32")


def summary(plan: DevicePlan) -> str:
    """The line printed when training starts."""
    precision = "mixed float16" if plan.mixed_precision else "float32"
    return f"training on {plan.description}: {precision}, batch size {plan.batch_size}"
