"""aimusic-monitor: collectors, storage and flows. Importing this package imports nothing heavy."""

__version__ = "0.1.0"
