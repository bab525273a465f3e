"""The code store contract, over every backend (files in a data dir; an S3 bucket on a real
S3-compatible server, radosgw), and what the S3 backend adds: a verified local cache."""

from __future__ import annotations

import hashlib
import io
import itertools
import os
import stat
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import rgw
from firebox.errors import InvalidParameterValue
from firebox.store.code.base import CodeStore
from firebox.store.code.files import FileCodeStore
from services import s3_client

# A store on a node of its own: for files, another store on the same data dir (one
# machine); for S3, one with an empty cache of its own sharing the bucket.
Opener = Callable[[], CodeStore]


def package(files: dict[str, bytes], modes: dict[str, int] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            info = zipfile.ZipInfo(name)
            info.external_attr = ((modes or {}).get(name, 0o644) | 0o100000) << 16
            zf.writestr(info, data)
    return buf.getvalue()


@pytest.fixture(params=["files", "s3"])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    if request.param == "files":
        yield lambda: FileCodeStore(tmp_path / "code")
        return
    service: rgw.Rgw = request.getfixturevalue("s3_service")
    bucket: str = request.getfixturevalue("s3_bucket")
    from firebox.store.code.s3 import S3CodeStore

    nodes = itertools.count()
    yield lambda: S3CodeStore(
        f"s3://{bucket}/code/v1",
        FileCodeStore(tmp_path / f"node{next(nodes)}" / "code"),
        client=s3_client(service),
    )


def test_put_get_exists_unpacked_delete(opener: Opener) -> None:
    store = opener()
    data = package({"app.py": b"def handler(e, c):\n    return 1\n", "lib/x.txt": b"x"})
    sha = store.put(data)
    assert sha == hashlib.sha256(data).hexdigest()
    assert store.put(data) == sha  # the same bytes are one package
    assert store.get(sha) == data
    assert store.exists(sha)
    tree = store.unpacked(sha)
    assert (tree / "app.py").read_bytes().startswith(b"def handler")
    assert (tree / "lib" / "x.txt").read_bytes() == b"x"
    store.delete(sha)
    assert not store.exists(sha)
    with pytest.raises(KeyError):
        store.get(sha)


def test_a_package_put_on_one_node_runs_on_another(opener: Opener) -> None:
    front, worker = opener(), opener()
    files = {"bootstrap": b"#!/bin/sh\necho hi\n", "app.py": b"x = 1\n"}
    data = package(files, {"bootstrap": 0o755})
    sha = front.put(data)
    assert worker.exists(sha)
    tree = worker.unpacked(sha)
    assert (tree / "app.py").read_bytes() == b"x = 1\n"
    assert stat.S_IMODE(os.stat(tree / "bootstrap").st_mode) & 0o111  # still executable
    assert worker.get(sha) == data
    assert worker.unpacked(sha) == tree  # unpacked once


def test_what_is_not_a_zip_is_refused_and_not_stored(opener: Opener) -> None:
    store = opener()
    junk = b"not a zip at all"
    with pytest.raises(InvalidParameterValue, match="Could not unzip"):
        store.put(junk)
    assert not store.exists(hashlib.sha256(junk).hexdigest())


def test_absent_packages(opener: Opener) -> None:
    store = opener()
    missing = hashlib.sha256(b"never stored").hexdigest()
    assert not store.exists(missing)
    with pytest.raises(KeyError):
        store.get(missing)
    with pytest.raises(KeyError):
        store.unpacked(missing)


# --- what the S3 backend adds -------------------------------------------------------------


@pytest.fixture
def bucket_store(s3_service: rgw.Rgw, s3_bucket: str, tmp_path: Path) -> Callable[[str], CodeStore]:
    from firebox.store.code.s3 import S3CodeStore

    return lambda node: S3CodeStore(
        f"s3://{s3_bucket}/pkgs",
        FileCodeStore(tmp_path / node / "code"),
        client=s3_client(s3_service),
    )


def test_s3_objects_are_content_addressed_under_the_prefix(
    bucket_store: Callable[[str], CodeStore], s3_service: rgw.Rgw, s3_bucket: str
) -> None:
    store = bucket_store("a")
    data = package({"a.py": b"a"})
    sha = store.put(data)
    store.put(data)
    listed = s3_client(s3_service).list_objects_v2(Bucket=s3_bucket)["Contents"]
    assert [o["Key"] for o in listed] == [f"pkgs/{sha}.zip"]
    body = s3_client(s3_service).get_object(Bucket=s3_bucket, Key=f"pkgs/{sha}.zip")["Body"]
    assert body.read() == data


def test_a_corrupt_object_never_enters_the_cache(
    bucket_store: Callable[[str], CodeStore], s3_service: rgw.Rgw, s3_bucket: str, tmp_path: Path
) -> None:
    from firebox.store.code.s3 import CorruptPackage

    sha = bucket_store("front").put(package({"a.py": b"good"}))
    s3_client(s3_service).put_object(
        Bucket=s3_bucket, Key=f"pkgs/{sha}.zip", Body=package({"a.py": b"evil"})
    )
    worker = bucket_store("worker")
    with pytest.raises(CorruptPackage, match=sha):
        worker.unpacked(sha)
    assert not list((tmp_path / "worker" / "code" / "zips").iterdir())
    assert not list((tmp_path / "worker" / "code" / "trees").iterdir())


def test_a_cached_package_needs_no_bucket(
    bucket_store: Callable[[str], CodeStore], s3_service: rgw.Rgw, s3_bucket: str
) -> None:
    worker = bucket_store("worker")
    sha = bucket_store("front").put(package({"a.py": b"a"}))
    tree = worker.unpacked(sha)
    s3_client(s3_service).delete_object(Bucket=s3_bucket, Key=f"pkgs/{sha}.zip")
    assert worker.unpacked(sha) == tree
    assert worker.get(sha) == bucket_store("front").get(sha)


def test_a_missing_bucket_is_refused_at_start(s3_service: rgw.Rgw, tmp_path: Path) -> None:
    from firebox.store import StoreUnavailable
    from firebox.store.code.s3 import S3CodeStore

    with pytest.raises(StoreUnavailable, match="no-such-bucket-here"):
        S3CodeStore(
            "s3://no-such-bucket-here", FileCodeStore(tmp_path / "c"), client=s3_client(s3_service)
        )


def test_s3_urls() -> None:
    from firebox.store.code.s3 import parse_s3_url

    assert parse_s3_url("s3://b") == ("b", "")
    assert parse_s3_url("s3://b/") == ("b", "")
    assert parse_s3_url("s3://b/p/q/") == ("b", "p/q/")
    with pytest.raises(ValueError):
        parse_s3_url("https://b/p")
    with pytest.raises(ValueError):
        parse_s3_url("s3:///p")
