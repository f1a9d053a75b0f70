"""What a source raises to end its run early; the pipeline turns each into the run's status and note.

Also importable from :mod:`aimusic.sources.base`.
"""

from __future__ import annotations


class SourceUnavailable(RuntimeError):
    """The source cannot run here (no credentials, no network): the message is the one-line reason."""


class SourceStopped(RuntimeError):
    """The source stopped early on purpose (rate limit with a long reset, cost cap): data so far is kept."""
