"""Compiling test functions with the host's javac, as a user compiles theirs.

Handlers compile against the AWS interface classes Firebox ships as source (the same
package and class names as aws-lambda-java-core); the artifact a test deploys carries only
its own classes and its lib/ jars, never those interfaces.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import tempfile
import zipfile
from functools import cache
from pathlib import Path

from firebox.runtime.java import SOURCE_DIR


def javac() -> str | None:
    return shutil.which("javac")


@cache
def _api_classes() -> Path:
    """aws-lambda-java-core's interfaces (Firebox's copies), compiled once per test run."""
    out = Path(tempfile.mkdtemp(prefix="firebox-java-api-"))
    sources = sorted(str(p) for p in (SOURCE_DIR / "com").rglob("*.java"))
    _run_javac(sources, [], out)
    return out


def _run_javac(sources: list[str], classpath: list[Path], out: Path) -> None:
    javac_path = javac()
    assert javac_path is not None, "javac is not installed"
    cmd = [javac_path, "--release", "17", "-nowarn", "-encoding", "UTF-8", "-d", str(out)]
    if classpath:
        cmd += ["-cp", ":".join(str(p) for p in classpath)]
    result = subprocess.run([*cmd, *sources], capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        raise AssertionError(f"javac failed:\n{result.stderr}")


def compile_java(sources: dict[str, str], jars: list[bytes] | None = None) -> dict[str, bytes]:
    """Class files (path -> bytes) of ``sources`` (path under src/ -> Java text), compiled
    against the Lambda interfaces and the given jars."""
    with tempfile.TemporaryDirectory(prefix="firebox-javac-") as tmp:
        root = Path(tmp)
        paths = []
        for rel, text in sources.items():
            path = root / "src" / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            paths.append(str(path))
        classpath = [_api_classes()]
        for i, jar in enumerate(jars or []):
            jar_path = root / f"dep{i}.jar"
            jar_path.write_bytes(jar)
            classpath.append(jar_path)
        out = root / "classes"
        _run_javac(paths, classpath, out)
        return {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*.class")}


def jar_of(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\n")
        for name, data in sorted(files.items()):
            zf.writestr(name, data)
    return buf.getvalue()
