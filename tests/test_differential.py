"""Differential testing: hypothesis drives each traced primitive and its stdlib twin in lockstep.

Every operation (valid or not) is applied to both; return values, exception types and messages, and the
observable state must be identical, and the traced side's held stack must match what the thread holds.

Lock and RLock have two hot paths with the same behaviour (the C extension and pure Python): their machines,
and the Condition machine on an explicit lock, run once per implementation present in this process
(``...Pure`` always, ``...C`` when the extension is loaded: skipped, with the reason, when it is not).
"""

from __future__ import annotations

import threading as std
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import tracedthreading
from tracedthreading import _cext, _primitives, _threads

SETTINGS = settings(max_examples=40, stateful_step_count=30, deadline=None, derandomize=True, database=None)

BLOCKING = st.sampled_from([True, False, 1, 0])
TIMEOUTS = st.sampled_from([-1, 0, 0.001, -5, 1, 2.5])
SEM_TIMEOUTS = st.sampled_from([None, 0, 0.001, -1, 1])

#: The Lock/RLock implementations: (suffix of the test class, Lock class, RLock class); a class is None
#: when that implementation is not in this process (the C one, unbuilt or TRACEDTHREADING_PURE_PYTHON=1).
IMPLEMENTATIONS = [
    ("Pure", _primitives.PyLock, _primitives.PyRLock),
    ("C", _primitives.CLock, _primitives.CRLock),
]
NO_C_EXTENSION = (
    f"the C extension is not built or not loaded here, so there is no C Lock/RLock to test ({_cext.describe()})"
)


def would_wait_long(blocking: Any, timeout: Any, busy: bool) -> bool:
    """True when an acquire of a lock that is ``busy`` (held where waiting cannot free it) would block
    forever or for a whole second: such calls are skipped (they prove nothing more)."""
    if not blocking or not isinstance(timeout, (int, float)) or 0 <= timeout <= 0.01 or timeout < -1:
        return False
    return busy


def outcome(call: Callable[[], Any]) -> tuple[str, Any]:
    """What a call did: ``("ok", value)`` or ``(exception type name, message)``."""
    try:
        value = call()
    except Exception as exc:  # noqa: BLE001 - the outcome is what we compare
        return type(exc).__name__, str(exc)
    return "ok", value


def both(traced: Any, raw: Any, op: Callable[[Any], Any]) -> tuple[str, Any]:
    """Apply ``op`` to both twins and assert they agree; returns the common outcome."""
    expected = outcome(lambda: op(raw))
    got = outcome(lambda: op(traced))
    assert got == expected, f"traced {got!r} != stdlib {expected!r}"
    return got


class _Helper:
    """A second thread that takes both twins and holds them until told to let go."""

    def __init__(self, traced: Any, raw: Any) -> None:
        self.stop = std.Event()
        self.results: list[tuple[str, Any]] = []
        ready = std.Barrier(3)

        def hold(lock: Any) -> None:
            lock.acquire()
            ready.wait(30)
            self.stop.wait(10)
            self.results.append(outcome(lock.release))

        self.threads = [std.Thread(target=hold, args=(lock,)) for lock in (raw, traced)]
        for thread in self.threads:
            thread.start()
        ready.wait(30)

    def finish(self) -> list[tuple[str, Any]]:
        self.stop.set()
        for thread in self.threads:
            thread.join(30)
        return self.results


