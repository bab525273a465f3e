"""The same lifecycle and isolation checks for every runtime kind, each through a probe
function written in that runtime's language: cold then warm, environment variables (in the
handler and its child processes), timeout, crash, MemorySize, its own files only, no host
loopback, only its own processes, uid nobody."""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import ROLE, Server, default_sandbox, invoke_json, make_zip, unique
from firebox.runtime.runtimes import available_runtimes
from javatools import compile_java, javac

RUNTIMES = ["python3.11", "nodejs20.x", "java17", "ruby3.2"]

process_only = pytest.mark.skipif(
    default_sandbox() != "process", reason="isolation and limits need the process backend"
)

PYTHON = """
import os, socket, subprocess, time
COUNT = 0

def _readable(path):
    try:
        if os.path.isdir(path):
            return bool(os.listdir(path))
        open(path, "rb").read(1)
        return True
    except OSError:
        return False

def _writable(path):
    try:
        with open(path, "w") as f:
            f.write("x")
        return True
    except OSError:
        return False

def _uid():
    for line in open("/proc/self/status"):
        if line.startswith("Uid:"):
            return int(line.split()[1])

def handler(event, context):
    global COUNT
    COUNT += 1
    action = event.get("action", "state")
    if action == "sleep":
        time.sleep(event["s"])
    elif action == "crash":
        os._exit(7)
    elif action == "alloc":
        blocks = []
        for _ in range(event["mb"]):
            block = bytearray(1 << 20)
            block[::4096] = b"x" * len(block[::4096])
            blocks.append(block)
        return len(blocks)
    elif action == "files":
        return {"read": [p for p in event["paths"] if _readable(p)],
                "write": [p for p in event["write"] if _writable(p)]}
    elif action == "connect":
        try:
            socket.create_connection((event["host"], event["port"]), timeout=3).close()
            return True
        except OSError:
            return False
    elif action == "child":
        return subprocess.run(["/bin/sh", "-c", "echo $VV"], capture_output=True,
                              text=True).stdout.strip()
    return {"stream": context.log_stream_name, "count": COUNT, "pid": os.getpid(),
            "var": os.environ.get("VV"), "uid": _uid(),
            "pids": sorted(p for p in os.listdir("/proc") if p.isdigit())}
"""

NODE = """
const fs = require('fs');
const net = require('net');
const { execSync } = require('child_process');
let count = 0;
const readable = (p) => {
  try {
    if (fs.statSync(p).isDirectory()) return fs.readdirSync(p).length > 0;
    fs.closeSync(fs.openSync(p, 'r'));
    return true;
  } catch (e) { return false; }
};
const writable = (p) => {
  try { fs.writeFileSync(p, 'x'); return true; } catch (e) { return false; }
};
const uid = () => Number(fs.readFileSync('/proc/self/status', 'utf8').match(/^Uid:\\s+(\\d+)/m)[1]);
exports.handler = async (event, context) => {
  count += 1;
  const action = event.action || 'state';
  if (action === 'sleep') await new Promise((r) => setTimeout(r, event.s * 1000));
  else if (action === 'crash') process.exit(7);
  else if (action === 'alloc') {
    const blocks = [];
    for (let i = 0; i < event.mb; i++) blocks.push(Buffer.alloc(1 << 20, 1));
    return blocks.length;
  } else if (action === 'files') {
    return { read: event.paths.filter(readable), write: event.write.filter(writable) };
  } else if (action === 'connect') {
    return new Promise((resolve) => {
      const s = net.connect({ host: event.host, port: event.port, timeout: 3000 });
      s.on('connect', () => { s.destroy(); resolve(true); });
      s.on('error', () => resolve(false));
      s.on('timeout', () => { s.destroy(); resolve(false); });
    });
  } else if (action === 'child') return execSync('echo $VV').toString().trim();
  return {
    stream: context.logStreamName, count, pid: process.pid, var: process.env.VV || null,
    uid: uid(), pids: fs.readdirSync('/proc').filter((p) => /^\\d+$/.test(p)).sort(),
  };
};
"""

RUBY = """
require 'socket'
COUNT = [0]

def readable?(path)
  return !Dir.children(path).empty? if File.directory?(path)

  File.open(path, 'rb') { |f| f.read(1) }
  true
rescue SystemCallError, IOError
  false
end

def writable?(path)
  File.write(path, 'x')
  true
rescue SystemCallError, IOError
  false
end

def handler(event:, context:)
  COUNT[0] += 1
  case event['action'] || 'state'
  when 'sleep' then sleep(event['s'])
  when 'crash' then exit!(7)
  when 'alloc' then return Array.new(event['mb']) { 'x' * (1 << 20) }.size
  when 'files'
    return { 'read' => event['paths'].select { |p| readable?(p) },
             'write' => event['write'].select { |p| writable?(p) } }
  when 'connect'
    begin
      Socket.tcp(event['host'], event['port'], connect_timeout: 3).close
      return true
    rescue SystemCallError, IOError, SocketError
      return false
    end
  when 'child' then return `echo $VV`.strip
  end
  { 'stream' => context.log_stream_name, 'count' => COUNT[0], 'pid' => Process.pid,
    'var' => ENV['VV'], 'uid' => File.read('/proc/self/status')[/^Uid:\\s+(\\d+)/, 1].to_i,
    'pids' => Dir.children('/proc').grep(/\\A\\d+\\z/).sort }
end
"""

