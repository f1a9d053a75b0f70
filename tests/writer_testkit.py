"""Shared by the tests that read a database while another process writes it (a monitoring run, a bare writer)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from aimusic.core.config import PROJECT_ROOT


def spawn(args: list[str]) -> subprocess.Popen[str]:
    """``python *args`` in the project root, output captured (e.g. ``["-m", "tests.workers.writer", db, ...]``)."""
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    return subprocess.Popen([sys.executable, *args], cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def read_while_running(process: subprocess.Popen[str], read: Callable[[], Any], every: float,
                       timeout: float = 120) -> tuple[list[Any], list[str], dict[str, Any]]:
    """Call ``read()`` every ``every`` seconds until ``process`` exits: (what the reads returned, the errors they
    raised as a dashboard user would see them, the JSON object on the process's last output line). Fails the test
    when the process did not exit cleanly."""
    results: list[Any] = []
    errors: list[str] = []
    while process.poll() is None:
        try:
            results.append(read())
        except Exception as exc:  # any error here would reach a dashboard user
            errors.append(f"{type(exc).__name__}: {exc}")
        time.sleep(every)
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, err[-2000:]
    return results, errors, json.loads(out.strip().splitlines()[-1])
