"""Deployments and schedules: the one module that creates them, and ``aimusic serve``'s engine.

What runs when (defaults; every cron is in ``[schedules]`` of ``data/topics.toml``, UTC unless ``timezone``):

==========================  ==================  ==============================================================
deployment                  default schedule    why this often
==========================  ==================  ==============================================================
monitor-reddit              ``20 * * * *``      hourly: Reddit allows 100 requests/min per OAuth client; a run
                                                uses a few dozen, and listings stop at ~1,000 items, so
                                                busy subreddits need frequent passes
monitor-free                ``5 */2 * * *``     every 2 h: Hacker News (Algolia), Mastodon, Bluesky: free,
                                                rate-limited per IP or account; 2 h keeps far inside them
monitor-x                   ``40 */6 * * *``    every 6 h: X reads are billed per post; with the per-run cap in
                                                ``[sources.x]`` this bounds the monthly bill (4 runs a day)
monitor-archive             ``10 */6 * * *``    every 6 h: Arctic Shift (Reddit history, a free service:
                                                300 requests a run at 1/s), which indexes with a delay
monitor-demo                off                 synthetic posts; only with ``--demo`` or ``enabled = true``
monitor-<source>            the source's own    any registered, enabled source in no group
                            ``default_cron``
export-daily                ``15 0 * * *``      daily aggregates and yesterday's posts to ``data/exports/``
maintenance-weekly          ``30 3 * * 0``      Sundays: re-score posts without the default model's score,
                                                compact the database
==========================  ==================  ==============================================================

Every deployment has a Prefect concurrency limit of 1 with ``CANCEL_NEW``: a run that is still going
when its next one is due makes Prefect cancel the newcomer (visible as Cancelled) instead of queueing a
pile-up. Across deployments, the database run lock (:mod:`aimusic.ops.runlock`) makes a run wait for the one in
progress (``AIMUSIC_RUN_LOCK_WAIT``, default 600 s) and then skip.

:func:`plan` is pure (config in, :class:`DeploymentSpec` list out); :func:`serve` starts or finds the server
(:mod:`flows.prefect_server`), turns the specs into Prefect deployments and serves them until Ctrl-C/SIGTERM.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from aimusic.core.topics import Topics, TopicsError
from flows.prefect_server import PrefectServer, ServerError, connect_or_start, stop_server

log = logging.getLogger(__name__)

OFF = ("", "off", "never", "none")
# seconds the runner gets to stop cleanly after Ctrl-C before it and its flow runs are ended
# (the default of Settings.serve_grace, AIMUSIC_SERVE_GRACE in the environment or .env)
RUNNER_GRACE = 10.0


def check_cron(expr: str) -> str:
    """Validate a five-field cron expression (the form Prefect schedules use)."""
    from cronsim import CronSim, CronSimError

    if len(expr.split()) != 5:
        raise ValueError(f"cron {expr!r} must have 5 fields (minute hour day month weekday)")
    try:
        CronSim(expr, datetime.now(UTC))
    except CronSimError as exc:
        raise ValueError(f"cron {expr!r}: {exc}") from None
    return expr


class MonitorGroup(BaseModel):
    """``[schedules.monitor.<group>]``: sources monitored together on one schedule (one deployment)."""

    model_config = ConfigDict(extra="forbid")
    sources: list[str] = Field(min_length=1)
    cron: str
    enabled: bool = True
    description: str = ""

    @field_validator("cron")
    @classmethod
    def _cron(cls, v: str) -> str:
        return check_cron(v)


DEFAULT_GROUPS: dict[str, MonitorGroup] = {
    "reddit": MonitorGroup(
        sources=["reddit"], cron="20 * * * *", description="Reddit hourly (100 requests/min per OAuth client)"
    ),
    "free": MonitorGroup(
        sources=["hackernews", "mastodon", "bluesky"],
        cron="5 */2 * * *",
        description="free APIs every 2 hours (Hacker News, Mastodon, Bluesky)",
    ),
    "x": MonitorGroup(sources=["x"], cron="40 */6 * * *", description="X every 6 hours (reads are billed per post)"),
    "archive": MonitorGroup(
        sources=["arcticshift"], cron="10 */6 * * *", description="Arctic Shift (Reddit history) every 6 hours"
    ),
    "demo": MonitorGroup(
        sources=["demo"], cron="0 * * * *", enabled=False, description="synthetic demo posts (only with --demo)"
    ),
}


class Schedules(BaseModel):
    """``[schedules]``: when each deployment runs. A ``[schedules.monitor]`` table replaces the default groups
    as a whole (so a source is never scheduled twice by accident)."""

    model_config = ConfigDict(extra="forbid")
    timezone: str = "UTC"
    export: str = "15 0 * * *"
    maintenance: str = "30 3 * * 0"
    monitor: dict[str, MonitorGroup] = Field(default_factory=lambda: dict(DEFAULT_GROUPS))

    @field_validator("export", "maintenance")
    @classmethod
    def _cron_or_off(cls, v: str) -> str:
        return v if v.strip().lower() in OFF else check_cron(v)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r} (use an IANA name such as UTC or Europe/Berlin)") from None
        return v


def load_schedules(topics: Topics) -> Schedules:
    """Validate ``[schedules]``; errors name the key and its line in topics.toml."""
    from aimusic.core.topics import _describe

    try:
        schedules = Schedules.model_validate(topics.schedules)
    except ValidationError as exc:
        text = topics.path.read_text(encoding="utf-8") if topics.path and topics.path.exists() else ""
        raise TopicsError(_describe(exc, text, topics.path or Path("topics"), ("schedules",))) from None
    owners: dict[str, str] = {}
    for name, group in schedules.monitor.items():
        if not group.enabled:
            continue
        for source in group.sources:
            if source in owners:
                raise TopicsError(
                    f"[schedules.monitor]: source {source!r} is in two enabled groups ({owners[source]} and "
                    f"{name}); keep it in one"
                )
            owners[source] = name
    return schedules


@dataclass(frozen=True)
class DeploymentSpec:
    """One deployment to serve: which flow, when, with which parameters."""

    name: str
    flow: str  # monitor, export or maintenance
    cron: str | None
    interval: float | None
    parameters: dict[str, Any]
    description: str
    timezone: str = "UTC"
    tags: tuple[str, ...] = ()

    @property
    def when(self) -> str:
        if self.interval:
            return f"every {self.interval:g} s"
        return f"cron {self.cron} ({self.timezone})"


@dataclass
class Plan:
    specs: list[DeploymentSpec] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what is not served and why


def plan(
    topics: Topics,
    registry: Sequence[str],
    *,
    groups: Sequence[str] | None = None,
    demo: bool = False,
    interval: float | None = None,
    export: bool = True,
    maintenance: bool = True,
    db: str | None = None,
    topics_path: str | None = None,
    model: str | None = None,
    default_cron: Callable[[str], str] | None = None,
) -> Plan:
    """The deployments ``aimusic serve`` would serve (pure, apart from reading the config objects).

    ``groups`` limits the monitor groups served (``demo`` included when named); ``demo`` adds the demo group;
    ``interval`` (seconds) replaces every monitor cron, to try things out; ``default_cron(source)`` gives the
    schedule of a registered source that is in no group.
    """
    schedules = load_schedules(topics)
    out = Plan()
    base = {"db": db, "model": model, "topics_path": topics_path}
    wanted = set(groups or [])
    unknown = wanted - set(schedules.monitor)
    if unknown:
        raise TopicsError(f"unknown schedule group(s): {', '.join(sorted(unknown))}; known: "
                          f"{', '.join(schedules.monitor)}")
    grouped: set[str] = set()
    for name, group in schedules.monitor.items():
        grouped.update(group.sources)
        is_demo = group.sources == ["demo"]
        asked = name in wanted or (demo and is_demo)
        if wanted and name not in wanted and not (demo and is_demo):
            continue
        if not (group.enabled or asked):
            out.notes.append(f"monitor-{name}: off" + (" (use --demo)" if is_demo else " (enabled = false)"))
            continue
        keep = []
        for source in group.sources:
            if source not in registry:
                out.notes.append(f"monitor-{name}: {source} is not a known source here (not installed?)")
            elif source != "demo" and not topics.source_enabled(source):
                out.notes.append(f"monitor-{name}: {source} is disabled in topics.toml")
            else:
                keep.append(source)
        if not keep:
            out.notes.append(f"monitor-{name}: no source left to run")
            continue
        out.specs.append(
            DeploymentSpec(
                name=f"monitor-{name}", flow="monitor", cron=None if interval else group.cron, interval=interval,
                parameters={"sources": keep, **base}, description=group.description or f"monitor {', '.join(keep)}",
                timezone=schedules.timezone, tags=("aimusic", "monitor"),
            )
        )
    if not wanted:
        for source in registry:
            if source in grouped or source == "demo" or not topics.source_enabled(source):
                continue
            cron = default_cron(source) if default_cron else "0 */6 * * *"
            out.specs.append(
                DeploymentSpec(
                    name=f"monitor-{source}", flow="monitor", cron=None if interval else check_cron(cron),
                    interval=interval, parameters={"sources": [source], **base},
                    description=f"{source} on its default schedule (in no [schedules.monitor] group)",
                    timezone=schedules.timezone, tags=("aimusic", "monitor"),
                )
            )
    for flow_name, cron, enabled, desc in (
        ("export", schedules.export, export, "daily aggregates and yesterday's posts to data/exports/"),
        ("maintenance", schedules.maintenance, maintenance, "re-score with the default model, compact the database"),
    ):
        dep = f"{flow_name}-{'daily' if flow_name == 'export' else 'weekly'}"
        if not enabled:
            out.notes.append(f"{dep}: off (--no-{flow_name})")
        elif cron.strip().lower() in OFF:
            out.notes.append(f"{dep}: off in [schedules]")
        else:
            params = {"db": db} if flow_name == "export" else {"db": db, "model": model}
            out.specs.append(
                DeploymentSpec(dep, flow_name, cron, None, params, desc, schedules.timezone, ("aimusic", flow_name))
            )
    return out


def to_deployments(specs: Sequence[DeploymentSpec]) -> list[Any]:
    """Prefect ``RunnerDeployment`` objects for the specs (imports Prefect: call after the API URL is set)."""
    from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
    from prefect.deployments.runner import EntrypointType
    from prefect.schedules import Cron, Interval

    from flows.housekeeping import export_flow, maintenance_flow
    from flows.monitor import monitor_flow

    flows = {"monitor": monitor_flow, "export": export_flow, "maintenance": maintenance_flow}
    out = []
    for spec in specs:
        schedule = Interval(spec.interval) if spec.interval else Cron(spec.cron, timezone=spec.timezone)
        out.append(
            flows[spec.flow].to_deployment(
                name=spec.name,
                schedules=[schedule],
                parameters={k: v for k, v in spec.parameters.items() if v is not None},
                description=spec.description,
                tags=list(spec.tags),
                concurrency_limit=ConcurrencyLimitConfig(
                    limit=1, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW
                ),
                entrypoint_type=EntrypointType.MODULE_PATH,
            )
        )
    return out


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """systemd stops services with SIGTERM: treat it like Ctrl-C so the same clean shutdown runs."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def specs_json(specs: Sequence[DeploymentSpec], limit: int | None) -> str:
    """What :mod:`flows.serve_runner` reads on stdin."""
    return json.dumps({"specs": [asdict(s) for s in specs], "limit": limit})


