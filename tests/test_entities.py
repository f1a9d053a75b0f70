"""Entity tagging: aliases, hashtags, case; stored on posts, incremental, re-tagged when text or aliases change."""

from __future__ import annotations

import pyarrow as pa
import pytest

from aimusic.core.records import Post, posts_to_arrow
from aimusic.core.topics import Entity
from aimusic.debate.entities import EntityTagger
from aimusic.debate.signals import tag_entities

T0 = "2025-11-11T12:00:00Z"


@pytest.fixture
def tagger(topics) -> EntityTagger:
    return EntityTagger.from_topics(topics)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Breaking Rust tops the chart", ["Breaking Rust"]),
        ("#BreakingRust #breaking_rust BREAKING RUST", ["Breaking Rust"]),  # hashtag, underscores, case
        ("walk my walk is catchy", ["Breaking Rust"]),  # an alias stands for its entity
        ("loving #XaniaMonet and xania monet", ["Xania Monet"]),
        ("The Velvet Sundown and velvet sundown and #VelvetSundown", ["The Velvet Sundown"]),
        ("SUNO v5 vs #udiomusic vs Suno AI", ["Suno", "Udio"]),
        ("#SunoAI", ["Suno"]),
        ("UMG and Warner Music Group settle", ["Major labels"]),
        ("Udio, Suno, Spotify and Billboard", ["Suno", "Udio", "Spotify", "Billboard"]),  # config order
        ("Sunoco gas and a udiometer", []),  # word boundaries
        ("", []),
    ],
)
def test_aliases_hashtags_and_case(tagger, text, expected):
    assert tagger.tag(text) == expected


def test_shared_alias_tags_every_owner_once():
    tagger = EntityTagger([Entity(name="A", aliases=["x band"]), Entity(name="B", aliases=["X-Band", "b"])])
    assert tagger.tag("the #XBand and b") == ["A", "B"]


def test_fingerprint_follows_the_config():
    one = EntityTagger([Entity(name="Suno", aliases=["Suno"])])
    same = EntityTagger([Entity(name="Suno", aliases=["suno"])])
    other = EntityTagger([Entity(name="Suno", aliases=["Suno", "SunoAI"])])
    assert one.fingerprint == same.fingerprint != other.fingerprint


def _posts(*texts: str) -> pa.Table:
    return posts_to_arrow(
        [Post(source="x", post_id=str(i), created_at=T0, text=t) for i, t in enumerate(texts)]
    )


def test_stored_incremental_and_retagged(store, topics):
    store.upsert_posts(_posts("Suno and #BreakingRust", "nothing tracked here, just AI music"))
    assert tag_entities(store, topics) == 2
    rows = store.query("SELECT post_id, entities, entities_key FROM posts ORDER BY post_id")
    assert list(rows["entities"][0]) == ["Breaking Rust", "Suno"] and list(rows["entities"][1]) == []
    assert tag_entities(store, topics) == 0  # nothing new: nothing done
    store.upsert_posts(_posts("Suno and #BreakingRust", "now about Xania Monet"))  # post 1's text changed
    assert tag_entities(store, topics) == 1
    assert list(store.query("SELECT entities FROM posts WHERE post_id = '1'")["entities"][0]) == ["Xania Monet"]
    changed = topics.model_copy(deep=True)
    changed.entities.append(Entity(name="AI music", aliases=["AI music"]))
    assert tag_entities(store, changed) == 2  # the alias list changed: everything is tagged again


def test_collect_source_tags_at_upsert(store, topics):
    from aimusic.core.config import get_settings
    from aimusic.pipeline.collect import collect_source
    from aimusic.sources.base import Batch, Source

    class Fake(Source):
        name = "fake"

        def collect(self, ctx):
            yield Batch(posts=[Post(source="fake", post_id="1", created_at=T0, text="Udio and Suno settle with UMG")],
                        fetched=1)

    summary = collect_source(Fake(), store, topics, get_settings())
    assert summary.new == 1, summary.line()
    assert list(store.query("SELECT entities FROM posts")["entities"][0]) == ["Suno", "Udio", "Major labels"]


def test_filter_and_compare_by_entity_in_sql(store, topics):
    store.upsert_posts(_posts("Suno is great", "Udio and Suno", "Billboard chart"))
    tag_entities(store, topics)
    counts = store.query(
        "SELECT e AS entity, count(*) AS n FROM posts, unnest(entities) AS t(e) GROUP BY e ORDER BY n DESC, e"
    )
    assert counts.values.tolist() == [["Suno", 2], ["Billboard", 1], ["Udio", 1]]
    only = store.query("SELECT post_id FROM posts WHERE list_contains(entities, 'Udio')")
    assert only["post_id"].tolist() == ["1"]
