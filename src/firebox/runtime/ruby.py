"""The Ruby runtimes: ``ruby3.2`` and ``ruby3.3`` run on the host's Ruby, as the nodejs
runtimes run on the host's Node (its version is what a function gets, whatever it names)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

RUBY_RUNTIMES = ("ruby3.2", "ruby3.3")
BOOTSTRAP = "bootstrap.rb"
# Variables Ruby reads only when it starts: a function that sets one gets a fresh process.
STARTUP_VARIABLES = ("RUBYOPT", "RUBYLIB_PREFIX")


def find_ruby() -> tuple[Path, str] | None:
    """(interpreter, version) of the host's Ruby, if it has one that runs."""
    ruby = shutil.which("ruby") or ("/usr/bin/ruby" if os.path.exists("/usr/bin/ruby") else None)
    if ruby is None:
        return None
    real = Path(os.path.realpath(ruby))
    try:
        out = subprocess.run(
            [str(real), "--disable-gems", "-e", "print RUBY_VERSION"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return real, out


def launch_argv(ruby: str, runtime_dir: str) -> list[str]:
    return [ruby, f"{runtime_dir}/{BOOTSTRAP}"]


def prestart_obstacle(env: dict[str, str]) -> str | None:
    """Why this function cannot use a Ruby started before it was known (None if it can)."""
    for name in STARTUP_VARIABLES:
        if name in env:
            return f"{name} is read when Ruby starts"
    return None
