"""Logs in one SQLite database in the data dir: groups, streams and events, indexed by
time so that GetLogEvents and FilterLogEvents page without reading whole streams."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from firebox.store.logs.base import (
    Cursor,
    Event,
    GroupInfo,
    StoredEvent,
    StreamInfo,
    scan,
    select_streams,
)
from firebox.store.migrations import migrate_sqlite
from firebox.store.private import connect_private

DAY_MS = 86_400_000


def _now_ms() -> int:
    return int(time.time() * 1000)


class SqliteLogStore:
    def __init__(self, path: Path) -> None:
        # One connection behind a lock: writes come in batches from the log writer's thread,
        # reads from API threads; WAL keeps a crash from tearing a batch.
        self._db = connect_private(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: a committed batch survives a power cut, as the async event that waited for
        # it does. Batches are few (the log writer groups lines), so the syncs are too.
        self._db.execute("PRAGMA synchronous=FULL")
        migrate_sqlite(self._db, "logs")
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(groups)")}
        if "tags" not in columns:  # a database from before tags were kept
            self._db.execute("ALTER TABLE groups ADD COLUMN tags TEXT NOT NULL DEFAULT '{}'")
        self._lock = threading.Lock()
        # (group, stream) -> (group id, stream id): the log writer appends to the same few
        # streams many times a second. One process owns the file, so only its own deletes
        # can make an entry wrong, and they drop it.
        self._ids: dict[tuple[str, str], tuple[int, int]] = {}

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # --- ids ----------------------------------------------------------------------

    def _group(self, name: str) -> tuple[int, int | None] | None:
        row = self._db.execute(
            "SELECT id, retention_days FROM groups WHERE name = ?", (name,)
        ).fetchone()
        return (row[0], row[1]) if row else None

    def _group_or_raise(self, name: str) -> tuple[int, int]:
        found = self._group(name)
        if found is None:
            raise KeyError(name)
        gid, days = found
        return gid, (_now_ms() - days * DAY_MS) if days else 0

    def _stream_id(self, gid: int, name: str) -> int | None:
        row = self._db.execute(
            "SELECT id FROM streams WHERE group_id = ? AND name = ?", (gid, name)
        ).fetchone()
        return row[0] if row else None

    def _ensure(self, group: str, stream: str, now: int) -> tuple[int, int]:
        db = self._db
        db.execute("INSERT OR IGNORE INTO groups (name, created_ms) VALUES (?, ?)", (group, now))
        found = self._group(group)
        assert found is not None
        gid = found[0]
        db.execute(
            "INSERT OR IGNORE INTO streams (group_id, name, created_ms) VALUES (?, ?, ?)",
            (gid, stream, now),
        )
        sid = self._stream_id(gid, stream)
        assert sid is not None
        return gid, sid

    # --- writes -------------------------------------------------------------------

    def append(self, group: str, stream: str, events: Sequence[Event]) -> None:
        self.append_batch({(group, stream): events})

    def append_batch(self, batch: Mapping[tuple[str, str], Sequence[Event]]) -> None:
        batch = {key: events for key, events in batch.items() if events}
        if not batch:
            return
        now = _now_ms()
        made: dict[tuple[str, str], tuple[int, int]] = {}
        with self._lock:
            with self._db:
                self._db.execute("BEGIN")
                for (group, stream), events in batch.items():
                    ids = self._ids.get((group, stream))
                    if ids is None:
                        ids = made[(group, stream)] = self._ensure(group, stream, now)
                    self._append(ids, events, now)
            # Only ids whose rows are committed are remembered.
            self._ids.update(made)

    def _append(self, ids: tuple[int, int], events: Sequence[Event], now: int) -> None:
        gid, sid = ids
        size = sum(len(msg.encode()) + 26 for _, msg in events)  # 26: AWS's per-event overhead
        first = min(ts for ts, _ in events)
        last = max(ts for ts, _ in events)
        self._db.executemany(
            "INSERT INTO events (group_id, stream_id, ts, ingest_ms, message) "
            "VALUES (?, ?, ?, ?, ?)",
            [(gid, sid, ts, now, msg) for ts, msg in events],
        )
        self._db.execute(
            "UPDATE streams SET first_ts = min(coalesce(first_ts, ?), ?), "
            "last_ts = max(coalesce(last_ts, ?), ?), last_ingest_ms = ?, "
            "stored_bytes = stored_bytes + ? WHERE id = ?",
            (first, first, last, last, now, size, sid),
        )

    def create_group(self, group: str) -> bool:
        with self._lock:
            cur = self._db.execute(
                "INSERT OR IGNORE INTO groups (name, created_ms) VALUES (?, ?)",
                (group, _now_ms()),
            )
            return cur.rowcount == 1

    def create_stream(self, group: str, stream: str) -> bool:
        with self._lock:
            gid, _ = self._group_or_raise(group)
            cur = self._db.execute(
                "INSERT OR IGNORE INTO streams (group_id, name, created_ms) VALUES (?, ?, ?)",
                (gid, stream, _now_ms()),
            )
            return cur.rowcount == 1

    def delete_group(self, group: str) -> bool:
        with self._lock, self._db:
            found = self._group(group)
            if found is None:
                return False
            for key in [k for k in self._ids if k[0] == group]:
                del self._ids[key]
            self._db.execute("BEGIN")
            gid = found[0]
            self._db.execute("DELETE FROM events WHERE group_id = ?", (gid,))
            self._db.execute("DELETE FROM streams WHERE group_id = ?", (gid,))
            self._db.execute("DELETE FROM groups WHERE id = ?", (gid,))
            return True

    def delete_stream(self, group: str, stream: str) -> bool:
        with self._lock, self._db:
            gid, _ = self._group_or_raise(group)
            sid = self._stream_id(gid, stream)
            if sid is None:
                return False
            self._ids.pop((group, stream), None)
            self._db.execute("BEGIN")
            self._db.execute("DELETE FROM events WHERE stream_id = ?", (sid,))
            self._db.execute("DELETE FROM streams WHERE id = ?", (sid,))
            return True

    def set_retention(self, group: str, days: int | None) -> bool:
        with self._lock:
            cur = self._db.execute(
                "UPDATE groups SET retention_days = ? WHERE name = ?", (days, group)
            )
            return cur.rowcount == 1

    def tags(self, group: str) -> dict[str, str]:
        with self._lock:
            row = self._db.execute("SELECT tags FROM groups WHERE name = ?", (group,)).fetchone()
        if row is None:
            raise KeyError(group)
        return dict(json.loads(row[0]))

    def set_tags(
        self, group: str, add: dict[str, str], remove: Sequence[str] = ()
    ) -> dict[str, str]:
        with self._lock, self._db:
            self._db.execute("BEGIN")
            row = self._db.execute("SELECT tags FROM groups WHERE name = ?", (group,)).fetchone()
            if row is None:
                raise KeyError(group)
            tags = dict(json.loads(row[0]))
            tags.update(add)
            for key in remove:
                tags.pop(key, None)
            self._db.execute("UPDATE groups SET tags = ? WHERE name = ?", (json.dumps(tags), group))
            return tags

    def sweep(self, now_ms: int) -> int:
        deleted = 0
        with self._lock:
            rows = self._db.execute(
                "SELECT id, retention_days FROM groups WHERE retention_days IS NOT NULL"
            ).fetchall()
        for gid, days in rows:
            cutoff = now_ms - days * DAY_MS
            # One group per transaction: the lock is not held across a huge delete.
            with self._lock, self._db:
                self._db.execute("BEGIN")
                cur = self._db.execute(
                    "DELETE FROM events WHERE group_id = ? AND ts < ?", (gid, cutoff)
                )
                if cur.rowcount <= 0:
                    continue
                deleted += cur.rowcount
                self._db.execute(
                    "UPDATE streams SET "
                    "first_ts = (SELECT min(ts) FROM events WHERE stream_id = streams.id), "
                    "stored_bytes = coalesce((SELECT sum(length(CAST(message AS BLOB)) + 26) "
                    "FROM events WHERE stream_id = streams.id), 0) "
                    "WHERE group_id = ? AND first_ts < ?",
                    (gid, cutoff),
                )
        return deleted

    # --- reads --------------------------------------------------------------------

    def groups(self, prefix: str = "") -> list[GroupInfo]:
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        with self._lock:
            rows = self._db.execute(
                "SELECT g.name, g.created_ms, g.retention_days, "
                "coalesce((SELECT sum(stored_bytes) FROM streams s WHERE s.group_id = g.id), 0)"
                " FROM groups g WHERE g.name LIKE ? ESCAPE '\\' ORDER BY g.name",
                (escaped + "%",),
            ).fetchall()
        # LIKE is case-insensitive for ASCII; CloudWatch prefixes are not.
        return [GroupInfo(*r) for r in rows if r[0].startswith(prefix)]

    def streams(self, group: str) -> list[StreamInfo]:
        with self._lock:
            gid, _ = self._group_or_raise(group)
            rows = self._db.execute(
                "SELECT name, created_ms, first_ts, last_ts, last_ingest_ms, stored_bytes "
                "FROM streams WHERE group_id = ? ORDER BY name",
                (gid,),
            ).fetchall()
        return [StreamInfo(*r) for r in rows]

    def read(
        self,
        group: str,
        stream: str,
        start_ms: int | None,
        end_ms: int | None,
        cursor: Cursor | None,
        forward: bool,
        limit: int,
    ) -> list[StoredEvent]:
        with self._lock:
            gid, min_ts = self._group_or_raise(group)
            sid = self._stream_id(gid, stream)
            if sid is None:
                raise KeyError(stream)
            where = ["stream_id = ?", "ts >= ?"]
            args: list[object] = [sid, max(min_ts, start_ms or 0)]
            if end_ms is not None:
                where.append("ts < ?")
                args.append(end_ms)
            if cursor is not None:
                where.append("(ts, id) > (?, ?)" if forward else "(ts, id) < (?, ?)")
                args.extend(cursor)
            order = "ASC" if forward else "DESC"
            rows = self._db.execute(
                f"SELECT id, ts, ingest_ms, message FROM events WHERE {' AND '.join(where)} "
                f"ORDER BY ts {order}, id {order} LIMIT ?",
                (*args, limit),
            ).fetchall()
        if not forward:
            rows.reverse()
        return [StoredEvent(r[0], stream, r[1], r[2], r[3]) for r in rows]

    def filter(
        self,
        group: str,
        streams: Sequence[str] | None,
        stream_prefix: str | None,
        start_ms: int | None,
        end_ms: int | None,
        after: Cursor | None,
        match: Callable[[str], bool],
        limit: int,
        scan_limit: int,
        must_contain: Sequence[str] = (),
        budget_s: float | None = None,
    ) -> tuple[list[StoredEvent], Cursor | None]:
        deadline = None if budget_s is None else time.monotonic() + budget_s
        with self._lock:
            gid, min_ts = self._group_or_raise(group)
            names = dict(
                self._db.execute(
                    "SELECT id, name FROM streams WHERE group_id = ?", (gid,)
                ).fetchall()
            )
            names = select_streams(names, streams, stream_prefix)
            if not names:
                return [], None
            where = ["group_id = ?", "ts >= ?"]
            args: list[object] = [gid, max(min_ts, start_ms or 0)]
            if end_ms is not None:
                where.append("ts <= ?")
                args.append(end_ms)
            if after is not None:
                where.append("(ts, id) > (?, ?)")
                args.extend(after)
            if streams is not None or stream_prefix:
                where.append(f"stream_id IN ({','.join('?' * len(names))})")
                args.extend(names)
            for term in must_contain:
                # instr() is case-sensitive, as filter terms are: most rows never reach Python.
                where.append("instr(message, ?) > 0")
                args.append(term)
            cursor = self._db.execute(
                f"SELECT id, stream_id, ts, ingest_ms, message FROM events "
                f"WHERE {' AND '.join(where)} ORDER BY ts, id LIMIT ?",
                (*args, scan_limit + 1),
            )
            try:
                # Rows are read lazily: a page that fills early stops reading early.
                return scan(iter(cursor), names, match, limit, scan_limit, deadline)
            finally:
                cursor.close()
