"""Files of the data dir that hold secrets are the server's alone.

Function configuration (its environment variables are secrets), logs, queued events,
metering and credentials live in files no other user on the host may read: 0600 files
in 0700 directories. SQLite gives its -wal and -shm files the mode of their database, so
creating the database 0600 first is enough; an existing one is put right at open.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path
from typing import Any

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path) -> Path:
    """``path`` (and missing parents) as a directory only the server can enter."""
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    os.chmod(path, DIR_MODE)
    return path


def connect_private(path: Path, **kwargs: Any) -> sqlite3.Connection:
    """sqlite3.connect to a database file (and journal files) readable by the server only."""
    path.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE))
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            os.chmod(f"{path}{suffix}", FILE_MODE)
    return sqlite3.connect(path, **kwargs)
