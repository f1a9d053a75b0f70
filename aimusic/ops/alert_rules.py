"""Alert thresholds: the ``[alerts]`` table of ``data/topics.toml``, validated (see :mod:`aimusic.ops.detection`)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from aimusic.core.topics import Topics, TopicsError


class AlertRules(BaseModel):
    """The ``[alerts]`` table of topics.toml (every key optional)."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = True
    window_hours: int = Field(default=24, ge=1, le=168)
    per_source: bool = True
    # volume spikes
    baseline_weeks: int = Field(default=6, ge=2, le=52)
    min_history_weeks: int = Field(default=3, ge=2, le=52)
    min_posts: int = Field(default=20, ge=1)
    spike_z: float = Field(default=4.0, gt=0)
    spike_ratio: float = Field(default=2.0, ge=1)
    # sentiment shifts
    sentiment_days: int = Field(default=28, ge=3, le=365)
    min_history_days: int = Field(default=7, ge=3)
    min_scored: int = Field(default=30, ge=5)
    sentiment_z: float = Field(default=4.0, gt=0)
    min_shift: float = Field(default=0.15, ge=0, le=2)
    # digest
    top_posts: int = Field(default=5, ge=0, le=50)


def load_rules(topics: Topics) -> AlertRules:
    """Validate the ``[alerts]`` table; a bad key names itself and the expected form."""
    from aimusic.core.topics import _describe  # the shared "key: problem (line N)" wording of topics errors

    try:
        return AlertRules.model_validate(topics.alerts)
    except ValidationError as exc:
        text = topics.path.read_text(encoding="utf-8") if topics.path and topics.path.exists() else ""
        raise TopicsError(_describe(exc, text, topics.path or "topics", ("alerts",))) from None
