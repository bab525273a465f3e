"""Shared fixtures: a real `firebox serve` process on loopback and boto3 clients for it."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

import shapes

# PostgreSQL and S3 fixtures (a module of their own: pg_url, s3_service, s3_bucket, s3_env).
from services import (  # noqa: F401
    aws_env,
    missing_service,
    moto_service,
    pg_url,
    s3_bucket,
    s3_env,
    s3_service,
)

ROLE = "arn:aws:iam::000000000000:role/lambda-role"

needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="needs root: creates namespaces and cgroups"
)


def _process_backend_usable() -> str | None:
    """None if the process (namespaces) sandbox can run here, else why not."""
    if os.geteuid() != 0:
        return "needs root: creates namespaces and cgroups"
    try:
        import firebox.sandbox.process as process
    except ImportError as exc:
        return f"process sandbox backend not importable: {exc}"
    check = getattr(process, "host_problems", None)
    if check is not None:
        # Without slirp4netns the sandbox still runs, with outbound network off.
        problems = check(network=False)
        if problems:
            return "; ".join(problems)
    return None


def _slirp_missing() -> str | None:
    import shutil

    if shutil.which("slirp4netns") is None:
        return "slirp4netns not installed: functions have no outbound network"
    return None


# For modules whose every test runs in the process sandbox: pytestmark = needs_process_sandbox
needs_process_sandbox = [
    needs_root,
    pytest.mark.skipif(
        _process_backend_usable() is not None,
        reason=f"process sandbox unusable: {_process_backend_usable()}",
    ),
]

needs_outbound_network = pytest.mark.skipif(
    _slirp_missing() is not None, reason=str(_slirp_missing())
)


def default_sandbox() -> str:
    forced = os.environ.get("FIREBOX_TEST_SANDBOX")
    if forced:
        return forced
    return "process" if _process_backend_usable() is None else "unsandboxed"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """A `firebox serve` subprocess with its own data dir and port."""

    def __init__(self, data_dir: Path, **settings: Any) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        # Function URLs have their own port; a fixed default would clash between servers.
        self.url_port = int(settings.get("url_port") or free_port())
        self.settings = settings
        self.proc: subprocess.Popen[bytes] | None = None
        self.access_key = "AKIDFIREBOXTEST00001"
        self.secret_key = "firebox-test-secret-key-0000000000000000"
        self.log_path = data_dir.parent / f"{data_dir.name}-server.log"

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FIREBOX_")}
        env.update(
            FIREBOX_DATA_DIR=str(self.data_dir),
            FIREBOX_PORT=str(self.port),
            FIREBOX_ACCESS_KEY_ID=self.access_key,
            FIREBOX_SECRET_ACCESS_KEY=self.secret_key,
            FIREBOX_LOG_LEVEL="warning",
            FIREBOX_URL_PORT=str(self.url_port),
        )
        sandbox = self.settings.get("sandbox", default_sandbox())
        env["FIREBOX_SANDBOX"] = sandbox
        if sandbox == "unsandboxed":
            env["FIREBOX_ALLOW_UNSANDBOXED"] = "1"
        for key, value in self.settings.items():
            if key == "sandbox":
                continue
            if isinstance(value, tuple | list):
                value = ",".join(str(v) for v in value)
            env["FIREBOX_" + key.upper()] = str(value)
        return env

    def start(self, timeout_s: float = 30.0) -> Server:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "firebox", "serve"],
                env=self.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout_s
        roles = str(self.settings.get("role", "all"))
        serves_api = "api" in roles or "all" in roles
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()[-3000:]}")
            if not serves_api:
                # No API to ask: the server says when it is up.
                if b"Firebox ready: roles" in self.log_path.read_bytes():
                    return self
                time.sleep(0.05)
                continue
            try:
                with urllib.request.urlopen(self.endpoint + "/_firebox/health", timeout=1):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("server did not start in time")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill9(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.proc = None

    def restart(self) -> Server:
        self.stop()
        return self.start()

    def signed_get(self, path: str) -> Any:
        """GET one of Firebox's own signed endpoints (/_firebox/...); its JSON body."""
        request = AWSRequest(method="GET", url=self.endpoint + path)
        creds = Credentials(self.access_key, self.secret_key)
        SigV4Auth(creds, "lambda", "us-east-1").add_auth(request)
        req = urllib.request.Request(self.endpoint + path, headers=dict(request.headers))
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())

    def client(self, service: str = "lambda", **kwargs: Any) -> Any:
        """A boto3 client for this server; every response it gets is checked against
        botocore's model (tests/shapes.py)."""
        client = boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=kwargs.pop("access_key", self.access_key),
            aws_secret_access_key=kwargs.pop("secret_key", self.secret_key),
            config=Config(
                retries={"max_attempts": 0}, read_timeout=120, connect_timeout=5, **kwargs
            ),
        )
        return shapes.install(client)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.stash[_CALL_FAILED] = report.failed
    return report


