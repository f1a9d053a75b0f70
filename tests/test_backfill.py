"""``aimusic backfill``: Reddit dumps (zstd NDJSON), saved X API responses, CSV/JSONL; resumable and idempotent."""

from __future__ import annotations

import gzip
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st
from source_testkit import TOPICS_TOML, make_topics

from aimusic.debate.quickfilter import CASE_SPECIALS, QuickRelevance
from aimusic.debate.relevance import RelevanceFilter
from aimusic.pipeline.backfill import (
    BackfillOptions,
    backfill_file,
    backfill_paths,
    fingerprint,
    load_progress,
    summary_line,
)
from aimusic.pipeline.backfill_formats import FormatError, detect_format, parse_mapping

NOW = 1_762_960_000


def comment(cid: str, body: str, *, sub: str = "country", created: Any = NOW, **extra: Any) -> dict[str, Any]:
    item = {
        "author": f"user_{cid}",
        "body": body,
        "controversiality": 0,
        "created_utc": created,
        "id": cid,
        "link_id": "t3_1ovx3kq",
        "name": f"t1_{cid}",
        "parent_id": "t3_1ovx3kq",
        "permalink": f"/r/{sub}/comments/1ovx3kq/t/{cid}/",
        "retrieved_on": NOW + 100,
        "score": 3,
        "subreddit": sub,
        "subreddit_id": "t5_2qhj1",
    }
    item.update(extra)
    return item


def submission(pid: str, title: str, selftext: str = "", **extra: Any) -> dict[str, Any]:
    item = {
        "author": "poster",
        "created_utc": NOW - 500,
        "id": pid,
        "name": f"t3_{pid}",
        "num_comments": 4,
        "over_18": False,
        "permalink": f"/r/country/comments/{pid}/x/",
        "retrieved_on": NOW + 100,
        "score": 10,
        "selftext": selftext,
        "subreddit": "country",
        "title": title,
        "url": "https://example.com",
    }
    item.update(extra)
    return item


def write_zst(path: Path, lines: list[bytes | dict]) -> Path:
    """A zstd NDJSON file in blocks of ten lines (as a streaming compressor writes big dumps)."""
    with path.open("wb") as fh, zstandard.ZstdCompressor(level=3).stream_writer(fh) as writer:
        for i, line in enumerate(lines, 1):
            writer.write((orjson.dumps(line) if isinstance(line, dict) else line) + b"\n")
            if i % 10 == 0:
                writer.flush(zstandard.FLUSH_BLOCK)
    return path


def dump_lines() -> list[bytes | dict]:
    return [
        submission("1ovx3kq", "Breaking Rust is #1 and it's an AI country song"),  # relevant (Breaking Rust + song)
        comment("c1", "Suno makes better songs than half of Nashville"),  # relevant
        comment("c2", "Great live show last night, the fiddle player was amazing"),  # irrelevant
        comment("c3", "AI music is theft", created=str(NOW + 5)),  # created_utc as a string
        b'{"id": "c4", "body": "Suno AI music, cut short by a bad downl',  # corrupt
        comment("c5", "Udio vocals on this track are uncanny", score=None),  # null score
        comment("c6", "Xania Monet charting says a lot about the industry"),
        comment("c7", "[deleted]"),  # not a post
        comment("c1", "Suno makes better songs than half of Nashville"),  # duplicate line
        comment("c8", "The AI music debate again"),
    ]


@pytest.fixture
def topics(tmp_path):
    return make_topics(tmp_path)


def options(tmp_path: Path, **kw: Any) -> BackfillOptions:
    return BackfillOptions(quarantine_dir=tmp_path / "quarantine", **kw)


