"""Real deadlocks and very long waits, checked by the thread that is about to block.

Before blocking, a thread records what it waits for (its ``Held.waiting``) and follows the wait-for chain:
lock -> holding thread -> the lock that thread waits for -> ... If the chain comes back to the caller,
every thread on it is blocked for good: ``deadlock.detected`` is emitted at once, with each thread's
holdings and current stack. The wait itself runs in slices of ``wait_long_threshold`` so a wait that
goes on too long is reported (``lock.wait_long``) without any watchdog thread.
"""

from __future__ import annotations

import _thread
import os
from time import perf_counter_ns as _clock
from typing import Any

from tracedthreading import _config, _events, _stats, _threads
from tracedthreading.snapshot import DeadlockReport, DeadlockThread

__all__ = ["blocking_acquire", "deadlocks", "reset"]

_CONFIG = _config.CONFIG
_lock = _thread.RLock()  # raw, re-entrant: a GC-run __del__ may come back in
_reports: list[DeadlockReport] = []
_seen: set[frozenset[tuple[int, int]]] = set()
_self_waits: set[str] = set()
_MAX_CHAIN = 1000
context = ""  # set by the pytest plugin: the test that is running


def blocking_acquire(lock: Any, held: _threads.Stack, holder: _threads.Stack | None, timeout: float) -> tuple[bool, int]:
    """Wait for ``lock``'s token (``timeout`` as in ``acquire``); returns (acquired, waited ns)."""
    start = _clock()
    record = _threads.record_of(held)
    if record is not None:
        record.waiting = lock
    try:
        if holder is held:
            _report_self_wait(lock)
        else:
            _check_cycle(lock, held)
        got = _wait_sliced(lock, held, holder, timeout, start)
    finally:
        if record is not None:
            record.waiting = None
    return got, _clock() - start


def _wait_sliced(lock: Any, held: _threads.Stack, holder: _threads.Stack | None, timeout: float, start: int) -> bool:
    take = lock._take
    slice_ = _CONFIG.wait_long_threshold
    if slice_ is None or (timeout != -1 and timeout <= slice_):
        return take(timeout, held)
    if take(slice_, held):
        return True
    _report_wait_long(lock, held, start)
    if timeout == -1:
        return take(-1, held)
    remaining = timeout - (_clock() - start) / 1e9
    return take(max(remaining, 0.0), held)


def _report_self_wait(lock: Any) -> None:
    site = lock.site
    if site in _self_waits:
        return
    _self_waits.add(site)
    fields = _fields(lock)
    fields["stack"] = _threads.caller_stack(_CONFIG.stack_depth, 2)
    _events.emit(_events.LOCK_SELF_WAIT, "warning", fields)


def _check_cycle(lock: Any, held: _threads.Stack) -> None:
    """Follow lock -> holder -> awaited lock ...; a chain back to ``held`` is a deadlock."""
    chain: list[tuple[_threads.Stack, Any]] = [(held, lock)]
    seen = {id(held)}
    current = lock
    for _ in range(_MAX_CHAIN):
        owner = current._holder
        if owner is None:
            return
        if owner is held:
            _report_deadlock(chain)
            return
        if id(owner) in seen:
            return  # a cycle of other threads (reported by them) or a self-wait: we only wait on it
        seen.add(id(owner))
        record = _threads.record_of(owner)
        waiting = record.waiting if record is not None else None
        if waiting is None or getattr(waiting, "_holder", None) is None:
            return
        chain.append((owner, waiting))
        current = waiting


def _report_deadlock(chain: list[tuple[_threads.Stack, Any]]) -> None:
    ident = frozenset((_threads.ident_of(held), lock._key) for held, lock in chain)
    with _lock:
        if ident in _seen:
            return
        _seen.add(ident)
    threads = []
    for held, lock in chain:
        holds = tuple(_name_of_key(key) for key in list(held))
        thread_id = _threads.ident_of(held) or 0
        stack = tuple(_threads.thread_stack(thread_id, _CONFIG.stack_depth))
        if thread_id == _thread.get_ident():
            stack = tuple(_threads.caller_stack(_CONFIG.stack_depth, 3))
        threads.append(DeadlockThread(
            thread=_threads.thread_name(thread_id), thread_id=thread_id, holds=holds,
            waits_for=lock.name, stack=stack,
        ))
    report = DeadlockReport(threads=tuple(threads), context=context)
    with _lock:
        _reports.append(report)
    first = chain[0][1]
    fields = _fields(first)
    fields["threads"] = [
        {"thread": t.thread, "thread_id": t.thread_id, "holds": list(t.holds), "waits_for": t.waits_for,
         "stack": list(t.stack)}
        for t in threads
    ]
    fields["report"] = str(report)
    if context:
        fields["context"] = context
    _events.emit(_events.DEADLOCK_DETECTED, "critical", fields)


def _report_wait_long(lock: Any, held: _threads.Stack, start: int) -> None:
    holder_id = _threads.ident_of(lock._holder)
    fields = _fields(lock)
    fields.update(
        wait=(_clock() - start) / 1e9,
        holder=None if holder_id is None else _threads.thread_name(holder_id),
        holder_id=holder_id,
        stack=_threads.caller_stack(_CONFIG.stack_depth, 3),
        holder_stack=[] if holder_id is None else _threads.thread_stack(holder_id, _CONFIG.stack_depth),
    )
    _events.emit(_events.LOCK_WAIT_LONG, "warning", fields)


def _fields(lock: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {"lock": lock.name, "kind": lock._kind}
    fields.update(_events.thread_fields())
    return fields


def _name_of_key(key: int) -> str:
    ref = _stats._live.get(key)
    lock = ref() if ref is not None else None
    return lock.name if lock is not None else f"<dead lock {key}>"


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
