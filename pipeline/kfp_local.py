"""Execute a compiled visionline pipeline spec on this machine with KFP's own local orchestrator, `kfp.local`.

`run_compiled(spec_path)` loads the file `visionline compile` wrote with `kfp.components.load_component_from_file`
and calls it with `kfp.local` initialised, so kfp 2.9's own code does what KFP's backend does for a run: the DAG's
topological order, the root parameters (compiled defaults, plus the run's values), each task's inputs from its
producers' outputs, the `{{$}}` placeholder (the task's ExecutorInput JSON), fresh output URIs
(`<pipeline root>/<pipeline>-<timestamp>/<task>/<output>`) and each task's `executor_output.json` read back as the
outputs its consumers get. This module supplies only what kfp.local's extension point asks for, a task handler
(`kfp.local.task_handler_interface.ITaskHandler`: built from the task's image, resolved command and the pipeline
root; `run()` returns the task's status).

`ProjectTaskHandler` runs the task's container command — as compiled: TFX's Kubeflow V2 entrypoint, or
`pipeline.kfp_entrypoint` for the ValidationGate — in a subprocess, with this checkout and its virtualenv standing
in for the pipeline image. What it emulates:

* the image's interpreter and packages: the command's `python` is this virtualenv's interpreter, installed from
  the same lock files the Dockerfile installs (`make setup`);
* the image's code: this checkout is first on `PYTHONPATH`, and paths under the image's code folder in the command
  (`/opt/visionline/…`, e.g. the curated schema) are rewritten to the checkout — what a bind mount of the checkout
  at `/opt/visionline` would do;
* the image's `ENV` that changes what a task does (`IMAGE_ENV`: Keras 2, log levels, unbuffered output);
* the typing KFP's backend gives input artifacts: each input artifact reaches the task with the type the task's
  inputs spec declares (`--json_serialized_inputs_spec_args`, compiled from the component's inputDefinitions).
  kfp.local loses it: it keeps task outputs as `kfp.dsl.Artifact` objects, rebuilt by
  `kfp.dsl.executor.create_artifact_instance`, which looks the class up by `schemaTitle` only. TFX declares its
  types as an `instanceSchema` (YAML whose title is `tfx.Examples`, …), so every TFX artifact falls back to
  `dsl.Artifact`, and `executor_input_utils.dsl_artifact_to_artifact_list` hands it to the next task typed
  `system.Artifact` — which TFX's entrypoint cannot import. URI, name and metadata survive the round trip.

Not emulated: the container itself (user 10001, its file system, the Beam SDK boot entrypoint — KFP replaces it
with the task's command anyway —, `VISIONLINE_CACHE`: this machine's weight cache is used); pod resources, node
selection and GPUs; KFP's launcher copying input artifacts into the pod and outputs to the bucket (tasks read and
write the pipeline root in place, which must be a local folder here); KFP's ML Metadata and cache (every task runs
every time; nothing is recorded, so `visionline last-run` does not see these runs); retries, and parallel
branches (kfp.local runs one task at a time); `gs://` paths in the spec.

kfp.local is given the spec with its components renamed `comp-<name>` (`kfp_local_names`), the names KFP's own
compiler gives them: kfp.local names each task's output folder after its component with that prefix cut off.

How the handler is installed: kfp 2.9's `task_dispatcher.run_single_task_implementation` picks the handler class
from a fixed map keyed by the runner's type, reading `subprocess_task_handler.SubprocessTaskHandler` when a task
runs; that handler refuses container components. `run_compiled` puts `ProjectTaskHandler` in its place for the
`SubprocessRunner`, for one run, and then restores kfp.local's handler and its global configuration.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from kfp import components as kfp_components
from kfp import local
from kfp.dsl import utils as dsl_utils
from kfp.local import config as local_config
from kfp.local import status, subprocess_task_handler, task_handler_interface

from pipeline.component_ids import EVALUATOR, PUSHER, SERVED_BASELINE, VALIDATION_GATE
from pipeline.configs import ConfigError
from pipeline.kubeflow_runner import IMAGE_ROOT, REPO_ROOT, load_spec

INVOCATION_FLAG = "--json_serialized_invocation_args"  # TFX's entrypoint: the ExecutorInput JSON (`{{$}}`)
INPUTS_SPEC_FLAG = "--json_serialized_inputs_spec_args"  # TFX's entrypoint: the component's inputDefinitions
PYTHON_COMMANDS = ("python", "python3")  # the image's interpreter, as a compiled command names it
# The Dockerfile's ENV that change what a task does (tests/pipeline/test_kfp_local.py checks they match it).
IMAGE_ENV = {
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONUNBUFFERED": "1",
    "TF_USE_LEGACY_KERAS": "1",
    "TF_CPP_MIN_LOG_LEVEL": "2",
    "PYTHONWARNINGS": "ignore::FutureWarning",
}
LOG_NAME = "task.log"  # each task's output, beside its executor_output.json


@dataclass
class TaskResult:
    """One task as the handler ran it."""

    name: str
    seconds: float
    returncode: int
    task_root: str  # <pipeline root>/<pipeline>-<timestamp>/<task>
    executor_output: str  # the executor_output.json the task wrote (absent when it failed)

    @property
    def log_path(self) -> str:
        """The task's stdout and stderr."""
        return os.path.join(self.task_root, LOG_NAME)

    def output_artifact(self, key: str) -> dict[str, Any]:
        """Output artifact `key` (`uri`, `metadata`, …) from the task's executor output."""
        with open(self.executor_output, encoding="utf-8") as handle:
            artifacts = json.load(handle).get("artifacts", {})
        if key not in artifacts:
            raise LookupError(f"task {self.name} published no {key!r} artifact ({self.executor_output})")
        return artifacts[key]["artifacts"][0]


