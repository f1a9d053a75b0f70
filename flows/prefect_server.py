"""The Prefect server behind ``aimusic serve``: use the one ``PREFECT_API_URL`` names, reuse one already
answering on the chosen port, or start ``prefect server start`` as a child process and stop it on exit.

Scheduling needs a real server: Prefect's temporary in-process server refuses schedules. The child runs in its
own process group, so Ctrl-C in the terminal reaches ``aimusic serve`` first, which stops serving and then
terminates the server's whole group (SIGTERM, then SIGKILL after a grace period). Its output goes to
``$PREFECT_HOME/aimusic-server.log`` (default ``~/.prefect``). No Prefect import here: this runs before the
API URL is set.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests

log = logging.getLogger(__name__)

STARTUP_TIMEOUT = 90.0


class ServerError(RuntimeError):
    """The Prefect server cannot be reached or started; the message says what to do."""


@dataclass
class PrefectServer:
    api_url: str
    process: subprocess.Popen | None = None  # set when this process started the server
    log_path: Path | None = None

    @property
    def ui_url(self) -> str:
        url = self.api_url.rstrip("/")
        return url[: -len("/api")] if url.endswith("/api") else url

    @property
    def started_here(self) -> bool:
        return self.process is not None


def prefect_home() -> Path:
    return Path(os.environ.get("PREFECT_HOME") or "~/.prefect").expanduser()


def api_healthy(api_url: str, timeout: float = 2.0) -> bool:
    try:
        resp = requests.get(api_url.rstrip("/") + "/health", timeout=timeout)
    except requests.RequestException:
        return False
    return resp.status_code == 200


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _tail(path: Path | None, lines: int = 15) -> str:
    if not path or not path.exists():
        return ""
    text = path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
    return "\n".join(text)


def start_server(host: str, port: int, *, startup_timeout: float = STARTUP_TIMEOUT) -> PrefectServer:
    """Start ``prefect server start`` on ``host:port`` and wait until its API answers."""
    home = prefect_home()
    home.mkdir(parents=True, exist_ok=True)
    log_path = home / "aimusic-server.log"
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    cmd = [sys.executable, "-m", "prefect", "server", "start", "--host", host, "--port", str(port)]
    api_url = f"http://{host}:{port}/api"
    with open(log_path, "ab") as logfile:
        proc = subprocess.Popen(
            cmd, stdout=logfile, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True
        )
    server = PrefectServer(api_url, proc, log_path)
    deadline = time.monotonic() + startup_timeout
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise ServerError(
                    f"the Prefect server exited with code {proc.returncode} while starting (log: {log_path}):\n"
                    f"{_tail(log_path)}"
                )
            if api_healthy(api_url, timeout=1.0):
                log.info("Prefect server started on %s (pid %d, log %s)", server.ui_url, proc.pid, log_path)
                return server
            time.sleep(0.5)
        raise ServerError(
            f"the Prefect server did not answer on {api_url} within {startup_timeout:.0f}s (log: {log_path})"
        )
    except BaseException:  # Ctrl-C while starting, or a failed start: never leave the child behind
        stop_server(server)
        raise


def connect_or_start(host: str, port: int, *, startup_timeout: float = STARTUP_TIMEOUT) -> PrefectServer:
    """The server to schedule on: ``PREFECT_API_URL`` if set, else one already on ``host:port``, else a new one."""
    configured = os.environ.get("PREFECT_API_URL")
    if configured:
        if not api_healthy(configured, timeout=5.0):
            raise ServerError(
                f"PREFECT_API_URL={configured} does not answer at /health: start that server, or unset "
                "PREFECT_API_URL to let aimusic serve start one"
            )
        log.info("using the Prefect server at %s (PREFECT_API_URL)", configured)
        return PrefectServer(configured)
    api_url = f"http://{host}:{port}/api"
    if api_healthy(api_url, timeout=1.0):
        log.info("a Prefect server already answers on %s: using it", api_url)
        return PrefectServer(api_url)
    try:
        with socket.create_connection((host, port), timeout=1.0):
            raise ServerError(f"port {port} on {host} is taken by something that is not a Prefect server: use --port")
    except OSError:
        pass
    return start_server(host, port, startup_timeout=startup_timeout)


def stop_server(server: PrefectServer, *, grace: float = 20.0) -> None:
    """Terminate a server this process started (its whole process group); a no-op for others."""
    proc = server.process
    if proc is None or proc.poll() is not None:
        return
    pgid = os.getpgid(proc.pid)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        log.warning("the Prefect server did not stop within %.0fs: killing it", grace)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        proc.wait(timeout=10)
    # children that outlived the leader (uvicorn workers, services) get the same treatment
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
    log.info("Prefect server stopped")
