"""The zygote: a single-threaded template process per runtime that forks sandboxed children.

This file runs on its own, under the *runtime's* interpreter (python3.8 … 3.13), never as
part of the server: standard library only, Python 3.8 syntax, no import of ``firebox``.

Stage 1 (started by the server with subprocess, as root): enter a private mount namespace,
build the read-only root every environment shares (host userland, /var/lang, /var/runtime,
a few /dev nodes, empty mount points), pivot into it with the host's root kept at /.host,
then exec stage 2 from /var/lang so that the interpreter's own paths resolve inside the
sandbox too.

Stage 2 (the zygote proper): import the runtime client once (``bootstrap.prepare()``), then
serve the server's requests on the inherited Unix socket. ``prefork`` makes a child that
joins its cgroups, gets fresh pid/mount/ipc/uts/net/cgroup namespaces, brings ``lo`` up,
opens the Runtime API listener on 127.0.0.1:9001 and hands it to the server, then forks the
runtime-to-be (PID 2) and stays as its reaping init; PID 2 waits, pre-sandboxed, to learn
its function (the pool). When the spec arrives it mounts its
/tmp, /var/task and /opt, forgets the host, closes every inherited descriptor, drops to
uid 65534 with no capabilities, installs its seccomp filter and only then runs the runtime.
The fixed order is the one DESIGN.md explains (cgroups before unshare, netns before the
listener, mounts before dropping privileges, close fds before user code).
"""

import array
import ctypes
import errno
import fcntl
import json
import os
import resource
import select
import shutil
import signal
import socket
import struct
import sys

# --- constants (linux/sched.h, linux/mount.h, linux/prctl.h, x86_64/arm64 syscalls) -----

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_NEWTIME = 0x00000080
NS_FLAGS = (
    CLONE_NEWNS
    | CLONE_NEWCGROUP
    | CLONE_NEWUTS
    | CLONE_NEWIPC
    | CLONE_NEWUSER
    | CLONE_NEWPID
    | CLONE_NEWNET
    | CLONE_NEWTIME
)

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MNT_DETACH = 2

PR_SET_NO_NEW_PRIVS = 38
PR_CAPBSET_DROP = 24
PR_SET_SECCOMP = 22
PR_SET_PDEATHSIG = 1
SECCOMP_MODE_FILTER = 2

SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1

NOBODY = 65534
RUNTIME_API_PORT = 9001

_MACHINE = os.uname().machine
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}.get(_MACHINE, 155)
SYS_PIDFD_OPEN = 434
SYS_CLOSE_RANGE = 436

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
libc.mount.argtypes = [
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_ulong,
    ctypes.c_char_p,
]
libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]


def _check(ret, what):
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, "%s: %s" % (what, os.strerror(err)))
    return ret


def unshare(flags):
    _check(libc.unshare(flags), "unshare")


def setns(fd, nstype):
    _check(libc.setns(fd, nstype), "setns")


def mount(source, target, fstype, flags, data=None):
    _check(
        libc.mount(
            source.encode() if source else None,
            target.encode(),
            fstype.encode() if fstype else None,
            flags,
            data.encode() if data else None,
        ),
        "mount %s" % target,
    )


def bind_ro(source, target, flags=0):
    """A read-only bind mount: MS_BIND, then a remount to make it read-only."""
    mount(source, target, None, MS_BIND | MS_REC)
    mount(None, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | flags)


def prctl(option, arg2=0, arg3=0, arg4=0, arg5=0):
    _check(libc.prctl(option, arg2, arg3, arg4, arg5), "prctl %d" % option)


def pidfd_open(pid):
    if hasattr(os, "pidfd_open"):
        return os.pidfd_open(pid)
    return _check(libc.syscall(SYS_PIDFD_OPEN, pid, 0), "pidfd_open")


# --- stage 1: the shared read-only root -------------------------------------------------

# Host directories every environment sees read-only: the OS userland, nothing else.
HOST_DIRS = ("usr", "etc", "bin", "sbin", "lib", "lib32", "lib64", "libx32")
DEV_NODES = ("null", "zero", "full", "random", "urandom", "tty")


