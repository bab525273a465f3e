"""Metadata in SQLite (WAL) in the data dir: the zero-setup default."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from firebox.store.metadata.base import Delete, DeletePrefix, Doc, Put, Write, change_of
from firebox.store.metadata.feed import Change, ChangeFeed, Watch
from firebox.store.migrations import migrate_sqlite
from firebox.store.private import connect_private


def _prefix_end(prefix: str) -> str:
    # Every key starting with prefix sorts below prefix + U+10FFFF.
    return prefix + "\U0010ffff"


class SqliteMetadataStore:
    """Two connections: one for writes, behind a lock held through each commit (and its
    fsync), and one for reads, which WAL lets proceed while a write commits — so a read
    never waits for a disk sync (a cache miss on the invoke path is such a read)."""

    def __init__(self, path: Path, commit_delay_s: float = 0.0) -> None:
        # Control-plane traffic is light, and a single writer is what SQLite wants anyway.
        self._db = connect_private(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: a write acknowledged to a client must survive power loss, not just a crash.
        self._db.execute("PRAGMA synchronous=FULL")
        migrate_sqlite(self._db, "metadata")
        self._lock = threading.Lock()
        self._reader = connect_private(path, check_same_thread=False, isolation_level=None)
        self._read_lock = threading.Lock()
        # Test-only (Settings.test_commit_delay_s): a slow disk's fsync, under the lock.
        self._commit_delay_s = commit_delay_s
        # One process owns the file: its own writes are all the changes there are.
        self._feed = ChangeFeed()

    def get(self, kind: str, key: str) -> Doc | None:
        with self._read_lock:
            row = self._reader.execute(
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
        with self._read_lock:
            rows = self._reader.execute(sql, args).fetchall()
        return [(k, json.loads(b)) for k, b in rows]

    def put(self, kind: str, key: str, doc: Doc) -> None:
        self.batch([Put(kind, key, doc)])

    def insert(self, kind: str, key: str, doc: Doc) -> bool:
        with self._write() as db:
            cur = db.execute(
                "INSERT OR IGNORE INTO docs(kind, key, body) VALUES (?,?,?)",
                (kind, key, json.dumps(doc)),
            )
            inserted = cur.rowcount == 1
        # Outside the lock: a subscriber may read the store.
        if inserted:
            self._feed.publish([Change(kind, key)])
        return inserted

    def delete(self, kind: str, key: str) -> bool:
        with self._write() as db:
            cur = db.execute("DELETE FROM docs WHERE kind=? AND key=?", (kind, key))
            deleted = cur.rowcount == 1
        if deleted:
            self._feed.publish([Change(kind, key)])
        return deleted

    def batch(self, writes: Sequence[Write]) -> None:
        with self._write() as db:
            for w in writes:
                if isinstance(w, Put):
                    db.execute(
                        "INSERT OR REPLACE INTO docs(kind, key, body) VALUES (?,?,?)",
                        (w.kind, w.key, json.dumps(w.doc)),
                    )
                elif isinstance(w, Delete):
                    db.execute("DELETE FROM docs WHERE kind=? AND key=?", (w.kind, w.key))
                elif isinstance(w, DeletePrefix):
                    db.execute(
                        "DELETE FROM docs WHERE kind=? AND key>=? AND key<?",
                        (w.kind, w.prefix, _prefix_end(w.prefix)),
                    )
        self._feed.publish([change_of(w) for w in writes])

    def next_counter(self, name: str) -> int:
        with self._write() as db:
            row = db.execute(
                "INSERT INTO counters(name, value) VALUES (?, 1) "
                "ON CONFLICT(name) DO UPDATE SET value = value + 1 RETURNING value",
                (name,),
            ).fetchone()
        return int(row[0])

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, committed (synced) on leaving, rolled back on an error."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                if self._commit_delay_s:
                    time.sleep(self._commit_delay_s)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def subscribe(self, callback: Callable[[Change], None]) -> Callable[[], None]:
        return self._feed.subscribe(callback)

    def watch(self) -> Watch:
        return self._feed.watch()

    def close(self) -> None:
        with self._read_lock:
            self._reader.close()
        with self._lock:
            self._db.close()
