"""Statistics in deterministic scenarios: interleavings forced with Events, then counts and bounds checked."""

from __future__ import annotations

import threading as std
import time

import pytest

import tracedthreading
from tracedthreading import Snapshot


def _hold_while(lock: tracedthreading.Lock, started: std.Event, release: std.Event) -> std.Thread:
    def holder() -> None:
        with lock:
            started.set()
            release.wait(5)

    thread = std.Thread(target=holder, name="holder")
    thread.start()
    assert started.wait(5)
    return thread


def _wait_until_blocked(lock: object, timeout: float = 5.0) -> None:
    """Spin until some thread is blocked on ``lock`` (its Held.waiting points at it)."""
    from tracedthreading import _threads

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(held.waiting == lock._key for held in _threads.all_held().values()):
            return
        time.sleep(0.001)
    raise AssertionError("no thread blocked on the lock")


@pytest.mark.parametrize("factory", [tracedthreading.Lock, tracedthreading.RLock])
def test_uncontended_counts_and_holds(factory: type) -> None:
    """N uncontended acquisitions: N acquisitions, 0 contentions, hold total > 0 and max <= total."""
    lock = factory(name="plain")
    for _ in range(100):
        with lock:
            pass
    lock.acquire()
    lock.release()
    stats = tracedthreading.snapshot().lock("plain")
    assert stats.acquisitions == 101
    assert stats.contentions == 0 and stats.wait_total == 0.0
    assert 0 < stats.hold_max <= stats.hold_total
    assert sum(stats.hold_hist) == 101


def test_currently_held_acquisition_is_counted() -> None:
    """A lock held at snapshot time already counts its acquisition."""
    lock = tracedthreading.Lock(name="held-now")
    with lock:
        assert tracedthreading.snapshot().lock("held-now").acquisitions == 1


def test_contended_wait_and_blocker_are_recorded() -> None:
    """A waiter blocked while 'holder' holds the lock: one contention, wait bounded, blocker named."""
    lock = tracedthreading.Lock(name="balance")
    started, release = std.Event(), std.Event()
    holder = _hold_while(lock, started, release)
    waited = []

    def waiter() -> None:
        begin = time.perf_counter()
        with lock:
            waited.append(time.perf_counter() - begin)

    thread = std.Thread(target=waiter)
    thread.start()
    _wait_until_blocked(lock)
    time.sleep(0.05)
    release.set()
    thread.join(5)
    holder.join(5)
    stats = tracedthreading.snapshot().lock("balance")
    assert stats.acquisitions == 2
    assert stats.contentions == 1 and stats.timeouts == 0
    assert 0.04 <= stats.wait_total <= waited[0] + 0.001
    assert stats.wait_max == stats.wait_total
    assert stats.blockers == (("holder", 1),)
    assert stats.hold_max >= 0.04  # the holder kept it while the waiter waited
    assert 0.0 < stats.wait_p50 <= 2 * stats.wait_max


def test_timed_out_acquire_counts_as_contention_and_timeout() -> None:
    """acquire(timeout=...) that expires: a contention and a timeout, no acquisition."""
    lock = tracedthreading.Lock(name="t")
    started, release = std.Event(), std.Event()
    holder = _hold_while(lock, started, release)
    assert lock.acquire(timeout=0.05) is False
    release.set()
    holder.join(5)
    stats = tracedthreading.snapshot().lock("t")
    assert (stats.acquisitions, stats.contentions, stats.timeouts) == (1, 1, 1)
    assert stats.wait_total >= 0.04


def test_failed_trylock_is_a_failure_not_a_contention() -> None:
    """acquire(False) on a held lock counts as a failure only."""
    lock = tracedthreading.Lock(name="try")
    started, release = std.Event(), std.Event()
    holder = _hold_while(lock, started, release)
    assert lock.acquire(False) is False
    release.set()
    holder.join(5)
    stats = tracedthreading.snapshot().lock("try")
    assert (stats.failures, stats.contentions, stats.acquisitions) == (1, 0, 1)


def test_rlock_reentries_are_counted_apart_and_hold_is_outermost() -> None:
    """Re-entries are 'reentries'; the hold runs from the outermost acquire to the final release."""
    rlock = tracedthreading.RLock(name="nested")
    with rlock:
        with rlock:
            with rlock:
                time.sleep(0.02)
        time.sleep(0.02)
    stats = tracedthreading.snapshot().lock("nested")
    assert (stats.acquisitions, stats.reentries) == (1, 2)
    assert stats.hold_total >= 0.04


def test_instances_sharing_a_name_are_aggregated_and_dead_ones_folded() -> None:
    """Locks of one creation site fold into one entry, dead instances included."""

    def make() -> tracedthreading.Lock:
        return tracedthreading.Lock()

    keep = make()
    for _ in range(50):
        lock = make()
        with lock:
            pass
    del lock
    with keep:
        pass
    entry = [s for s in tracedthreading.snapshot().locks if s.name == keep.name]
    assert len(entry) == 1
    assert entry[0].instances == 51 and entry[0].acquisitions == 51


