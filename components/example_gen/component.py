"""`ImageExampleGen`: a TFX FileBasedExampleGen whose Beam executor (`executor.Executor`) ingests image folders,
CSV manifests or TFRecord files, quarantining bad files and records; its options travel in `custom_config` (see
`options`)."""

from __future__ import annotations

from collections.abc import Sequence

from tfx.components.example_gen.component import FileBasedExampleGen
from tfx.dsl.components.base import executor_spec
from tfx.proto import example_gen_pb2

from components.example_gen import images, sources
from components.example_gen.class_selection import ClassSelection
from components.example_gen.executor import Executor
from components.example_gen.options import ingest_custom_config


class ImageExampleGen(FileBasedExampleGen):
    """FileBasedExampleGen preconfigured with the image-ingesting executor.

    `multilabel`: the CSV manifest's label cells hold 0..n labels separated by `|` (folder layouts are refused).
    `leakage`: `remove` (eval images byte-identical to a train image are quarantined) or `report` (kept, listed).
    TFRecord input (`data_format="tfrecord"`, see `records`): `image_feature` / `label_feature` name the features
    holding the encoded image and the label; `label_names` name integer labels (else `labels.txt` at the input
    base, read by the executor).
    `manifest`: how a CSV manifest is read (`manifest.ManifestOptions.to_dict()`: path and label columns, kind).
    `selection`: the classes to keep, leave out or merge (`class_selection.ClassSelection`; files left out are listed).
    """

    def __init__(
        self,
        input_base: str,
        input_config: example_gen_pb2.Input,
        output_config: example_gen_pb2.Output | None = None,
        data_format: str = "folders",
        max_image_pixels: int = images.MAX_IMAGE_PIXELS,
        code_fingerprint: str = "",
        multilabel: bool = False,
        leakage: str = "remove",
        image_feature: str = "image",
        label_feature: str = "label",
        label_names: Sequence[str] = (),
        min_image_side: int = images.MIN_IMAGE_SIDE,
        transcode: bool = True,
        manifest: dict[str, str] | None = None,
        selection: ClassSelection | None = None,
    ) -> None:
        if multilabel and data_format != "csv":
            raise sources.DataLayoutError(f"data root {input_base} is a {data_format} layout: "
                                          f"{sources.MULTILABEL_NEEDS_CSV}")
        if label_names and data_format != "tfrecord":
            raise sources.DataLayoutError(f"label_names name the integer labels of TFRecord data (data.label_names); "
                                          f"data root {input_base} is a {data_format} layout, whose labels are names")
        super().__init__(
            input_base=input_base,
            input_config=input_config,
            output_config=output_config,
            custom_config=ingest_custom_config(data_format, max_image_pixels, code_fingerprint, multilabel, leakage,
                                               min_image_side, transcode, image_feature=image_feature,
                                               label_feature=label_feature, label_names=label_names,
                                               manifest=manifest, selection=selection),
            custom_executor_spec=executor_spec.BeamExecutorSpec(Executor),
        )
