"""Stress and memory figures for the docs' performance page (docs/performance.rst).

    python benchmarks/stress.py             # 16 threads, >= 1,000,000 acquisitions; 1,000,000 locks churned
    python benchmarks/stress.py --quick     # a tenth of both

Part 1: threads hammer a Lock, an RLock, a Condition, a Semaphore and a Barrier; the snapshot's counts are
checked against what the threads counted themselves, every ``lock.contended`` event (threshold 0) against the
contention count, and tracemalloc measures a second round against the first. Part 2: locks are created and
dropped, each acquired while holding a long-lived lock (one order edge each), under tracemalloc. Exits 1 if
any figure does not add up.
"""

from __future__ import annotations

import argparse
import gc
import sys
import threading as std
import time
import tracemalloc
from collections import Counter

import tracedthreading
from tracedthreading import _events, _lockorder, _stats, _threads
from tracedthreading.testing import capture_events


def hammer(threads: int, rounds: int, tag: str) -> tuple[Counter[str], list[BaseException], float]:
    """Run the mixed workload once; returns the threads' own counts, their exceptions and the elapsed time."""
    lock = tracedthreading.Lock(name=f"{tag}-lock")
    rlock = tracedthreading.RLock(name=f"{tag}-rlock")
    cond = tracedthreading.Condition(name=f"{tag}-cond")
    sem = tracedthreading.Semaphore(2, name=f"{tag}-sem")
    barrier = tracedthreading.Barrier(threads, name=f"{tag}-barrier")
    errors: list[BaseException] = []
    tallies = [Counter() for _ in range(threads)]

    def work(index: int) -> None:
        mine = tallies[index]
        try:
            for k in range(rounds):
                with lock:
                    mine["lock"] += 1
                    if k % 3 == 0:
                        time.sleep(0)
                with rlock:
                    mine["rlock"] += 1
                    with rlock:
                        mine["reentries"] += 1
                if sem.acquire():
                    mine["sem"] += 1
                    if k % 3 == 2:
                        time.sleep(0)
                    sem.release()
                if k % 5 == 0:
                    if sem.acquire(False):
                        mine["sem"] += 1
                        sem.release()
                    else:
                        mine["sem_failures"] += 1
                with cond:
                    mine["cond_with"] += 1
                    cond.notify()
                    if k % 10 == 0:
                        mine["cond_waits"] += 1
                        mine["cond_notified" if cond.wait(0) else "cond_timeouts"] += 1
                if k % 100 == 0:
                    barrier.wait()
                    mine["barrier"] += 1
        except BaseException as exc:  # noqa: BLE001 - collected and reported
            errors.append(exc)

    workers = [std.Thread(target=work, args=(i,)) for i in range(threads)]
    start = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - start
    total: Counter[str] = Counter()
    for tally in tallies:
        total.update(tally)
    return total, errors, elapsed