JAVA = """
package probe;
import com.amazonaws.services.lambda.runtime.Context;
import com.amazonaws.services.lambda.runtime.RequestHandler;
import java.io.*;
import java.net.*;
import java.nio.file.*;
import java.util.*;
public class Probe implements RequestHandler<Map<String, Object>, Object> {
    static int count = 0;
    static boolean readable(String p) {
        File f = new File(p);
        if (f.isDirectory()) return f.list() != null && f.list().length > 0;
        try (InputStream in = new FileInputStream(f)) { in.read(); return true; }
        catch (IOException e) { return false; }
    }
    static boolean writable(String p) {
        try (FileOutputStream out = new FileOutputStream(p)) { out.write('x'); return true; }
        catch (IOException e) { return false; }
    }
    static List<String> select(Object paths, boolean write) {
        List<String> out = new ArrayList<>();
        for (Object p : (List<?>) paths) {
            if (write ? writable((String) p) : readable((String) p)) out.add((String) p);
        }
        return out;
    }
    public Object handleRequest(Map<String, Object> e, Context context) {
        count++;
        String action = (String) e.getOrDefault("action", "state");
        try {
            switch (action) {
                case "sleep":
                    Thread.sleep((long) (((Number) e.get("s")).doubleValue() * 1000));
                    break;
                case "crash":
                    Runtime.getRuntime().halt(7);
                    break;
                case "alloc": {
                    List<byte[]> blocks = new ArrayList<>();
                    for (int i = 0; i < ((Number) e.get("mb")).intValue(); i++) {
                        byte[] b = new byte[1 << 20];
                        for (int j = 0; j < b.length; j += 4096) b[j] = 1;
                        blocks.add(b);
                    }
                    return blocks.size();
                }
                case "files": {
                    Map<String, Object> out = new LinkedHashMap<>();
                    out.put("read", select(e.get("paths"), false));
                    out.put("write", select(e.get("write"), true));
                    return out;
                }
                case "connect":
                    try (Socket s = new Socket()) {
                        int port = ((Number) e.get("port")).intValue();
                        s.connect(new InetSocketAddress((String) e.get("host"), port), 3000);
                        return true;
                    } catch (IOException x) {
                        return false;
                    }
                case "child": {
                    Process p = new ProcessBuilder("/bin/sh", "-c", "echo $VV").start();
                    return new String(p.getInputStream().readAllBytes()).trim();
                }
                default:
                    break;
            }
            Map<String, Object> out = new LinkedHashMap<>();
            out.put("stream", context.getLogStreamName());
            out.put("count", count);
            out.put("pid", ProcessHandle.current().pid());
            out.put("var", System.getenv("VV"));
            int uid = -1;
            for (String line : Files.readAllLines(Paths.get("/proc/self/status"))) {
                if (line.startsWith("Uid:")) uid = Integer.parseInt(line.split("\\\\s+")[1]);
            }
            out.put("uid", uid);
            List<String> pids = new ArrayList<>();
            for (String n : new File("/proc").list()) if (n.matches("\\\\d+")) pids.add(n);
            Collections.sort(pids);
            out.put("pids", pids);
            return out;
        } catch (IOException | InterruptedException x) {
            throw new RuntimeException(x);
        }
    }
}
"""


def _package(runtime: str) -> tuple[bytes, str]:
    if runtime.startswith("python"):
        return make_zip({"app.py": PYTHON}), "app.handler"
    if runtime.startswith("nodejs"):
        return make_zip({"index.js": NODE}), "index.handler"
    if runtime.startswith("ruby"):
        return make_zip({"app.rb": RUBY}), "app.handler"
    return make_zip(dict(compile_java({"probe/Probe.java": JAVA}))), "probe.Probe"


@pytest.fixture(params=RUNTIMES)
def runtime(request: pytest.FixtureRequest) -> str:
    name = str(request.param)
    if name not in available_runtimes():
        pytest.skip(f"{name} is not available on this host")
    if name.startswith("java") and javac() is None:
        pytest.skip("needs javac to compile the Java probe")
    return name


_packages: dict[str, tuple[bytes, str]] = {}


