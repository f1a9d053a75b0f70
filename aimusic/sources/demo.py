"""Synthetic, clearly labelled posts so the monitor has something to show offline.

Seeded and reproducible: the same seed, size and dates give the same posts (same ids, text, times), so a
re-run adds nothing. The mix imitates the real debate: five platforms, authors with a long tail of activity,
log-normal engagement, weekly rhythm, spikes around the dated events in topics.toml, and opinions on both
sides whose balance moves over time. Every row has ``synthetic = true`` and a URL under ``example.invalid``;
by default demo posts go to ``data/demo.duckdb`` and never mix with collected ones.

:func:`generate_table` builds the columns with numpy and writes an Arrow table directly, fast enough for
``aimusic demo --posts 1000000``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pyarrow as pa

from aimusic.core.records import POST_SCHEMA
from aimusic.core.topics import Topics
from aimusic.sources.base import Batch, CollectContext, Source, SourceConfig

PLATFORMS = ["reddit", "x", "bluesky", "mastodon", "hackernews"]
PLATFORM_WEIGHTS = [0.36, 0.28, 0.16, 0.12, 0.08]
SUBREDDITS = ["SunoAI", "udiomusic", "WeAreTheMusicMakers", "musicindustry", "Music", "country", "artificial"]
INSTANCES = ["mastodon.social", "mastodon.online", "musician.social", "fosstodon.org"]

SUBJECTS = [
    "Breaking Rust", "Xania Monet", "The Velvet Sundown", "Suno", "Udio", "this AI artist",
    "AI music", "AI-generated music", "the AI country song", "Walk My Walk",
]

PRO = [
    "Honestly {s} sounds better than half the stuff on country radio. Good music is good music.",
    "I made a whole album with Suno this weekend. As someone who can't play an instrument, this is amazing.",
    "{s} topping a chart just proves people like the songs. Gatekeeping who gets to make music is over.",
    "AI music is a creative tool for everyone. Producers used drum machines too and the world survived.",
    "Love what {s} is doing. The hook on Walk My Walk is stuck in my head all day.",
    "Udio helped me finish a demo I'd been stuck on for months. Great tool for songwriters.",
    "People said the same about autotune. {s} is just the next step and I'm excited for it.",
    "Tried {s} after all the hype and I get it now, it's genuinely catchy. Fantastic production.",
    "AI-generated music lets indie creators compete with label budgets. That's a good thing.",
    "If listeners enjoy {s}, who cares how it was made? Let people enjoy things.",
]
ANTI = [
    "{s} is trained on stolen work. Real artists never consented and never got paid.",
    "An AI song topping Billboard is a disgrace. This is theft dressed up as innovation.",
    "{s} is soulless slop. Music is supposed to come from lived experience, not a prompt.",
    "Spotify is flooding playlists with AI tracks so they can pay artists even less. Terrible.",
    "Labels will use AI music to replace session musicians. Jobs and royalties are disappearing.",
    "How is {s} even allowed on the charts? Chart fraud with bot streams, nothing more.",
    "I'm so tired of AI slop music. Label it clearly so I can skip it.",
    "{s} makes me sad. Songwriters spend years learning their craft and this is what wins?",
    "Suno scraped copyrighted recordings and now sells the output. The lawsuits can't come fast enough.",
    "Hate that {s} got a record deal while real singers can't pay rent. Awful.",
]
NEUTRAL = [
    "Does anyone know if {s} discloses that the vocals are AI-generated?",
    "Billboard's Country Digital Song Sales chart has a low sales threshold, which explains {s}.",
    "Interesting thread on how {s} was produced. Curious what the streaming numbers look like.",
    "Reading about the licensing deals between labels and Suno and Udio. Not sure what it means yet.",
    "Is {s} one person using AI tools or a fully generated project? Hard to tell from the credits.",
    "Article: streaming services are testing labels for AI-generated music. Details in the link.",
    "{s} is in the news again. What's the actual chart position this week?",
    "Podcast episode about AI music and copyright law, covering {s} and the label settlements.",
    "Comparing Suno and Udio output quality for the same prompt. Results are mixed.",
    "How many AI artists are on the charts right now? Counting {s} I found three.",
]
FOREIGN = [
    ("de", "KI-Musik wie {s} ist Diebstahl an echten Künstlern."),
    ("de", "Ehrlich gesagt klingt {s} gar nicht schlecht. KI-Musik ist ein Werkzeug."),
    ("es", "La música generada por IA como {s} no tiene alma."),
    ("es", "Me encanta {s}, la música con IA es el futuro."),
    ("fr", "La musique IA comme {s} vole le travail des artistes."),
    ("pt", "Achei {s} muito bom, música com IA é divertida."),
]
# Posts that match a tracked name but are not about AI music: the relevance filter should drop them.
OFF_TOPIC = [
    "Breaking Rust changes again: the borrow checker rejects code that compiled last week. cargo build fails.",
    "Happy birthday to my cousin Suno! Great dinner tonight with the whole family.",
    "New AI model beats the benchmark on math olympiad problems, paper out today.",
    "Walk My Walk, a charity hike for the local shelter, raised $3,000 this weekend.",
]
ADJ = ["blue", "quiet", "loud", "lofi", "midnight", "analog", "rusty", "velvet", "neon", "wild", "dusty", "honest"]
NOUN = ["fiddle", "synth", "drummer", "cowboy", "beat", "vinyl", "chord", "banjo", "tape", "lyric", "mic", "echo"]


class DemoConfig(SourceConfig):
    posts: int = 6000
    seed: int = 42
    days: int = 180
    end: date = date(2026, 2, 28)


def _day_weights(start: date, days: int, events: list[date]) -> np.ndarray:
    t = np.arange(days, dtype=float)
    base = 1.0 + 0.6 * t / max(days - 1, 1)  # the debate grows
    weekday = np.array([(start + timedelta(days=int(i))).weekday() for i in t])
    base *= np.where(weekday >= 5, 0.75, 1.0)  # quieter weekends
    for ev in events:
        offset = (ev - start).days
        if 0 <= offset < days:
            after = np.clip(t - offset, 0, None)
            base += np.where(t >= offset, 4.0 * np.exp(-after / 3.0), 0.0)
    return base / base.sum()


def generate_table(
    n: int,
    *,
    seed: int = 42,
    end: date = date(2026, 2, 28),
    days: int = 180,
    events: list[date] | None = None,
    fetched_at: datetime | None = None,
) -> pa.Table:
    """Build ``n`` synthetic posts as an Arrow table with :data:`POST_SCHEMA` (ids ``demo-<seed>-<i>``)."""
    if n < 0:
        raise ValueError("the number of posts must not be negative")
    days = max(int(days), 1)
    rng = np.random.default_rng(seed)
    start = end - timedelta(days=days - 1)
    events = events or []
    weights = _day_weights(start, days, events)
    day = rng.choice(days, size=n, p=weights)
    seconds = rng.integers(0, 86_400, size=n)
    epoch0 = datetime(start.year, start.month, start.day, tzinfo=UTC).timestamp()
    created_us = ((epoch0 + day * 86_400.0 + seconds) * 1_000_000).astype("int64")

    # opinion balance moves: more negative after each event, drifting back over a few weeks
    shock = np.zeros(days)
    for ev in events:
        offset = (ev - start).days
        if 0 <= offset < days:
            after = np.arange(days) - offset
            shock += np.where(after >= 0, 0.18 * np.exp(-np.clip(after, 0, None) / 10.0), 0.0)
    p_anti = np.clip(0.36 + shock[day], 0, 0.8)
    p_pro = np.clip(0.32 - shock[day] / 2, 0.05, 1)
    u = rng.random(n)
    stance = np.where(u < p_anti, 0, np.where(u < p_anti + p_pro, 1, 2))  # 0 anti, 1 pro, 2 neutral

    platform = rng.choice(len(PLATFORMS), size=n, p=PLATFORM_WEIGHTS)
    subject = rng.integers(0, len(SUBJECTS), size=n)
    template = rng.integers(0, 10, size=n)
    foreign = rng.random(n) < 0.05
    foreign_idx = rng.integers(0, len(FOREIGN), size=n)
    pools = (ANTI, PRO, NEUTRAL)
    texts: list[str] = []
    langs: list[str] = []
    off_topic = rng.random(n) < 0.03
    for i in range(n):
        s = SUBJECTS[subject[i]]
        if off_topic[i]:
            lang, tmpl = "en", OFF_TOPIC[template[i] % len(OFF_TOPIC)]
        elif foreign[i]:
            lang, tmpl = FOREIGN[foreign_idx[i]]
        else:
            lang, tmpl = "en", pools[stance[i]][template[i]]
        texts.append(tmpl.format(s=s))
        langs.append(lang)

    n_authors = max(n // 6, 1)
    author_rank = np.minimum(rng.zipf(1.6, size=n), n_authors) - 1
    author_perm = rng.permutation(n_authors)
    authors = [f"{ADJ[a % 12]}_{NOUN[(a // 12) % 12]}{a // 144}" for a in author_perm[author_rank]]

    kind_u = rng.random(n)
    kinds = np.where(kind_u < 0.65, "post", np.where(platform == 0, "comment", "reply"))
    ids = [f"demo-{seed}-{i}" for i in range(n)]
    parent_idx = (rng.random(n) * np.arange(n)).astype("int64")  # a random earlier post
    parents = [ids[parent_idx[i]] if kinds[i] != "post" and i else None for i in range(n)]
    community = [
        SUBREDDITS[i % len(SUBREDDITS)] if p == 0 else INSTANCES[i % len(INSTANCES)] if p == 3 else None
        for i, p in enumerate(platform)
    ]
    engagement = np.floor(rng.lognormal(mean=1.2, sigma=1.4, size=n)).astype("int64")
    replies = np.floor(engagement * rng.random(n) * 0.4).astype("int64")
    reposts = np.where(platform == 4, 0, np.floor(engagement * rng.random(n) * 0.3)).astype("int64")
    fetched = fetched_at or datetime.combine(end + timedelta(days=1), datetime.min.time(), tzinfo=UTC)

    columns = {
        "source": pa.array(np.array(PLATFORMS, dtype=object)[platform], pa.string()),
        "post_id": pa.array(ids, pa.string()),
        "kind": pa.array(kinds.astype(object), pa.string()),
        "parent_id": pa.array(parents, pa.string()),
        "thread_id": pa.array(parents, pa.string()),
        "created_at": pa.array(created_us, pa.timestamp("us", tz="UTC")),
        "author": pa.array(authors, pa.string()),
        "title": pa.nulls(n, pa.string()),
        "text": pa.array(texts, pa.string()),
        "url": pa.array([f"https://example.invalid/demo/{i}" for i in ids], pa.string()),
        "lang": pa.array(langs, pa.string()),
        "score": pa.array(engagement, pa.int64()),
        "replies": pa.array(replies, pa.int64()),
        "reposts": pa.array(reposts, pa.int64()),
        "community": pa.array(community, pa.string()),
        "terms": pa.nulls(n, pa.list_(pa.string())),
        "relevance": pa.nulls(n, pa.string()),
        "nsfw": pa.array(np.zeros(n, dtype=bool)),
        "synthetic": pa.array(np.ones(n, dtype=bool)),
        "fetched_at": pa.array(np.full(n, int(fetched.timestamp() * 1_000_000)), pa.timestamp("us", tz="UTC")),
    }
    return pa.table(columns, schema=POST_SCHEMA)


class DemoSource(Source[DemoConfig]):
    """Offline synthetic posts (``[sources.demo]``: posts, seed, days, end)."""

    name = "demo"
    synthetic = True
    default_cron = "0 3 * * *"

    def collect(self, ctx: CollectContext) -> Iterator[Batch]:
        cfg = self.config(ctx.topics)
        table = generate_table(
            cfg.posts, seed=cfg.seed, end=cfg.end, days=cfg.days, events=event_dates(ctx.topics)
        )
        step = 50_000
        for offset in range(0, table.num_rows, step):
            chunk = table.slice(offset, step)
            yield Batch(table=chunk, fetched=chunk.num_rows)


def event_dates(topics: Topics) -> list[date]:
    return [e.date for e in topics.events]