class LockMachine(RuleBasedStateMachine):
    """Lock (or RLock) vs its twin; a helper thread may hold both while the main thread tries its luck."""

    traced_factory: Callable[[], Any] = tracedthreading.Lock
    raw_factory: Callable[[], Any] = std.Lock
    reentrant = False

    def __init__(self) -> None:
        super().__init__()
        self.traced = type(self).traced_factory()
        self.raw = type(self).raw_factory()
        assert type(self.traced) is type(self).traced_factory  # the implementation under test, not another
        self.depth = 0  # how many times the main thread holds it
        self.helper: _Helper | None = None
        self.key = self.traced._key  # None on the C classes until the first acquire; set at creation on pure ones

    def _would_wait_long(self, blocking: Any, timeout: Any) -> bool:
        """True when the call would block forever or for a whole second: skipped (it proves nothing more)."""
        busy = self.helper is not None or (self.depth > 0 and not self.reentrant)
        return would_wait_long(blocking, timeout, busy)

    @rule(blocking=BLOCKING, timeout=TIMEOUTS)
    def acquire(self, blocking: Any, timeout: Any) -> None:
        """acquire() with every blocking/timeout combination, invalid ones included."""
        if self._would_wait_long(blocking, timeout):
            return
        kind, value = both(self.traced, self.raw, lambda lock: lock.acquire(blocking, timeout))
        if kind == "ok" and value:
            self.depth += 1

    @rule(timeout=st.sampled_from([-1, 0, 0.001]))
    def acquire_keyword(self, timeout: float) -> None:
        """acquire(timeout=...) as a keyword, and ``with`` when it cannot block."""
        if self._would_wait_long(True, timeout):
            return
        kind, value = both(self.traced, self.raw, lambda lock: lock.acquire(timeout=timeout))
        if kind == "ok" and value:
            self.depth += 1

    @rule()
    def release(self) -> None:
        """release(), including releasing what the main thread does not hold."""
        kind, _ = both(self.traced, self.raw, lambda lock: lock.release())
        if kind == "ok":
            self.depth -= 1
        if kind == "ok" and self.helper is not None and not self.reentrant and self.depth < 0:
            self.depth = 0  # a Lock released on the helper's behalf: the helper's own release will fail

    @rule()
    def locked(self) -> None:
        """locked() agrees (RLock.locked exists only on newer stdlibs: compare where it does)."""
        if hasattr(self.raw, "locked"):
            both(self.traced, self.raw, lambda lock: lock.locked())

    @precondition(lambda self: self.helper is None and self.depth == 0)
    @rule()
    def helper_takes_it(self) -> None:
        """A second thread acquires both twins and keeps them."""
        self.helper = _Helper(self.traced, self.raw)

    @precondition(lambda self: self.helper is not None)
    @rule()
    def helper_lets_go(self) -> None:
        """The helper releases both twins; both releases end the same way."""
        assert self.helper is not None
        raw_result, traced_result = self.helper.finish()
        assert traced_result == raw_result
        if traced_result[0] == "ok" and self.depth > 0 and not self.reentrant:
            self.depth -= 1  # a Lock has no owner: the helper released what the main thread had re-taken
        self.helper = None

    @invariant()
    def key_is_stable(self) -> None:
        """A lock's key, once it has one, never changes; a lock that was ever held has one."""
        key = self.traced._key
        if self.key is None:
            self.key = key
        else:
            assert key == self.key
        if self.depth > 0 or self.helper is not None:
            assert isinstance(key, int)

    @invariant()
    def held_stack_matches(self) -> None:
        """The main thread's held stack lists the traced lock once exactly when the main thread holds it."""
        keys = list(_threads.current())
        if self.depth > 0 and (self.reentrant or self.helper is None):
            assert keys.count(self.traced._key) == 1
        elif self.helper is None:
            # a lock never acquired has no key yet (it is activated on first use)
            assert getattr(self.traced, "_key", None) not in keys

    def teardown(self) -> None:
        if self.helper is not None:
            self.helper.finish()
        for lock in (self.traced, self.raw):
            while True:
                try:
                    lock.release()
                except RuntimeError:
                    break


class RLockMachine(LockMachine):
    """RLock vs its twin, plus ownership and recursion-count queries."""

    traced_factory = tracedthreading.RLock
    raw_factory = std.RLock
    reentrant = True

    @rule()
    def is_owned(self) -> None:
        """_is_owned() agrees."""
        both(self.traced, self.raw, lambda lock: lock._is_owned())

    @rule()
    def recursion_count(self) -> None:
        """_recursion_count() agrees (where the stdlib has it)."""
        if hasattr(self.raw, "_recursion_count"):
            both(self.traced, self.raw, lambda lock: lock._recursion_count())

    @precondition(lambda self: self.helper is None)
    @rule()
    def release_save_restore(self) -> None:
        """_release_save()/_acquire_restore() (what Condition.wait does) round-trips the same way.

        Not while the helper holds it: CPython's C RLock then releases the other thread's lock (it checks the
        count, not the owner), where the traced RLock raises RuntimeError "cannot release un-acquired lock".
        """
        kind, state = outcome(self.raw._release_save)
        traced_kind, traced_state = outcome(self.traced._release_save)
        assert traced_kind == kind
        if kind == "ok":
            assert traced_state[0] == state[0]  # the recursion count
            self.raw._acquire_restore(state)
            self.traced._acquire_restore(traced_state)
        else:
            assert traced_state == state


