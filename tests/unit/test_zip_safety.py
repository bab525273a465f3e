import io
import os
import zipfile
from pathlib import Path

import pytest

from firebox.errors import InvalidParameterValue
from firebox.store.code.files import FileCodeStore


def zip_of(entries: dict[str, tuple[bytes, int]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, (data, mode) in entries.items():
            info = zipfile.ZipInfo(name)
            info.external_attr = mode << 16
            zf.writestr(info, data)
    return buf.getvalue()


def test_unpacked_tree_keeps_exec_bits_and_is_content_addressed(tmp_path: Path):
    store = FileCodeStore(tmp_path)
    data = zip_of({"bootstrap": (b"#!/bin/sh\n", 0o100755), "lib/a.txt": (b"a", 0o100600)})
    sha = store.put(data)
    assert store.put(data) == sha
    tree = store.unpacked(sha)
    assert os.access(tree / "bootstrap", os.X_OK)
    # Readable by the unprivileged user functions run as.
    assert (tree / "lib/a.txt").stat().st_mode & 0o004
    assert store.get(sha) == data


def test_zip_slip_is_refused(tmp_path: Path):
    store = FileCodeStore(tmp_path)
    with pytest.raises(InvalidParameterValue):
        store.put(zip_of({"../../escape.txt": (b"x", 0o100644)}))
    assert not (tmp_path.parent / "escape.txt").exists()


def test_not_a_zip_is_refused(tmp_path: Path):
    with pytest.raises(InvalidParameterValue):
        FileCodeStore(tmp_path).put(b"plain text")
