"""Secrets never leak: the flow runs with sentinel secret values, then every output is scanned for them."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from aimusic.core.config import PROJECT_ROOT, get_settings
from aimusic.sources import REGISTRY

SENTINELS = {
    "REDDIT_CLIENT_SECRET": "SENTINEL-reddit-secret-5b1f",
    "REDDIT_PASSWORD": "SENTINEL-reddit-password-77aa",
    "X_BEARER_TOKEN": "SENTINEL-x-bearer-0c3d",
    "BLUESKY_APP_PASSWORD": "SENTINEL-bsky-app-pw-91e2",
    "AIMUSIC_ALERT_URLS": "json://127.0.0.1:9/SENTINEL-alert-token-4d4d",
    "AIMUSIC_PSEUDONYMIZE_KEY": "SENTINEL-pseudonym-key-e7e7",
    "MASTODON_TOKEN_MASTODON_SOCIAL": "SENTINEL-mastodon-token-3c3c",
}
PUBLIC = {"REDDIT_CLIENT_ID": "sentinel-client-id", "REDDIT_USER_AGENT": "aimusic-test", "REDDIT_USERNAME": "someone",
          "BLUESKY_HANDLE": "someone.bsky.social"}


def leaks(blob: str | bytes) -> list[str]:
    if isinstance(blob, bytes):
        return [v for v in SENTINELS.values() if v.encode() in blob]
    return [v for v in SENTINELS.values() if v in blob]


def test_settings_repr_hides_secrets(monkeypatch):
    for k, v in {**SENTINELS, **PUBLIC}.items():
        monkeypatch.setenv(k, v)
    settings = get_settings()
    assert leaks(repr(settings)) == [] and leaks(str(settings.model_dump())) == []
    assert settings.x_bearer_token.get_secret_value() == SENTINELS["X_BEARER_TOKEN"]


def test_flow_outputs_never_contain_secrets(prefect_harness, monkeypatch, tmp_path: Path, caplog, capsys):
    for k, v in {**SENTINELS, **PUBLIC}.items():
        monkeypatch.setenv(k, v)
    caplog.set_level(logging.DEBUG)
    from aimusic.store.db import Store
    from aimusic.store.privacy import record_export
    from aimusic.store.queries import export
    from flows.monitor import monitor_flow

    db = tmp_path / "s.duckdb"
    # the project's topics with a small demo, so the flow stays quick; every real source is tried
    topics = tmp_path / "topics.toml"
    text = (PROJECT_ROOT / "data" / "topics.toml").read_text()
    assert "posts = 6000" in text
    topics.write_text(text.replace("posts = 6000", "posts = 300"))
    result = monitor_flow(sources=list(REGISTRY), db=str(db), topics_path=str(topics))
    assert {s["source"] for s in result["summaries"]} == set(REGISTRY)
    store = Store(db)
    assert store.count("posts") > 0  # the demo source ran; the others were tried with the sentinel secrets

    outputs: dict[str, str | bytes] = {"result": repr(result), "logs": caplog.text}
    captured = capsys.readouterr()
    outputs["stdout"], outputs["stderr"] = captured.out, captured.err
    with store.connect() as con:
        tables = [r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()]
        for table in tables:
            outputs[f"table {table}"] = repr(con.execute(f'SELECT * FROM "{table}"').fetchall())
    for what in ("posts", "daily"):
        for fmt in ("csv", "parquet"):
            out = tmp_path / f"{what}.{fmt}"
            record_export(store, out, what, fmt, export(store, what, out, fmt=fmt), {})
            outputs[f"export {out.name}"] = out.read_bytes()
    for file in tmp_path.rglob("*"):
        if file.is_file():
            outputs[f"file {file.name}"] = file.read_bytes()

    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts()
        logs = client.read_logs()
    outputs["artifacts"] = repr([(a.key, a.description, a.data) for a in artifacts])
    outputs["prefect logs"] = repr([log.message for log in logs])

    found = {name: leaks(blob) for name, blob in outputs.items() if leaks(blob)}
    assert found == {}


def test_third_party_debug_logs_are_redacted(monkeypatch, caplog):
    monkeypatch.setenv("X_BEARER_TOKEN", SENTINELS["X_BEARER_TOKEN"])
    get_settings()
    caplog.set_level(logging.DEBUG)
    logging.getLogger("tweepy.client").debug("Headers: %s", {"Authorization": f"Bearer {SENTINELS['X_BEARER_TOKEN']}"})
    assert leaks(caplog.text) == [] and "Bearer **********" in caplog.text


@pytest.mark.parametrize("bad", ["abc", "-5"])
def test_malformed_env_value_names_the_key(monkeypatch, bad):
    from aimusic.core.config import ConfigError

    monkeypatch.setenv("AIMUSIC_RUN_LOCK_WAIT", bad)
    with pytest.raises(ConfigError, match="AIMUSIC_RUN_LOCK_WAIT"):
        get_settings()
