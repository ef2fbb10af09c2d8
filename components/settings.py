"""The base of every component's typed settings: what a TFX module file reads from its `custom_config`.

A component's `custom_config` travels through the DAG (and Kubeflow's runtime parameters) as a JSON dict. Each
module file in `components/modules/` turns it into its settings object once, with `from_custom_config`, and the
plain functions it calls read attributes from that object; `to_custom_config` is the inverse, the dict the
pipeline puts in the DAG. Settings are frozen and closed: an unknown, missing or invalid field is refused with a
`SettingsError` naming it, e.g. "custom_config field train.epochs: Input should be greater than or equal to 1".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, ValidationError

# Frozen (hashable, never changed after validation) and closed (unknown fields are errors, not ignored).
FROZEN_CLOSED = ConfigDict(frozen=True, extra="forbid")


class SettingsError(ValueError):
    """A `custom_config` payload is not valid settings; the message names each offending field."""


class ComponentSettings(BaseModel):
    """Settings one component receives as its `custom_config`; subclasses add the fields."""

    model_config = FROZEN_CLOSED
    section: ClassVar[str] = ""  # names the fields in error messages: `train` → "train.epochs"

    # Hash of the code the component runs (pipeline/fingerprint.py). TFX caches a module-file component by its
    # module path and exec properties only, so this is what makes a code change re-run it.
    code_fingerprint: str = ""

    @classmethod
    def from_custom_config(cls, payload: Mapping[str, Any]) -> Self:
        """Validate a `custom_config` dict (as TFX hands it over: parsed JSON) into settings, once."""
        if not isinstance(payload, Mapping):
            raise SettingsError(f"custom_config for {cls.section or cls.__name__} must be a mapping, "
                                f"got {type(payload).__name__}")
        try:
            return cls.model_validate(dict(payload))
        except ValidationError as err:
            raise SettingsError(describe(err, cls.section)) from None

    def to_custom_config(self) -> dict[str, Any]:
        """The JSON-able dict the pipeline puts in the DAG; `from_custom_config` reads it back unchanged."""
        return self.model_dump(mode="json")


def describe(err: ValidationError, section: str = "") -> str:
    """One line per invalid field: `custom_config field <section>.<field>: <what is wrong>; got <value>`."""
    lines = []
    for error in err.errors():
        name = ".".join(str(part) for part in (section, *error["loc"]) if part != "")
        got = "" if error["type"] == "missing" else f"; got {error['input']!r}"
        lines.append(f"custom_config field {name}: {error['msg']}{got}")
    return "\n".join(lines)