def check_stress(threads: int, rounds: int) -> list[str]:
    """Part 1: exact counts, one event per contention, no exception, flat memory. Returns the failures."""
    failures: list[str] = []
    tracedthreading.reset()
    tracedthreading.configure(contended_threshold=0, held_long_threshold=None)
    dropped = _events.dropped
    with capture_events() as events:
        done, errors, elapsed = hammer(threads, rounds, "stress")
    snap = tracedthreading.snapshot()
    emitted = Counter((e["event"], e["lock"], e["kind"]) for e in events)
    lock, rlock = snap.lock("stress-lock"), snap.lock("stress-rlock")
    sem, barrier = snap.lock("stress-sem"), snap.lock("stress-barrier")
    cond, cond_lock = snap.lock("stress-cond", "condition"), snap.lock("stress-cond", "rlock")
    acquisitions = sum(s.acquisitions + s.reentries for s in snap.locks)
    checks = {
        "lock acquisitions": (lock.acquisitions, done["lock"]),
        "rlock acquisitions": (rlock.acquisitions, done["rlock"]),
        "rlock reentries": (rlock.reentries, done["reentries"]),
        "semaphore acquisitions": (sem.acquisitions, done["sem"]),
        "semaphore failures": (sem.failures, done["sem_failures"]),
        "condition notified waits": (cond.acquisitions, done["cond_notified"]),
        "condition timeouts": (cond.timeouts, done["cond_timeouts"]),
        "condition lock acquisitions": (cond_lock.acquisitions, done["cond_with"] + done["cond_waits"]),
        "barrier waits": (barrier.acquisitions, done["barrier"]),
        "lock.contended events (lock)": (emitted[("lock.contended", "stress-lock", "lock")], lock.contentions),
        "lock.contended events (rlock)": (emitted[("lock.contended", "stress-rlock", "rlock")], rlock.contentions),
        "lock.contended events (cond)": (emitted[("lock.contended", "stress-cond", "rlock")],
                                         cond_lock.contentions),
        "semaphore.contended events": (emitted[("semaphore.contended", "stress-sem", "semaphore")],
                                       sem.contentions),
        "exceptions in threads": (len(errors), 0),
        "events dropped": (_events.dropped - dropped, 0),
        "held keys left": (sum(len(h.stack) for h in _threads.all_held().values()), 0),
    }
    print(f"stress: {threads} threads x {rounds:,} rounds in {elapsed:.1f} s: {acquisitions:,} acquisitions "
          f"(re-entries included), {sum(s.contentions for s in snap.locks):,} contentions, "
          f"{len(events):,} events")
    for stats in snap.locks:
        print(f"  {stats.name:15} {stats.kind:10} acq {stats.acquisitions:>9,} re {stats.reentries:>9,} "
              f"cont {stats.contentions:>7,} fail {stats.failures:>6,} timeouts {stats.timeouts:>6,}")
    for label, (got, want) in checks.items():
        status = "ok" if got == want else "MISMATCH"
        if got != want:
            failures.append(f"{label}: {got} != {want}")
        print(f"  {label:32} {got:>12,} == {want:<12,} {status}")

    # Memory: a second and a third round (no events) under tracemalloc.
    tracedthreading.configure(contended_threshold=None)
    gc.collect()
    tracemalloc.start()
    try:
        hammer(threads, rounds // 10, "stress")
        gc.collect()
        second = tracemalloc.get_traced_memory()[0]
        hammer(threads, rounds // 10, "stress")
        gc.collect()
        third = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    print(f"  memory, third round vs second: {(third - second) / 1024:+.1f} KiB")
    if third - second > 256 * 1024:
        failures.append(f"memory grew {third - second} bytes in one round")
    return failures


def check_memory(count: int, limit_mb: float) -> list[str]:
    """Part 2: ``count`` locks, each an order edge from a long-lived lock, created and dropped."""
    failures: list[str] = []
    tracedthreading.reset()
    outer = tracedthreading.Lock(name="outer")

    def churn(n: int) -> None:
        for _ in range(n):
            with outer:
                lock = tracedthreading.Lock()
                with lock:
                    pass

    churn(10_000)
    gc.collect()
    tracemalloc.start()
    try:
        _stats.drain()
        before = tracemalloc.get_traced_memory()[0]
        start = time.perf_counter()
        churn(count)
        elapsed = time.perf_counter() - start
        gc.collect()
        queued = tracemalloc.get_traced_memory()[0] - before
        _stats.drain()
        after, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    graph = _lockorder.stats()
    growth_mb = (after - before) / 1e6
    print(f"memory: {count:,} locks created and dropped in {elapsed:.1f} s (under tracemalloc)")
    print(f"  retained growth {growth_mb:+.3f} MB (with the dead-counter queue: {queued / 1e6:+.3f} MB), "
          f"peak {(peak - before) / 1e6:.3f} MB above start")
    print(f"  order graph {graph}; live primitives {len(_stats._live)}; folded names {len(_stats._folded)}")
    if growth_mb > limit_mb or (peak - before) / 1e6 > 4 * limit_mb:
        failures.append(f"memory grew {growth_mb:.3f} MB (peak {(peak - before) / 1e6:.3f} MB)")
    if graph["nodes"] > 3 or graph["edges"] > 2 or len(_stats._live) > 2:
        failures.append(f"registries grew: {graph}, live {len(_stats._live)}")
    return failures


def main(argv: list[str] | None = None) -> int:
    """Run both parts and print their figures; 1 if anything does not add up (the full run takes ~4 min)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tenth of the work")
    parser.add_argument("--threads", type=int, default=16)
    args = parser.parse_args(argv)
    scale = 10 if args.quick else 1
    # A round does about 5.3 acquisitions or re-entries; 16 threads x 12,000 rounds > 1,000,000.
    rounds = 12_000 // scale
    sys.setswitchinterval(1e-5)
    print(f"Python {sys.version.split()[0]}")
    failures = check_stress(args.threads, rounds)
    failures += check_memory(1_000_000 // scale, limit_mb=1.0)
    for failure in failures:
        print("FAIL:", failure)
    print("all figures add up" if not failures else f"{len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
