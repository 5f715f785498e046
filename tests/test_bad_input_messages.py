"""Bad timeouts to Semaphore.acquire and Timer give the stdlib's exact messages (found by the hardening work)."""

from __future__ import annotations

import pytest

import tracedthreading


def test_timer_with_a_bad_interval_fails_like_the_stdlib() -> None:
    """``Timer("x", f).run()`` raises the stdlib's TypeError message (it currently fails earlier, computing its schedule)."""
    import threading

    def message(factory: type) -> str:
        with pytest.raises(TypeError) as info:
            factory("x", print).run()
        return str(info.value)

    assert message(tracedthreading.Timer) == message(threading.Timer)


def test_semaphore_with_a_non_number_timeout_fails_like_the_stdlib() -> None:
    """``Semaphore(0).acquire(timeout="x")`` gives the stdlib's TypeError message (not the ``<=`` comparison's)."""
    import threading

    def message(factory: type) -> str:
        with pytest.raises(TypeError) as info:
            factory(0).acquire(timeout="x")
        return str(info.value)

    assert message(tracedthreading.Semaphore) == message(threading.Semaphore)
