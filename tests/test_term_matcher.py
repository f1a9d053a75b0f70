import pytest

from aimusic.core.records import Post
from aimusic.debate.relevance import RelevanceFilter, TermMatcher


@pytest.mark.parametrize(
    "text",
    ["I love AI music", "ai-music is here", "#AIMusic trending", "AI   MUSIC", "ai_music", "so many AI musics"],
)
def test_phrase_matches_case_spacing_hashtag_and_plural(text):
    assert TermMatcher(["AI music"]).find(text) == ["AI music"]


@pytest.mark.parametrize("text", ["Sunoco gas station", "the aim usic", "", "Mr.Sunokawa"])
def test_word_boundaries(text):
    assert TermMatcher(["Suno", "AI music"]).find(text) == []


def test_find_returns_config_spelling_in_order_without_repeats():
    m = TermMatcher(["Udio", "Suno", "AI song"])
    assert m.find("suno and SUNO and udio made an ai song") == ["Udio", "Suno", "AI song"]


def test_rules(topics):
    rf = RelevanceFilter(topics)
    assert rf.check("The AI song on Billboard is everywhere")[0]
    assert not rf.check("Happy birthday Suno, see you at dinner")[0]  # ambiguous name, no context
    assert rf.check("Suno made this whole song from a prompt")[0]  # ambiguous name with context
    assert not rf.check("Breaking Rust changes: the borrow checker now rejects this")[0]  # exclusion
    assert rf.check("anything at all", community="SunoAI")[0]  # on-topic community
    assert rf.check("anything at all", community="r/sunoai")[0]
    assert not rf.check("A new AI model for protein folding")[0]


def test_ambiguous_term_is_not_its_own_context(topics):
    rf = RelevanceFilter(topics)
    assert not rf.check("Walk My Walk")[0]  # contains 'walk' only


def test_apply_fills_terms_and_counts_dropped(topics):
    rf = RelevanceFilter(topics)
    posts = [
        Post(source="x", post_id="1", created_at=1_760_000_000, text="Suno song of the day"),
        Post(source="x", post_id="2", created_at=1_760_000_000, text="lunch with Suno"),
    ]
    kept, dropped = rf.apply(posts)
    assert [p.post_id for p in kept] == ["1"] and dropped == 1
    assert kept[0].terms == ["Suno"]
