"""The Java runtimes: the host's JDKs, our runtime client built from source, the JVM's flags.

``java17`` / ``java21`` / ``java25`` run on a JDK of that major version found on the host
(``/usr/lib/jvm/*``, ``$JAVA_HOME``, the ``java`` on PATH). The runtime client ships as Java
source (``clients/java``): it is compiled with the host's ``javac`` at first use into a jar in
the data dir, next to a class-data-sharing archive dumped from a training run of it.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

# Lambda's Java runtimes Firebox can run, by the JDK major version each needs. The client
# is compiled for 17, the oldest of them.
JAVA_RUNTIMES = {"java17": 17, "java21": 21, "java25": 25}
MIN_MAJOR = 17
MAIN_CLASS = "firebox.lambda.Main"
JAR_NAME = "firebox-runtime.jar"
CDS_NAME = "firebox.jsa"
SOURCE_DIR = Path(__file__).parent / "clients" / "java"

# A pooled JVM is started before its function's environment is known and gets it written
# over a reserved block later (NativeEnv.java): this many variable slots, this much text.
ENV_SLOTS = 256
ENV_SPACE_BYTES = 48 * 1024
# Top-level entries of a function's code that a pooled JVM's /var/task can take (each is
# one bind mount; see zygote.mount_function).
MAX_TASK_ENTRIES = 64
# Variables the JVM reads only when it starts: a function that sets one gets a fresh JVM.
STARTUP_VARIABLES = ("JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS", "JDK_JAVA_OPTIONS", "CLASSPATH")


@dataclass(frozen=True, slots=True)
class Jdk:
    home: Path
    major: int
    version: str

    @property
    def java(self) -> Path:
        return self.home / "bin" / "java"

    @property
    def javac(self) -> Path | None:
        path = self.home / "bin" / "javac"
        return path if os.access(path, os.X_OK) else None


def _release(home: Path) -> tuple[int, str] | None:
    """(major, version) from a JDK's ``release`` file."""
    try:
        text = (home / "release").read_text()
    except OSError:
        return None
    m = re.search(r'^JAVA_VERSION="([^"]+)"', text, re.M)
    if m is None:
        return None
    version = m.group(1)
    parts = version.split(".")
    major = (
        int(parts[1]) if parts[0] == "1" and len(parts) > 1 else int(re.sub(r"\D.*", "", parts[0]))
    )
    return major, version


def find_jdks() -> dict[int, Jdk]:
    """The host's JDKs by major version (the first found of each wins)."""
    candidates: list[Path] = []
    if os.environ.get("JAVA_HOME"):
        candidates.append(Path(os.environ["JAVA_HOME"]))
    java = shutil.which("java")
    if java:
        candidates.append(Path(os.path.realpath(java)).parent.parent)
    jvm = Path("/usr/lib/jvm")
    if jvm.is_dir():
        candidates.extend(sorted(jvm.iterdir()))
    found: dict[int, Jdk] = {}
    seen: set[Path] = set()
    for home in candidates:
        real = Path(os.path.realpath(home))
        if real in seen or not os.access(real / "bin" / "java", os.X_OK):
            continue
        seen.add(real)
        release = _release(real)
        if release is not None and release[0] not in found:
            found[release[0]] = Jdk(real, release[0], release[1])
    return found


def javac_for(jdk: Jdk, jdks: dict[int, Jdk]) -> Path | None:
    """A javac that can compile the client for ``jdk``: its own, else any of 17 or newer."""
    if jdk.javac is not None:
        return jdk.javac
    for other in sorted(jdks.values(), key=lambda j: j.major):
        if other.major >= MIN_MAJOR and other.javac is not None:
            return other.javac
    return None


class BuildError(RuntimeError):
    """The Java runtime client could not be compiled on this host."""


def _sources() -> list[Path]:
    return sorted(SOURCE_DIR.rglob("*.java"))


