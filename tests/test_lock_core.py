"""The lock core: a real ``_thread`` lock underneath, both hot paths (C and pure Python), faults.

Every behaviour test runs on each implementation built here (``IMPLS``): the pure-Python classes always,
the C ones when the extension is built. Guarantees only the C path gives (each call atomic with respect
to signals and finalizers, as the stdlib's) are tested on the C classes; the pure path's own guarantee
(a release never leaves the real lock held) on the pure classes.
"""

from __future__ import annotations

import copy
import gc
import os
import pickle
import random
import signal
import subprocess
import sys
import threading as std
import time
import weakref
from collections.abc import Callable
from typing import Any

import pytest

import tracedthreading
from tracedthreading import _cext, _lockcore, _lockorder, _primitives, _stats, _threads
from tracedthreading.testing import capture_events, events_named, wait_until_blocked

PURE = [(_primitives.PyLock, "pure-Lock"), (_primitives.PyRLock, "pure-RLock")]
C = [(cls, name) for cls, name in ((_primitives.CLock, "C-Lock"), (_primitives.CRLock, "C-RLock")) if cls is not None]
IMPLS = pytest.mark.parametrize("factory", [cls for cls, _ in PURE + C], ids=[name for _, name in PURE + C])
LOCKS = pytest.mark.parametrize(
    "factory", [cls for cls, name in PURE + C if name.endswith("-Lock")],
    ids=[name for _, name in PURE + C if name.endswith("-Lock")],
)
# The C hot path's own guarantees: in the pass that runs the pure path (TRACEDTHREADING_PURE_PYTHON=1, or
# no extension built) there is no C class, and these say so (CI's default pass runs them).
C_SKIP = pytest.mark.skip(reason=f"no C hot path in this process ({_cext.describe()}); the C tests run where it is")


def c_params(values: list[tuple[Any, str]]) -> list[Any]:
    """``pytest.param``s of the C variants, or one skipped placeholder saying why there are none."""
    if not values:
        return [pytest.param(None, marks=C_SKIP, id="C")]
    return [pytest.param(value, id=name) for value, name in values]


C_IMPLS = pytest.mark.parametrize("factory", c_params(C))
needs_signals = pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="needs POSIX signals")


def is_rlock(factory: Any) -> bool:
    return factory._kind == "rlock"


def test_public_classes_are_the_c_ones_when_built() -> None:
    """The C hot path is used whenever it is built and not switched off; the choice is one line."""
    if _cext.speedups is not None:
        assert tracedthreading.Lock is _primitives.CLock and tracedthreading.RLock is _primitives.CRLock
        assert "C extension" in _cext.describe()
    else:
        assert tracedthreading.Lock is _primitives.PyLock and tracedthreading.RLock is _primitives.PyRLock
        assert "pure Python" in _cext.describe()


