"""Versioned schema migrations: SQL files applied once each, in order, at start.

``postgres/NNNN_name.sql`` is one sequence for the whole shared database (every node runs
it at start; an advisory lock makes concurrent starters apply each version exactly once).
``sqlite/<database>/NNNN_name.sql`` is one sequence per SQLite file in the data dir. Each
database records what it has in a schema-version table. A migration, once released, is
never edited: a change is a new file.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import time
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# Any fixed 64-bit key: every Firebox node migrating the same database takes this lock.
PG_LOCK_KEY = 0x46_49_52_45_42_4F_58  # "FIREBOX"
PG_VERSION_TABLE = "firebox_schema_version"

_NAME = re.compile(r"(\d{4})_([a-z0-9_]+)\.sql")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def load(directory: Traversable | Path) -> list[Migration]:
    """The migrations in a directory, in version order; ValueError on a malformed set."""
    found: list[Migration] = []
    for entry in directory.iterdir():
        match = _NAME.fullmatch(entry.name)
        if match is None:
            if entry.name.endswith(".sql"):
                raise ValueError(f"migration file {entry.name!r} is not named NNNN_name.sql")
            continue
        found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise ValueError(f"migrations in {directory} must be numbered 1, 2, 3 …: {versions}")
    return found


def postgres_migrations() -> list[Migration]:
    return load(files(__package__) / "postgres")


def sqlite_migrations(database: str) -> list[Migration]:
    return load(files(__package__) / "sqlite" / database)


def migrate_postgres(conn: Any, migrations: list[Migration] | None = None) -> list[int]:
    """Bring a PostgreSQL database up to date; the versions this call applied.

    ``conn`` is a psycopg connection in autocommit mode. Everything runs in one transaction
    holding a transaction-scoped advisory lock: a second node starting at the same moment
    waits, then finds the versions applied; a failing migration leaves nothing behind.
    """
    migrations = postgres_migrations() if migrations is None else migrations
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (PG_LOCK_KEY,))
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {PG_VERSION_TABLE} ("
            " version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
            " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        have = {row[0] for row in conn.execute(f"SELECT version FROM {PG_VERSION_TABLE}")}
        applied = []
        for m in migrations:
            if m.version in have:
                continue
            # No parameters: psycopg sends the file as one simple query, statements and all.
            conn.execute(m.sql)
            conn.execute(
                f"INSERT INTO {PG_VERSION_TABLE} (version, name) VALUES (%s, %s)",
                (m.version, m.name),
            )
            applied.append(m.version)
    _report("PostgreSQL", applied, have, migrations)
    return applied


def migrate_sqlite(
    db: sqlite3.Connection, database: str, migrations: list[Migration] | None = None
) -> list[int]:
    """Bring one SQLite file up to date; the versions this call applied.

    ``db`` is in autocommit mode (isolation_level=None). One IMMEDIATE transaction: the
    file has one server, but a second process opening it waits rather than racing.
    """
    migrations = sqlite_migrations(database) if migrations is None else migrations
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute(
            "CREATE TABLE IF NOT EXISTS schema_version ("
            " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
        )
        have = {row[0] for row in db.execute("SELECT version FROM schema_version")}
        applied = []
        for m in migrations:
            if m.version in have:
                continue
            # executescript() would commit first; statements one by one stay in this
            # transaction (SQLite's DDL is transactional).
            for statement in _statements(m.sql):
                db.execute(statement)
            db.execute(
                "INSERT INTO schema_version (version, name, applied_at) VALUES (?, ?, ?)",
                (m.version, m.name, time.time()),
            )
            applied.append(m.version)
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    _report(f"SQLite {database}", applied, have, migrations)
    return applied


def _statements(script: str) -> list[str]:
    out: list[str] = []
    buf = ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            out.append(buf)
            buf = ""
    if buf.strip() and any(
        ln.strip() and not ln.strip().startswith("--") for ln in buf.splitlines()
    ):
        raise ValueError(f"unterminated SQL statement: {buf.strip()[:200]!r}")
    return out


def _report(what: str, applied: list[int], had: set[int], known: list[Migration]) -> None:
    if applied:
        log.info("%s schema migrated to version %d (applied %s)", what, max(applied), applied)
    newer = sorted(v for v in had if v > len(known))
    if newer:
        # A node of a newer release migrated the database: this one's tables still exist
        # (migrations only add), so it runs, but says so.
        log.warning("%s schema has versions %s this release does not know", what, newer)
