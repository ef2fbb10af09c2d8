"""Static checks of the pipeline image's Dockerfile (no Docker engine here): hadolint-style rules that can be checked
by reading it, and that it installs exactly what `make setup` installs, from files that exist and are not
.dockerignored."""

from __future__ import annotations

import re
import shlex
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipeline import kubeflow_runner

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Instruction:
    line: int
    keyword: str
    args: str


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions with continuation lines joined and comment lines dropped (as Docker's parser does)."""
    instructions: list[Instruction] = []
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not pending):
            continue
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending += stripped[:-1].rstrip() + " "
            continue
        full = (pending + stripped).strip()
        pending = ""
        keyword, _, args = full.partition(" ")
        instructions.append(Instruction(start, keyword.upper(), args.strip()))
    assert not pending, "dangling line continuation at the end of the Dockerfile"
    return instructions


def stages(instructions: list[Instruction]) -> list[list[Instruction]]:
    result: list[list[Instruction]] = []
    for ins in instructions:
        if ins.keyword == "FROM":
            result.append([])
        if result:
            result[-1].append(ins)
    return result


def global_args(instructions: list[Instruction]) -> dict[str, str]:
    values = {}
    for ins in instructions:
        if ins.keyword == "FROM":
            break
        if ins.keyword == "ARG" and "=" in ins.args:
            name, value = ins.args.split("=", 1)
            values[name] = value
    return values


def env_values(stage: list[Instruction]) -> dict[str, str]:
    values: dict[str, str] = {}
    for ins in stage:
        if ins.keyword != "ENV":
            continue
        words = shlex.split(ins.args)
        if "=" not in words[0]:
            values[words[0]] = " ".join(words[1:])
        else:
            values.update(word.split("=", 1) for word in words)
    return values


GPU_ONLY = re.compile(r'^if \[ "\$GPU" = 1 \]; then (?P<command>.+); fi$')


def run_commands(stage: list[Instruction], gpu: bool = False) -> list[str]:
    """Each `&&`-separated command of every RUN, in order, as the build runs them with `--build-arg GPU=…`
    (`if [ "$GPU" = 1 ]; then CMD; fi`: CMD with GPU=1, nothing without)."""
    commands = []
    for part in (part.strip() for ins in stage if ins.keyword == "RUN" for part in ins.args.split("&&")):
        conditional = GPU_ONLY.match(part)
        if conditional is None:
            commands.append(part)
        elif gpu:
            commands.append(conditional["command"])
    return commands


def _ignore_regex(pattern: str) -> re.Pattern[str]:
    """.dockerignore pattern (Go filepath.Match plus `**`) as a regex over context-relative paths."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Whether Docker leaves `path` out of the build context: it or a parent folder matches; last match wins."""
    parts = path.strip("/").split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        regex = _ignore_regex(pattern.lstrip("!").strip("/"))
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            ignored = not negate
    return ignored


@pytest.fixture(scope="module")
def instructions():
    return parse_dockerfile((ROOT / "Dockerfile").read_text())


@pytest.fixture(scope="module")
def final(instructions):
    return stages(instructions)[-1]


@pytest.fixture(scope="module")
def ignore_patterns():
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def _lock_version(package: str) -> str:
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if line.lower().startswith(package + "=="):
            return line.split("==", 1)[1].strip()
    raise AssertionError(f"{package} not in requirements.lock")


def test_parser_joins_continuations_and_skips_comments():
    parsed = parse_dockerfile("# c\nFROM a:1 AS x\n\nRUN one \\\n  # inside\n    && two\nUSER 1\n")
    assert [(i.keyword, i.args) for i in parsed] == [("FROM", "a:1 AS x"), ("RUN", "one && two"), ("USER", "1")]


def test_base_images_are_pinned(instructions):
    args = global_args(instructions)
    images = []
    for ins in instructions:
        if ins.keyword == "FROM":
            image = ins.args.split()[0]
            image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], image)
            images.append(image)
    for image in images:
        name, _, tag = image.partition("@")[0].rpartition(":")
        assert name and tag and tag != "latest", f"unpinned base image {image} (DL3006/DL3007)"
    python, beam = images[-1], images[0]
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", python) and ">=3.11" in requires
    assert beam == f"apache/beam_python3.11_sdk:{_lock_version('apache-beam')}"  # same Beam as the workers


