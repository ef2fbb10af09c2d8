"""Tests for components.trainer.devices: the device plan (CPU, or a GPU with mixed precision and a larger batch) as a
plain function of what TensorFlow sees — no GPU needed — and its application to Keras' precision policy."""

from __future__ import annotations

import pytest
import tf_keras as keras

from components.trainer import devices
from components.trainer.devices import DevicePlan, GpuInfo, plan_device

H100 = GpuInfo("/physical_device:GPU:0", "NVIDIA H100 80GB HBM3", (9, 0))
K80 = GpuInfo("/physical_device:GPU:0", "Tesla K80", (3, 7))


def test_cpu_when_no_gpu_is_visible():
    plan = plan_device("auto", "auto", 32, 0, [], cpu_count=2)
    assert plan == DevicePlan("CPU", "CPU (2 cores)", mixed_precision=False, batch_size=32)
    assert devices.summary(plan) == "training on CPU (2 cores): float32, batch size 32"


def test_auto_takes_the_gpu_with_mixed_precision_and_a_larger_batch():
    plan = plan_device("auto", "auto", 32, 0, [H100])
    assert (plan.kind, plan.mixed_precision, plan.batch_size) == ("GPU", True, 4 * 32)
    assert plan.description == "GPU 0: NVIDIA H100 80GB HBM3, compute capability 9.0"
    assert plan_device("gpu", "auto", 32, 96, [H100]).batch_size == 96  # train.gpu_batch_size wins


def test_mixed_precision_follows_the_gpu_and_the_setting():
    assert plan_device("auto", "auto", 32, 0, [K80]).mixed_precision is False  # no tensor cores
    assert plan_device("auto", "on", 32, 0, [K80]).mixed_precision is True
    assert plan_device("auto", "off", 32, 0, [H100]).mixed_precision is False


def test_cpu_on_a_gpu_machine_hides_the_gpus():
    plan = plan_device("cpu", "auto", 16, 0, [H100], cpu_count=16)
    assert (plan.kind, plan.hide_gpus, plan.batch_size, plan.mixed_precision) == ("CPU", True, 16, False)


def test_impossible_requests_are_explained():
    with pytest.raises(RuntimeError,
                       match="train.device=gpu but TensorFlow sees no GPU.*make setup GPU=1.*--build-arg GPU=1"):
        plan_device("gpu", "auto", 32, 0, [])
    with pytest.raises(ValueError, match="mixed_precision=on needs a GPU"):
        plan_device("auto", "on", 32, 0, [])
    with pytest.raises(ValueError, match="train.device"):
        plan_device("tpu", "auto", 32, 0, [])


def test_this_machine_and_the_policy():
    """Development machines have no GPU: TensorFlow lists none, and applying a plan sets Keras' policy."""
    assert devices.visible_gpus() == []
    devices.apply_plan(DevicePlan("GPU", "test", True, 128))
    try:
        assert keras.mixed_precision.global_policy().name == "mixed_float16"
    finally:
        devices.apply_plan(DevicePlan("CPU", "test", False, 32))
    assert keras.mixed_precision.global_policy().name == "float32"
