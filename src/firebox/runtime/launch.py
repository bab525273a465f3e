"""How the pre-started runtimes (Java, Ruby) start, in a sandbox and outside one.

A JVM cannot be forked warm and a Ruby is started cheaper than it is made fork-safe inside the
sandbox's set-up, so a pooled environment of these kinds has its runtime started before its
function is known, as Node's are (see zygote.prestart_main): the runtime waits, loaded and
warmed up, for the function's environment on a descriptor. A function whose configuration
must be seen when the runtime starts (JAVA_TOOL_OPTIONS, RUBYOPT …) gets a runtime started
for it instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from firebox.runtime import java, ruby
from firebox.runtime.runtimes import RuntimeInfo, client_dir

PRESTARTED_KINDS = ("java", "ruby")
CONFIG_FD = 3
# The JVM's training run takes a second or two; past this the archive is given up.
TRAINING_TIMEOUT_S = 60
# What a pre-started runtime's own environment holds until its function's arrives.
_BASE_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "TZ": ":UTC"}
# Where things are inside a sandbox.
_LANG = "/var/lang"
_RUNTIME = "/var/runtime"


@dataclass(slots=True)
class Launch:
    """A runtime's start inside the process sandbox: what its zygote mounts, and the command
    line of a fresh runtime (``argv``) and of a pooled one (``prestart``)."""

    runtime: RuntimeInfo
    memory_mb: int
    client_dir: Path  # mounted at /var/runtime
    lang_dir: Path | None  # mounted at /var/lang
    training: dict[str, Any] | None = None  # the zygote's training run (Java's CDS archive)
    argv: list[str] = field(default_factory=list)
    prestart: dict[str, Any] | None = None

    def settle(self) -> None:
        """(Re)compute the command lines from what the client directory now holds."""
        rt = self.runtime
        if rt.kind == "java":
            archive = (self.client_dir / java.CDS_NAME).is_file()
            exe = f"{_LANG}/bin/java"
            self.argv = java.launch_argv(exe, _RUNTIME, self.memory_mb, archive)
            self.prestart = {
                # Java can read an inherited descriptor only as one of its standard streams.
                "argv": java.launch_argv(exe, _RUNTIME, self.memory_mb, archive, 0),
                "env": dict(_BASE_ENV),
                "env_slots": java.ENV_SLOTS,
                "env_space": java.ENV_SPACE_BYTES,
                "config_fd": 0,
                "task": "entries",
                "cwd": "/var/task",
            }
        else:
            assert rt.executable is not None
            self.argv = ruby.launch_argv(str(rt.executable), _RUNTIME)
            self.prestart = {
                "argv": self.argv,
                "env": {**_BASE_ENV, "FIREBOX_CONFIG_FD": str(CONFIG_FD)},
                "config_fd": CONFIG_FD,
                "task": "bind",
                "cwd": "/",
            }


def _java_client(rt: RuntimeInfo, cache_root: Path) -> Path:
    jdks = java.find_jdks()
    assert rt.prefix is not None
    jdk = java.Jdk(rt.prefix, java.JAVA_RUNTIMES[rt.name], rt.version)
    javac = java.javac_for(jdk, jdks)
    if javac is None:
        raise java.BuildError(f"{rt.name}: no javac on this host to build the runtime client")
    return java.build_client(jdk, javac, cache_root)


def prepare_launch(rt: RuntimeInfo, memory_mb: int, cache_root: Path) -> Launch:
    """Everything a zygote of this runtime needs; blocking (may compile the Java client).

    Raises java.BuildError when the Java client cannot be built.
    """
    if rt.kind == "java":
        built = _java_client(rt, cache_root)
        launch = Launch(rt, memory_mb, built, rt.prefix)
        if not (built / java.CDS_NAME).is_file():
            launch.training = {
                "argv": java.training_argv(f"{_LANG}/bin/java", _RUNTIME, "{out}"),
                "out": str(built / java.CDS_NAME),
                "timeout_s": TRAINING_TIMEOUT_S,
            }
    else:
        launch = Launch(rt, memory_mb, client_dir("ruby"), None)
    launch.settle()
    return launch


def prestart_obstacle(rt: RuntimeInfo, env: dict[str, str], code_dir: Path) -> str | None:
    """Why this function needs its runtime started for it (None: a pooled one will do)."""
    if rt.kind == "java":
        return java.prestart_obstacle(env, code_dir)
    if rt.kind == "ruby":
        return ruby.prestart_obstacle(env)
    return None


def host_argv(rt: RuntimeInfo, memory_mb: int, cache_root: Path) -> list[str]:
    """The command line of a runtime started outside any sandbox (host paths, no pool).

    Raises java.BuildError when the Java client cannot be built.
    """
    if rt.kind == "java":
        built = _java_client(rt, cache_root)
        return java.launch_argv(str(rt.executable), str(built), memory_mb, archive=False)
    assert rt.executable is not None
    return ruby.launch_argv(str(rt.executable), str(client_dir("ruby")))