class ConditionMachine(RuleBasedStateMachine):
    """Condition vs its twin: acquire/release, wait(0), wait_for(pred, 0), notify(n), notify_all, owned or not.

    With ``lock_factories`` unset both make their default lock (an RLock); set, each is built on an explicit
    lock: ``(traced lock class, stdlib lock factory)``.
    """

    lock_factories: tuple[Callable[[], Any], Callable[[], Any]] | None = None
    reentrant = True

    def __init__(self) -> None:
        super().__init__()
        if self.lock_factories is None:
            self.traced = tracedthreading.Condition()
            self.raw = std.Condition()
        else:
            traced_factory, raw_factory = self.lock_factories
            lock = traced_factory()
            assert type(lock) is traced_factory
            self.traced = tracedthreading.Condition(lock)
            self.raw = std.Condition(raw_factory())
            assert self.traced._lock is lock
        self.depth = 0

    @rule(blocking=BLOCKING, timeout=TIMEOUTS)
    def acquire(self, blocking: Any, timeout: Any) -> None:
        """acquire() with every argument combination (on an RLock it never blocks; on a Lock held by this
        thread, a call that would wait long is skipped)."""
        if would_wait_long(blocking, timeout, self.depth > 0 and not self.reentrant):
            return
        kind, value = both(self.traced, self.raw, lambda c: c.acquire(blocking, timeout))
        if kind == "ok" and value:
            self.depth += 1

    @rule()
    def release(self) -> None:
        """release(), owned or not."""
        if both(self.traced, self.raw, lambda c: c.release())[0] == "ok":
            self.depth -= 1

    @rule(timeout=st.sampled_from([0, 0.001, -1]))
    def wait(self, timeout: float) -> None:
        """wait(timeout) returns False (nobody notifies), or raises when not owned."""
        both(self.traced, self.raw, lambda c: c.wait(timeout))

    @rule(result=st.sampled_from([True, False, 0, "yes"]))
    def wait_for(self, result: Any) -> None:
        """wait_for(predicate, 0) returns the predicate's value, or raises when not owned."""
        both(self.traced, self.raw, lambda c: c.wait_for(lambda: result, 0))

    @rule(n=st.sampled_from([0, 1, 3, -1]))
    def notify(self, n: int) -> None:
        """notify(n) with nobody waiting, owned or not."""
        both(self.traced, self.raw, lambda c: c.notify(n))

    @rule()
    def notify_all(self) -> None:
        """notify_all(), owned or not."""
        both(self.traced, self.raw, lambda c: c.notify_all())

    @invariant()
    def ownership_matches(self) -> None:
        """Both agree on ownership, and the held stack has the traced lock exactly once while owned."""
        assert self.traced._is_owned() == self.raw._is_owned() == (self.depth > 0)
        key = getattr(self.traced._lock, "_key", None)
        if self.depth > 0:
            assert isinstance(key, int)
            assert list(_threads.current()).count(key) == 1
        else:
            assert key is None or key not in _threads.current()

    def teardown(self) -> None:
        for _ in range(self.depth):
            self.traced.release()
            self.raw.release()


class SemaphoreMachine(RuleBasedStateMachine):
    """Semaphore and BoundedSemaphore vs their twins: counts, timeouts, invalid arguments, over-release."""

    def __init__(self) -> None:
        super().__init__()
        self.pairs: list[tuple[Any, Any]] = []

    @rule(value=st.sampled_from([0, 1, 3, -1]), bounded=st.booleans())
    def create(self, value: int, bounded: bool) -> None:
        """Create a pair (a negative value is the stdlib's ValueError on both)."""
        traced_factory = tracedthreading.BoundedSemaphore if bounded else tracedthreading.Semaphore
        raw_factory = std.BoundedSemaphore if bounded else std.Semaphore
        raw = outcome(lambda: raw_factory(value))
        traced = outcome(lambda: traced_factory(value))
        assert (traced[0], traced[1] if traced[0] != "ok" else None) == (raw[0], raw[1] if raw[0] != "ok" else None)
        if raw[0] == "ok":
            self.pairs.append((traced[1], raw[1]))

    @precondition(lambda self: self.pairs)
    @rule(data=st.data(), blocking=BLOCKING, timeout=SEM_TIMEOUTS)
    def acquire(self, data: st.DataObject, blocking: Any, timeout: Any) -> None:
        """acquire(blocking, timeout) in every combination that cannot block forever."""
        traced, raw = data.draw(st.sampled_from(self.pairs))
        if blocking and raw._value == 0 and (timeout is None or timeout > 0.01):
            return  # would block forever, or for a whole second
        both(traced, raw, lambda s: s.acquire(blocking, timeout))

    @precondition(lambda self: self.pairs)
    @rule(data=st.data(), n=st.sampled_from([1, 2, 0, -1]))
    def release(self, data: st.DataObject, n: int) -> None:
        """release(n), including n < 1 and releasing a BoundedSemaphore past its initial value."""
        traced, raw = data.draw(st.sampled_from(self.pairs))
        both(traced, raw, lambda s: s.release(n))

    @invariant()
    def values_match(self) -> None:
        """The counters agree."""
        for traced, raw in self.pairs:
            assert traced._value == raw._value