@dataclass
class LocalRun:
    """What one kfp.local execution of a compiled spec did."""

    spec_path: str
    pipeline_root: str
    arguments: dict[str, str]
    tasks: list[TaskResult] = field(default_factory=list)
    expected_tasks: int = 0

    @property
    def failed(self) -> TaskResult | None:
        """The task that failed (kfp.local stops the run there), if any."""
        return next((task for task in self.tasks if task.returncode != 0), None)

    @property
    def run_dir(self) -> str:
        """`<pipeline root>/<pipeline>-<timestamp>`: the folder holding every task's outputs."""
        return os.path.dirname(self.tasks[0].task_root) if self.tasks else ""

    def task(self, name: str) -> TaskResult:
        """The result of task `name`."""
        for task in self.tasks:
            if task.name == name:
                return task
        raise LookupError(f"task {name} did not run (ran: {', '.join(t.name for t in self.tasks) or 'none'})")

    def blessed(self) -> bool:
        """Whether the Evaluator blessed the model."""
        return bool(self.task(EVALUATOR).output_artifact("blessing")["metadata"].get("blessed"))

    def pushed(self) -> tuple[str, str] | None:
        """(serving version folder, version) the Pusher pushed to; None when it did not push."""
        metadata = self.task(PUSHER).output_artifact("pushed_model")["metadata"]
        if not metadata.get("pushed"):
            return None
        return metadata["pushed_destination"], metadata["pushed_version"]

    def baseline(self) -> str | None:
        """The served version the Evaluator compared with (ServedModelBaseline); None when nothing was served."""
        metadata = self.task(SERVED_BASELINE).output_artifact("baseline_model")["metadata"]
        return metadata.get("served_version") if metadata.get("served") else None

    def data_gate(self) -> dict[str, Any]:
        """The ValidationGate's verdict (`verdict.json`: accepted, problems, label drift and its baseline, notes)."""
        from components.validation_gate.executor import VERDICT_FILE  # loads TFX: only once a run has passed the gate

        verdict = os.path.join(self.task(VALIDATION_GATE).output_artifact("verdict")["uri"], VERDICT_FILE)
        with open(verdict, encoding="utf-8") as handle:
            return json.load(handle)

    def metrics(self) -> dict[str, float]:
        """The candidate model's overall metrics, as the Evaluator computed them."""
        from pipeline.runs.evaluation import read_metrics  # TFMA: only once a run has evaluated

        return read_metrics(self.task(EVALUATOR).output_artifact("evaluation")["uri"]).values


# ----- the task handler -----------------------------------------------------------------------------------------
def task_command(full_command: Sequence[str]) -> list[str]:
    """A task's resolved container command as it runs here: this interpreter for the image's `python`, the checkout
    for the image's code folder, and each input artifact typed as the task's inputs spec declares."""
    command = [arg.replace(IMAGE_ROOT + "/", f"{REPO_ROOT}/") for arg in full_command]
    if not command or command[0] not in PYTHON_COMMANDS:
        raise ConfigError(f"not a Python task command (the image's python): {' '.join(command[:3])}")
    command[0] = sys.executable
    invocation = _flag_index(command, INVOCATION_FLAG)
    executor_input = json.loads(command[invocation])
    declared = json.loads(command[_flag_index(command, INPUTS_SPEC_FLAG)]).get("artifacts", {}) \
        if INPUTS_SPEC_FLAG in command else {}
    for key, artifact_list in executor_input.get("inputs", {}).get("artifacts", {}).items():
        if key not in declared:
            raise ConfigError(f"task {task_name(executor_input)}: input artifact {key!r} has no declared type "
                              f"in {INPUTS_SPEC_FLAG}")
        for artifact in artifact_list.get("artifacts", []):
            artifact["type"] = declared[key]["artifactType"]
    command[invocation] = json.dumps(executor_input)
    return command


