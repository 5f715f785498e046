"""Stress: 16 threads hammer Lock, RLock, Condition, Semaphore and Barrier; every count must add up exactly.

The longer run (over a million acquisitions, with its figures printed) is ``benchmarks/stress.py``.
"""

from __future__ import annotations

import gc
import sys
import threading as std
import time
import tracemalloc
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

import tracedthreading
from tracedthreading import _events, _threads
from tracedthreading.testing import capture_events

THREADS = 16
ROUNDS = 150
BARRIER_EVERY = 25


@pytest.fixture(autouse=True)
def _fast_switching() -> Iterator[None]:
    """Switch threads often so the primitives really contend."""
    saved = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    yield
    sys.setswitchinterval(saved)


def _hammer(threads: int, rounds: int, tag: str) -> tuple[dict[str, int], list[BaseException], dict[str, Any]]:
    """Run the mixed workload; returns what the threads counted themselves, their exceptions, the primitives."""
    prims: dict[str, Any] = {
        "lock": tracedthreading.Lock(name=f"{tag}-lock"),
        "rlock": tracedthreading.RLock(name=f"{tag}-rlock"),
        "cond": tracedthreading.Condition(name=f"{tag}-cond"),
        "sem": tracedthreading.Semaphore(2, name=f"{tag}-sem"),
        "barrier": tracedthreading.Barrier(threads, name=f"{tag}-barrier"),
    }
    lock, rlock, cond, sem, barrier = prims.values()
    errors: list[BaseException] = []
    tallies = [Counter() for _ in range(threads)]
    left_held: list[list[int]] = []
    prims["left_held"] = left_held

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
                        if k % 3 == 1:
                            time.sleep(0)
                if sem.acquire():
                    mine["sem"] += 1
                    time.sleep(0)
                    sem.release()
                if k % 5 == 0:
                    if sem.acquire(False):
                        mine["sem"] += 1
                        sem.release()
                    else:
                        mine["sem_failures"] += 1
                    if sem.acquire(timeout=0.001):
                        mine["sem"] += 1
                        sem.release()
                    else:
                        mine["sem_timeouts"] += 1
                with cond:
                    mine["cond_with"] += 1
                    cond.notify()
                    if k % 10 == 0:
                        mine["cond_waits"] += 1
                        mine["cond_notified" if cond.wait(0) else "cond_timeouts"] += 1
                if k % BARRIER_EVERY == 0:
                    barrier.wait(30)
                    mine["barrier"] += 1
        except BaseException as exc:  # noqa: BLE001 - collected and asserted empty
            errors.append(exc)
        left_held.append(list(_threads.current()))

    workers = [std.Thread(target=work, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    total: Counter[str] = Counter()
    for tally in tallies:
        total.update(tally)
    return dict(total), errors, prims


def test_counts_add_up_exactly_and_every_contention_is_reported() -> None:
    """Per primitive, the snapshot's counts equal what 16 threads did, and each contention emitted one event."""
    tracedthreading.configure(contended_threshold=0, held_long_threshold=None)
    dropped_before = _events.dropped
    with capture_events() as events:
        done, errors, _prims = _hammer(THREADS, ROUNDS, "s")
    assert errors == []
    assert _events.dropped == dropped_before
    snap = tracedthreading.snapshot()
    calls = THREADS * ROUNDS
    emitted = Counter((e["event"], e["lock"], e["kind"]) for e in events)

    lock = snap.lock("s-lock")
    assert lock.acquisitions == done["lock"] == calls
    assert lock.timeouts == lock.failures == 0
    assert emitted[("lock.contended", "s-lock", "lock")] == lock.contentions

    rlock = snap.lock("s-rlock")
    assert rlock.acquisitions == done["rlock"] == calls
    assert rlock.reentries == done["reentries"] == calls
    assert emitted[("lock.contended", "s-rlock", "rlock")] == rlock.contentions

    sem = snap.lock("s-sem")
    assert sem.acquisitions == done["sem"]
    assert sem.failures == done.get("sem_failures", 0)
    assert sem.timeouts == done.get("sem_timeouts", 0)
    assert emitted[("semaphore.contended", "s-sem", "semaphore")] == sem.contentions

    cond = snap.lock("s-cond", kind="condition")
    assert cond.acquisitions == done.get("cond_notified", 0)
    assert cond.timeouts == done.get("cond_timeouts", 0)
    assert cond.acquisitions + cond.timeouts == done["cond_waits"]
    assert emitted[("condition.wait_timeout", "s-cond", "condition")] == cond.timeouts
    # The Condition's own RLock: one acquisition per `with`, plus one re-acquire per wait.
    cond_lock = snap.lock("s-cond", kind="rlock")
    assert cond_lock.acquisitions == done["cond_with"] + done["cond_waits"]
    assert emitted[("lock.contended", "s-cond", "rlock")] == cond_lock.contentions

    barrier = snap.lock("s-barrier")
    assert barrier.acquisitions == done["barrier"] == THREADS * len(range(0, ROUNDS, BARRIER_EVERY))
    assert barrier.contentions == barrier.acquisitions  # every Barrier.wait counts as a wait
    assert barrier.broken == 0

    assert sum(1 for e in events if e["event"] in ("lock.order_inversion", "deadlock.detected")) == 0


def test_held_stacks_are_empty_after_the_storm() -> None:
    """Once every worker has finished, no worker is left holding anything and the main thread's stack is unchanged."""
    before = list(_threads.current())
    _done, errors, prims = _hammer(THREADS, 40, "h")
    assert errors == []
    assert list(_threads.current()) == before
    assert prims["left_held"] == [[]] * THREADS
    assert not prims["lock"].locked() and not prims["rlock"].locked()
    assert prims["sem"]._value == 2


def test_memory_is_flat_from_one_round_to_the_next() -> None:
    """A third round of the same workload allocates (net) no more than a small constant over the second."""
    _hammer(THREADS, 40, "m")  # warm up: caches, thread bookkeeping, folded names
    gc.collect()
    tracemalloc.start()
    try:
        _hammer(THREADS, 40, "m")
        gc.collect()
        second = tracemalloc.get_traced_memory()[0]
        _hammer(THREADS, 40, "m")
        gc.collect()
        third = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert third - second < 64 * 1024, f"grew {third - second} bytes in one round"
    assert tracedthreading.snapshot().lock("m-lock").instances == 3
