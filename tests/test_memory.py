"""Memory: creating and dropping many locks, each one an order edge from a long-lived lock, stays bounded.

Tracing allocations makes this ~5x slower, so the test churns 20,000 locks (measured growth limit: 512 KiB);
``benchmarks/stress.py`` does the full 1,000,000 and prints the growth (docs/performance.rst;
docs/guarantees.rst, "Memory is bounded").
"""

from __future__ import annotations

import gc
import time
import tracemalloc

import pytest

import tracedthreading
from tracedthreading import _config, _lockorder, _stats

CHURN = 20_000
LIMIT = 512 * 1024


@pytest.fixture(autouse=True)
def _no_garbage_from_other_tests() -> None:
    """These tests count dead primitives: those earlier tests left for the collector die first."""
    gc.collect()
    tracedthreading.reset()


def _churn(outer: tracedthreading.Lock, count: int) -> None:
    """Create ``count`` locks, each acquired while holding ``outer`` (a new order edge), and drop them."""
    for _ in range(count):
        with outer:
            lock = tracedthreading.Lock()
            with lock:
                pass


def test_dropped_locks_leave_no_trace_in_memory() -> None:
    """tracemalloc growth over a churn of 20,000 locks stays under 512 KiB, and the registries stay small."""
    outer = tracedthreading.Lock(name="outer")
    _churn(outer, 5_000)  # warm up: folded names, stack cache, histogram buckets
    gc.collect()
    tracemalloc.start()
    try:
        _stats.drain()  # dead locks' counters wait in a queue of at most _DRAIN_AT: measure without it
        before = tracemalloc.get_traced_memory()[0]
        _churn(outer, CHURN)
        gc.collect()
        _stats.drain()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert after - before < LIMIT, f"grew {after - before} bytes over {CHURN} locks"
    graph = _lockorder.stats()
    assert graph["nodes"] <= 3 and graph["edges"] <= 2, graph
    assert graph["names"] <= 3 and graph["pending"] == 0, graph
    assert len(_stats._live) <= 2  # outer, plus at most the last churned lock
    assert len(_stats._dead) < _stats._DRAIN_AT


def test_dead_locks_fold_into_one_record_per_name() -> None:
    """Every dropped lock's acquisitions survive in the per-name aggregate; the instance count is exact."""
    outer = tracedthreading.Lock(name="outer")
    _churn(outer, 10_000)
    gc.collect()
    snap = tracedthreading.snapshot()
    churned = [s for s in snap.locks if s.name.startswith(f"{__name__}:")]
    assert len(churned) == 1
    assert churned[0].instances == 10_000
    assert churned[0].acquisitions == 10_000
    assert snap.lock("outer").acquisitions == 10_000
    assert len(_stats._folded) <= 2


def _use_and_drop(names: list[str], kind: str = "lock") -> None:
    """A Lock (or RLock, Semaphore) per name, taken once and dropped."""
    make = {"lock": tracedthreading.Lock, "rlock": tracedthreading.RLock,
            "semaphore": tracedthreading.Semaphore}[kind]
    for name in names:
        primitive = make(name=name)
        if kind == "semaphore":
            primitive.acquire()
            primitive.release()
            with _stats.lock:
                primitive._counts()  # a Semaphore records contended acquires only: make it recorded
        else:
            with primitive:
                pass
    del primitive
    gc.collect()