def test_reddit_dump_import(tmp_path, store, topics) -> None:
    lines = dump_lines()
    del lines[5]["author"]  # c5: no author at all
    path = write_zst(tmp_path / "RC_2025-11.zst", lines)
    assert detect_format(path) == "reddit"
    (report,) = backfill_paths([path], store, topics, options(tmp_path))
    assert report.format == "reddit" and report.completed
    assert report.lines == 10
    assert report.bad == 1
    assert report.relevant == 7  # the submission, c1 twice, c3, c5, c6, c8
    assert report.new == 6 and report.duplicates == 1
    assert report.not_posts == 0  # "[deleted]" matches no term: it is simply irrelevant
    rows = {r["post_id"]: r for r in store.query("SELECT * FROM posts").to_dict("records")}
    assert set(rows) == {"1ovx3kq", "c1", "c3", "c5", "c6", "c8"}
    assert rows["c3"]["created_at"].timestamp() == NOW + 5
    nulls = store.query("SELECT author IS NULL AND score IS NULL AS ok FROM posts WHERE post_id = 'c5'")
    assert bool(nulls.iloc[0, 0])
    assert rows["c1"]["terms"] == ["Suno"] and rows["c1"]["source"] == "reddit"
    assert rows["c1"]["thread_id"] == "1ovx3kq" and rows["c1"]["community"] == "country"
    assert rows["c1"]["fetched_at"].timestamp() == NOW + 100  # the archive's retrieved_on
    quarantined = [json.loads(x) for x in Path(report.quarantine).read_text().splitlines()]
    assert len(quarantined) == 1 and quarantined[0]["unit"] == 5 and "not valid JSON" in quarantined[0]["error"]
    assert quarantined[0]["raw"].startswith('{"id": "c4"')
    line = summary_line(report)
    assert "10 lines read, 7 relevant, 6 new, 1 duplicates, 1 bad" in line


def test_reimport_adds_nothing(tmp_path, store, topics) -> None:
    path = write_zst(tmp_path / "RC.zst", dump_lines())
    backfill_paths([path], store, topics, options(tmp_path))
    rows = store.count("posts")
    (again,) = backfill_paths([path], store, topics, options(tmp_path))
    assert again.already_done and again.lines == 0 and store.count("posts") == rows
    assert "already imported" in summary_line(again)
    (forced,) = backfill_paths([path], store, topics, options(tmp_path, force=True))
    assert forced.lines == 10 and forced.new == 0 and forced.updated == 0 and forced.duplicates == forced.relevant
    assert store.count("posts") == rows
    # the same content under another name is the same file
    copy = tmp_path / "renamed.zst"
    copy.write_bytes(path.read_bytes())
    (renamed,) = backfill_paths([copy], store, topics, options(tmp_path))
    assert renamed.already_done


def _many(n: int) -> list[bytes | dict]:
    return [comment(f"k{i:04d}", f"AI music comment number {i}", created=NOW + i) for i in range(n)]


def test_interrupted_import_resumes(tmp_path, store, topics, monkeypatch) -> None:
    path = write_zst(tmp_path / "RC_big.zst", _many(95))
    checker = QuickRelevance(RelevanceFilter(topics))
    seen = {"n": 0}
    real = checker.decide

    def stop_at_62(*args: Any, **kwargs: Any) -> Any:
        seen["n"] += 1
        if seen["n"] == 62:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(checker, "decide", stop_at_62)
    with pytest.raises(KeyboardInterrupt):
        backfill_file(path, store, checker, options(tmp_path, batch_lines=20))
    # committed: 61 units (the unit being read when interrupted is read again)
    assert load_progress(store, fingerprint(path))["units"] == 61
    assert store.count("posts") == 61
    monkeypatch.setattr(checker, "decide", real)
    report = backfill_file(path, store, checker, options(tmp_path, batch_lines=20))
    assert report.resumed_from == 61 and report.lines == 34 and report.new == 34
    assert store.count("posts") == 95
    assert load_progress(store, fingerprint(path))["done"] is True


