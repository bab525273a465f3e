"""How Java and Ruby runtimes are found, built and started: JDK detection, the client build
cache, AWS's JVM flags, and when a function needs a runtime started for it."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import pytest

from firebox.runtime import java, ruby
from firebox.runtime.launch import prestart_obstacle
from firebox.runtime.runtimes import RuntimeInfo, missing_hint


def test_jvm_flags_size_the_jvm_from_memory_size_as_aws_does() -> None:
    flags = java.jvm_flags(512)
    # 85 % heap, 10 % metaspace, 5 % code cache of 512 MB, in KiB.
    assert "-XX:MaxHeapSize=445644k" in flags
    assert "-XX:MaxMetaspaceSize=52428k" in flags
    assert "-XX:ReservedCodeCacheSize=26214k" in flags
    assert {"-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-XX:+TieredCompilation"} <= set(flags)


def test_launch_argv_uses_the_archive_and_config_descriptor_only_when_asked() -> None:
    plain = java.launch_argv("/var/lang/bin/java", "/var/runtime", 256, archive=False)
    assert plain[0] == "/var/lang/bin/java" and plain[-1] == java.MAIN_CLASS
    assert plain[-3:-1] == ["-cp", "/var/runtime/firebox-runtime.jar"]
    assert not any("SharedArchiveFile" in a or "configFd" in a for a in plain)
    pooled = java.launch_argv("/var/lang/bin/java", "/var/runtime", 256, archive=True, config_fd=0)
    assert "-XX:SharedArchiveFile=/var/runtime/firebox.jsa" in pooled
    assert "-Dfirebox.configFd=0" in pooled


def test_release_file_gives_the_major_version(tmp_path: Path) -> None:
    (tmp_path / "release").write_text('IMPLEMENTOR="x"\nJAVA_VERSION="17.0.15"\n')
    assert java._release(tmp_path) == (17, "17.0.15")
    (tmp_path / "release").write_text('JAVA_VERSION="1.8.0_402"\n')
    assert java._release(tmp_path) == (8, "1.8.0_402")
    (tmp_path / "release").write_text('JAVA_VERSION="25"\n')
    assert java._release(tmp_path) == (25, "25")
    (tmp_path / "release").unlink()
    assert java._release(tmp_path) is None


def _java(name: str = "java17") -> RuntimeInfo:
    return RuntimeInfo(name, "java", Path("/x/bin/java"), Path("/x"), "17.0.1")


def test_java_settings_read_at_start_need_a_jvm_of_their_own(tmp_path: Path) -> None:
    (tmp_path / "example").mkdir()
    base = {"AWS_REGION": "us-east-1"}
    assert prestart_obstacle(_java(), base, tmp_path) is None
    for name in ("JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS", "JDK_JAVA_OPTIONS", "CLASSPATH"):
        assert name in str(prestart_obstacle(_java(), {**base, name: "-Dx=y"}, tmp_path))
    many = {f"V{i}": "x" for i in range(java.ENV_SLOTS + 1)}
    assert prestart_obstacle(_java(), many, tmp_path) == "too many environment variables"
    big = {"BIG": "é" * (java.ENV_SPACE_BYTES // 2)}
    assert prestart_obstacle(_java(), big, tmp_path) == "environment too large"
    for i in range(java.MAX_TASK_ENTRIES + 1):
        (tmp_path / f"f{i}").write_text("x")
    assert "top-level entries" in str(prestart_obstacle(_java(), base, tmp_path))


def test_rubyopt_needs_a_ruby_of_its_own(tmp_path: Path) -> None:
    rb = RuntimeInfo("ruby3.2", "ruby", Path("/usr/bin/ruby"), None, "3.1.2")
    assert prestart_obstacle(rb, {"A": "b"}, tmp_path) is None
    assert "RUBYOPT" in str(prestart_obstacle(rb, {"RUBYOPT": "-w"}, tmp_path))
    assert ruby.launch_argv("/usr/bin/ruby", "/var/runtime") == [
        "/usr/bin/ruby",
        "/var/runtime/bootstrap.rb",
    ]


def test_missing_runtimes_say_what_to_install() -> None:
    assert "JDK 21" in missing_hint("java21") and "openjdk-21" in missing_hint("java21")
    assert "Java 17 or newer" in missing_hint("java11")
    assert "apt-get install ruby" in missing_hint("ruby3.3")
    assert "ruby3.2 and ruby3.3" in missing_hint("ruby2.7")
    assert missing_hint("dotnet8") == ""


@pytest.mark.skipif(shutil.which("javac") is None, reason="needs javac")
def test_client_is_built_once_per_source_and_jdk(tmp_path: Path) -> None:
    jdks = java.find_jdks()
    jdk = jdks.get(17) or next(iter(jdks.values()))
    javac = java.javac_for(jdk, jdks)
    assert javac is not None
    built = java.build_client(jdk, javac, tmp_path)
    jar = built / java.JAR_NAME
    stamp = jar.stat().st_mtime_ns
    assert java.build_client(jdk, javac, tmp_path) == built
    assert jar.stat().st_mtime_ns == stamp  # reused, not rebuilt
    with zipfile.ZipFile(jar) as zf:
        names = zf.namelist()
    # Only our own classes: the client and the interfaces it provides.
    assert all(
        n.startswith(("firebox/lambda/", "com/amazonaws/services/lambda/runtime/", "META-INF/"))
        for n in names
    )
    assert "com/amazonaws/services/lambda/runtime/RequestHandler.class" in names
    assert [p.name for p in tmp_path.iterdir()] == [built.name]  # no build leftovers
