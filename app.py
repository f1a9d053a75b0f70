"""aimusic-monitor's dashboard. Start it with `aimusic dashboard` (or `streamlit run app.py`).

The page lives in flows/dashboard/ (see flows/dashboard/__init__.py); this file only runs it.
"""

from flows.dashboard.page import main

main()
