"""Metadata in PostgreSQL, shared by every node of a fleet.

Each write sends a notification on ``firebox_changes`` in its own transaction, so it is
delivered exactly when (and only if) the write commits; every node's store LISTENs and
hands the changes to its feed. Identical notifications in one transaction are folded
into one by PostgreSQL, which a cache invalidation does not mind.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from firebox.store.metadata.base import Delete, DeletePrefix, Doc, Put, Write, change_of
from firebox.store.metadata.feed import EVERYTHING, Change, ChangeFeed, Watch
from firebox.store.postgres import PostgresDatabase, PostgresListener

log = logging.getLogger(__name__)

CHANNEL = "firebox_changes"
# PostgreSQL refuses payloads of 8000 bytes or more: a change that big says "everything".
_MAX_PAYLOAD = 7000


def _prefix_end(prefix: str) -> str:
    # Every key starting with prefix sorts below prefix + U+10FFFF (byte order, COLLATE "C").
    return prefix + "\U0010ffff"


def _payload(change: Change) -> str:
    text = json.dumps({"kind": change.kind, "key": change.key, "prefix": change.prefix})
    return text if len(text.encode()) < _MAX_PAYLOAD else _payload(EVERYTHING)


def _change(payload: str) -> Change:
    try:
        data = json.loads(payload)
        return Change(str(data["kind"]), str(data["key"]), bool(data["prefix"]))
    except (ValueError, KeyError, TypeError):
        log.warning(
            "unreadable change notification %r; treating it as a change to anything", payload
        )
        return EVERYTHING


# Any fixed 64-bit key, distinct from the migrations' (store/migrations).
CONTROL_LOCK_KEY = 0x46_42_43_54_52_4C  # "FBCTRL"


class PostgresMetadataStore:
    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db
        self._feed = ChangeFeed()
        self._listener = PostgresListener(
            db,
            CHANNEL,
            lambda payload: self._feed.publish([_change(payload)]),
            lambda: self._feed.publish([EVERYTHING]),
        )

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """A session advisory lock on a connection of the pool, for the ``with`` block."""
        with self._db.connection() as conn:
            conn.execute("SELECT pg_advisory_lock(%s)", (CONTROL_LOCK_KEY,))
            try:
                yield
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (CONTROL_LOCK_KEY,))

    def get(self, kind: str, key: str) -> Doc | None:
        with self._db.connection() as conn:
            row = conn.execute(
                "SELECT body FROM firebox_docs WHERE kind=%s AND key=%s", (kind, key)
            ).fetchone()
        return None if row is None else json.loads(row[0])

    def list(
        self, kind: str, prefix: str = "", after: str | None = None, limit: int | None = None
    ) -> list[tuple[str, Doc]]:
        sql = "SELECT key, body FROM firebox_docs WHERE kind=%s AND key>=%s AND key<%s"
        args: list[object] = [kind, prefix, _prefix_end(prefix)]
        if after is not None and after >= prefix:
            sql += " AND key>%s"
            args.append(after)
        sql += " ORDER BY key"
        if limit is not None:
            sql += " LIMIT %s"
            args.append(limit)
        with self._db.connection() as conn:
            rows = conn.execute(sql, args).fetchall()
        return [(k, json.loads(b)) for k, b in rows]

    def put(self, kind: str, key: str, doc: Doc) -> None:
        self.batch([Put(kind, key, doc)])

    def insert(self, kind: str, key: str, doc: Doc) -> bool:
        # One statement: the notification goes out only if the row went in.
        with self._db.connection() as conn:
            cur = conn.execute(
                "WITH w AS (INSERT INTO firebox_docs (kind, key, body) VALUES (%s, %s, %s)"
                " ON CONFLICT DO NOTHING RETURNING 1) SELECT pg_notify(%s, %s) FROM w",
                (kind, key, json.dumps(doc), CHANNEL, _payload(Change(kind, key))),
            )
            return cur.rowcount == 1

    def delete(self, kind: str, key: str) -> bool:
        with self._db.connection() as conn:
            cur = conn.execute(
                "WITH w AS (DELETE FROM firebox_docs WHERE kind=%s AND key=%s RETURNING 1)"
                " SELECT pg_notify(%s, %s) FROM w",
                (kind, key, CHANNEL, _payload(Change(kind, key))),
            )
            return cur.rowcount == 1

    def batch(self, writes: Sequence[Write]) -> None:
        if not writes:
            return
        with self._db.connection() as conn, conn.transaction(), conn.cursor() as cur:
            for w in writes:
                self._apply(cur, w)
            cur.execute(
                "SELECT pg_notify(%s, p) FROM unnest(%s::text[]) AS p",
                (CHANNEL, [_payload(change_of(w)) for w in writes]),
            )

    @staticmethod
    def _apply(cur: Any, w: Write) -> None:
        if isinstance(w, Put):
            cur.execute(
                "INSERT INTO firebox_docs (kind, key, body) VALUES (%s, %s, %s)"
                " ON CONFLICT (kind, key) DO UPDATE SET body = excluded.body",
                (w.kind, w.key, json.dumps(w.doc)),
            )
        elif isinstance(w, Delete):
            cur.execute("DELETE FROM firebox_docs WHERE kind=%s AND key=%s", (w.kind, w.key))
        elif isinstance(w, DeletePrefix):
            cur.execute(
                "DELETE FROM firebox_docs WHERE kind=%s AND key>=%s AND key<%s",
                (w.kind, w.prefix, _prefix_end(w.prefix)),
            )

    def next_counter(self, name: str) -> int:
        with self._db.connection() as conn:
            row = conn.execute(
                "INSERT INTO firebox_counters (name, value) VALUES (%s, 1)"
                " ON CONFLICT (name) DO UPDATE SET value = firebox_counters.value + 1"
                " RETURNING value",
                (name,),
            ).fetchone()
        return int(row[0])

    def subscribe(self, callback: Callable[[Change], None]) -> Callable[[], None]:
        return self._feed.subscribe(callback)

    def watch(self) -> Watch:
        return self._feed.watch()

    def close(self) -> None:
        self._listener.close()
