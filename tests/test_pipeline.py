from collections.abc import Iterator

import pytest

from aimusic.core.config import get_settings
from aimusic.core.records import Post
from aimusic.pipeline.collect import collect_source, score_posts
from aimusic.sources.base import Batch, CollectContext, Source, SourceStopped, SourceUnavailable
from sentiment import load_scorer


def post(i, text="AI music rules"):
    return Post(source="fake", post_id=str(i), created_at=1_760_000_000 + i, text=text)


class Pages(Source):
    name = "fake"

    def __init__(self, pages, fail_after=None, error=None):
        self.pages, self.fail_after, self.error = pages, fail_after, error or RuntimeError("boom")

    def collect(self, ctx: CollectContext) -> Iterator[Batch]:
        for n, page in enumerate(self.pages):
            if self.fail_after is not None and n == self.fail_after:
                raise self.error
            yield Batch(posts=page, fetched=len(page) + 1, skipped=1, cursors={"q": str(n)})


def test_collect_commits_each_page_with_its_cursor(store, topics):
    src = Pages([[post(1), post(2, "lunch with Suno")], [post(3)]])
    s = collect_source(src, store, topics, get_settings())
    assert (s.status, s.fetched, s.new, s.irrelevant, s.skipped) == ("partial", 5, 2, 1, 2)
    assert store.get_cursors("fake") == {"q": "1"}
    again = collect_source(src, store, topics, get_settings())
    assert (again.new, again.updated) == (0, 0)


def test_failure_keeps_committed_pages_and_cursor(store, topics):
    s = collect_source(Pages([[post(1)], [post(2)], [post(3)]], fail_after=2), store, topics, get_settings())
    assert s.status == "failed" and "boom" in s.error
    assert store.count("posts") == 2
    assert store.get_cursors("fake") == {"q": "1"}


def test_stopped_source_is_partial_with_note(store, topics):
    src = Pages([[post(1)], [post(2)]], fail_after=1, error=SourceStopped("daily cap of 1 posts reached"))
    s = collect_source(src, store, topics, get_settings())
    assert s.status == "partial" and "daily cap" in s.line()
    assert store.count("posts") == 1


def test_unavailable_source_is_skipped_with_reason(store, topics):
    class NoKeys(Pages):
        def check(self, ctx):
            raise SourceUnavailable("no credentials: set FAKE_TOKEN in .env")

    s = collect_source(NoKeys([[post(1)]]), store, topics, get_settings())
    assert s.status == "skipped" and "FAKE_TOKEN" in s.error
    assert store.count("posts") == 0


def test_scoring_is_incremental_and_marks_unscorable(store, topics):
    posts = [post(1, "AI music is wonderful, I love it"), post(2, "AI music is awful theft"),
             Post(source="fake", post_id="3", created_at=1_760_000_000, text="KI-Musik wie Suno ist Diebstahl",
                  lang="de")]
    collect_source(Pages([posts]), store, topics, get_settings())
    vader = load_scorer("vader")
    assert sum(score_posts(store, vader, batch_size=2).values()) == 3
    assert sum(score_posts(store, vader).values()) == 0
    with store.connect() as con:
        got = dict(con.execute("SELECT post_id, coalesce(label, status) FROM scores").fetchall())
    assert got == {"1": "positive", "2": "negative", "3": "language"}


@pytest.mark.parametrize("limit", [1, 2])
def test_scoring_limit(store, topics, limit):
    collect_source(Pages([[post(i) for i in range(5)]]), store, topics, get_settings())
    assert sum(score_posts(store, load_scorer("vader"), limit=limit, batch_size=1).values()) == limit
