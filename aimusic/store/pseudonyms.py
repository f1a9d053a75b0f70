"""Keyed pseudonyms for author handles (HMAC-SHA256 under ``AIMUSIC_PSEUDONYMIZE_KEY``) and SHA-256 digests.

Pure functions over values and Arrow tables: :class:`aimusic.store.db.Store` applies them to every batch it
writes, and :mod:`aimusic.store.privacy` to takedown requests.
"""

from __future__ import annotations

import hashlib
import hmac

import pyarrow as pa


def pseudonym(key: str, source: str, author: str) -> str:
    digest = hmac.new(key.encode(), f"{source}\x1f{author}".encode(), hashlib.sha256).hexdigest()
    return f"anon-{digest[:16]}"


def pseudonymize_table(table: pa.Table, key: str) -> pa.Table:
    """Replace ``author`` (and the handle inside ``url``) with keyed pseudonyms."""
    if table.num_rows == 0:
        return table
    sources = table.column("source").to_pylist()
    authors = table.column("author").to_pylist()
    urls = table.column("url").to_pylist()
    new_authors: list[str | None] = []
    new_urls: list[str | None] = []
    for source, author, url in zip(sources, authors, urls, strict=True):
        if not author or author.startswith("anon-"):
            new_authors.append(author)
            new_urls.append(url)
            continue
        alias = pseudonym(key, source, author)
        new_authors.append(alias)
        new_urls.append(_strip_handle(url, author, alias))
    table = table.set_column(table.schema.get_field_index("author"), "author", pa.array(new_authors, pa.string()))
    return table.set_column(table.schema.get_field_index("url"), "url", pa.array(new_urls, pa.string()))


def _strip_handle(url: str | None, author: str, alias: str) -> str | None:
    if not url:
        return url
    for form in (f"/@{author}", f"/{author}/", f"/profile/{author}/", f"/user/{author}"):
        if form in url:
            url = url.replace(form, form.replace(author, alias))
    return url


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()
