"""Memory: creating and dropping many locks, each one an order edge from a long-lived lock, stays bounded.

Tracing allocations makes this ~5x slower, so the test churns 20,000 locks (measured growth limit: 512 KiB);
``benchmarks/stress.py`` does the full 1,000,000 and prints the growth (README, section "guarantees").
"""

from __future__ import annotations

import gc
import tracemalloc

import tracedthreading
from tracedthreading import _lockorder, _stats

CHURN = 20_000
LIMIT = 512 * 1024


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
