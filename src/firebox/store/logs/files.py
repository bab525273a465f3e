"""Logs as append-only JSON-lines files in the data dir, one file per stream."""

from __future__ import annotations

import json
import shutil
import threading
import urllib.parse
from collections.abc import Iterator, Sequence
from pathlib import Path

from firebox.store.logs.base import Event


def _enc(name: str) -> str:
    return urllib.parse.quote(name, safe="")


def _dec(name: str) -> str:
    return urllib.parse.unquote(name)


class FileLogStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def _path(self, group: str, stream: str) -> Path:
        return self.root / _enc(group) / (_enc(stream) + ".jsonl")

    def append(self, group: str, stream: str, events: Sequence[Event]) -> None:
        if not events:
            return
        path = self._path(group, stream)
        data = "".join(json.dumps([ts, msg]) + "\n" for ts, msg in events)
        with self._lock:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "a", encoding="utf-8") as fh:
                fh.write(data)

    def groups(self) -> list[str]:
        return sorted(_dec(p.name) for p in self.root.iterdir() if p.is_dir())

    def streams(self, group: str) -> list[str]:
        d = self.root / _enc(group)
        if not d.is_dir():
            return []
        return sorted(_dec(p.name[: -len(".jsonl")]) for p in d.glob("*.jsonl"))

    def read(self, group: str, stream: str) -> Iterator[tuple[int, Event]]:
        path = self._path(group, stream)
        try:
            fh = open(path, encoding="utf-8")
        except FileNotFoundError:
            return
        with fh:
            for seq, line in enumerate(fh):
                try:
                    ts, msg = json.loads(line)
                except ValueError:
                    continue  # a torn last line after a crash
                yield seq, (int(ts), str(msg))

    def delete_group(self, group: str) -> bool:
        d = self.root / _enc(group)
        if not d.exists():
            return False
        with self._lock:
            shutil.rmtree(d, ignore_errors=True)
        return True