def start_runner(specs: Sequence[DeploymentSpec], api_url: str, limit: int | None) -> subprocess.Popen:
    """Start :mod:`flows.serve_runner` in its own session (so only the supervisor decides when it stops)."""
    env = {**os.environ, "PREFECT_API_URL": api_url}  # the runner and its flow-run subprocesses use this server
    proc = subprocess.Popen(
        [sys.executable, "-m", "flows.serve_runner"], stdin=subprocess.PIPE, env=env, start_new_session=True,
        text=True,
    )
    assert proc.stdin is not None
    proc.stdin.write(specs_json(specs, limit))
    proc.stdin.close()
    return proc


def stop_tree(proc: subprocess.Popen, *, grace: float = RUNNER_GRACE, kill_after: float = 5.0) -> None:
    """Stop the runner and every process under it (flow runs live in process groups of their own) in bounded
    time: SIGINT and ``grace`` seconds for the runner to stop cleanly, then SIGTERM to whatever is left, then
    SIGKILL after ``kill_after`` seconds. Committed data is safe (each write is one transaction) and the run
    lock dies with its holder, so a run cut short is simply done again at its next schedule."""
    import psutil

    try:
        root = psutil.Process(proc.pid)
        tree = [root, *root.children(recursive=True)]  # taken first: children outlive a dead parent's links
    except psutil.NoSuchProcess:
        proc.wait()
        return
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            log.warning("the deployment runner did not stop within %.0fs: ending it and its flow runs", grace)
    with contextlib.suppress(psutil.NoSuchProcess):
        tree += root.children(recursive=True)
    alive = [p for p in {p.pid: p for p in tree}.values() if p.is_running()]
    for p in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.terminate()
    _, alive = psutil.wait_procs(alive, timeout=kill_after)
    for p in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()
    psutil.wait_procs(alive, timeout=kill_after)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=1)
    log.info("deployment runner stopped")


