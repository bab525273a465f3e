"""A throw-away S3-compatible server for the tests: Ceph's radosgw on loopback.

One monitor, one OSD keeping objects in memory (memstore) and one radosgw, everything
under one directory: configuration, keyrings, data, pid files, sockets and logs. It needs
Debian's ``ceph-mon ceph-osd radosgw ceph-common`` packages (``--install`` fetches them
with apt-get when they are missing) and starts in about a second and a half.

Stdlib only and independent of Firebox, so CI can start it before anything is installed::

    python3 tests/rgw.py start --dir /tmp/rgw --install   # prints export lines
    python3 tests/rgw.py stop --dir /tmp/rgw

``start`` is idempotent: with a server already answering in that directory it only prints
its settings again.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

PACKAGES = ("ceph-mon", "ceph-osd", "radosgw", "ceph-common")
BINARIES = (
    "ceph-mon",
    "ceph-osd",
    "radosgw",
    "ceph",
    "ceph-authtool",
    "monmaptool",
    "radosgw-admin",
)
DAEMONS = ("mon.a", "osd.0", "client.rgw.fb")
STATE = "state.json"


class RgwError(RuntimeError):
    """The server could not be installed or started; the message says why."""


@dataclass(frozen=True, slots=True)
class Rgw:
    directory: str
    endpoint: str
    access_key: str
    secret_key: str
    region: str = "us-east-1"

    def env(self) -> dict[str, str]:
        """The standard AWS variables that point an SDK at this server."""
        return {
            "AWS_ENDPOINT_URL_S3": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
        }


def missing_binaries() -> list[str]:
    return [b for b in BINARIES if shutil.which(b) is None]


def install() -> None:
    """Install Debian's Ceph packages (root, apt-get); RgwError when that cannot be done."""
    if not missing_binaries():
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise RgwError(
            f"{', '.join(missing_binaries())} not installed, and installing needs root and "
            f"apt-get: apt-get install {' '.join(PACKAGES)}"
        )
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    # Wait for another apt run (a parallel CI step, unattended upgrades) instead of failing.
    lock = ["-o", "DPkg::Lock::Timeout=300"]
    for cmd in (
        ["apt-get", *lock, "update", "-qq"],
        ["apt-get", *lock, "install", "-y", "-qq", "--no-install-recommends", *PACKAGES],
    ):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise RgwError(f"{' '.join(cmd)} failed: {done.stderr.strip()[-2000:]}")
    if missing_binaries():
        raise RgwError(f"still missing after install: {', '.join(missing_binaries())}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _conf(d: Path, fsid: str, mon_v2: int, mon_v1: int, rgw_port: int) -> str:
    return f"""[global]
fsid = {fsid}
mon host = [v2:127.0.0.1:{mon_v2},v1:127.0.0.1:{mon_v1}]
public addr = 127.0.0.1
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
keyring = {d}/keyring
run dir = {d}/run
pid file = {d}/run/$name.pid
admin socket = {d}/run/$name.asok
log file = {d}/log/$name.log
log to stderr = false
err to stderr = true
osd pool default size = 1
osd pool default min size = 1
mon allow pool size one = true
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon warn on pool no redundancy = false

[mon]
mon data = {d}/mon/$cluster-$id
# radosgw creates its pools one by one on first start; the default 1 s batching of
# monitor proposals would make that take seconds.
paxos propose interval = 0.01
paxos min wait = 0.001
mon data avail warn = 1
mon data avail crit = 0

[osd]
osd data = {d}/osd/$cluster-$id
keyring = {d}/osd/$cluster-$id/keyring
osd objectstore = memstore
memstore device bytes = 1073741824

[client.rgw.fb]
rgw frontends = beast endpoint=127.0.0.1:{rgw_port}
rgw data = {d}/rgw
# memstore gives memory back only when garbage collection removes deleted objects.
rgw gc obj min wait = 10
rgw gc processor period = 10
rgw enable usage log = false
"""


def _run(d: Path, *cmd: str, input: str | None = None, timeout: float = 30) -> str:
    try:
        done = subprocess.run(
            list(cmd), input=input, capture_output=True, text=True, timeout=timeout, cwd=d
        )
    except subprocess.TimeoutExpired as exc:
        raise RgwError(f"{' '.join(cmd)} timed out after {timeout} s") from exc
    if done.returncode != 0:
        raise RgwError(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return done.stdout


def _wait(what: str, check: object, timeout_s: float, d: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.02)
    logs = "".join(
        f"\n--- {p.name}\n{p.read_text(errors='replace')[-1500:]}"
        for p in sorted((d / "log").glob("*.log"))
    )
    raise RgwError(f"{what} not ready after {timeout_s} s{logs}")


def _answers(endpoint: str) -> bool:
    try:
        with urllib.request.urlopen(endpoint + "/", timeout=1) as resp:
            return b"ListAllMyBucketsResult" in resp.read()
    except urllib.error.HTTPError as exc:
        return b"ListAllMyBucketsResult" in exc.read()
    except OSError:
        return False


def running(directory: Path) -> Rgw | None:
    """The server started in ``directory``, if it is still answering."""
    try:
        rgw = Rgw(**json.loads((directory / STATE).read_text()))
    except (OSError, ValueError, TypeError):
        return None
    return rgw if _answers(rgw.endpoint) else None


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    # Two starters on one directory (CI and a test session): the second waits, then reuses.
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def start(directory: Path, *, install_packages: bool = False, timeout_s: float = 60.0) -> Rgw:
    """Start (or find running) a radosgw whose state lives in ``directory``."""
    directory = directory.absolute()
    with _locked(directory):
        found = running(directory)
        if found is not None:
            return found
        if install_packages:
            install()
        elif missing_binaries():
            raise RgwError(
                f"{', '.join(missing_binaries())} not installed (apt-get install "
                f"{' '.join(PACKAGES)}, or run tests/rgw.py start --install)"
            )
        _stop_daemons(directory)
        _start_cluster(directory, timeout_s)
        rgw = running(directory)
        assert rgw is not None
        return rgw


def _start_cluster(d: Path, timeout_s: float) -> None:
    for sub in ("mon", "osd", "run", "log", "rgw"):
        shutil.rmtree(d / sub, ignore_errors=True)
        (d / sub).mkdir(parents=True)
    (d / STATE).unlink(missing_ok=True)
    fsid = str(uuid.uuid4())
    mon_v2, mon_v1, rgw_port = _free_port(), _free_port(), _free_port()
    conf = str(d / "ceph.conf")
    (d / "ceph.conf").write_text(_conf(d, fsid, mon_v2, mon_v1, rgw_port))
    c = ("-c", conf)

    # One keyring holds every key; the monitor imports them all at mkfs.
    keyring = str(d / "keyring")
    _run(d, "ceph-authtool", "--create-keyring", keyring, "--gen-key", "-n", "mon.",
         "--cap", "mon", "allow *")  # fmt: skip
    _run(d, "ceph-authtool", keyring, "--gen-key", "-n", "client.admin", "--cap", "mon",
         "allow *", "--cap", "osd", "allow *", "--cap", "mgr", "allow *")  # fmt: skip
    _run(d, "ceph-authtool", keyring, "--gen-key", "-n", "client.rgw.fb", "--cap", "mon",
         "allow rw", "--cap", "osd", "allow rwx")  # fmt: skip
    monmap = str(d / "monmap")
    _run(d, "monmaptool", "--create", "--fsid", fsid, "--addv", "a",
         f"[v2:127.0.0.1:{mon_v2},v1:127.0.0.1:{mon_v1}]", monmap)  # fmt: skip
    _run(d, "ceph-mon", *c, "--mkfs", "-i", "a", "--monmap", monmap, "--keyring", keyring)
    _run(d, "ceph-mon", *c, "-i", "a")

    osd_uuid = str(uuid.uuid4())
    secret = _run(d, "ceph-authtool", "--gen-print-key").strip()
    # `ceph osd new` waits for the monitor to form its quorum of one.
    osd_id = _run(
        d, "ceph", *c, "--connect-timeout", str(int(timeout_s)), "osd", "new", osd_uuid, "-i",
        "-", input=json.dumps({"cephx_secret": secret}), timeout=timeout_s,
    ).strip()  # fmt: skip
    if osd_id != "0":
        raise RgwError(f"expected OSD id 0 in a fresh cluster, got {osd_id!r}")
    osd_dir = d / "osd" / "ceph-0"
    osd_dir.mkdir(parents=True)
    (osd_dir / "keyring").write_text(f"[osd.0]\n\tkey = {secret}\n")
    _run(d, "ceph-osd", *c, "-i", "0", "--mkfs", "--osd-uuid", osd_uuid)
    _run(d, "ceph-osd", *c, "-i", "0")

    def osd_up() -> bool:
        out = _run(d, "ceph", *c, "osd", "dump", "--format", "json")
        return any(o.get("up") == 1 for o in json.loads(out).get("osds", []))

    _wait("the OSD", osd_up, timeout_s, d)

    endpoint = f"http://127.0.0.1:{rgw_port}"
    _run(d, "radosgw", *c, "-n", "client.rgw.fb")
    _wait(f"radosgw at {endpoint}", lambda: _answers(endpoint), timeout_s, d)

    access_key = "FBRGW" + secrets.token_hex(8).upper()
    secret_key = secrets.token_urlsafe(30)
    _run(d, "radosgw-admin", *c, "-n", "client.admin", "user", "create", "--uid=firebox",
         "--display-name=firebox tests", f"--access-key={access_key}",
         f"--secret-key={secret_key}")  # fmt: skip
    rgw = Rgw(str(d), endpoint, access_key, secret_key)
    tmp = d / (STATE + ".tmp")
    tmp.write_text(json.dumps(asdict(rgw)))
    os.replace(tmp, d / STATE)


def _pids(d: Path) -> list[int]:
    pids = []
    for name in DAEMONS:
        with contextlib.suppress(OSError, ValueError):
            pids.append(int((d / "run" / f"{name}.pid").read_text().strip()))
    return pids


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie of ours still answers kill(0); it is gone for every purpose here.
    with contextlib.suppress(OSError):
        if (Path(f"/proc/{pid}/stat").read_text().split(") ")[-1]).startswith("Z"):
            return False
    return True


def _is_ceph_daemon(pid: int) -> bool:
    # A stale pid file must never get an unrelated process (a reused pid) killed.
    try:
        exe = os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return False
    return os.path.basename(exe) in ("ceph-mon", "ceph-osd", "radosgw")


def _stop_daemons(d: Path, timeout_s: float = 5.0) -> None:
    # KILL at once: the data is throw-away, and radosgw alone takes ~10 s to exit on TERM.
    pids = [p for p in _pids(d) if _is_ceph_daemon(p)]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.02)


def stop(directory: Path, *, remove: bool = True) -> None:
    """Stop the daemons started in ``directory`` and (by default) delete it."""
    directory = directory.absolute()
    with _locked(directory):
        _stop_daemons(directory)
        (directory / STATE).unlink(missing_ok=True)
    if remove:
        shutil.rmtree(directory, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["start", "stop"])
    parser.add_argument("--dir", type=Path, default=Path("/tmp/firebox-rgw"))
    parser.add_argument("--install", action="store_true", help="apt-get the packages if absent")
    parser.add_argument("--json", action="store_true", help="print JSON, not export lines")
    args = parser.parse_args(argv)
    try:
        if args.command == "stop":
            stop(args.dir)
            return 0
        began = time.monotonic()
        rgw = start(args.dir, install_packages=args.install)
        took = time.monotonic() - began
    except RgwError as exc:
        print(f"rgw: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(asdict(rgw)))
    else:
        for key, value in rgw.env().items():
            print(f"export {key}={value}")
        print(f"export FIREBOX_TEST_RGW_DIR={rgw.directory}")
    print(f"rgw: {rgw.endpoint} ready in {took:.2f} s (state in {rgw.directory})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
