#!/usr/bin/env python3
"""What the load benchmark's processes spent (scripts/bench load): CPU time and resident memory
from /proc, so the numbers are read with what limited them.

    procs.py snapshot OUT.json       every process's CPU ticks and RSS
    procs.py cpu BEFORE.json AFTER.json SECONDS --root PID... [--also NAME=CPU_FILE]
        CPU seconds per process of the benchmark between two snapshots (and % of one core), and
        what every other process on the machine took meanwhile (another build, say); one JSON
        document
    procs.py sample CSV SECONDS --root PID...   until stopped, every SECONDS: one row per
        benchmark process (time, pid, name, rss_kb, cpu_s)
    procs.py rss CSV      first, last and max RSS per process of a sample file (the servers and
        wrk: not the script and its helpers); one JSON document
    procs.py run OUT CMD...   runs CMD (wrk, which is gone before the second snapshot) and writes
        the CPU seconds it spent to OUT

The benchmark's processes are `--root` (its servers, and the script itself) and their
descendants: the functions `cargo lambda watch` starts (each in a session of its own), wrk.
Each is named by its command: `moto` (moto_server.py), `local-gateway`, `cargo-lambda`, a
function's binary, `wrk`.
"""

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import time

TICK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def processes():
    """{pid: (name, ppid, cpu_ticks, rss_kb)} of every process that can be read."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
            with open(f"/proc/{entry}/statm") as f:
                rss_pages = int(f.read().split()[1])
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile, or a kernel thread
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        # after the name: state ppid ...; utime and stime are fields 14 and 15 of the line
        ppid, ticks = int(fields[1]), int(fields[11]) + int(fields[12])
        out[int(entry)] = (name_of(comm, argv), ppid, ticks, rss_pages * PAGE_KB)
    return out


def name_of(comm, argv):
    args = [a.decode(errors="replace") for a in argv if a]
    if any(a.endswith("moto_server.py") for a in args):
        return "moto"
    if args and os.path.basename(args[0]) == "cargo-lambda":
        return "cargo-lambda"
    return comm


def descendants(procs, roots):
    """The pids of `roots` and of every process below them."""
    found, grew = set(roots), True
    while grew:
        below = {pid for pid, p in procs.items() if p[1] in found} - found
        found |= below
        grew = bool(below)
    return found


def machine_busy():
    """CPU ticks the machine spent on anything but idling, all cores (/proc/stat)."""
    with open("/proc/stat") as f:
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in f.readline().split()[1:9])
    return user + nice + system + irq + softirq + steal


def snapshot(path):
    with open(path, "w") as f:
        json.dump({"busy": machine_busy(), "procs": {pid: list(p) for pid, p in processes().items()}}, f)


def load(path):
    with open(path) as f:
        snap = json.load(f)
    return snap["busy"], {int(pid): tuple(p) for pid, p in snap["procs"].items()}


def cpu(before, after, seconds, roots, also):
    """CPU seconds per benchmark process name (and `also`'s: {name: seconds} measured apart), and
    what the rest of the machine took: its busy time less the benchmark's, so that processes
    that came and went in between (another build's compilers) are in it."""
    (busy_before, before), (busy_after, after) = before, after
    per_name = dict(also)
    mine = descendants(after, roots)
    for pid, proc in after.items():
        earlier = before.get(pid)
        # a process that started meanwhile spent all its ticks in the window
        spent = (proc[2] - (earlier[2] if earlier and earlier[0] == proc[0] else 0)) / TICK
        if pid in mine:
            per_name[proc[0]] = per_name.get(proc[0], 0.0) + spent
    others = max(0.0, (busy_after - busy_before) / TICK - sum(per_name.values()))
    rows = {name: round(s, 1) for name, s in sorted(per_name.items(), key=lambda kv: -kv[1]) if s >= 0.05}
    return {"seconds": seconds, "cpu_seconds": rows, "not_this_benchmark": round(others, 1)}


def sample(path, every, roots):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["time", "pid", "name", "rss_kb", "cpu_s"])
        start = time.monotonic()
        while True:
            at = round(time.monotonic() - start, 1)
            procs = processes()
            mine = descendants(procs, roots)
            for pid, proc in sorted(procs.items()):
                if pid in mine:
                    w.writerow([at, pid, proc[0], proc[3], round(proc[2] / TICK, 1)])
            f.flush()
            time.sleep(every)


def rss(path):
    series = {}
    with open(path) as f:
        for row in csv.DictReader(f):
            series.setdefault((row["name"], int(row["pid"])), []).append((float(row["time"]), int(row["rss_kb"])))
    out = []
    for (name, pid), points in sorted(series.items()):
        if len(points) < 2 or name in ("bash", "python3"):
            continue  # the script itself, and the helpers it runs (uptime, wrk's wrapper)
        kb = [p[1] for p in points]
        out.append({
            "name": name, "pid": pid, "samples": len(points), "from_s": points[0][0], "to_s": points[-1][0],
            "first_mb": round(kb[0] / 1024, 1), "last_mb": round(kb[-1] / 1024, 1), "max_mb": round(max(kb) / 1024, 1),
        })
    return out


def run(out, cmd):
    status = subprocess.run(cmd).returncode
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(out, "w") as f:
        f.write(f"{usage.ru_utime + usage.ru_stime:.1f}\n")
    return status


def main():
    if sys.argv[1:2] == ["run"]:  # the command's own options are not ours
        sys.exit(run(sys.argv[2], sys.argv[3:]))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("command", choices=["snapshot", "cpu", "sample", "rss"])
    ap.add_argument("args", nargs="*")
    ap.add_argument("--root", type=int, nargs="*", default=[])
    ap.add_argument("--also", action="append", default=[], help="NAME=FILE: a process's CPU seconds (procs.py run)")
    a = ap.parse_args()
    roots = set(a.root)
    if a.command == "snapshot":
        snapshot(a.args[0])
    elif a.command == "cpu":
        also = {}
        for spec in a.also:
            name, path = spec.split("=", 1)
            with open(path) as f:
                also[name] = float(f.read())
        json.dump(cpu(load(a.args[0]), load(a.args[1]), float(a.args[2]), roots, also), sys.stdout)
        print()
    elif a.command == "sample":
        sample(a.args[0], float(a.args[1]), roots)
    else:
        json.dump(rss(a.args[0]), sys.stdout)
        print()


if __name__ == "__main__":
    main()
