"""Taking a snapshot: :func:`snapshot` reads the recorders into a :class:`~tracedthreading.snapshot.Snapshot`.

Why here and not in :mod:`tracedthreading.snapshot`, next to the value objects it returns: those
objects are built by :mod:`._lockorder` (``Inversion``, ``OrderEdge``) and :mod:`._deadlock`
(``DeadlockReport``), which import them, while taking a snapshot reads those same two modules. With
the function in the value module, each pair imported the other (a cycle, issue #14). Here it sits
above all three, and :mod:`tracedthreading.snapshot` imports only :mod:`._stats`, below them.

The package exports it as ``tracedthreading.snapshot()`` and also binds it in
:mod:`tracedthreading.snapshot`, so ``from tracedthreading.snapshot import snapshot`` keeps working.
"""

from __future__ import annotations

from tracedthreading import _deadlock, _lockorder, _stats
from tracedthreading.snapshot import LockStats, Snapshot

__all__ = ["snapshot"]


def snapshot() -> Snapshot:
    """Take a :class:`Snapshot` of every primitive's statistics, the inversions and the deadlocks so far."""
    merged = _stats.collect()
    locks = tuple(
        LockStats.from_counters(counters, instances, _stats.folded_names(kind) if name == _stats.OTHER_NAMES else 0)
        for (name, kind), (counters, instances) in sorted(merged.items())
    )
    return Snapshot(locks=locks, inversions=_lockorder.inversions(), deadlocks=_deadlock.deadlocks())
