"""Packaging: pyproject.toml declares every third-party package the product code imports, in ranges that admit the
lock files' pins (the lock files stay the install source), and the import contracts that `make lint` checks exist."""

from __future__ import annotations

import ast
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("pipeline", "components", "serving")
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _declared() -> dict[str, Requirement]:
    requirements = (Requirement(text) for text in PYPROJECT["project"]["dependencies"])
    return {canonicalize_name(req.name): req for req in requirements}


def _pins() -> dict[str, str]:
    pins = {}
    for lock in ("requirements.lock", "requirements-tfx.lock"):
        for line in (ROOT / lock).read_text(encoding="utf-8").splitlines():
            line = line.split("#", 1)[0].strip()
            if "==" in line:
                name, version = line.split("==", 1)
                pins[canonicalize_name(name)] = version.strip()
    return pins


def _imported_top_levels() -> set[str]:
    names = set()
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    names.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n not in PACKAGES and n != "__future__"}


def test_every_declared_range_admits_the_locked_version():
    pins = _pins()
    for name, requirement in _declared().items():
        assert name in pins, f"{name} is declared in pyproject.toml but not pinned in the lock files"
        assert requirement.specifier.contains(pins[name], prereleases=True), \
            f"{requirement} does not admit the locked {name}=={pins[name]}"


def test_every_imported_package_is_declared():
    distributions = metadata.packages_distributions()
    declared = set(_declared())
    missing = {}
    for module in sorted(_imported_top_levels()):
        providers = {canonicalize_name(d) for d in distributions.get(module, [])}
        assert providers, f"no installed distribution provides the imported module {module!r}"
        if not providers & declared:
            missing[module] = sorted(providers)
    assert not missing, f"imported but not declared in pyproject.toml dependencies: {missing}"


def test_import_contracts_cover_layering_and_cycles():
    contracts = PYPROJECT["tool"]["importlinter"]["contracts"]
    layers = [c for c in contracts if c["type"] == "layers"]
    assert any(c["layers"] == ["pipeline", "serving", "components"] for c in layers)
    acyclic = [c for c in contracts if c["type"] == "acyclic_siblings"]
    assert any(set(c["ancestors"]) == set(PACKAGES) for c in acyclic)
