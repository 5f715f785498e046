"""CPython's own lock conformance suite (``test.lock_tests``), run against the traced primitives.

Lock and RLock have two hot paths (the C extension and pure Python): besides the public classes, the
Lock/RLock suites and the Condition suite on an explicit lock run for each implementation, ``...Pure``
always and ``...C`` when the extension is loaded in this process (skipped, with the reason, when not).
"""

from __future__ import annotations

import threading as std_threading
from collections.abc import Callable
from test import lock_tests
from typing import Any

import pytest

import tracedthreading
from tracedthreading import _cext, _primitives

NO_C_EXTENSION = pytest.mark.skipif(
    _primitives.CLock is None,
    reason=(
        f"the C extension is not built or not loaded here, so there is no C Lock/RLock to test ({_cext.describe()})"
    ),
)


def condition_on(lock_cls: type | None) -> Callable[..., Any]:
    """A Condition factory for ``ConditionTests``: on a new ``lock_cls`` lock unless the test passes one."""

    def make(lock: Any = None) -> Any:
        assert lock_cls is not None
        return tracedthreading.Condition(lock if lock is not None else lock_cls())

    return make


def test_lock_tests_module_is_the_stdlib_one() -> None:
    """The suite is imported from the stdlib's test package, not a copy."""
    assert lock_tests.__file__.startswith(std_threading.__file__.rsplit("/", 1)[0])


class TestLock(lock_tests.LockTests):
    locktype = staticmethod(tracedthreading.Lock)


class TestRLock(lock_tests.RLockTests):
    locktype = staticmethod(tracedthreading.RLock)


class TestLockPure(lock_tests.LockTests):
    locktype = staticmethod(_primitives.PyLock)


@NO_C_EXTENSION
class TestLockC(lock_tests.LockTests):
    locktype = staticmethod(_primitives.CLock)


class TestRLockPure(lock_tests.RLockTests):
    locktype = staticmethod(_primitives.PyRLock)


@NO_C_EXTENSION
class TestRLockC(lock_tests.RLockTests):
    locktype = staticmethod(_primitives.CRLock)


class TestEvent(lock_tests.EventTests):
    eventtype = staticmethod(tracedthreading.Event)


class TestConditionAsRLock(lock_tests.RLockTests):
    """As CPython's test_threading does: a Condition is usable wherever an RLock is."""

    locktype = staticmethod(tracedthreading.Condition)

    def test_recursion_count(self) -> None:
        """Replaces the RLock test CPython skips for Condition: like the stdlib's, ours has no _recursion_count."""
        ours, theirs = tracedthreading.Condition(), std_threading.Condition()
        assert hasattr(ours, "_recursion_count") == hasattr(theirs, "_recursion_count")


class TestCondition(lock_tests.ConditionTests):
    condtype = staticmethod(tracedthreading.Condition)


class TestConditionOnExplicitTracedRLock(lock_tests.ConditionTests):
    """A Condition built on an explicitly passed traced RLock behaves the same."""

    condtype = staticmethod(
        lambda lock=None: tracedthreading.Condition(lock if lock is not None else tracedthreading.RLock())
    )


class TestConditionOnPureRLock(lock_tests.ConditionTests):
    condtype = staticmethod(condition_on(_primitives.PyRLock))


@NO_C_EXTENSION
class TestConditionOnCRLock(lock_tests.ConditionTests):
    condtype = staticmethod(condition_on(_primitives.CRLock))


class _OnLock:
    """Mixed into ConditionTests on a non-reentrant traced Lock (the stdlib allows any lock; ours has the
    ``_is_owned``/``_release_save``/``_acquire_restore`` that Condition then uses instead of its fallbacks)."""

    condtype: Callable[..., Any]

    def test_acquire(self) -> None:
        """CPython's test_acquire takes the default lock twice, assuming an RLock; on a Lock a second
        take fails instead, as on ``threading.Condition(threading.Lock())``. The rest is CPython's test."""
        for cond in (self.condtype(), std_threading.Condition(std_threading.Lock())):
            assert cond.acquire() is True
            assert cond.acquire(False) is False
            assert cond.acquire(timeout=0.01) is False
            cond.release()
            with pytest.raises(RuntimeError, match="^release unlocked lock$"):
                cond.release()
        lock = std_threading.Lock()
        cond = self.condtype(lock)
        cond.acquire()
        assert not lock.acquire(False)
        cond.release()
        assert lock.acquire(False)
        assert not cond.acquire(False)
        lock.release()
        with cond:
            assert not lock.acquire(False)


class TestConditionOnPureLock(_OnLock, lock_tests.ConditionTests):
    condtype = staticmethod(condition_on(_primitives.PyLock))


@NO_C_EXTENSION
class TestConditionOnCLock(_OnLock, lock_tests.ConditionTests):
    condtype = staticmethod(condition_on(_primitives.CLock))


class TestSemaphore(lock_tests.SemaphoreTests):
    semtype = staticmethod(tracedthreading.Semaphore)


class TestBoundedSemaphore(lock_tests.BoundedSemaphoreTests):
    semtype = staticmethod(tracedthreading.BoundedSemaphore)


class TestBarrier(lock_tests.BarrierTests):
    barriertype = staticmethod(tracedthreading.Barrier)
