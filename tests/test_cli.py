import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from aimusic.cli.main import app
from aimusic.core.config import PROJECT_ROOT
from aimusic.store.db import Store

runner = CliRunner()
SPINE_COMMANDS = ("run", "start", "demo", "score", "dashboard", "export", "status")


def invoke(*args: str):
    result = runner.invoke(app, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def test_help_documents_every_command():
    code, output = invoke("--help")
    assert code == 0
    for name in SPINE_COMMANDS:
        assert name in output
    for name in SPINE_COMMANDS:
        code, output = invoke(name, "--help")
        assert code == 0 and "Usage" in output


def test_demo_export_status(tmp_path: Path):
    db = tmp_path / "d.duckdb"
    code, output = invoke("demo", "--posts", "800", "--db", str(db))
    assert code == 0, output
    store = Store(db, read_only=True)
    n_posts = store.count("posts")
    assert 600 < n_posts <= 800 and store.count("scores") == n_posts
    assert store.get_meta("contains_demo") == "true"

    code, output = invoke("demo", "--posts", "800", "--db", str(db))
    assert code == 0 and "0 new" in output
    assert Store(db, read_only=True).count("posts") == n_posts

    out = tmp_path / "posts.csv"
    code, output = invoke("export", "posts", "--db", str(db), "--out", str(out))
    assert code == 0, output
    assert len(pd.read_csv(out)) == n_posts

    out = tmp_path / "reddit.csv"
    code, _ = invoke("export", "posts", "--db", str(db), "--out", str(out), "--sources", "reddit",
                     "--since", "2025-12-01", "--until", "2025-12-31")
    expected = store.query(
        "SELECT count(*) AS n FROM posts WHERE source = 'reddit' AND created_at >= '2025-12-01 00:00:00+00' "
        "AND created_at < '2026-01-01 00:00:00+00'"
    )["n"][0]
    assert code == 0 and len(pd.read_csv(out)) == expected > 0

    daily = tmp_path / "daily.parquet"
    code, _ = invoke("export", "daily", "--db", str(db), "--out", str(daily), "--format", "parquet")
    frame = pd.read_parquet(daily)
    assert code == 0 and frame["posts"].sum() == n_posts
    models = store.query("SELECT DISTINCT model FROM scores")["model"].tolist()
    assert len(models) == 1 and set(frame["model"]) == set(models)  # one model per file, the one that scored

    code, output = invoke("status", "--db", str(db))
    assert code == 0 and f"posts {n_posts:,}" in output


def small_topics(tmp_path: Path) -> Path:
    """The project's topics with a smaller demo, to keep a run quick."""
    topics = tmp_path / "topics.toml"
    topics.write_text((PROJECT_ROOT / "data" / "topics.toml").read_text().replace("posts = 6000", "posts = 300"))
    return topics


def test_run_twice_through_the_cli(tmp_path: Path):
    """Without PREFECT_API_URL the pass runs as plain functions; a skip reason is printed once, one prefix."""
    db, topics = tmp_path / "r.duckdb", small_topics(tmp_path)
    args = ("run", "--sources", "demo,reddit", "--db", str(db), "--topics", str(topics), "--model", "vader")
    code, output = invoke(*args)
    assert code == 0, output
    counts = {t: Store(db, read_only=True).count(t) for t in ("posts", "scores", "runs")}
    assert counts["posts"] > 200 and counts["scores"] == counts["posts"] and counts["runs"] == 2
    assert output.count("no API credentials") == 1 and "reddit: reddit" not in output
    assert "reddit skipped: no API credentials" in output
    assert re.search(rf"signals: entities {counts['posts']}, arguments {counts['posts']} ", output), output
    code, output = invoke(*args)
    assert code == 0, output
    again = {t: Store(db, read_only=True).count(t) for t in ("posts", "scores", "runs")}
    assert again == {**counts, "runs": counts["runs"] + 2}
    assert re.search(r"signals: entities 0, arguments 0 ", output), output  # nothing new, nothing tagged


def test_run_as_a_prefect_flow_on_request(prefect_harness, tmp_path: Path):
    db = tmp_path / "p.duckdb"
    code, output = invoke("run", "--prefect", "--sources", "demo", "--db", str(db), "--topics",
                          str(small_topics(tmp_path)), "--model", "vader")
    assert code == 0, output
    store = Store(db, read_only=True)
    run_ids = store.query("SELECT DISTINCT run_id FROM runs")["run_id"].tolist()
    assert store.count("posts") > 200 and len(run_ids) == 1
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:  # the run id is the Prefect flow run's id
        assert client.read_flow_run(run_ids[0]).name


@pytest.mark.parametrize(
    "args, message",
    [
        (("run", "--sources", "demo,tiktok"), "error: unknown source(s): tiktok; known: demo, reddit,"),
        (("run", "--db", "/proc/nope/x.duckdb"),
         "error: cannot write the database /proc/nope/x.duckdb: cannot create the directory /proc/nope"),
        (("start", "--db", "/proc/nope/x.duckdb"), "error: cannot write the database /proc/nope/x.duckdb"),
        (("demo", "--db", "/proc/nope/x.duckdb"), "error: cannot write the database /proc/nope/x.duckdb"),
    ],
)
def test_options_are_checked_before_anything_starts(monkeypatch, args, message):
    def never(*a: object, **k: object) -> None:
        raise AssertionError("the pass started before the options were checked")

    monkeypatch.setattr("aimusic.cli.run.monitor_pass", never)
    result = runner.invoke(app, list(args))
    assert result.exit_code == 2 and result.output.startswith(message), result.output
    assert len(result.output.strip().splitlines()) == 1


def test_a_bad_option_starts_neither_prefect_nor_a_model(tmp_path: Path):
    code = (
        "import sys\n"
        "from aimusic.cli.main import app\n"
        "try:\n"
        "    app(['run', '--sources', 'tiktok'])\n"
        "except SystemExit as exc:\n"
        "    print('exit', exc.code, sorted(m for m in ('prefect', 'torch', 'duckdb') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.stdout.strip() == "exit 2 []", done.stdout + done.stderr
    assert done.stderr.strip().startswith("error: unknown source(s): tiktok")


def test_reading_commands_fall_back_to_the_demo_database(monkeypatch, tmp_path: Path):
    import aimusic.core.config as config

    monkeypatch.setattr(config, "DEFAULT_DB", tmp_path / "aimusic.duckdb")
    monkeypatch.setattr(config, "DEMO_DB", tmp_path / "demo.duckdb")
    code, output = invoke("demo", "--posts", "200", "--no-score")
    assert code == 0 and (tmp_path / "demo.duckdb").exists() and not (tmp_path / "aimusic.duckdb").exists()
    code, output = invoke("status")
    assert code == 0 and "aimusic.duckdb does not exist yet, so this reads the demo database" in output
    assert f"database {tmp_path / 'demo.duckdb'}" in output
    out = tmp_path / "posts.csv"
    code, output = invoke("export", "posts", "--out", str(out))
    assert code == 0 and f"from {tmp_path / 'demo.duckdb'} to {out}" in output
    assert len(pd.read_csv(out)) == Store(tmp_path / "demo.duckdb", read_only=True).count("posts")


def test_export_to_an_unwritable_path_blames_the_output(tmp_path: Path):
    db = tmp_path / "x.duckdb"
    Store(db)
    for target, why in (("/proc/x.csv", "no file can be created in /proc"), (str(tmp_path), "it is a directory")):
        result = runner.invoke(app, ["export", "posts", "--db", str(db), "--out", target])
        assert result.exit_code == 2
        assert result.output.startswith(f"error: cannot write the output file {target}: {why}"), result.output


def test_status_is_readable_at_80_columns(tmp_path: Path):
    db = tmp_path / "s.duckdb"
    store = Store(db)
    started = datetime(2026, 11, 27, 8, 40, 12, 345678, tzinfo=UTC)
    store.record_run({"run_id": "r1", "source": "reddit", "started_at": started, "finished_at": None,
                      "status": "skipped", "error": "no API credentials (REDDIT_CLIENT_ID, REDDIT_CLIENT_SECRET not "
                      "set in the environment or .env); Reddit approves API access case by case, see the README"})
    store.record_run({"run_id": "r1", "source": "demo", "started_at": started, "finished_at": started,
                      "status": "ok", "fetched": 6000, "new": 5769, "scored": 5769})
    result = runner.invoke(app, ["status", "--db", str(db)], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith(f"database {db} (")  # a path stays whole, on one line
    assert max(len(line) for line in lines[1:]) <= 80, result.output
    assert "NaT" not in result.output and "12.345678" not in result.output and "2026-11-27 08:40" in result.output
    assert any(re.match(r"\s*demo\s+ok\s+2026-11-27 08:40\s+6,000\s+5,769\s+5,769", line) for line in lines)
    assert sum("no API credentials" in line for line in lines) == 1


def test_help_wraps_whole_words_and_names_no_flag_type(tmp_path: Path):
    for command in ("", *SPINE_COMMANDS, "forget", "serve", "signals", "eval", "backfill"):
        result = runner.invoke(app, [*command.split(), "--help"], env={"COLUMNS": "80"})
        assert result.exit_code == 0
        assert "<bool>" not in result.output and max(len(line) for line in result.output.splitlines()) <= 80
    forget = runner.invoke(app, ["forget", "--help"], env={"COLUMNS": "80"}).output
    assert "signals, rewrites indexed export files" in " ".join(forget.split())  # one paragraph, re-wrapped
    help_eval = " ".join(runner.invoke(app, ["eval", "--help"], env={"COLUMNS": "200"}).output.split())
    assert "tests/data/stance_eval.tsv" in help_eval and (PROJECT_ROOT / "tests/data/stance_eval.tsv").exists()
    help_export = " ".join(runner.invoke(app, ["export", "--help"], env={"COLUMNS": "200"}).output.split())
    assert "default: the model with the most scores in the database" in help_export


@pytest.mark.parametrize(
    "args, message",
    [
        (("export", "posts", "--format", "xlsx"), "unknown format"),
        (("export", "everything"), "unknown export"),
        (("export", "posts", "--since", "last week"), "Invalid isoformat"),
        (("status",), "does not exist yet"),
        (("score", "--model", "nonsense"), "unknown sentiment model"),
        (("demo", "--posts", "5", "--topics", "missing.toml"), "topics file not found"),
    ],
)
def test_expected_errors_are_one_clear_line(tmp_path: Path, args, message):
    db = tmp_path / "e.duckdb"
    if args[0] == "export":
        Store(db)
    result = runner.invoke(app, [*args, "--db", str(db)])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_start_serves_the_dashboard_before_the_pass_collects(monkeypatch, tmp_path: Path):
    """`aimusic start` opens the dashboard as soon as the pass knows its database (so it answers in seconds),
    on an existing, migrated file, and keeps it after the pass; the pass itself is the real plain pass."""
    events: list[str] = []

    class FakeDashboard:
        def __init__(self, target: Path) -> None:
            self.target = target

        def wait(self) -> int:
            events.append("waited")
            return 0

        def terminate(self) -> None:
            events.append("terminated")

    def fake_process(target: Path, *, host: str, port: int) -> FakeDashboard:
        assert target.exists() and Store(target, read_only=True).count("posts") == 0
        events.append(f"dashboard {target.name}")
        return FakeDashboard(target)

    import aimusic.pipeline.monitor as monitor

    real_collect = monitor.collect_one

    def collect(*args: object, **kwargs: object):
        events.append("collect")
        return real_collect(*args, **kwargs)

    monkeypatch.setattr("aimusic.cli.serve.dashboard_process", fake_process)
    monkeypatch.setattr(monitor, "collect_one", collect)
    topics = tmp_path / "topics.toml"
    topics.write_text('[tracking]\nterms = ["AI music"]\n[sources.demo]\nposts = 120\ndays = 10\n')
    monkeypatch.setenv("AIMUSIC_TOPICS", str(topics))
    monkeypatch.setenv("AIMUSIC_MODEL", "vader")
    db = tmp_path / "start.duckdb"
    result = runner.invoke(app, ["start", "--db", str(db)])
    assert result.exit_code == 0, result.output
    assert events[0] == "dashboard start.duckdb" and "collect" in events and events[-1] == "waited", events
    assert Store(db, read_only=True).count("posts") > 0
