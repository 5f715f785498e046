"""Whole-process cost of the runner: a lock-dense thread-pool workload under ``python -m tracedthreading``.

    python benchmarks/bench_process.py              # 5 paired runs, the C hot path
    python benchmarks/bench_process.py --runs 9
    python benchmarks/bench_process.py --pure       # the traced side on the pure-Python hot path

The workload (this file run with ``--workload``) uses plain ``import threading``: 8 ThreadPoolExecutor
workers run 50,000 tiny tasks, each taking one shared ``threading.Lock()`` and putting into a
``queue.Queue``. It is run as a whole process under the runner and under plain ``python``, alternately
(so drift in machine speed hits both), and reports its own wall time and peak RSS (``ru_maxrss``) on
its last line, with the lock hot path the process ran. The figures are the medians of the per-pair
ratios. Both sides run with bytecode caches, as installed code does (a first, uncounted run of each
writes them).

Targets (issue #14, first set by #5), for the default C hot path: process wall time <= 1.3x and peak
RSS <= 1.2x of plain ``python``; the exit status is 1 if one is missed. The traced side runs the C path
whatever the environment says (``TRACEDTHREADING_PURE_PYTHON`` is removed from it); if the extension is
not built it falls back to pure Python, which the output says, and the targets are then not checked.
``--pure`` runs the traced side with ``TRACEDTHREADING_PURE_PYTHON=1``: informative, no target.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from typing import Any

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
    print(json.dumps({"wall": wall, "process_wall": time.perf_counter() - _T0, "rss_kib": rss_kib,
                      "hot_path": _hot_path()}))


def _hot_path() -> str:
    """The lock hot path this process ran: "C", "pure", or "none" (tracedthreading never imported)."""
    cext = sys.modules.get("tracedthreading._cext")
    if cext is None:
        return "none"
    return "C" if cext.speedups is not None else "pure"  # type: ignore[attr-defined]


def _run(traced: bool, pure: bool = False) -> dict[str, Any]:
    """One whole process; its wall time from the outside, plus what the workload reported.

    The traced side runs the C hot path unless ``pure`` (then ``TRACEDTHREADING_PURE_PYTHON=1``).
    """
    import time

    here = os.path.abspath(__file__)
    command = [sys.executable, *(["-m", "tracedthreading"] if traced else []), here, "--workload"]
    # As installed code runs: with bytecode caches (pip writes them), even where the environment
    # turns cache writing off; a warm-up run of each side (not counted) writes them first. The hot
    # path is chosen here, not inherited from the environment.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "TRACEDTHREADING_PURE_PYTHON")}
    if traced and pure:
        env["TRACEDTHREADING_PURE_PYTHON"] = "1"
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
    outside = time.perf_counter() - start
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    figures["outside"] = outside
    return figures  # type: ignore[no-any-return]


def main() -> int:
    """Paired alternating runs; prints the table and returns 1 if a median ratio misses its target."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="paired runs (default 5)")
    parser.add_argument("--pure", action="store_true",
                        help="run the traced side on the pure-Python hot path (TRACEDTHREADING_PURE_PYTHON=1); "
                             "informative, no target")
    parser.add_argument("--workload", action="store_true", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.workload:
        workload()
        return 0
    plain: list[dict[str, Any]] = []
    traced: list[dict[str, Any]] = []
    _run(False), _run(True, options.pure)  # warm-up: bytecode caches, file-system caches
    for i in range(options.runs):
        order = (False, True) if i % 2 == 0 else (True, False)
        for mode in order:
            (traced if mode else plain).append(_run(mode, options.pure))
    paths = sorted({run["hot_path"] for run in traced})
    # The targets are the C path's: checked only when every traced run ran it.
    checked = paths == ["C"]

    def med(runs: list[dict[str, Any]], key: str) -> float:
        return statistics.median(run[key] for run in runs)

    def ratio(key: str) -> float:
        return statistics.median(t[key] / p[key] for t, p in zip(traced, plain))

    rows = [
        ("process wall time, s (outside)", med(plain, "outside"), med(traced, "outside"), ratio("outside"),
         WALL_TARGET if checked else None),
        ("workload wall time, s (inside)", med(plain, "wall"), med(traced, "wall"), ratio("wall"), None),
        ("peak RSS, MiB", med(plain, "rss_kib") / 1024, med(traced, "rss_kib") / 1024, ratio("rss_kib"),
         RSS_TARGET if checked else None),
    ]
    print(f"{TASKS:,} tasks, {WORKERS} workers, {options.runs} paired runs, Python {sys.version.split()[0]}")
    informative = " (--pure: informative, no target)" if options.pure else ""
    print(f"runner's lock hot path: {' and '.join(paths)}{informative}")
    if not options.pure and not checked:
        print("note: the C extension is not available to the runner: targets not checked")
    print(f"{'measure':<32} {'plain':>9} {'runner':>9} {'ratio':>7} {'target':>11}  ok")
    missed = False
    for name, base, under, r, target in rows:
        ok = "" if target is None else ("yes" if r <= target else "NO")
        missed |= ok == "NO"
        shown = "" if target is None else f"{target:.1f}x (#14)"
        print(f"{name:<32} {base:>9.3f} {under:>9.3f} {r:>6.2f}x {shown:>11}  {ok}")
    return 1 if missed else 0


if __name__ == "__main__":
    import time as _time

    _T0 = _time.perf_counter()
    sys.exit(main())
