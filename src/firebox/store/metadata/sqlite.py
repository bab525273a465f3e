"""Metadata in SQLite (WAL) in the data dir: the zero-setup default.

When several processes share the file (``--processes``: ``shared=True``), every write
also records what it changed in a ``changes`` table, in the same transaction, and a
thread reads the other processes' changes into this store's feed — at once, woken by a
datagram the writer sends to every sharing process's socket after its commit, and at
least every POLL_S in case one was missed;
read-modify-write sequences of the control plane are serialised across the processes by
a file lock (``lock``).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import select
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from firebox.store.metadata.base import Delete, DeletePrefix, Doc, Put, Write, change_of
from firebox.store.metadata.feed import Change, ChangeFeed, Watch
from firebox.store.migrations import migrate_sqlite
from firebox.store.private import connect_private

log = logging.getLogger(__name__)

# How often a shared store looks for other processes' changes, and how long they are kept.
POLL_S = 0.1
CHANGES_KEPT_S = 120.0


def _prefix_end(prefix: str) -> str:
    # Every key starting with prefix sorts below prefix + U+10FFFF.
    return prefix + "\U0010ffff"


class SqliteMetadataStore:
    """Two connections: one for writes, behind a lock held through each commit (and its
    fsync), and one for reads, which WAL lets proceed while a write commits — so a read
    never waits for a disk sync (a cache miss on the invoke path is such a read)."""

    def __init__(self, path: Path, commit_delay_s: float = 0.0, shared: bool = False) -> None:
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
        # Alone, a process's own writes are all the changes there are; shared, the others'
        # come from the changes table.
        self._feed = ChangeFeed()
        self._shared = shared
        self._lock_path = path.with_name(path.name + ".lock")
        self._own: set[int] = set()
        self._seen = 0
        self._poller: threading.Thread | None = None
        self._closed = threading.Event()
        # Where the sharing processes listen for "something changed": one abstract Unix
        # socket each (no path-length limit; a sandbox, in its own network namespace,
        # cannot reach it), named after a marker file in this directory.
        self._wake_dir = path.with_name(path.name + ".feed")
        self._wake_prefix = "\0firebox-feed-" + hashlib.sha256(str(path).encode()).hexdigest()[:16]
        self._wake: socket.socket | None = None
        self._wake_name = ""
        if shared:
            row = self._reader.execute("SELECT coalesce(max(seq), 0) FROM changes").fetchone()
            self._seen = int(row[0])

    def _tell_others(self) -> None:
        """After a commit that recorded changes: wake every other sharing process."""
        try:
            peers = os.listdir(self._wake_dir)
        except FileNotFoundError:
            return
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.setblocking(False)
            for name in peers:
                if name == self._wake_name:
                    continue
                try:
                    s.sendto(b"!", f"{self._wake_prefix}.{name}")
                except (BlockingIOError, ConnectionRefusedError, FileNotFoundError):
                    # Full (it will read the table anyway), or a dead process's marker.
                    if not self._alive(name):
                        with contextlib.suppress(OSError):
                            os.unlink(self._wake_dir / name)
                except OSError:
                    pass

    @staticmethod
    def _alive(name: str) -> bool:
        pid = name.split(".", 1)[0]
        return pid.isdigit() and os.path.exists(f"/proc/{pid}")

    def _record(self, db: sqlite3.Connection, changes: Sequence[Change]) -> None:
        """In the writing transaction: tell the other processes (shared stores only)."""
        if not self._shared:
            return
        now = time.time()
        for c in changes:
            cur = db.execute(
                "INSERT INTO changes(kind, key, prefix, at) VALUES (?,?,?,?)",
                (c.kind, c.key, int(c.prefix), now),
            )
            if cur.lastrowid is not None:
                self._own.add(cur.lastrowid)

    def _listen(self) -> socket.socket:
        self._wake_dir.mkdir(mode=0o700, exist_ok=True)
        self._wake_name = f"{os.getpid()}.{id(self):x}"
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(f"{self._wake_prefix}.{self._wake_name}")
        (self._wake_dir / self._wake_name).touch(mode=0o600)
        return sock

    def _poll(self) -> None:
        last_prune = 0.0
        sock = self._wake
        assert sock is not None
        while not self._closed.is_set():
            ready, _, _ = select.select([sock], [], [], POLL_S)
            if ready:
                with contextlib.suppress(OSError):
                    while sock.recv(64, socket.MSG_DONTWAIT):
                        pass
            if self._closed.is_set():
                return
            try:
                with self._read_lock:
                    rows = self._reader.execute(
                        "SELECT seq, kind, key, prefix FROM changes WHERE seq > ? ORDER BY seq",
                        (self._seen,),
                    ).fetchall()
                if rows:
                    self._seen = rows[-1][0]
                with self._lock:
                    theirs = [r for r in rows if r[0] not in self._own]
                    self._own.difference_update(r[0] for r in rows)
                now = time.time()
                if now - last_prune > 10.0:
                    last_prune = now
                    with self._write() as db:
                        db.execute("DELETE FROM changes WHERE at < ?", (now - CHANGES_KEPT_S,))
                if theirs:
                    self._feed.publish([Change(k, key, bool(p)) for _, k, key, p in theirs])
            except sqlite3.Error:
                if self._closed.is_set():
                    return
                log.exception("reading other processes' changes failed")

    def _published(self, changes: list[Change]) -> None:
        self._feed.publish(changes)
        if self._shared:
            self._tell_others()

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the store against every other process's read-modify-write (blocking)."""
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

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
            if inserted:
                self._record(db, [Change(kind, key)])
        # Outside the lock: a subscriber may read the store.
        if inserted:
            self._published([Change(kind, key)])
        return inserted

    def delete(self, kind: str, key: str) -> bool:
        with self._write() as db:
            cur = db.execute("DELETE FROM docs WHERE kind=? AND key=?", (kind, key))
            deleted = cur.rowcount == 1
            if deleted:
                self._record(db, [Change(kind, key)])
        if deleted:
            self._published([Change(kind, key)])
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
            self._record(db, [change_of(w) for w in writes])
        self._published([change_of(w) for w in writes])

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

    def _start_poller(self) -> None:
        if self._shared and self._poller is None:
            self._wake = self._listen()
            self._poller = threading.Thread(target=self._poll, name="metadata-feed", daemon=True)
            self._poller.start()

    def subscribe(self, callback: Callable[[Change], None]) -> Callable[[], None]:
        self._start_poller()
        return self._feed.subscribe(callback)

    def watch(self) -> Watch:
        self._start_poller()
        return self._feed.watch()

    def close(self) -> None:
        self._closed.set()
        if self._poller is not None:
            self._poller.join(timeout=2)
        if self._wake is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._wake_dir / self._wake_name)
            self._wake.close()
        with self._read_lock:
            self._reader.close()
        with self._lock:
            self._db.close()
