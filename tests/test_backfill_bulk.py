"""The bulk reader of ``aimusic backfill`` (DuckDB reads every line, Python only candidates) against the line reader."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from source_testkit import make_topics
from test_backfill import NOW, SEPARATORS, WORDS, comment, submission, write_zst

from aimusic.core.topics import load_topics
from aimusic.debate.quickfilter import QuickRelevance
from aimusic.debate.relevance import RelevanceFilter
from aimusic.debate.semantic import SemanticRelevance
from aimusic.pipeline.backfill import BackfillOptions, FileReport, backfill_file, fingerprint, load_progress
from aimusic.pipeline.backfill_bulk import LineBlocks
from aimusic.store.db import Store

SMALL_BLOCKS = 700  # bytes: a few lines a block, so blocks, batch cuts and rejected blocks all happen


def fake_encode(texts: Any) -> np.ndarray:
    """Deterministic unit vectors from the text's hash (no model): the second stage runs, decisions vary."""
    rows = []
    for text in texts:
        seed = int.from_bytes(hashlib.sha256(text.encode("utf-8", "replace")).digest()[:4], "little")
        v = np.random.default_rng(seed).standard_normal(384)
        rows.append(v / np.linalg.norm(v))
    return np.array(rows, dtype=np.float32)


def mixed_lines() -> list[bytes | dict]:
    """Arrow Shift's wire format with every quirk the importer knows, and lines DuckDB must not vouch for."""
    lines: list[bytes | dict] = [
        submission("1ovx3kq", "Breaking Rust is #1 and it's an AI country song"),
        comment("c1", "Suno makes better songs than half of Nashville"),
        comment("c2", "Great live show last night, the fiddle player was amazing"),
        comment("c3", "AI music is theft", created=str(NOW + 5)),  # created_utc as a string
        comment("c4", "Udio vocals on this track are uncanny", score=None),  # null score
        comment("c5", "[deleted]"),
        comment("c6", "a comment in the on-topic community, no term at all", sub="SunoAI"),
        comment("c7", "A.I. music, dotted"),
        comment("c8", "AI m\u0130\u0131sic with case specials \u212a"),
        b'{"id": "c9", "body": "Suno AI music, cut short by a bad downl',  # corrupt, in the middle of a block
        b"",  # a blank line
        b"   ",  # spaces only
        b"[1, 2]",  # not an object
        b"null",
        comment("c10", "x") | {"body": 12},  # body that is not text
        b'{"id": "c11", "body": "first AI music", "body": "second", "link_id": "t3_x", "created_utc": 1}',
        b'{"id": "c12", "body": "bad \xff utf-8 AI music", "link_id": "t3_x", "created_utc": 1, "subreddit": "a"}',
        b'{"id": "c13", "body": "lone \\ud83d surrogate AI music", "link_id": "t3_x", "created_utc": 1}',
        b'{"id": "c14", "bo\\u0064y": "escaped key AI music", "link_id": "t3_x", "created_utc": 1}',
        comment("c15", "Xania Monet charting says a lot about the industry"),
        submission("p2", "Udio", "new album made with it, lyrics and vocals by AI"),
        submission("p3", "Cooking thread", "nothing to see"),
        {"kind": "t1", "data": comment("c16", "AI music in a wrapper")},
        comment("c17", "Borrow checker vs Breaking Rust, rustlang people know"),
        comment("c1", "Suno makes better songs than half of Nashville"),  # duplicate line
        comment("c18", "an algorithm wrote this whole track, the vocals feel synthetic"),  # second stage
        comment("c19", "a robot singer on the radio, generated from a prompt"),  # second stage
        comment("c20", "Suno had lunch with a robot"),  # a name next to an AI-ish word: second stage
    ]
    del lines[4]["author"]  # missing author
    filler = [comment(f"f{i:03d}", f"Plain talk about guitars and drums number {i}") for i in range(40)]
    return filler[:20] + lines + filler[20:] + [comment("last", "AI music at the very end")]


def _import(tmp_path: Path, name: str, path: Path, checker: QuickRelevance, **kw: Any) -> tuple[FileReport, Store]:
    store = Store(tmp_path / f"{name}.duckdb")
    options = BackfillOptions(quarantine_dir=tmp_path / f"q-{name}", block_bytes=SMALL_BLOCKS, **kw)
    return backfill_file(path, store, checker, options), store