def serve(
    specs: Sequence[DeploymentSpec],
    *,
    host: str = "127.0.0.1",
    port: int = 4200,
    limit: int | None = None,
    on_ready: Callable[[PrefectServer], None] | None = None,
    grace: float = RUNNER_GRACE,
) -> None:
    """Serve ``specs`` until Ctrl-C or SIGTERM, then stop the runner, its flow runs and (if this call started
    it) the server, all within about ``grace + 30`` seconds whatever the runs are doing."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # a process started with SIGINT ignored (a background job of a script, a test runner's worker) keeps it
    # ignored, and so would its runner: "Ctrl-C to stop" must hold whatever started this one
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    server: PrefectServer | None = None
    runner: subprocess.Popen | None = None
    try:
        with _sigterm_as_interrupt():
            server = connect_or_start(host, port)
            runner = start_runner(specs, server.api_url, limit)
            if on_ready:
                on_ready(server)
            code = runner.wait()
            raise ServerError(f"the deployment runner exited by itself with code {code} (see the log above)")
    except KeyboardInterrupt:
        log.info("interrupted: shutting down")
    finally:
        with _ignore_interrupts():  # a second Ctrl-C must not leave processes behind
            if runner is not None:
                stop_tree(runner, grace=grace)
            if server is not None:
                stop_server(server)


@contextlib.contextmanager
def _ignore_interrupts() -> Iterator[None]:
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