def test_reset_clears_statistics() -> None:
    """reset() zeroes live locks' counters and forgets dead ones."""
    lock = tracedthreading.Lock(name="r")
    with lock:
        pass
    tracedthreading.reset()
    assert tracedthreading.snapshot().lock("r").acquisitions == 0


def test_condition_wait_statistics() -> None:
    """Condition.wait: notified waits are acquisitions, expired ones timeouts, and the time is measured."""
    cond = tracedthreading.Condition(name="queue")
    with cond:
        assert cond.wait(0.02) is False
    ready = std.Event()

    def notifier() -> None:
        ready.wait(5)
        with cond:
            cond.notify()

    thread = std.Thread(target=notifier)
    with cond:
        thread.start()
        ready.set()
        assert cond.wait(5) is True
    thread.join(5)
    stats = tracedthreading.snapshot().lock("queue", "condition")
    assert (stats.acquisitions, stats.timeouts, stats.contentions) == (1, 1, 2)
    assert stats.wait_total >= 0.015


def test_semaphore_event_barrier_timer_statistics() -> None:
    """Semaphore waits, Event waits, Barrier passes/broken and Timer lateness are all recorded."""
    sem = tracedthreading.Semaphore(1, name="tellers")
    assert sem.acquire()
    assert sem.acquire(timeout=0.01) is False
    sem.release()
    event = tracedthreading.Event(name="open")
    assert event.wait(0.01) is False
    event.set()
    assert event.wait() is True
    barrier = tracedthreading.Barrier(1, name="start")
    barrier.wait()
    broken = tracedthreading.Barrier(2, name="broken")
    with pytest.raises(std.BrokenBarrierError):
        broken.wait(0.01)
    fired = std.Event()
    timer = tracedthreading.Timer(0.01, fired.set, name="announce")
    timer.start()
    timer.join(5)
    assert fired.is_set()
    snap: Snapshot = tracedthreading.snapshot()
    s = snap.lock("tellers")
    assert (s.kind, s.acquisitions, s.contentions, s.timeouts) == ("semaphore", 1, 1, 1)
    e = snap.lock("open")
    assert (e.kind, e.acquisitions, e.timeouts, e.contentions) == ("event", 1, 1, 1)
    assert snap.lock("start").acquisitions == 1
    b = snap.lock("broken")
    assert (b.broken, b.timeouts) == (1, 1)
    t = snap.lock("announce")
    assert t.kind == "timer" and t.acquisitions == 1 and t.wait_total >= 0.0 and t.hold_total > 0.0


@pytest.mark.parametrize("kind", ["Semaphore", "BoundedSemaphore"])
def test_semaphore_tries_from_many_threads_are_counted_exactly(kind: str) -> None:
    """8 threads try a Semaphore(3) 2,000 times each (a try that gets a permit gives it back): every
    try is counted, as an acquisition or as a failure, exactly; those of a dropped semaphore too; a
    reset in between starts the counts from zero."""
    import gc

    def hammer(semaphore: tracedthreading.Semaphore, got: list[int]) -> None:
        for _ in range(2_000):
            if semaphore.acquire(timeout=0):
                got.append(1)
                semaphore.release()

    def run(name: str) -> int:
        semaphore = getattr(tracedthreading, kind)(3, name=name)
        got: list[int] = []
        threads = [std.Thread(target=hammer, args=(semaphore, got)) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert not any(thread.is_alive() for thread in threads)
        row = tracedthreading.snapshot().lock(name, semaphore._kind)
        assert (row.acquisitions, row.failures) == (len(got), 16_000 - len(got))
        return len(got)

    run("pool")
    tracedthreading.reset()
    got = run("pool")  # the same name, after a reset: only the second run's tries
    gc.collect()
    dropped = run("dropped")
    gc.collect()
    row = tracedthreading.snapshot().lock("dropped", kind.lower())
    assert (row.instances, row.acquisitions, row.failures) == (1, dropped, 16_000 - dropped)
    assert got > 0
    live = getattr(tracedthreading, kind)(1, name="live")
    for _ in range(5):
        assert live.acquire(False) and not live.acquire(timeout=0)
        live.release()
    tracedthreading.reset()  # a live semaphore's counts start again from zero
    assert live.acquire(False) and not live.acquire(False)
    row = tracedthreading.snapshot().lock("live", live._kind)
    assert (row.acquisitions, row.failures) == (1, 1)


def test_snapshot_roundtrip_and_compare(tmp_path: object) -> None:
    """Snapshot.dump/load keep every field; compare_to reports what was added."""
    lock = tracedthreading.Lock(name="x")
    with lock:
        pass
    first = tracedthreading.snapshot()
    with lock:
        pass
    second = tracedthreading.snapshot()
    path = tmp_path / "snap.json"  # type: ignore[operator]
    second.dump(path)
    assert Snapshot.load(path) == second
    rows = {row[0]: row for row in second.compare_to(first)}
    assert rows["x"][2] == 1


def test_snapshot_load_rejects_garbage(tmp_path: object) -> None:
    """Loading something that is not a snapshot names the file."""
    path = tmp_path / "bad.json"  # type: ignore[operator]
    path.write_text('{"locks": [{"name": 3}]}')
    with pytest.raises(ValueError, match="bad.json"):
        Snapshot.load(path)