def _rows(store: Store) -> list[tuple[Any, ...]]:
    with store.connect() as con:
        return con.sql("SELECT * EXCLUDE (first_seen_at, updated_at) FROM posts ORDER BY source, post_id").fetchall()


def _same(a: FileReport, b: FileReport) -> None:
    for name in ("lines", "relevant", "new", "updated", "duplicates", "bad", "not_posts", "completed", "error"):
        assert getattr(a, name) == getattr(b, name), name


@pytest.mark.parametrize("project_topics", [False, True])
def test_bulk_reader_keeps_exactly_what_the_line_reader_keeps(tmp_path, project_topics) -> None:
    topics = load_topics() if project_topics else make_topics(tmp_path)
    checker = QuickRelevance(RelevanceFilter(topics, semantic=SemanticRelevance(encode=fake_encode)))
    path = write_zst(tmp_path / "RC_mixed.zst", mixed_lines())
    bulk, bulk_store = _import(tmp_path, "bulk", path, checker, batch_lines=7)
    lines, line_store = _import(tmp_path, "lines", path, checker, batch_lines=7, bulk=False)
    assert bulk.reader == "bulk" and lines.reader == "line"
    _same(bulk, lines)
    assert _rows(bulk_store) == _rows(line_store) and bulk.new > 5
    assert bulk.bad >= 7  # corrupt, [1, 2], null, body 12, bad UTF-8 (read by the stdlib: kept or bad), ...
    assert bulk.candidates < lines.candidates  # the filler never reached Python
    assert bulk.embedded == lines.embedded and bulk.embedded > 0  # the second stage ran, on the same texts
    quarantined = [(tmp_path / f"q-{n}").glob("*.jsonl") for n in ("bulk", "lines")]
    a, b = ([orjson.loads(x) for f in files for x in f.read_bytes().splitlines()] for files in quarantined)
    assert [(r["unit"], r["error"]) for r in a] == [(r["unit"], r["error"]) for r in b]


def test_bulk_reader_rules_only_and_a_file_without_final_newline(tmp_path) -> None:
    checker = QuickRelevance(RelevanceFilter(make_topics(tmp_path), semantic=None))
    path = tmp_path / "RC_nonl.zst"
    write_zst(path, [comment("a", "AI music one"), comment("b", "nothing"), comment("c", "Udio song")])
    import zstandard

    raw = zstandard.ZstdDecompressor().decompress(path.read_bytes(), max_output_size=1 << 20).rstrip(b"\n")
    path.write_bytes(zstandard.ZstdCompressor().compress(raw))
    bulk, bs = _import(tmp_path, "bulk", path, checker)
    lines, ls = _import(tmp_path, "lines", path, checker, bulk=False)
    _same(bulk, lines)
    assert _rows(bs) == _rows(ls) and bulk.lines == 3 and bulk.new == 2 and bulk.embedded == 0


def test_bulk_reader_resumes_after_an_interruption(tmp_path, monkeypatch) -> None:
    topics = make_topics(tmp_path)
    lines = [comment(f"k{i:04d}", f"AI music comment number {i}" if i % 3 else f"plain {i}", created=NOW + i)
             for i in range(95)]
    path = write_zst(tmp_path / "RC_big.zst", lines)
    checker = QuickRelevance(RelevanceFilter(topics, semantic=None))
    store = Store(tmp_path / "bulk.duckdb")
    options = BackfillOptions(quarantine_dir=tmp_path / "q", batch_lines=20, block_bytes=SMALL_BLOCKS)
    seen = {"n": 0}
    real = checker.decide

    def stop_at_40(*args: Any, **kwargs: Any) -> Any:
        seen["n"] += 1
        if seen["n"] == 40:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(checker, "decide", stop_at_40)
    with pytest.raises(KeyboardInterrupt):
        backfill_file(path, store, checker, options)
    units = load_progress(store, fingerprint(path))["units"]
    assert 0 < units < 95 and load_progress(store, fingerprint(path))["done"] is False
    monkeypatch.setattr(checker, "decide", real)
    report = backfill_file(path, store, checker, options)
    assert report.resumed_from == units and report.lines == 95 - units and report.completed
    reference, ref_store = _import(tmp_path, "lines", path, checker, bulk=False)
    assert _rows(store) == _rows(ref_store) and store.count("posts") == reference.new
    again = backfill_file(path, store, checker, options)
    assert again.already_done and store.count("posts") == reference.new
    forced = backfill_file(path, store, checker, BackfillOptions(quarantine_dir=tmp_path / "q", force=True,
                                                                  block_bytes=SMALL_BLOCKS))
    assert forced.reader == "bulk" and forced.new == 0 and forced.updated == 0 and _rows(store) == _rows(ref_store)


