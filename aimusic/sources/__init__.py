"""Source registry: name -> :class:`~aimusic.sources.base.Source` class.

Adding a platform: write ``aimusic/sources/<name>.py`` in the shape of the others and add it here.
Sources are imported lazily so a missing optional dependency only disables its own source.
"""

from __future__ import annotations

import importlib

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
    try:
        target = REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown source {name!r}; known: {', '.join(REGISTRY)}") from None
    module_name, _, cls_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SourceUnavailable(f"{name}: a library it needs is not installed ({exc.name})") from exc
    return getattr(module, cls_name)()
