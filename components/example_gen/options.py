"""ImageExampleGen's ingestion options: packed into ExampleGen's `custom_config` by the component, read back by the
executor (`format`, `max_image_pixels`, `code_fingerprint`, `multilabel`, `leakage`, `min_image_side`, `transcode`;
`manifest`: how a CSV manifest is read, `manifest.ManifestOptions.to_dict()`; for TFRecord input also
`image_feature`, `label_feature` and `label_names`, the names of integer labels; and the class selection
`classes`, `exclude_classes`, `class_map`: see `class_selection`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from google.protobuf import any_pb2, json_format, struct_pb2
from tfx.proto import example_gen_pb2
from tfx.types import standard_component_specs

from components.example_gen import images
from components.example_gen.class_selection import ClassSelection

LEAKAGE_MODES = ("remove", "report")


def ingest_custom_config(data_format: str, max_image_pixels: int, code_fingerprint: str = "",
                         multilabel: bool = False, leakage: str = "remove", min_image_side: int = images.MIN_IMAGE_SIDE,
                         transcode: bool = True, *, image_feature: str = "image", label_feature: str = "label",
                         label_names: Sequence[str] = (),
                         manifest: dict[str, str] | None = None,
                         selection: ClassSelection | None = None) -> example_gen_pb2.CustomConfig:
    """Pack ingestion options into ExampleGen's `custom_config` (an `Any` holding a `Struct`)."""
    if leakage not in LEAKAGE_MODES:
        raise ValueError(f"ImageExampleGen leakage={leakage!r}: expected one of {LEAKAGE_MODES}")
    options = struct_pb2.Struct()
    options.update({"format": data_format, "max_image_pixels": max_image_pixels, "code_fingerprint": code_fingerprint,
                    "multilabel": multilabel, "leakage": leakage, "min_image_side": min_image_side,
                    "transcode": transcode, "image_feature": image_feature, "label_feature": label_feature,
                    "label_names": list(label_names), "manifest": manifest or {}})
    if selection is not None and selection.active:  # only when set: unchanged payloads keep their cache
        options.update({"classes": list(selection.classes), "exclude_classes": list(selection.exclude),
                        "class_map": dict(selection.class_map)})
    packed = any_pb2.Any()
    packed.Pack(options)
    return example_gen_pb2.CustomConfig(custom_config=packed)


def ingest_options(exec_properties: dict[str, Any]) -> dict[str, Any]:
    """The options an executor's `exec_properties` carry, with the defaults for any left out."""
    defaults = {"format": "folders", "max_image_pixels": images.MAX_IMAGE_PIXELS, "multilabel": False,
                "leakage": "remove", "min_image_side": images.MIN_IMAGE_SIDE, "transcode": True,
                "image_feature": "image", "label_feature": "label", "label_names": [], "manifest": {}}
    raw = exec_properties.get(standard_component_specs.CUSTOM_CONFIG_KEY)
    if not raw:
        return defaults
    config = example_gen_pb2.CustomConfig()
    json_format.Parse(raw, config) if isinstance(raw, str) else config.CopyFrom(raw)
    options = struct_pb2.Struct()
    config.custom_config.Unpack(options)
    return {**defaults, **json_format.MessageToDict(options)}
