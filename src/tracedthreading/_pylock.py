"""The pure-Python hot path of Lock and RLock: the fallback where the C extension is not built, and the
reference it is tested against (``TRACEDTHREADING_PURE_PYTHON=1`` selects it).

Reading guide.

* **State.** Each lock holds a real ``_thread`` lock (``_lock``); it alone decides whether the lock is
  held, and a thread waits for it with the stdlib's own wait (interruptible by signals as the
  stdlib's is). Taking it is the first step of an acquire and releasing it the last step of a release;
  the bookkeeping in between only measures. An RLock's owner is the thread that took it last (``_me``,
  below) while a holder is recorded; ``_extra`` counts the levels above the first, as
  ``threading._PyRLock`` counts its levels.
* **Fast path.** An uncontended acquire is one test of "did this thread take it last", a take of the
  real lock, one comparison with the held-lock context the lock last verified (none when the thread
  holds nothing else), a push on the thread's held stack and a clock read. The test reads ``_me``, the
  ``(token, held stack, here)`` of the thread that took the lock last (see
  :data:`tracedthreading._threads.NOBODY`): when that thread's token is owned by the caller, the stack
  is the caller's, for less than a thread-local lookup costs; otherwise the triple comes from the
  thread-local. A thread writes ``_me`` before ``_holder`` (an RLock only once it has the real lock)
  and RLock's ownership tests read ``_holder`` first, so no thread ever takes another's hold for its
  own. An RLock's release tests ownership with ``here`` (the thread's own dict), which takes no call.
  The take is a blocking ``acquire()`` when no holder is recorded, a try otherwise (a try passes an
  argument, which costs a fifth of a raw acquire): with no holder recorded the real lock is free, but
  for the few bytecodes after another thread took it and before it recorded itself (then this thread
  waits for it unmeasured, briefly); with a holder recorded, a failed try leads to the measured wait.
  A release reads the clock, adds the hold to the total, counts down to the next histogram sample,
  removes the key from the holder's stack and releases the real lock. Anything else (a new context, a
  wait, a hold past ``_cap``, a sample, a first use) goes to :mod:`tracedthreading._lockcore`, shared
  with the C hot path. Bytecodes count here: each costs about 1% of an acquire/release pair.
* **Hold histograms are sampled.** A name's first 256 holds all go into its histogram, then one in 8
  on average, later one in 64, each weighted by the holds it stands for: counts, totals and maxima stay
  exact, only the percentiles come from the sample. (The C path counts every hold.)

Faults. A release never leaves the real lock held, whatever exception lands inside it: the release of
the real lock is in a ``finally`` with no call before it, and Python checks for signals only after
calls (and at backward jumps and function entry); RLock's ownership test before the ``try`` takes no
call either; the key leaves the held stack in the first call of the ``try``, so an exception landing
after any later call leaves no stale key. The windows left are CPython's own for ``_PyRLock``: an
exception (a signal handler's) that arrives right after the real lock was taken and before it is
recorded escapes with the lock held, and one that arrives as ``release``/``__exit__`` is entered (on
3.11+, where entering a Python function checks for signals) leaves the lock held. The C hot path has
neither window.

``__enter__``/``__exit__`` repeat ``acquire``'s and ``release``'s bodies instead of calling them: one more
Python call would cost a third of the budget (see ``benchmarks/bench_locks.py``).
"""

from __future__ import annotations

import _thread
import sys
from time import perf_counter as _clock
from typing import Any

from tracedthreading import _lockcore, _stats, _threads

__all__ = ["Lock", "RLock"]

_allocate_lock = _thread.allocate_lock
_getframe = sys._getframe
_tls = _threads.tls
_mine = _threads.me
_NOBODY = _threads.NOBODY
_here = _threads.here
_next_key = _stats.next_key
_new_context = _lockcore.new_context
_get_ident = _thread.get_ident
LockOrderError = _lockcore.LockOrderError

#: A name's first ``_SAMPLE_ALL`` holds all go into its hold histogram; then one in 8 on average does,
#: and past ``_SAMPLE_DENSE`` samples one in 64, each counted for the holds it stands for.
_SAMPLE_ALL = 256
_SAMPLE_DENSE = 1024


def _interval(samples: int, seed: int) -> int:
    """Releases until the next sample, for a name that has ``samples``; the length is drawn from
    ``seed`` (a hold's low bits), so a periodic pattern of short and long holds cannot alias with it."""
    if samples < _SAMPLE_ALL:
        return 1
    if samples < _SAMPLE_DENSE:
        return 1 + seed % 15  # one hold in 8 on average
    return 1 + seed % 127  # one in 64