def build_root(cfg):
    root = cfg["root"]
    unshare(CLONE_NEWNS)
    # Private first, or every mount below would propagate back to the host.
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    mount("firebox-root", root, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m")
    for name in HOST_DIRS:
        host = "/" + name
        target = os.path.join(root, name)
        if os.path.islink(host):
            os.symlink(os.readlink(host), target)
        elif os.path.isdir(host):
            os.mkdir(target)
            bind_ro(host, target)
    for d in (
        "var",
        "var/task",
        "var/runtime",
        "var/lang",
        "opt",
        "tmp",
        "proc",
        "dev",
        ".host",
        "sys",
    ):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    os.chmod(os.path.join(root, "tmp"), 0o1777)
    dev = os.path.join(root, "dev")
    mount("firebox-dev", dev, "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755,size=64k")
    for node in DEV_NODES:
        if os.path.exists("/dev/" + node):
            open(os.path.join(dev, node), "w").close()
            mount("/dev/" + node, os.path.join(dev, node), None, MS_BIND)
    for name, target in (
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ):
        os.symlink(target, os.path.join(dev, name))
    os.mkdir(os.path.join(dev, "shm"))
    mount(None, dev, None, MS_REMOUNT | MS_NOSUID | MS_NOEXEC | MS_RDONLY, "mode=0755")
    bind_ro(cfg["client_dir"], os.path.join(root, "var/runtime"))
    lang = cfg.get("prefix") or cfg.get("lang_dir")
    if lang:
        bind_ro(lang, os.path.join(root, "var/lang"))
    # Keep the host's root reachable for the zygote only (cgroups, code dirs): every child
    # detaches /.host before it runs anything of the function's.
    os.chdir(root)
    _check(libc.syscall(SYS_PIVOT_ROOT, b".", b".host"), "pivot_root")
    os.chdir("/")
    mount(None, "/", None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, "mode=0755")


def stage1(cfg):
    script_fd = os.open(os.path.realpath(__file__), os.O_RDONLY)
    os.set_inheritable(script_fd, True)
    training = cfg.get("training")
    if training:
        # Imported while the host's root is still /: its standard library goes with it.
        import subprocess
    build_root(cfg)
    if training:
        train(training, subprocess)
    env = {"PATH": "/var/lang/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
    # The children are forks of stage 2, so its command line is what /proc/1/cmdline shows
    # inside every environment: it must name no host path. Its source comes through an
    # inherited descriptor instead, and its socket is a bare descriptor number.
    if cfg.get("prefix"):
        exe = "/var/lang/bin/" + os.path.basename(cfg["executable"])
        env["LD_LIBRARY_PATH"] = "/var/lang/lib"
    else:
        exe = "/.host" + cfg["executable"]
        env["LD_LIBRARY_PATH"] = "/.host" + os.path.join(cfg["host_prefix"], "lib")
    argv = [exe, "-B", "-c", STAGE2_LOADER, "--stage2", cfg["kind"], str(cfg["fd"]), str(script_fd)]
    os.execve(exe, argv, env)


def train(training, subprocess):
    """Run a runtime once in the environments' own view of the file system (the paths its
    class-data-sharing archive records must be the ones it will run with), writing its
    output on the host through /.host; a failure only leaves the runtime without it."""
    out = "/.host" + training["out"]
    tmp = out + ".%d.tmp" % os.getpid()
    argv = [a.replace("{out}", tmp) for a in training["argv"]]
    # A JVM needs /proc (its own executable, its limits); environments mount their own.
    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    try:
        subprocess.run(
            argv,
            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "TZ": ":UTC"},
            cwd="/",
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=training.get("timeout_s", 60),
        )
        if os.path.exists(tmp):
            os.chmod(tmp, 0o644)
            os.rename(tmp, out)
    except (OSError, subprocess.SubprocessError):
        pass
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
        _check(libc.umount2(b"/proc", MNT_DETACH), "umount /proc")


STAGE2_LOADER = (
    "import os,sys;fd=int(sys.argv[4]);src=b''.join(iter(lambda:os.read(fd,65536),b''));"
    "os.close(fd);exec(compile(src,'zygote.py','exec'))"
)


# --- seccomp ----------------------------------------------------------------------------

# Syscalls no function needs and that widen the attack surface on the kernel. Blocking
# them with EPERM (not a kill) lets well-behaved programs that probe for them carry on.
# mknod stays allowed: mkfifo() is made of it, and device nodes need CAP_MKNOD, long gone.
BLOCKED_SYSCALLS = (
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "move_mount",
    "open_tree",
    "fsopen",
    "fsmount",
    "fsconfig",
    "fspick",
    "mount_setattr",
    "init_module",
    "finit_module",
    "delete_module",
    "kexec_load",
    "kexec_file_load",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "unshare",
    "setns",
    "bpf",
    "perf_event_open",
    "keyctl",
    "add_key",
    "request_key",
    "reboot",
    "swapon",
    "swapoff",
    "acct",
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "adjtimex",
    "open_by_handle_at",
    "name_to_handle_at",
    "userfaultfd",
    "quotactl",
    "syslog",
    "iopl",
    "ioperm",
    "lookup_dcookie",
    "fanotify_init",
    "personality",
    "vhangup",
    "sethostname",
    "setdomainname",
    "pidfd_getfd",
    "kcmp",
    "uselib",
    "nfsservctl",
    "io_uring_setup",
)

AF_UNIX = 1
AF_INET = 2
AF_INET6 = 10
AF_NETLINK = 16
NETLINK_ROUTE = 0
SOCK_RAW = 3


class _ScmpArgCmp(ctypes.Structure):
    _fields_ = [
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    ]


def build_seccomp():
    """The filter as raw BPF bytes, built once with libseccomp.

    libseccomp (C library, installed as libseccomp2) is used through ctypes because the
    runtimes' interpreters cannot import Debian's python3-seccomp; it takes care of the
    architecture checks and syscall numbering we would otherwise hand-write. The program
    is exported once here and each child loads the bytes with one prctl, so no child pays
    for compiling it.
    """
    lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add_array.argtypes = [
        ctypes.c_void_p,
        ctypes.c_uint32,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.POINTER(_ScmpArgCmp),
    ]
    lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    act_allow = 0x7FFF0000
    act_eperm = 0x00050000 | errno.EPERM
    act_enosys = 0x00050000 | errno.ENOSYS
    act_eafnosupport = 0x00050000 | errno.EAFNOSUPPORT
    act_eprotonosupport = 0x00050000 | errno.EPROTONOSUPPORT
    # enum scmp_compare: NE 1, LT 2, LE 3, EQ 4, GE 5, GT 6, MASKED_EQ 7.
    cmp_ne, cmp_eq, cmp_gt, cmp_masked_eq = 1, 4, 6, 7
    ctx = lib.seccomp_init(act_allow)
    if not ctx:
        raise OSError("seccomp_init failed")
    # SCMP_FLTATR_CTL_NNP = 3: we set no_new_privs ourselves, right before loading.
    lib.seccomp_attr_set(ctx, 3, 0)

    def add(action, name, *cmps):
        nr = lib.seccomp_syscall_resolve_name(name.encode())
        if nr < 0:
            return  # not on this architecture
        arr = (_ScmpArgCmp * max(1, len(cmps)))(*cmps)
        _check(
            lib.seccomp_rule_add_array(ctx, action, nr, len(cmps), arr), "seccomp_rule_add " + name
        )

    for name in BLOCKED_SYSCALLS:
        add(act_eperm, name)
    # clone with any namespace flag; clone3 passes its flags in memory a filter cannot
    # read, so it answers ENOSYS and libc falls back to clone, which we can inspect.
    add(
        act_eperm,
        "clone",
        _ScmpArgCmp(0, cmp_masked_eq, NS_FLAGS & ~CLONE_NEWTIME, NS_FLAGS & ~CLONE_NEWTIME),
    )
    add(act_eperm, "clone", _ScmpArgCmp(0, cmp_masked_eq, CLONE_NEWUSER, CLONE_NEWUSER))
    for flag in (
        CLONE_NEWNS,
        CLONE_NEWCGROUP,
        CLONE_NEWUTS,
        CLONE_NEWIPC,
        CLONE_NEWPID,
        CLONE_NEWNET,
    ):
        add(act_eperm, "clone", _ScmpArgCmp(0, cmp_masked_eq, flag, flag))
    add(act_enosys, "clone3")
    # Socket families: Unix, IPv4, IPv6 and routing netlink only. The others (packet,
    # vsock, alg, key, tipc, rds, bluetooth, ...) are kernel surface no function needs;
    # they answer EAFNOSUPPORT, as on a kernel built without them, so probes carry on.
    # Comparisons are on the whole 64-bit register: a family with high bits set (which
    # the kernel would truncate to an int) is above AF_NETLINK and refused too.
    for family in range(AF_UNIX + 1, AF_NETLINK):
        if family not in (AF_INET, AF_INET6):
            add(act_eafnosupport, "socket", _ScmpArgCmp(0, cmp_eq, family, 0))
    add(act_eafnosupport, "socket", _ScmpArgCmp(0, cmp_gt, AF_NETLINK, 0))
    # Netlink: only NETLINK_ROUTE, which getifaddrs() and getaddrinfo(AI_ADDRCONFIG) read
    # interfaces with (Node's os.networkInterfaces(), Java, ...). Audit, sock_diag,
    # netfilter, xfrm, uevents, generic netlink: refused.
    add(
        act_eprotonosupport,
        "socket",
        _ScmpArgCmp(0, cmp_eq, AF_NETLINK, 0),
        _ScmpArgCmp(2, cmp_ne, NETLINK_ROUTE, 0),
    )
    add(act_eafnosupport, "socketpair", _ScmpArgCmp(0, cmp_ne, AF_UNIX, 0))
    # Raw IP sockets (and packet sockets, above): no crafting of packets.
    for family in (AF_INET, AF_INET6):
        add(
            act_eperm,
            "socket",
            _ScmpArgCmp(0, cmp_eq, family, 0),
            _ScmpArgCmp(1, cmp_masked_eq, 0xF, SOCK_RAW),
        )
    fd = os.memfd_create("seccomp") if hasattr(os, "memfd_create") else None
    if fd is None:
        raise OSError("memfd_create unavailable")
    try:
        _check(lib.seccomp_export_bpf(ctx, fd), "seccomp_export_bpf")
        os.lseek(fd, 0, 0)
        chunks = []
        while True:
            data = os.read(fd, 65536)
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(fd)
        lib.seccomp_release(ctx)
    return b"".join(chunks)


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def load_seccomp(program):
    buf = ctypes.create_string_buffer(program, len(program))
    prog = _SockFprog(len(program) // 8, ctypes.addressof(buf))
    _check(libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(prog), 0, 0), "seccomp")


# --- the child --------------------------------------------------------------------------


def send_fds(sock, data, fds):
    sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])


