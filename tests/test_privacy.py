from datetime import UTC, datetime

import pandas as pd
from typer.testing import CliRunner

from aimusic.cli.main import app
from aimusic.core.records import Post, posts_to_arrow
from aimusic.store.db import Store
from aimusic.store.privacy import forget, pseudonym
from aimusic.store.queries import export

T0 = datetime(2025, 11, 11, tzinfo=UTC)


def batch(*specs):
    return posts_to_arrow(
        Post(source=s, post_id=pid, created_at=T0, author=a, text="AI music take", url=f"https://x.com/{a}/status/{pid}")
        for s, pid, a in specs
    )


def test_pseudonymised_authors(tmp_path):
    store = Store(tmp_path / "p.duckdb", pseudonymize_key="k1")
    store.upsert_posts(batch(("x", "1", "alice"), ("x", "2", "alice"), ("reddit", "3", "alice")))
    rows = store.query("SELECT source, post_id, author, url FROM posts ORDER BY post_id")
    assert "alice" not in " ".join(rows["author"]) + " ".join(rows["url"])
    assert rows["author"][0] == rows["author"][1] == pseudonym("k1", "x", "alice")
    assert rows["author"][2] != rows["author"][0]  # per source
    assert pseudonym("k2", "x", "alice") != pseudonym("k1", "x", "alice")
    again = store.upsert_posts(batch(("x", "1", "alice")))
    assert (again.new, again.updated) == (0, 0)


def test_forget_author_everywhere_and_block_reingest(tmp_path):
    store = Store(tmp_path / "f.duckdb")
    store.upsert_posts(batch(("x", "1", "alice"), ("x", "2", "bob"), ("reddit", "3", "alice")))
    with store.connect() as con:
        con.execute(
            "INSERT INTO scores SELECT source, post_id, 'm', 'neutral', 0, 1, 0, 'scored', text_md5, now() FROM posts"
        )
    store.refresh_summary()  # the dashboard summary numbers authors by handle
    assert "alice" in store.query("SELECT list(author) AS a FROM dash_author_ids")["a"][0]
    out = tmp_path / "posts.csv"
    from aimusic.store.privacy import record_export

    record_export(store, out, "posts", "csv", export(store, "posts", out), {})
    result = forget(store, author="alice")
    assert result.rows_by_table["posts"] == 2 and result.rows_by_table["scores"] == 2
    assert store.query("SELECT post_id FROM posts")["post_id"].tolist() == ["2"]
    assert pd.read_csv(out)["post_id"].astype(str).tolist() == ["2"]
    assert result.exports_rewritten == [str(out.resolve())]
    assert store.upsert_posts(batch(("x", "9", "alice"), ("x", "10", "carol"))).new == 1
    assert "alice" not in store.query("SELECT list(author) AS a FROM posts")["a"][0]
    assert "alice" not in store.query("SELECT list(author) AS a FROM dash_author_ids")["a"][0]
    assert store.refresh_summary() == "full"  # a takedown invalidates the summary: rebuilt without her posts
    takedowns = store.query("SELECT * FROM takedowns")
    assert "alice" not in takedowns.to_string()  # only a digest is kept


def test_forget_one_post_with_the_cli(tmp_path):
    db = tmp_path / "c.duckdb"
    Store(db).upsert_posts(batch(("x", "1", "alice"), ("x", "2", "bob")))
    result = CliRunner().invoke(app, ["forget", "--post", "x:2", "--db", str(db)])
    assert result.exit_code == 0, result.output
    assert Store(db).query("SELECT post_id FROM posts")["post_id"].tolist() == ["1"]
    assert Store(db).upsert_posts(batch(("x", "2", "bob"))).new == 0
    bad = CliRunner().invoke(app, ["forget", "--post", "nocolon", "--db", str(db)])
    assert bad.exit_code == 2 and "SOURCE:POST_ID" in bad.output
