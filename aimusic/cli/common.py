"""What every command module of the CLI shares: consoles, common options, one-line errors, early checks.

Checks that need no database, model or Prefect (source names, a writable ``--db`` or ``--out``) run before
anything starts, so a typo costs a second and one line, never a traceback.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console

from aimusic.core.config import ConfigError

console = Console(stderr=True)
out = Console()

DbOpt = Annotated[
    Path | None, typer.Option("--db", help="DuckDB file (default: $AIMUSIC_DB, else data/aimusic.duckdb)")
]
TopicsOpt = Annotated[Path | None, typer.Option("--topics", help="topics file (default: data/topics.toml)")]
ModelOpt = Annotated[
    str | None,
    typer.Option("--model", help="sentiment model, e.g. minilm-debate, minilm-ft or vader (default: $AIMUSIC_MODEL, "
                 "else the first of the default chain that loads here)"),
]

#: library loggers whose INFO lines repeat what the commands print as their summary
QUIET_LOGGERS = ("httpx", "urllib3", "prawcore", "filelock", "asyncio", "aimusic.debate.signals")


def csv_list(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def fail(message: str, code: int = 2) -> NoReturn:
    """Print ``error: message`` on one line (to stderr) and exit with ``code``."""
    console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True, markup=True)
    raise typer.Exit(code)


def message_of(exc: BaseException) -> str:
    """An exception as the one line a user reads (a KeyError's message without the quotes repr adds)."""
    if isinstance(exc, KeyError) and exc.args:
        return str(exc.args[0])
    return str(exc)


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in QUIET_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.WARNING)


def prefect_env() -> None:
    """Settings Prefect needs here: no telemetry (no network), no empty API URL (it breaks the events worker)."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LOG_PRINTS", "false")
    if os.environ.get("PREFECT_API_URL", None) == "":
        del os.environ["PREFECT_API_URL"]


def expected_errors() -> tuple[type[BaseException], ...]:
    """The errors a command reports as one line (exit 2): configuration, topics, database, model, input."""
    from aimusic.core.topics import TopicsError
    from aimusic.store.db import StoreError
    from sentiment import ScorerError

    return (ConfigError, TopicsError, StoreError, ScorerError, KeyError, FileNotFoundError)


@contextlib.contextmanager
def reported(*also: type[BaseException], after: str = "") -> Iterator[None]:
    """Report the expected errors (and ``also``) as one line, ``after`` appended, and exit 2."""
    try:
        yield
    except (*expected_errors(), *also) as exc:
        fail(message_of(exc) + after)


def check_sources(names: Sequence[str] | None) -> None:
    """Fail (one line, exit 2) on a name that is not a registered source."""
    if not names:
        return
    from aimusic.sources import REGISTRY

    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        fail(f"unknown source(s): {', '.join(unknown)}; known: {', '.join(REGISTRY)}")


def writable_problem(path: Path) -> str | None:
    """Why a file cannot be written at ``path`` (its folder is created if missing), or ``None`` if it can."""
    if path.is_dir():
        return "it is a directory"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return f"cannot create the directory {path.parent} ({exc.strerror or exc})"
    if path.exists():
        return None if os.access(path, os.W_OK) else "permission denied"
    try:
        with tempfile.TemporaryFile(dir=path.parent):
            pass
    except OSError as exc:
        return f"no file can be created in {path.parent} ({exc.strerror or exc})"
    return None


def check_db(db: Path | None) -> None:
    """Fail (one line, exit 2) when the ``--db`` given cannot be written."""
    if db is not None:
        problem = writable_problem(db.expanduser())
        if problem:
            fail(f"cannot write the database {db}: {problem}. Pass --db with a writable path.")


def check_out(path: Path) -> None:
    """Fail (one line, exit 2) when an output file cannot be written."""
    problem = writable_problem(path.expanduser())
    if problem:
        fail(f"cannot write the output file {path}: {problem}. Pass --out with a writable path.")
