"""Personal data: pseudonymised author handles and takedown requests.

- **Pseudonyms**: with ``AIMUSIC_PSEUDONYMIZE_KEY`` set, every author handle is stored as
  ``anon-<16 hex>``, an HMAC-SHA256 of source and handle under that key. The same author keeps the same
  pseudonym (so "most active authors" still works) as long as the key does not change; without the key
  nobody can reverse it. Where a post's URL carries the handle (X, Mastodon, Bluesky profiles), the handle
  in the URL is replaced by the pseudonym too (:mod:`aimusic.store.pseudonyms`, applied by the Store on write).
- **Takedowns**: :func:`forget` deletes a post, or every post of an author, from every table keyed by
  ``source, post_id`` (posts, scores and any signal tables), rewrites export files listed in the exports
  index that contain them, and records the takedown as a SHA-256 digest (no personal data kept) so that
  later runs and imports never store the data again.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa

from aimusic.store.db import Store
from aimusic.store.pseudonyms import digest, pseudonym
from aimusic.store.schema import rollback

__all__ = ["ForgetResult", "digest", "forget", "pseudonym", "record_export"]

log = logging.getLogger(__name__)


@dataclass
class ForgetResult:
    posts: int = 0
    rows_by_table: dict[str, int] = field(default_factory=dict)
    exports_rewritten: list[str] = field(default_factory=list)
    exports_missing: list[str] = field(default_factory=list)


def _keyed_tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    rows = con.execute(
        """SELECT table_name FROM information_schema.columns
           WHERE table_catalog = current_database() AND table_schema = 'main'
             AND column_name IN ('source', 'post_id')
           GROUP BY table_name HAVING count(*) = 2 ORDER BY table_name"""
    ).fetchall()
    return [r[0] for r in rows]


def forget(
    store: Store,
    *,
    author: str | None = None,
    post: tuple[str, str] | None = None,
    source: str | None = None,
    pseudonymize_key: str | None = None,
    rewrite_exports: bool = True,
) -> ForgetResult:
    """Delete an author's posts (optionally only on ``source``) or one post ``(source, post_id)`` everywhere."""
    if (author is None) == (post is None):
        raise ValueError("give exactly one of an author or a post (source:post_id)")
    result = ForgetResult()
    if author is not None:
        handles = {author}
        if pseudonymize_key:
            handles |= {pseudonym(pseudonymize_key, s, author) for s in _sources(store, source)}
        where = "list_contains(?, author)" + (" AND source = ?" if source else "")
        params: list = [sorted(handles), *([source] if source else [])]
        takedowns = [("author", source, digest(h)) for h in sorted(handles)]
    else:
        assert post is not None
        where, params = "source = ? AND post_id = ?", [post[0], post[1]]
        takedowns = [("post", post[0], digest(post[1]))]
    with store.connect() as con:
        con.execute("BEGIN")
        try:
            con.execute(
                f"CREATE OR REPLACE TEMP TABLE _forget AS SELECT source, post_id FROM posts WHERE {where}", params
            )
            if post is not None:  # also rows in other tables whose post is already gone
                con.execute(
                    "INSERT INTO _forget SELECT ?, ? WHERE NOT EXISTS (SELECT 1 FROM _forget)", list(post)
                ).fetchall()
            keys = con.execute("SELECT source, post_id FROM _forget").fetchall()
            for table in _keyed_tables(con):
                n = con.execute(
                    f'DELETE FROM "{table}" t USING _forget f WHERE t.source = f.source AND t.post_id = f.post_id'
                ).fetchone()[0]
                result.rows_by_table[table] = int(n)
            if author is not None:  # the dashboard summary's author ids hold handles
                con.execute("DELETE FROM dash_author_ids WHERE list_contains(?, author)", [sorted(handles)])
            con.execute("DELETE FROM dash_state")  # the next summary refresh is a full build, without them
            for kind, src, value in takedowns:
                con.execute(
                    "INSERT OR REPLACE INTO takedowns VALUES (?, coalesce(?, ''), ?, now())", [kind, src, value]
                ).fetchall()
            con.execute("COMMIT")
        except BaseException:
            rollback(con)
            raise
        exports = con.execute("SELECT path, format FROM exports WHERE kind = 'posts'").fetchall()
    result.posts = result.rows_by_table.get("posts", 0)
    if rewrite_exports and keys:
        for path, fmt in exports:
            file = Path(path)
            if not file.exists():
                result.exports_missing.append(path)
                continue
            if _rewrite_without(file, fmt, keys):
                result.exports_rewritten.append(path)
    return result


def _sources(store: Store, source: str | None) -> list[str]:
    return [source] if source else store.sources()


def _rewrite_without(file: Path, fmt: str, keys: list[tuple[str, str]]) -> bool:
    """Remove the given posts from an export file in place; True if the file contained any."""
    reader = "read_parquet(?)" if fmt == "parquet" else "read_csv(?, header = true, all_varchar = true)"
    options = "FORMAT parquet" if fmt == "parquet" else "FORMAT csv, HEADER true"
    key_table = pa.table({"k_source": [k[0] for k in keys], "k_post_id": [str(k[1]) for k in keys]})
    con = duckdb.connect()
    try:
        con.register("_keys", key_table)
        hit = con.execute(
            f"SELECT count(*) FROM {reader} e "
            "JOIN _keys k ON e.source = k.k_source AND e.post_id::VARCHAR = k.k_post_id",
            [str(file)],
        ).fetchone()[0]
        if not hit:
            return False
        tmp = file.with_name(file.name + ".forget-tmp")
        con.execute(
            f"""CREATE TEMP TABLE _kept AS SELECT e.* FROM {reader} e
                ANTI JOIN _keys k ON e.source = k.k_source AND e.post_id::VARCHAR = k.k_post_id""",
            [str(file)],
        )
        target = str(tmp).replace("'", "''")
        con.execute(f"COPY _kept TO '{target}' ({options})")
        tmp.replace(file)
        log.info("removed %d row(s) from export %s", hit, file)
        return True
    finally:
        con.close()


def record_export(store: Store, path: Path, kind: str, fmt: str, rows: int, filters: dict[str, object]) -> None:
    """Add an export file to the index that :func:`forget` consults."""
    with store.connect() as con:
        con.execute(
            "INSERT OR REPLACE INTO exports VALUES (?, ?, ?, ?, ?, now())",
            [str(path.resolve()), kind, fmt, rows, json.dumps(filters, default=str)],
        )
