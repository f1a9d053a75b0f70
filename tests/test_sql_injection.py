"""Every statement that carries user input is parameterised: injection strings are just data."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from aimusic.cli.main import app
from aimusic.pipeline.collect import score_posts
from aimusic.sources.demo import generate_table
from aimusic.store.db import Store
from aimusic.store.queries import Filters, daily_sql, export, posts_sql
from sentiment import load_scorer

INJECTIONS = [
    "x'; DROP TABLE posts; --",
    "' OR '1'='1",
    "reddit') OR 1=1 --",
    '"; DELETE FROM scores; --',
    "x' UNION SELECT * FROM runs --",
    "%' ; COPY posts TO '/tmp/pwned.csv'; --",
    "\\'; ATTACH '/tmp/evil.duckdb'; --",
]


@pytest.fixture(scope="module")
def seeded(tmp_path_factory) -> Path:
    db = tmp_path_factory.mktemp("inj") / "i.duckdb"
    store = Store(db)
    store.upsert_posts(generate_table(1500, seed=2))
    score_posts(store, load_scorer("vader"))
    return db


def intact(db: Path) -> None:
    store = Store(db, read_only=True)
    assert store.count("posts") == 1500 and store.count("scores") == 1500
    assert not Path("/tmp/pwned.csv").exists()


@pytest.mark.parametrize("payload", INJECTIONS)
@pytest.mark.parametrize("field", ["sources", "langs", "terms", "search", "model"])
def test_filters_treat_payloads_as_data(seeded, field, payload):
    store = Store(seeded, read_only=True)
    value = payload if field in ("search", "model") else (payload,)
    filters = Filters(**{field: value})
    for build in (posts_sql, daily_sql):
        sql, params = build(filters, filters.model or "vader-3.3.2")
        assert payload not in sql
        frame = store.query(sql, params)
        assert isinstance(frame, pd.DataFrame)
        if field != "model":
            assert len(frame) == 0  # nothing matches a payload
    intact(seeded)


@pytest.mark.parametrize("payload", INJECTIONS)
def test_cli_options_treat_payloads_as_data(seeded, tmp_path, payload):
    runner = CliRunner()
    out = tmp_path / "o'; DROP TABLE posts; --.csv"

    def invoke(*args: str) -> str:
        result = runner.invoke(app, [*args, "--db", str(seeded)])
        assert "Traceback" not in result.output
        return f"{result.exit_code} {result.output}"

    # a payload as a source filter matches nothing: an empty export (the header only) where it was asked for
    assert invoke("export", "posts", "--sources", payload, "--out", str(out)).startswith("0 wrote 0 rows")
    assert list(pd.read_csv(out).columns[:2]) == ["source", "post_id"] and len(pd.read_csv(out)) == 0
    # as a model name: every day is still there, nothing is scored by that "model", and it is named as given
    assert invoke("export", "daily", "--model", payload, "--out", str(out)).startswith("0 wrote ")
    daily = pd.read_csv(out, keep_default_na=False)
    assert daily["posts"].sum() == 1500 and daily["scored"].sum() == 0 and set(daily["model"]) == {payload}
    assert invoke("export", "posts", "--out", str(out), "--since", payload).startswith("2 error: --since/--until")
    assert invoke("forget", "--author", payload).startswith("0 removed: nothing stored")
    assert invoke("forget", "--post", f"x:{payload}").startswith("0 removed: nothing stored")
    assert invoke("score", "--model", payload).startswith("2 error: unknown sentiment model")
    assert "rows: posts 1,500, scores 1,500" in invoke("status")
    intact(seeded)


def test_export_path_with_quotes_is_written_where_asked(seeded, tmp_path):
    out = tmp_path / "it's here.csv"
    n = export(Store(seeded, read_only=True), "posts", out)
    assert n == 1500 and len(pd.read_csv(out)) == 1500
