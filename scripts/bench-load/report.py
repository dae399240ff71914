#!/usr/bin/env python3
"""The load benchmark's tables (scripts/bench load), from its results (one JSON line a run).

    report.py [--one] <results.jsonl      the table of runs, and what each process's CPU was
    report.py --soak soak.csv <results.jsonl   the run, and each process's RSS: first, last, max
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import procs  # noqa: E402


def errors(r):
    """(429s, other answers >= 400, socket errors and timeouts)."""
    statuses = {int(k): v for k, v in r["statuses"].items()}
    other = sum(v for k, v in statuses.items() if k >= 400 and k != 429)
    return statuses.get(429, 0), other, sum(r["socket_errors"].values())


def runs_table(runs):
    head = f"{'mode':<11} {'conns':>5} {'req/s':>7} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'requests':>9} {'429':>5} {'errors':>6} {'socket':>6}"
    lines = [head]
    for r in runs:
        n429, other, socket = errors(r)
        lines.append(
            f"{r['mode']:<11} {r['connections']:>5} {r['requests'] / r['seconds']:>7.0f} {r['p50_ms']:>8.1f} "
            f"{r['p95_ms']:>8.1f} {r['p99_ms']:>8.1f} {r['requests']:>9} {n429:>5} {other:>6} {socket:>6}")
    return "\n".join(lines)


def cpu_line(r):
    """Each process's share of one core over the run, busiest first."""
    cpu, seconds = r["cpu"], r["cpu"]["seconds"]
    parts = [f"{name} {s / seconds * 100:.0f}%" for name, s in cpu["cpu_seconds"].items() if s / seconds >= 0.01]
    parts.append(f"not this benchmark {cpu['not_this_benchmark'] / seconds * 100:.0f}%")
    return f"{r['mode']} {r['connections']}: " + ", ".join(parts)


def details(r):
    n429, other, socket = errors(r)
    out = [f"statuses {dict(sorted(r['statuses'].items()))}, socket errors {r['socket_errors']}",
           f"table items {r['table_items'][0]} -> {r['table_items'][1]}"]
    if other or socket:
        out += [f"  e.g. {s}" for s in r["error_samples"]]
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--one", action="store_true", help="one run, as it ends")
    ap.add_argument("--soak", help="the soak's RSS samples (CSV)")
    a = ap.parse_args()
    runs = [json.loads(line) for line in sys.stdin if line.strip()]
    print(runs_table(runs))
    if a.one:
        print(details(runs[-1]))
        print("CPU (% of one core): " + cpu_line(runs[-1]))
        return
    print("\nCPU during each run (% of one core; 2 cores = 200%):")
    for r in runs:
        print("  " + cpu_line(r))
    if a.soak:
        whole = runs[-1]["per_10s"][1:-1]  # the first and last 10 s are partial
        minutes = [whole[i : i + 6] for i in range(0, len(whole), 6)]
        print("\nrequests/s minute by minute: " + " ".join(f"{sum(m) / (10 * len(m)):.0f}" for m in minutes))
        print(f"\nRSS every 10 s over the soak (MB): table items {runs[-1]['table_items'][0]} -> {runs[-1]['table_items'][1]}")
        print(f"  {'process':<16} {'pid':>7} {'samples':>7} {'first':>7} {'last':>7} {'max':>7}")
        for p in procs.rss(a.soak):
            print(f"  {p['name']:<16} {p['pid']:>7} {p['samples']:>7} {p['first_mb']:>7} {p['last_mb']:>7} {p['max_mb']:>7}")


if __name__ == "__main__":
    main()
