"""Metadata in SQLite (WAL) in the data dir: the zero-setup default."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from firebox.store.metadata.base import Delete, DeletePrefix, Doc, Put, Write, change_of
from firebox.store.metadata.feed import Change, ChangeFeed, Watch
from firebox.store.migrations import migrate_sqlite
from firebox.store.private import connect_private


def _prefix_end(prefix: str) -> str:
    # Every key starting with prefix sorts below prefix + U+10FFFF.
    return prefix + "\U0010ffff"


class SqliteMetadataStore:
    def __init__(self, path: Path) -> None:
        # One connection shared by threads; the lock makes each call a unit. Control-plane
        # traffic is light, and a single writer is what SQLite wants anyway.
        self._db = connect_private(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: a write acknowledged to a client must survive power loss, not just a crash.
        self._db.execute("PRAGMA synchronous=FULL")
        migrate_sqlite(self._db, "metadata")
        self._lock = threading.Lock()
        # One process owns the file: its own writes are all the changes there are.
        self._feed = ChangeFeed()

    def get(self, kind: str, key: str) -> Doc | None:
        with self._lock:
            row = self._db.execute(
                "SELECT body FROM docs WHERE kind=? AND key=?", (kind, key)
            ).fetchone()
        return None if row is None else json.loads(row[0])

    def list(
        self, kind: str, prefix: str = "", after: str | None = None, limit: int | None = None
    ) -> list[tuple[str, Doc]]:
        low = after if after is not None and after >= prefix else None
        sql = "SELECT key, body FROM docs WHERE kind=? AND key>=? AND key<?"
        args: list[object] = [kind, prefix, _prefix_end(prefix)]
        if low is not None:
            sql += " AND key>?"
            args.append(low)
        sql += " ORDER BY key"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        return [(k, json.loads(b)) for k, b in rows]

    def put(self, kind: str, key: str, doc: Doc) -> None:
        self.batch([Put(kind, key, doc)])

    def insert(self, kind: str, key: str, doc: Doc) -> bool:
        with self._lock:
            cur = self._db.execute(
                "INSERT OR IGNORE INTO docs(kind, key, body) VALUES (?,?,?)",
                (kind, key, json.dumps(doc)),
            )
            inserted = cur.rowcount == 1
        # Outside the lock: a subscriber may read the store.
        if inserted:
            self._feed.publish([Change(kind, key)])
        return inserted

    def delete(self, kind: str, key: str) -> bool:
        with self._lock:
            cur = self._db.execute("DELETE FROM docs WHERE kind=? AND key=?", (kind, key))
            deleted = cur.rowcount == 1
        if deleted:
            self._feed.publish([Change(kind, key)])
        return deleted

    def batch(self, writes: Sequence[Write]) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for w in writes:
                    if isinstance(w, Put):
                        self._db.execute(
                            "INSERT OR REPLACE INTO docs(kind, key, body) VALUES (?,?,?)",
                            (w.kind, w.key, json.dumps(w.doc)),
                        )
                    elif isinstance(w, Delete):
                        self._db.execute("DELETE FROM docs WHERE kind=? AND key=?", (w.kind, w.key))
                    elif isinstance(w, DeletePrefix):
                        self._db.execute(
                            "DELETE FROM docs WHERE kind=? AND key>=? AND key<?",
                            (w.kind, w.prefix, _prefix_end(w.prefix)),
                        )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        self._feed.publish([change_of(w) for w in writes])

    def next_counter(self, name: str) -> int:
        with self._lock:
            row = self._db.execute(
                "INSERT INTO counters(name, value) VALUES (?, 1) "
                "ON CONFLICT(name) DO UPDATE SET value = value + 1 RETURNING value",
                (name,),
            ).fetchone()
        return int(row[0])

    def subscribe(self, callback: Callable[[Change], None]) -> Callable[[], None]:
        return self._feed.subscribe(callback)

    def watch(self) -> Watch:
        return self._feed.watch()

    def close(self) -> None:
        with self._lock:
            self._db.close()
