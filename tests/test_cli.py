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


def test_run_twice_through_the_cli(prefect_harness, tmp_path: Path):
    db = tmp_path / "r.duckdb"
    topics = tmp_path / "topics.toml"  # the project's topics with a smaller demo, to keep the test quick
    topics.write_text((PROJECT_ROOT / "data" / "topics.toml").read_text().replace("posts = 6000", "posts = 300"))
    code, output = invoke("run", "--sources", "demo", "--db", str(db), "--topics", str(topics))
    assert code == 0, output
    counts = {t: Store(db, read_only=True).count(t) for t in ("posts", "scores", "runs")}
    assert counts["posts"] > 200 and counts["scores"] == counts["posts"]
    code, output = invoke("run", "--sources", "demo", "--db", str(db), "--topics", str(topics))
    assert code == 0, output
    again = {t: Store(db, read_only=True).count(t) for t in ("posts", "scores", "runs")}
    assert again == {**counts, "runs": counts["runs"] + 1}


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