def _validate(blocking: Any, timeout: Any) -> None:
    """Raise exactly what the stdlib raises for bad ``acquire`` arguments, on this Python version."""
    _allocate_lock().acquire(blocking, timeout)


class Lock:
    """The pure-Python hot path of :class:`tracedthreading.Lock` (see the module docstring)."""

    __slots__ = (
        "__weakref__",
        "_cap",
        "_ctx",
        "_ctxn",
        "_hold_total",
        "_holder",
        "_key",
        "_left",
        "_line",
        "_lock",
        "_me",
        "_module",
        "_n",
        "_ns",
        "_rare",
        "_reentries",
        "_t0",
        "_tname",
        "_w",
    )
    _kind = "lock"

    def __init__(self, *, name: str | None = None) -> None:
        self._lock = _allocate_lock()
        self._me = _NOBODY  # (token, held stack, here) of the thread that took it last: see "Fast path"
        self._holder: list[int] | None = None  # the held stack of the thread that took it
        self._key = _next_key()
        self._ctx: list[int] | None = None  # none cached yet: the first take goes to new_context
        self._ctxn = 0
        self._ns: _stats.NameStats | None = None  # set by the first take (_lockcore.activate)
        self._cap = 0.0
        self._t0 = 0.0
        self._hold_total = 0.0
        self._rare: _stats.Counters | None = None
        self._reentries = 0
        self._n = 0
        self._w = self._left = 1
        if name is None:
            frame = _getframe(1)
            self._module = frame.f_globals.get("__name__", "?")
            self._line = frame.f_lineno
            self._tname = None
        elif name.__class__ is str:
            self._tname = name
            self._module = None
            self._line = 0
        else:
            self._set_name(name)  # a str subclass, or the TypeError

    def _set_name(self, name: Any) -> None:
        self._tname = _lockcore.checked_name(name)
        self._module = None
        self._line = 0

    # -- the hot path ---------------------------------------------------------------------------------

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        """Acquire the lock, like ``threading.Lock.acquire``; returns True when it was acquired."""
        if blocking is not True or timeout != -1:  # first: a short jump over it for the plain acquire
            return self._acquire_general(blocking, timeout)
        token, held, here = self._me
        if not token._is_owned():  # another thread took it last: find this thread's stack
            try:
                me = _tls.me
            except AttributeError:
                me = _mine()
            self._me = me
            token, held, here = me
        if self._holder is None and self._lock.acquire() or self._lock.acquire(False):  # see "Fast path"
            self._holder = held
            if held:
                if held != self._ctx:
                    held.append(self._key)
                    self._t0 = _clock()
                    self._context_changed(held, False)
                    return True
                self._ctxn += 1
            elif self._ns is None:  # its first take: the lock core registers it
                held.append(self._key)
                self._t0 = _clock()
                self._context_changed(held, False)
                return True
            held.append(self._key)
            self._t0 = _clock()
            return True
        return self._contended((token, held, here), -1)

    def __enter__(self) -> bool:
        token, held, here = self._me
        if not token._is_owned():
            try:
                me = _tls.me
            except AttributeError:
                me = _mine()
            self._me = me
            token, held, here = me
        if self._holder is None and self._lock.acquire() or self._lock.acquire(False):  # see "Fast path"
            self._holder = held
            if held:
                if held != self._ctx:
                    held.append(self._key)
                    self._t0 = _clock()
                    self._context_changed(held, False)
                    return True
                self._ctxn += 1
            elif self._ns is None:  # its first take: the lock core registers it
                held.append(self._key)
                self._t0 = _clock()
                self._context_changed(held, False)
                return True
            held.append(self._key)
            self._t0 = _clock()
            return True
        return self._contended((token, held, here), -1)

    def release(self) -> None:
        """Release the lock (from any thread, as Lock allows); ``RuntimeError`` if it is not locked."""
        holder = self._holder
        if holder is None:
            self._lock.release()  # unlocked: the stdlib's RuntimeError (or taken, not yet recorded)
            return
        try:
            try:
                holder.remove(self._key)  # first: an exception landing after any call below finds it gone
            except ValueError:
                pass
            t0 = self._t0
            hold = _clock() - t0
            self._hold_total = self._hold_total + hold  # (not +=: one bytecode fewer)
            left = self._left - 1
            if not left:  # (the common case falls through: no jump)
                self._sample(hold)
            else:
                self._left = left
        finally:
            self._holder = None
            self._lock.release()  # no call between here and the finally's start: nothing can land
        if hold > self._cap:
            _lockcore.past_cap(self, hold, t0, holder)

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        holder = self._holder
        if holder is None:
            self._lock.release()
            return
        try:
            try:
                holder.remove(self._key)
            except ValueError:
                pass
            t0 = self._t0
            hold = _clock() - t0
            self._hold_total = self._hold_total + hold  # (not +=: one bytecode fewer)
            left = self._left - 1
            if not left:  # (the common case falls through: no jump)
                self._sample(hold)
            else:
                self._left = left
        finally:
            self._holder = None
            self._lock.release()
        if hold > self._cap:
            _lockcore.past_cap(self, hold, t0, holder)

    # -- the slow paths -------------------------------------------------------------------------------

    def _context_changed(self, held: list[int], timed: bool, edges: bool = True, refuse: bool = True) -> None:
        """After a take whose context is new: the lock core observes it; undo the take if that raised or
        refused the take (an inversion in raise mode)."""
        try:
            inversion = _new_context(self, held, timed, edges)
        except BaseException:
            self._undo(held)
            raise
        if inversion is not None and refuse:
            self._undo(held)
            raise LockOrderError(inversion)

    def _acquire_general(self, blocking: Any, timeout: Any) -> bool:
        """Any acquire but the plain blocking one: a try, a timed acquire, or bad arguments."""
        _validate(blocking, timeout)
        me = _mine()
        if self._lock.acquire(False):
            trylock = not blocking or timeout == 0
            self._took(me, not trylock and timeout != -1, edges=not trylock)
            return True
        if not blocking or timeout == 0:
            _lockcore.note_failure(self)
            return False
        return self._contended(me, timeout)

    def _took(self, me: tuple[Any, list[int], Any], timed: bool, edges: bool = True, refuse: bool = True) -> None:
        """Record a take of the real lock (this thread, whose ``(token, held stack, here)`` is ``me``, has
        it); the context goes to the lock core when it is new, or always for a timed take (timed edges
        are marked) or a try (which adds no edge)."""
        held = me[1]
        self._me = me  # before the holder: RLock's ownership test reads them in that order
        self._holder = held
        ctx_known = not timed and edges and held == self._ctx
        held.append(self._key)
        self._t0 = _clock()
        if ctx_known:
            if len(held) > 1:
                self._ctxn += 1
            return
        if not edges and self._ns is not None:
            return  # a try: no edge into it, nothing to cache
        self._context_changed(held, timed, edges, refuse)

    def _took_waited(self, me: tuple[Any, list[int], Any], count: int) -> None:
        """Record a take that had to wait (its order edges were recorded before it blocked)."""
        held = me[1]
        self._me = me
        self._holder = held
        held.append(self._key)
        self._t0 = _clock()
        if self._ns is None:
            _lockcore.activate(self)

    def _undo(self, held: list[int]) -> None:
        """Give back a take that raised before returning (the acquire then looks as if it never ran)."""
        try:
            held.remove(self._key)
        except ValueError:
            pass
        self._holder = None
        self._lock.release()

    def _contended(self, me: tuple[Any, list[int], Any], timeout: float, count: int = 1, refuse: bool = True) -> bool:
        """The real lock is taken: wait for it with the stdlib's own wait, measured: up to
        ``wait_long_threshold``, then (reported once) the rest; ``me`` is this thread's ``(token, held
        stack, here)``, ``count`` the recursion level an RLock takes it at."""
        held = me[1]
        holder = self._holder
        wait, first = _lockcore.begin_wait(self, held, timeout, _threads.ident_of(holder), holder is held, refuse)
        got = None
        recorded = False
        try:
            got = self._lock.acquire(True, first)
            if not got and first != timeout:
                got = self._lock.acquire(True, _lockcore.wait_long(self, wait))
            if got:
                self._took_waited(me, count)
                recorded = True
        except BaseException:
            if recorded:
                self._undo(held)
            elif got:
                self._lock.release()  # taken, then interrupted before it was recorded: give it back
            _lockcore.abort_wait(wait)
            raise
        try:
            _lockcore.end_wait(self, wait, got, int(self._t0 * 1e9) if got else None)
        except BaseException:
            if got:
                self._undo(held)
            raise
        return got  # type: ignore[no-any-return]

    def _sample(self, hold: float) -> None:
        """Count one hold into its name's histogram, weighted by the releases it stands for, and draw
        the next sampling interval."""
        ns = int(hold * 1e9)
        weight = self._w
        n = self._n + weight
        self._n = n
        shared = self._ns
        if shared is None:  # taken before it was activated (a take interrupted mid-way): no name yet
            self._w = self._left = 1
            return
        try:
            shared.hist[ns.bit_length()] += weight
        except IndexError:  # a hold longer than the histogram covers so far
            _stats.count_into(shared.hist, ns, weight)
        shared.samples += 1  # may lose a count to a race with another instance: it only steers the rate
        self._w = self._left = _interval(shared.samples, ns + n)

    # -- the protocol threading.Condition uses, fork support, the tracer protocol -----------------------

    def locked(self) -> bool:
        """True if the lock is held by any thread."""
        return self._lock.locked()

    def _is_owned(self) -> bool:
        # Lock has no owner: like threading.Condition's fallback, "locked" is the best answer.
        return self._lock.locked()

    def _release_save(self) -> None:
        self.release()

    def _acquire_restore(self, state: Any) -> None:
        # Condition.wait must return holding its lock: an inversion is reported, never refused here.
        me = _mine()
        if self._lock.acquire(False):
            self._took(me, False, refuse=False)
        else:
            self._contended(me, -1, refuse=False)

    def _at_fork_reinit(self) -> None:
        """The child of a fork: the lock is free again (as the stdlib's ``_at_fork_reinit``)."""
        holder = self._holder
        if holder is not None:
            try:
                holder.remove(self._key)
            except ValueError:
                pass
        self._holder = None
        self._lock._at_fork_reinit()

    def _tt_owner(self) -> int | None:
        return _threads.ident_of(self._holder)

    def _tt_totals(self) -> tuple[int, bool, int, int]:
        """(completed holds, held now, hold total in ns, re-entries)."""
        return self._n + self._w - self._left, self._holder is not None, int(self._hold_total * 1e9), self._reentries

    def _tt_reset(self) -> None:
        self._hold_total = 0.0
        self._rare = None
        self._reentries = 0
        self._n = 0
        self._w = self._left = 1
        self._ctxn = 0

    def __del__(self) -> None:
        # Only used locks were registered; their counters are folded into their name's record.
        try:
            if self._ns is None:
                return
        except AttributeError:  # __init__ never ran (bad arguments): nothing to fold
            return
        try:
            holder = self._holder
            key = self._key
            if holder is not None:  # dropped while held (legal): it is not held by anyone any more
                try:
                    holder.remove(key)
                except ValueError:
                    pass
            _lockcore.retire((
                key, self._tname, self._module, self._line, self._kind, holder is not None,
                self._n + self._w - self._left, int(self._hold_total * 1e9), self._rare, self._reentries,
            ), self._ctx, self._ctxn)
        except Exception:  # noqa: BLE001, S110 - interpreter shutdown, half-built object
            pass