def client_key(jdk: Jdk) -> str:
    digest = hashlib.sha256()
    for path in _sources():
        digest.update(path.relative_to(SOURCE_DIR).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
    digest.update(f"{jdk.home}\0{jdk.version}".encode())
    return digest.hexdigest()[:16]


def build_client(jdk: Jdk, javac: Path, cache_root: Path) -> Path:
    """The directory holding the compiled client (``firebox-runtime.jar``) for ``jdk``.

    Compiled once per source version and JDK; concurrent builders race to a rename, and the
    loser's copy is dropped. Raises BuildError if javac fails.
    """
    target = cache_root / f"java{jdk.major}-{client_key(jdk)}"
    if (target / JAR_NAME).is_file():
        return target
    cache_root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=cache_root, prefix=".build-"))
    try:
        classes = tmp / "classes"
        # -XDstringConcat=inline: string concatenation as StringBuilder code, not
        # invokedynamic, whose first bootstrap costs tens of milliseconds of a cold start.
        cmd = [str(javac), "--release", str(MIN_MAJOR), "-XDstringConcat=inline", "-nowarn"]
        cmd += ["-encoding", "UTF-8", "-d", str(classes), *map(str, _sources())]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        if out.returncode != 0:
            raise BuildError(f"javac failed: {(out.stderr or out.stdout).strip()[-2000:]}")
        with zipfile.ZipFile(tmp / JAR_NAME, "w", zipfile.ZIP_DEFLATED) as jar:
            jar.writestr(
                "META-INF/MANIFEST.MF", f"Manifest-Version: 1.0\nMain-Class: {MAIN_CLASS}\n"
            )
            for path in sorted(classes.rglob("*.class")):
                jar.write(path, path.relative_to(classes).as_posix())
        shutil.rmtree(classes)
        os.chmod(tmp / JAR_NAME, 0o644)
        os.chmod(tmp, 0o755)
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / JAR_NAME).is_file():
                raise
    except (OSError, subprocess.SubprocessError) as exc:
        raise BuildError(f"cannot build the Java runtime client: {exc}") from exc
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def jvm_flags(memory_mb: int) -> list[str]:
    """The JVM options AWS's Java runtime starts with, sized from MemorySize: heap 85 %,
    metaspace 10 %, code cache 5 %, the serial collector, C1 only (fast start)."""
    kib = memory_mb * 1024
    return [
        f"-XX:MaxHeapSize={kib * 85 // 100}k",
        f"-XX:MaxMetaspaceSize={kib * 10 // 100}k",
        f"-XX:ReservedCodeCacheSize={kib * 5 // 100}k",
        "-XX:+UseSerialGC",
        "-XX:+TieredCompilation",
        "-XX:TieredStopAtLevel=1",
        # No hsperfdata file in /tmp (a pooled JVM starts before its /tmp exists).
        "-XX:-UsePerfData",
        "-Djava.net.preferIPv4Stack=true",
        "-Dfile.encoding=UTF-8",
    ]


def launch_argv(
    java: str, runtime_dir: str, memory_mb: int, archive: bool, config_fd: int | None = None
) -> list[str]:
    """The command line of the runtime; ``config_fd`` when it starts before its function."""
    argv = [java, *jvm_flags(memory_mb), "-Xshare:auto"]
    if archive:
        argv.append(f"-XX:SharedArchiveFile={runtime_dir}/{CDS_NAME}")
    if config_fd is not None:
        argv.append(f"-Dfirebox.configFd={config_fd}")
    return [*argv, "-cp", f"{runtime_dir}/{JAR_NAME}", MAIN_CLASS]


def training_argv(java: str, runtime_dir: str, archive_out: str) -> list[str]:
    """A run of the client's warm-up that dumps the class-data-sharing archive at exit."""
    return [
        java,
        *jvm_flags(512),
        f"-XX:ArchiveClassesAtExit={archive_out}",
        "-Xlog:cds=off",
        "-Xlog:cds+dynamic=off",
        "-cp",
        f"{runtime_dir}/{JAR_NAME}",
        MAIN_CLASS,
        "--train",
    ]


def prestart_obstacle(env: dict[str, str], code_dir: Path) -> str | None:
    """Why this function cannot use a JVM started before it was known (None if it can)."""
    for name in STARTUP_VARIABLES:
        if name in env:
            return f"{name} is read when the JVM starts"
    if len(env) > ENV_SLOTS:
        return "too many environment variables"
    if sum(len(f"{k}={v}".encode()) + 1 for k, v in env.items()) > ENV_SPACE_BYTES:
        return "environment too large"
    try:
        if len(os.listdir(code_dir)) > MAX_TASK_ENTRIES:
            return "too many top-level entries in the code"
    except OSError:
        return "code unreadable"
    return None