def test_pip_installs_only_lock_files_and_the_project_without_cache(final):
    installs = [cmd for cmd in run_commands(final, gpu=True) if cmd.startswith("pip install")]
    assert installs
    for cmd in installs:
        words = shlex.split(cmd)
        assert "--no-cache-dir" in words, f"{cmd}: add --no-cache-dir (DL3042)"
        assert "--no-deps" in words, f"{cmd}: everything is pinned in the lock files; install with --no-deps"
        targets = [w for w in words[2:] if not w.startswith("-")]
        assert targets in (["requirements.lock"], ["requirements-tfx.lock"], ["requirements-gpu.lock"], ["."]), \
            f"{cmd}: installs something not pinned by the lock files (DL3013)"


def _make_setup_installs(gpu: bool = False) -> list[tuple[str, set[str]]]:
    """(target, flags) of every `pip install` in the Makefile's setup recipe: the CPU install (`$(STAMP)`), then with
    `gpu` the CUDA wheels of `make setup GPU=1` (`$(GPU_STAMP)`)."""
    makefile = (ROOT / "Makefile").read_text()
    result = _recipe_installs(makefile, "\n$(STAMP):")
    return result + _recipe_installs(makefile, "\n$(GPU_STAMP):") if gpu else result


def _recipe_installs(makefile: str, target: str) -> list[tuple[str, set[str]]]:
    result = []
    recipe = makefile[makefile.index(target):]
    recipe = recipe[:recipe.index("\n\n")]
    for line in recipe.splitlines():
        if "pip install" not in line:
            continue
        words = shlex.split(line.split("2>&1")[0])[1:]  # drop $(BIN)/pip, the output filter
        target = words[words.index("-r") + 1] if "-r" in words else words[words.index("-e") + 1]
        flags = {w for w in words if w.startswith("--")} - {"--quiet", "--disable-pip-version-check"}
        result.append((target, flags))
    return result


def _docker_installs(commands: list[str]) -> list[tuple[str, set[str]]]:
    docker = []
    for cmd in commands:
        if cmd.startswith("pip install"):
            words = shlex.split(cmd)
            target = words[words.index("-r") + 1] if "-r" in words else words[words.index("-e") + 1]
            docker.append((target, {w for w in words if w.startswith("--")} - {"--no-cache-dir"}))
    return docker


def test_installs_exactly_like_make_setup(final):
    commands = run_commands(final)
    assert _docker_installs(commands) == _make_setup_installs()
    assert commands.index("pip check") > max(i for i, c in enumerate(commands) if c.startswith("pip install"))
    assert "visionline weights" in commands
    weights = commands.index("visionline weights")
    assert weights > commands.index("pip check"), "weights are converted by the installed project"
    venv = next(c for c in commands if c.startswith("python -m venv"))
    assert commands.index(venv) < min(i for i, c in enumerate(commands) if c.startswith("pip install"))


def test_gpu_build_arg_adds_the_cuda_wheels_of_make_setup_gpu(final, instructions):
    assert any(i.keyword == "ARG" and i.args == "GPU=0" for i in final), "the final stage declares ARG GPU=0"
    gpu = _docker_installs(run_commands(final, gpu=True))
    make_gpu = _make_setup_installs(gpu=True)
    assert sorted(gpu, key=lambda t: t[0]) == sorted(make_gpu, key=lambda t: t[0])
    assert [t for t, _ in gpu].index("requirements-gpu.lock") < [t for t, _ in gpu].index("."), \
        "the CUDA wheels go in before the project (and `pip check` checks them too)"
    assert ("requirements-gpu.lock", {"--no-deps"}) not in _docker_installs(run_commands(final))  # GPU=0: not