class EventBarrierMachine(RuleBasedStateMachine):
    """Event set/clear/wait(0) and a one-party Barrier's wait/abort/reset vs their twins."""

    def __init__(self) -> None:
        super().__init__()
        self.events = (tracedthreading.Event(), std.Event())
        self.barriers = (tracedthreading.Barrier(1), std.Barrier(1))

    @rule(op=st.sampled_from(["set", "clear", "is_set", "wait0", "wait_short"]))
    def event(self, op: str) -> None:
        """Event operations, one at a time."""
        ops: dict[str, Callable[[Any], Any]] = {
            "set": lambda e: e.set(), "clear": lambda e: e.clear(), "is_set": lambda e: e.is_set(),
            "wait0": lambda e: e.wait(0), "wait_short": lambda e: e.wait(0.001),
        }
        both(*self.events, ops[op])

    @rule(op=st.sampled_from(["wait", "wait0", "abort", "reset", "state"]))
    def barrier(self, op: str) -> None:
        """Barrier(1) operations: wait returns 0 unless broken (BrokenBarrierError), abort/reset toggle it."""
        ops: dict[str, Callable[[Any], Any]] = {
            "wait": lambda b: b.wait(), "wait0": lambda b: b.wait(0), "abort": lambda b: b.abort(),
            "reset": lambda b: b.reset(), "state": lambda b: (b.broken, b.n_waiting, b.parties),
        }
        both(*self.barriers, ops[op])

    @invariant()
    def states_match(self) -> None:
        """Flag and brokenness agree."""
        assert self.events[0].is_set() == self.events[1].is_set()
        assert self.barriers[0].broken == self.barriers[1].broken


def machine_test(machine: type[RuleBasedStateMachine], skip: str | None = None) -> type:
    """The unittest case that runs ``machine`` with SETTINGS; skipped with ``skip`` as the reason if given."""
    case = machine.TestCase
    case.settings = SETTINGS
    if skip is not None:
        case = pytest.mark.skipif(True, reason=skip)(case)
    return case


def implementation_tests(suffix: str, lock_cls: type | None, rlock_cls: type | None) -> dict[str, type]:
    """``TestLock<suffix>``, ``TestRLock<suffix>`` and the Conditions on an explicit lock of that
    implementation, as module-level test cases (skipped, with the reason, when it is not here)."""
    skip = NO_C_EXTENSION if lock_cls is None or rlock_cls is None else None
    machines = {
        "TestLock": type(f"LockMachine{suffix}", (LockMachine,), {"traced_factory": lock_cls}),
        "TestRLock": type(f"RLockMachine{suffix}", (RLockMachine,), {"traced_factory": rlock_cls}),
        "TestConditionOnLock": type(
            f"ConditionOnLockMachine{suffix}", (ConditionMachine,),
            {"lock_factories": (lock_cls, std.Lock), "reentrant": False},
        ),
        "TestConditionOnRLock": type(
            f"ConditionOnRLockMachine{suffix}", (ConditionMachine,), {"lock_factories": (rlock_cls, std.RLock)},
        ),
    }
    return {name + suffix: machine_test(machine, skip) for name, machine in machines.items()}


def test_every_implementation_is_tested() -> None:
    """The public classes are one of the implementations above, and the C one is here when it was loaded."""
    present = [(lock, rlock) for _, lock, rlock in IMPLEMENTATIONS if lock is not None]
    assert (tracedthreading.Lock, tracedthreading.RLock) in present
    assert (_primitives.CLock is not None) == (_cext.speedups is not None)


for _suffix, _lock, _rlock in IMPLEMENTATIONS:
    globals().update(implementation_tests(_suffix, _lock, _rlock))

TestCondition = machine_test(ConditionMachine)  # on its default lock: a traced RLock of the public class
TestSemaphore = machine_test(SemaphoreMachine)
TestEventBarrier = machine_test(EventBarrierMachine)
