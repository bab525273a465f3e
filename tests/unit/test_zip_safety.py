"""Unpacking code and merging layers as an attacker would arrange their zips: entries and
layers ordered so that a later write goes through an earlier link. Nothing may land
outside the package's own tree, whatever the order."""

import io
import os
import stat
import warnings
import zipfile
from pathlib import Path

import pytest

from firebox.errors import InvalidParameterValue
from firebox.sandbox.layers import merged_layers
from firebox.store.code.files import FileCodeStore

LINK = stat.S_IFLNK | 0o777


def zip_of(entries: dict[str, tuple[bytes, int]] | list[tuple[str, bytes, int]]) -> bytes:
    """A zip whose entries come in exactly this order (duplicate names allowed)."""
    items = [(n, d, m) for n, (d, m) in entries.items()] if isinstance(entries, dict) else entries
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns of duplicate names: they are the point
        for name, data, mode in items:
            info = zipfile.ZipInfo(name)
            info.external_attr = mode << 16
            zf.writestr(info, data)
    return buf.getvalue()


def link(target: str) -> tuple[bytes, int]:
    return target.encode(), LINK


def file(data: bytes = b"x", mode: int = 0o100644) -> tuple[bytes, int]:
    return data, mode


def up_to_root(tree: Path) -> str:
    """A link target that, read as a string, stays in the package, but climbs from the
    tree to / once the links it passes through exist: ``a/b/…/l -> ../..…`` (the package
    root) then ``…/l/../../..`` above it."""
    depth = len(tree.resolve().parts)  # components from / to the tree, / included
    deep = "/".join(f"d{i}" for i in range(depth))
    return deep + "/l/" + "/".join([".."] * depth)


def chain_entries(tree: Path) -> list[tuple[str, bytes, int]]:
    """``d0/…/dN/l -> ../…`` (back to the package root): every link stays inside."""
    depth = len(tree.resolve().parts)
    deep = "/".join(f"d{i}" for i in range(depth))
    return [(f"{deep}/l", "/".join([".."] * depth).encode(), LINK)]


def everything_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.fixture
def store(tmp_path: Path) -> FileCodeStore:
    return FileCodeStore(tmp_path / "data" / "code")


def test_unpacked_tree_keeps_exec_bits_and_is_content_addressed(store: FileCodeStore):
    data = zip_of({"bootstrap": (b"#!/bin/sh\n", 0o100755), "lib/a.txt": (b"a", 0o100600)})
    sha = store.put(data)
    assert store.put(data) == sha
    tree = store.unpacked(sha)
    assert os.access(tree / "bootstrap", os.X_OK)
    # Readable by the unprivileged user functions run as.
    assert (tree / "lib/a.txt").stat().st_mode & 0o004
    assert store.get(sha) == data


def test_setuid_and_world_writable_bits_are_dropped(store: FileCodeStore):
    tree = store.unpacked(store.put(zip_of({"s": (b"x", 0o104777), "g": (b"x", 0o102666)})))
    assert stat.S_IMODE((tree / "s").stat().st_mode) == 0o755
    assert stat.S_IMODE((tree / "g").stat().st_mode) == 0o644


def test_zip_slip_is_refused(store: FileCodeStore, tmp_path: Path):
    for name in ("../../escape.txt", "/abs/escape.txt", "a/../../escape.txt"):
        with pytest.raises(InvalidParameterValue, match="escapes the package root"):
            store.put(zip_of({name: file()}))
    assert not list(tmp_path.rglob("escape.txt"))


def test_dot_dot_inside_the_package_is_taken_lexically(store: FileCodeStore):
    tree = store.unpacked(store.put(zip_of([("a", *link("..")), ("a/../b", b"1", 0o100644)])))
    assert (tree / "b").read_bytes() == b"1"


def test_a_file_under_an_earlier_dir_link_lands_inside(store: FileCodeStore, tmp_path: Path):
    outside = tmp_path / "outside"
    outside.mkdir()
    tree_dir = store._trees / ("x" * 64)  # where the tree will be: same depth
    entries = [
        # The link first, while the links it passes through do not exist yet...
        ("esc", up_to_root(tree_dir).encode(), LINK),
        *chain_entries(tree_dir),
        # ...then a file under it, naming a host path.
        (f"esc{outside}/pwned", b"pwned", 0o100644),
        ("etc", b"/etc", LINK),
        ("etc/firebox-pwned", b"pwned", 0o100644),
    ]
    sha = store.put(zip_of(entries))
    tree = store.unpacked(sha)
    assert list(outside.iterdir()) == []
    assert not Path("/etc/firebox-pwned").exists()
    # The later entries replaced the links with directories of the package's own.
    assert (tree / f"esc{outside}" / "pwned").read_bytes() == b"pwned"
    assert not (tree / "esc").is_symlink()
    assert (tree / "etc" / "firebox-pwned").is_file()


