"""Exporting a model's ONNX graph in a child process (for :func:`sentiment.runtime.cached_graph`).

An export holds the PyTorch model, the traced graph and the serialised one at once: for MiniLM about 400 MB
above the loaded session, and some of it stays with the process. A command with a memory goal (``aimusic
backfill``) wraps its model loading in :func:`exports_in_child`; a model that names a :data:`Recipe` is then
exported by a child interpreter (``python -m sentiment.child_export``) and this process only loads the result.
"""

from __future__ import annotations

import contextlib
import importlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

#: an export recipe a child process can run: ("module:function", arguments); it is called as
#: ``function(*arguments, target_path)`` and must write the graph to ``target_path`` (atomically)
Recipe = tuple[str, tuple[Any, ...]]
_ON = False


@contextlib.contextmanager
def exports_in_child() -> Iterator[None]:
    """Within this block, graphs whose model names a :data:`Recipe` are exported in a child process (a fresh
    interpreter: no thread, lock or ``__main__`` of this one), and this process only loads the result; if the
    child fails, the graph is exported here as usual (:func:`sentiment.runtime.cached_graph`). For commands with
    a memory goal; one-off, since the graph is cached."""
    global _ON
    before, _ON = _ON, True
    try:
        yield
    finally:
        _ON = before


#: how long a child export may take (MiniLM: seconds; a stuck child must not hang an import)
TIMEOUT_SECONDS = 900
_FAILED = "aimusic-export-failed: "  # the child's last stderr line on a failure


def _run(function: str, args: list[Any], target: str) -> int:
    """The child's side (``python -m sentiment.child_export``): run the recipe; on a failure print its reason
    as one line on stderr (no traceback) and return 1."""
    import sys

    try:
        module, _, name = function.partition(":")
        getattr(importlib.import_module(module), name)(*args, Path(target))
    except Exception as exc:  # any failure of the export is reported to the parent, which exports itself
        print(_FAILED + " ".join(f"{type(exc).__name__}: {exc}".split())[:300], file=sys.stderr)
        return 1
    return 0


def export_in_child(recipe: Recipe, target: Path, what: str) -> None:
    """Run ``recipe`` in a child interpreter (``python -m sentiment.child_export``: it imports neither this
    process's ``__main__`` nor anything else of it) and wait; raises RuntimeError, with the child's reason, when
    no graph was written. The arguments must be JSON values (paths as strings)."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in [*sys.path, os.environ.get("PYTHONPATH", "")] if p)}
    command = [sys.executable, "-m", "sentiment.child_export", json.dumps([recipe[0], list(recipe[1]), str(target)])]
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=TIMEOUT_SECONDS,
                              check=False)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"exporting {what} in a child process took over {TIMEOUT_SECONDS} s") from None
    if target.is_file():  # written atomically: a whole graph, whatever the exit code says
        return
    lines = [line for line in done.stderr.splitlines() if line.startswith(_FAILED)]
    reason = lines[-1].removeprefix(_FAILED) if lines else ""
    raise RuntimeError(f"exporting {what} in a child process failed (exit code {done.returncode})"
                       + (f": {reason}" if reason else ""))


def enabled() -> bool:
    """Inside :func:`exports_in_child`."""
    return _ON


if __name__ == "__main__":
    import sys

    function, arguments, destination = json.loads(sys.argv[1])
    raise SystemExit(_run(function, arguments, destination))