def test_bulk_reader_keeps_what_came_before_a_truncation(tmp_path) -> None:
    checker = QuickRelevance(RelevanceFilter(make_topics(tmp_path), semantic=None))
    path = write_zst(tmp_path / "RC_cut.zst", [comment(f"t{i:03d}", f"AI music {i}") for i in range(60)])
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    bulk, bs = _import(tmp_path, "bulk", path, checker, batch_lines=10)
    lines, ls = _import(tmp_path, "lines", path, checker, batch_lines=10, bulk=False)
    assert bulk.error and "stopped after line" in bulk.error and not bulk.completed
    _same(bulk, lines)
    assert _rows(bs) == _rows(ls) and 0 < bs.count("posts") < 60
    fp = fingerprint(path)
    assert load_progress(bs, fp)["units"] == load_progress(ls, fp)["units"]


def test_line_blocks_cut_at_batches_and_skip(tmp_path) -> None:
    import io

    data = b"".join(b'{"n": %d}\n' % i for i in range(1, 51))
    blocks = list(LineBlocks(io.BufferedReader(io.BytesIO(data)), skip=12, batch_lines=10, block_bytes=64))
    assert blocks[0].first == 13 and blocks[-1].last == 50 and len(blocks) > 4
    assert all((b.first - 1) // 10 == (b.last - 1) // 10 for b in blocks)  # no block crosses a batch boundary
    numbers = [orjson.loads(b.line(i))["n"] for b in blocks for i in range(b.lines)]
    assert numbers == list(range(13, 51))


_PATTERNS: dict[str, Any] = {}


def _all_patterns() -> list[tuple[QuickRelevance, Any]]:
    if not _PATTERNS:
        import tempfile

        sem = SemanticRelevance(encode=fake_encode)
        for name, topics in (("small", make_topics(Path(tempfile.mkdtemp()))), ("project", load_topics())):
            for stage in (None, sem):
                quick = QuickRelevance(RelevanceFilter(topics, semantic=stage))
                _PATTERNS[f"{name}-{stage is not None}"] = (quick, quick.bulk_patterns())
    return list(_PATTERNS.values())


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(st.tuples(st.sampled_from([*WORDS, "A.I.", "sing", "model", "kick", "musik", "ki"]),
                                   st.sampled_from(SEPARATORS), st.booleans()), max_size=10), min_size=1, max_size=20))
def test_bulk_patterns_are_a_superset_of_the_precheck(texts: list[list[tuple[str, str, bool]]]) -> None:
    joined = ["".join((w.upper() if up else w) + sep for w, sep, up in parts) for parts in texts]
    con = duckdb.connect()
    for quick, p in _all_patterns():
        cand = [f"regexp_matches(t, $${p.any_of}$$)"]
        if p.words:
            cand.append(f"(regexp_matches(t, $${p.words}$$) AND regexp_matches(t, $${p.keys}$$))")
        if p.ai:
            cand.append(f"(regexp_matches(t, $${p.ai}$$) AND regexp_matches(t, $${p.music}$$))")
        rows = con.execute(f"SELECT {' OR '.join(cand)} FROM unnest(?::VARCHAR[]) AS u(t)", [joined]).fetchall()
        for text, (hit,) in zip(joined, rows, strict=True):
            if quick.could_match(text):
                assert hit, (text, p)


def _stage_two_lines() -> list[bytes | dict]:
    unsure = [comment(f"s{i:03d}", f"an algorithm wrote track {i}, the vocals feel synthetic {'x' * (i % 5)}")
              for i in range(30)]
    return [line for pair in zip(mixed_lines(), unsure + [None] * 99, strict=False) for line in pair if line]


