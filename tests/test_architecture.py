"""The shape of the code, checked: import contracts (import-linter, configured in pyproject.toml), module
size, and raw SQL only inside the store package."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from aimusic.core.config import PROJECT_ROOT

MAX_LINES = 450
PACKAGES = ("aimusic", "flows", "sentiment")


def python_files(*packages: str) -> list[Path]:
    return sorted(p for pkg in packages for p in (PROJECT_ROOT / pkg).rglob("*.py") if "__pycache__" not in p.parts)


def test_import_contracts_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint), "--no-cache", "--no-logo", str(PROJECT_ROOT / "pyproject.toml")],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300,
    )
    assert "Contracts:" in result.stdout, result.stdout + result.stderr  # it read the contracts and ran them
    assert result.returncode == 0, result.stdout[-4000:]


def test_no_module_is_longer_than_the_limit():
    long = {str(p.relative_to(PROJECT_ROOT)): n for p in python_files(*PACKAGES)
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines (split them): {long}"


def test_only_the_store_package_sends_raw_sql_through_store_query():
    """Library code reads through named queries; ``Store.query(sql)`` is for tests and exploration."""
    store_package = PROJECT_ROOT / "aimusic" / "store"
    offenders = []
    for path in python_files(*PACKAGES):
        if store_package in path.parents:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "query":
                offenders.append(f"{path.relative_to(PROJECT_ROOT)}:{node.lineno}")
    assert not offenders, f"raw SQL outside aimusic.store: {offenders}"
