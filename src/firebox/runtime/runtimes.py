"""Which Lambda runtimes this host can run, and with what.

``python3.N`` maps to a Python 3.N interpreter found on the host; ``nodejs18.x`` …
``nodejs22.x`` map to the host's Node; ``javaN`` to a JDK N (``java.py``); ``ruby3.2`` and
``ruby3.3`` to the host's Ruby (``ruby.py``); ``provided*`` run an executable ``bootstrap``.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from firebox.runtime.java import JAVA_RUNTIMES, MIN_MAJOR, find_jdks, javac_for
from firebox.runtime.ruby import RUBY_RUNTIMES, find_ruby

# Every runtime identifier botocore's model knows, so that a known-but-unavailable runtime
# gets a different error from a made-up one.
KNOWN_RUNTIMES = frozenset(
    [f"python3.{n}" for n in range(6, 16)]
    + ["python2.7", "nodejs", "nodejs4.3", "nodejs6.10", "nodejs8.10", "nodejs10.x"]
    + [f"nodejs{n}.x" for n in (12, 14, 16, 18, 20, 22, 24)]
    + ["java8", "java8.al2", "java11", "java17", "java21", "java25"]
    + ["dotnet6", "dotnet8", "dotnet10", "dotnetcore1.0", "dotnetcore2.0", "dotnetcore2.1"]
    + ["dotnetcore3.1", "go1.x", "ruby2.5", "ruby2.7", "ruby3.2", "ruby3.3", "ruby3.4"]
    + ["provided", "provided.al2", "provided.al2023", "nodejs4.3-edge"]
)

NODE_RUNTIMES = ("nodejs18.x", "nodejs20.x", "nodejs22.x")
PROVIDED_RUNTIMES = ("provided", "provided.al2", "provided.al2023")


@dataclass(frozen=True, slots=True)
class RuntimeInfo:
    name: str
    kind: str  # "python" | "node" | "java" | "ruby" | "provided"
    # Interpreter binary on the host, and the installation prefix it lives in (mounted at
    # /var/lang inside a sandbox, as on Lambda: a Python's prefix, a JDK's home).
    executable: Path | None = None
    prefix: Path | None = None
    version: str = ""


def _python_candidates() -> list[str]:
    paths = set(glob.glob("/usr/bin/python3.[0-9]*") + glob.glob("/usr/local/bin/python3.[0-9]*"))
    pyenv = os.path.expanduser("~/.pyenv/versions")
    paths.update(glob.glob(os.path.join(pyenv, "3.*", "bin", "python3.[0-9]*")))
    paths.add(sys.executable)
    return sorted(p for p in paths if os.access(p, os.X_OK) and not p.endswith("-config"))


def _probe_python(path: str) -> tuple[str, str] | None:
    """(\"3.N\", sys.base_prefix) of an interpreter, or None if it does not run."""
    try:
        out = subprocess.run(
            [
                path,
                "-I",
                "-S",
                "-c",
                "import sys;print('%d.%d' % sys.version_info[:2]);print(sys.base_prefix)",
            ],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.split("\n")
    except (OSError, subprocess.SubprocessError):
        return None
    return out[0].strip(), out[1].strip()


@cache
def available_runtimes() -> dict[str, RuntimeInfo]:
    """Probe the host once: the runtimes Firebox can run here."""
    found: dict[str, RuntimeInfo] = {}
    # Prefer the server's own interpreter for its version, then system ones.
    for path in [sys.executable, *_python_candidates()]:
        probed = _probe_python(path)
        if probed is None:
            continue
        version, prefix = probed
        name = f"python{version}"
        if version.startswith("3.") and name not in found and int(version.split(".")[1]) >= 8:
            exe = Path(os.path.realpath(path))
            found[name] = RuntimeInfo(name, "python", exe, Path(prefix), version)
    node = shutil.which("node") or ("/usr/bin/node" if os.path.exists("/usr/bin/node") else None)
    if node:
        real = Path(os.path.realpath(node))
        for name in NODE_RUNTIMES:
            found[name] = RuntimeInfo(name, "node", real, real.parent.parent)
    jdks = find_jdks()
    for name, major in JAVA_RUNTIMES.items():
        jdk = jdks.get(major)
        # The client is compiled from source at first use: some JDK must bring javac.
        if jdk is not None and javac_for(jdk, jdks) is not None:
            found[name] = RuntimeInfo(name, "java", jdk.java, jdk.home, jdk.version)
    ruby = find_ruby()
    if ruby is not None:
        for name in RUBY_RUNTIMES:
            found[name] = RuntimeInfo(name, "ruby", ruby[0], None, ruby[1])
    for name in PROVIDED_RUNTIMES:
        found[name] = RuntimeInfo(name, "provided")
    return found


def missing_hint(name: str) -> str:
    """What this host would need to run a runtime it lacks (empty if nothing would do)."""
    if name in JAVA_RUNTIMES:
        major = JAVA_RUNTIMES[name]
        return (
            f"it needs a JDK {major} (with javac, under /usr/lib/jvm or JAVA_HOME) on the host: "
            f"install e.g. openjdk-{major}-jdk-headless or Eclipse Temurin {major}"
        )
    if name.startswith("java"):
        return f"Firebox's Java runtimes need Java {MIN_MAJOR} or newer: use java17 or later"
    if name in RUBY_RUNTIMES:
        return "it needs Ruby on the host: apt-get install ruby"
    if name.startswith("ruby"):
        return f"Firebox runs {' and '.join(RUBY_RUNTIMES)} on the host's Ruby"
    if name in NODE_RUNTIMES:
        return "it needs Node.js on the host: apt-get install nodejs"
    if name.startswith("python3."):
        return f"it needs a Python {name.removeprefix('python')} interpreter on the host"
    return ""


def client_dir(kind: str) -> Path:
    """Where our runtime client for a kind lives (mounted at /var/runtime in a sandbox;
    Java's is built from here into the data dir first, see java.build_client)."""
    return Path(__file__).parent / "clients" / kind
