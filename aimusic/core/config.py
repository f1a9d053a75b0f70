"""Settings from the environment and a git-ignored ``.env`` (pydantic-settings), and the project's paths.

Secrets are :class:`pydantic.SecretStr`: their ``repr`` and ``str`` print ``**********``, so a settings
object can be logged without leaking them. Nothing here reads the environment at import time: call
:func:`get_settings` where the values are needed, so tests and callers can pass their own.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

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
    relevance_broad: bool = Field(
        default=True, alias="AIMUSIC_RELEVANCE_BROAD",
        description="also ask the semantic relevance stage about texts with one AI-ish or music-ish word only, or "
        "a tracked name alone, kept when it is near certain (more recall; 0 turns it off; see docs/debate.md)",
    )
    stance_model: str | None = Field(
        default=None, alias="AIMUSIC_STANCE_MODEL",
        description="stance scorer name: ensemble (default: minilm-ft and minilm averaged), minilm-ft, minilm or "
        "nli:<hub id>",
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

    # Mastodon: read-only tokens for instances that refuse anonymous reads, one variable per instance,
    # MASTODON_TOKEN_<INSTANCE> (MASTODON_TOKEN_MASTODON_SOCIAL for mastodon.social): key -> token here
    mastodon_tokens: dict[str, SecretStr] = Field(default_factory=dict)

    # Operations (`aimusic serve`): where alerts go (webhook or Apprise URLs, comma-separated; they carry
    # tokens, hence secret), which task runner scores posts, how long a run waits for another to finish.
    alert_urls: SecretStr | None = Field(default=None, alias="AIMUSIC_ALERT_URLS")
    task_runner: str = Field(default="threads", alias="AIMUSIC_TASK_RUNNER")
    run_lock_wait: float = Field(default=600.0, ge=0, alias="AIMUSIC_RUN_LOCK_WAIT")
    serve_grace: float = Field(default=10.0, ge=0, alias="AIMUSIC_SERVE_GRACE")

    @field_validator("mastodon_tokens", mode="before")
    @classmethod
    def _token_keys(cls, value: Any) -> Any:
        return {mastodon_token_key(str(k)): v for k, v in value.items()} if isinstance(value, dict) else value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        tokens = _PrefixedVariables(settings_cls, "mastodon_tokens", "MASTODON_TOKEN_", dotenv_settings, env_settings)
        return init_settings, env_settings, dotenv_settings, tokens, file_secret_settings


def mastodon_token_key(instance: str) -> str:
    """``mastodon.social`` -> ``MASTODON_SOCIAL``, the end of its variable's name ``MASTODON_TOKEN_<INSTANCE>``."""
    return re.sub(r"[^A-Z0-9]", "_", instance.strip().upper())


class _PrefixedVariables(PydanticBaseSettingsSource):
    """Every ``<prefix><KEY>`` variable of the given sources (the later wins) as ``{KEY: value}`` in one field:
    per-instance secrets whose names cannot be listed in advance, known to the settings like any other."""

    def __init__(self, settings_cls: type[BaseSettings], field: str, prefix: str, *sources: object) -> None:
        super().__init__(settings_cls)
        self.field, self.prefix, self.sources = field, prefix.lower(), sources

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        found: dict[str, str] = {}
        for source in self.sources:
            for name, value in (getattr(source, "env_vars", None) or {}).items():
                if name.lower().startswith(self.prefix) and value and value.strip():
                    found[name[len(self.prefix) :].upper()] = value.strip()
        return {self.field: found} if found else {}


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


def _settings_inputs() -> tuple[object, ...]:
    """What :func:`get_settings` reads: the environment (all of it: some settings are families of variables)
    and the two ``.env`` files' stamps."""
    env = tuple(sorted(os.environ.items()))
    files = []
    for path in dict.fromkeys([PROJECT_ENV_FILE, Path(".env").resolve()]):
        with contextlib.suppress(OSError):
            stat = path.stat()
            files.append((str(path), stat.st_mtime_ns, stat.st_size))
    return env, tuple(files)


@functools.lru_cache(maxsize=8)
def _cached(inputs: tuple[object, ...]) -> Settings:
    return get_settings()


def cached_settings() -> Settings:
    """:func:`get_settings`, parsed again only when the environment or a ``.env`` file changed: for defaults
    read on hot paths (every :class:`aimusic.store.db.Store`, every ``resolve_db``)."""
    return _cached(_settings_inputs())


_SECRET_VALUES: set[str] = set()
_REDACTED = "**********"


def redact_in_logs(settings: Settings) -> None:
    """Make every log record, from any library, print ``**********`` instead of a secret's value.

    Third-party clients log what they send at DEBUG (tweepy logs the ``Authorization`` header), so hiding our
    own values is not enough: a log record factory scrubs the final message of every record.
    """
    _SECRET_VALUES.update(secret_values(settings))
    _install_record_factory()


def secret_values(settings: Settings) -> list[str]:
    """Every secret in ``settings`` (SecretStr fields, and the SecretStr values of mapping fields such as the
    Mastodon tokens) with the parts of comma- or space-separated lists, longest first: what logs and run
    reports redact. Values shorter than 6 characters are left out (they would redact ordinary words)."""
    values: set[str] = set()
    for name in type(settings).model_fields:
        value = getattr(settings, name, None)
        for item in value.values() if isinstance(value, dict) else [value]:
            if isinstance(item, SecretStr):
                secret = item.get_secret_value().strip()
                values.update(p for p in [secret, *re.split(r"[\s,]+", secret)] if len(p) >= 6)
    return sorted(values, key=len, reverse=True)


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
    configured = cached_settings().db
    if configured:
        return configured.expanduser()
    return DEMO_DB if demo else DEFAULT_DB


def resolve_read_db(db: str | Path | None = None) -> tuple[Path, str | None]:
    """The database a reading command shows, and a note when it is not the configured one.

    As :func:`resolve_db`, except that when no ``--db`` is given, the default ``data/aimusic.duckdb`` does not
    exist yet and ``data/demo.duckdb`` does (what an offline ``make run`` writes), the demo database is read;
    the dashboard chooses the same way.
    """
    path = resolve_db(db)
    if not db and path.resolve() == DEFAULT_DB.resolve() and not path.exists() and DEMO_DB.exists():
        return DEMO_DB, f"{DEFAULT_DB.name} does not exist yet, so this reads the demo database {DEMO_DB}"
    return path, None
