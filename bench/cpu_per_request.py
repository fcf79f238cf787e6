"""CPU time per request of running gateway processes under the same wrk load, taken in turns.

Less noisy than req/s on a shared machine: what a process spent (utime + stime from /proc) over
the requests it answered. Start the gateways yourself (e.g. two refs on two ports), then:

    python bench/cpu_per_request.py before:PID:PORT after:PID:PORT [--rounds 8] [--seconds 4]

Prints each round and the min and median in µs of CPU per request. The min is the best estimate of
the cost itself; the spread is the machine's noise.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: str) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("targets", nargs="+", help="NAME:PID:PORT")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--seconds", type=int, default=4)
    args = parser.parse_args()
    targets = [t.split(":") for t in args.targets]
    results: dict[str, list[float]] = {name: [] for name, _, _ in targets}
    for _ in range(args.rounds):
        for name, pid, port in targets:
            before = cpu_seconds(pid)
            out = subprocess.run(
                ["wrk", "-t1", "-c50", f"-d{args.seconds}s", f"http://127.0.0.1:{port}/"], capture_output=True, text=True, check=True
            ).stdout
            answered = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
            results[name].append((cpu_seconds(pid) - before) / answered * 1e6)
    for name, values in results.items():
        ordered = sorted(values)
        rounds = " ".join(f"{v:6.1f}" for v in values)
        print(f"{name:12s} {rounds}   min {ordered[0]:.1f}  median {ordered[len(ordered) // 2]:.1f} µs/request")


if __name__ == "__main__":
    main()
