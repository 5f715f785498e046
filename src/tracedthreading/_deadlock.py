"""Real deadlocks and very long waits, checked by the thread that is about to block.

Before blocking, a thread records the key of the lock it waits for (its ``Held.waiting``) and follows the
wait-for chain: lock -> holding thread -> the lock that thread waits for -> ... If the chain comes back to
the caller, every thread on it is blocked for good: ``deadlock.detected`` is emitted at once, with each
thread's holdings and current stack. Locks are known by key only; their owners come from the registry
(a primitive's ``_tt_owner()``). The waiting itself is the primitive's, in at most two parts (after
the first millisecond, which the C hot path waits on its own): first up to ``wait_long_threshold`` (the
whole wait when its timeout is shorter or the threshold is off); if the lock is still taken then,
:func:`report_wait_long` is called once and the rest of the wait follows in one piece, up to the
timeout or for ever.
"""

from __future__ import annotations

import _thread
import os
from typing import Any

from tracedthreading import _config, _events, _lockorder, _stats, _threads
from tracedthreading.snapshot import DeadlockReport, DeadlockThread

__all__ = ["check", "deadlocks", "report_self_wait", "report_wait_long", "reset"]

_CONFIG = _config.CONFIG
_lock = _thread.RLock()  # raw, re-entrant: a GC-run __del__ may come back in
_reports: list[DeadlockReport] = []
_seen: set[frozenset[tuple[int, int]]] = set()
_self_waits: set[str] = set()
_MAX_CHAIN = 1000
context = ""  # set by the pytest plugin: the test that is running


def owner_of(key: int) -> int | None:
    """The id of the thread holding lock ``key`` (None: free, gone, or not an ownership lock)."""
    primitive = _stats.primitive(key)
    if primitive is None:
        return None
    try:
        return primitive._tt_owner()  # type: ignore[no-any-return]
    except Exception:  # noqa: BLE001 - a primitive being torn down
        return None


def check(key: int, me: int, holder: int | None = None) -> DeadlockReport | None:
    """Thread ``me`` is about to block on lock ``key`` (held by thread ``holder``, when the caller knows):
    report (once) and return a deadlock it closes.

    Follows lock -> holder -> awaited lock ...; a chain that comes back to ``me`` is a deadlock. A chain
    through a thread waiting on itself, or a cycle of other threads, is not ours to report.
    """
    if holder is not None:  # the common case, answered at once: the holder is not waiting for a lock
        record = _threads.record_of_thread(holder)
        if record is None or record.waiting is None:
            return None
    chain: list[tuple[int, int]] = [(me, key)]
    seen = {me}
    current = key
    for _ in range(_MAX_CHAIN):
        owner = owner_of(current)
        if owner is None:
            return None
        if owner == me:
            if len(chain) > 1 and _still_blocked(chain):
                return _report(chain)
            return None
        if owner in seen:
            return None
        seen.add(owner)
        record = _threads.record_of_thread(owner)
        waiting = record.waiting if record is not None else None
        if waiting is None:
            return None
        chain.append((owner, waiting))
        current = waiting
    return None


def _still_blocked(chain: list[tuple[int, int]]) -> bool:
    """Read the chain again: each lock still held by the next thread, each other thread still waiting.

    The walk in :func:`check` reads one link at a time, so a holder that released its lock and went on
    to wait elsewhere can make a cycle that never existed at any one moment. A real deadlock does not
    change while we look, so reading it twice the same way confirms it.
    """
    for index, (_thread_id, key) in enumerate(chain):
        following = chain[(index + 1) % len(chain)][0]
        if owner_of(key) != following:
            return False
        if index:
            record = _threads.record_of_thread(chain[index][0])
            if record is None or record.waiting != key:
                return False
    return True


def _report(chain: list[tuple[int, int]]) -> DeadlockReport | None:
    ident = frozenset(chain)
    with _lock:
        if ident in _seen:
            return None
        _seen.add(ident)
    me = _thread.get_ident()
    threads = []
    for thread_id, key in chain:
        record = _threads.record_of_thread(thread_id)
        holds = tuple(name_of(k) for k in _threads.holding(record.stack)) if record is not None else ()
        if thread_id == me:
            stack = tuple(_threads.caller_stack(_CONFIG.stack_depth, 3))
        else:
            stack = tuple(_threads.thread_stack(thread_id, _CONFIG.stack_depth))
        threads.append(DeadlockThread(
            thread=_threads.thread_name(thread_id), thread_id=thread_id, holds=holds,
            waits_for=name_of(key), stack=stack,
        ))
    report = DeadlockReport(threads=tuple(threads), context=context)
    with _lock:
        _reports.append(report)
    fields = _fields(chain[0][1])
    fields["threads"] = [
        {"thread": t.thread, "thread_id": t.thread_id, "holds": list(t.holds), "waits_for": t.waits_for,
         "stack": list(t.stack)}
        for t in threads
    ]
    fields["report"] = str(report)
    if context:
        fields["context"] = context
    _events.emit(_events.DEADLOCK_DETECTED, "critical", fields)
    return report


def report_self_wait(key: int, site: str) -> None:
    """A thread blocks on a Lock it holds itself (legal only if another thread releases it): once per site."""
    with _lock:
        if site in _self_waits:
            return
        _self_waits.add(site)
    fields = _fields(key)
    fields["stack"] = _threads.caller_stack(_CONFIG.stack_depth, 2)
    _events.emit(_events.LOCK_SELF_WAIT, "warning", fields)


def report_wait_long(key: int, waited: float, holder_id: int | None) -> None:
    """A wait for lock ``key`` is still going after ``waited`` seconds: name the holder and its stack."""
    fields = _fields(key)
    fields.update(
        wait=waited,
        holder=None if holder_id is None else _threads.thread_name(holder_id),
        holder_id=holder_id,
        stack=_threads.caller_stack(_CONFIG.stack_depth, 2),
        holder_stack=[] if holder_id is None else _threads.thread_stack(holder_id, _CONFIG.stack_depth),
    )
    _events.emit(_events.LOCK_WAIT_LONG, "warning", fields)


def _fields(key: int) -> dict[str, Any]:
    primitive = _stats.primitive(key)
    fields: dict[str, Any] = {
        "lock": name_of(key), "kind": getattr(primitive, "_kind", "lock") if primitive is not None else "lock",
    }
    fields.update(_events.thread_fields())
    return fields


def name_of(key: int) -> str:
    """The name of the primitive ``key`` as the order graph shows it (``name#2`` for the second live lock
    of a name), or a placeholder once it is gone."""
    primitive = _stats.primitive(key)
    if primitive is None:
        return f"<dead lock {key}>"
    return _lockorder.graph_name(key) or primitive.trace_name


def deadlocks() -> tuple[DeadlockReport, ...]:
    """Every deadlock detected since the last reset."""
    with _lock:
        return tuple(_reports)


def reset() -> None:
    """Forget detected deadlocks and self-wait sites."""
    with _lock:
        _reports.clear()
        _seen.clear()
        _self_waits.clear()


def _after_fork_in_child() -> None:
    global _lock
    _lock = _thread.RLock()  # raw, re-entrant: a GC-run __del__ may come back in


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