def test_an_extension_built_from_other_sources_is_not_used() -> None:
    """A ``_speedups`` left from an older build (an editable install not rebuilt) does not match the
    Python code: the pure path runs, and the one-line notice says why and what to do."""
    script = (
        "import sys, types\n"
        "stale = types.ModuleType('tracedthreading._speedups')\n"
        "stale.API = 1\n"
        "sys.modules['tracedthreading._speedups'] = stale\n"
        "import tracedthreading\n"
        "from tracedthreading import _cext, _primitives\n"
        "assert tracedthreading.Lock is _primitives.PyLock, tracedthreading.Lock\n"
        "print(_cext.describe())\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "TRACEDTHREADING_PURE_PYTHON"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        "lock hot path: pure Python (the C extension was built from other sources (API 1, this code needs "
        f"{_cext.API}): reinstall to rebuild it)"
    )


# -- the real lock underneath ---------------------------------------------------------------------


@IMPLS
def test_state_lives_in_a_real_lock_and_the_type_never_changes(factory: type) -> None:
    """locked() is the real lock's; taking and releasing never change the type; names look stdlib-like."""
    lock = factory(name="real")
    kind = type(lock)
    assert not lock.locked()
    with lock:
        assert lock.locked() and type(lock) is kind
        assert repr(lock).startswith(f"<locked tracedthreading.{kind.__name__} object")
    assert not lock.locked() and type(lock) is kind
    assert repr(lock).startswith(f"<unlocked tracedthreading.{kind.__name__} object")


@IMPLS
def test_no_wakeup_is_lost_under_mixed_blocking_and_timed_acquires(factory: type) -> None:
    """Eight threads hammer one lock, half with short timeouts: the count is exact, nobody hangs."""
    lock = factory(name="hammered")
    box = [0]
    successes = [0] * 8
    rounds = 800

    def worker(index: int) -> None:
        rng = random.Random(index)
        for _ in range(rounds):
            if index % 2 and not lock.acquire(timeout=rng.choice((0, 0.0001, 0.001))):
                continue
            if not index % 2:
                lock.acquire()
            try:
                value = box[0]
                if rng.random() < 0.05:
                    time.sleep(0)  # give up the GIL while holding: real waiters pile up
                box[0] = value + 1
                successes[index] += 1
            finally:
                lock.release()

    threads = [std.Thread(target=worker, args=(i,)) for i in range(8)]
    lock.acquire()  # held while they start: at least one contention, however the machine schedules them
    for thread in threads:
        thread.start()
    wait_until_blocked(threads[0], lock, timeout=30)
    lock.release()
    for thread in threads:
        thread.join(60)
        assert not thread.is_alive(), "a waiter was never woken"
    assert box[0] == sum(successes)
    assert successes[0] == rounds  # the blocking workers always get the lock
    assert not lock.locked()
    stats = tracedthreading.snapshot().lock("hammered", factory._kind)
    assert stats.acquisitions == box[0] + 1  # and the main thread's
    assert stats.contentions > 0 and stats.contentions <= stats.acquisitions + stats.timeouts
    # A wait names the thread that had the lock when it started. The C path records the new owner as
    # the real lock is taken, even before that thread has the GIL back; the pure path only once the
    # new owner runs again (here, where the lock changes hands all the time, that is after most waits began).
    named = sum(count for _, count in stats.blockers)
    if factory in (_primitives.CLock, _primitives.CRLock):
        assert named >= 0.9 * stats.contentions
    else:
        assert named > 0


@IMPLS
def test_a_timed_out_wait_leaves_nothing_behind(factory: type) -> None:
    """A timed acquire that gives up is counted once, is no longer waiting, and the lock works on."""
    lock = factory(name="timed")
    got = std.Event()
    lock.acquire()

    def try_briefly() -> None:
        if lock.acquire(timeout=0.05):
            got.set()
            lock.release()

    thread = std.Thread(target=try_briefly)
    start = time.monotonic()
    thread.start()
    thread.join(5)
    assert time.monotonic() - start >= 0.045
    assert not got.is_set()
    lock.release()
    assert lock.acquire(timeout=0)
    lock.release()
    assert all(h.waiting is None for h in _threads.all_held().values())
    stats = tracedthreading.snapshot().lock("timed")
    assert (stats.contentions, stats.timeouts, stats.acquisitions) == (1, 1, 2)


@IMPLS
@pytest.mark.parametrize("meanwhile", ["reset", "configure"])
def test_a_waiter_gets_the_lock_after_statistics_are_reset_or_thresholds_change(factory: type, meanwhile: str) -> None:
    """reset() and configure() rewrite every live lock's cap while a thread waits: the wait still ends."""
    lock = factory(name="capped")
    lock.acquire()
    got = std.Event()

    def waiter() -> None:
        if lock.acquire(timeout=10):
            got.set()
            lock.release()

    thread = std.Thread(target=waiter)
    thread.start()
    wait_until_blocked(thread, lock)
    if meanwhile == "reset":
        tracedthreading.reset()
    else:
        tracedthreading.configure(held_long_threshold=5.0)
    lock.release()
    thread.join(10)
    assert got.is_set()


@IMPLS
def test_errors_match_the_stdlib_and_leave_the_lock_usable(factory: type) -> None:
    """Releasing an unheld lock raises the stdlib's RuntimeError (fresh or used); bad arguments raise
    the stdlib's ValueError/OverflowError before anything is taken."""
    raw = std.RLock() if is_rlock(factory) else std.Lock()
    lock = factory()
    for target in (raw, lock):
        with pytest.raises(RuntimeError) as error:
            target.release()
        if target is raw:
            expected = str(error.value)
    assert str(error.value) == expected
    assert _stats.primitive(lock._key) is None if lock._key is not None else True  # never used: not registered
    for blocking, timeout, exc in ((False, 1, ValueError), (True, -5, ValueError), (True, 1e300, OverflowError)):
        with pytest.raises(exc):
            raw.acquire(blocking, timeout)
        with pytest.raises(exc):
            lock.acquire(blocking, timeout)
    assert not lock.locked()
    with lock:
        pass
    with pytest.raises(RuntimeError):
        lock.release()
    assert list(_threads.current()) == []


@IMPLS
def test_bound_methods_taken_before_first_use_keep_working(factory: type) -> None:
    """Condition keeps its lock's bound acquire/release: they work for the lock's whole life."""
    lock = factory(name="bound")
    acquire, release = lock.acquire, lock.release
    for _ in range(3):
        assert acquire()
        release()
    cond = tracedthreading.Condition(factory(name="cond-lock"))
    with cond:
        assert not cond.wait(0.001)
    assert tracedthreading.snapshot().lock("bound").acquisitions == 3


def test_rlock_release_paths_keep_every_held_stack_right() -> None:
    """Out-of-order release, another thread's release attempts and re-entered levels leave all stacks intact."""
    for factory in [cls for cls, name in PURE + C if "RLock" in name]:
        tracedthreading.reset()
        a, b, c = (factory(name=n) for n in "abc")
        held = _threads.current()
        a.acquire()
        b.acquire()
        a.release()  # out of order: b stays held, on top
        assert list(held) == [b._key]
        b.acquire()  # re-entered: a second level
        outcome: list[object] = []

        def other() -> None:
            with c:
                for _ in range(2):
                    try:
                        b.release()
                    except RuntimeError as error:
                        outcome.append(str(error))
                outcome.append(list(_threads.current()) == [c._key])

        thread = std.Thread(target=other)
        thread.start()
        thread.join(10)
        assert outcome == ["cannot release un-acquired lock"] * 2 + [True]
        assert b._recursion_count() == 2 and list(held) == [b._key]
        b.__exit__(None, None, None)
        b.release()
        assert list(held) == [] and not b.locked()
        with pytest.raises(RuntimeError, match="cannot release un-acquired lock"):
            b.release()
        assert tracedthreading.snapshot().lock("b").acquisitions == 1


def test_one_held_stack_per_thread_for_life_with_a_barrier_while_logging() -> None:
    """A thread's held stack is one list for its whole life; while tracedthreading logs, a barrier hides
    what the thread holds from the order graph (handler locks make no edges with the program's)."""
    stack = _threads.current()
    lock = tracedthreading.Lock(name="outer")
    handler_lock = tracedthreading.Lock(name="handler")
    seen = []

    def sink(event: dict[str, Any]) -> None:
        if event["event"] == "lock.held_long":
            with handler_lock:
                seen.append((list(_threads.current()), _threads.visible(_threads.current())))

    tracedthreading.configure(held_long_threshold=0)
    from tracedthreading import _events

    _events.add_sink(sink)
    inner = tracedthreading.Lock(name="inner")  # alive: a dead lock's edges leave the graph
    try:
        with lock:
            with inner:
                pass
    finally:
        _events.remove_sink(sink)
    assert _threads.current() is stack and list(stack) == []
    assert seen and all(visible == [handler_lock._key] for _, visible in seen)
    assert seen[0][0] == [lock._key, _threads.BARRIER, handler_lock._key]
    names = {(e.src, e.dst) for e in _lockorder.edges()}
    assert ("outer", "handler") not in names and ("outer", "inner") in names


@IMPLS
def test_contended_event_names_the_holder(factory: type) -> None:
    """The holder's id and name are taken when the wait starts (it may have ended by the time the event is built)."""
    tracedthreading.configure(contended_threshold=0)
    lock = factory(name="held")
    holding, go = std.Event(), std.Event()
    holder_ident: list[int] = []

    def holder() -> None:
        holder_ident.append(std.get_ident())
        with lock:
            holding.set()
            go.wait(10)

    def waiter() -> None:
        with lock:
            pass

    thread = std.Thread(target=holder, name="the-holder")
    with capture_events() as events:
        thread.start()
        holding.wait(10)
        other = std.Thread(target=waiter)
        other.start()
        wait_until_blocked(other, lock)
        go.set()
        other.join(10)
        thread.join(10)
    (event,) = events_named(events, "lock.contended")
    assert event["holder"] == "the-holder" and event["holder_id"] == holder_ident[0]


@IMPLS
def test_concurrent_first_takes_register_the_lock_once(factory: type) -> None:
    """Threads taking a never-used lock at once: one key, one registry entry, every take counted."""
    for _ in range(30):
        lock = factory(name="race")
        barrier = std.Barrier(4)
        seen: list[int] = []

        def take() -> None:
            barrier.wait(30)
            with lock:
                seen.append(lock._key)

        threads = [std.Thread(target=take) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(5)
        assert len(set(seen)) == 1 and len(seen) == 4
        assert _stats.primitive(seen[0]) is lock


@IMPLS
def test_unused_locks_are_collected_without_a_trace(factory: type) -> None:
    """Locks never taken leave no registry entry and no queued counters when they die."""
    gc.collect()
    before = (len(_stats._live), len(_stats._dead_locks), len(_stats._dead))
    ref = weakref.ref(factory())
    gc.collect()
    assert ref() is None
    for _ in range(10_000):
        factory()
    assert (len(_stats._live), len(_stats._dead_locks), len(_stats._dead)) == before


@IMPLS
def test_dead_locks_of_a_name_add_up_exactly_whatever_way_they_died(factory: type) -> None:
    """1,000 locks of one name, each taken twice (an RLock once more, re-entered) and dropped; one dropped
    while held; one with a failed try (a rare counter). The name's row counts every instance,
    acquisition and re-entry. On the C path the common deaths add up in C: together they queue one
    record until the fold, however many die."""
    rlock = is_rlock(factory)
    gc.collect()
    _stats.drain()
    queued = len(_stats._dead_locks)
    for _ in range(1_000):
        lock = factory(name="churned")
        for _ in range(2):
            with lock:
                if rlock:
                    with lock:
                        pass
    del lock
    gc.collect()
    if factory in (_primitives.CLock, _primitives.CRLock):
        assert len(_stats._dead_locks) == queued + 1
    held = factory(name="churned")
    held.acquire()
    del held  # dropped while held: legal, and counted
    tried = factory(name="churned")
    with tried:
        tried_again = threading_other_thread_try(tried)
    del tried
    gc.collect()
    row = tracedthreading.snapshot().lock("churned", factory._kind)
    assert tried_again is False
    assert (row.instances, row.acquisitions) == (1_002, 2_002)
    assert row.reentries == (2_000 if rlock else 0)
    assert row.failures == 1 and row.hold_total > 0


def threading_other_thread_try(lock: Any) -> bool:
    """``lock.acquire(False)`` from another thread (joined, bounded): what it returned."""
    got: list[bool] = []
    thread = std.Thread(target=lambda: got.append(lock.acquire(False)))
    thread.start()
    thread.join(10)
    assert not thread.is_alive()
    return got[0]


@IMPLS
def test_a_reset_drops_what_dead_locks_left_unfolded(factory: type) -> None:
    """Locks that died before a reset leave nothing behind it, even those that had not been folded yet;
    those that die after it count from zero."""
    for _ in range(50):
        with factory(name="before-reset"):
            pass
    gc.collect()  # dead, not folded: a drain comes with the snapshot
    tracedthreading.reset()
    for _ in range(3):
        with factory(name="before-reset"):
            pass
    gc.collect()
    row = tracedthreading.snapshot().lock("before-reset", factory._kind)
    assert (row.instances, row.acquisitions) == (3, 3)


@IMPLS
def test_a_new_lock_of_a_name_starts_from_the_names_current_maximum(factory: type) -> None:
    """A release longer than its name's maximum hold goes to the slow path, which records the new
    maximum; a lock of that name made afterwards takes it as its cap (the C path caches the name it
    last saw: a new maximum, or a reset, must reach it), so shorter holds stay on the fast path."""
    first = factory(name="capped")
    with first:
        pass
    with first:
        time.sleep(0.03)
    assert first._ns.hold_max >= 0.03
    later = factory(name="capped")
    with later:
        cap = later._cap  # as its first take set it (a release past it would set it again)
    assert cap == pytest.approx(first._ns.hold_max)
    tracedthreading.reset()
    after_reset = factory(name="capped")
    with after_reset:
        cap = after_reset._cap
    assert cap == 0.0


@IMPLS
def test_a_failed_first_use_leaves_the_lock_free_and_unregistered(factory: type) -> None:
    """The first take registers the lock under its name's shared statistics; if that raises (here a
    KeyboardInterrupt from a poisoned entry, once), the take is undone (the lock is free, no stack holds
    it) and the next take registers it."""
    lock = factory(name="first-use")
    ident = ("first-use", None, 0, lock._kind)
    real = _stats.name_stats(*ident)
    raised = []

    class Poisoned:
        """Raises on the first read of ``hold_max`` (then reads the real statistics' own)."""

        hist = real.hist
        samples = 0

        @property
        def hold_max(self) -> float:
            if not raised:
                raised.append(True)
                raise KeyboardInterrupt
            return real.hold_max

    _stats._name_stats[ident] = Poisoned()  # type: ignore[assignment]
    try:
        with pytest.raises(KeyboardInterrupt):
            lock.acquire()
        assert not lock.locked() and list(_threads.current()) == []
        assert lock._key is None or _stats.primitive(lock._key) is None
        _stats._name_stats[ident] = real
        with lock:
            assert list(_threads.current()) == [lock._key]
        assert raised and _stats.primitive(lock._key) is lock
    finally:
        _stats._name_stats[ident] = real


# -- histograms, exact counts, thresholds on live locks -------------------------------------------


@IMPLS
def test_counts_and_totals_are_exact_and_the_histogram_weights_add_up(factory: type) -> None:
    """Counts and totals are exact; the histogram (sampled on the pure path, exact in C) adds up to the
    holds it stands for; a maximum is never missed."""
    lock = factory(name="many")
    n = 20_000
    for _ in range(n):
        lock.acquire()
        lock.release()
    stats = tracedthreading.snapshot().lock("many")
    assert stats.acquisitions == n
    sampled = sum(stats.hold_hist)
    assert n - 200 < sampled <= n
    if factory in (_primitives.CLock, _primitives.CRLock):
        assert sampled == n
    assert stats.hold_max <= stats.hold_total
    assert stats.hold_p50 <= stats.hold_p99 <= stats.hold_max
    total = stats.hold_total
    lock.acquire()
    time.sleep(0.02)
    lock.release()
    after = tracedthreading.snapshot().lock("many")
    assert after.acquisitions == n + 1
    assert after.hold_total - total >= 0.019
    assert after.hold_max >= 0.019


def test_pure_sampling_does_not_alias_with_periodic_holds() -> None:
    """One long hold in every 8: the pure path's sampled histogram still shows about one eighth long holds."""
    lock = _primitives.PyLock(name="periodic")
    for i in range(16_000):
        lock.acquire()
        if i % 8 == 7:
            end = time.perf_counter() + 0.0002
            while time.perf_counter() < end:
                pass
        lock.release()
    hist = tracedthreading.snapshot().lock("periodic").hold_hist
    long_bucket = (100_000).bit_length()  # holds of 100 us and more
    long_share = sum(hist[long_bucket:]) / sum(hist)
    assert 0.06 < long_share < 0.2, long_share


@IMPLS
def test_lowering_held_long_threshold_applies_to_live_locks(factory: type) -> None:
    """A lock whose max was long before the threshold was lowered still reports the next long hold."""
    lock = factory(name="slow")
    tracedthreading.configure(held_long_threshold=None)
    with lock:
        time.sleep(0.03)  # the maximum is now 30 ms
    tracedthreading.configure(held_long_threshold=0.005)
    with capture_events() as events:
        with lock:
            time.sleep(0.01)  # below the old maximum, above the new threshold
    reports = events_named(events, "lock.held_long")
    assert len(reports) == 1 and reports[0]["lock"] == "slow" and reports[0]["hold"] >= 0.009


# -- no class switching, subclasses, copies ---------------------------------------------------------


@IMPLS
def test_subclasses_work_as_the_stdlib_ones_do(factory: type) -> None:
    """A subclass keeps its type, its own state and methods, and is traced under its own name."""

    class Audited(factory):  # type: ignore[misc,valid-type]
        def __init__(self, label: str) -> None:
            super().__init__(name=label)
            self.taken = 0

        def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
            got = super().acquire(blocking, timeout)
            self.taken += got
            return got

    lock = Audited("audited")
    for _ in range(3):
        with lock:
            pass
    lock.acquire()
    lock.release()
    assert type(lock) is Audited and isinstance(lock, factory)
    assert lock.taken == 1  # `with` uses __enter__, not acquire (as the stdlib's RLock subclasses do)
    assert tracedthreading.snapshot().lock("audited").acquisitions == 4
    ref = weakref.ref(lock)
    del lock
    gc.collect()
    assert ref() is None


@IMPLS
def test_copy_deepcopy_and_pickle_refuse_like_the_stdlib(factory: type) -> None:
    """A lock cannot be copied or pickled (the stdlib raises TypeError; a copy would share the real lock)."""
    raw = std.RLock() if is_rlock(factory) else std.Lock()
    lock = factory(name="unique")
    for operation in (copy.copy, copy.deepcopy, pickle.dumps):
        with pytest.raises(TypeError):
            operation(raw)
        with pytest.raises(TypeError, match="cannot pickle"):
            operation(lock)


@pytest.mark.skipif(sys.version_info < (3, 13), reason="threading.Lock is a class from 3.13 on")
def test_isinstance_against_the_patched_313_lock_class_holds_after_use() -> None:
    """On 3.13 ``threading.Lock`` is a class: under the patch a traced Lock is one before and after use."""
    with tracedthreading.patched():
        lock = std.Lock()
        assert isinstance(lock, std.Lock)
        with lock:
            pass
        assert isinstance(lock, std.Lock) and not isinstance(tracedthreading.RLock(), std.Lock)


# -- faults ---------------------------------------------------------------------------------------


@LOCKS
def test_cross_thread_release_keeps_counts_exact_and_adds_no_false_edges(factory: type) -> None:
    """A Lock released by another thread (legal), 10,000 times while the holder keeps taking other
    locks: the holder's stack stays exact, counts are exact, no inversion, no error."""
    handoff = factory(name="handoff")
    inner = factory(name="inner")
    n = 10_000
    taken, released = std.Semaphore(0), std.Semaphore(0)
    errors: list[BaseException] = []

    def releaser() -> None:
        try:
            for _ in range(n):
                taken.acquire()
                handoff.release()
                released.release()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
            released.release()

    thread = std.Thread(target=releaser)
    thread.start()
    try:
        for _ in range(n):
            handoff.acquire()
            taken.release()
            with inner:  # the holder pushes and pops while the other thread removes `handoff`
                pass
            assert released.acquire(timeout=10)
    finally:
        thread.join(30)
    assert not errors and not thread.is_alive()
    assert list(_threads.current()) == []
    snap = tracedthreading.snapshot()
    assert snap.lock("handoff").acquisitions == n and snap.lock("inner").acquisitions == n
    assert snap.inversions == ()


def _raise_at_every_return(call: Callable[[], Any], frames: set[str], check: Callable[[], None]) -> int:
    """Run ``call`` again and again, raising KeyboardInterrupt at the k-th call/return inside the
    functions named ``frames`` (where Python itself checks for signals), k = 1, 2, ...; ``check`` runs
    after each interrupted run. Returns how many points were hit."""
    point = 0
    while True:
        point += 1
        count = [0]

        def profile(frame: Any, event: str, arg: Any) -> None:
            if event in ("c_return", "return") and frame.f_code.co_name in frames:
                count[0] += 1
                if count[0] == point:
                    raise KeyboardInterrupt

        sys.setprofile(profile)
        try:
            call()
        except KeyboardInterrupt:
            pass
        else:
            return point - 1
        finally:
            sys.setprofile(None)
        check()


@pytest.mark.parametrize("factory", [cls for cls, _ in PURE], ids=[name for _, name in PURE])
@pytest.mark.parametrize("how", ["release", "__exit__"])
def test_pure_release_never_leaves_the_lock_held_whatever_exception_lands(factory: type, how: str) -> None:
    """An exception raised at every point of a pure-Python release where Python checks for signals
    (after each call inside it): the real lock is always released, the stack never keeps the key."""
    lock = factory(name="sturdy")
    other = factory(name="other")

    def run() -> None:
        with other:
            lock.acquire()
            if how == "release":
                lock.release()
            else:
                lock.__exit__(None, None, None)

    def check() -> None:
        assert not lock.locked(), "the release left the real lock held"
        assert lock._key not in _threads.current()
        assert not other.locked()

    points = _raise_at_every_return(run, {"release", "__exit__", "_sample"}, check)
    assert points >= 3  # the clock, the stack removal and the release itself at least
    assert list(_threads.current()) == []


def _body(lock: Any, out: list[int]) -> None:
    with lock:
        out.append(1)
        out.append(2)
    out.append(3)


def _enable_opcode_events() -> None:
    """CPython 3.12 delivers "opcode" events to a trace function only once some frame has set
    ``f_trace_opcodes`` before ``sys.settrace`` is called: set it once on a throwaway frame."""

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        frame.f_trace_opcodes = True
        return None

    sys.settrace(tracer)
    try:
        (lambda: None)()
    finally:
        sys.settrace(None)


def _leaks_per_opcode(lock: Any) -> list[bool]:
    """Raise KeyboardInterrupt before each bytecode of :func:`_body` in turn (opcode tracing); for each,
    whether the lock was left held (then released, for the next run)."""
    code = _body.__code__
    _enable_opcode_events()
    leaks = []
    point = 0
    while True:
        point += 1
        count = [0]

        def tracer(frame: Any, event: str, arg: Any) -> Any:
            if frame.f_code is code:
                frame.f_trace_opcodes = True
                if event == "opcode":
                    count[0] += 1
                    if count[0] == point:
                        raise KeyboardInterrupt
                return tracer
            return None

        sys.settrace(tracer)
        try:
            _body(lock, [])
        except KeyboardInterrupt:
            pass
        else:
            return leaks
        finally:
            sys.settrace(None)
        held = lock._is_owned() if hasattr(lock, "_is_owned") else lock.locked()
        leaks.append(held)
        if held:
            lock.release()


@C_IMPLS
def test_c_with_behaves_as_the_stdlib_whatever_bytecode_an_exception_lands_on(factory: type) -> None:
    """KeyboardInterrupt raised before every bytecode of a ``with lock:`` block: the lock is left held at
    exactly the points where the stdlib's is (only between the block's end and the call of
    ``__exit__``, where no signal can land: Python checks for them only after calls), and the held stack
    always agrees with the lock."""
    raw = std.RLock() if is_rlock(factory) else std.Lock()
    ours = _leaks_per_opcode(factory(name="with"))
    assert len(ours) > 10
    assert ours == _leaks_per_opcode(raw)
    assert list(_threads.current()) == []


SIGNAL_WITH_SCRIPT = r"""
import signal, sys, time
from tracedthreading import _primitives, _threads
lock = getattr(_primitives, sys.argv[1])(name="stormed")
armed = [False]
def handler(signum, frame):
    if armed[0]:  # raise only around the lock operations (a loop's own jumps check for signals too)
        armed[0] = False
        raise KeyboardInterrupt
signal.signal(signal.SIGALRM, handler)
signal.setitimer(signal.ITIMER_REAL, 0.0001, 0.0001)  # a timer signal: lands wherever Python checks
deadline = time.monotonic() + 40
interrupted = done = 0
bad = None
while (done < 50000 or interrupted < 1000) and bad is None and time.monotonic() < deadline:
    try:
        armed[0] = True
        with lock:  # (a bare acquire() then release() is not exception-safe, with any lock)
            done += len("x")  # a call: a signal may land inside the block too (then __exit__ gets it)
        armed[0] = False
    except KeyboardInterrupt:
        interrupted += 1
    armed[0] = False
    if lock.locked() or _threads.current():
        bad = (done, lock.locked(), list(_threads.current()))
signal.setitimer(signal.ITIMER_REAL, 0, 0)
print("leaked", bad) if bad else print("done", interrupted >= 200, interrupted)
"""


@needs_signals
@pytest.mark.parametrize("name", c_params([(n, n) for n, cls in (("CLock", _primitives.CLock),
                                                                  ("CRLock", _primitives.CRLock)) if cls is not None]))
def test_c_keyboard_interrupt_inside_with_never_leaks_the_lock(name: str) -> None:
    """A storm of real signals whose handler raises KeyboardInterrupt into ``with lock:`` loops: after
    every interrupt the lock is free and the held stack empty, as with the stdlib's lock."""
    proc = subprocess.run([sys.executable, "-c", SIGNAL_WITH_SCRIPT, name], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.split()[:2] == ["done", "True"], proc.stdout


@C_IMPLS
def test_c_release_and_acquire_have_no_point_for_an_exception_to_land(factory: type) -> None:
    """The C hot path runs no Python code between taking the real lock and recording it: there is no
    call or return inside acquire/release where a signal handler's exception could land."""
    lock = factory(name="atomic")

    def run() -> None:
        lock.acquire()
        lock.release()
        with lock:
            pass

    points = _raise_at_every_return(run, {"acquire", "release", "__enter__", "__exit__"}, lambda: None)
    assert points == 0
    assert not lock.locked() and list(_threads.current()) == []


RLOCK_FINALIZER_SCRIPT = r"""
import gc, sys
import tracedthreading
from tracedthreading import _primitives
RLock = getattr(_primitives, sys.argv[1])
shared = RLock(name="shared")
other = tracedthreading.Lock(name="other")
ran = [0]
class Resource:
    def __init__(self):
        self.me = self                       # a cycle: freed by the collector, at whatever allocation
    def __del__(self):
        with shared:                         # the same RLock the interrupted code is taking or releasing
            ran[0] += 1
gc.set_threshold(1, 1, 1)                    # collect at (almost) every allocation
for i in range(20000):
    Resource()
    with other:
        with shared:
            with shared:
                pass
gc.collect()
assert not shared.locked()
print("done", ran[0] > 0)
"""


@pytest.mark.parametrize("name", c_params([("CRLock", "CRLock")] if _primitives.CRLock is not None else []))
def test_c_finalizer_taking_the_same_rlock_during_acquire_works_as_with_the_stdlib(name: str) -> None:
    """A GC-run __del__ that takes the RLock the thread is acquiring or releasing re-enters it (the
    owner is recorded in the same step as the take), as with the stdlib's RLock."""
    proc = subprocess.run([sys.executable, "-c", RLOCK_FINALIZER_SCRIPT, name], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["done", "True"]


SIGNAL_RLOCK_SCRIPT = r"""
import os, signal, sys, threading
from tracedthreading import _primitives
RLock = getattr(_primitives, sys.argv[1])
shared = RLock(name="shared")
hits = [0]
def handler(signum, frame):
    with shared:                 # the interrupted code may be entering or leaving this very lock
        hits[0] += 1
signal.signal(signal.SIGUSR1, handler)
stop = threading.Event()
def sender():
    while not stop.is_set():
        os.kill(os.getpid(), signal.SIGUSR1)
        stop.wait(0.0002)
thread = threading.Thread(target=sender, daemon=True)
thread.start()
for _ in range(100000):
    with shared:
        pass
    shared.acquire(); shared.release()
stop.set()
thread.join(5)
assert not shared.locked()
print("done", hits[0] > 0)
"""


@needs_signals
@pytest.mark.parametrize("name", c_params([("CRLock", "CRLock")] if _primitives.CRLock is not None else []))
def test_c_signal_handler_taking_the_rlock_being_entered_or_left_succeeds(name: str) -> None:
    """A signal handler that takes the RLock the main thread is entering or leaving gets it (a re-entry or
    a plain take), as with the stdlib: never a self-wait or a hang."""
    proc = subprocess.run([sys.executable, "-c", SIGNAL_RLOCK_SCRIPT, name], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["done", "True"]


@needs_signals
@C_IMPLS
def test_c_waits_interrupted_at_random_points_never_lose_the_lock_or_hang(factory: type) -> None:
    """The main thread keeps waiting for a lock two threads keep taking, while a signal handler raises
    into it at random points (in the wait, just after it, inside release): every interrupted acquire
    leaves the lock untaken, nobody hangs, the lock ends free and its acquisitions add up."""
    interrupted, taken = run_interrupted_waits(factory, seconds=1.0)
    assert interrupted > 0
    assert tracedthreading.snapshot().lock("interrupted").acquisitions == taken


class Interrupted(Exception):
    pass


def run_interrupted_waits(factory: type, seconds: float) -> tuple[int, int]:
    """Drive the interrupted-waits scenario; returns (interruptions, acquisitions that completed).

    The handler raises only while armed, around the lock calls: elsewhere (the loop's own calls) an
    exception would escape the test, not the lock. A signal can also land just after ``acquire()``
    returned True (Python checks for signals after every call), with any lock, the stdlib's included:
    the tracer knows the owner, so such a take is counted and given back.
    """
    armed = [False]

    def handler(signum: int, frame: object) -> None:
        if armed[0]:
            armed[0] = False
            raise Interrupted

    lock = factory(name="interrupted")
    me = std.get_ident()
    stop = std.Event()
    taken = [0, 0, 0]

    def hammer(index: int) -> None:
        while not stop.is_set():
            with lock:
                taken[index] += 1
                time.sleep(0.0005)

    def interrupter() -> None:
        rng = random.Random(7)
        while not stop.is_set():
            time.sleep(rng.uniform(0.0002, 0.003))
            os.kill(os.getpid(), signal.SIGUSR1)

    previous = signal.signal(signal.SIGUSR1, handler)
    threads = [std.Thread(target=hammer, args=(i,)) for i in (1, 2)]
    sender = std.Thread(target=interrupter)
    interrupted = 0
    try:
        for thread in (*threads, sender):
            thread.start()
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            got = False
            try:
                armed[0] = True
                got = lock.acquire(timeout=0.05)
                armed[0] = False
            except Interrupted:
                interrupted += 1
                if lock._tt_owner() == me:  # taken, then interrupted on the way out of acquire()
                    got = True
            armed[0] = False
            if got:
                taken[0] += 1
                try:
                    armed[0] = True
                    lock.release()
                    armed[0] = False
                except Interrupted:  # raised after the release completed
                    interrupted += 1
                armed[0] = False
    finally:
        armed[0] = False
        signal.signal(signal.SIGUSR1, signal.SIG_IGN)
        stop.set()
        sender.join(10)
        signal.signal(signal.SIGUSR1, previous)
        for thread in threads:
            thread.join(10)
    assert not any(thread.is_alive() for thread in (*threads, sender)), "a thread hung"
    assert lock.acquire(timeout=2), "the lock was left taken by an interrupted acquire"
    lock.release()
    assert not lock.locked() and list(_threads.current()) == []
    return interrupted, sum(taken) + 1


FORK_BUSY_SCRIPT = r"""
import os, sys, threading, time
import tracedthreading
from tracedthreading import _primitives
Lock = getattr(_primitives, sys.argv[1])
tracedthreading.configure(held_long_threshold=0)
lock = Lock(name="busy")
stop = threading.Event()
def busy():
    while not stop.is_set():
        with lock:                      # emits lock.held_long on every release: logging is always busy
            pass
threads = [threading.Thread(target=busy, daemon=True) for _ in range(3)]
for t in threads: t.start()
time.sleep(0.2)
for _ in range(5):
    pid = os.fork()
    if pid == 0:
        from tracedthreading.testing import capture_events
        with capture_events() as events:
            with Lock(name="child"):
                pass
        os._exit(0 if any(e["lock"] == "child" for e in events) else 3)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        print("child failed", status); sys.exit(1)
stop.set()
print("done")
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.parametrize("name", ["PyLock"] + (["CLock"] if _primitives.CLock is not None else []))
def test_a_child_forked_from_a_busy_process_emits_its_first_event_without_hanging(name: str) -> None:
    """Threads busy emitting events (holding tracedthreading's own raw locks) while the process forks:
    the child's first event arrives (every raw lock of ours is made afresh in the child)."""
    proc = subprocess.run([sys.executable, "-W", "ignore", "-c", FORK_BUSY_SCRIPT, name], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.split()[-1] == "done"


@LOCKS
def test_a_reused_thread_id_is_not_taken_for_the_holder(factory: type) -> None:
    """A thread ends holding a Lock; new threads, one of them with the dead thread's id (Linux reuses
    them at once), try to take it: each just times out (no self-wait report, no exception escaping from
    tracedthreading's logging guard), as with the stdlib."""
    lock = factory(name="orphaned")
    dead: list[int] = []

    def take_and_end() -> None:
        lock.acquire()
        dead.append(std.get_ident())

    thread = std.Thread(target=take_and_end)
    thread.start()
    thread.join(10)
    outcomes: list[object] = []
    reused = False

    def try_it() -> None:
        try:
            outcomes.append(lock.acquire(timeout=0.01))
        except BaseException as exc:  # noqa: BLE001 - what escapes is the point
            outcomes.append(exc)

    with capture_events() as events:
        for _ in range(20):
            other = std.Thread(target=try_it)
            other.start()
            reused = reused or other.ident == dead[0]
            other.join(10)
    assert outcomes == [False] * 20
    assert not events_named(events, "lock.self_wait")
    assert lock.locked()
    lock.release()  # a Lock may be released by any thread
    if not reused:
        pytest.skip("no thread id was reused on this platform: the case did not arise")


@pytest.mark.parametrize("how", ["acquire", "__enter__"])
def test_pure_rlock_never_takes_another_threads_hold_for_its_own_reentry(how: str) -> None:
    """The pure RLock's owner is the thread that took it last while a holder is recorded. A thread that
    took it last, switched out just after its token test (where Python may switch threads), while
    another thread takes the lock, must wait for it, not count a re-entry: the test reads ``_holder``
    before ``_me``, and a taker writes ``_me`` before ``_holder``."""
    lock = _primitives.PyRLock(name="switch")
    with lock:  # this thread took it last
        pass
    taken, go = std.Event(), std.Event()

    def other() -> None:
        with lock:
            taken.set()
            go.wait(0.5)  # long enough for a timed acquire to fail; __enter__ then takes it

    thread = std.Thread(target=other)
    switched: list[str] = []

    def profile(frame: Any, event: str, arg: Any) -> None:
        # Right after the token test returns in acquire/__enter__: the other thread takes the lock.
        if event == "c_return" and getattr(arg, "__name__", "") == "_is_owned" and not switched:
            switched.append(frame.f_code.co_name)
            thread.start()
            assert taken.wait(30)

    sys.setprofile(profile)
    try:
        if how == "acquire":
            got = lock.acquire(True, 0.1)
        else:
            got = lock.__enter__()  # returns once the other thread let go
    finally:
        sys.setprofile(None)
        go.set()
        thread.join(30)
    assert switched == [how]
    if how == "acquire":
        assert got is False, "counted a re-entry into a lock another thread held"
    else:
        assert got is True and lock._is_owned() and lock._recursion_count() == 1 and lock._reentries == 0
        lock.release()
    assert not lock.locked() and not thread.is_alive()
