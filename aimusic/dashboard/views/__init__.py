"""The dashboard's views, in the order of the view switcher.

Adding a view takes one module and one line:

1. Write ``aimusic/dashboard/views/<name>.py`` defining::

       TITLE = "Debate"                  # label in the view switcher, and the ``view=`` value in the URL
       NEEDS_POSTS = True                # optional (default True); False if useful on an empty database
       def render(ctx: ViewContext) -> None: ...

   ``ctx`` (:class:`aimusic.dashboard.context.ViewContext`) carries the shared filters (``ctx.filters``, a
   :class:`aimusic.store.queries.Filters`), the model and the time bucket, and runs the store's named queries
   with caching by data version and arguments: ``ctx.facts(q.totals, ctx.filters)`` calls
   ``aimusic.store.dashboard_queries.totals(facts_cursor, filters)`` over the in-memory facts copy, or its
   namesake in :mod:`aimusic.store.dashboard_daily` over the file's daily summary when that answers it,
   ``ctx.file(fn, ...)`` calls ``fn(read_only_connection, ...)`` on the database file, ``ctx.posts(fn, ...)``
   calls a query of :mod:`aimusic.store.dashboard_posts` or :mod:`aimusic.store.dashboard_voices` on the file
   with ``summary=`` whether its summary is current. The dashboard imports no database
   driver: put new SQL in a named function of ``aimusic/store/dashboard_queries.py`` (no Streamlit there, so
   it can be tested and benchmarked alone); use :mod:`aimusic.dashboard.charts` and
   :mod:`aimusic.dashboard.widgets` for charts, CSV downloads and messages.
2. Add ``"<name>": "aimusic.dashboard.views.<name>"`` to :data:`VIEWS` below.
"""

from __future__ import annotations

import importlib
from types import ModuleType

#: key -> module; the order is the order of the view switcher
VIEWS: dict[str, str] = {
    "overview": "aimusic.dashboard.views.overview",
    "debate": "aimusic.dashboard.views.debate",
    "compare": "aimusic.dashboard.views.compare",
    "posts": "aimusic.dashboard.views.posts",
    "voices": "aimusic.dashboard.views.voices",
    "events": "aimusic.dashboard.views.events",
    "runs": "aimusic.dashboard.views.runs",
    "alerts": "aimusic.dashboard.views.alerts",
    "label": "aimusic.dashboard.views.label",
}


def load_view(key: str) -> ModuleType:
    """The view module for ``key``; an unknown key fails clearly."""
    try:
        target = VIEWS[key]
    except KeyError:
        raise KeyError(f"unknown view {key!r}; known: {', '.join(VIEWS)}") from None
    module = importlib.import_module(target)
    for attr in ("TITLE", "render"):
        if not hasattr(module, attr):
            raise TypeError(f"view module {target} must define {attr}")
    return module


def titles() -> dict[str, str]:
    return {key: load_view(key).TITLE for key in VIEWS}
