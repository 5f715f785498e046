"""Time and peak memory of ``python -m tracedthreading report`` on a large event log (issue #16).

    python benchmarks/bench_report_log.py                  # a 100 MB log: write it, report on it
    python benchmarks/bench_report_log.py --size-mb 20     # another size
    python benchmarks/bench_report_log.py --keep LOG       # keep the log at LOG (reused if it exists)

The log is what ``python -m tracedthreading --log-file`` writes for a busy program run with low
thresholds: one JSON event per line, in the runner's shape (``_events.SCHEMA``): ``lock.contended`` and
``lock.held_long`` for 2,000 locks (most lines), ``lock.wait_long`` with both stacks, ``semaphore.contended``,
``condition.wait_timeout``, a few hundred ``lock.order_inversion`` events over 50 cycles, some events
of the program's own, then the ``tracedthreading.summary`` event at the end (every lock's row with its
histograms, the inversions, 2,000 order edges). The report runs in a fresh interpreter; its wall time and
peak RSS (``ru_maxrss`` of the child) are printed. Target: peak RSS <= 200 MB for the 100 MB log (it
was 914 MB and 17 s when the report held every event). Exit status 1 if the target is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SRC = str(Path(__file__).resolve().parents[1] / "src")
LOCKS = 2000
CYCLES = 50
RSS_TARGET = 200 * 1024 * 1024  # bytes, for the 100 MB log


def _stack(rng: random.Random, depth: int) -> list[str]:
    return [f"/srv/app/service/module{rng.randrange(40)}.py:{rng.randrange(1, 900)} in handler{rng.randrange(60)}"
            for _ in range(depth)]


def _thread(rng: random.Random) -> tuple[str, int]:
    n = rng.randrange(32)
    return f"worker-{n}", 140000000000000 + n * 8392704


def _stamp(i: int) -> str:
    return f"2025-01-01T{(i // 3600000) % 24:02d}:{(i // 60000) % 60:02d}:{(i // 1000) % 60:02d}.{i % 1000:03d}000Z"


def _edge(rng: random.Random, src: str, dst: str) -> dict[str, Any]:
    name, ident = _thread(rng)
    return {"src": src, "dst": dst, "count": rng.randrange(1, 5000), "thread": name, "thread_id": ident,
            "stack": _stack(rng, 3), "timed": False, "guards": [], "context": ""}


def _event(rng: random.Random, i: int) -> dict[str, Any]:
    """One event line of a busy run, picked by weight."""
    name, ident = _thread(rng)
    holder, holder_id = _thread(rng)
    lock = f"app.pool:{100 + rng.randrange(LOCKS)}"
    roll = rng.random()
    common = {"lock": lock, "kind": "lock", "thread": name, "thread_id": ident}
    if roll < 0.45:
        fields = {**common, "wait": rng.random() * 0.2, "timed_out": rng.random() < 0.02, "holder": holder,
                  "holder_id": holder_id, "event": "lock.contended", "level": "warning"}
    elif roll < 0.88:
        fields = {**common, "hold": rng.random() * 2, "stack": "\n".join(_stack(rng, 4)),
                  "event": "lock.held_long", "level": "warning"}
    elif roll < 0.91:
        fields = {**common, "wait": 30 + rng.random(), "holder": holder, "holder_id": holder_id,
                  "stack": _stack(rng, 6), "holder_stack": _stack(rng, 6), "event": "lock.wait_long",
                  "level": "warning"}
    elif roll < 0.94:
        fields = {**common, "kind": "semaphore", "lock": f"app.limits:{rng.randrange(20)}",
                  "wait": rng.random(), "timed_out": False, "event": "semaphore.contended", "level": "warning"}
    elif roll < 0.97:
        fields = {**common, "kind": "condition", "lock": f"app.queue:{rng.randrange(20)}",
                  "wait": 1.0, "timeout": 1.0, "event": "condition.wait_timeout", "level": "info"}
    elif roll < 0.975:
        cycle = rng.randrange(CYCLES)
        a, b = f"app.bank:{cycle}a", f"app.bank:{cycle}b"
        fields = {**common, "lock": a, "cycle": [a, b], "edges": [_edge(rng, a, b), _edge(rng, b, a)],
                  "hint": f"{a}->{b} taken often; {b}->{a} once - take {a} before {b} everywhere",
                  "timed": False, "event": "lock.order_inversion", "level": "error"}
    else:
        fields = {"event": "request served", "level": "info", "path": f"/api/items/{rng.randrange(10**6)}",
                  "status": 200}
    fields["timestamp"] = _stamp(i)
    return fields


def _summary(rng: random.Random) -> dict[str, Any]:
    locks = []
    for n in range(LOCKS):
        hist = [rng.randrange(50) for _ in range(30)]
        locks.append({"name": f"app.pool:{100 + n}", "kind": "lock", "instances": rng.randrange(1, 50),
                      "acquisitions": sum(hist), "reentries": 0, "contentions": rng.randrange(100),
                      "timeouts": 0, "failures": 0, "broken": 0, "wait_total": rng.random(),
                      "wait_max": 0.2, "wait_p50": 0.001, "wait_p99": 0.1, "hold_total": rng.random(),
                      "hold_max": 2.0, "hold_p50": 0.001, "hold_p99": 0.5,
                      "blockers": [[f"worker-{k}", rng.randrange(1, 9)] for k in range(4)],
                      "wait_hist": hist, "hold_hist": hist})
    inversions = []
    for cycle in range(CYCLES):
        a, b = f"app.bank:{cycle}a", f"app.bank:{cycle}b"
        inversions.append({"locks": [a, b], "edges": [_edge(rng, a, b), _edge(rng, b, a)], "hint": "",
                           "timed": False, "context": ""})
    edges = [_edge(rng, f"app.pool:{100 + rng.randrange(LOCKS)}", f"app.pool:{100 + rng.randrange(LOCKS)}")
             for _ in range(2000)]
    name, ident = _thread(rng)
    return {"lock": None, "kind": "summary", "thread": name, "thread_id": ident, "locks": locks,
            "inversions": inversions, "deadlocks": [], "order_edges": edges,
            "event": "tracedthreading.summary", "level": "info", "timestamp": _stamp(0)}


def write_log(path: Path, size_mb: float, seed: int = 16) -> int:
    """Write a log of about ``size_mb`` MB (the summary last); returns its number of lines."""
    rng = random.Random(seed)
    budget = int(size_mb * 1e6)
    written = lines = 0
    with open(path, "w", encoding="utf-8") as stream:
        summary = json.dumps(_summary(rng)) + "\n"
        budget -= len(summary)
        while written < budget:
            line = json.dumps(_event(rng, lines)) + "\n"
            stream.write(line)
            written += len(line)
            lines += 1
        stream.write(summary)
    return lines + 1


def run_report(log: Path) -> dict[str, float]:
    """Report on ``log`` in a fresh interpreter: wall seconds and its peak RSS in bytes (measured in the
    child itself: ``RUSAGE_CHILDREN`` here would count the log writer's peak as well)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])}
    code = ("import resource, sys, time\n"
            "from tracedthreading import _report\n"
            "start = time.perf_counter()\n"
            "status = _report.main([sys.argv[1], '--top', '20'])\n"
            "print(time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,"
            " status, file=sys.stderr)\n")
    done = subprocess.run([sys.executable, "-c", code, str(log)], env=env, capture_output=True, text=True,
                          check=False, timeout=600)
    last = done.stderr.strip().splitlines()[-1].split()
    if done.returncode != 0 or last[2] != "0":
        raise SystemExit(f"report failed:\n{done.stderr}")
    return {"seconds": float(last[0]), "rss_peak": float(last[1]), "report_lines": len(done.stdout.splitlines())}


def main(argv: list[str] | None = None) -> int:
    """Write the log (or reuse ``--keep``), run the report, print the figures; 1 if the target is missed."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=float, default=100.0, help="size of the log in MB (default 100)")
    parser.add_argument("--keep", metavar="LOG", help="write the log here and keep it (reused if it exists)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(args.keep) if args.keep else Path(tmp) / "events.jsonl"
        if not log.exists():
            start = time.perf_counter()
            lines = write_log(log, args.size_mb)
            print(f"wrote {log}: {lines:,} lines, {log.stat().st_size / 1e6:.1f} MB "
                  f"({time.perf_counter() - start:.1f} s)")
        size = log.stat().st_size
        result = run_report(log)
    met = result["rss_peak"] <= RSS_TARGET or size < 99e6
    print(f"report on {size / 1e6:.1f} MB: {result['seconds']:.1f} s, peak RSS {result['rss_peak'] / 2**20:.1f} MiB "
          f"({result['report_lines']} lines of report); target for 100 MB: peak RSS <= 200 MB: "
          + ("met" if met else "MISSED"))
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
