"""Writing a tree of files as root where every name comes from a user, never through a link.

Code and layer zips may hold symlinks, and entries (or later layers) may name paths under
them. Checking names or link targets as strings cannot stop a later entry from writing
through an earlier link (``a -> ..`` first, then ``a/x``; or a link whose target only
escapes once another link exists). So nothing here resolves a path: every component is
opened relative to its parent's descriptor with ``O_NOFOLLOW``, and whatever stands where
a directory or a file must go (a link, a file where a directory is wanted, a directory
where a file is wanted) is removed first; the later entry wins, as when unzipping over a
tree. A link is only ever created, never followed.
"""

from __future__ import annotations

import contextlib
import errno
import os
import posixpath
import shutil
import stat
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class EscapesRoot(ValueError):
    """A name that points outside the tree (absolute, or climbing above it with ``..``)."""


def split_name(name: str) -> list[str]:
    """The components of a relative name, with ``.`` and ``..`` taken lexically.

    Lexical ``..`` is safe here because no component is ever followed: ``a/../b`` is
    ``b`` whatever ``a`` is. Raises EscapesRoot for an absolute name or one that climbs
    above the root, ValueError for a NUL byte.
    """
    if "\0" in name:
        raise ValueError("NUL byte in a file name")
    if name.startswith("/"):
        raise EscapesRoot(name)
    parts: list[str] = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise EscapesRoot(name)
            parts.pop()
        else:
            parts.append(part)
    return parts


def link_stays_inside(parts: Sequence[str], target: str) -> bool:
    """Whether a link at ``parts`` pointing at ``target`` names a place inside the tree,
    read as a string. Not a safety check for the host (links are never followed here):
    it keeps links whose meaning depends on the host's layout out of the package."""
    if not target or target.startswith("/") or "\0" in target:
        return False
    joined = posixpath.normpath(posixpath.join(*parts[:-1], target) if parts[:-1] else target)
    return joined != ".." and not joined.startswith("../")


def _remove(name: str, dir_fd: int) -> None:
    st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    if stat.S_ISDIR(st.st_mode):
        # rmtree with dir_fd walks by descriptor and never follows a link either.
        shutil.rmtree(name, dir_fd=dir_fd)
    else:
        os.unlink(name, dir_fd=dir_fd)


class TreeWriter:
    """Creates directories, files and links under one root directory (which must be a
    real directory, not a link), never following a link on the way."""

    def __init__(self, root: Path, dir_mode: int = 0o755) -> None:
        self._root = os.open(root, _DIR_FLAGS)
        self._dir_mode = dir_mode
        os.fchmod(self._root, dir_mode)
        # Open directories by their components: most entries of a zip share parents.
        self._dirs: dict[tuple[str, ...], int] = {(): self._root}

    def close(self) -> None:
        for fd in self._dirs.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        self._dirs = {}

    def __enter__(self) -> TreeWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _forget_below(self, parent: tuple[str, ...], name: str) -> None:
        """Drop cached descriptors at or under ``parent/name`` (it is being replaced)."""
        prefix = (*parent, name)
        for key in [k for k in self._dirs if k[: len(prefix)] == prefix]:
            os.close(self._dirs.pop(key))

    def directory(self, parts: Sequence[str]) -> int:
        """A descriptor of the directory at ``parts``, made as needed (owned by the writer)."""
        key = tuple(parts)
        fd = self._dirs.get(key)
        if fd is not None:
            return fd
        parent = self.directory(key[:-1])
        name = key[-1]
        fd = self._open_dir(parent, key[:-1], name)
        self._dirs[key] = fd
        return fd

    def _open_dir(self, parent: int, parent_key: tuple[str, ...], name: str) -> int:
        for _ in range(3):
            try:
                return os.open(name, _DIR_FLAGS, dir_fd=parent)
            except FileNotFoundError:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(name, self._dir_mode, dir_fd=parent)
                    fd = os.open(name, _DIR_FLAGS, dir_fd=parent)
                    os.fchmod(fd, self._dir_mode)
                    return fd
            except OSError as exc:
                if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                    raise
                # A link or a file where a directory must go: the later entry wins.
                self._forget_below(parent_key, name)
                _remove(name, parent)
        raise OSError(errno.EAGAIN, f"cannot make directory {name!r}")

    def mkdir(self, parts: Sequence[str]) -> None:
        if parts:
            self.directory(parts)

    def _clear(self, parts: Sequence[str]) -> tuple[int, str]:
        """The parent's descriptor and the final name, with nothing left at that name."""
        parent_key = tuple(parts[:-1])
        parent = self.directory(parent_key)
        name = parts[-1]
        try:
            os.stat(name, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            return parent, name
        self._forget_below(parent_key, name)
        _remove(name, parent)
        return parent, name

    def write_file(self, parts: Sequence[str], src: IO[bytes], mode: int) -> None:
        """A new regular file with ``src``'s bytes and permission bits ``mode``."""
        if not parts:
            raise EscapesRoot("a file cannot replace the package root")
        parent, name = self._clear(parts)
        fd = os.open(name, _NEW_FILE_FLAGS, 0o600, dir_fd=parent)
        with os.fdopen(fd, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
            os.fchmod(dst.fileno(), mode)

    def symlink(self, parts: Sequence[str], target: str) -> None:
        if not parts:
            raise EscapesRoot("a link cannot replace the package root")
        parent, name = self._clear(parts)
        os.symlink(target, name, dir_fd=parent)

    def hardlink(self, parts: Sequence[str], src_dir_fd: int, src_name: str, mode: int) -> None:
        """The file ``src_name`` of ``src_dir_fd`` at ``parts``: a hard link where the
        filesystem allows it (no copy of a layer's bytes), else a copy."""
        if not parts:
            raise EscapesRoot("a file cannot replace the package root")
        parent, name = self._clear(parts)
        try:
            os.link(src_name, name, src_dir_fd=src_dir_fd, dst_dir_fd=parent, follow_symlinks=False)
            return
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EMLINK, errno.EPERM):
                raise
        src = os.open(src_name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=src_dir_fd)
        with os.fdopen(src, "rb") as fh:
            self.write_file(parts, fh, mode)


def walk(root: Path) -> Iterator[tuple[list[str], str, int, os.DirEntry[str]]]:
    """Every entry under ``root``, parents before children, by descriptor and without
    following links: (components of its directory, its name, that directory's fd, entry).
    The fd is valid only until the next item."""
    top = os.open(root, _DIR_FLAGS)
    try:
        yield from _walk(top, [])
    finally:
        os.close(top)


def _walk(fd: int, prefix: list[str]) -> Iterator[tuple[list[str], str, int, os.DirEntry[str]]]:
    with os.scandir(fd) as it:
        entries = sorted(it, key=lambda e: e.name)
    for entry in entries:
        yield prefix, entry.name, fd, entry
        if entry.is_dir(follow_symlinks=False):
            sub = os.open(entry.name, _DIR_FLAGS, dir_fd=fd)
            try:
                yield from _walk(sub, [*prefix, entry.name])
            finally:
                os.close(sub)
