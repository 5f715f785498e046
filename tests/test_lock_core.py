"""The lock core: token and waiter queue, fresh and active states, sampled hold histograms."""

from __future__ import annotations

import gc
import os
import random
import signal
import threading as std
import time
import weakref
from collections.abc import Callable

import pytest

import tracedthreading
from tracedthreading import _primitives, _stats, _threads
from tracedthreading.testing import capture_events, events_named

FACTORIES = pytest.mark.parametrize("factory", [tracedthreading.Lock, tracedthreading.RLock], ids=["Lock", "RLock"])


def _waiting(lock: object) -> int:
    waiters = lock._waiters  # type: ignore[attr-defined]
    return 0 if waiters is None else len(waiters)


def _start_queued(target: Callable[[], None], lock: object) -> std.Thread:
    """Start ``target`` in a thread and return once it is queued on ``lock``."""
    thread = std.Thread(target=target)
    thread.start()
    deadline = time.monotonic() + 5
    while _waiting(lock) == 0 and time.monotonic() < deadline:
        time.sleep(0.001)
    assert _waiting(lock) == 1
    return thread


# -- token and waiters -------------------------------------------------------------------------------


@FACTORIES
def test_no_wakeup_is_lost_under_mixed_blocking_and_timed_acquires(factory: type) -> None:
    """Eight threads hammer one lock, half with short timeouts: the count is exact, nobody hangs,
    and the waiter queue is empty afterwards."""
    lock = factory(name="hammered")
    box = [0]
    successes = [0] * 8
    rounds = 1500

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
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
        assert not thread.is_alive(), "a waiter was never woken"
    assert box[0] == sum(successes)
    assert successes[0] == rounds  # the blocking workers always get the lock
    assert not lock.locked() and _waiting(lock) == 0
    stats = tracedthreading.snapshot().lock("hammered")
    assert stats.acquisitions == box[0]
    # Each wait names the thread that had the lock, also one handed the lock and not yet running: only
    # the few bytecodes between a token pop and the holder's registration leave a wait unattributed.
    assert stats.contentions > 0
    assert sum(count for _, count in stats.blockers) >= 0.9 * stats.contentions


@FACTORIES
def test_timed_out_waiter_leaves_the_queue(factory: type) -> None:
    """A timed acquire that gives up removes itself, so a later release wakes nobody stale."""
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
    assert _waiting(lock) == 0
    lock.release()
    assert lock.acquire(timeout=0)
    lock.release()


@FACTORIES
@pytest.mark.parametrize("meanwhile", ["reset", "configure"])
def test_a_waiter_is_woken_after_statistics_are_reset_or_thresholds_change(factory: type, meanwhile: str) -> None:
    """While threads wait, a lock's ``_cap`` is below any hold, which makes its release look at the
    queue. ``reset()`` and ``configure()`` re-derive the cap of live locks: they must not raise it
    under a waiter, or the release would skip the wake-up and the waiter would sleep for ever."""
    lock = factory(name="capped")
    lock.acquire()
    got = std.Event()

    def waiter() -> None:
        if lock.acquire(timeout=10):
            got.set()
            lock.release()

    thread = _start_queued(waiter, lock)
    if meanwhile == "reset":
        tracedthreading.reset()
    else:
        tracedthreading.configure(held_long_threshold=30.0)
    lock.release()
    assert got.wait(5), "the release did not wake the waiter"
    thread.join(5)
    # Once the queue is empty the next release raises the cap again: uncontended releases skip the
    # detour from then on.
    with lock:
        pass
    assert _waiting(lock) == 0
    assert lock._cap >= 0.0  # type: ignore[attr-defined]


