"""Source registry: name -> :class:`~aimusic.sources.base.Source` class.

Adding a platform: write ``aimusic/sources/<name>.py`` (or a folder ``<name>/`` with ``config``, ``client``,
``normalise`` and ``run`` modules when it grows, like ``reddit`` and ``x``) in the shape of the others, and
add it here. Shared parts: :mod:`~aimusic.sources.base` (the Source class, batches), :mod:`~aimusic.sources.errors`,
:mod:`~aimusic.sources.ratelimit` (the one clock and retry / rate-limit policy), :mod:`~aimusic.sources.http`.
Sources are imported lazily so a missing optional dependency only disables its own source.
"""

from __future__ import annotations

import pkgutil

from aimusic.sources.base import Source, SourceUnavailable

#: name -> "module:Class"
REGISTRY: dict[str, str] = {
    "demo": "aimusic.sources.demo:DemoSource",
    "reddit": "aimusic.sources.reddit:RedditSource",
    "x": "aimusic.sources.x:XSource",
    "hackernews": "aimusic.sources.hackernews:HackerNewsSource",
    "mastodon": "aimusic.sources.mastodon:MastodonSource",
    "bluesky": "aimusic.sources.bluesky:BlueskySource",
    "arcticshift": "aimusic.sources.arcticshift:ArcticShiftSource",
}


def get_source(name: str) -> Source:
    """An instance of the source called ``name``; unknown names and missing dependencies fail clearly."""
    if name not in REGISTRY:
        raise KeyError(f"unknown source {name!r}; known: {', '.join(REGISTRY)}")
    try:
        source_class = pkgutil.resolve_name(REGISTRY[name])
    except ImportError as exc:
        raise SourceUnavailable(f"{name}: a library it needs is not installed ({exc.name})") from exc
    return source_class()
