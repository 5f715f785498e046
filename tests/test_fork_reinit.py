"""``_at_fork_reinit`` on a held traced lock also clears it from the held stack (found by the hardening work)."""

from __future__ import annotations

import pytest

import tracedthreading
from tracedthreading import _threads


@pytest.mark.parametrize("factory", [tracedthreading.Lock, tracedthreading.RLock], ids=["Lock", "RLock"])
def test_at_fork_reinit_of_a_held_lock_clears_it_from_the_held_stack(factory: type) -> None:
    """``lock.acquire(); lock._at_fork_reinit()`` leaves the lock unlocked and the thread holding nothing."""
    lock = factory()
    lock.acquire()
    lock._at_fork_reinit()
    assert not lock.locked()
    assert list(_threads.current()) == []
