"""The Streamlit dashboard (``app.py`` is its only importer; the rest of aimusic never imports this package).

Layout, one job per module:

* ``page.py``      the page: database, data version, banner, sidebar, view switcher, the chosen view
* ``sidebar.py``   the shared filters, bound to the URL; ``state.py`` their plain form and the default window
  (-> ``aimusic.store.queries.Filters``)
* ``context.py``   :class:`~aimusic.dashboard.context.ViewContext`, handed to every view: filters plus cached
  access to the store's named queries
* ``views/``       one module per view and the view registry (``views/__init__.py`` says how to add a view)
* ``charts.py``    Altair charts; ``widgets.py`` downloads, messages and the event form
* ``freshness.py`` schedule checks for the Runs view; ``db.py`` which database file to show

The dashboard reads through the store's named queries only and imports no database driver: the SQL lives in
``aimusic.store.dashboard_queries`` (aggregates, runs, events, filter options), ``aimusic.store.dashboard_posts``
(single posts) and ``aimusic.store.debate_queries``; connections, the data version and the in-memory facts copy
in ``aimusic.store.dashboard_facts``. An entity is what ``posts.entities`` says a post mentions, everywhere.

Modules without Streamlit (``state``, ``charts``, ``freshness``, ``db``) can be imported by tests and benchmarks
without starting a page.
"""
