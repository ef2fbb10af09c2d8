"""Config values from YAML, JSON and `--set key=value`: typed dataclass fields built from plain values, each
failure naming the field (`section.field`), and the differences between two configs' values.

`pipeline/configs.py` declares the fields; this module turns what a user wrote into them.
"""

from __future__ import annotations

import dataclasses
from typing import Any


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the field."""


def difference(values: dict[str, Any], baseline: dict[str, Any]) -> dict[str, Any]:
    """The entries of `values` that differ from `baseline` (nested)."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict) and isinstance(baseline.get(key), dict):
            nested = difference(value, baseline[key])
            if nested:
                out[key] = nested
        elif key not in baseline or baseline[key] != value:
            out[key] = value
    return out


RENAMED = {"train.fine_tune_layers": "train.fine_tune (all | 30% | 20 layers)"}


def renamed(dotted: str) -> str:
    """" (renamed: …)" for a config field that has a new name, else ""."""
    return f" (renamed: {RENAMED[dotted]})" if dotted in RENAMED else ""


def get_dotted(obj: Any, dotted: str) -> Any:
    """The value of a dotted field (`train.epochs`) of a config object."""
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def parses(parse: Any, value: Any) -> bool:
    """Whether `parse(value)` accepts the value (raises no ValueError)."""
    try:
        parse(value)
    except ValueError:
        return False
    return True


def build(cls: type, values: dict[str, Any], prefix: str) -> Any:
    """An instance of the config dataclass `cls` from plain values (nested sections recursively), each coerced to
    its field's type; unknown fields and values that do not fit raise ConfigError naming `prefix` + field."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"unknown config field(s): {', '.join(prefix + u + renamed(prefix + u) for u in unknown)}")
    kwargs: dict[str, Any] = {}
    for name, value in values.items():
        f = fields[name]
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if f.metadata.get("nested"):  # a mapping of mappings of text (kubeflow.resources)
            kwargs[name] = _coerce_nested(value, f"{prefix}{name}")
        elif dataclasses.is_dataclass(default):
            if not isinstance(value, dict):
                raise ConfigError(f"config field {prefix}{name} must be a mapping")
            kwargs[name] = build(type(default), value, prefix=f"{prefix}{name}.")
        else:
            kwargs[name] = _coerce(value, default, f"{prefix}{name}")
    return cls(**kwargs)


def _coerce(value: Any, default: Any, name: str) -> Any:
    """Coerce YAML/CLI values to the type of the field's default, naming the field on failure."""
    try:
        if isinstance(default, bool):
            if isinstance(value, str):
                lowered = value.lower()
                if lowered not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(value)
                return lowered in ("true", "1", "yes")
            return bool(value)
        if isinstance(default, int):
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if isinstance(default, float):
            return float(value)
        if isinstance(default, tuple):
            return tuple(int(v) for v in (value if isinstance(value, (list, tuple)) else [value]))
        if isinstance(default, list):
            return [str(v) for v in (value if isinstance(value, (list, tuple)) else [value])]
        if isinstance(default, dict):  # a mapping of names: keys and values as text (YAML may read 1 as an int)
            if not isinstance(value, dict):
                raise ValueError(value)
            return {str(k): "" if v is None else str(v) for k, v in value.items()}
        if isinstance(default, str):
            return "" if value is None else str(value)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"config field {name}: cannot use {value!r} ({type(default).__name__} expected)") from err
    return value


def _coerce_nested(value: Any, name: str) -> dict[str, dict[str, str]]:
    """`{key: {key: text}}` from YAML/CLI values (numbers become text), naming the field on failure."""
    if not isinstance(value, dict) or not all(isinstance(inner, dict) for inner in value.values()):
        raise ConfigError(f"config field {name} must map names to mappings, e.g. {{Trainer: {{cpu: 4, gpu: 1}}}}; "
                          f"got {value!r}")
    return {str(key): {str(k): "" if v is None else str(v) for k, v in inner.items()} for key, inner in value.items()}