def test_crash_between_batches_resumes_from_last_commit(tmp_path, store, topics, monkeypatch) -> None:
    path = write_zst(tmp_path / "RC_crash.zst", _many(95))
    calls = {"n": 0}
    real = type(store).upsert_posts

    def power_cut(self: Any, table: Any, **kw: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("power cut")
        return real(self, table, **kw)

    monkeypatch.setattr(type(store), "upsert_posts", power_cut)
    with pytest.raises(RuntimeError):
        backfill_paths([path], store, topics, options(tmp_path, batch_lines=20))
    monkeypatch.setattr(type(store), "upsert_posts", real)
    assert store.count("posts") == 40 and load_progress(store, fingerprint(path))["units"] == 40
    (report,) = backfill_paths([path], store, topics, options(tmp_path, batch_lines=20))
    assert report.resumed_from == 40 and report.new == 55 and store.count("posts") == 95


def test_old_dump_never_overwrites_fresher_data(tmp_path, store, topics) -> None:
    fresh = write_zst(tmp_path / "new.zst", [comment("c1", "Suno AI music, edited", retrieved_on=NOW + 9000, score=50)])
    old = write_zst(tmp_path / "old.zst", [comment("c1", "Suno AI music", retrieved_on=NOW + 100, score=2)])
    backfill_paths([fresh], store, topics, options(tmp_path))
    (report,) = backfill_paths([old], store, topics, options(tmp_path))
    assert report.relevant == 1 and report.new == 0 and report.updated == 0 and report.duplicates == 1
    row = store.query("SELECT text, score FROM posts").to_dict("records")[0]
    assert row == {"text": "Suno AI music, edited", "score": 50}
    newer = write_zst(
        tmp_path / "newer.zst", [comment("c1", "Suno AI music, edited", retrieved_on=NOW + 99999, score=77)]
    )
    (report,) = backfill_paths([newer], store, topics, options(tmp_path))
    assert report.updated == 1 and store.query("SELECT score FROM posts").iloc[0, 0] == 77


def test_truncated_file_keeps_what_came_before(tmp_path, store, topics) -> None:
    path = write_zst(tmp_path / "RC_cut.zst", _many(50))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    (report,) = backfill_paths([path], store, topics, options(tmp_path, batch_lines=10))
    assert report.error and "stopped after line" in report.error and not report.completed
    assert 0 < store.count("posts") < 50
    assert "Traceback" not in summary_line(report)


X_RESPONSE = {
    "data": [
        {
            "id": "1988000000000000001",
            "text": "Breaking Rust topping a chart with an AI song. What a time.",
            "author_id": "42",
            "created_at": "2025-11-12T18:00:00.000Z",
            "conversation_id": "1988000000000000001",
            "lang": "en",
            "edit_history_tweet_ids": ["1988000000000000001"],
            "public_metrics": {
                "retweet_count": 5,
                "reply_count": 2,
                "like_count": 40,
                "quote_count": 1,
                "bookmark_count": 0,
                "impression_count": 900,
            },
        },
        {
            "id": "1988000000000000002",
            "text": "@fan Suno wrote this? AI music is wild",
            "author_id": "43",
            "created_at": "2025-11-12T18:05:00.000Z",
            "conversation_id": "1988000000000000001",
            "lang": "en",
            "in_reply_to_user_id": "42",
            "edit_history_tweet_ids": ["1988000000000000002"],
            "referenced_tweets": [{"type": "replied_to", "id": "1988000000000000001"}],
            "public_metrics": {"retweet_count": 0, "reply_count": 0, "like_count": 3, "quote_count": 0},
        },
        {
            "id": "1988000000000000003",
            "text": "RT @a: Suno AI music thread",
            "author_id": "44",
            "created_at": "2025-11-12T18:06:00.000Z",
            "edit_history_tweet_ids": ["1988000000000000003"],
            "referenced_tweets": [{"type": "retweeted", "id": "1987000000000000009"}],
        },
        {
            "id": "1988000000000000004",
            "text": "Lovely weather in Nashville",
            "author_id": "42",
            "created_at": "2025-11-12T18:07:00.000Z",
            "edit_history_tweet_ids": ["1988000000000000004"],
        },
    ],
    "includes": {
        "users": [
            {"id": "42", "name": "Country Fan", "username": "countryfan"},
            {"id": "43", "name": "Other", "username": "other_user"},
        ]
    },
    "meta": {
        "newest_id": "1988000000000000004",
        "oldest_id": "1988000000000000001",
        "result_count": 4,
        "next_token": "b26v89c19zqg8o3fo7",
    },
}


def test_x_saved_responses_json_and_jsonl(tmp_path, store, topics) -> None:
    doc = tmp_path / "search_page1.json"
    doc.write_text(json.dumps([X_RESPONSE], indent=2))
    assert detect_format(doc) == "x"
    (report,) = backfill_paths([doc], store, topics, options(tmp_path))
    assert report.relevant == 2 and report.new == 2 and report.not_posts == 1  # the retweet is not a post
    rows = {r["post_id"]: r for r in store.query("SELECT * FROM posts WHERE source = 'x'").to_dict("records")}
    first = rows["1988000000000000001"]
    assert first["author"] == "countryfan" and first["url"] == "https://x.com/countryfan/status/1988000000000000001"
    assert (first["score"], first["replies"], first["reposts"]) == (40, 2, 6)  # reposts: 5 retweets + 1 quote
    assert first["fetched_at"].timestamp() == pytest.approx(doc.stat().st_mtime, abs=1e-3)  # the file's time
    reply = rows["1988000000000000002"]
    assert reply["kind"] == "reply" and reply["parent_id"] == "1988000000000000001"
    lines = tmp_path / "responses.jsonl.gz"
    bare = dict(
        X_RESPONSE["data"][0],
        id="1988000000000000010",
        text="Udio AI music, one tweet a line",
        edit_history_tweet_ids=["1988000000000000010"],
    )
    with gzip.open(lines, "wt") as fh:
        fh.write(json.dumps(X_RESPONSE) + "\n" + json.dumps(bare) + "\n")
    assert detect_format(lines) == "x"
    (report,) = backfill_paths([lines], store, topics, options(tmp_path))
    assert report.lines == 2 and report.new == 1 and report.duplicates == 2


def test_generic_csv_with_mapping(tmp_path, store, topics) -> None:
    path = tmp_path / "forum.csv"
    path.write_text(
        "msg_id,posted,who,message,thread\n"
        'f1,2025-11-12T10:00:00Z,ann,"Suno, AI music and me",t9\n'
        "f2,2025-11-12T11:00:00Z,bob,nothing to see here,t9\n"
        "f3,not a date,cy,AI music without a date,t9\n"
    )
    (unmapped,) = backfill_paths([path], store, topics, options(tmp_path, source_name="forum"))
    assert unmapped.error and "map them with --map" in unmapped.error and store.count("posts") == 0
    mapping = parse_mapping(["msg_id=post_id", "posted=created_at", "who=author", "message=text", "thread=thread_id"])
    (report,) = backfill_paths(
        [path], store, topics, options(tmp_path, mapping=mapping, source_name="forum", force=True)
    )
    assert report.format == "csv" and report.lines == 3 and report.new == 1 and report.bad == 1
    row = store.query("SELECT * FROM posts WHERE source = 'forum'").to_dict("records")[0]
    assert row["post_id"] == "f1" and row["author"] == "ann" and row["thread_id"] == "t9"
    with pytest.raises(FormatError, match="not a post field"):
        parse_mapping(["a=nonsense"])


def test_generic_jsonl_needs_a_source(tmp_path, store, topics) -> None:
    path = tmp_path / "export.jsonl"
    path.write_text(json.dumps({"id": "j1", "text": "AI music", "created_at": "2025-11-12T10:00:00Z"}) + "\n")
    (report,) = backfill_paths([path], store, topics, options(tmp_path))
    assert report.error and "--source-name" in report.error
    (report,) = backfill_paths([path], store, topics, options(tmp_path, source_name="blog"))
    assert report.new == 1


def test_cli_backfill(tmp_path, monkeypatch) -> None:
    from typer.testing import CliRunner

    from aimusic.cli.main import app

    (tmp_path / "topics.toml").write_text(TOPICS_TOML)
    path = write_zst(tmp_path / "RC.zst", dump_lines())
    db = tmp_path / "cli.duckdb"
    runner = CliRunner()
    args = ["backfill", str(path), "--db", str(db), "--topics", str(tmp_path / "topics.toml"), "--model", "vader"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "10 lines read, 7 relevant, 6 new, 1 duplicates, 1 bad" in result.output
    from aimusic.store.db import Store

    store = Store(db)
    assert store.count("posts") == 6
    assert store.query("SELECT count(*) FROM scores WHERE model LIKE 'vader%'").iloc[0, 0] == 6
    assert (tmp_path / "quarantine").is_dir()
    again = runner.invoke(app, [*args, "--no-score"])
    assert again.exit_code == 0 and "already imported" in again.output
    bad = runner.invoke(app, ["backfill", str(path), "--db", str(db), "--map", "oops", "--no-score"])
    assert bad.exit_code == 2 and "COLUMN=FIELD" in bad.output
    bad = runner.invoke(app, ["backfill", str(path), "--db", str(db), "--reader", "fast", "--no-score"])
    assert bad.exit_code == 2 and "bulk or line" in bad.output
    # the line reader with the rules only reads the same file again (forced) and adds nothing
    lines = runner.invoke(app, [*args, "--no-score", "--force", "--reader", "line", "--rules-only"])
    assert lines.exit_code == 0, lines.output
    assert "10 lines read" in lines.output and store.count("posts") == 6


# --- the pre-check in front of the relevance filter -------------------------------------------------------------


def _project_topics() -> Any:
    from aimusic.core.topics import load_topics

    return load_topics()


WORDS = [
    "ai",
    "music",
    "suno",
    "udio",
    "song",
    "said",
    "again",
    "studio",
    "audio",
    "breaking",
    "rust",
    "walk",
    "my",
    "generated",
    "band",
    "country",
    "xania",
    "monet",
    "velvet",
    "sundown",
    "cain",
    "walker",
    "the",
    "a",
]
SEPARATORS = [" ", "", "-", "_", "#", ". ", "\n", "s ", "İ", "ı", "K", "ſ", "é", "2", "x"]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(WORDS), st.sampled_from(SEPARATORS), st.booleans()), max_size=12))
def test_precheck_never_rejects_what_the_filter_keeps(parts: list[tuple[str, str, bool]]) -> None:
    text = "".join((w.upper() if up else w) + sep for w, sep, up in parts)
    for relevance in (RelevanceFilter(make_topics_static()), RelevanceFilter(_project_topics())):
        quick = QuickRelevance(relevance)
        if relevance.terms.search(text):
            assert quick.could_match(text), text
        for community in (None, "SunoAI"):
            full, matched = relevance.check(text, community)
            got = quick.check(None, text, community)
            assert (got is not None) == full and (got or []) == (matched if full else [])


