"""The Streamlit dashboard (``app.py`` is its only importer; the rest of aimusic never imports this package).

Layout, one job per module:

* ``page.py``      the page: database, data version, banner, sidebar, view switcher, the chosen view
* ``sidebar.py``   the shared filters, bound to the URL; ``state.py`` their plain form
  (-> ``aimusic.store.queries.Filters``)
* ``context.py``   :class:`~aimusic.dashboard.context.ViewContext`, handed to every view: filters plus cached queries
* ``views/``       one module per view and the view registry (``views/__init__.py`` says how to add a view)
* ``data.py``      the SQL (no Streamlit): aggregates over the facts copy; posts, runs and events from the file
* ``facts.py``     the in-memory, incrementally refreshed per-post copy that keeps the aggregates fast
* ``entities.py``  which entities a post mentions (tracked terms matched against topics.toml aliases)
* ``stats.py``     Wilson and net-sentiment intervals; ``freshness.py`` schedule checks for the Runs view
* ``charts.py``    Altair charts; ``widgets.py`` downloads, messages and the event form; ``db.py`` connections

Modules without Streamlit (``data``, ``facts``, ``entities``, ``stats``, ``freshness``, ``state``, ``charts``,
``db``) can be imported by tests and benchmarks without starting a page.
"""
