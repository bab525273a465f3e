"""Real services for the tests: a fresh PostgreSQL database per test, and an S3-compatible
server (Ceph's radosgw, tests/rgw.py) started once per session with a fresh bucket per
test. conftest.py imports the fixtures from here.

- FIREBOX_TEST_POSTGRES: a URL of the PostgreSQL server to create databases on
  (default postgresql://postgres@127.0.0.1:5432/postgres).
- FIREBOX_TEST_RGW_DIR: the directory of a radosgw already started with tests/rgw.py
  (.ci/run starts one); without it the session starts its own and stops it at the end.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import itertools
import os
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest

import rgw

PG_SERVER = os.environ.get("FIREBOX_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
_names = itertools.count()


def missing_service(why: str) -> NoReturn:
    """A broker or database a test needs is not answering: skip, saying why; in CI, where
    .ci/run starts every one of them, fail instead, so a dead service cannot pass green."""
    if os.environ.get("CI"):
        pytest.fail(f"{why}; .ci/run should have started it")
    pytest.skip(why)


@functools.cache
def postgres_problem() -> str | None:
    """None if PostgreSQL can be used, else why not."""
    try:
        import psycopg
        import psycopg_pool  # noqa: F401
    except ImportError as exc:
        return f"psycopg / psycopg-pool not installed (pip install -e '.[test]'): {exc}"
    try:
        psycopg.connect(PG_SERVER, connect_timeout=3).close()
    except psycopg.Error as exc:
        return f"PostgreSQL not reachable at {PG_SERVER}: {exc}"
    return None


def database_url(name: str) -> str:
    """The server's URL with another database name."""
    parts = urllib.parse.urlsplit(PG_SERVER)
    return urllib.parse.urlunsplit(parts._replace(path="/" + name))


@contextlib.contextmanager
def fresh_database() -> Iterator[str]:
    """A new, empty database (its URL), dropped afterwards with whatever still uses it."""
    import psycopg

    name = f"fbt_{os.getpid()}_{next(_names)}_{time.monotonic_ns() % 10**6}"
    with psycopg.connect(PG_SERVER, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield database_url(name)
    finally:
        with psycopg.connect(PG_SERVER, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test."""
    problem = postgres_problem()
    if problem is not None:
        missing_service(problem)
    with fresh_database() as url:
        yield url


@pytest.fixture(scope="session")
def s3_service() -> Iterator[rgw.Rgw]:
    """An S3-compatible server: the one .ci/run started, or one of this session's own."""
    shared = os.environ.get("FIREBOX_TEST_RGW_DIR")
    if shared:
        found = rgw.running(Path(shared))
        if found is None:
            pytest.fail(f"FIREBOX_TEST_RGW_DIR={shared} names no running radosgw")
        yield found
        return
    own = Path(tempfile.mkdtemp(prefix="firebox-rgw-"))
    try:
        # Installs the packages where it can (root, apt-get): CI machines start bare.
        started = rgw.start(own, install_packages=True)
    except rgw.RgwError as exc:
        pytest.skip(f"no S3-compatible server for these tests: {exc}")
    try:
        yield started
    finally:
        rgw.stop(own)


def s3_client(service: rgw.Rgw) -> Any:
    import boto3

    return boto3.session.Session().client(
        "s3",
        endpoint_url=service.endpoint,
        region_name=service.region,
        aws_access_key_id=service.access_key,
        aws_secret_access_key=service.secret_key,
    )


@pytest.fixture
def s3_bucket(s3_service: rgw.Rgw) -> Iterator[str]:
    """A fresh bucket (its name), emptied and deleted afterwards."""
    client = s3_client(s3_service)
    name = f"fbt-{os.getpid()}-{next(_names)}-{time.monotonic_ns() % 10**6}"
    client.create_bucket(Bucket=name)
    try:
        yield name
    finally:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=name):
            for obj in page.get("Contents", []):
                client.delete_object(Bucket=name, Key=obj["Key"])
        client.delete_bucket(Bucket=name)


@pytest.fixture
def s3_env(s3_service: rgw.Rgw, monkeypatch: pytest.MonkeyPatch) -> rgw.Rgw:
    """The standard AWS variables pointing at the server, for code that reads them
    (boto3 in this process, and `firebox serve` processes started by the test)."""
    for key, value in s3_service.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return s3_service


# --- an AWS-compatible server (moto's server mode) for SQS, SNS, Kinesis, DynamoDB ---------


@dataclasses.dataclass(frozen=True, slots=True)
class Moto:
    endpoint: str
    region: str = "us-east-1"

    def env(self) -> dict[str, str]:
        """The standard AWS variables that point an SDK's SQS, SNS, Kinesis, DynamoDB and
        DynamoDB Streams clients at this server (any credentials do)."""
        return {
            "AWS_ENDPOINT_URL_SQS": self.endpoint,
            "AWS_ENDPOINT_URL_SNS": self.endpoint,
            "AWS_ENDPOINT_URL_KINESIS": self.endpoint,
            "AWS_ENDPOINT_URL_DYNAMODB": self.endpoint,
            "AWS_ENDPOINT_URL_DYNAMODB_STREAMS": self.endpoint,
            "AWS_ACCESS_KEY_ID": "AKIDMOTOTESTING00001",
            "AWS_SECRET_ACCESS_KEY": "moto-testing-secret",
            "AWS_DEFAULT_REGION": self.region,
        }

    def client(self, service: str) -> Any:
        import boto3

        return boto3.session.Session().client(
            service,
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id="AKIDMOTOTESTING00001",
            aws_secret_access_key="moto-testing-secret",
        )


@pytest.fixture(scope="session")
def moto_service() -> Iterator[Moto]:
    """moto's server on a free loopback port, for this session."""
    import socket
    import subprocess
    import sys
    import urllib.request

    try:
        import moto.server  # noqa: F401
    except ImportError as exc:
        missing_service(f"moto[server] not installed (pip install -e '.[test]'): {exc}")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(Path(tempfile.gettempdir()) / f"moto-{os.getpid()}-{port}.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(endpoint + "/moto-api/", timeout=1):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                log.close()
                missing_service("moto's server did not start")
            time.sleep(0.1)
    try:
        yield Moto(endpoint)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture
def aws_env(moto_service: Moto, monkeypatch: pytest.MonkeyPatch) -> Moto:
    """The standard AWS variables pointing at moto (for boto3 here, and for `firebox
    serve` processes the test starts)."""
    for key, value in moto_service.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return moto_service
