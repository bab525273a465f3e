"""Code and layer zips built to make the server write outside a package as root: links
planted first, files written "under" them later, in one zip or across layers. Nothing may
land outside the package's own tree, while other functions keep being served."""

from __future__ import annotations

import base64
import io
import stat
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sandbox_attack import make_victim, serves_while

from conftest import (
    ROLE,
    Server,
    invoke_json,
    needs_process_sandbox,
    unique,
)

pytestmark = needs_process_sandbox

LINK = stat.S_IFLNK | 0o777
FILE = stat.S_IFREG | 0o644
# Deeper than any data dir: extra ".." at / stay at /.
DEPTH = 40
DEEP = "/".join(f"d{i}" for i in range(DEPTH))


def zip_in_order(entries: list[tuple[str, bytes, int]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate names are part of the attack
        for name, data, mode in entries:
            info = zipfile.ZipInfo(name)
            info.external_attr = mode << 16
            zf.writestr(info, data)
    return buf.getvalue()


def climbing_link(name: str) -> list[tuple[str, bytes, int]]:
    """``name`` reads as ``d0`` (inside the package), but once ``d0/…/d39/l -> ../…``
    (the package root, also inside) exists it leads to /. The link comes first."""
    return [
        (name, (DEEP + "/l/" + "/".join([".."] * DEPTH)).encode(), LINK),
        (f"{DEEP}/l", "/".join([".."] * DEPTH).encode(), LINK),
    ]


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = Server(tmp_path_factory.mktemp("writes") / "data", sandbox="process").start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def lam(srv: Server) -> Any:
    return srv.client("lambda")


@pytest.fixture(scope="module")
def victim(lam: Any) -> str:
    return make_victim(lam)


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    d = tmp_path / "outside"
    d.mkdir()
    return d


def victim_tree(srv: Server, lam: Any, victim: str) -> Path:
    sha = base64.b64decode(lam.get_function(FunctionName=victim)["Configuration"]["CodeSha256"])
    return srv.data_dir / "code" / "trees" / sha.hex()


READER = (
    "import os\n"
    "def handler(event, context):\n"
    "    return {p: open(p).read() for p in event['read']}\n"
)


def test_code_zip_entries_cannot_write_through_earlier_links(lam, srv, victim, outside):
    tree = victim_tree(srv, lam, victim)
    before = (tree / "app.py").read_bytes()
    entries = [
        *climbing_link("esc"),
        (f"esc{outside}/pwned", b"pwned", FILE),
        (f"esc{tree}/app.py", b"def handler(e, c):\n    return 'owned'\n", FILE),
        ("etc", b"/etc", LINK),
        ("etc/firebox-pwned", b"pwned", FILE),
        # Same name twice: a link first, a file second, which must replace the link.
        ("dup", f"{DEEP}/l/{'/'.join(['..'] * DEPTH)}{tree}/app.py".encode(), LINK),
        ("dup", b"mine", FILE),
        ("app.py", READER.encode(), FILE),
    ]
    name = unique("writer")

    def attack() -> Any:
        lam.create_function(
            FunctionName=name,
            Runtime="python3.11",
            Role=ROLE,
            Handler="app.handler",
            Code={"ZipFile": zip_in_order(entries)},
        )
        return invoke_json(lam, name, {"read": ["/var/task/dup", f"/var/task/esc{outside}/pwned"]})

    out, resp = serves_while(lam, victim, attack)
    assert "FunctionError" not in resp, out
    # The writes landed in the function's own package, which it sees at /var/task.
    assert out == {"/var/task/dup": "mine", f"/var/task/esc{outside}/pwned": "pwned"}
    assert list(outside.iterdir()) == []
    assert not Path("/etc/firebox-pwned").exists()
    assert (tree / "app.py").read_bytes() == before
    assert invoke_json(lam, victim)[0] == "ok"


def test_a_layer_cannot_plant_a_link_a_later_layer_writes_through(lam, srv, victim, outside):
    tree = victim_tree(srv, lam, victim)
    before = (tree / "app.py").read_bytes()
    planter = zip_in_order([*climbing_link("python"), ("bin", b"/etc", LINK)])
    writer = zip_in_order(
        [
            (f"python{outside}/pwned", b"pwned", FILE),
            (f"python{tree}/app.py", b"def handler(e, c):\n    return 'owned'\n", FILE),
            ("bin/firebox-pwned", b"pwned", FILE),
            ("python/layered.py", b"VALUE = 'from the second layer'\n", FILE),
        ]
    )
    name = unique("layered")

    def attack() -> Any:
        arns = [
            lam.publish_layer_version(LayerName=unique("layer"), Content={"ZipFile": z})[
                "LayerVersionArn"
            ]
            for z in (planter, writer)
        ]
        lam.create_function(
            FunctionName=name,
            Runtime="python3.11",
            Role=ROLE,
            Handler="app.handler",
            Layers=arns,
            Code={
                "ZipFile": zip_in_order(
                    [
                        (
                            "app.py",
                            b"import layered\ndef handler(e, c):\n    return layered.VALUE\n",
                            FILE,
                        )
                    ]  # fmt: skip
                )
            },
        )
        # The merge of the layers happens on the first cold start.
        return invoke_json(lam, name)

    out, resp = serves_while(lam, victim, attack)
    assert "FunctionError" not in resp, out
    assert out == "from the second layer"
    assert list(outside.iterdir()) == []
    assert not Path("/etc/firebox-pwned").exists()
    assert (tree / "app.py").read_bytes() == before
    assert invoke_json(lam, victim)[0] == "ok"
