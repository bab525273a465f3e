"""Checking and unpacking Lambda zip packages safely (size limits, paths, modes)."""

from __future__ import annotations

import io
import os
import stat
import zipfile
from pathlib import Path

from firebox.messages import UNZIP_FAILED, UNZIPPED_TOO_LARGE, ZIP_ENTRY_ESCAPES

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
    """Extract into dest, keeping Unix modes (a bootstrap must stay executable).

    Entries that would land outside dest are refused; symlinks are recreated only when
    they point inside the package.
    """
    root = dest.resolve()
    for info in zf.infolist():
        target = (root / info.filename).resolve()
        if target != root and root not in target.parents:
            raise ZIP_ENTRY_ESCAPES(entry=info.filename)
        mode = (info.external_attr >> 16) & 0xFFFF
        if info.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if stat.S_ISLNK(mode):
            link = zf.read(info).decode()
            resolved = (target.parent / link).resolve()
            if resolved == root or root in resolved.parents:
                os.symlink(link, target)
            continue
        with zf.open(info) as src, open(target, "wb") as dst:
            while chunk := src.read(1 << 20):
                dst.write(chunk)
        perm = stat.S_IMODE(mode) if mode else 0o644
        # Everyone may read (the function runs as an unprivileged user); keep exec bits.
        os.chmod(target, (perm | 0o444) & 0o755)
    for dirpath, _dirs, _files in os.walk(root):
        os.chmod(dirpath, 0o755)
