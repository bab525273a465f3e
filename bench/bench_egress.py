"""What the egress filter (src/firebox/sandbox/egress.py) costs the slirp4netns it rides on.

    python bench/bench_egress.py [--n 20000] [--json]

The same loop runs in a process inside the filtered cgroup and in one outside it, one
after the other, three times, taking each side's best run (the machine is shared):
  udp connect   connect() of a UDP socket to 1.1.1.1:53 (no packet leaves): the filter's
                worst path, every rule checked before "allow"
  tcp connect   connect() + accept() + close over loopback (127.0.0.1 is allowed for the
                bench, so the first rule matches): a whole new connection
Per call, in µs. Needs root (cgroup2 and bpf()). Prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from firebox.sandbox.egress import EgressFilter, EgressPolicy, parse_cidrs  # noqa: E402

LOOP = r"""
import socket, sys, time
cg, n = sys.argv[1], int(sys.argv[2])
if cg:
    open(cg + "/cgroup.procs", "w").write("0")
t0 = time.perf_counter()
for _ in range(n):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect(("1.1.1.1", 53))
    s.close()
udp = (time.perf_counter() - t0) / n
lst = socket.socket()
lst.bind(("127.0.0.1", 0))
lst.listen(128)
addr = lst.getsockname()
m = n // 4
t0 = time.perf_counter()
for _ in range(m):
    c = socket.create_connection(addr)
    a, _ = lst.accept()
    a.close()
    c.close()
tcp = (time.perf_counter() - t0) / m
print(udp * 1e6, tcp * 1e6)
"""


def run(cg: str, n: int) -> tuple[float, float]:
    out = subprocess.run(
        [sys.executable, "-c", LOOP, cg, str(n)], capture_output=True, text=True, check=True
    )
    udp, tcp = out.stdout.split()
    return float(udp), float(tcp)


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--json", action="store_true", help="only the JSON line")
    args = ap.parse_args()
    policy = EgressPolicy.for_host(parse_cidrs("127.0.0.1/32"))
    egress = EgressFilter(policy, f"bench-{os.getpid()}")
    egress.install()
    try:
        filtered, unfiltered = [], []
        for _ in range(3):
            filtered.append(run(str(egress.dir), args.n))
            unfiltered.append(run("", args.n))
    finally:
        egress.remove()
    rules = len(policy.allow) + len(policy.dns) + len(policy.deny)
    fig = {
        "figure": "egress filter cost",
        "rules": rules,
        "udp_connect_filtered_us": round(min(f[0] for f in filtered), 3),
        "udp_connect_unfiltered_us": round(min(u[0] for u in unfiltered), 3),
        "tcp_connect_filtered_us": round(min(f[1] for f in filtered), 3),
        "tcp_connect_unfiltered_us": round(min(u[1] for u in unfiltered), 3),
        "n": args.n,
        "load_average": os.getloadavg(),
    }
    if not args.json:
        print(f"{'per call (best of 3)':<24}{'filtered':>12}{'unfiltered':>12}", file=sys.stderr)
        for what in ("udp_connect", "tcp_connect"):
            print(
                f"{what.replace('_', ' '):<24}{fig[what + '_filtered_us']:>10.2f}µs"
                f"{fig[what + '_unfiltered_us']:>10.2f}µs",
                file=sys.stderr,
            )
        print(f"({rules} rules in the policy)", file=sys.stderr)
    print(json.dumps(fig))


if __name__ == "__main__":
    main()
