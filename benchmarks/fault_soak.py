"""Soak the interrupted-waits fault test on a busy machine: repeat it, count failures and hangs.

    python benchmarks/fault_soak.py                  # 300 runs per lock kind, C path, 2 busy processes
    python benchmarks/fault_soak.py --impl pure      # the pure-Python path instead
    python benchmarks/fault_soak.py --runs 50 --busy 0

Each run is ``tests/test_lock_core.py``'s ``run_interrupted_waits`` scenario (the main thread keeps
acquiring with a timeout a lock two threads keep taking, while a signal handler raises into it at random
points), for a Lock and an RLock, while ``--busy`` processes spin (``while True: pass``) beside it. Runs
go in batches, each in a fresh interpreter with a deadline, so a hang is counted, not waited for. Issue
#14's figure for the C path on every CPython 3.10-3.13: 300 runs, 0 failures, 0 hangs. Exit status 1 if
any run failed or hung.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

CHILD = r"""
import json, sys, traceback
sys.path[:0] = [sys.argv[1], sys.argv[2]]
import tracedthreading
from tracedthreading import _primitives
import test_lock_core
factory = getattr(_primitives, sys.argv[3])
results = []
for _ in range(int(sys.argv[4])):
    tracedthreading.reset()
    try:
        interrupted, taken = test_lock_core.run_interrupted_waits(factory, float(sys.argv[5]))
        stats = tracedthreading.snapshot().lock("interrupted")
        ok = stats.acquisitions == taken and interrupted > 0
        results.append({"ok": ok, "interrupted": interrupted,
                        "why": "" if ok else f"counted {stats.acquisitions} of {taken}, {interrupted} interrupts"})
    except BaseException as exc:  # noqa: BLE001 - every failure is a result to report
        results.append({"ok": False, "interrupted": 0, "why": "".join(traceback.format_exception_only(exc)).strip()})
print(json.dumps(results))
"""


def _batch(cls: str, count: int, seconds: float, env: dict[str, str]) -> list[dict[str, object]] | None:
    """Run ``count`` scenarios in a fresh interpreter; None if it did not finish in time (a hang)."""
    deadline = 60 + count * (seconds + 15)
    try:
        done = subprocess.run(
            [sys.executable, "-c", CHILD, os.path.join(ROOT, "src"), os.path.join(ROOT, "tests"), cls, str(count),
             str(seconds)],
            capture_output=True, text=True, timeout=deadline, env=env, check=False,
        )
    except subprocess.TimeoutExpired:
        return None
    if done.returncode != 0:
        return [{"ok": False, "interrupted": 0, "why": done.stderr.strip().splitlines()[-1:] or "crashed"}]
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=300, help="runs per lock kind (300)")
    parser.add_argument("--busy", type=int, default=2, help="busy-looping processes beside the runs (2)")
    parser.add_argument("--seconds", type=float, default=0.5, help="length of one run (0.5)")
    parser.add_argument("--batch", type=int, default=25, help="runs per interpreter (25)")
    parser.add_argument("--impl", choices=("c", "pure"), default="c", help="which hot path (c)")
    args = parser.parse_args(argv)
    env = {**os.environ}
    env.pop("TRACEDTHREADING_PURE_PYTHON", None)
    if args.impl == "pure":
        env["TRACEDTHREADING_PURE_PYTHON"] = "1"
        classes = ["PyLock", "PyRLock"]
    else:
        classes = ["CLock", "CRLock"]
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
    summary: dict[str, dict[str, object]] = {}
    start = time.monotonic()
    try:
        for cls in classes:
            runs = failures = hangs = interrupts = 0
            reasons: list[str] = []
            while runs < args.runs:
                count = min(args.batch, args.runs - runs)
                results = _batch(cls, count, args.seconds, env)
                if results is None:
                    hangs += 1
                    runs += count
                    reasons.append(f"a batch of {count} did not finish in time")
                    continue
                runs += count
                for result in results:
                    interrupts += int(result["interrupted"])  # type: ignore[call-overload]
                    if not result["ok"]:
                        failures += 1
                        reasons.append(str(result["why"]))
            summary[cls] = {"runs": runs, "failures": failures, "hangs": hangs, "interrupts": interrupts,
                            "reasons": reasons[:5]}
    finally:
        for process in busy:
            process.kill()
            process.wait()
    print(f"Python {sys.version.split()[0]}, {args.impl} path, {args.busy} busy processes, "
          f"{args.seconds} s per run, {time.monotonic() - start:.0f} s in all")
    for cls, row in summary.items():
        print(f"  {cls}: {row['runs']} runs, {row['failures']} failures, {row['hangs']} hung batches, "
              f"{row['interrupts']} interrupted acquires")
        for reason in row["reasons"]:  # type: ignore[attr-defined]
            print(f"    {reason}")
    return 0 if all(row["failures"] == 0 and row["hangs"] == 0 for row in summary.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
