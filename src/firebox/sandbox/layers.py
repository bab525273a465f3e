"""Merging a function's layers, in order, into the one tree mounted at /opt."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from firebox.store.code.base import CodeStore


def merged_layers(code: CodeStore, layer_shas: tuple[str, ...], root: Path) -> Path | None:
    """A directory holding every layer's files, later layers overwriting earlier ones.

    Built once per distinct list of layers and reused by every environment that has it.
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
    for sha in layer_shas:
        shutil.copytree(code.unpacked(sha), tmp, dirs_exist_ok=True, symlinks=True)
    os.chmod(tmp, 0o755)
    try:
        os.rename(tmp, target)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