_CALL_FAILED = pytest.StashKey[bool]()


@pytest.fixture(autouse=True)
def _responses_match_the_model(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test whose clients received a response botocore's model does not allow, even
    if the test caught the AssertionError the check raised (a test that failed already
    has it in its report)."""
    shapes.take_problems()
    yield
    problems = shapes.take_problems()
    if request.node.stash.get(_CALL_FAILED, False):
        return
    assert not problems, "responses did not match botocore's model:\n" + "\n".join(problems)


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Any]:
    started: list[Server] = []

    def make(**settings: Any) -> Server:
        server = Server(tmp_path / f"data{len(started)}", **settings)
        started.append(server)
        return server.start()

    yield make
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(tmp_path_factory.mktemp("srv") / "data").start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def lam(server: Server) -> Any:
    return server.client("lambda")


def make_zip(files: dict[str, str | bytes], modes: dict[str, int] | None = None) -> bytes:
    """A zip of the given files; ``modes`` sets Unix permissions (e.g. an executable)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in files.items():
            info = zipfile.ZipInfo(name)
            info.external_attr = ((modes or {}).get(name, 0o644) | 0o100000) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, content)
    return buf.getvalue()


def python_function(
    lam: Any,
    name: str,
    code: str,
    handler: str = "app.handler",
    runtime: str = "python3.11",
    **kwargs: Any,
) -> dict[str, Any]:
    """Create a Python function whose app.py is ``code``."""
    return lam.create_function(
        FunctionName=name,
        Runtime=runtime,
        Role=ROLE,
        Handler=handler,
        Code={"ZipFile": make_zip({"app.py": code})},
        **kwargs,
    )


def invoke_json(lam: Any, name: str, event: Any = None, **kwargs: Any) -> tuple[Any, dict]:
    resp = lam.invoke(FunctionName=name, Payload=json.dumps(event or {}), **kwargs)
    body = resp["Payload"].read()
    return (json.loads(body) if body else None), resp


def unique(prefix: str = "fn") -> str:
    return f"{prefix}-{os.getpid()}-{time.monotonic_ns() % 10**9}"


def wait_for_log(server: Server, function: str, text: str, timeout_s: float = 20.0) -> str:
    """Wait until a line containing ``text`` is in ``function``'s log group; that line.

    The marker a handler prints (flush=True) when it reaches a point a test must wait for:
    the log writer flushes every 0.2 s while the handler still runs.
    """
    logs = server.client("logs")
    group = f"/aws/lambda/{function}"
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            events = logs.filter_log_events(logGroupName=group, filterPattern=f'"{text}"')
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ResourceNotFoundException":
                raise
            events = {"events": []}  # no line written yet: the group comes with the first
        for event in events["events"]:
            if text in event["message"]:
                return str(event["message"])
        if time.monotonic() > deadline:
            raise AssertionError(f"{text!r} not in {group} after {timeout_s} s")
        time.sleep(0.05)


def wait_queue_drained(server: Server, function: str, timeout_s: float = 20.0) -> None:
    """Wait until ``function`` has no asynchronous event queued or running.

    PutEvents, schedules and InvocationType=Event write their events to the durable queue
    before they answer, so an empty queue afterwards means every delivery has ended.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        stats = server.signed_get("/_firebox/queues").get(function) or {}
        if not stats.get("depth"):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{function}'s queue still holds {stats} after {timeout_s} s")
        time.sleep(0.05)
