"""aimusic-monitor's dashboard. Start it with `aimusic dashboard` (or `streamlit run app.py`).

The page lives in aimusic/dashboard/ (see aimusic/dashboard/__init__.py); this file only runs it.
"""

from aimusic.dashboard.page import main

main()
