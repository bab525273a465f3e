"""The Java and Ruby parts of bench/run.py's cold step: the same trivial handler in each
language, a fresh ``java`` / ``ruby`` process per invoke as the baseline, and the JVM's own
start with and without the runtime client's class-data-sharing archive.

    python bench/bench_runtimes.py DATA_DIR   # the JVM start figure alone (root)
"""

from __future__ import annotations

import io
import shutil
import statistics
import subprocess
import sys
import zipfile
from pathlib import Path

JAVA_HANDLER = """package bench;
import com.amazonaws.services.lambda.runtime.Context;
import com.amazonaws.services.lambda.runtime.RequestHandler;
import java.util.Map;
public class Handler implements RequestHandler<Map<String, Object>, Map<String, Object>> {
    public Map<String, Object> handleRequest(Map<String, Object> event, Context context) {
        return Map.of("ok", true);
    }
}
"""
# The baseline: the same handler called from a main, one JVM per invoke.
JAVA_MAIN = """package bench;
public class Main {
    public static void main(String[] args) {
        Object ok = new Handler().handleRequest(new java.util.HashMap<>(), null).get("ok");
        System.out.println("{\\"ok\\":" + ok + "}");
    }
}
"""
RUBY_CODE = "def handler(event:, context:)\n  { 'ok' => true }\nend\n"
RUBY_MAIN = "require 'json'; require './app'; puts handler(event: {}, context: nil).to_json"
# The flags a user starting a JVM for speed would give it (AWS's, without the heap sizes).
JAVA_FAST = ["-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xshare:auto"]


def java_build(dest: Path) -> tuple[bytes, Path] | str:
    """The handler compiled against the Lambda interfaces Firebox ships: (function zip, a
    class directory with the interfaces and a main, for a fresh JVM per invoke), or why not."""
    from firebox.runtime.java import SOURCE_DIR

    javac = shutil.which("javac")
    if javac is None:
        return "no javac on this host"
    src = dest / "src" / "bench"
    src.mkdir(parents=True)
    (src / "Handler.java").write_text(JAVA_HANDLER)
    (src / "Main.java").write_text(JAVA_MAIN)
    classes = dest / "classes"
    api = [str(p) for p in (SOURCE_DIR / "com").rglob("*.java")]
    cmd = [javac, "--release", "17", "-nowarn", "-d", str(classes), *api]
    out = subprocess.run(
        [*cmd, str(src / "Handler.java"), str(src / "Main.java")], capture_output=True
    )
    if out.returncode != 0:
        return f"javac failed: {out.stderr.decode()[-500:]}"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        # The function's zip carries only its own class, as a user's would.
        zf.write(classes / "bench" / "Handler.class", "bench/Handler.class")
    return buf.getvalue(), classes


def java_naive_argv(java: str, classes: Path) -> list[str]:
    return [java, *JAVA_FAST, "-cp", str(classes), "bench.Main"]


def ruby_naive_argv(ruby: str) -> list[str]:
    return [ruby, "-e", RUBY_MAIN]


def jvm_start_samples(
    jdk_home: Path, client_dir: Path, n: int, memory_mb: int = 512
) -> dict[str, list[float]] | str:
    """ms from starting the runtime's JVM to its first /next (the runtime client loaded and
    Init done; nothing answers there, so it ends), with and without the client's archive,
    interleaved. It runs in the sandbox's own paths (/var/lang, /var/runtime), the ones the
    archive records, in a private mount namespace; needs root."""
    from firebox.runtime import java

    if not (client_dir / java.CDS_NAME).is_file():
        return f"no {java.CDS_NAME} in {client_dir}"
    if shutil.which("unshare") is None:
        return "no unshare"
    with_cds = " ".join(java.launch_argv("/var/lang/bin/java", "/var/runtime", memory_mb, True))
    without = " ".join(java.launch_argv("/var/lang/bin/java", "/var/runtime", memory_mb, False))
    script = f"""
set -e
mount --make-rprivate /
mount -t tmpfs firebox-bench /var
mkdir /var/lang /var/runtime
mount --bind {jdk_home} /var/lang
mount --bind {client_dir} /var/runtime
cd /
run() {{
  t0=$(date +%s%N)
  env -i PATH=/usr/bin:/bin LANG=C.UTF-8 AWS_LAMBDA_RUNTIME_API=127.0.0.1:1 _HANDLER=x.Y \\
    $2 >/dev/null 2>&1 || true
  t1=$(date +%s%N)
  echo "$1 $(( (t1 - t0) / 1000 ))"
}}
for i in $(seq {n}); do
  run cds "{with_cds}"
  run plain "{without}"
done
"""
    out = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True)
    if out.returncode != 0:
        return f"could not run: {out.stderr.strip()[-300:]}"
    samples: dict[str, list[float]] = {"cds": [], "plain": []}
    for line in out.stdout.split("\n"):
        if line.strip():
            kind, us = line.split()
            samples[kind].append(int(us) / 1000)
    return samples


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit("usage: bench_runtimes.py <data dir of a server that ran java17>")
    from firebox.runtime.runtimes import available_runtimes

    rt = available_runtimes()["java17"]
    assert rt.prefix is not None
    clients = sorted((Path(sys.argv[1]) / "sandbox" / "runtimes").glob("java17-*"))
    if not clients:
        raise SystemExit("no java17 client built in that data dir")
    result = jvm_start_samples(rt.prefix, clients[-1], 20)
    if isinstance(result, str):
        raise SystemExit(result)
    for kind, values in result.items():
        print(f"{kind}: p50 {statistics.median(values):.1f} ms over {len(values)}")


if __name__ == "__main__":
    main()
