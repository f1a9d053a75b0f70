"""``aimusic eval``, ``aimusic rescore`` and ``aimusic score`` through the real CLI."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aimusic.cli.main import app
from aimusic.core.records import Post, posts_to_arrow
from aimusic.pipeline.rescore import rescore
from sentiment import LABELS, load_scorer
from sentiment.evaluate import metrics, read_tsv
from sentiment.synthetic import build_tiny_classifier

runner = CliRunner()

ROWS = [
    ("positive", "I love this song, it is wonderful!"),
    ("positive", "What a great and happy day"),
    ("negative", "This is terrible and I hate it"),
    ("negative", "Awful, sad, boring noise"),
    ("neutral", "The album comes out on Friday"),
    ("neutral", "The report was published today"),
]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_classifier(tmp_path_factory.mktemp("tiny") / "tiny")


def _tsv(path: Path, rows=ROWS, header="label\ttext") -> Path:
    path.write_text(header + "\n" + "".join(f"{label}\t{text}\n" for label, text in rows), encoding="utf-8")
    return path


def test_eval_json_is_one_object_on_the_last_line(tmp_path):
    data = _tsv(tmp_path / "small.tsv")
    result = runner.invoke(app, ["eval", "--data", str(data), "--model", "vader", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["model"] == load_scorer("vader").model_id and report["n"] == len(ROWS)
    for key in ("macro_recall", "accuracy", "macro_f1", "posts_per_s"):
        assert isinstance(report[key], float)
    assert set(report["recall"]) == set(LABELS)
    assert sum(map(sum, report["confusion"])) == len(ROWS)
    assert report["data_sha256"] == read_tsv(data).sha256


def test_eval_table_output(tmp_path):
    result = runner.invoke(app, ["eval", "--data", str(_tsv(tmp_path / "s.tsv")), "--model", "vader"])
    assert result.exit_code == 0, result.output
    for text in ("macro recall", "accuracy", "macro F1", "posts/s", "confusion matrix", "negative"):
        assert text in result.stdout


def test_eval_without_model_uses_what_run_would_use(tmp_path, monkeypatch):
    monkeypatch.setenv("AIMUSIC_MODEL", "vader")
    result = runner.invoke(app, ["eval", "--data", str(_tsv(tmp_path / "s.tsv")), "--json"])
    assert json.loads(result.stdout.strip().splitlines()[-1])["model"].startswith("vader")


def test_eval_bad_input_is_one_clear_error(tmp_path):
    missing = runner.invoke(app, ["eval", "--data", str(tmp_path / "nope.tsv"), "--model", "vader"])
    assert missing.exit_code == 2 and "cannot read" in missing.output and "Traceback" not in missing.output
    bad = _tsv(tmp_path / "bad.tsv", header="sentiment\tbody")
    wrong = runner.invoke(app, ["eval", "--data", str(bad), "--model", "vader"])
    assert wrong.exit_code == 2 and "'label' and 'text'" in wrong.output


def test_read_tsv_skips_and_counts_bad_rows(tmp_path):
    data = _tsv(tmp_path / "x.tsv", rows=[*ROWS, ("angry", "what"), ("neutral", "   ")])
    with (tmp_path / "x.tsv").open("a", encoding="utf-8") as fh:
        fh.write("positive\ttext with a\ttab inside\n")
    ds = read_tsv(data)
    assert len(ds) == len(ROWS) + 1 and ds.texts[-1] == "text with a\ttab inside"
    assert ds.skipped == {"unknown label": 1, "empty text": 1}


def test_metrics_match_scikit_learn():
    from sklearn.metrics import accuracy_score, f1_score, recall_score

    true = ["negative", "neutral", "positive", "neutral", "positive", "negative", "neutral", "positive"]
    pred = ["negative", "positive", "positive", "neutral", "neutral", "neutral", "neutral", "positive"]
    m = metrics(true, pred)
    assert m["macro_recall"] == pytest.approx(recall_score(true, pred, average="macro"))
    assert m["macro_f1"] == pytest.approx(f1_score(true, pred, average="macro"))
    assert m["accuracy"] == pytest.approx(accuracy_score(true, pred))
    assert m["confusion"] == [[1, 1, 0], [0, 2, 1], [0, 1, 2]]


def _fill(store, n: int) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    texts = ["I love this song", "I hate this noise", "Released on Friday", "great track", "awful mix"]
    store.upsert_posts(posts_to_arrow([
        Post(source="fake", post_id=str(i), created_at=start + timedelta(minutes=i), text=f"{texts[i % 5]} {i}",
             lang="en")
        for i in range(n)
    ]))


def _rows(store, model: str) -> list[tuple]:
    df = store.query(
        "SELECT post_id, label, negative, neutral, positive, status, text_md5, scored_at FROM scores "
        "WHERE model = ? ORDER BY post_id", [model],
    )
    return [tuple(r) for r in df.itertuples(index=False)]


def test_rescore_is_incremental_resumable_and_never_touches_other_models(store, db_path, tiny):
    _fill(store, 30)
    vader = load_scorer("vader")
    from aimusic.pipeline.collect import score_posts

    score_posts(store, vader)
    before = _rows(store, vader.model_id)
    name = f"transformer:{tiny}"
    other = load_scorer(name)

    first = runner.invoke(app, ["rescore", "--model", name, "--limit", "12", "--db", str(db_path)])
    assert first.exit_code == 0, first.output
    assert "18 left" in first.stdout and len(_rows(store, other.model_id)) == 12
    done_first = {r[0]: r for r in _rows(store, other.model_id)}

    second = runner.invoke(app, ["rescore", "--model", name, "--db", str(db_path)])  # picks up where it stopped
    assert second.exit_code == 0, second.output
    assert "scored 18 posts" in second.stdout and "0 left" in second.stdout
    after = {r[0]: r for r in _rows(store, other.model_id)}
    assert len(after) == 30 and all(after[k] == v for k, v in done_first.items())  # first 12 not redone
    assert _rows(store, vader.model_id) == before  # the old model's rows: untouched, not relabelled

    third = runner.invoke(app, ["rescore", "--model", name, "--db", str(db_path)])
    assert "scored 0 posts" in third.stdout


def test_forced_rescore_resumes_from_its_checkpoint(store, tiny):
    _fill(store, 20)
    scorer = load_scorer(f"transformer:{tiny}")
    vader = load_scorer("vader")
    rescore(store, vader)
    rescore(store, scorer)
    first = {r[0]: r for r in _rows(store, scorer.model_id)}
    vader_rows = _rows(store, vader.model_id)

    summary, left = rescore(store, scorer, force=True, limit=8, batch_size=4)
    assert summary.scored == 8 and left == 12
    assert store.get_meta(f"rescore:{scorer.model_id}") is not None
    redone = {r[0] for r in _rows(store, scorer.model_id) if r[-1] != first[r[0]][-1]}
    assert len(redone) == 8
    mid = {r[0]: r for r in _rows(store, scorer.model_id)}

    summary, left = rescore(store, scorer, force=True, batch_size=4)  # resumes: only the 12 not yet redone
    assert summary.scored == 12 and left == 0
    assert store.get_meta(f"rescore:{scorer.model_id}") is None  # finished: the next --force starts afresh
    final = {r[0]: r for r in _rows(store, scorer.model_id)}
    assert all(final[k] == mid[k] for k in redone)
    assert _rows(store, vader.model_id) == vader_rows


def test_rescore_unknown_model_is_a_clear_error(db_path):
    result = runner.invoke(app, ["rescore", "--model", "nonsense", "--db", str(db_path)])
    assert result.exit_code == 2 and "unknown sentiment model" in result.output


def test_score_command_still_works_and_fills_languages(store, db_path):
    store.upsert_posts(posts_to_arrow([
        Post(source="fake", post_id="1", created_at=datetime(2026, 1, 1, tzinfo=UTC), text="I love AI music, great"),
        Post(source="fake", post_id="2", created_at=datetime(2026, 1, 1, tzinfo=UTC),
             text="Ich finde KI-Musik wirklich schrecklich und gestohlen."),
    ]))
    result = runner.invoke(app, ["score", "--model", "vader", "--db", str(db_path)])
    assert result.exit_code == 0, result.output
    df = store.query("SELECT p.post_id, p.lang, s.status FROM posts p JOIN scores s USING (source, post_id) "
                     "ORDER BY p.post_id")
    assert [tuple(r) for r in df.itertuples(index=False)] == [("1", "en", "scored"), ("2", "de", "language")]


def test_train_head_command_writes_head_and_provenance(tmp_path):
    rows = [(label, f"{text} {i}") for i in range(6) for label, text in ROWS]
    data = _tsv(tmp_path / "train.tsv", rows=rows)
    out_file = tmp_path / "head.npz"
    result = runner.invoke(app, ["train-head", "--data", str(data), "--out", str(out_file), "--no-cache"])
    assert result.exit_code == 0, result.output
    assert out_file.exists() and f"--model minilm:{out_file}" in result.stdout
    record = json.loads(out_file.with_suffix(".json").read_text())
    assert record["data"]["rows"] == len(rows) and record["data"]["sha256"] == read_tsv(data).sha256
    assert load_scorer(f"minilm:{out_file}").score(["I love it"]).status == ["scored"]
