"""CPython's own lock conformance suite (``test.lock_tests``), run against the traced primitives."""

from __future__ import annotations

import threading as std_threading
from test import lock_tests

import tracedthreading


def test_lock_tests_module_is_the_stdlib_one() -> None:
    """The suite is imported from the stdlib's test package, not a copy."""
    assert lock_tests.__file__.startswith(std_threading.__file__.rsplit("/", 1)[0])


class TestLock(lock_tests.LockTests):
    locktype = staticmethod(tracedthreading.Lock)


class TestRLock(lock_tests.RLockTests):
    locktype = staticmethod(tracedthreading.RLock)


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


class TestSemaphore(lock_tests.SemaphoreTests):
    semtype = staticmethod(tracedthreading.Semaphore)


class TestBoundedSemaphore(lock_tests.BoundedSemaphoreTests):
    semtype = staticmethod(tracedthreading.BoundedSemaphore)


class TestBarrier(lock_tests.BarrierTests):
    barriertype = staticmethod(tracedthreading.Barrier)
