"""Versioned schema migrations: each version applied once, in order, atomically; several
nodes starting at the same moment on one PostgreSQL database; SQLite files versioned too."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from firebox.store.migrations import (
    PG_VERSION_TABLE,
    Migration,
    load,
    migrate_postgres,
    migrate_sqlite,
    postgres_migrations,
    sqlite_migrations,
)

# Starts a node's migration in a process of its own once a start file appears, so that
# every process is past its imports and connected before any of them begins.
STARTER = textwrap.dedent(
    """
    import json, os, sys, time
    from pathlib import Path
    import psycopg
    from firebox.store.migrations import load, migrate_postgres
    url, directory, go = sys.argv[1:]
    conn = psycopg.connect(url, autocommit=True)
    print("ready", flush=True)
    while not os.path.exists(go):
        time.sleep(0.001)
    print(json.dumps(migrate_postgres(conn, load(Path(directory)))), flush=True)
    """
)


def write_migrations(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, sql in files.items():
        (directory / name).write_text(sql)
    return directory


def test_postgres_migrations_run_once_when_nodes_start_together(
    pg_url: str, tmp_path: Path
) -> None:
    # Version 1 is slow, so every starter arrives while the first is still inside it;
    # version 2 fails if run twice (no IF NOT EXISTS).
    directory = write_migrations(
        tmp_path / "m",
        {
            "0001_slow.sql": "CREATE TABLE t1 (id INT); SELECT pg_sleep(0.5);",
            "0002_once.sql": "CREATE TABLE t2 (id INT); INSERT INTO t2 VALUES (1);",
        },
    )
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", STARTER, pg_url, str(directory), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    go.touch()
    results = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        results.append(json.loads(out))
    assert sorted(results) == [[], [], [], [1, 2]]

    import psycopg

    with psycopg.connect(pg_url) as conn:
        rows = conn.execute(f"SELECT version, name FROM {PG_VERSION_TABLE} ORDER BY 1").fetchall()
        assert rows == [(1, "slow"), (2, "once")]
        assert conn.execute("SELECT count(*) FROM t2").fetchone() == (1,)


def test_postgres_database_opened_by_two_threads_at_once_has_one_schema(pg_url: str) -> None:
    from firebox.store.postgres import PostgresDatabase

    opened: list[PostgresDatabase] = []
    start = threading.Barrier(2)

    def open_db() -> None:
        start.wait()
        opened.append(PostgresDatabase(pg_url))

    threads = [threading.Thread(target=open_db) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(opened) == 2
    everything = [m.version for m in postgres_migrations()]
    assert sorted(opened[0].applied + opened[1].applied) == everything
    with opened[0].connection() as conn:
        versions = [r[0] for r in conn.execute(f"SELECT version FROM {PG_VERSION_TABLE}")]
    assert sorted(versions) == everything
    for db in opened:
        db.close()


def test_a_failing_postgres_migration_leaves_nothing_behind(pg_url: str) -> None:
    import psycopg

    good = Migration(1, "good", "CREATE TABLE kept_only_if_all_pass (id INT);")
    bad = Migration(2, "bad", "CREATE TABLE broken (id INT); SELECT no_such_function();")
    with psycopg.connect(pg_url, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.UndefinedFunction):
            migrate_postgres(conn, [good, bad])
        assert conn.execute("SELECT to_regclass('kept_only_if_all_pass')").fetchone() == (None,)
        # Fixed, it applies both; run again, it applies nothing.
        fixed = Migration(2, "bad", "CREATE TABLE broken (id INT);")
        assert migrate_postgres(conn, [good, fixed]) == [1, 2]
        assert migrate_postgres(conn, [good, fixed]) == []


def test_sqlite_files_are_versioned(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "x.db", isolation_level=None)
    first = Migration(1, "a", "CREATE TABLE a (id INTEGER);\n-- a comment\n")
    assert migrate_sqlite(db, "x", [first]) == [1]
    assert migrate_sqlite(db, "x", [first]) == []
    trigger = Migration(
        2,
        "b",
        "CREATE TABLE b (n INTEGER);\n"
        "CREATE TRIGGER count_a AFTER INSERT ON a BEGIN\n"
        "  INSERT INTO b VALUES (new.id);\n"
        "END;\n",
    )
    assert migrate_sqlite(db, "x", [first, trigger]) == [2]
    db.execute("INSERT INTO a VALUES (7)")
    assert db.execute("SELECT n FROM b").fetchall() == [(7,)]
    # A failing version rolls back whole: its table is not there, its number not taken.
    broken = Migration(3, "c", "CREATE TABLE c (id INTEGER);\nINSERT INTO nowhere VALUES (1);\n")
    with pytest.raises(sqlite3.OperationalError):
        migrate_sqlite(db, "x", [first, trigger, broken])
    assert db.execute("SELECT name FROM sqlite_master WHERE name = 'c'").fetchall() == []
    assert [r[0] for r in db.execute("SELECT version FROM schema_version")] == [1, 2]


def test_a_data_dir_from_before_migrations_keeps_its_data(tmp_path: Path) -> None:
    from firebox.store.metadata.sqlite import SqliteMetadataStore

    old = sqlite3.connect(tmp_path / "metadata.db", isolation_level=None)
    old.executescript(
        "CREATE TABLE docs (kind TEXT NOT NULL, key TEXT NOT NULL, body TEXT NOT NULL,"
        " PRIMARY KEY (kind, key)) WITHOUT ROWID;"
        "CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;"
        "INSERT INTO docs VALUES ('function', 'old', '{\"kept\": true}');"
    )
    old.close()
    store = SqliteMetadataStore(tmp_path / "metadata.db")
    assert store.get("function", "old") == {"kept": True}
    store.close()
    check = sqlite3.connect(tmp_path / "metadata.db")
    applied = [r[0] for r in check.execute("SELECT version FROM schema_version")]
    assert applied == [m.version for m in sqlite_migrations("metadata")]


def test_shipped_migrations_are_well_formed() -> None:
    assert [m.version for m in postgres_migrations()] == [1, 2, 3, 4, 5]
    for database in ("metadata", "logs", "queue", "metering", "fleet"):
        assert [m.version for m in sqlite_migrations(database)][0] == 1


def test_migration_files_must_be_numbered_without_gaps(tmp_path: Path) -> None:
    gap = write_migrations(tmp_path / "gap", {"0001_a.sql": "", "0003_c.sql": ""})
    with pytest.raises(ValueError, match="numbered"):
        load(gap)
    badly = write_migrations(tmp_path / "name", {"1_a.sql": ""})
    with pytest.raises(ValueError, match="NNNN_name"):
        load(badly)