def probe(lam: Any, runtime: str, **kwargs: Any) -> str:
    if runtime not in _packages:
        _packages[runtime] = _package(runtime)
    code, handler = _packages[runtime]
    name = unique("probe")
    kwargs.setdefault("Timeout", 30)
    kwargs.setdefault("MemorySize", 256)
    lam.create_function(
        FunctionName=name,
        Runtime=runtime,
        Role=ROLE,
        Handler=handler,
        Code={"ZipFile": code},
        **kwargs,
    )
    return name


def call(lam: Any, name: str, **event: Any) -> tuple[Any, bool]:
    """(result, cold): cold when the REPORT line carries an Init Duration."""
    out, resp = invoke_json(lam, name, event, LogType="Tail")
    assert "FunctionError" not in resp, out
    return out, "Init Duration" in base64.b64decode(resp["LogResult"]).decode()


def fails(lam: Any, name: str, **event: Any) -> tuple[Any, dict[str, Any]]:
    out, resp = invoke_json(lam, name, event, LogType="Tail")
    assert resp["FunctionError"] == "Unhandled", out
    return out, resp


def test_cold_then_warm_keeps_state(lam: Any, runtime: str) -> None:
    name = probe(lam, runtime)
    first, cold1 = call(lam, name)
    second, cold2 = call(lam, name)
    assert cold1 and not cold2
    assert (first["count"], second["count"]) == (1, 2)
    assert first["stream"] == second["stream"] and first["pid"] == second["pid"]


def test_environment_variables_reach_the_handler_and_its_children(lam: Any, runtime: str) -> None:
    name = probe(lam, runtime, Environment={"Variables": {"VV": "configured"}})
    assert call(lam, name)[0]["var"] == "configured"
    assert call(lam, name, action="child")[0] == "configured"
    lam.update_function_configuration(FunctionName=name, Environment={"Variables": {"VV": "new"}})
    lam.get_waiter("function_updated_v2").wait(FunctionName=name)
    out, cold = call(lam, name)
    assert cold and out["var"] == "new"


def test_timeout_ends_the_environment(lam: Any, runtime: str) -> None:
    name = probe(lam, runtime, Timeout=2)
    first, _ = call(lam, name)
    t0 = time.monotonic()
    out, resp = fails(lam, name, action="sleep", s=100)
    assert 2.0 <= time.monotonic() - t0 < 6.0
    assert out["errorType"] == "Sandbox.Timedout"
    assert out["errorMessage"].endswith("Task timed out after 2.00 seconds")
    after, cold = call(lam, name)
    assert cold and after["count"] == 1 and after["stream"] != first["stream"]


def test_crash_ends_the_environment(lam: Any, runtime: str) -> None:
    name = probe(lam, runtime)
    first, _ = call(lam, name)
    out, _ = fails(lam, name, action="crash")
    assert out["errorType"] == "Runtime.ExitError"
    assert "exit status 7" in out["errorMessage"]
    after, cold = call(lam, name)
    assert cold and after["count"] == 1 and after["stream"] != first["stream"]


@process_only
def test_memory_size_is_enforced(lam: Any, runtime: str) -> None:
    name = probe(lam, runtime, MemorySize=128)
    call(lam, name)
    out, _ = fails(lam, name, action="alloc", mb=400)
    # The cgroup's OOM kill, or (Java) the JVM's own OutOfMemoryError from its heap, sized
    # at 85 % of MemorySize, after which the JVM ends as AWS's runtime ends it.
    assert out["errorType"] in ("Runtime.OutOfMemory", "java.lang.OutOfMemoryError"), out
    small, cold = call(lam, name, action="alloc", mb=10)
    assert small == 10 and cold


@process_only
def test_sees_only_its_own_files(lam: Any, runtime: str, server: Server) -> None:
    name = probe(lam, runtime)
    data = server.data_dir
    secret = [
        str(data),
        str(data / "metadata.db"),
        str(data / "code"),
        "/root",
        "/home",
        "/work",
        "/.host",
        "/etc/shadow",
        str(Path(__file__)),
    ]
    write = ["/var/task/x", "/etc/x", "/x", "/opt/x", "/usr/x", "/var/runtime/x", "/tmp/ok"]
    # Readable here means: holds something (/.host is an empty mount point by now).
    out, _ = call(lam, name, action="files", paths=[*secret, "/var/task"], write=write)
    assert out["read"] == ["/var/task"]
    assert out["write"] == ["/tmp/ok"]


@process_only
def test_no_host_loopback_no_other_processes_uid_nobody(
    lam: Any, runtime: str, server: Server
) -> None:
    name = probe(lam, runtime)
    assert call(lam, name, action="connect", host="127.0.0.1", port=server.port)[0] is False
    out, _ = call(lam, name)
    assert out["pids"] == ["1", "2"] and out["pid"] == 2
    assert out["uid"] == 65534