@pytest.mark.parametrize("kind", ["lock", "rlock"])
def test_names_of_dead_locks_beyond_max_dead_names_fold_into_one_counted_row(kind: str) -> None:
    """max_dead_names=5, 60 short-lived locks with 60 names: 5 rows by name, one "(other names)" row
    counting the other 55 names, their acquisitions and instances; no per-name record is left behind."""
    tracedthreading.configure(max_dead_names=5)
    _use_and_drop([f"conn-{i}" for i in range(60)], kind)
    snap = tracedthreading.snapshot()
    rows = [s for s in snap.locks if s.kind == kind]
    by_name = [s for s in rows if s.name.startswith("conn-")]
    assert len(by_name) == 5 and all(s.acquisitions == 1 and s.folded_names == 0 for s in by_name)
    other = snap.lock(_stats.OTHER_NAMES, kind)
    assert (other.folded_names, other.instances, other.acquisitions) == (55, 55, 55)
    assert sum(s.acquisitions for s in rows) == 60
    kept = [ident for ident in _stats._name_stats
            if ident[0] is not None and ident[0].startswith("conn-") and ident[3] == kind]
    assert len(kept) <= 5
    assert len(_stats._folded) <= 5 + 1


def test_names_of_live_locks_are_never_folded() -> None:
    """Over the bound, a name with a live lock keeps its own row (its dead instances too); once its last
    lock dies it folds like the rest."""
    tracedthreading.configure(max_dead_names=2)
    _use_and_drop(["gone-a", "gone-b"])  # the 2 kept rows
    live = [tracedthreading.Lock(name=f"live-{i}") for i in range(10)]
    for lock in live:
        with lock:
            pass
    _use_and_drop([f"live-{i}" for i in range(10)])  # a dead instance of each live name
    _use_and_drop([f"gone-{i}" for i in range(20)])  # dead names beyond the bound
    snap = tracedthreading.snapshot()
    for i in range(10):
        row = snap.lock(f"live-{i}")
        assert (row.instances, row.acquisitions, row.folded_names) == (2, 2, 0)
    assert snap.lock(_stats.OTHER_NAMES).folded_names == 20
    del live, lock
    gc.collect()
    snap = tracedthreading.snapshot()
    assert not [s for s in snap.locks if s.name.startswith("live-")]
    other = snap.lock(_stats.OTHER_NAMES)
    assert (other.folded_names, other.instances) == (30, 40)
    assert sum(s.acquisitions for s in snap.locks if s.kind == "lock") == 2 + 20 + 20


def test_folded_names_keep_their_hold_maximum_and_histogram() -> None:
    """The "(other names)" row's hold maximum and percentiles include the holds of the names folded in."""
    tracedthreading.configure(max_dead_names=1)
    _use_and_drop(["first"])
    slow = tracedthreading.Lock(name="slow")
    with slow:
        time.sleep(0.05)
    del slow
    _use_and_drop(["other"])
    other = tracedthreading.snapshot().lock(_stats.OTHER_NAMES)
    assert other.folded_names == 2 and other.hold_max >= 0.05
    assert sum(other.hold_hist) >= 1


def test_dead_semaphore_names_fold_too() -> None:
    """Named Semaphores made and dropped: the same bound, the same "(other names)" row of their kind."""
    tracedthreading.configure(max_dead_names=3)
    keep = tracedthreading.Semaphore(name="sem-live")
    with _stats.lock:
        keep._counts()
    _use_and_drop([f"sem-{i}" for i in range(10)], "semaphore")
    _use_and_drop(["sem-live"], "semaphore")
    snap = tracedthreading.snapshot()
    names = [s.name for s in snap.locks if s.kind == "semaphore"]
    assert "sem-live" in names
    assert snap.lock("sem-live").instances == 2
    assert snap.lock(_stats.OTHER_NAMES, "semaphore").folded_names == 10 - 3
    assert len(names) == 3 + 1 + 1


def test_zero_dead_names_folds_every_dead_name_and_the_setting_reads_back() -> None:
    """max_dead_names=0: every dead name folds at once; the default is 10,000."""
    assert _config.CONFIG.max_dead_names == 10_000
    tracedthreading.configure(max_dead_names=0)
    _use_and_drop(["x", "y"])
    snap = tracedthreading.snapshot()
    assert [(s.name, s.folded_names) for s in snap.locks] == [(_stats.OTHER_NAMES, 2)]
