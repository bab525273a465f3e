"""Code packages as files in the data dir, content-addressed by SHA-256."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

from firebox.store.code.zipfiles import extract, open_zip
from firebox.store.private import private_dir


class FileCodeStore:
    def __init__(self, root: Path) -> None:
        self._zips = root / "zips"
        self._trees = root / "trees"
        # The sandbox bind-mounts a tree as root before it drops to nobody: nobody reads
        # inside a tree (0755), never the way to it.
        private_dir(self._zips)
        private_dir(self._trees)
        private_dir(root)

    def _zip_path(self, sha: str) -> Path:
        return self._zips / f"{sha}.zip"

    def put(self, data: bytes) -> str:
        zf = open_zip(data)
        sha = hashlib.sha256(data).hexdigest()
        self._write(sha, data, sync=True)
        self._unpack(sha, zf)
        return sha

    def keep(self, sha256_hex: str, data: bytes) -> None:
        """Cache a package fetched from elsewhere, whose digest the caller has checked.

        Not synced: a cache lost in a power cut is fetched again.
        """
        self._write(sha256_hex, data, sync=False)

    def _write(self, sha: str, data: bytes, *, sync: bool) -> None:
        path = self._zip_path(sha)
        if path.exists():
            return
        fd, tmp = tempfile.mkstemp(dir=self._zips, prefix=_tmp_prefix())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            if sync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
        if sync:
            _fsync_dir(self._zips)

    def get(self, sha256_hex: str) -> bytes:
        try:
            return self._zip_path(sha256_hex).read_bytes()
        except FileNotFoundError:
            raise KeyError(sha256_hex) from None

    def exists(self, sha256_hex: str) -> bool:
        return self._zip_path(sha256_hex).exists()

    def unpacked(self, sha256_hex: str) -> Path:
        tree = self._trees / sha256_hex
        if not tree.exists():
            self._unpack(sha256_hex, open_zip(self.get(sha256_hex)))
        return tree

    def _unpack(self, sha: str, zf: zipfile.ZipFile) -> None:
        tree = self._trees / sha
        if tree.exists():
            return
        tmp = Path(tempfile.mkdtemp(dir=self._trees, prefix="." + _tmp_prefix()))
        try:
            extract(zf, tmp)
            os.chmod(tmp, 0o755)
            os.rename(tmp, tree)
        except FileExistsError:
            shutil.rmtree(tmp, ignore_errors=True)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
            if not tree.exists():
                raise

    def delete(self, sha256_hex: str) -> None:
        self._zip_path(sha256_hex).unlink(missing_ok=True)
        shutil.rmtree(self._trees / sha256_hex, ignore_errors=True)

    def sweep_partial(self) -> None:
        """Remove half-written zips and half-unpacked trees left by a crash — only those of
        dead processes: with --processes, others share the directory and are writing."""
        for p in self._trees.glob(".tmp-*"):
            if not _writer_alive(p.name[1:]):
                shutil.rmtree(p, ignore_errors=True)
        for p in self._zips.glob("tmp-*"):
            if not _writer_alive(p.name):
                p.unlink(missing_ok=True)


def _tmp_prefix() -> str:
    """Names of files being written carry the writer's pid: ``tmp-<pid>-``."""
    return f"tmp-{os.getpid()}-"


def _writer_alive(name: str) -> bool:
    pid = name.split("-")[1] if name.count("-") >= 2 else ""
    return pid.isdigit() and os.path.exists(f"/proc/{pid}")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
