"""The code's layout rules that import-linter and ruff do not check (docs/ARCHITECTURE.md)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("directory", "emulator", "cognito_admin")
MAX_LINES = 650


def _modules() -> list[Path]:
    return sorted(
        path
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if "migrations" not in path.parts
    )


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imported_module(path: Path, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = _module_name(path).split(".")
    if path.name != "__init__.py":
        package.pop()
    base = package[: len(package) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def test_the_packages_are_found():
    names = {_module_name(path) for path in _modules()}
    assert {"directory.outbox", "directory.services.users", "directory.sync.pull", "emulator"} <= names


def test_no_module_imports_another_modules_private_name():
    crossings = []
    for path in _modules():
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.ImportFrom):
                continue
            source = _imported_module(path, node)
            if source == _module_name(path) or not source.startswith(PACKAGES):
                continue
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    crossings.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {source}.{alias.name}")
    assert crossings == []


def test_no_module_is_longer_than_the_limit_without_a_written_reason():
    architecture = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    explained = set(re.findall(r"`([\w/]+\.py)` \(over the size limit", architecture))
    too_long = []
    for path in _modules():
        relative = str(path.relative_to(ROOT))
        lines = len(path.read_text().splitlines())
        if lines > MAX_LINES and relative not in explained:
            too_long.append(f"{relative}: {lines} lines")
    assert too_long == []
