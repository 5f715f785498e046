"""``Lock`` and ``RLock``: the traced ownership locks, and the hot path of the whole library.

Reading guide. ``acquire`` first tries the raw lock without blocking: when that succeeds (the common,
uncontended case) the cost is one thread-local read, one comparison against the cached lock-order
context, a push on the thread's held stack and one clock read. Everything else (argument validation,
contention timing, the wait-for graph, long waits, new order edges) lives in ``_acquire_slow`` and the
modules it calls. ``release`` reads the clock once and updates three hold counters. Counters are only
written while the lock is held, so they are exact without any extra lock.

``__enter__`` and ``__exit__`` repeat ``acquire``'s and ``release``'s bodies instead of calling them:
one more Python call would cost a third of the budget (see ``benchmarks/bench_locks.py``). Threshold
events are emitted after the raw release, never while holding the lock being reported.
"""

from __future__ import annotations

import _thread
import itertools
import sys
from time import perf_counter_ns as _clock
from typing import Any

from tracedthreading import _config, _deadlock, _events, _lockorder, _stats, _threads

__all__ = ["Lock", "RLock"]

_allocate_lock = _thread.allocate_lock
_getframe = sys._getframe
_live = _stats._live
_ref = _stats.weakref.ref
_retire_unused = _stats.retire_unused
_get_ident = _thread.get_ident
_tls = _threads.tls
_current = _threads.current
_serial = itertools.count(1)
_CONFIG = _config.CONFIG
_NEVER = 1 << 200  # a "threshold" no duration reaches

# Thresholds in ns, refreshed by configure(); module globals so the hot path reads them in one step.
_held_long_ns = _NEVER


def _refresh_thresholds() -> None:
    global _held_long_ns
    threshold = _CONFIG.held_long_threshold
    _held_long_ns = _NEVER if threshold is None else int(threshold * 1e9)


_config._listeners.append(_refresh_thresholds)
_refresh_thresholds()


def _validate(blocking: Any, timeout: Any) -> None:
    """Raise exactly what the stdlib raises for bad ``acquire`` arguments, on this Python version."""
    _allocate_lock().acquire(blocking, timeout)


def site_of(frame: Any) -> tuple[str, int]:
    """``(module, line)`` of a creation frame: the default name of a primitive is ``module:line``."""
    return frame.f_globals.get("__name__", "?"), frame.f_lineno


class _Traced:
    """What every traced primitive shares: a key, a name (explicit or its creation site), counters."""

    __slots__ = ()
    _kind = "primitive"
    _key: int
    _module: str | None
    _line: int
    _tname: str | None

    def _init_identity(self, name: str | None, depth: int) -> None:
        if name is None:
            frame = _getframe(depth + 1)
            self._module = frame.f_globals.get("__name__", "?")
            self._line = frame.f_lineno
            self._tname = None
        else:
            self._set_name(name)
        self._key = key = next(_serial)
        _live[key] = _ref(self)

    def _set_name(self, name: str) -> None:
        if not isinstance(name, str):
            msg = f"name must be a str, got {type(name).__name__}"
            raise TypeError(msg)
        self._tname = name
        self._module = None
        self._line = 0

    @property
    def trace_name(self) -> str:
        """The explicit ``name=``, or ``module:line`` of the line that created this primitive."""
        name = self._tname
        if name is None:
            name = self._tname = f"{self._module}:{self._line}"
        return name

    @property
    def site(self) -> str:
        """Where this primitive was created (``module:line``), or its name when it was given one."""
        if self._module is None:
            return self.name
        return f"{self._module}:{self._line}"


