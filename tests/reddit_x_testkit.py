"""Helpers for the Reddit and X source tests (not a test module): a stable topics file, a local HTTP server that
stands in for Reddit (through praw's oauth_url / reddit_url), and a ``responses`` router for X's recent search.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
import responses

from aimusic.core.topics import Topics, load_topics

FIXTURES = Path(__file__).parent / "fixtures"
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)  # the fixtures' clock
SEARCH = "https://api.twitter.com/2/tweets/search/recent"
ABSENT = object()

#: a small topics file of our own: the project's data/topics.toml is edited by other features
TOPICS_TOML = """
[tracking]
terms = ["AI music", "AI-generated music", "AI song", "AI singer", "Suno", "Udio", "Breaking Rust", "Xania Monet",
         "Velvet Sundown"]

[relevance]
ambiguous_terms = ["Suno", "Udio", "Breaking Rust", "Velvet Sundown"]
context_terms = ["music", "song", "songs", "track", "album", "artist", "chart", "billboard", "vocals", "AI",
                 "spotify"]
exclude_terms = ["rustlang", "borrow checker", "cargo build"]
on_topic_communities = ["SunoAI"]
"""


def make_topics(tmp_path: Path, sources: str = "") -> Topics:
    path = tmp_path / "topics.toml"
    path.write_text(TOPICS_TOML + sources, encoding="utf-8")
    return load_topics(path)


def fixture(source: str, name: str) -> Any:
    return json.loads((FIXTURES / source / name).read_text(encoding="utf-8"))


def use_live_credentials(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], needed: str, why: str) -> None:
    """For a live test: skip (``why``) unless ``needed`` was in the environment before the tests cleared it,
    else put those variables back."""
    if not env.get(needed):
        pytest.skip(why)
    for key, value in env.items():
        monkeypatch.setenv(key, value)


def posts_by_id(store: Any, source: str) -> dict[str, dict]:
    """The stored posts of ``source``, by post id."""
    with store.connect() as con:
        table = con.sql("SELECT * FROM posts WHERE source = ?", params=[source]).to_arrow_table()
    return {r["post_id"]: r for r in table.to_pylist()}


# --- Reddit ------------------------------------------------------------------------------------------------------

Response = tuple[int, dict[str, str], bytes]


def reddit_ok(name_or_payload: str | dict | list, **headers: str) -> Response:
    payload = fixture("reddit", name_or_payload) if isinstance(name_or_payload, str) else name_or_payload
    base = {
        "content-type": "application/json; charset=UTF-8",
        "x-ratelimit-remaining": "99.0",
        "x-ratelimit-used": "1",
        "x-ratelimit-reset": "420",
    }
    return 200, {**base, **headers}, json.dumps(payload).encode()


def reddit_status(code: int, **headers: str) -> Response:
    body = json.dumps({"message": "error", "error": code}).encode()
    return code, {"content-type": "application/json; charset=UTF-8", **headers}, body


class FakeReddit:
    """Routes (path, required params) -> a queue of responses (the last one repeats); records every request."""

    def __init__(self) -> None:
        self.routes: list[tuple[str, dict[str, str], list[Response]]] = []
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def route(self, path: str, *responses: Response, **params: str) -> None:
        self.routes.insert(0, (path, params, list(responses)))  # later routes win

    def paths(self, prefix: str = "") -> list[str]:
        return [p for _, p, _ in self.requests if p.startswith(prefix)]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def answer(self, method: str, path: str, params: dict[str, str]) -> Response:
        with self.lock:
            self.requests.append((method, path, params))
            for route_path, wanted, queue in self.routes:
                if route_path == path and all(params.get(k) == v for k, v in wanted.items()):
                    return queue.pop(0) if len(queue) > 1 else queue[0]
        return reddit_status(404)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self, method: str) -> None:
                url = urlsplit(self.path)
                params = dict(parse_qsl(url.query))
                if method == "POST":
                    length = int(self.headers.get("content-length") or 0)
                    params.update(parse_qsl(self.rfile.read(length).decode()))
                code, headers, body = fake.answer(method, url.path, params)
                self.send_response(code)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

            def log_message(self, *args: object) -> None:
                pass

        return Handler


def standard_routes(fake: FakeReddit) -> None:
    fake.route("/api/v1/access_token", reddit_ok("access_token.json"))
    fake.route("/r/all/search/", reddit_ok("search_all_p1.json"))
    fake.route("/r/all/search/", reddit_ok("search_all_p2.json"), after="t3_1p0003")
    fake.route("/r/WeAreTheMusicMakers/search/", reddit_ok("search_wearethemusicmakers.json"))
    fake.route("/r/country/search/", reddit_ok("search_empty.json"))
    fake.route("/r/SunoAI/new/", reddit_ok("new_sunoai.json"))
    fake.route("/r/SunoAI/comments/", reddit_ok("comments_sunoai.json"))
    fake.route("/api/info/", reddit_ok("info_1p0011.json"), id="t3_1p0011")
    for post in ("1p0001", "1p0005", "1p0008", "1p0011"):
        fake.route(f"/comments/{post}/", reddit_ok(f"thread_{post}.json"))
    fake.route("/api/morechildren/", reddit_ok("morechildren_1p0001.json"), link_id="t3_1p0001")



# --- X ----------------------------------------------------------------------------------------------------------


def x_ok(name: str) -> tuple[int, dict, str]:
    reset = str(int(NOW.timestamp()) + 900)
    headers = {"x-rate-limit-limit": "450", "x-rate-limit-remaining": "449", "x-rate-limit-reset": reset}
    return 200, headers, (FIXTURES / "x" / name).read_text(encoding="utf-8")


def x_error(code: int, reset_in: float | None = None) -> tuple[int, dict, str]:
    headers = {"x-rate-limit-limit": "450", "x-rate-limit-remaining": "0"} if code == 429 else {}
    if reset_in is not None:
        headers["x-rate-limit-reset"] = str(int(NOW.timestamp() + reset_in))
    body = fixture("x", {429: "error_429.json", 401: "error_401.json"}.get(code, "error_503.json"))
    body["status"] = code
    return code, headers, json.dumps(body)


class XApi:
    """Routes on query parameters (ABSENT = must not be sent) -> a queue of answers (the last repeats)."""

    def __init__(self, rsps: responses.RequestsMock) -> None:
        self.calls: list[dict[str, str]] = []
        self.rules: list[tuple[dict, list]] = []
        rsps.add_callback(responses.GET, SEARCH, callback=self._answer)

    def route(self, *answers: object, **match: object) -> None:
        self.rules.insert(0, (match, list(answers)))

    def _answer(self, request: requests.PreparedRequest) -> tuple[int, dict, str]:
        params = dict(parse_qsl(urlsplit(request.url).query))
        self.calls.append(params)
        for match, queue in self.rules:
            if all((k not in params) if v is ABSENT else params.get(k) == v for k, v in match.items()):
                answer = queue.pop(0) if len(queue) > 1 else queue[0]
                if isinstance(answer, Exception):
                    raise answer
                return answer
        return 404, {}, json.dumps({"title": "Not Found Error", "detail": "no fixture for this request"})


def x_standard_routes(api: XApi) -> None:
    """First run: page 1 then page 2; later runs (since_id = page 1's newest): nothing new; a gap below page 1
    (until_id = its oldest): page 2."""
    p1 = fixture("x", "search_p1.json")["meta"]
    api.route(x_ok("search_p1.json"), since_id=ABSENT, until_id=ABSENT, next_token=ABSENT)
    api.route(x_ok("search_p2.json"), next_token=p1["next_token"])
    api.route(x_ok("search_empty.json"), since_id=p1["newest_id"])
    api.route(x_ok("search_p2.json"), until_id=p1["oldest_id"], next_token=ABSENT)
