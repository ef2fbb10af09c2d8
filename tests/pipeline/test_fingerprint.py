"""Tests for pipeline.fingerprint: each component's source list covers every `components` file its code runs."""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest

from pipeline import fingerprint, pipeline

ROOT = fingerprint._ROOT


def _module_file(module: str) -> Path | None:
    """`components.a.b` → components/a/b.py or components/a/b/__init__.py (None for a name inside a module)."""
    parts = module.split(".")[1:]
    if not parts:
        return ROOT / "__init__.py"
    for candidate in (ROOT.joinpath(*parts).with_suffix(".py"), ROOT.joinpath(*parts, "__init__.py")):
        if candidate.is_file():
            return candidate
    return None


def _imported_components_modules(node: ast.AST) -> set[str]:
    names = set()
    for item in ast.walk(node):  # module-level and function-level imports alike
        if isinstance(item, ast.Import):
            names |= {alias.name for alias in item.names}
        elif isinstance(item, ast.ImportFrom) and item.module and item.level == 0:
            names.add(item.module)
            names |= {f"{item.module}.{alias.name}" for alias in item.names}
    return {name for name in names if name == "components" or name.startswith("components.")}


def _code_files(entry: str) -> set[Path]:
    """Every file under components/ that importing `entry` runs (packages' __init__ included), transitively."""
    seen: set[Path] = set()
    pending = [entry]
    while pending:
        module = pending.pop()
        parts = module.split(".")
        for depth in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__, a/b/__init__ too
            path = _module_file(".".join(parts[:depth]))
            if path is None or path in seen:
                continue
            seen.add(path)
            pending += _imported_components_modules(ast.parse(path.read_text(encoding="utf-8")))
    return seen


def _covered(sources: tuple[str, ...]) -> set[Path]:
    covered = set()
    for relative in sources:
        target = ROOT / relative
        covered |= set(target.rglob("*.py")) if target.is_dir() else {target}
    return covered


def _docstring_only(path: Path) -> bool:
    body = ast.parse(path.read_text(encoding="utf-8")).body
    return len(body) == 1 and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)


@pytest.mark.parametrize(("module_fn", "sources"), [
    (pipeline.TRANSFORM_FN, fingerprint.TRANSFORM_SOURCES),
    (pipeline.TUNER_FN, fingerprint.TRAINER_SOURCES),
    (pipeline.TRAINER_FN, fingerprint.TRAINER_SOURCES),
])
def test_source_lists_cover_the_code_each_module_file_runs(module_fn, sources):
    module = module_fn.rsplit(".", 1)[0]
    runs = {path for path in _code_files(module) if not _docstring_only(path)}
    assert (ROOT / "settings.py") in runs  # the typed settings each module file validates its custom_config with
    missing = sorted(str(path.relative_to(ROOT)) for path in runs - _covered(sources))
    assert missing == []


def test_fingerprint_changes_with_the_settings_code(monkeypatch, tmp_path):
    trainer, transform = (fingerprint.source_fingerprint(fingerprint.TRAINER_SOURCES),
                          fingerprint.source_fingerprint(fingerprint.TRANSFORM_SOURCES))
    copy = tmp_path / "components"
    shutil.copytree(ROOT, copy)
    edited = copy / "trainer" / "settings.py"
    edited.write_text(edited.read_text() + "\n# edited\n")
    monkeypatch.setattr(fingerprint, "_ROOT", copy)
    assert fingerprint.source_fingerprint(fingerprint.TRAINER_SOURCES) != trainer
    assert fingerprint.source_fingerprint(fingerprint.TRANSFORM_SOURCES) == transform  # not the Transform's code
    shared = copy / "settings.py"
    shared.write_text(shared.read_text() + "\n# edited\n")
    assert fingerprint.source_fingerprint(fingerprint.TRANSFORM_SOURCES) != transform
