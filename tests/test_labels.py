"""Labels (issue 13): import/export round trips, idempotent imports, whole-file rejection, status, takedowns,
the stratified random order and the active-learning picks."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from aimusic.cli.main import app
from aimusic.sources.demo import generate_table
from aimusic.store import label_queries as lq
from aimusic.store import labels as lab
from aimusic.store.db import Store
from aimusic.store.privacy import forget

runner = CliRunner()
HEADER = "source\tpost_id\ttask\tlabel\tlabeller\tpicked\n"


@pytest.fixture
def posts_store(db_path: Path) -> Store:
    store = Store(db_path)
    store.upsert_posts(generate_table(60, seed=5, days=90))
    return store


def ids(store: Store, n: int) -> list[tuple[str, str]]:
    df = store.query("SELECT source, post_id FROM posts ORDER BY post_id LIMIT ?", [n])
    return list(df.itertuples(index=False, name=None))


def write(path: Path, rows: list[str], header: str = HEADER) -> Path:
    path.write_text(header + "".join(r + "\n" for r in rows), encoding="utf-8")
    return path


def table_rows(store: Store) -> list[tuple]:
    return store.query("SELECT * FROM labels ORDER BY ALL").values.tolist()


def test_import_export_round_trip_exactly(posts_store: Store, tmp_path: Path) -> None:
    keys = ids(posts_store, 6)
    rows = [f"{s}\t{p}\tsentiment\t{lbl}\tana\trandom"
            for (s, p), lbl in zip(keys[:3], ("negative", "neutral", "positive"), strict=True)]
    rows += [f"{keys[3][0]}\t{keys[3][1]}\tstance\tanti\tana\tactive",  # alias: stored as against
             f"{keys[4][0]}\t{keys[4][1]}\trelevance\t1\tben\trandom",
             f"{keys[5][0]}\t{keys[5][1]}\tstance\tfor\tben\trandom"]
    src = write(tmp_path / "in.tsv", rows)
    first = lab.import_labels(posts_store, src)
    assert (first.rows, first.new, first.changed) == (6, 6, 0)
    again = lab.import_labels(posts_store, src)
    assert (again.new, again.changed, again.unchanged) == (0, 0, 6)
    out = tmp_path / "out.tsv"
    assert lab.export_labels(posts_store, out) == 6
    text = out.read_text(encoding="utf-8")
    assert "\tagainst\t" in text and "\trelevant\t" in text

    # into a second database with the same posts: the export of that one is byte-identical
    other = Store(tmp_path / "other.duckdb")
    other.upsert_posts(generate_table(60, seed=5, days=90))
    assert lab.import_labels(other, out).new == 6
    out2 = tmp_path / "out2.tsv"
    lab.export_labels(other, out2)
    assert out2.read_bytes() == out.read_bytes()
    assert lab.import_labels(other, out).unchanged == 6  # and importing its own export adds nothing
    assert table_rows(other) == table_rows(posts_store)


def test_bad_file_changes_nothing_and_names_lines(posts_store: Store, tmp_path: Path) -> None:
    keys = ids(posts_store, 3)
    good = write(tmp_path / "good.tsv", [f"{keys[0][0]}\t{keys[0][1]}\tsentiment\tpositive\tme\trandom"])
    lab.import_labels(posts_store, good)
    before = table_rows(posts_store)
    bad = write(tmp_path / "bad.tsv", [
        f"{keys[1][0]}\t{keys[1][1]}\tsentiment\tnegative\tme\trandom",  # fine
        f"{keys[2][0]}\t{keys[2][1]}\tmood\tnegative\tme\trandom",  # line 3: unknown task
        f"{keys[2][0]}\t{keys[2][1]}\tsentiment\tangry\tme\trandom",  # line 4: unknown label
        f"{keys[2][0]}\t{keys[2][1]}\tsentiment\tneutral\tme",  # line 5: a field short
    ])
    with pytest.raises(lab.LabelFileError) as err:
        lab.import_labels(posts_store, bad)
    message = str(err.value)
    assert "line 3" in message and "mood" in message
    assert "line 4" in message and "angry" in message
    assert "line 5" in message
    assert "line 2" not in message
    assert table_rows(posts_store) == before

    unknown = write(tmp_path / "unknown.tsv", [
        f"{keys[1][0]}\t{keys[1][1]}\tsentiment\tnegative\tme\trandom",
        "demo\tno-such-post\tsentiment\tnegative\tme\trandom",  # line 3: not in the database
    ])
    with pytest.raises(lab.LabelFileError, match=r"line 3: unknown post demo:no-such-post"):
        lab.import_labels(posts_store, unknown)
    assert table_rows(posts_store) == before

    conflict = write(tmp_path / "conflict.tsv", [
        f"{keys[1][0]}\t{keys[1][1]}\tsentiment\tnegative\tme\trandom",
        f"{keys[1][0]}\t{keys[1][1]}\tsentiment\tpositive\tme\trandom",
    ])
    with pytest.raises(lab.LabelFileError, match=r"line 3: .* labelled negative on line 2 and positive here"):
        lab.import_labels(posts_store, conflict)
    assert table_rows(posts_store) == before


def test_cli_import_export_status(posts_store: Store, db_path: Path, tmp_path: Path) -> None:
    keys = ids(posts_store, 2)
    src = write(tmp_path / "l.tsv", [f"{keys[0][0]}\t{keys[0][1]}\tsentiment\tpositive",
                                     f"{keys[1][0]}\t{keys[1][1]}\tsentiment\tnegative"],
                header="source\tpost_id\ttask\tlabel\n")
    result = runner.invoke(app, ["labels", "import", str(src), "--db", str(db_path)])
    assert result.exit_code == 0, result.output
    assert "2 new" in result.output
    result = runner.invoke(app, ["labels", "import", str(src), "--db", str(db_path)])
    assert "0 new, 0 changed, 2 already stored" in result.output
    result = runner.invoke(app, ["labels", "status", "--db", str(db_path)])
    assert result.exit_code == 0, result.output
    assert "sentiment" in result.output and "positive" in result.output and "me" in result.output
    out = tmp_path / "exported.tsv"
    result = runner.invoke(app, ["labels", "export", "--out", str(out), "--db", str(db_path)])
    assert result.exit_code == 0, result.output
    assert out.read_text().splitlines()[0] == "\t".join(lab.EXPORT_COLUMNS)
    bad = write(tmp_path / "bad.tsv", ["demo\tnope\tsentiment\tpositive"], header="source\tpost_id\ttask\tlabel\n")
    result = runner.invoke(app, ["labels", "import", str(bad), "--db", str(db_path)])
    assert result.exit_code == 2
    assert "line 2" in result.output and "nothing imported" in result.output


def test_takedown_deletes_labels(posts_store: Store) -> None:
    (s0, p0), (s1, p1) = ids(posts_store, 2)
    lab.add_label(posts_store, s0, p0, "sentiment", "positive")
    lab.add_label(posts_store, s1, p1, "stance", "for", labeller="ben", picked="active")
    result = forget(posts_store, post=(s0, p0), rewrite_exports=False)
    assert result.rows_by_table.get("labels") == 1
    left = posts_store.query("SELECT source, post_id FROM labels")
    assert list(left.itertuples(index=False, name=None)) == [(s1, p1)]


def test_add_undo_and_resolution(posts_store: Store) -> None:
    (s, p), = ids(posts_store, 1)
    lab.add_label(posts_store, s, p, "sentiment", "negative", labeller="a")
    lab.add_label(posts_store, s, p, "sentiment", "negative", labeller="b", picked="active")
    lab.add_label(posts_store, s, p, "sentiment", "positive", labeller="c")
    with posts_store.connect() as con:
        df = lab.resolved(con, "sentiment")
    assert df[["label", "labellers"]].values.tolist() == [["negative", 3]]
    assert bool(df["random"].iloc[0])
    assert lab.delete_label(posts_store, s, p, "sentiment", "c") == 1
    with pytest.raises(ValueError, match="unknown sentiment label"):
        lab.add_label(posts_store, s, p, "sentiment", "meh")


def test_random_order_is_stratified_and_stable(db_path: Path) -> None:
    store = Store(db_path)
    table = generate_table(900, seed=9, days=120)
    store.upsert_posts(table)
    with store.connect() as con:
        first = lq.random_order(con, 300)
        again = lq.random_order(con, 300)
        strata = con.execute(
            "SELECT source, date_trunc('month', created_at) AS m, count(*) AS n FROM posts GROUP BY ALL").df()
        months = con.execute(
            "SELECT p.source, date_trunc('month', p.created_at) AS m, count(*) AS k FROM posts p "
            "JOIN (SELECT * FROM first) f USING (source, post_id) GROUP BY ALL").df()
    assert first.equals(again)
    assert len(first) == 300 and not first.duplicated().any()
    merged = strata.merge(months, on=["source", "m"], how="left").fillna(0)
    expected = merged["n"] * 300 / merged["n"].sum()
    assert ((merged["k"] - expected).abs() <= 1.0).all()  # proportional allocation, within one post per stratum


def test_active_candidates_least_sure_first(posts_store: Store) -> None:
    keys = ids(posts_store, 4)
    probs = [(0.34, 0.33, 0.33), (0.9, 0.05, 0.05), (0.5, 0.3, 0.2), (0.1, 0.1, 0.8)]
    scores = pa.table({
        "source": [k[0] for k in keys], "post_id": [k[1] for k in keys], "model": ["m"] * 4,
        "label": ["negative", "negative", "negative", "positive"],
        "negative": [p[0] for p in probs], "neutral": [p[1] for p in probs], "positive": [p[2] for p in probs],
        "status": ["scored"] * 4, "text_md5": ["x"] * 4,
    })
    posts_store.upsert_scores(scores)
    lab.add_label(posts_store, *keys[0], "sentiment", "neutral", picked="active")
    with posts_store.connect() as con:
        picks = lq.active_candidates(con, "sentiment", "m", "me", 10)
    assert [tuple(r) for r in picks[["source", "post_id"]].values] == [keys[2], keys[3], keys[1]]
