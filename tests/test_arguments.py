"""Argument (theme) assignment: keywords, description similarity, the taxonomy in topics.toml, and its quality."""

from __future__ import annotations

import pytest

from aimusic.core.topics import Argument, TopicsError, load_topics
from aimusic.debate.arguments import SIMILARITY_THRESHOLD, ArgumentTagger
from aimusic.debate.labelled import DATA_DIR, load_labelled

ARGUMENTS_SET = DATA_DIR / "arguments.tsv"


def test_project_taxonomy_is_editable_config(topics):
    names = [a.name for a in topics.arguments]
    assert len(names) >= 7 and len(set(names)) == len(names)
    assert "Copyright and training data" in names and "A creative tool for everyone" in names
    assert all(a.description and a.keywords for a in topics.arguments)


def test_an_argument_needs_a_description(tmp_path):
    path = tmp_path / "topics.toml"
    path.write_text('[tracking]\nterms = ["AI music"]\n\n[[arguments]]\nname = "Quality"\nkeywords = ["slop"]\n')
    with pytest.raises(TopicsError, match=r"arguments\.0\.description"):
        load_topics(path)


def test_keywords_alone(topics):
    tagger = ArgumentTagger.from_topics(topics, use_embeddings=False)
    assert tagger.model_id.startswith("arguments-kw@")
    out = tagger.assign(["Suno was trained on copyrighted songs without consent", "AI slop everywhere, so generic",
                         "the weather is nice"])
    assert out[0].arguments == ("Copyright and training data",) and out[0].matched_by == ("keyword",)
    assert out[1].arguments == ("Quality",)
    assert out[2].arguments == ()


def test_model_id_follows_the_taxonomy():
    one = ArgumentTagger([Argument(name="Q", description="quality", keywords=["slop"])], use_embeddings=False)
    two = ArgumentTagger([Argument(name="Q", description="quality", keywords=["slop", "bland"])], use_embeddings=False)
    assert one.model_id != two.model_id
    assert ArgumentTagger(one.arguments, use_embeddings=False, threshold=0.5).model_id != one.model_id


def test_embedding_finds_arguments_without_keywords(topics):
    tagger = ArgumentTagger.from_topics(topics)
    texts = [
        "these models learned from every record ever made and not one artist signed off on it",
        "studios stopped hiring musicians for ads because generated music costs nothing",
        "The weather in Lisbon is sunny and warm today.",
    ]
    out = tagger.assign(texts)
    assert out[0].arguments[:1] == ("Copyright and training data",) and out[0].matched_by[0] == "embedding"
    assert out[1].arguments == ("Jobs and royalties",) and out[1].matched_by == ("embedding",)
    assert out[2].arguments == ()  # nothing close enough to any description
    assert all(s >= SIMILARITY_THRESHOLD for a in out for s, how in zip(a.similarity, a.matched_by, strict=True)
               if how == "embedding")


def test_at_most_three_keyword_matches_first(topics):
    tagger = ArgumentTagger.from_topics(topics)
    text = ("stolen training data, royalties gone, soulless slop, label it clearly, bot streams on the charts, "
            "a voice clone of a dead singer, and yet anyone can make music now")
    (out,) = tagger.assign([text])
    assert len(out.arguments) == 3 and all(h.startswith("keyword") for h in out.matched_by)


def test_quality_on_the_labelled_set(topics):
    """The labelled argument is among the assigned ones for most posts (measured: README, "Arguments")."""
    rows = [e for e in load_labelled(ARGUMENTS_SET) if e.label != "none"]
    assert len(rows) >= 80
    assigned = ArgumentTagger.from_topics(topics).assign([e.text for e in rows])
    recall = sum(e.label in a.arguments for e, a in zip(rows, assigned, strict=True)) / len(rows)
    per_post = sum(len(a.arguments) for a in assigned) / len(rows)
    assert recall >= 0.6 and per_post <= 1.6, (recall, per_post)