@FACTORIES
def test_a_release_interrupted_before_its_wake_up_does_not_strand_the_waiter(
    factory: type, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A signal handler's exception can land in a release after the token is back and before the
    waiter is woken (at the call into the wake-up). The waiter's sleep is sliced: it finds the free
    token itself, well before its own timeout."""
    lock = factory(name="stranded")
    lock.acquire()
    result: list[tuple[bool, float]] = []

    def waiter() -> None:
        start = time.monotonic()
        got = lock.acquire(timeout=5)
        result.append((got, time.monotonic() - start))
        if got:
            lock.release()

    thread = _start_queued(waiter, lock)

    def interrupted(self: object, hold: float) -> None:
        raise _Interrupted  # as if raised by a signal handler when the detour began

    monkeypatch.setattr(type(lock), "_past_cap", interrupted)
    with pytest.raises(_Interrupted):
        lock.release()  # the token is back; nobody was woken
    monkeypatch.undo()
    thread.join(10)
    assert result and result[0][0], "the waiter was stranded until its timeout"
    assert result[0][1] < 2.0
    assert not lock.locked() and _waiting(lock) == 0


def test_release_hands_the_lock_to_a_sleeping_waiter() -> None:
    """A waiter asleep on the queue gets the lock when it is released by another thread (Lock allows it)."""
    lock = tracedthreading.Lock(name="handoff")
    lock.acquire()
    order: list[str] = []

    def waiter() -> None:
        with lock:
            order.append("waiter")

    thread = _start_queued(waiter, lock)
    releaser = std.Thread(target=lock.release)  # a different thread releases: legal for Lock
    releaser.start()
    releaser.join(5)
    thread.join(5)
    assert order == ["waiter"]
    assert not lock.locked() and _waiting(lock) == 0


def test_double_release_raises_and_keeps_one_token() -> None:
    """Releasing an unlocked Lock raises the stdlib's error and never makes a second token."""
    lock = tracedthreading.Lock()
    with lock:
        pass
    with pytest.raises(RuntimeError, match="release unlocked lock"):
        lock.release()
    assert lock.acquire(False)
    assert not lock.acquire(False)  # still one token: mutual exclusion holds
    lock.release()


# -- fresh and active --------------------------------------------------------------------------------


@FACTORIES
def test_a_lock_never_acquired_is_not_registered_and_first_use_activates_it(factory: type) -> None:
    lock = factory(name="fresh")
    assert type(lock) is factory
    assert not hasattr(lock, "_key")
    assert all(ref() is not lock for ref in list(_stats._live.values()))
    with pytest.raises(KeyError):
        tracedthreading.snapshot().lock("fresh")
    with lock:
        pass
    assert isinstance(lock, factory) and type(lock) is not factory
    assert type(lock).__name__ == factory.__name__ and repr(lock).startswith(f"<unlocked tracedthreading.{factory.__name__} object")
    assert _stats._live[lock._key]() is lock
    assert tracedthreading.snapshot().lock("fresh").acquisitions == 1


@FACTORIES
def test_bound_methods_taken_while_fresh_keep_working(factory: type) -> None:
    """Condition keeps its lock's bound acquire/release, and ``with`` looks __exit__ up before __enter__."""
    lock = factory(name="bound")
    acquire, release, exit_ = lock.acquire, lock.release, lock.__exit__
    assert acquire()
    release()
    assert lock.__enter__() is True
    exit_(None, None, None)
    assert not lock.locked()
    cond = tracedthreading.Condition(factory(name="cond-lock"))
    with cond:
        assert cond._is_owned() if factory is tracedthreading.RLock else cond._lock.locked()
    assert tracedthreading.snapshot().lock("bound").acquisitions == 2
    assert tracedthreading.snapshot().lock("cond-lock").acquisitions == 1


@FACTORIES
def test_fresh_lock_errors_match_the_stdlib(factory: type) -> None:
    lock = factory()
    message = "release unlocked lock" if factory is tracedthreading.Lock else "cannot release un-acquired lock"
    with pytest.raises(RuntimeError, match=message):
        lock.release()
    assert not lock.locked()
    assert not hasattr(lock, "_key")  # a failed release does not activate


@pytest.mark.parametrize("exit_with", ["release", "__exit__"])
def test_rlock_release_paths_keep_every_held_stack_right(exit_with: str) -> None:
    """An RLock's release trusts the top of the caller's own stack; every other case (out of order,
    another thread's release, re-entered levels) takes the slow path and leaves all stacks intact."""

    def leave(lock: tracedthreading.RLock) -> None:
        if exit_with == "release":
            lock.release()
        else:
            lock.__exit__(None, None, None)

    a, b, c = (tracedthreading.RLock(name=n) for n in "abc")
    held = _threads.current()
    a.acquire()
    b.acquire()
    leave(a)  # out of order: b stays held, on top
    assert list(held) == [b._key]
    b.acquire()  # re-entered: a second level
    outcome: list[object] = []

    def other() -> None:
        with c:  # this thread's top is another RLock's key
            for _ in range(2):
                try:
                    leave(b)
                except RuntimeError as error:
                    outcome.append(str(error))
            outcome.append(list(_threads.current()) == [c._key])

    thread = std.Thread(target=other)
    thread.start()
    thread.join()
    assert outcome == ["cannot release un-acquired lock"] * 2 + [True]
    assert b._recursion_count() == 2 and list(held) == [b._key]
    leave(b)
    leave(b)
    assert list(held) == [] and not b.locked()
    with pytest.raises(RuntimeError, match="cannot release un-acquired lock"):
        leave(b)
    assert tracedthreading.snapshot().lock("b").acquisitions == 1


def test_held_stack_keeps_room_for_one_key_and_gets_it_back_after_nesting() -> None:
    """A thread's held stack toggles between empty and one key without reallocating (its size never
    changes); a stack that grew past one key is swapped for a fresh one once it is empty again.
    CPython 3.12+ frees the storage of any list popped empty: there no stack keeps room, and none is
    ever swapped."""
    import sys

    keeps_room = sys.getsizeof(_threads.new_stack()) != sys.getsizeof([])
    assert keeps_room == (sys.version_info < (3, 12))
    a, b = tracedthreading.Lock(name="room-a"), tracedthreading.RLock(name="room-b")
    result: dict[str, object] = {}

    def run() -> None:
        stack = _threads.current()
        empty = sys.getsizeof(stack)
        with a:
            result["one"] = list(stack) == [a._key] and (sys.getsizeof(stack) == empty or not keeps_room)
        result["same"] = sys.getsizeof(stack) == empty
        with a:
            with b:
                result["nested"] = list(_threads.current()) == [a._key, b._key]
        for _ in range(2000):  # a hold sample comes within these releases
            with a:
                pass
        fresh = _threads.current()
        record = _threads.record_of(fresh)
        result["renewed"] = (fresh is not stack) == keeps_room and sys.getsizeof(fresh) == empty and not fresh
        result["record"] = record is not None and record.stack is fresh and record.ident == std.get_ident()
        result["old forgotten"] = (_threads.record_of(stack) is None) == keeps_room
        _threads.renew_if_shrunk([])  # not this thread's stack: left alone
        result["kept"] = _threads.current() is fresh
        with b:
            result["works"] = b._is_owned() and list(fresh) == [b._key]

    thread = std.Thread(target=run)
    thread.start()
    thread.join()
    assert result == dict.fromkeys(
        ["one", "same", "nested", "renewed", "record", "old forgotten", "kept", "works"], True)


def test_contended_event_names_the_holder_even_if_its_stack_was_renewed() -> None:
    """The holder's id and name are taken when the wait starts: by the time the event is built the
    holder may have released, emptied its (nested, so renewed) stack or ended."""
    tracedthreading.configure(contended_threshold=0)
    lock, inner = tracedthreading.Lock(name="held"), tracedthreading.Lock(name="inner")
    holding, go = std.Event(), std.Event()
    holder_ident: list[int] = []

    def holder() -> None:
        holder_ident.append(std.get_ident())
        with lock:
            holding.set()
            go.wait(10)
            with inner:  # the stack grows past one key; emptied, it is renewed on this release
                pass

    thread = std.Thread(target=holder, name="the-holder")
    with capture_events() as events:
        thread.start()
        holding.wait(10)
        waiter = _start_queued(lambda: lock.acquire() and lock.release(), lock)
        go.set()
        waiter.join()
        thread.join()
    (event,) = events_named(events, "lock.contended")
    assert event["holder"] == "the-holder" and event["holder_id"] == holder_ident[0]


def test_activation_races_give_one_key() -> None:
    """Threads taking a fresh lock at once activate it exactly once."""
    for _ in range(50):
        lock = tracedthreading.Lock(name="race")
        barrier = std.Barrier(4)
        seen: list[int] = []

        def take() -> None:
            barrier.wait()
            with lock:
                seen.append(lock._key)

        threads = [std.Thread(target=take) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(5)
        assert len(set(seen)) == 1 and len(seen) == 4


def test_unused_locks_are_collected_without_a_trace() -> None:
    """Fresh locks have no __del__: dropping a million costs no queue entry and no registry entry."""
    gc.collect()  # earlier tests' garbage cycles (threads, closures) retire their locks now, not below
    before = (len(_stats._live), len(_stats._dead_locks), len(_stats._dead))
    ref = weakref.ref(tracedthreading.Lock())
    gc.collect()
    assert ref() is None
    for _ in range(10_000):
        tracedthreading.RLock()
    assert (len(_stats._live), len(_stats._dead_locks), len(_stats._dead)) == before


# -- sampled histogram, exact counts, thresholds on live locks ----------------------------------------


@FACTORIES
def test_counts_and_totals_are_exact_while_the_histogram_is_sampled(factory: type) -> None:
    lock = factory(name="many")
    n = 20_000
    for _ in range(n):
        lock.acquire()
        lock.release()
    stats = tracedthreading.snapshot().lock("many")
    assert stats.acquisitions == n
    sampled = sum(stats.hold_hist)
    assert 0 < sampled <= n and sampled > n - 200  # weights stand for the skipped holds
    assert stats.hold_max <= stats.hold_total
    assert stats.hold_p50 <= stats.hold_p99 <= stats.hold_max
    total = stats.hold_total
    lock.acquire()
    time.sleep(0.02)
    lock.release()
    after = tracedthreading.snapshot().lock("many")
    assert after.acquisitions == n + 1
    assert after.hold_total - total >= 0.019
    assert after.hold_max >= 0.019  # a maximum is never missed, sampled or not


def test_sampling_does_not_alias_with_periodic_holds() -> None:
    """One long hold in every 8: the sampled histogram still shows about one eighth long holds."""
    lock = tracedthreading.Lock(name="periodic")
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


@FACTORIES
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



@FACTORIES
def test_a_thread_re_taking_the_lock_cannot_starve_a_waiter(factory: type) -> None:
    """A hog re-takes the lock in a loop (giving up the GIL while holding it): a waiter still gets it
    promptly, because a waiter queued past the hand-off delay is handed the lock by the next release.
    Without the hand-off the waiter waited for the hog's whole run (5 s here)."""
    lock = factory(name="hogged")
    stop = std.Event()
    started = std.Event()

    def hog() -> None:
        deadline = time.monotonic() + 5
        while not stop.is_set() and time.monotonic() < deadline:
            with lock:
                started.set()
                time.sleep(0)

    thread = std.Thread(target=hog)
    thread.start()
    assert started.wait(5)
    begin = time.monotonic()
    with lock:
        waited = time.monotonic() - begin
    stop.set()
    thread.join(10)
    assert waited < 2.0, f"waited {waited:.3f} s for a lock re-taken in a loop"
    assert not lock.locked() and _waiting(lock) == 0


@pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="needs POSIX signals")
@FACTORIES
def test_waits_interrupted_at_random_points_never_lose_the_lock_or_hang(factory: type) -> None:
    """The main thread keeps waiting for a lock that two threads keep taking, while a signal handler
    raises into it at random points (inside the sleep, just after a wake-up, mid-hand-over...). Every
    interrupted wait leaves cleanly: nothing is handed to a thread that left, nobody hangs, the lock
    ends free with an empty queue, and its acquisitions add up."""

    class Interrupted(Exception):
        pass

    def handler(signum: int, frame: object) -> None:
        raise Interrupted

    lock = factory(name="interrupted")
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
        end = time.monotonic() + 1.5
        while time.monotonic() < end:
            try:
                got = lock.acquire(timeout=0.05)
            except Interrupted:
                interrupted += 1
                continue
            if got:
                try:
                    taken[0] += 1
                finally:
                    try:
                        lock.release()
                    except Interrupted:  # raised after the release completed
                        interrupted += 1
    finally:
        while True:  # stop raising before anything else: the handler may fire on any line here
            try:
                signal.signal(signal.SIGUSR1, signal.SIG_IGN)
                break
            except Interrupted:
                interrupted += 1
        stop.set()
        sender.join(10)
        signal.signal(signal.SIGUSR1, previous)
        for thread in threads:
            thread.join(10)
    assert not any(thread.is_alive() for thread in (*threads, sender)), "a thread hung"
    assert interrupted > 0
    assert lock.acquire(timeout=2), "the lock was lost to a waiter that had left"
    lock.release()
    assert not lock.locked() and _waiting(lock) == 0
    assert tracedthreading.snapshot().lock("interrupted").acquisitions == sum(taken) + 1


class _Interrupted(Exception):
    pass


@pytest.mark.parametrize("handed", [False, True], ids=["woken", "handed-over"])
@FACTORIES
def test_an_exception_just_after_a_wake_up_passes_on_what_the_waiter_was_given(
    factory: type, handed: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A waiter's sleep ends and an exception (a signal handler's, say) is raised right then: it must
    pass on the lock (if it was handed over) or the wake-up, not wait again for a wake-up it consumed."""
    real_allocate = _primitives._allocate_lock

    class RaisingGate:
        """A gate whose wait raises just after it was woken (its first acquire is the initial one)."""

        def __init__(self) -> None:
            self._lock = real_allocate()
            self._got = 0

        def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
            got = self._lock.acquire(blocking, timeout)
            if got:  # waits are sliced: count the acquires that got the gate, not the slices
                self._got += 1
                if self._got == 2:
                    raise _Interrupted
            return got

        def release(self) -> None:
            self._lock.release()

    class StarvedWaiter(_primitives._Waiter):
        __slots__ = ()

        def __init__(self, held: object) -> None:
            super().__init__(held)  # type: ignore[arg-type]
            self.gate = RaisingGate()
            self.gate.acquire()
            if handed:  # as if already woken and beaten to the token, long ago: the release hands over
                self.lost = True
                self.since -= 1.0

    monkeypatch.setattr(_primitives, "_Waiter", StarvedWaiter)
    lock = factory(name="raise-after-wake")
    lock.acquire()
    outcome: list[str] = []

    def wait() -> None:
        try:
            lock.acquire()
            outcome.append("acquired")
            lock.release()
        except _Interrupted:
            outcome.append("interrupted")

    thread = _start_queued(wait, lock)
    lock.release()
    thread.join(5)
    assert not thread.is_alive(), "the waiter hung waiting for a wake-up it had already consumed"
    assert outcome == ["interrupted"]
    assert lock.acquire(timeout=2), "the lock was handed to a waiter that left with it"
    lock.release()
    assert _waiting(lock) == 0


def test_a_failed_activation_lets_another_thread_activate(monkeypatch: pytest.MonkeyPatch) -> None:
    """If the thread activating a fresh lock fails half-way (MemoryError, say), a thread that was waiting
    for that activation takes it over instead of waiting for ever."""
    inside, proceed = std.Event(), std.Event()
    real = _primitives.Lock._init_counters
    calls = []

    def failing_once(self: object) -> None:
        calls.append(std.get_ident())
        if len(calls) == 1:
            inside.set()
            proceed.wait(5)
            raise MemoryError("simulated")
        real(self)  # type: ignore[arg-type]

    monkeypatch.setattr(_primitives.Lock, "_init_counters", failing_once)
    lock = tracedthreading.Lock(name="activation")
    errors: list[BaseException] = []

    def first() -> None:
        try:
            lock.acquire()
        except MemoryError as exc:
            errors.append(exc)

    def second() -> None:
        with lock:
            pass

    a = std.Thread(target=first)
    a.start()
    assert inside.wait(5)
    b = std.Thread(target=second, daemon=True)  # daemon: if it hangs, the failure must not hang the run
    b.start()
    time.sleep(0.02)  # b is now waiting for a's activation
    proceed.set()
    a.join(5)
    b.join(5)
    assert not b.is_alive(), "the second thread waited for ever for a failed activation"
    assert len(errors) == 1 and len(calls) == 2
    assert tracedthreading.snapshot().lock("activation").acquisitions == 1


@FACTORIES
def test_waits_during_a_hand_over_name_the_thread_the_lock_was_handed_to(factory: type) -> None:
    """Threads that always give up the GIL while holding the lock make hand-overs frequent; a thread
    that comes to wait while the lock is handed to a sleeping waiter still learns who has it."""
    lock = factory(name="handed")

    def work() -> None:
        for _ in range(300):
            with lock:
                time.sleep(0.0001)

    threads = [std.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    stats = tracedthreading.snapshot().lock("handed", kind=lock._kind)
    assert stats.contentions > 20
    assert sum(count for _, count in stats.blockers) >= 0.9 * stats.contentions, (stats.contentions, stats.blockers)