@pytest.mark.parametrize("bulk", [True, False])
def test_second_stage_on_a_worker_gives_the_serial_result(tmp_path, monkeypatch, caplog, bulk) -> None:
    """The second stage overlapped with reading (a slow encoder, small batches, a bounded queue) stores what
    running it in place stores; an encoder that fails there gives the same notice and the same rows."""
    import threading
    import time

    from aimusic.pipeline import backfill_units

    monkeypatch.setattr(backfill_units, "RESOLVE_EVERY", 3)
    monkeypatch.setattr(backfill_units, "IN_FLIGHT", 2)
    path = write_zst(tmp_path / "RC_stage.zst", _stage_two_lines())
    topics = make_topics(tmp_path)

    def run(name: str, overlap: bool, fail_at: int | None = None) -> tuple[FileReport, Store, SemanticRelevance]:
        calls = {"n": 0}
        threads = set()

        def slow_encode(texts: Any) -> np.ndarray:
            calls["n"] += 1
            threads.add(threading.current_thread().name)
            time.sleep(0.02)
            if calls["n"] == fail_at:
                raise RuntimeError("onnx session died")
            vectors = fake_encode(texts)
            coef = sem.head.coef / np.linalg.norm(sem.head.coef)
            for i, text in enumerate(texts):
                if "track 1" in text:  # some texts only the second stage keeps
                    vectors[i] = coef
            return vectors

        sem = SemanticRelevance(encode=slow_encode)
        checker = QuickRelevance(RelevanceFilter(topics, semantic=sem))
        report, store = _import(tmp_path, name, path, checker, batch_lines=9, bulk=bulk, overlap=overlap)
        assert calls["n"] > 2
        assert all(t.startswith("aimusic-relevance") for t in threads) if overlap else threads == {"MainThread"}
        return report, store, sem

    serial, serial_store, _ = run("serial", overlap=False)
    overlapped, overlap_store, _ = run("overlap", overlap=True)
    _same(serial, overlapped)
    assert serial.embedded == overlapped.embedded > 10 and serial.relevant > 0
    assert _rows(serial_store) == _rows(overlap_store)
    with overlap_store.connect() as con:
        assert con.execute("SELECT count(*) FROM posts WHERE relevance = 'semantic'").fetchall()[0][0] >= 5

    with caplog.at_level("WARNING"):
        failed_serial, fs_store, fs_sem = run("failed-serial", overlap=False, fail_at=3)
        failed, f_store, f_sem = run("failed-overlap", overlap=True, fail_at=3)
    assert f_sem.note == fs_sem.note and f_sem.note.startswith("semantic relevance off, rules only")
    assert "onnx session died" in f_sem.note and not f_sem.available
    assert sum("semantic relevance off, rules only" in r.getMessage() for r in caplog.records) == 2
    _same(failed_serial, failed)
    assert failed.completed and failed.embedded == failed_serial.embedded < overlapped.embedded
    assert _rows(fs_store) == _rows(f_store) and len(_rows(f_store)) < len(_rows(overlap_store))


def test_the_second_stage_loads_before_the_reading_with_exports_in_a_child(tmp_path) -> None:
    """A first export of the second stage's model would hold ~400 MB during the import: the stage is loaded
    before the first line is read, inside ``exports_in_child``; a stage that cannot load leaves the rules alone,
    and a file already imported loads nothing."""
    from sentiment import child_export

    events: list[tuple[str, bool]] = []

    class Recording(SemanticRelevance):
        fails = False

        def _load(self) -> None:
            events.append(("load", child_export.enabled()))
            if self.fails:
                raise RuntimeError("no model here")

        def _embed(self, texts: Any) -> np.ndarray:
            events.append(("embed", child_export.enabled()))
            vectors = fake_encode(texts)
            for i, text in enumerate(texts):
                if "track 1" in text:  # some texts only the second stage keeps
                    vectors[i] = self.head.coef / np.linalg.norm(self.head.coef)
            return vectors

    path = write_zst(tmp_path / "RC_prepare.zst", _stage_two_lines())
    topics = make_topics(tmp_path)
    sem = Recording(encode=fake_encode)
    report, store = _import(tmp_path, "prepared", path, QuickRelevance(RelevanceFilter(topics, semantic=sem)))
    assert report.completed and report.embedded > 0
    assert events[0] == ("load", True) and ("embed", False) in events and ("load", True) not in events[1:]

    events.clear()
    again = backfill_file(path, store, QuickRelevance(RelevanceFilter(topics, semantic=sem)),
                          BackfillOptions(quarantine_dir=tmp_path / "q-again", block_bytes=SMALL_BLOCKS))
    assert again.already_done and events == []

    broken = Recording(encode=fake_encode)
    broken.fails = True
    rules, _ = _import(tmp_path, "rules", path, QuickRelevance(RelevanceFilter(topics, semantic=broken)))
    assert rules.completed and rules.embedded == 0 and not broken.available
    assert broken.note.startswith("semantic relevance off, rules only") and "no model here" in broken.note
    assert 0 < rules.relevant < report.relevant