def test_a_link_cannot_redirect_a_write_into_another_functions_code(
    store: FileCodeStore,
):
    victim = store.put(zip_of({"app.py": file(b"VICTIM = True\n")}))
    # a/l -> .. is the package root; other -> a/l/../<victim> reads as a/<victim>
    # (inside), but once a/l exists it is trees/<victim>.
    attack = zip_of(
        [
            ("other", f"a/l/../{victim}".encode(), LINK),
            ("a/l", b"..", LINK),
            ("other/app.py", b"VICTIM = False\n", 0o100644),
        ]
    )
    tree = store.unpacked(store.put(attack))
    assert (store.unpacked(victim) / "app.py").read_bytes() == b"VICTIM = True\n"
    assert (tree / "other" / "app.py").read_bytes() == b"VICTIM = False\n"


def test_a_later_duplicate_entry_replaces_a_link_instead_of_writing_through_it(
    store: FileCodeStore,
):
    victim = store.put(zip_of({"app.py": file(b"VICTIM = True\n")}))
    attack = zip_of(
        [
            ("a/l", b"..", LINK),
            ("f", f"a/l/../{victim}/app.py".encode(), LINK),
            ("f", b"overwritten", 0o100644),
            # A directory entry, then a file of the same name, then a directory again.
            ("g/", b"", 0o40755),
            ("g/inner", b"1", 0o100644),
            ("g", b"now a file", 0o100644),
            ("h", b"a file", 0o100644),
            ("h/", b"", 0o40755),
            ("h/x", b"2", 0o100644),
        ]
    )
    tree = store.unpacked(store.put(attack))
    assert (store.unpacked(victim) / "app.py").read_bytes() == b"VICTIM = True\n"
    assert (tree / "f").read_bytes() == b"overwritten" and not (tree / "f").is_symlink()
    assert (tree / "g").read_bytes() == b"now a file"
    assert (tree / "h" / "x").read_bytes() == b"2"


def test_links_that_read_as_outside_are_not_kept(store: FileCodeStore):
    tree = store.unpacked(
        store.put(
            zip_of(
                {
                    "abs": link("/etc/passwd"),
                    "up": link("../x"),
                    "ok": link("lib/a.txt"),
                    "lib/a.txt": file(),
                }
            )
        )
    )
    assert sorted(everything_under(tree)) == ["lib", "lib/a.txt", "ok"]
    assert os.readlink(tree / "ok") == "lib/a.txt"


def test_a_name_the_file_system_cannot_hold_is_the_packages_fault(store: FileCodeStore):
    with pytest.raises(InvalidParameterValue, match="cannot be unpacked"):
        store.put(zip_of({"x" * 300: file()}))


def test_not_a_zip_is_refused(tmp_path: Path):
    with pytest.raises(InvalidParameterValue):
        FileCodeStore(tmp_path).put(b"plain text")


def test_a_layer_cannot_plant_a_link_that_a_later_layer_writes_through(
    store: FileCodeStore, tmp_path: Path
):
    outside = tmp_path / "outside"
    outside.mkdir()
    layersets = tmp_path / "data" / "layersets"
    merged_dir = layersets / ("y" * 32)  # the merged tree's depth
    # Each layer on its own is harmless: its links read as inside, nothing is under them.
    planter = store.put(
        zip_of(
            [
                ("python", up_to_root(merged_dir).encode(), LINK),
                *chain_entries(merged_dir),
                ("bin", b"/etc", LINK),
            ]
        )
    )
    writer = store.put(
        zip_of(
            {
                f"python{outside}/pwned": file(b"pwned"),
                "bin/firebox-pwned": file(b"pwned"),
                "python/mod.py": file(b"VALUE = 1\n"),
            }
        )
    )
    merged = merged_layers(store, (planter, writer), layersets)
    assert merged is not None
    assert list(outside.iterdir()) == []
    assert not Path("/etc/firebox-pwned").exists()
    assert (merged / "python" / "mod.py").read_bytes() == b"VALUE = 1\n"
    assert (merged / "bin" / "firebox-pwned").is_file()
    # The planted link is real (it does lead to / on the host), and is still a link in
    # the planter's own tree: the merge replaced it only in the merged tree.
    planted = store.unpacked(planter) / "python"
    assert planted.is_symlink() and os.path.realpath(planted) == "/"


def test_later_layers_win_and_links_are_kept_as_links(store: FileCodeStore, tmp_path: Path):
    first = store.put(
        zip_of(
            {
                "python/a.py": file(b"A = 1\n"),
                "python/shared.py": file(b"FROM = 'first'\n"),
                "bin/tool": file(b"#!/bin/sh\n", 0o100755),
                "lib/libx.so": link("libx.so.1"),
                "lib/libx.so.1": file(b"elf"),
            }
        )
    )
    second = store.put(zip_of({"python/shared.py": file(b"FROM = 'second'\n")}))
    merged = merged_layers(store, (first, second), tmp_path / "layersets")
    assert merged is not None
    assert (merged / "python" / "a.py").read_bytes() == b"A = 1\n"
    assert (merged / "python" / "shared.py").read_bytes() == b"FROM = 'second'\n"
    assert os.access(merged / "bin" / "tool", os.X_OK)
    assert os.readlink(merged / "lib" / "libx.so") == "libx.so.1"
    # Built once per list of layers.
    assert merged_layers(store, (first, second), tmp_path / "layersets") == merged