class Lock(_Traced):
    """A traced ``threading.Lock``: same behaviour, plus contention, hold-time and lock-order records."""

    __slots__ = (
        "__weakref__",
        "_block",
        "_key",
        "_line",
        "_module",
        "_tname",
        "_ctx",
        "_ctxn",
        "_holder",
        "_hold_hist",
        "_last",
        "_hold_max",
        "_hold_total",
        "_rare",
        "_t0",
    )
    _kind = "lock"
    name = _Traced.trace_name

    def __init__(self, *, name: str | None = None) -> None:
        # Creation is on the hot path of programs that make a lock per object: no helper calls here.
        self._block = _allocate_lock()
        self._holder: _threads.Held | None = None
        self._last: _threads.Held | None = None  # who released it last: names the blocker in a handoff
        self._ctx: list[int] | None = None
        self._ctxn = 0
        self._t0 = 0
        self._hold_total = 0
        self._hold_max = 0
        self._hold_hist: list[int] | None = None
        self._rare: _stats.Counters | None = None
        if name is None:
            frame = _getframe(1)
            self._module = frame.f_globals.get("__name__", "?")
            self._line = frame.f_lineno
            self._tname = None
        else:
            self._set_name(name)
        self._key = key = next(_serial)
        _live[key] = _ref(self)

    # -- the hot path ---------------------------------------------------------------------------

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        """Acquire the lock, like ``threading.Lock.acquire``; returns True when it was acquired."""
        if blocking is True and timeout == -1 and self._block.acquire(False):
            try:
                held = _tls.held
            except AttributeError:
                held = _current()
            if held:
                if held != self._ctx:
                    _lockorder.observe(self, held, False)
                else:
                    self._ctxn += 1
            self._holder = held
            held.append(self._key)
            self._t0 = _clock()
            return True
        return self._acquire_slow(blocking, timeout)

    def __enter__(self) -> bool:
        # acquire() without its argument checks: the same fast path, one comparison shorter.
        if self._block.acquire(False):
            try:
                held = _tls.held
            except AttributeError:
                held = _current()
            if held:
                if held != self._ctx:
                    _lockorder.observe(self, held, False)
                else:
                    self._ctxn += 1
            self._holder = held
            held.append(self._key)
            self._t0 = _clock()
            return True
        return self._acquire_slow(True, -1)

    def release(self) -> None:
        """Release the lock (from any thread, as Lock allows); ``RuntimeError`` if it is not locked."""
        held = self._holder
        if held is None:
            self._block.release()  # raises the stdlib's RuntimeError when unlocked
            return
        hold = _clock() - self._t0
        self._hold_total += hold
        if hold > self._hold_max:
            self._hold_max = hold
        try:
            self._hold_hist[hold.bit_length()] += 1  # type: ignore[index]
        except (TypeError, IndexError):  # no histogram yet, or a hold longer than it covers
            self._hold_hist = _stats.record(self._hold_hist, hold)
        self._holder = None
        self._last = held
        try:
            top = held.pop()
            if top != self._key:
                _unhold_after_pop(held, self._key, top)
        except IndexError:  # released by another thread, which already emptied the stack
            pass
        self._block.release()
        if hold > _held_long_ns:  # reported once released: never log while holding the user's lock
            _report_held_long(self, hold)

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        held = self._holder
        if held is None:
            self._block.release()
            return
        hold = _clock() - self._t0
        self._hold_total += hold
        if hold > self._hold_max:
            self._hold_max = hold
        try:
            self._hold_hist[hold.bit_length()] += 1  # type: ignore[index]
        except (TypeError, IndexError):  # no histogram yet, or a hold longer than it covers
            self._hold_hist = _stats.record(self._hold_hist, hold)
        self._holder = None
        self._last = held
        try:
            top = held.pop()
            if top != self._key:
                _unhold_after_pop(held, self._key, top)
        except IndexError:  # released by another thread, which already emptied the stack
            pass
        self._block.release()
        if hold > _held_long_ns:  # reported once released: never log while holding the user's lock
            _report_held_long(self, hold)

    # -- the slow path ----------------------------------------------------------------------------

    def _acquire_slow(self, blocking: Any, timeout: Any) -> bool:
        if blocking is not True or timeout != -1:
            _validate(blocking, timeout)
        held = _current()
        if not blocking:
            if self._block.acquire(False):
                self._took(held)
                return True
            _note_failure(self)
            return False
        timed = timeout != -1
        if self._block.acquire(False):
            if held:
                _lockorder.observe(self, held, timed)
            self._took(held)
            return True
        return self._wait(held, timeout, 1)

    def _took(self, held: _threads.Held) -> None:
        self._holder = held
        held.append(self._key)
        self._t0 = _clock()

    def _wait(self, held: _threads.Held, timeout: float, count: int) -> bool:
        """Block for the raw lock: order check first, then deadlock check, then timed waiting."""
        holder = self._holder
        if holder is not None and holder is not held and holder.ident == held.ident:
            # This thread holds the lock on its real stack and is now inside tracedthreading's own
            # logging (a temporary stack): blocking would deadlock on our account. Abort the event.
            raise _events.ReentrantLogging
        if held:
            _lockorder.observe(self, held, timeout != -1, holding=False)
        holder = self._holder
        # Named now: the holder may have finished (and left threading's registry) by the time we get it.
        holder_name = _threads.thread_name(holder.ident) if holder is not None else None
        got, waited = _deadlock.blocking_acquire(self, held, holder, timeout)
        if got:
            if holder is None:
                # The raw lock had been handed to a thread not yet registered as holder; whoever
                # released it to us last is the one we waited for.
                holder = self._last
                holder_name = _threads.thread_name(holder.ident) if holder is not None else None
            self._took(held)
            self._after_acquired(count)
        _note_contention(self, holder, holder_name, waited, got)
        return got

    def _after_acquired(self, count: int) -> None:
        """Hook for RLock: restore the recursion count once the raw lock is ours."""

    # -- the protocol threading.Condition uses, and fork support -----------------------------------

    def locked(self) -> bool:
        """True if the lock is held by any thread."""
        return self._block.locked()

    def _is_owned(self) -> bool:
        # Lock has no owner: like threading.Condition's fallback, "locked" is the best answer.
        return self._block.locked()

    def _release_save(self) -> None:
        self.release()

    def _acquire_restore(self, state: Any) -> None:
        # Condition.wait must return holding its lock, so on_inversion="raise" only reports here.
        try:
            self.acquire()
        except _lockorder.LockOrderError:
            self.acquire()

    def _at_fork_reinit(self) -> None:
        holder = self._holder
        if holder is not None:  # reset to unlocked: nobody holds it any more
            _unhold(holder, self._key)
        self._block._at_fork_reinit()  # type: ignore[attr-defined]
        self._holder = None

    # -- statistics ---------------------------------------------------------------------------------

    def _counters(self) -> _stats.Counters:
        counters = _stats.Counters(self.name, self._kind)
        rare = self._rare
        if rare is not None:
            counters.add(rare)
        hist = self._hold_hist
        released = sum(hist) if hist else 0
        counters.acquisitions += released + (self._holder is not None)
        counters.hold_total = self._hold_total
        counters.hold_max = self._hold_max
        counters.hold_hist = None if hist is None else list(hist)
        counters.reentries += self._reentry_count()
        return counters

    def _reentry_count(self) -> int:
        return 0

    def _reset_counters(self) -> None:
        self._hold_total = 0
        self._hold_max = 0
        self._hold_hist = None
        self._rare = None
        self._ctxn = 0

    def __del__(self) -> None:
        try:
            holder = self._holder
            if holder is not None:  # dropped while held (legal): it is not held by anyone any more
                _unhold(holder, self._key)
            if self._hold_hist is None and self._rare is None and holder is None:
                # Never used: queue just enough to count the instance (drain does the rest).
                _retire_unused((self._key, self._tname, self._module, self._line, self._kind))
            else:
                _stats.retire_lock((
                    self._key, self._tname, self._module, self._line, self._kind, holder is not None,
                    self._hold_total, self._hold_max, self._hold_hist, self._rare, self._reentry_count(),
                ))
                _lockorder.retire(self._key)
        except Exception:  # noqa: BLE001 - interpreter shutdown, half-built object
            pass

    def __repr__(self) -> str:
        state = "locked" if self._block.locked() else "unlocked"
        return f"<{state} {type(self).__module__}.{type(self).__qualname__} object name={self.name!r} at {id(self):#x}>"


