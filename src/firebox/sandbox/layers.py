"""Merging a function's layers, in order, into the one tree mounted at /opt."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tempfile
from pathlib import Path

from firebox.store.code.base import CodeStore
from firebox.store.code.safetree import TreeWriter, walk


def merged_layers(code: CodeStore, layer_shas: tuple[str, ...], root: Path) -> Path | None:
    """A directory holding every layer's files, later layers overwriting earlier ones.

    Built once per distinct list of layers and reused by every environment that has it.
    A layer's links are copied as links and never followed, so one layer cannot plant a
    link (``python -> /etc``) that a later layer's files are then written through: the
    later directory replaces the link (safetree.py).
    """
    if not layer_shas:
        return None
    key = hashlib.sha256("\n".join(layer_shas).encode()).hexdigest()[:32]
    target = root / key
    if target.exists():
        return target
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o711)
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=".tmp-"))
    try:
        with TreeWriter(tmp) as tree:
            for sha in layer_shas:
                _merge_one(code.unpacked(sha), tree)
        os.rename(tmp, target)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not target.exists():
            raise
    return target


def _merge_one(layer: Path, tree: TreeWriter) -> None:
    for parent, name, dir_fd, entry in walk(layer):
        parts = [*parent, name]
        if entry.is_dir(follow_symlinks=False):
            tree.mkdir(parts)
        elif entry.is_symlink():
            tree.symlink(parts, os.readlink(name, dir_fd=dir_fd))
        elif entry.is_file(follow_symlinks=False):
            mode = stat.S_IMODE(entry.stat(follow_symlinks=False).st_mode)
            tree.hardlink(parts, dir_fd, name, mode)
