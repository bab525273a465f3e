"""Checking and unpacking Lambda zip packages safely (size limits, paths, modes)."""

from __future__ import annotations

import errno
import io
import stat
import zipfile
from pathlib import Path

from firebox.messages import (
    UNZIP_FAILED,
    UNZIPPED_TOO_LARGE,
    ZIP_ENTRY_CANNOT_UNPACK,
    ZIP_ENTRY_ESCAPES,
    ZIP_ENTRY_INVALID_NAME,
)
from firebox.store.code.safetree import EscapesRoot, TreeWriter, link_stays_inside, split_name

# Lambda's limit on the unzipped size of a function and its layers.
MAX_UNZIPPED_BYTES = 250 * 1024 * 1024


def open_zip(data: bytes) -> zipfile.ZipFile:
    """Open a package, or raise the error Lambda gives for a file that is not a zip."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        bad = zf.testzip()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError, OSError) as exc:
        raise UNZIP_FAILED() from exc
    if bad is not None:
        raise UNZIP_FAILED()
    total = sum(i.file_size for i in zf.infolist())
    if total > MAX_UNZIPPED_BYTES:
        raise UNZIPPED_TOO_LARGE(limit=MAX_UNZIPPED_BYTES)
    return zf


def extract(zf: zipfile.ZipFile, dest: Path) -> None:
    """Extract into dest (an empty directory), keeping Unix modes (a bootstrap must stay
    executable).

    No write ever follows a link (safetree.py), whatever the order of the entries: an
    entry under an earlier link replaces the link. Entries that name a place outside the
    package are refused; symlinks are recreated only when their target, read as a
    string, stays inside the package.
    """
    with TreeWriter(dest) as tree:
        for info in zf.infolist():
            try:
                parts = split_name(info.filename)
            except EscapesRoot:
                raise ZIP_ENTRY_ESCAPES(entry=info.filename) from None
            except ValueError:
                raise ZIP_ENTRY_INVALID_NAME(entry=info.filename) from None
            mode = (info.external_attr >> 16) & 0xFFFF
            try:
                _extract_one(zf, info, parts, mode, tree)
            except OSError as exc:
                if exc.errno not in _BAD_NAME_ERRNOS:
                    raise
                raise ZIP_ENTRY_CANNOT_UNPACK(entry=info.filename, why=exc.strerror) from None


# What the file system says of a name it cannot hold (too long, too deep): the package's
# fault, not ours.
_BAD_NAME_ERRNOS = (errno.ENAMETOOLONG, errno.EINVAL, errno.EILSEQ)


def _extract_one(
    zf: zipfile.ZipFile, info: zipfile.ZipInfo, parts: list[str], mode: int, tree: TreeWriter
) -> None:
    if info.is_dir():
        tree.mkdir(parts)
        return
    if not parts:
        raise ZIP_ENTRY_INVALID_NAME(entry=info.filename)
    if stat.S_ISLNK(mode):
        target = zf.read(info).decode(errors="replace")
        if link_stays_inside(parts, target):
            tree.symlink(parts, target)
        return
    perm = stat.S_IMODE(mode) if mode else 0o644
    # Everyone may read (the function runs as an unprivileged user); keep exec bits only:
    # never setuid, setgid or sticky, never writable by others.
    with zf.open(info) as src:
        tree.write_file(parts, src, (perm | 0o444) & 0o755)
