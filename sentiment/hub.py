"""Whether the Hugging Face hub may be used: offline settings, a bounded reachability probe, the local cache."""

from __future__ import annotations

import os
import socket
import threading
from urllib.parse import urlparse

HUB_CHECK_SECONDS = 2.0
_TRUE = {"1", "on", "yes", "true"}


def hub_offline() -> bool:
    return any(os.environ.get(v, "").strip().lower() in _TRUE for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def go_offline() -> None:
    """Make every later Hugging Face call in this process (and its children) skip the network."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        import huggingface_hub.constants as hf_constants

        hf_constants.HF_HUB_OFFLINE = True
    except ImportError:  # pragma: no cover - huggingface_hub ships with transformers
        pass


def hub_unreachable(timeout: float = HUB_CHECK_SECONDS) -> str | None:
    """Why the hub endpoint does not accept a TCP connection within ``timeout`` seconds (DNS included), or
    ``None`` when it does. Runs in a daemon thread, so a resolver that hangs cannot hold the caller."""
    url = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    host, port = url.hostname or "huggingface.co", url.port or (443 if url.scheme == "https" else 80)
    result: list[str | None] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result.append(None)
        except OSError as exc:
            result.append(f"{host}:{port}: {exc.strerror or exc}")

    thread = threading.Thread(target=probe, daemon=True, name="hf-hub-probe")
    thread.start()
    thread.join(timeout)
    return result[0] if result else f"{host}:{port}: no answer within {timeout:.0f}s"


def cached_locally(model: str, revision: str | None) -> bool:
    """Whether the hub model's config is in the local cache (checked without importing transformers)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - huggingface_hub ships with transformers
        return True
    try:
        return isinstance(try_to_load_from_cache(model, "config.json", revision=revision), str)
    except ValueError:  # not a valid repo id
        return False