_STATIC: dict[str, Any] = {}


def make_topics_static() -> Any:
    if "topics" not in _STATIC:
        import tempfile

        _STATIC["topics"] = make_topics(Path(tempfile.mkdtemp()))
    return _STATIC["topics"]


def test_case_specials_are_complete() -> None:
    """Every character that re.IGNORECASE equates with an ASCII letter but str.lower() does not map to it."""
    letters = re.compile("[a-z]", re.IGNORECASE)
    each = {x: re.compile(x, re.IGNORECASE) for x in "abcdefghijklmnopqrstuvwxyz"}
    found = set()
    for code in range(0x80, sys.maxunicode + 1):
        char = chr(code)
        if letters.fullmatch(char):
            for x, pattern in each.items():
                if pattern.fullmatch(char) and char.lower() != x:
                    found.add(char)
    assert found and found <= CASE_SPECIALS


def test_fingerprint_ignores_name_and_time(tmp_path) -> None:
    a = tmp_path / "a.zst"
    a.write_bytes(os.urandom(3 << 20))
    b = tmp_path / "b.zst"
    b.write_bytes(a.read_bytes())
    os.utime(b, (1, 1))
    assert fingerprint(a) == fingerprint(b)
    b.write_bytes(a.read_bytes()[:-1] + b"x")
    assert fingerprint(a) != fingerprint(b)


def test_precheck_sees_a_key_hidden_inside_another_match(tmp_path) -> None:
    # "aiso" (key of "xx aiso", which does not match here) is found first in "aisong" and hides "song", the key
    # of "AI song", which does
    from aimusic.core.topics import load_topics

    path = tmp_path / "t.toml"
    path.write_text('[tracking]\nterms = ["xx aiso", "AI song"]\n')
    relevance = RelevanceFilter(load_topics(path), broad=False)  # as backfill builds it (no one-stem class)
    quick = QuickRelevance(relevance)
    for text in ("listen: aisong!", "#AISong", "AI-songs", "ai song"):
        assert relevance.check(text)[0] and quick.could_match(text), text
    assert not quick.could_match("said song") and not relevance.check("said song")[0]
    quick._closure = {key: (key,) for key in quick._closure}  # without the closure the pre-check would miss it
    assert not quick.could_match("listen: aisong!")