def lo_up():
    """Bring the loopback interface up with one ioctl (spawning `ip` costs milliseconds)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        ifr = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, ifr))[1]
        fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))
    finally:
        s.close()


def recv_spec(ctl):
    chunks = []
    while True:
        data = ctl.recv(1 << 20)
        if not data:
            break
        chunks.append(data)
        if data.endswith(b"\n"):
            break
    if not chunks:
        os._exit(0)  # the server dropped this pooled child
    return json.loads(b"".join(chunks))


def child_main(zygote_fds, ctl, log_w, cgroup_procs, seccomp_prog, kind, prestart=None):
    """Runs in the forked child, PID 1 of its new pid namespace, which sets the environment
    up, then stays as its init while the runtime runs as PID 2. Never returns."""
    try:
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGPIPE):
            signal.signal(sig, signal.SIG_DFL)
        # The zygote's own descriptors go first: a pooled child holding the server's socket
        # would hide the zygote's death from the server (no EOF while a copy is open).
        for fd in zygote_fds:
            os.close(fd)
        # 1. cgroups, while our pid is still the one the writer's namespace knows.
        for path in cgroup_procs:
            with open(path, "w") as fh:
                fh.write("0")
        # 2. namespaces (pid came from the fork).
        unshare(CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWNET | CLONE_NEWCGROUP)
        socket.sethostname("localhost")
        # 3. the Runtime API listener, created inside the new network namespace.
        lo_up()
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", RUNTIME_API_PORT))
        listener.listen(64)
        mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
        send_fds(ctl, b'{"ready":true}', [listener.fileno()])
        listener.close()
        # Lambda's limits: 1,024 descriptors, no core dumps.
        resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        # The bounding set only limits what an exec could gain: dropping it now keeps the
        # capabilities the mounts below still need, and takes it off the cold path.
        for cap in range(64):
            if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0:
                break
        if kind == "node":
            node_main(ctl, log_w, seccomp_prog)
        if prestart:
            prestart_main(ctl, log_w, seccomp_prog, prestart)
        # 4. PID 1 stays behind as a tiny init that reaps orphans (a runtime as PID 1
        # would collect zombies and ignore signals); the runtime is its first child.
        runtime_pid = os.fork()
        if runtime_pid != 0:
            run_init(runtime_pid, seccomp_prog)
        # 5. wait, pre-sandboxed, to learn the function.
        spec = recv_spec(ctl)
        mount_function(spec)
        os.chdir("/var/task")
        # 6. stdio, then close every inherited descriptor (the zygote's socket above all).
        devnull = os.open("/dev/null", os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(log_w, 1)
        os.dup2(log_w, 2)
        ctl.detach()
        _check(libc.syscall(SYS_CLOSE_RANGE, 3, 0xFFFFFFFF, 0), "close_range")
        # 7. privileges: uid/gid nobody (which clears every capability), then seccomp.
        drop_privileges(seccomp_prog)
        os.umask(0o022)
        os.environ.clear()
        os.environ.update(spec["env"])
        if kind == "python":
            run_python()
        argv = spec["argv"]
        os.execve(argv[0], argv, spec["env"])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
        _flush()
        os._exit(code)
    except BaseException as exc:  # report why the sandbox could not be made, then die
        try:
            os.write(2, ("firebox sandbox: %s: %s\n" % (type(exc).__name__, exc)).encode())
        except OSError:
            pass
        os._exit(127)
    os._exit(0)


def node_main(ctl, log_w, seccomp_prog):
    """Node cannot be forked warm, so a pooled Node environment starts `node` before it
    knows its function: the runtime boots (most of a Node cold start) while the pool
    waits. PID 1 keeps its privileges until the function arrives, mounts its code into
    the namespace the runtime already lives in, hands the runtime its environment through
    a pipe, and only then becomes the init. Never returns."""
    cfg_r, cfg_w = os.pipe()
    runtime_pid = os.fork()
    if runtime_pid == 0:
        try:
            os.close(cfg_w)
            devnull = os.open("/dev/null", os.O_RDONLY)
            os.dup2(devnull, 0)
            os.dup2(log_w, 1)
            os.dup2(log_w, 2)
            os.dup2(cfg_r, 3)
            # dup2 onto itself keeps close-on-exec: the runtime would lose its pipe.
            os.set_inheritable(3, True)
            ctl.detach()
            _check(libc.syscall(SYS_CLOSE_RANGE, 4, 0xFFFFFFFF, 0), "close_range")
            drop_privileges(seccomp_prog)
            os.umask(0o022)
            node = shutil.which("node", path="/usr/local/bin:/usr/bin:/bin") or "/usr/bin/node"
            env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "FIREBOX_CONFIG_FD": "3"}
            os.execve(node, [node, "/var/runtime/index.js"], env)
        except BaseException as exc:
            try:
                os.write(2, ("firebox sandbox: %s: %s\n" % (type(exc).__name__, exc)).encode())
            except OSError:
                pass
            os._exit(127)
    os.close(cfg_r)
    spec = recv_spec(ctl)
    mount_function(spec)
    data = json.dumps({"env": spec["env"]}).encode()
    while data:
        data = data[os.write(cfg_w, data) :]
    os.close(cfg_w)
    run_init(runtime_pid, seccomp_prog)


def prestart_main(ctl, log_w, seccomp_prog, prestart):
    """A runtime started before its function is known, as node_main does for Node, from a
    description the server sends with the slot: ``argv`` and ``env`` of the runtime, the
    descriptor number it reads its environment from, and how /var/task is made.

    A JVM cannot change its working directory or, by itself, its environment: for it
    ``task`` is "entries" (its working directory is an empty tmpfs at /var/task, which gets
    one bind mount per top-level entry of the function's code, so that relative paths
    resolve into the code) and ``env_slots``/``env_space`` reserve room in its environment
    block that it later overwrites with the function's (NativeEnv.java). Never returns."""
    entries = prestart.get("task") == "entries"
    if entries:
        mount("firebox-task", "/var/task", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m")
    env = dict(prestart["env"])
    for i in range(int(prestart.get("env_slots", 0))):
        env["_FB%d" % i] = ""
    if prestart.get("env_space"):
        env["_FBSPACE"] = "x" * int(prestart["env_space"])
    cfg_r, cfg_w = os.pipe()
    config_fd = int(prestart.get("config_fd", 3))
    runtime_pid = os.fork()
    if runtime_pid == 0:
        try:
            os.close(cfg_w)
            devnull = os.open("/dev/null", os.O_RDONLY)
            os.dup2(devnull, 0)
            os.dup2(log_w, 1)
            os.dup2(log_w, 2)
            os.dup2(cfg_r, config_fd)
            os.set_inheritable(config_fd, True)
            ctl.detach()
            _check(
                libc.syscall(SYS_CLOSE_RANGE, max(3, config_fd + 1), 0xFFFFFFFF, 0), "close_range"
            )
            os.chdir(prestart.get("cwd", "/"))
            drop_privileges(seccomp_prog)
            os.umask(0o022)
            argv = prestart["argv"]
            os.execve(argv[0], argv, env)
        except BaseException as exc:
            try:
                os.write(2, ("firebox sandbox: %s: %s\n" % (type(exc).__name__, exc)).encode())
            except OSError:
                pass
            os._exit(127)
    os.close(cfg_r)
    spec = recv_spec(ctl)
    mount_function(spec, entries)
    # A runtime that died while it waited must not take PID 1 with it (SIGPIPE): PID 1
    # carries on to report the runtime's own exit status.
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    data = json.dumps({"env": spec["env"]}).encode()
    try:
        while data:
            data = data[os.write(cfg_w, data) :]
    except OSError:
        pass  # the runtime died before it read it: its exit status tells why
    os.close(cfg_w)
    run_init(runtime_pid, seccomp_prog)


def mount_task_entries(code):
    """Fill the tmpfs at /var/task with one read-only bind mount per top-level entry of the
    function's code (symlinks copied as symlinks), then make it read-only."""
    for name in os.listdir(code):
        source = os.path.join(code, name)
        target = os.path.join("/var/task", name)
        if os.path.islink(source):
            os.symlink(os.readlink(source), target)
            continue
        if os.path.isdir(source):
            os.mkdir(target)
        else:
            open(target, "w").close()
        bind_ro(source, target, MS_NODEV)
    mount(None, "/var/task", None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, "mode=0755")


def mount_function(spec, entries=False):
    """The function's private /tmp, its code at /var/task and layers at /opt; then the
    host's root goes, before anything of the function's runs."""
    mount(
        "firebox-tmp",
        "/tmp",
        "tmpfs",
        MS_NOSUID | MS_NODEV,
        "mode=1777,size=%dm" % int(spec["tmp_mb"]),
    )
    if entries:
        mount_task_entries("/.host" + spec["code"])
    else:
        bind_ro("/.host" + spec["code"], "/var/task", MS_NODEV)
    if spec.get("opt"):
        bind_ro("/.host" + spec["opt"], "/opt", MS_NODEV)
    _check(libc.umount2(b"/.host", MNT_DETACH), "umount /.host")


def drop_privileges(seccomp_prog):
    os.setgroups([])
    os.setresgid(NOBODY, NOBODY, NOBODY)
    os.setresuid(NOBODY, NOBODY, NOBODY)
    prctl(PR_SET_NO_NEW_PRIVS, 1)
    load_seccomp(seccomp_prog)


def run_init(runtime_pid, seccomp_prog):
    """PID 1 of an environment: reap everything, exit as the runtime exits. Never returns.

    A signal that killed the runtime cannot be re-raised by an init (the kernel drops
    SIGKILL sent by PID 1 to itself), so it becomes exit status 128+N, which the zygote
    turns back into a signal status.
    """
    try:
        devnull = os.open("/dev/null", os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        _check(libc.syscall(SYS_CLOSE_RANGE, 3, 0xFFFFFFFF, 0), "close_range")
        drop_privileges(seccomp_prog)
    except BaseException:
        os._exit(127)
    while True:
        try:
            pid, status = os.waitpid(-1, 0)
        except InterruptedError:
            continue
        except ChildProcessError:
            os._exit(127)
        if pid == runtime_pid:
            if os.WIFSIGNALED(status):
                os._exit(128 + os.WTERMSIG(status))
            os._exit(os.WEXITSTATUS(status))


def _flush():
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass


def run_python():
    import bootstrap

    # stdout is a pipe: line-buffer it so a crash loses at most a partial line.
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(line_buffering=True)
        except Exception:
            pass
    try:
        bootstrap.main()
    finally:
        _flush()
    os._exit(0)


# --- stage 2: the zygote's loop ---------------------------------------------------------


class Zygote:
    def __init__(self, cfg, sock):
        self.cfg = cfg
        self.sock = sock
        self.kind = cfg["kind"]
        self.pidns = os.open("/.host/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
        self.seccomp = build_seccomp()
        self.children = set()
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    def prefork(self, msg):
        cgroup_procs = ["/.host" + p for p in msg["cgroups"]]
        log_r, log_w = os.pipe2(os.O_CLOEXEC)
        ctl_server, ctl_child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        # A fresh pid namespace for the next child only: reset to our own, then unshare.
        setns(self.pidns, CLONE_NEWPID)
        unshare(CLONE_NEWPID)
        _flush()
        pid = os.fork()
        if pid == 0:
            ctl_server.close()
            os.close(log_r)
            zygote_fds = (self.sock.detach(), self.pidns, self.wake_r, self.wake_w)
            child_main(
                zygote_fds,
                ctl_child,
                log_w,
                cgroup_procs,
                self.seccomp,
                self.kind,
                msg.get("prestart"),
            )
        os.close(log_w)
        ctl_child.close()
        self.children.add(pid)
        try:
            pidfd = pidfd_open(pid)
        except OSError:
            pidfd = os.open("/dev/null", os.O_RDONLY)  # child already gone; exit follows
        try:
            send_fds(
                self.sock,
                json.dumps({"op": "forked", "slot": msg["slot"], "pid": pid}).encode(),
                [pidfd, log_r, ctl_server.fileno()],
            )
        finally:
            os.close(pidfd)
            os.close(log_r)
            ctl_server.close()

    def reap(self):
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.children.discard(pid)
            if os.WIFSIGNALED(status):
                code = -os.WTERMSIG(status)
            else:
                code = os.WEXITSTATUS(status)
                if 128 < code < 128 + 65:
                    code = 128 - code  # our init's way of saying "killed by signal N"
            self.sock.send(json.dumps({"op": "exit", "pid": pid, "status": code}).encode())

    def serve(self):
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        self.sock.send(b'{"op":"hello"}')
        # poll, not select: the socket keeps the number it had in the server, which past
        # a thousand open environments is beyond select's FD_SETSIZE.
        poller = select.poll()
        poller.register(self.sock.fileno(), select.POLLIN)
        poller.register(self.wake_r, select.POLLIN)
        while True:
            try:
                ready = {fd for fd, _ in poller.poll()}
            except InterruptedError:
                continue
            if self.wake_r in ready:
                try:
                    os.read(self.wake_r, 4096)
                except BlockingIOError:
                    pass
                self.reap()
            if self.sock.fileno() in ready:
                data = self.sock.recv(65536)
                if not data:
                    for pid in list(self.children):
                        try:
                            os.kill(pid, signal.SIGKILL)
                        except OSError:
                            pass
                    os._exit(0)
                msg = json.loads(data)
                if msg["op"] == "prefork":
                    try:
                        self.prefork(msg)
                    except OSError as exc:
                        self.sock.send(
                            json.dumps(
                                {"op": "error", "slot": msg["slot"], "message": str(exc)}
                            ).encode()
                        )
            self.reap()


def stage2(kind, fd):
    cfg = {"kind": kind}
    sock = socket.socket(fileno=fd)
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if cfg["kind"] == "python":
        sys.path.insert(0, "/var/runtime")
        import bootstrap

        bootstrap.prepare()
    import gc

    # Objects made before the fork stay shared copy-on-write if the collector does not
    # touch them (freeze exists from 3.7).
    gc.collect()
    if hasattr(gc, "freeze"):
        gc.freeze()
    Zygote(cfg, sock).serve()


if __name__ == "__main__":
    if sys.argv[1] == "--stage2":
        stage2(sys.argv[2], int(sys.argv[3]))
    else:
        stage1(json.loads(sys.argv[1]))
