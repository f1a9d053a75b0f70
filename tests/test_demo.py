from datetime import date

import pyarrow.compute as pc

from aimusic.core.records import POST_SCHEMA
from aimusic.sources.demo import PLATFORMS, generate_table


def test_reproducible_and_schema():
    a = generate_table(500, seed=7)
    b = generate_table(500, seed=7)
    assert a.equals(b)
    assert a.schema.equals(POST_SCHEMA)
    assert not a.equals(generate_table(500, seed=8))


def test_realistic_mix():
    t = generate_table(5000, seed=1, end=date(2026, 2, 28), days=120, events=[date(2025, 11, 11)])
    assert set(t.column("source").to_pylist()) == set(PLATFORMS)
    days = pc.unique(pc.cast(t.column("created_at"), "date32"))
    assert len(days) >= 90
    assert pc.all(t.column("synthetic")).as_py()
    assert all(u.startswith("https://example.invalid/") for u in t.column("url").to_pylist())
    authors = t.column("author").to_pylist()
    assert 100 < len(set(authors)) < len(authors)  # a long tail, some very active authors
    assert len(set(t.column("lang").to_pylist())) > 1
    assert max(t.column("score").to_pylist()) > 20 * (sum(t.column("score").to_pylist()) / 5000)


def test_spike_around_event():
    event = date(2025, 11, 11)
    t = generate_table(20000, seed=3, end=date(2026, 2, 28), days=180, events=[event])
    per_day = pc.value_counts(pc.cast(t.column("created_at"), "date32")).to_pylist()
    counts = {d["values"]: d["counts"] for d in per_day}
    typical = sorted(counts.values())[len(counts) // 2]
    assert counts[event] > 2 * typical


def test_both_sides_of_the_debate_present():
    texts = " ".join(generate_table(3000, seed=5).column("text").to_pylist()).lower()
    assert "theft" in texts or "stolen" in texts
    assert "creative tool" in texts or "amazing" in texts
