"""The container entrypoint of the compiled tasks that publish or read visionline's own artifact types: TFX's
Kubeflow V2 entrypoint (`kubeflow_v2_run_executor`), after telling it where those types live.

TFX's entrypoint rebuilds each input and output artifact from the type the spec declares: a first-party type
(`tfx.Examples`, …) through its own title → class table, any other type by importing the schema title as a
`<module>.<Class>` path. TFX's compiler in turn only accepts custom titles of the form `<namespace>.<Title>` (one
dot), so a custom type's title can only be imported if the class lives in a top-level module named like its
namespace. `visionline.DataVerdict` (the ValidationGate's output) does not — there is no `visionline` module —
so TFX's entrypoint fails that task with `Could not import visionline.DataVerdict`, on Kubeflow and on Vertex
alike. Renaming the type would change the ML Metadata type of every verdict local runs have recorded (the drift
baseline's resolver looks verdicts up by it); this entrypoint instead adds the project's custom types to TFX's
title → class table in the task's process, then hands over to TFX's entrypoint unchanged.

`kubeflow_runner` points only the tasks whose artifacts have such a type here (`python -m pipeline.kfp_entrypoint`
with TFX's arguments as they are); every other task keeps TFX's entrypoint.
"""

from __future__ import annotations

from absl import app
from tfx.orchestration.kubeflow.v2 import compiler_utils
from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_run_executor
from tfx.types import artifact

import components.environment  # noqa: F401  (a task entry point: Keras 2, as the image's ENV sets it too)
from components.validation_gate.component import DataVerdict

MODULE = "pipeline.kfp_entrypoint"
CUSTOM_ARTIFACTS: tuple[type[artifact.Artifact], ...] = (DataVerdict,)


def class_paths() -> dict[str, str]:
    """Schema title → import path of each custom artifact type the project's components publish or read."""
    return {cls.TYPE_NAME: f"{cls.__module__}.{cls.__qualname__}" for cls in CUSTOM_ARTIFACTS}


def register() -> None:
    """Add the project's custom artifact types to TFX's title → class table (this process only)."""
    compiler_utils.TITLE_TO_CLASS_PATH.update(class_paths())


if __name__ == "__main__":
    register()
    app.run(kubeflow_v2_run_executor.main, flags_parser=kubeflow_v2_run_executor._parse_flags)
