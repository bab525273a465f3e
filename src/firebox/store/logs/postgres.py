"""Logs in PostgreSQL, shared by the nodes of a fleet: the same tables and queries as the
SQLite backend, so GetLogEvents and FilterLogEvents page the same way on both.

Messages are stored as UTF-8 bytes (a function may print NUL, which ``text`` refuses);
lone surrogates survive the round trip. Event ids come from one sequence, so two nodes
appending at once interleave but never collide.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from firebox.store.logs.base import (
    Cursor,
    Event,
    GroupInfo,
    StoredEvent,
    StreamInfo,
    scan,
    select_streams,
)
from firebox.store.postgres import PostgresDatabase

DAY_MS = 86_400_000
# Rows fetched per round trip while FilterLogEvents scans (it may stop long before the end).
_SCAN_BATCH = 1000


def _now_ms() -> int:
    return int(time.time() * 1000)


def _enc(message: str) -> bytes:
    return message.encode("utf-8", "surrogatepass")


def _dec(data: Any) -> str:
    return bytes(data).decode("utf-8", "surrogatepass")


class PostgresLogStore:
    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    def close(self) -> None:
        """The database is closed by its owner."""

    # --- ids ----------------------------------------------------------------------

    @staticmethod
    def _group(conn: Any, name: str) -> tuple[int, int | None] | None:
        row = conn.execute(
            "SELECT id, retention_days FROM firebox_log_groups WHERE name = %s", (name,)
        ).fetchone()
        return (row[0], row[1]) if row else None

    def _group_or_raise(self, conn: Any, name: str) -> tuple[int, int]:
        found = self._group(conn, name)
        if found is None:
            raise KeyError(name)
        gid, days = found
        return gid, (_now_ms() - days * DAY_MS) if days else 0

    @staticmethod
    def _stream_id(conn: Any, gid: int, name: str) -> int | None:
        row = conn.execute(
            "SELECT id FROM firebox_log_streams WHERE group_id = %s AND name = %s", (gid, name)
        ).fetchone()
        return row[0] if row else None

    def _ensure(self, conn: Any, group: str, stream: str, now: int) -> tuple[int, int]:
        # Read first: nearly every append finds both. Another node creating them at the
        # same moment makes our INSERT wait for its commit, then do nothing.
        found = self._group(conn, group)
        if found is None:
            conn.execute(
                "INSERT INTO firebox_log_groups (name, created_ms) VALUES (%s, %s)"
                " ON CONFLICT (name) DO NOTHING",
                (group, now),
            )
            found = self._group(conn, group)
            assert found is not None
        gid = found[0]
        sid = self._stream_id(conn, gid, stream)
        if sid is None:
            conn.execute(
                "INSERT INTO firebox_log_streams (group_id, name, created_ms) VALUES (%s, %s, %s)"
                " ON CONFLICT (group_id, name) DO NOTHING",
                (gid, stream, now),
            )
            sid = self._stream_id(conn, gid, stream)
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
        with self._db.connection() as conn:
            ids = {key: self._ensure(conn, key[0], key[1], now) for key in batch}
            # One transaction, so one commit (one WAL flush) for every stream of the batch.
            with conn.transaction(), conn.cursor() as cur:
                for key, events in batch.items():
                    gid, sid = ids[key]
                    encoded = [(ts, _enc(msg)) for ts, msg in events]
                    size = sum(len(data) + 26 for _, data in encoded)  # AWS's overhead: 26
                    first = min(ts for ts, _ in events)
                    last = max(ts for ts, _ in events)
                    cur.executemany(
                        "INSERT INTO firebox_log_events"
                        " (group_id, stream_id, ts, ingest_ms, message)"
                        " VALUES (%s, %s, %s, %s, %s)",
                        [(gid, sid, ts, now, data) for ts, data in encoded],
                    )
                    cur.execute(
                        "UPDATE firebox_log_streams SET"
                        " first_ts = least(coalesce(first_ts, %s), %s),"
                        " last_ts = greatest(coalesce(last_ts, %s), %s), last_ingest_ms = %s,"
                        " stored_bytes = stored_bytes + %s WHERE id = %s",
                        (first, first, last, last, now, size, sid),
                    )

    def create_group(self, group: str) -> bool:
        with self._db.connection() as conn:
            cur = conn.execute(
                "INSERT INTO firebox_log_groups (name, created_ms) VALUES (%s, %s)"
                " ON CONFLICT (name) DO NOTHING",
                (group, _now_ms()),
            )
            return cur.rowcount == 1

    def create_stream(self, group: str, stream: str) -> bool:
        with self._db.connection() as conn:
            gid, _ = self._group_or_raise(conn, group)
            cur = conn.execute(
                "INSERT INTO firebox_log_streams (group_id, name, created_ms) VALUES (%s, %s, %s)"
                " ON CONFLICT (group_id, name) DO NOTHING",
                (gid, stream, _now_ms()),
            )
            return cur.rowcount == 1

    def delete_group(self, group: str) -> bool:
        with self._db.connection() as conn, conn.transaction():
            row = conn.execute(
                "DELETE FROM firebox_log_groups WHERE name = %s RETURNING id", (group,)
            ).fetchone()
            if row is None:
                return False
            conn.execute("DELETE FROM firebox_log_events WHERE group_id = %s", (row[0],))
            conn.execute("DELETE FROM firebox_log_streams WHERE group_id = %s", (row[0],))
            return True

    def delete_stream(self, group: str, stream: str) -> bool:
        with self._db.connection() as conn, conn.transaction():
            gid, _ = self._group_or_raise(conn, group)
            row = conn.execute(
                "DELETE FROM firebox_log_streams WHERE group_id = %s AND name = %s RETURNING id",
                (gid, stream),
            ).fetchone()
            if row is None:
                return False
            conn.execute("DELETE FROM firebox_log_events WHERE stream_id = %s", (row[0],))
            return True

    def set_retention(self, group: str, days: int | None) -> bool:
        with self._db.connection() as conn:
            cur = conn.execute(
                "UPDATE firebox_log_groups SET retention_days = %s WHERE name = %s", (days, group)
            )
            return cur.rowcount == 1

    def tags(self, group: str) -> dict[str, str]:
        with self._db.connection() as conn:
            row = conn.execute(
                "SELECT tags FROM firebox_log_groups WHERE name = %s", (group,)
            ).fetchone()
        if row is None:
            raise KeyError(group)
        return dict(json.loads(row[0]))

    def set_tags(
        self, group: str, add: dict[str, str], remove: Sequence[str] = ()
    ) -> dict[str, str]:
        with self._db.connection() as conn, conn.transaction():
            row = conn.execute(
                "SELECT tags FROM firebox_log_groups WHERE name = %s FOR UPDATE", (group,)
            ).fetchone()
            if row is None:
                raise KeyError(group)
            tags = dict(json.loads(row[0]))
            tags.update(add)
            for key in remove:
                tags.pop(key, None)
            conn.execute(
                "UPDATE firebox_log_groups SET tags = %s WHERE name = %s", (json.dumps(tags), group)
            )
            return tags

    def sweep(self, now_ms: int) -> int:
        deleted = 0
        with self._db.connection() as conn:
            rows = conn.execute(
                "SELECT id, retention_days FROM firebox_log_groups WHERE retention_days IS NOT NULL"
            ).fetchall()
            for gid, days in rows:
                cutoff = now_ms - days * DAY_MS
                # One group per transaction: no lock is held across a huge delete.
                with conn.transaction():
                    cur = conn.execute(
                        "DELETE FROM firebox_log_events WHERE group_id = %s AND ts < %s",
                        (gid, cutoff),
                    )
                    if cur.rowcount <= 0:
                        continue
                    deleted += cur.rowcount
                    conn.execute(
                        "UPDATE firebox_log_streams s SET"
                        " first_ts = (SELECT min(ts) FROM firebox_log_events e"
                        "  WHERE e.stream_id = s.id),"
                        " stored_bytes = coalesce((SELECT sum(octet_length(message) + 26)"
                        "  FROM firebox_log_events e WHERE e.stream_id = s.id), 0)"
                        " WHERE group_id = %s AND first_ts < %s",
                        (gid, cutoff),
                    )
        return deleted

    # --- reads --------------------------------------------------------------------

    def groups(self, prefix: str = "") -> list[GroupInfo]:
        with self._db.connection() as conn:
            rows = conn.execute(
                "SELECT g.name, g.created_ms, g.retention_days,"
                " coalesce((SELECT sum(stored_bytes) FROM firebox_log_streams s"
                "  WHERE s.group_id = g.id), 0)"
                " FROM firebox_log_groups g WHERE starts_with(g.name, %s) ORDER BY g.name",
                (prefix,),
            ).fetchall()
        return [GroupInfo(name, created, days, int(size)) for name, created, days, size in rows]

    def streams(self, group: str) -> list[StreamInfo]:
        with self._db.connection() as conn:
            gid, _ = self._group_or_raise(conn, group)
            rows = conn.execute(
                "SELECT name, created_ms, first_ts, last_ts, last_ingest_ms, stored_bytes"
                " FROM firebox_log_streams WHERE group_id = %s ORDER BY name",
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
        with self._db.connection() as conn:
            gid, min_ts = self._group_or_raise(conn, group)
            sid = self._stream_id(conn, gid, stream)
            if sid is None:
                raise KeyError(stream)
            where = ["stream_id = %s", "ts >= %s"]
            args: list[object] = [sid, max(min_ts, start_ms or 0)]
            if end_ms is not None:
                where.append("ts < %s")
                args.append(end_ms)
            if cursor is not None:
                where.append("(ts, id) > (%s, %s)" if forward else "(ts, id) < (%s, %s)")
                args.extend(cursor)
            order = "ASC" if forward else "DESC"
            rows = conn.execute(
                f"SELECT id, ts, ingest_ms, message FROM firebox_log_events"
                f" WHERE {' AND '.join(where)} ORDER BY ts {order}, id {order} LIMIT %s",
                (*args, limit),
            ).fetchall()
        if not forward:
            rows.reverse()
        return [StoredEvent(r[0], stream, r[1], r[2], _dec(r[3])) for r in rows]

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
        with self._db.connection() as conn, conn.transaction():
            gid, min_ts = self._group_or_raise(conn, group)
            names: dict[int, str] = dict(
                conn.execute(
                    "SELECT id, name FROM firebox_log_streams WHERE group_id = %s", (gid,)
                ).fetchall()
            )
            names = select_streams(names, streams, stream_prefix)
            if not names:
                return [], None
            where = ["group_id = %s", "ts >= %s"]
            args: list[object] = [gid, max(min_ts, start_ms or 0)]
            if end_ms is not None:
                where.append("ts <= %s")
                args.append(end_ms)
            if after is not None:
                where.append("(ts, id) > (%s, %s)")
                args.extend(after)
            if streams is not None or stream_prefix:
                where.append("stream_id = ANY(%s)")
                args.append(list(names))
            for term in must_contain:
                # Byte-wise and case-sensitive, as filter terms are: most rows stay on the server.
                where.append("position(%s::bytea IN message) > 0")
                args.append(_enc(term))
            # A server-side cursor: rows arrive in batches, and a page that fills early stops
            # reading early instead of pulling scan_limit rows over the network.
            with conn.cursor(name="firebox_filter") as cur:
                cur.execute(
                    f"SELECT id, stream_id, ts, ingest_ms, message FROM firebox_log_events"
                    f" WHERE {' AND '.join(where)} ORDER BY ts, id LIMIT %s",
                    (*args, scan_limit + 1),
                )

                def rows() -> Iterator[tuple[int, int, int, int, str]]:
                    while batch := cur.fetchmany(_SCAN_BATCH):
                        for eid, sid, ts, ingest, data in batch:
                            yield eid, sid, ts, ingest, _dec(data)

                return scan(rows(), names, match, limit, scan_limit, deadline)