def test_environment_for_tfx_and_baked_weights(final):
    env = env_values(final)
    assert env["TF_USE_LEGACY_KERAS"] == "1"  # tf.Transform needs Keras 2 (tf_keras)
    assert env["VISIONLINE_CACHE"].startswith("/") and not env["VISIONLINE_CACHE"].startswith("/home")
    assert env["PATH"].startswith(env["VIRTUAL_ENV"] + "/bin:"), "KFP runs `python -m tfx…`: the venv's python"
    keywords = [i.keyword for i in final]
    first_env = keywords.index("ENV")
    weights_run = next(n for n, i in enumerate(final) if i.keyword == "RUN" and "visionline weights" in i.args)
    assert first_env < weights_run


def test_copies_exist_and_cover_what_the_pipeline_runs(final, ignore_patterns):
    copied = []
    lock_copy = None
    for n, ins in enumerate(final):
        if ins.keyword in ("COPY", "ADD"):
            assert ins.keyword == "COPY", "use COPY, not ADD (DL3020)"
            words = [w for w in ins.args.split() if not w.startswith("--")]
            if "--from=" in ins.args:
                continue
            for source in words[:-1]:
                assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
                assert not dockerignored(source, ignore_patterns), f"COPY {source}: excluded by .dockerignore"
                copied.append(source.rstrip("/"))
            if "requirements.lock" in words:
                lock_copy = n
    # module paths (components.modules.*), the packages (pipeline, and serving, which its CLI imports), curated
    # schemas, install metadata (readme too)
    assert set(copied) >= {"components", "pipeline", "serving", "schema", "pyproject.toml", "README.md",
                           "requirements.lock", "requirements-tfx.lock"}
    first_install = next(n for n, i in enumerate(final) if i.keyword == "RUN" and "pip install" in i.args)
    assert lock_copy is not None and lock_copy < first_install, "lock files copied before installing from them"
    assert "packages" in tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_code_lives_where_the_compiler_points(final):
    """`kubeflow_runner.image_path` maps repo files (curated schemas) to IMAGE_ROOT: the WORKDIR the code is in."""
    workdirs = [i.args for i in final if i.keyword == "WORKDIR"]
    assert workdirs[0] == kubeflow_runner.IMAGE_ROOT
    assert all(w.startswith("/") for w in workdirs), "WORKDIR must be absolute (DL3000)"
    assert kubeflow_runner.image_path(str(ROOT / "schema" / "digits" / "schema.pbtxt")) == \
        f"{kubeflow_runner.IMAGE_ROOT}/schema/digits/schema.pbtxt"


def test_runs_as_a_numeric_non_root_user(final):
    users = [i.args for i in final if i.keyword == "USER"]
    assert users and users[-1] not in ("root", "0") and users[-1].isdigit(), \
        "last USER must be non-root (DL3002), numeric so Kubernetes runAsNonRoot can verify it"
    assert any(f"--uid {users[-1]}" in cmd for cmd in run_commands(final) if cmd.startswith("useradd"))


def test_hadolint_style_rules(instructions, final):
    for cmd in run_commands(final):
        assert not cmd.startswith("cd "), f"{cmd}: use WORKDIR (DL3003)"
        assert "sudo " not in cmd, f"{cmd}: no sudo (DL3004)"
        if "apt-get install" in cmd:
            assert "--no-install-recommends" in cmd and " -y" in cmd, f"{cmd}: DL3015/DL3014"
    for ins in final:
        if ins.keyword in ("ENTRYPOINT", "CMD"):
            assert ins.args.startswith("["), f"{ins.keyword} in JSON form (DL3025)"
    assert sum(i.keyword == "ENTRYPOINT" for i in final) <= 1
    assert sum(i.keyword == "FROM" for i in instructions) == len(stages(instructions))


def test_dockerignore_keeps_local_state_out(ignore_patterns):
    for path in (".venv", ".git", ".visionline", "components/__pycache__", "visionline_pipeline.json"):
        assert dockerignored(path, ignore_patterns), path
    for path in ("components/modules/trainer_module.py", "schema/digits/schema.pbtxt", "pipeline/cli.py"):
        assert not dockerignored(path, ignore_patterns), path
