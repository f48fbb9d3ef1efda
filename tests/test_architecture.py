"""The house's rules that code review would otherwise have to remember (docs/architecture.md):
packages import in one direction only (import-linter's contracts in pyproject.toml), and no
module reaches into another's `_private` names."""

import ast
import sys
from pathlib import Path

import pytest
from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parents[1]
# Our code: the product, its tests, benchmarks and the screenshot script.
SOURCES = [ROOT / "generations", ROOT / "kling_site", ROOT / "tests", ROOT / "bench", ROOT / "docs"]
OURS = ("generations", "kling_site", "tests", "bench")
DJANGO_API = {"_meta"}  # a model's documented options API, not a private name


def test_packages_import_in_the_documented_direction(capsys) -> None:
    sys.path.insert(0, str(ROOT))
    try:
        exit_code = lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True)
    finally:
        sys.path.remove(str(ROOT))
    assert exit_code == 0, capsys.readouterr().out


def _module_of(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _absolute(module: str, path: Path, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = module.split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    base = package[: len(package) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def _private_imports(sources: list[Path] = SOURCES, root: Path = ROOT) -> list[str]:
    found = []
    for source in sources:
        for path in sorted(source.rglob("*.py")):
            if "migrations" in path.parts:
                continue
            tree = ast.parse(path.read_text(), str(path))
            here = _module_of(path, root)
            imported_modules: dict[str, str] = {}  # local name → one of our modules
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom):
                    origin = _absolute(here, path, node)
                    if not origin.startswith(OURS):
                        continue
                    for alias in node.names:
                        if alias.name.startswith("_") and not alias.name.startswith("__"):
                            found.append(f"{path.relative_to(root)}: {origin}.{alias.name}")
                        imported_modules[alias.asname or alias.name] = f"{origin}.{alias.name}"
                elif isinstance(node, ast.Import):
                    for alias in node.names:
                        if alias.name.startswith(OURS):
                            imported_modules[alias.asname or alias.name] = alias.name
            for node in ast.walk(tree):
                if (
                    isinstance(node, ast.Attribute)
                    and isinstance(node.value, ast.Name)
                    and node.value.id in imported_modules
                    and node.attr.startswith("_")
                    and not node.attr.startswith("__")
                    and node.attr not in DJANGO_API
                ):
                    origin = imported_modules[node.value.id]
                    found.append(f"{path.relative_to(root)}: {origin}.{node.attr}")
    return found


def test_no_module_imports_another_modules_private_names() -> None:
    assert _private_imports() == []


@pytest.mark.parametrize(
    ("code", "caught"),
    [
        ("from generations.galleries.zips import _zip_name\n", True),
        ("from ..kling import errors\nerrors._scrub('x')\n", True),
        ("from . import boards\nboards._item\n", True),
        ("from generations.galleries.zips import zip_name\n", False),
        ("from django.db import models\nmodels._x = 1\n", False),
    ],
)
def test_the_private_name_check_catches_what_it_should(code, caught, tmp_path) -> None:
    package = tmp_path / "generations" / "review"
    package.mkdir(parents=True)
    (package / "probe.py").write_text(code)
    assert bool(_private_imports([tmp_path / "generations"], tmp_path)) is caught
