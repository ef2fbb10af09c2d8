"""The safe PyTorch state-dict reader: it refuses pickled code, explains what it cannot read, and reads the zip
format with strides and offsets (written here with stand-in torch modules, so no torch is needed). Reading the real
EfficientNet-Lite0 state dict: tests/components/test_efficientnet_lite.py."""

from __future__ import annotations

import collections
import os
import pickle
import sys
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest

from components.trainer.backbones.torch_state_dict import TorchStateDictError, UnsafePickleError, read_torch_state_dict


class _RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_unpickler_refuses_arbitrary_callables(tmp_path):
    marker = tmp_path / "pwned"
    payload = pickle.dumps(collections.OrderedDict(weight=_RunsCode(marker)), protocol=2)
    bare = tmp_path / "evil.pth"
    bare.write_bytes(payload)
    in_zip = tmp_path / "evil_zip.pt"
    with zipfile.ZipFile(in_zip, "w") as archive:
        archive.writestr("archive/data.pkl", payload)
    for path in (bare, in_zip):
        with pytest.raises(UnsafePickleError, match=r"refusing to unpickle global (posix|os)\.system") as caught:
            read_torch_state_dict(path)
        assert str(path) in str(caught.value)
    assert not marker.exists()


def test_non_state_dicts_get_a_clear_error(tmp_path):
    text = tmp_path / "notes.pth"
    text.write_text("definitely not a checkpoint\n")
    with pytest.raises(TorchStateDictError, match="notes.pth is not a readable PyTorch state dict"):
        read_torch_state_dict(text)
    plain = tmp_path / "list.pth"
    plain.write_bytes(pickle.dumps([1, 2, 3], protocol=2))
    with pytest.raises(TorchStateDictError, match="list.pth is not a readable PyTorch state dict"):
        read_torch_state_dict(plain)


def _write_zip_state_dict(path: Path, storages: list[np.ndarray], tensors: dict, monkeypatch) -> None:
    """Write what torch.save (zip format) writes, using stand-in torch modules so no torch is needed."""
    torch_module, utils_module = types.ModuleType("torch"), types.ModuleType("torch._utils")

    class FloatStorage:
        pass

    def _rebuild_tensor_v2(*args):
        raise AssertionError("never called while pickling")

    FloatStorage.__module__, FloatStorage.__qualname__ = "torch", "FloatStorage"
    _rebuild_tensor_v2.__module__, _rebuild_tensor_v2.__qualname__ = "torch._utils", "_rebuild_tensor_v2"
    torch_module.FloatStorage, utils_module._rebuild_tensor_v2 = FloatStorage, _rebuild_tensor_v2

    class StorageRef:
        def __init__(self, key: int) -> None:
            self.key = key

    class Tensor:
        def __init__(self, key: int, offset: int, size: tuple, stride: tuple) -> None:
            self.args = (StorageRef(key), offset, size, stride, False, collections.OrderedDict())

        def __reduce__(self):
            return _rebuild_tensor_v2, self.args

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, StorageRef):
                return ("storage", FloatStorage, str(obj.key), "cpu", storages[obj.key].size)
            return None

    with monkeypatch.context() as patch:
        patch.setitem(sys.modules, "torch", torch_module)
        patch.setitem(sys.modules, "torch._utils", utils_module)
        with zipfile.ZipFile(path, "w") as archive, archive.open("archive/data.pkl", "w") as file:
            Pickler(file, protocol=2).dump(collections.OrderedDict((k, Tensor(*v)) for k, v in tensors.items()))
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("archive/byteorder", "little")
        for key, data in enumerate(storages):
            archive.writestr(f"archive/data/{key}", data.astype("<f4").tobytes())


def test_zip_format_with_strides_and_offsets(tmp_path, monkeypatch):
    weight = np.arange(6, dtype=np.float32).reshape(2, 3)
    bias = np.array([7.0, 8.0, 9.0, 10.0], dtype=np.float32)
    path = tmp_path / "tiny.pt"
    tensors = {"w": (0, 0, (2, 3), (3, 1)), "w_t": (0, 0, (3, 2), (1, 3)), "b_tail": (1, 1, (3,), (1,))}
    _write_zip_state_dict(path, [weight.ravel(), bias], tensors, monkeypatch)
    state = read_torch_state_dict(path)
    np.testing.assert_array_equal(state["w"], weight)
    np.testing.assert_array_equal(state["w_t"], weight.T)
    np.testing.assert_array_equal(state["b_tail"], bias[1:])

    _write_zip_state_dict(path, [bias], {"too_big": (0, 2, (5,), (1,))}, monkeypatch)
    with pytest.raises(TorchStateDictError, match="outside its storage"):
        read_torch_state_dict(path)