def task_environment(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The task's environment: this process's, the image's ENV, and the checkout first on PYTHONPATH."""
    env = dict(os.environ if base is None else base)
    env.update(IMAGE_ENV)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def task_name(executor_input: Mapping[str, Any]) -> str:
    """The task's name: kfp.local writes its outputs under `<run dir>/<task>/`."""
    return os.path.basename(os.path.dirname(executor_input["outputs"]["outputFile"]))


class ProjectTaskHandler(task_handler_interface.ITaskHandler):
    """kfp.local task handler: the task's container command in a subprocess, this checkout standing in for the
    image (see the module docstring). Each run is appended to `results`; output goes to the task's `task.log`,
    and to stdout too with `stream`."""

    def __init__(self, image: str, full_command: list[str], pipeline_root: str,
                 runner: local_config.LocalRunnerType, *, results: list[TaskResult], stream: bool = False) -> None:
        self.image = image
        self.command = task_command(full_command)
        self.pipeline_root = pipeline_root
        self.results = results
        self.stream = stream

    def run(self) -> status.Status:
        """Run the command; SUCCESS when it exits 0."""
        executor_input = json.loads(self.command[_flag_index(self.command, INVOCATION_FLAG)])
        output_file = executor_input["outputs"]["outputFile"]
        task_root = os.path.dirname(output_file)
        os.makedirs(task_root, exist_ok=True)
        started = time.monotonic()
        with open(os.path.join(task_root, LOG_NAME), "w", encoding="utf-8") as log, subprocess.Popen(
                self.command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
                env=task_environment()) as process:
            assert process.stdout is not None
            for line in process.stdout:
                log.write(line)
                if self.stream:
                    print(line, end="")
            returncode = process.wait()
        self.results.append(TaskResult(task_name(executor_input), time.monotonic() - started, returncode,
                                       task_root, output_file))
        return status.Status.SUCCESS if returncode == 0 else status.Status.FAILURE


def _flag_index(command: Sequence[str], flag: str) -> int:
    """Index of the value of `flag` (given as two arguments, as TFX's compiler writes it)."""
    try:
        return command.index(flag) + 1
    except ValueError:
        raise ConfigError(f"not a TFX task command: no {flag}") from None


# ----- one run ----------------------------------------------------------------------------------------------------
def run_compiled(spec_path: str, arguments: Mapping[str, str] | None = None, pipeline_root: str | None = None,
                 stream: bool = False) -> LocalRun:
    """Execute the compiled pipeline `spec_path` with kfp.local and `ProjectTaskHandler`.

    `arguments`: root parameter values for this run (the rest keep their compiled defaults; see
    `kubeflow_runner.apply_overrides`). `pipeline_root`: where task outputs go (default: the spec's
    `defaultPipelineRoot`, which must be a local path). A failing task stops the run: `LocalRun.failed` names it.
    """
    spec = load_spec(spec_path)
    root = pipeline_root or spec.get("defaultPipelineRoot")
    if not root:
        raise ConfigError(f"{spec_path}: no defaultPipelineRoot; pass a pipeline root")
    if "://" in root:
        raise ConfigError(f"pipeline root {root}: kfp.local writes to local folders only (compile with a local "
                          "--work-dir, or pass a local pipeline root)")
    unknown = set(arguments or {}) - set(spec["root"].get("inputDefinitions", {}).get("parameters", {}))
    if unknown:
        raise ConfigError(f"not a parameter of {spec_path}: {', '.join(sorted(unknown))}")
    pipeline = kfp_components.load_component_from_text(json.dumps(kfp_local_names(spec)))
    run = LocalRun(spec_path, os.path.abspath(root), dict(arguments or {}),
                   expected_tasks=len(spec["root"]["dag"]["tasks"]))
    with _handler_installed(functools.partial(ProjectTaskHandler, results=run.tasks, stream=stream)), \
            _local_session(run.pipeline_root):
        pipeline(**run.arguments)
    if run.failed is None and len(run.tasks) != run.expected_tasks:  # kfp.local ran tasks some other way
        raise RuntimeError(f"kfp.local ran {len(run.tasks)} of {run.expected_tasks} tasks through "
                           "ProjectTaskHandler: has kfp.local's handler lookup changed? (written for kfp 2.9)")
    return run


def kfp_local_names(spec: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of `spec` whose components are named as KFP's own compiler names them, `comp-<name>`: kfp.local
    names each task's output folder after its component, cutting that prefix off unchecked (TFX's compiler names
    components without it: `Tuner` would become ``, `ImportSchemaGen` `tSchemaGen`)."""
    spec = json.loads(json.dumps(spec))
    prefix = dsl_utils.COMPONENT_NAME_PREFIX
    spec["components"] = {prefix + name: component for name, component in spec["components"].items()}
    for task in spec["root"]["dag"]["tasks"].values():
        task["componentRef"]["name"] = prefix + task["componentRef"]["name"]
    return spec


@contextmanager
def _handler_installed(handler: Any) -> Iterator[None]:
    """`handler` as kfp.local's task handler for `SubprocessRunner`, for the duration of the block."""
    original = subprocess_task_handler.SubprocessTaskHandler
    subprocess_task_handler.SubprocessTaskHandler = handler
    try:
        yield
    finally:
        subprocess_task_handler.SubprocessTaskHandler = original


@contextmanager
def _local_session(pipeline_root: str) -> Iterator[None]:
    """kfp.local initialised for one run (failures reported, not raised); its previous global config restored."""
    previous = local_config.LocalExecutionConfig.instance
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=pipeline_root, raise_on_error=False)
    try:
        yield
    finally:
        local_config.LocalExecutionConfig.instance = previous
