"""Relevance rules, and their precision and recall on the project's labelled set (a real quality gate)."""

from __future__ import annotations

from collections import Counter

import pytest

from aimusic.core.records import Post, posts_to_arrow
from aimusic.core.topics import load_topics
from aimusic.debate.labelled import RELEVANCE_SET, binary_report, evaluate_relevance, load_labelled, split_of
from aimusic.debate.relevance import RelevanceFilter, TermMatcher

PRECISION, RECALL = 0.90, 0.85
T0 = "2025-11-11T12:00:00Z"


@pytest.fixture(scope="module")
def rules() -> RelevanceFilter:
    return RelevanceFilter(load_topics())


@pytest.fixture(scope="module")
def examples():
    return load_labelled(RELEVANCE_SET)


def test_labelled_set_is_large_varied_and_split(examples):
    assert len(examples) >= 300
    labels = Counter(e.label for e in examples)
    assert set(labels) == {"relevant", "off_topic"} and min(labels.values()) >= 120
    assert {e.source for e in examples} >= {"x", "reddit", "hackernews", "mastodon", "bluesky"}
    assert len({e.text for e in examples}) == len(examples)
    splits = Counter(e.split for e in examples)
    assert splits["heldout"] >= 80 and splits["dev"] >= 200


@pytest.mark.parametrize("part", ["all", "heldout"])
def test_precision_and_recall_meet_the_acceptance_threshold(rules, examples, part):
    report = evaluate_relevance(rules.check, examples)[part]
    assert report.precision >= PRECISION, report.line()
    assert report.recall >= RECALL, report.line()


def test_split_is_deterministic():
    assert split_of("a post") == split_of("a post")
    assert {split_of(f"post {i}") for i in range(50)} == {"dev", "heldout"}


def test_binary_report_counts():
    r = binary_report([True, True, False, False], [True, False, True, False])
    assert (r.tp, r.fn, r.fp, r.tn) == (1, 1, 1, 1) and r.precision == r.recall == 0.5


@pytest.mark.parametrize(
    ("text", "community", "relevant"),
    [
        ("Breaking Rust changes in 1.80 broke my build, the compiler rejects my trait impl", None, False),
        ("Breaking Rust tops Billboard's country chart with an AI cowboy singer", None, True),
        ("Breaking Rust base raid on wipe day", "playrust", False),
        ("Breaking Rust is trending again", "rust", False),  # ambiguous name in an off-topic community
        ("AI music is everywhere", "rust", True),  # an unambiguous term counts anywhere
        ("suno yaar, ye gaana sun, bahut accha hai", None, False),  # Hindi "listen"
        ("Suno v5 vocals are incredible, made a whole song from one prompt", None, True),
        ("Happy birthday Suno! see you at dinner", None, False),
        ("An AI artist won the digital art prize with a Midjourney painting", None, False),
        ("This AI artist has a million monthly listeners on Spotify", None, True),
        ("The AI track at the conference had great talks on evaluation", None, False),
        ("Spotify is adding AI disclosures to song credits", None, True),  # generic "AI" + music words
        ("A new AI model beats the benchmark on math problems", None, False),
        ("The Velvet Sundown: gin, Campari and blood orange. Best cocktail", None, False),
        ("The Velvet Sundown admitted they are AI after a million Spotify listeners", None, True),
        ("anything at all", "r/SunoAI", True),
        ("udio and suno both settled with the labels", None, True),  # two tool names confirm each other
    ],
)
def test_rules(rules, text, community, relevant):
    assert rules.check(text, community)[0] is relevant


def test_generic_phrases_are_not_reported_as_matched_terms(rules):
    relevant, terms = rules.check("Spotify is adding AI disclosures to song credits")
    assert relevant and terms == []
    assert rules.check("The AI song on Billboard is everywhere")[1] == ["AI song"]


def test_exclusion_wins_over_everything(rules):
    assert not rules.check("AI music generator written in rust code, cargo build fails", "SunoAI")[0]


def test_public_api_apply_and_filter_table(rules):
    posts = [
        Post(source="x", post_id="1", created_at=T0, text="Suno song of the day"),
        Post(source="x", post_id="2", created_at=T0, text="lunch with Suno"),
        Post(source="reddit", post_id="3", created_at=T0, title="Velvet Sundown was AI", text="the band admitted it"),
    ]
    kept, dropped = rules.apply([p.model_copy() for p in posts])
    assert [p.post_id for p in kept] == ["1", "3"] and dropped == 1
    assert kept[0].terms == ["Suno"] and kept[1].terms == ["Velvet Sundown"]
    table, gone = rules.filter_table(posts_to_arrow(posts))
    assert gone == 1 and table.column("post_id").to_pylist() == ["1", "3"]
    assert table.column("terms").to_pylist() == [["Suno"], ["Velvet Sundown"]]


def test_term_matcher_single_words_and_phrases_agree():
    m = TermMatcher(["song", "record label", "v4.5", "KI-Musik"])
    found = m.find("new SONGS from a Record-Label, made with v4.5 #KIMusik")
    assert found == ["song", "record label", "v4.5", "KI-Musik"]
    assert m.find("songwriter") == [] and m.count("song song songs") == 1
    assert m.search("a #song") and not m.search("")
