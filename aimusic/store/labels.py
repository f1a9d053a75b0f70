"""The user's own labels (table ``labels``, migration 9): vocabularies, import, export, writes, status, and one
label per post across labellers. The queues and the reads that measure models on the labels are in
:mod:`aimusic.store.label_queries`.

A label is one person's judgement of one post for one task, keyed by (source, post_id, task, labeller), with
how the post was picked: ``random`` (drawn from the stratified random order of
:func:`aimusic.store.label_queries.random_order`: the only labels used to
measure accuracy and correct proportions, so the estimates stay unbiased) or ``active`` (posts the model was
least sure of: good for training, biased for measuring). Labels survive re-scoring; a takedown
(:func:`aimusic.store.privacy.forget`) deletes them with the post's other rows.

Vocabularies (:data:`TASKS`): sentiment negative/neutral/positive; stance against/neutral/for (stored model
predictions say anti/neutral/pro: :data:`MODEL_LABELS`); relevance irrelevant/relevant (``0``/``1`` accepted).

Files (``aimusic labels import/export``): tab-separated, a header naming ``source``, ``post_id``, ``task``,
``label`` and optionally ``labeller`` (default ``me``), ``picked`` (default ``random``) and ``labelled_at`` (ISO
8601; default: the import time). A file is imported whole or not at all: any bad line (malformed, unknown
task or label, a post that is not in the database, two different labels for one key) rejects it, naming the
lines. Writes go through Arrow in one transaction; re-importing a file changes nothing.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa

from aimusic.store.db import Store, rollback

TASKS: dict[str, tuple[str, ...]] = {
    "sentiment": ("negative", "neutral", "positive"),
    "stance": ("against", "neutral", "for"),
    "relevance": ("irrelevant", "relevant"),
}
#: how the stored predictions name the same classes, in the same order
MODEL_LABELS: dict[str, tuple[str, ...]] = {
    "sentiment": ("negative", "neutral", "positive"),
    "stance": ("anti", "neutral", "pro"),
    "relevance": ("irrelevant", "relevant"),
}
ALIASES: dict[str, dict[str, str]] = {
    "stance": {"anti": "against", "pro": "for"},
    "relevance": {"0": "irrelevant", "1": "relevant"},
    "sentiment": {},
}
PICKED = ("random", "active")
DEFAULT_LABELLER = "me"
REQUIRED = ("source", "post_id", "task", "label")
OPTIONAL = ("labeller", "picked", "labelled_at")
EXPORT_COLUMNS = (*REQUIRED, *OPTIONAL)
#: the relevance "model": every stored post passed the collection filter, so its prediction is ``relevant``
RELEVANCE_FILTER = "relevance-filter"
#: fixed salt of the random order, so every session and machine sees the same queue
ORDER_SALT = "aimusic-labels-v1"
MAX_REPORTED = 20
_SCHEMA = pa.schema([
    ("line", pa.int64()), ("source", pa.string()), ("post_id", pa.string()), ("task", pa.string()),
    ("label", pa.string()), ("labeller", pa.string()), ("picked", pa.string()),
    ("labelled_at", pa.timestamp("us", tz="UTC")),
])


class LabelFileError(ValueError):
    """A label file was rejected as a whole; ``problems`` lists ``line N: why`` for each bad line."""

    def __init__(self, path: Path | str, problems: list[str]) -> None:
        self.problems = problems
        shown = problems[:MAX_REPORTED]
        more = f"\n  ... and {len(problems) - MAX_REPORTED} more" if len(problems) > MAX_REPORTED else ""
        super().__init__(f"{path}: nothing imported, {len(problems)} bad line(s):\n  " + "\n  ".join(shown) + more)


@dataclass(frozen=True)
class ImportResult:
    rows: int
    new: int
    changed: int

    @property
    def unchanged(self) -> int:
        return self.rows - self.new - self.changed


def normalise_label(task: str, label: str) -> str | None:
    """The canonical label of ``task`` for ``label`` (aliases accepted), ``None`` if it is not one."""
    value = label.strip().lower()
    value = ALIASES.get(task, {}).get(value, value)
    return value if value in TASKS.get(task, ()) else None


def to_model_label(task: str, label: str) -> str:
    """A stored label in the vocabulary of the model predictions (stance: against -> anti, for -> pro)."""
    return MODEL_LABELS[task][TASKS[task].index(label)]


def _parse_time(raw: str) -> datetime:
    parsed = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def read_label_file(path: str | Path) -> pa.Table:
    """Parse and check a label file (no database needed); raise :class:`LabelFileError` naming bad lines."""
    file = Path(path)
    try:
        content = file.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise LabelFileError(file, [f"cannot read the file: {exc.strerror or exc}"]) from None
    except UnicodeDecodeError as exc:
        raise LabelFileError(file, [f"not UTF-8 text ({exc})"]) from None
    rows = list(csv.reader(io.StringIO(content), delimiter="\t", quoting=csv.QUOTE_NONE))
    if not rows:
        raise LabelFileError(file, ["line 1: empty file; expected a header: " + "\t".join(REQUIRED)])
    header = [h.strip().lower() for h in rows[0]]
    unknown = [h for h in header if h not in (*REQUIRED, *OPTIONAL)]
    missing = [c for c in REQUIRED if c not in header]
    if missing or unknown or len(set(header)) != len(header):
        why = (f"missing column(s) {', '.join(missing)}; " if missing else "") + (
            f"unknown column(s) {', '.join(unknown)}; " if unknown else "")
        raise LabelFileError(file, [f"line 1: bad header ({why or 'repeated column; '}expected "
                                    f"{', '.join(REQUIRED)} and optionally {', '.join(OPTIONAL)})"])
    col = {name: i for i, name in enumerate(header)}
    problems: list[str] = []
    out: dict[str, list] = {name: [] for name in _SCHEMA.names}
    seen: dict[tuple[str, str, str, str], tuple[int, str, str]] = {}
    for line_no, row in enumerate(rows[1:], start=2):
        if not row or not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            problems.append(f"line {line_no}: {len(row)} tab-separated fields, the header has {len(header)}")
            continue
        get = {name: row[i].strip() for name, i in col.items()}
        source, post_id, task, raw_label = get["source"], get["post_id"], get["task"].lower(), get["label"]
        labeller = get.get("labeller") or DEFAULT_LABELLER
        picked = (get.get("picked") or "random").lower()
        bad = []
        if not source or not post_id:
            bad.append("empty source or post_id")
        if task not in TASKS:
            bad.append(f"unknown task {task!r} (known: {', '.join(TASKS)})")
            label = None
        else:
            label = normalise_label(task, raw_label)
            if label is None:
                bad.append(f"unknown {task} label {raw_label!r} (known: {', '.join(TASKS[task])})")
        if picked not in PICKED:
            bad.append(f"picked must be random or active, got {picked!r}")
        when = None
        if get.get("labelled_at"):
            try:
                when = _parse_time(get["labelled_at"])
            except ValueError:
                bad.append(f"labelled_at {get['labelled_at']!r} is not an ISO 8601 time")
        if bad:
            problems.append(f"line {line_no}: " + "; ".join(bad))
            continue
        key = (source, post_id, task, labeller)
        if key in seen:
            first, first_label, first_picked = seen[key]
            if (first_label, first_picked) != (label, picked):
                problems.append(f"line {line_no}: {source}:{post_id} {task} by {labeller} is labelled "
                                f"{first_label} on line {first} and {label} here")
            continue
        seen[key] = (line_no, label, picked)
        for name, value in zip(_SCHEMA.names, (line_no, source, post_id, task, label, labeller, picked, when),
                               strict=True):
            out[name].append(value)
    if problems:
        raise LabelFileError(file, problems)
    return pa.table(out, schema=_SCHEMA)


def _upsert(con: duckdb.DuckDBPyConnection, table: pa.Table) -> ImportResult:
    """Insert new labels and change those whose label or pick differs (inside the caller's transaction)."""
    con.register("_labels_in", table)
    try:
        new, changed = con.execute(
            """SELECT count(*) FILTER (WHERE l.label IS NULL),
                      count(*) FILTER (WHERE l.label IS NOT NULL AND (l.label <> i.label OR l.picked <> i.picked))
               FROM _labels_in i LEFT JOIN labels l USING (source, post_id, task, labeller)"""
        ).fetchall()[0]
        con.execute(
            """INSERT INTO labels BY NAME
               SELECT source, post_id, task, label, labeller, picked, coalesce(labelled_at, now()) AS labelled_at
               FROM _labels_in
               ON CONFLICT (source, post_id, task, labeller) DO UPDATE SET
                 label = excluded.label, picked = excluded.picked, labelled_at = excluded.labelled_at
               WHERE labels.label <> excluded.label OR labels.picked <> excluded.picked"""
        )
    finally:
        con.unregister("_labels_in")
    return ImportResult(table.num_rows, int(new), int(changed))


def import_labels(store: Store, path: str | Path) -> ImportResult:
    """Import a label file whole, or raise :class:`LabelFileError` (naming the lines) and change nothing."""
    table = read_label_file(path)
    with store.connect() as con:
        con.execute("BEGIN")
        try:
            con.register("_check", table.select(["line", "source", "post_id"]))
            unknown = con.execute(
                """SELECT c.line, c.source, c.post_id FROM _check c
                   WHERE NOT EXISTS (SELECT 1 FROM posts p WHERE p.source = c.source AND p.post_id = c.post_id)
                   ORDER BY c.line"""
            ).fetchall()
            con.unregister("_check")
            if unknown:
                raise LabelFileError(path, [f"line {line}: unknown post {src}:{pid} (not in this database)"
                                            for line, src, pid in unknown])
            result = _upsert(con, table.drop(["line"]))
            con.execute("COMMIT")
        except BaseException:
            rollback(con)
            raise
    return result


def add_label(store: Store, source: str, post_id: str, task: str, label: str, *,
              labeller: str = DEFAULT_LABELLER, picked: str = "random") -> ImportResult:
    """Store (or change) one label, as the Label view does on a click."""
    canonical = normalise_label(task, label) if task in TASKS else None
    if canonical is None:
        raise ValueError(f"unknown {task} label {label!r}")
    if picked not in PICKED:
        raise ValueError(f"picked must be one of {PICKED}")
    labeller = " ".join(labeller.split()) or DEFAULT_LABELLER
    table = pa.table({"source": [source], "post_id": [post_id], "task": [task], "label": [canonical],
                      "labeller": [labeller], "picked": [picked],
                      "labelled_at": pa.array([None], pa.timestamp("us", tz="UTC"))})
    with store.connect() as con:
        return _upsert(con, table)


def delete_label(store: Store, source: str, post_id: str, task: str, labeller: str = DEFAULT_LABELLER) -> int:
    """Remove one label (the Label view's undo); return how many rows went (0 or 1)."""
    with store.connect() as con:
        return int(con.execute(
            "DELETE FROM labels WHERE source = ? AND post_id = ? AND task = ? AND labeller = ?",
            [source, post_id, task, labeller],
        ).fetchone()[0])


def set_picked(store: Store, keys: Sequence[tuple[str, str]], task: str, labeller: str, picked: str) -> int:
    """Mark existing labels as drawn ``random`` (an active pick the random order reached) or ``active``."""
    if not keys:
        return 0
    table = pa.table({"source": [k[0] for k in keys], "post_id": [k[1] for k in keys]})
    with store.connect() as con:
        con.register("_keys", table)
        n = con.execute(
            """UPDATE labels SET picked = ? FROM _keys k WHERE labels.source = k.source
                 AND labels.post_id = k.post_id AND labels.task = ? AND labels.labeller = ?""",
            [picked, task, labeller],
        ).fetchone()[0]
        con.unregister("_keys")
    return int(n)


def export_labels(store: Store, out: str | Path) -> int:
    """Write every label to a TSV that :func:`import_labels` reads back exactly; return the row count."""
    with store.connect() as con:
        rows = con.execute(
            f"SELECT {', '.join(EXPORT_COLUMNS)} FROM labels ORDER BY task, source, post_id, labeller"
        ).fetchall()
    target = Path(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    with tmp.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t", quoting=csv.QUOTE_NONE, lineterminator="\n")
        writer.writerow(EXPORT_COLUMNS)
        for row in rows:
            writer.writerow([*row[:-1], row[-1].astimezone(UTC).isoformat()])
    tmp.replace(target)
    return len(rows)


def status(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Labels per task, label, labeller and pick."""
    return con.execute(
        """SELECT task, label, labeller, picked, count(*) AS labels, max(labelled_at) AS last
           FROM labels GROUP BY ALL ORDER BY task, labeller, picked, label"""
    ).df()


def version(con: duckdb.DuckDBPyConnection) -> str:
    """Changes whenever a label is added, changed or removed (for caches); ``none`` on a database written
    before the labels table existed (opened read-only, so not migrated yet)."""
    exists = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'main' AND table_name = 'labels'"
    ).fetchall()[0][0]
    if not exists:
        return "none"
    row = con.execute(
        """SELECT count(*), max(labelled_at),
                  bit_xor(hash(source, post_id, task, label, labeller, picked)) FROM labels"""
    ).fetchall()[0]
    return "|".join(str(v) for v in row)


# --- one label per post ---------------------------------------------------------------------------------------
def resolved(con: duckdb.DuckDBPyConnection, task: str, *, random_only: bool = False) -> pd.DataFrame:
    """One label per post (the most common among labellers; ties: the latest): source, post_id, label,
    labellers, random (whether any labeller's copy was drawn at random)."""
    return con.execute(
        f"""WITH c AS (
                SELECT source, post_id, label, count(*) AS votes, max(labelled_at) AS last,
                       bool_or(picked = 'random') AS random
                FROM labels WHERE task = ? GROUP BY ALL)
            SELECT source, post_id, label, sum(votes) OVER w AS labellers, bool_or(random) OVER w AS random
            FROM c {"WHERE random" if random_only else ""}
            WINDOW w AS (PARTITION BY source, post_id)
            QUALIFY row_number() OVER (PARTITION BY source, post_id ORDER BY votes DESC, last DESC, label) = 1
            ORDER BY source, post_id""",
        [task],
    ).df()
