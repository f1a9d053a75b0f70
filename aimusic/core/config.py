"""Settings from the environment and a git-ignored ``.env`` (pydantic-settings), and the project's paths.

Secrets are :class:`pydantic.SecretStr`: their ``repr`` and ``str`` print ``**********``, so a settings
object can be logged without leaking them. Nothing here reads the environment at import time: call
:func:`get_settings` where the values are needed, so tests and callers can pass their own.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = PROJECT_ROOT / "data"
DEFAULT_DB = DATA_DIR / "aimusic.duckdb"
DEMO_DB = DATA_DIR / "demo.duckdb"
DEFAULT_TOPICS = DATA_DIR / "topics.toml"
EXPORTS_DIR = DATA_DIR / "exports"
PROJECT_ENV_FILE = PROJECT_ROOT / ".env"


class ConfigError(RuntimeError):
    """A configuration value is missing or malformed; the message names the key and the expected form."""


class Settings(BaseSettings):
    """Everything configurable outside ``data/topics.toml``. Environment names are prefixed ``AIMUSIC_``
    except the platform credentials, which use the names their own tools document."""

    model_config = SettingsConfigDict(
        env_file_encoding="utf-8", extra="ignore", populate_by_name=True, env_ignore_empty=True
    )

    db: Path | None = Field(default=None, alias="AIMUSIC_DB", description="DuckDB file")
    topics: Path = Field(default=DEFAULT_TOPICS, alias="AIMUSIC_TOPICS")
    model: str | None = Field(default=None, alias="AIMUSIC_MODEL", description="sentiment scorer name")
    stance_model: str | None = Field(
        default=None, alias="AIMUSIC_STANCE_MODEL", description="stance scorer name: minilm (default) or nli:<hub id>"
    )
    multilingual_model: str | None = Field(
        default=None, alias="AIMUSIC_MULTILINGUAL_MODEL",
        description="scorer for posts the main model's languages exclude, e.g. "
        "transformer:cardiffnlp/twitter-xlm-roberta-base-sentiment",
    )
    user_agent: str = Field(
        default="aimusic-monitor/0.1 (+https://github.com/aimusic-monitor/aimusic-monitor)",
        alias="AIMUSIC_USER_AGENT",
    )

    # Reddit (praw): https://www.reddit.com/prefs/apps (access is approved case by case since Nov 2025)
    reddit_client_id: str | None = Field(default=None, alias="REDDIT_CLIENT_ID")
    reddit_client_secret: SecretStr | None = Field(default=None, alias="REDDIT_CLIENT_SECRET")
    reddit_user_agent: str | None = Field(default=None, alias="REDDIT_USER_AGENT")
    reddit_username: str | None = Field(default=None, alias="REDDIT_USERNAME")
    reddit_password: SecretStr | None = Field(default=None, alias="REDDIT_PASSWORD")

    # Personal data: when set, author handles are stored as keyed hashes (see aimusic/store/privacy.py)
    pseudonymize_key: SecretStr | None = Field(default=None, alias="AIMUSIC_PSEUDONYMIZE_KEY")

    # X API v2 (tweepy)
    x_bearer_token: SecretStr | None = Field(default=None, alias="X_BEARER_TOKEN")

    # Bluesky (atproto): a handle and an app password (Settings > App passwords)
    bluesky_handle: str | None = Field(default=None, alias="BLUESKY_HANDLE")
    bluesky_app_password: SecretStr | None = Field(default=None, alias="BLUESKY_APP_PASSWORD")

    # Operations (`aimusic serve`): where alerts go (webhook or Apprise URLs, comma-separated; they carry
    # tokens, hence secret), which task runner scores posts, how long a run waits for another to finish.
    alert_urls: SecretStr | None = Field(default=None, alias="AIMUSIC_ALERT_URLS")
    task_runner: str = Field(default="threads", alias="AIMUSIC_TASK_RUNNER")
    run_lock_wait: float = Field(default=600.0, ge=0, alias="AIMUSIC_RUN_LOCK_WAIT")


def get_settings(**overrides: object) -> Settings:
    """Read settings from the environment and ``.env`` (the project's, then the working directory's; the
    environment wins); a malformed value raises :class:`ConfigError` naming the key."""
    env_files = tuple(dict.fromkeys([PROJECT_ENV_FILE, Path(".env").resolve()]))
    try:
        settings = Settings(_env_file=env_files, **overrides)  # type: ignore[call-arg]
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"invalid setting in the environment or .env: {problems}") from None
    redact_in_logs(settings)
    return settings


_SECRET_VALUES: set[str] = set()
_REDACTED = "**********"


def redact_in_logs(settings: Settings) -> None:
    """Make every log record, from any library, print ``**********`` instead of a secret's value.

    Third-party clients log what they send at DEBUG (tweepy logs the ``Authorization`` header), so hiding our
    own values is not enough: a log record factory scrubs the final message of every record.
    """
    for name in Settings.model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            secret = value.get_secret_value()
            parts = [secret, *secret.split(",")]
            _SECRET_VALUES.update(p.strip() for p in parts if len(p.strip()) >= 6)
    _install_record_factory()


_factory_installed = False


def _install_record_factory() -> None:
    global _factory_installed
    if _factory_installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        if _SECRET_VALUES:
            try:
                message = record.getMessage()
            except Exception:  # a malformed record is the logging module's problem, not ours
                return record
            if any(secret in message for secret in _SECRET_VALUES):
                for secret in sorted(_SECRET_VALUES, key=len, reverse=True):
                    message = message.replace(secret, _REDACTED)
                record.msg, record.args = message, None
        return record

    logging.setLogRecordFactory(factory)
    _factory_installed = True


def resolve_db(db: str | Path | None = None, *, demo: bool = False) -> Path:
    """The database file: ``--db`` first, then ``AIMUSIC_DB``, then the default (``demo.duckdb`` for demo)."""
    if db:
        return Path(db).expanduser()
    configured = get_settings().db
    if configured:
        return configured.expanduser()
    return DEMO_DB if demo else DEFAULT_DB
