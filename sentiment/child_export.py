"""Exporting a model's ONNX graph in a child process (for :func:`sentiment.runtime.cached_graph`).

An export holds the PyTorch model, the traced graph and the serialised one at once: for MiniLM about 400 MB
above the loaded session, and some of it stays with the process. A command with a memory goal (``aimusic
backfill``) wraps its model loading in :func:`exports_in_child`; a model that names a :data:`Recipe` is then
exported by a spawned child process and this process only loads the result.
"""

from __future__ import annotations

import contextlib
import importlib
import multiprocessing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

#: an export recipe a child process can run: ("module:function", arguments); it is called as
#: ``function(*arguments, target_path)`` and must write the graph to ``target_path`` (atomically)
Recipe = tuple[str, tuple[Any, ...]]
_ON = False


@contextlib.contextmanager
def exports_in_child() -> Iterator[None]:
    """Within this block, graphs whose model names a :data:`Recipe` are exported in a child process (spawned:
    a fresh interpreter, so no thread or lock state of this one is copied), and this process only loads the
    result. For commands with a memory goal; one-off, since the graph is cached."""
    global _ON
    before, _ON = _ON, True
    try:
        yield
    finally:
        _ON = before


def _run_child_export(function: str, args: tuple[Any, ...], target: str, reply: Any) -> None:
    """The child's side of :func:`export_in_child`: the reason of a failure goes back in one line (no
    traceback on the terminal), with exit code 1."""
    try:
        module, _, name = function.partition(":")
        getattr(importlib.import_module(module), name)(*args, Path(target))
    except Exception as exc:  # any failure of the export is reported to the parent, which falls back
        reply.send(" ".join(f"{type(exc).__name__}: {exc}".split())[:300])
        raise SystemExit(1) from None
    finally:
        reply.close()


def export_in_child(recipe: Recipe, target: Path, what: str) -> None:
    """Run ``recipe`` in a spawned child process and wait; raises RuntimeError (with the child's reason) when it
    wrote no graph."""
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    process = context.Process(target=_run_child_export, args=(recipe[0], recipe[1], str(target), send),
                              name=f"aimusic-export-{what}")
    process.start()
    send.close()
    process.join()
    try:
        reason = receive.recv() if receive.poll() else ""
    except EOFError:  # the child closed its end without a word: it succeeded (or died before it could say)
        reason = ""
    receive.close()
    if process.exitcode != 0 or not target.is_file():
        raise RuntimeError(f"exporting {what} in a child process failed (exit code {process.exitcode})"
                           + (f": {reason}" if reason else ""))


def enabled() -> bool:
    """Inside :func:`exports_in_child`."""
    return _ON
