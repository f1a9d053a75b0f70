"""The documentation stays true: the site builds with `mkdocs build --strict` (broken links, anchors or nav
entries fail it), every repository path the README and the docs name exists, the architecture page names every
package, and the README stays a short front door with the two quickstart commands."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from aimusic.core.config import PROJECT_ROOT

README = PROJECT_ROOT / "README.md"
DOCS = PROJECT_ROOT / "docs"
QUICKSTART = (
    "make run    # install into .venv, run one monitoring pass, then open the dashboard on http://127.0.0.1:8501\n"
    "make test   # install into .venv (with the dev tools), then lint and run the whole test suite\n"
)
#: a repository path as the docs write it: a top-level directory of the project, then a path
PATH = re.compile(
    r"(?<![\w./-])((?:aimusic|flows|sentiment|tests|benchmarks|scripts|docs|data|\.streamlit|\.ci)/[\w./*-]*)"
)
TOP_FILES = ("app.py", "mkdocs.yml", "pyproject.toml", "Makefile", ".env.example", ".streamlit/config.toml")
#: written by the tool at run time (git-ignored), so absent from a clone
GENERATED = ("data/aimusic.duckdb", "data/demo.duckdb", "data/exports/", "data/quarantine/")


def _documents() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


def test_readme_is_a_short_front_door() -> None:
    text = README.read_text()
    assert len(text.splitlines()) <= 250
    assert f"```bash\n{QUICKSTART}```" in text  # the two commands, exactly
    assert "## Libraries and what they carry" in text
    for page in sorted(DOCS.glob("*.md")):
        if page.name != "index.md":
            assert f"](docs/{page.name})" in text, f"the README does not point to docs/{page.name}"
    shots = re.findall(r"\]\((docs/screenshots/[\w.-]+\.png)\)", text)
    assert len(set(shots)) >= 8 and all((PROJECT_ROOT / s).is_file() for s in shots)


def test_every_named_path_exists() -> None:
    missing = []
    for doc in _documents():
        for raw in PATH.findall(doc.read_text()):
            path = raw.rstrip(".,:;")
            if any(c in path for c in "*<>") or path.startswith(GENERATED) or path.endswith("/."):
                continue
            if not (PROJECT_ROOT / path).exists():
                missing.append(f"{doc.relative_to(PROJECT_ROOT)}: {path}")
    for name in TOP_FILES:
        assert (PROJECT_ROOT / name).exists(), name
    assert missing == []


def test_architecture_names_every_package() -> None:
    text = (DOCS / "architecture.md").read_text()
    packages = sorted(p.parent.name for p in (PROJECT_ROOT / "aimusic").glob("*/__init__.py"))
    assert len(packages) >= 8
    for package in packages:
        assert f"`aimusic/{package}/`" in text, f"docs/architecture.md does not describe aimusic/{package}/"
    assert "flows/" in text and "sentiment/" in text


@pytest.mark.slow
def test_site_builds_strict(tmp_path: Path) -> None:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    built = {p.relative_to(tmp_path / "site").as_posix() for p in (tmp_path / "site").rglob("index.html")}
    assert {"index.html", "architecture/index.html", "dashboard/index.html", "operations/index.html"} <= built
    assert (tmp_path / "site" / "screenshots" / "1-overview.png").is_file()