class RLock(Lock):
    """A traced ``threading.RLock``: re-entries are counted apart and never become order edges."""

    __slots__ = ("_count", "_reentries")
    _kind = "rlock"

    def __init__(self, *, name: str | None = None) -> None:
        self._block = _allocate_lock()
        self._holder = None
        self._last = None
        self._ctx = None
        self._ctxn = 0
        self._t0 = 0
        self._hold_total = 0
        self._hold_max = 0
        self._hold_hist = None
        self._rare = None
        self._count = 0
        self._reentries = 0
        if name is None:
            frame = _getframe(1)
            self._module = frame.f_globals.get("__name__", "?")
            self._line = frame.f_lineno
            self._tname = None
        else:
            self._set_name(name)
        self._key = key = next(_serial)
        _live[key] = _ref(self)

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        """Acquire the lock, or re-enter it if this thread owns it; returns True when acquired."""
        try:
            held = _tls.held
        except AttributeError:
            held = _current()
        if self._holder is held:
            if blocking is not True or timeout != -1:
                _validate(blocking, timeout)
            self._count += 1
            self._reentries += 1
            return True
        if blocking is True and timeout == -1 and self._block.acquire(False):
            if held:
                if held != self._ctx:
                    _lockorder.observe(self, held, False)
                else:
                    self._ctxn += 1
            self._holder = held
            self._count = 1
            held.append(self._key)
            self._t0 = _clock()
            return True
        return self._acquire_slow(blocking, timeout)

    def __enter__(self) -> bool:
        try:
            held = _tls.held
        except AttributeError:
            held = _current()
        if self._holder is held:
            self._count += 1
            self._reentries += 1
            return True
        if self._block.acquire(False):
            if held:
                if held != self._ctx:
                    _lockorder.observe(self, held, False)
                else:
                    self._ctxn += 1
            self._holder = held
            self._count = 1
            held.append(self._key)
            self._t0 = _clock()
            return True
        return self._acquire_slow(True, -1)

    def release(self) -> None:
        """Leave one level; the final level releases. ``RuntimeError`` if this thread does not own it."""
        try:
            held = _tls.held
        except AttributeError:
            held = None
        if held is None or self._holder is not held:
            held = self._owner_stack()
        count = self._count - 1
        if count:
            self._count = count
            return
        self._count = 0
        hold = _clock() - self._t0
        self._hold_total += hold
        if hold > self._hold_max:
            self._hold_max = hold
        try:
            self._hold_hist[hold.bit_length()] += 1  # type: ignore[index]
        except (TypeError, IndexError):  # no histogram yet, or a hold longer than it covers
            self._hold_hist = _stats.record(self._hold_hist, hold)
        self._holder = None
        self._last = held
        try:
            top = held.pop()
            if top != self._key:
                _unhold_after_pop(held, self._key, top)
        except IndexError:  # released by another thread, which already emptied the stack
            pass
        self._block.release()
        if hold > _held_long_ns:  # reported once released: never log while holding the user's lock
            _report_held_long(self, hold)

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            held = _tls.held
        except AttributeError:
            held = None
        if held is None or self._holder is not held:
            held = self._owner_stack()
        count = self._count - 1
        if count:
            self._count = count
            return
        self._count = 0
        hold = _clock() - self._t0
        self._hold_total += hold
        if hold > self._hold_max:
            self._hold_max = hold
        try:
            self._hold_hist[hold.bit_length()] += 1  # type: ignore[index]
        except (TypeError, IndexError):  # no histogram yet, or a hold longer than it covers
            self._hold_hist = _stats.record(self._hold_hist, hold)
        self._holder = None
        self._last = held
        try:
            top = held.pop()
            if top != self._key:
                _unhold_after_pop(held, self._key, top)
        except IndexError:  # released by another thread, which already emptied the stack
            pass
        self._block.release()
        if hold > _held_long_ns:  # reported once released: never log while holding the user's lock
            _report_held_long(self, hold)

    def _took(self, held: _threads.Held) -> None:
        self._holder = held
        self._count = 1
        held.append(self._key)
        self._t0 = _clock()

    def _after_acquired(self, count: int) -> None:
        self._count = count

    def locked(self) -> bool:
        """True if some thread holds the lock (Python 3.14 added this to RLock; offered everywhere)."""
        return self._block.locked()

    def _is_owned(self) -> bool:
        holder = self._holder
        return holder is not None and holder.ident == _get_ident()

    def _owner_stack(self) -> _threads.Held:
        """The held stack this thread owns the lock under, or the stdlib's RuntimeError.

        Usually the thread's current stack; while tracedthreading logs, the thread runs on a temporary
        stack (see ``_events.emit``), and the lock still belongs to it: ownership is by thread.
        """
        holder = self._holder
        if holder is None or holder.ident != _get_ident():
            msg = "cannot release un-acquired lock"
            raise RuntimeError(msg)
        return holder

    def _acquire_slow(self, blocking: Any, timeout: Any) -> bool:
        holder = self._holder
        if holder is not None and holder.ident == _get_ident():
            # Owned under a suspended held stack (we are inside tracedthreading's logging): re-entry.
            if blocking is not True or timeout != -1:
                _validate(blocking, timeout)
            self._count += 1
            self._reentries += 1
            return True
        return super()._acquire_slow(blocking, timeout)

    def _recursion_count(self) -> int:
        return self._count if self._is_owned() else 0

    def _release_save(self) -> tuple[int, int]:
        """Release every level at once (``Condition.wait``); returns what ``_acquire_restore`` needs."""
        if not self._is_owned():
            msg = "cannot release un-acquired lock"
            raise RuntimeError(msg)
        state = (self._count, _get_ident())
        self._count = 1
        self.release()
        return state

    def _acquire_restore(self, state: tuple[int, int]) -> None:
        # Condition.wait must return holding its lock, so on_inversion="raise" only reports here: the
        # cycle is reported (once) and the retry finds the edge known.
        count = state[0]
        held = _current()
        if self._block.acquire(False):
            if held:
                try:
                    _lockorder.observe(self, held, False)
                except _lockorder.LockOrderError:
                    self._block.acquire()
            self._took(held)
            self._count = count
            return
        try:
            self._wait(held, -1, count)
        except _lockorder.LockOrderError:
            self._wait(held, -1, count)

    def _at_fork_reinit(self) -> None:
        super()._at_fork_reinit()
        self._count = 0

    def _reentry_count(self) -> int:
        return self._reentries

    def _reset_counters(self) -> None:
        super()._reset_counters()
        self._reentries = 0

    def __repr__(self) -> str:
        holder = self._holder
        state = "locked" if holder is not None else "unlocked"
        owner = holder.ident if holder is not None else 0
        count = self._count if holder is not None else 0
        return (
            f"<{state} {type(self).__module__}.{type(self).__qualname__} object owner={owner} "
            f"count={count} name={self.name!r} at {id(self):#x}>"
        )