class RLock(Lock):
    """The pure-Python hot path of :class:`tracedthreading.RLock`: re-entries are counted apart and never
    become order edges."""

    # ``_extra``: the levels held above the first (0 whenever the lock is free, so a first take writes
    # nothing); only the owner writes it.
    __slots__ = ("_extra",)
    _kind = "rlock"

    def __init__(self, *, name: str | None = None) -> None:
        self._lock = _allocate_lock()
        self._me = _NOBODY
        self._holder = None
        self._extra = 0
        self._key = _next_key()
        self._ctx = None
        self._ctxn = 0
        self._ns = None
        self._cap = 0.0
        self._t0 = 0.0
        self._hold_total = 0.0
        self._rare = None
        self._reentries = 0
        self._n = 0
        self._w = self._left = 1
        if name is None:
            frame = _getframe(1)
            self._module = frame.f_globals.get("__name__", "?")
            self._line = frame.f_lineno
            self._tname = None
        elif name.__class__ is str:
            self._tname = name
            self._module = None
            self._line = 0
        else:
            self._set_name(name)

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        """Acquire the lock, or re-enter it if this thread owns it; returns True when acquired."""
        holder = self._holder  # first, then _me: a thread that takes it writes _me, then _holder
        me = self._me
        token, held, _ = me
        if token._is_owned():  # this thread took it last: it owns it while a holder is recorded
            if holder is not None:
                if blocking is not True or timeout != -1:
                    _validate(blocking, timeout)
                self._extra += 1
                self._reentries += 1
                return True
        else:
            try:
                me = _tls.me
            except AttributeError:
                me = _mine()
            held = me[1]
        if blocking is not True or timeout != -1:
            return self._acquire_general(blocking, timeout)
        if holder is None and self._lock.acquire() or self._lock.acquire(False):  # see "Fast path"
            self._me = me  # before the holder: the ownership test reads them in that order
            self._holder = held
            if held:
                if held != self._ctx:
                    held.append(self._key)
                    self._t0 = _clock()
                    self._context_changed(held, False)
                    return True
                self._ctxn += 1
            elif self._ns is None:  # its first take: the lock core registers it
                held.append(self._key)
                self._t0 = _clock()
                self._context_changed(held, False)
                return True
            held.append(self._key)
            self._t0 = _clock()
            return True
        return self._contended(me, -1)

    def __enter__(self) -> bool:
        holder = self._holder
        me = self._me
        token, held, _ = me
        if token._is_owned():
            if holder is not None:
                self._extra += 1
                self._reentries += 1
                return True
        else:
            try:
                me = _tls.me
            except AttributeError:
                me = _mine()
            held = me[1]
        if holder is None and self._lock.acquire() or self._lock.acquire(False):  # see "Fast path"
            self._me = me
            self._holder = held
            if held:
                if held != self._ctx:
                    held.append(self._key)
                    self._t0 = _clock()
                    self._context_changed(held, False)
                    return True
                self._ctxn += 1
            elif self._ns is None:  # its first take: the lock core registers it
                held.append(self._key)
                self._t0 = _clock()
                self._context_changed(held, False)
                return True
            held.append(self._key)
            self._t0 = _clock()
            return True
        return self._contended(me, -1)

    def release(self) -> None:
        """Leave one level; the final level releases. ``RuntimeError`` if this thread does not own it."""
        held = self._holder  # first, then _me (see "Fast path")
        if held is None or self._me[2] is not _here.__dict__:  # no call: nothing can land in between
            msg = "cannot release un-acquired lock"
            raise RuntimeError(msg)
        if self._extra:
            self._extra -= 1
            return
        try:
            try:
                held.remove(self._key)
            except ValueError:
                pass
            t0 = self._t0
            hold = _clock() - t0
            self._hold_total = self._hold_total + hold  # (not +=: one bytecode fewer)
            left = self._left - 1
            if not left:  # (the common case falls through: no jump)
                self._sample(hold)
            else:
                self._left = left
        finally:
            self._holder = None
            self._lock.release()
        if hold > self._cap:
            _lockcore.past_cap(self, hold, t0, held)

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        held = self._holder  # first, then _me (see "Fast path")
        if held is None or self._me[2] is not _here.__dict__:  # no call: nothing can land in between
            msg = "cannot release un-acquired lock"
            raise RuntimeError(msg)
        if self._extra:
            self._extra -= 1
            return
        try:
            try:
                held.remove(self._key)
            except ValueError:
                pass
            t0 = self._t0
            hold = _clock() - t0
            self._hold_total = self._hold_total + hold  # (not +=: one bytecode fewer)
            left = self._left - 1
            if not left:  # (the common case falls through: no jump)
                self._sample(hold)
            else:
                self._left = left
        finally:
            self._holder = None
            self._lock.release()
        if hold > self._cap:
            _lockcore.past_cap(self, hold, t0, held)

    def _took_waited(self, me: tuple[Any, list[int], Any], count: int) -> None:
        held = me[1]
        self._extra = count - 1
        self._me = me  # before the holder: the ownership test reads them in that order
        self._holder = held
        held.append(self._key)
        self._t0 = _clock()
        if self._ns is None:
            _lockcore.activate(self)

    def _undo(self, held: list[int]) -> None:
        self._extra = 0
        super()._undo(held)

    def locked(self) -> bool:
        """True if some thread holds the lock (Python 3.14 added this to RLock; offered everywhere)."""
        return self._lock.locked()

    def _is_owned(self) -> bool:
        # The holder first: a thread that takes it writes _me, then _holder (see "Fast path").
        return self._holder is not None and self._me[2] is _here.__dict__

    def _recursion_count(self) -> int:
        return self._extra + 1 if self._is_owned() else 0

    def _recursion_count_any(self) -> int:
        """The recursion level whichever thread holds it (0 when free)."""
        return self._extra + 1 if self._holder is not None else 0

    def _release_save(self) -> tuple[int, int]:
        """Release every level at once (``Condition.wait``); returns what ``_acquire_restore`` needs."""
        if not self._is_owned():
            msg = "cannot release un-acquired lock"
            raise RuntimeError(msg)
        state = (self._extra + 1, _get_ident())
        self._extra = 0
        self.release()
        return state

    def _acquire_restore(self, state: tuple[int, int]) -> None:
        # Condition.wait must return holding its lock: an inversion is reported, never refused here.
        count = state[0]
        me = _mine()
        if self._lock.acquire(False):
            self._took(me, False, refuse=False)
            self._extra = count - 1
        else:
            self._contended(me, -1, count, refuse=False)

    def _at_fork_reinit(self) -> None:
        super()._at_fork_reinit()
        self._extra = 0

    def _tt_owner(self) -> int | None:
        return _threads.ident_of(self._holder)
