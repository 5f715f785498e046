"""Whole-process cost of the runner: a lock-dense thread-pool workload under ``python -m tracedthreading``.

    python benchmarks/bench_process.py              # 5 paired runs
    python benchmarks/bench_process.py --runs 9

The workload (this file run with ``--workload``) uses plain ``import threading``: 8 ThreadPoolExecutor
workers run 50,000 tiny tasks, each taking one shared ``threading.Lock()`` and putting into a
``queue.Queue``. It is run as a whole process under the runner and under plain ``python``, alternately
(so drift in machine speed hits both), and reports its own wall time and peak RSS (``ru_maxrss``) on
its last line. The figures are the medians of the per-pair ratios. Targets: wall <= 1.3x, RSS <= 1.2x.
Both sides run with bytecode caches, as installed code does (a first, uncounted run of each writes them).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

TASKS = 50_000
WORKERS = 8
WALL_TARGET = 1.3
RSS_TARGET = 1.2


def workload() -> None:
    """The measured program: only stdlib threading, exactly as an application would write it."""
    import queue
    import resource
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    start = time.perf_counter()
    lock = threading.Lock()
    out: queue.Queue[int] = queue.Queue()

    def task(i: int) -> None:
        with lock:
            out.put(i)

    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        for future in [pool.submit(task, i) for i in range(TASKS)]:
            future.result()
    assert out.qsize() == TASKS
    wall = time.perf_counter() - start
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(json.dumps({"wall": wall, "process_wall": time.perf_counter() - _T0, "rss_kib": rss_kib}))


def _run(traced: bool) -> dict[str, float]:
    """One whole process; its wall time from the outside, plus what the workload reported."""
    import time

    here = os.path.abspath(__file__)
    command = [sys.executable, *(["-m", "tracedthreading"] if traced else []), here, "--workload"]
    start = time.perf_counter()
    # As installed code runs: with bytecode caches (pip writes them), even where the environment
    # turns cache writing off; a warm-up run of each side (not counted) writes them first.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    done = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
    outside = time.perf_counter() - start
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    figures["outside"] = outside
    return figures  # type: ignore[no-any-return]


def main() -> int:
    """Paired alternating runs; prints the table and returns 1 if a median ratio misses its target."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="paired runs (default 5)")
    parser.add_argument("--workload", action="store_true", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.workload:
        workload()
        return 0
    plain: list[dict[str, float]] = []
    traced: list[dict[str, float]] = []
    _run(False), _run(True)  # warm-up: bytecode caches, file-system caches
    for i in range(options.runs):
        order = (False, True) if i % 2 == 0 else (True, False)
        for mode in order:
            (traced if mode else plain).append(_run(mode))

    def med(runs: list[dict[str, float]], key: str) -> float:
        return statistics.median(run[key] for run in runs)

    def ratio(key: str) -> float:
        return statistics.median(t[key] / p[key] for t, p in zip(traced, plain))

    rows = [
        ("process wall time, s (outside)", med(plain, "outside"), med(traced, "outside"), ratio("outside"), WALL_TARGET),
        ("workload wall time, s (inside)", med(plain, "wall"), med(traced, "wall"), ratio("wall"), None),
        ("peak RSS, MiB", med(plain, "rss_kib") / 1024, med(traced, "rss_kib") / 1024, ratio("rss_kib"), RSS_TARGET),
    ]
    print(f"{TASKS:,} tasks, {WORKERS} workers, {options.runs} paired runs, Python {sys.version.split()[0]}")
    print(f"{'measure':<32} {'plain':>9} {'runner':>9} {'ratio':>7} {'target':>7}  ok")
    missed = False
    for name, base, under, r, target in rows:
        ok = "" if target is None else ("yes" if r <= target else "NO")
        missed |= ok == "NO"
        shown = "" if target is None else f"{target:.1f}x"
        print(f"{name:<32} {base:>9.3f} {under:>9.3f} {r:>6.2f}x {shown:>7}  {ok}")
    return 1 if missed else 0


if __name__ == "__main__":
    import time as _time

    _T0 = _time.perf_counter()
    sys.exit(main())
