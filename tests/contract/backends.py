"""Opening a store of each backend for the contract suites: SQLite files in a temp dir, or a
fresh PostgreSQL database, each open call a new connection to the same data (another
process, another node)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from services import fresh_database, missing_service, postgres_problem

T = TypeVar("T")


@contextlib.contextmanager
def opener(
    backend: str,
    tmp_path: Path,
    sqlite: Callable[[Path], T],
    postgres: Callable[[Any], T],
) -> Iterator[Callable[[], T]]:
    """Yields a function opening a store; closes every store (and pool) afterwards.

    ``sqlite`` gets the temp dir, ``postgres`` a ``PostgresDatabase`` of its own.
    """
    opened: list[Any] = []
    dbs: list[Any] = []
    try:
        if backend == "sqlite":

            def open_sqlite() -> T:
                opened.append(sqlite(tmp_path))
                return opened[-1]

            yield open_sqlite
            return
        if postgres_problem():
            missing_service(postgres_problem() or "")
        from firebox.store.postgres import PostgresDatabase

        with fresh_database() as url:

            def open_postgres() -> T:
                dbs.append(PostgresDatabase(url))
                opened.append(postgres(dbs[-1]))
                return opened[-1]

            try:
                yield open_postgres
            finally:
                _close(opened, dbs)
    finally:
        _close(opened, dbs)


def _close(opened: list[Any], dbs: list[Any]) -> None:
    while opened:
        with contextlib.suppress(Exception):
            opened.pop().close()
    while dbs:
        dbs.pop().close()