# -- helpers of the slow paths (module functions keep the classes' hot methods short) ---------------


def _unhold(held: _threads.Held, key: int) -> None:
    """Remove ``key`` from a held stack when it is not on top (out-of-order or foreign release)."""
    try:
        # Search from the top: the most recent acquisition of this key is the one being released.
        for index in range(len(held) - 1, -1, -1):
            if held[index] == key:
                del held[index]
                return
    except IndexError:  # another thread shrank the list meanwhile; the key is gone with it
        pass


def _unhold_after_pop(held: _threads.Held, key: int, top: int) -> None:
    """The popped key was not ours (an out-of-order release): put it back and remove ours."""
    held.append(top)
    _unhold(held, key)


def _note_failure(lock: Any) -> None:
    with _stats.lock:
        rare = lock._rare
        if rare is None:
            rare = lock._rare = _stats.Counters(lock.trace_name, lock._kind)
        rare.failures += 1


def _note_contention(
    lock: Any, holder: _threads.Held | None, holder_name: str | None, waited: int, got: bool
) -> None:
    """Count one blocked acquire (successful or timed out), and report it past the threshold."""
    with _stats.lock:
        rare = lock._rare
        if rare is None:
            rare = lock._rare = _stats.Counters(lock.trace_name, lock._kind)
        rare.contentions += 1
        if not got:
            rare.timeouts += 1
        rare.wait_total += waited
        if waited > rare.wait_max:
            rare.wait_max = waited
        rare.wait_hist = _stats.record(rare.wait_hist, waited)
        if holder_name is not None:
            blockers = rare.blockers
            if blockers is None:
                blockers = rare.blockers = {}
            blockers[holder_name] = blockers.get(holder_name, 0) + 1
    threshold = _CONFIG.contended_threshold
    if threshold is not None and waited >= threshold * 1e9:
        fields = lock_fields(lock)
        fields.update(wait=waited / 1e9, timed_out=not got, holder=holder_name,
                      holder_id=holder.ident if holder is not None else None)
        _events.emit(_events.LOCK_CONTENDED, "warning", fields)


def _report_held_long(lock: Any, hold: int) -> None:
    fields = lock_fields(lock)
    fields.update(hold=hold / 1e9, stack=_threads.caller_stack(_CONFIG.stack_depth, 2))
    _events.emit(_events.LOCK_HELD_LONG, "warning", fields)


def lock_fields(primitive: Any, ident: int | None = None) -> dict[str, Any]:
    """The fields every event carries: ``lock``, ``kind``, ``thread``, ``thread_id``."""
    fields: dict[str, Any] = {"lock": primitive.trace_name, "kind": primitive._kind}
    fields.update(_events.thread_fields(ident))
    return fields
