"""``Lock`` and ``RLock``: the traced ownership locks, and the hot path of the whole library.

Reading guide.

* **State.** A lock is free when its one-element token list ``_tok`` holds its token: ``pop()`` takes
  it, ``append()`` gives it back. Both are single C calls, atomic without the GIL too, and about four
  times cheaper than a raw lock's ``acquire(False)``/``release()``. Threads that find no token queue a
  private raw lock in ``_waiters`` and sleep on it (:meth:`Lock._take`); a release that finds them
  (its one comparison with ``_cap`` sees them, see :meth:`Lock._past_cap`) wakes the oldest. A waiter
  enqueues itself *before* its last look at the token and a releaser returns the token *before* it
  looks at the queue, so a wake-up is never lost; a waiter that keeps losing the token to a thread
  re-taking the lock is handed the lock instead (no starvation); a per-waiter claim decides, for a
  waiter leaving on a timeout or an exception, whether a releaser got to it first (see
  :class:`_Waiter`); and a waiter sleeps in slices of ``_RECHECK``, taking a free token nobody woke it
  for, so a release that an exception interrupts before its wake-up cannot strand it.
* **Fresh and active.** A new lock is a cheap object (its token, its name or creation site). Its first
  acquire gives it a key, counters and a place in the weak registry, then switches its class to the
  hot-path class (``_ActiveLock``/``_ActiveRLock``, subclasses of the public ones). Locks that are never
  taken therefore cost little to create and nothing to collect.
* **Fast path.** An uncontended acquire is a token pop, one thread-local read, one comparison against
  the cached lock-order context, a push on the thread's held stack and one clock read. A release reads
  the clock, adds the hold to the total, counts down to the next histogram sample, pops the held stack
  and returns the token. Waiting threads, new maxima of the lock's name and holds past
  ``held_long_threshold`` (one comparison with ``_cap``, below any hold while threads wait) and
  histogram samples (see ``_interval``: every hold for a name's first 256
  samples, then one in 8 and later one in 64 on average, each weighted) take short detours. Counters are
  written only while the lock is held, so they are exact without another lock; the maximum and the
  histogram are per name (:class:`~tracedthreading._stats.NameStats`). Everything else (argument checks,
  waiting, the wait-for graph, new order edges) is in the slow path and the modules it calls.

``__enter__``/``__exit__`` repeat ``acquire``'s and ``release``'s bodies instead of calling them: one more
Python call would cost a third of the budget (see ``benchmarks/bench_locks.py``). Threshold events are
emitted after the token is back, never while holding the lock being reported.
"""

from __future__ import annotations

import _thread
import itertools
import os
import sys
from collections import deque
from time import monotonic as _monotonic
from time import perf_counter as _clock
from time import sleep as _sleep
from typing import Any

from tracedthreading import _config, _deadlock, _events, _lockorder, _stats, _threads

__all__ = ["Lock", "RLock"]

_allocate_lock = _thread.allocate_lock
_new_object = object.__new__
_getframe = sys._getframe
_live = _stats._live
_name_stats = _stats._name_stats
_retire_lock = _stats.retire_lock
_order_nodes = _lockorder._names  # keys of locks in the order graph (never rebound, only cleared)
_ref = _stats.weakref.ref
_get_ident = _thread.get_ident
_tls = _threads.tls
_ident_of = _threads.ident_of
_renew_if_shrunk = _threads.renew_if_shrunk
_current = _threads.current
_serial = itertools.count(1)
_CONFIG = _config.CONFIG
_NEVER = float("inf")  # a "threshold" no hold reaches
_WAITED = -1.0  # a lock's ``_cap`` while threads wait for it: below any hold (see Lock._past_cap)

#: A name's first ``_SAMPLE_ALL`` holds all go into its hold histogram; then one in 8 on average does,
#: and past ``_SAMPLE_DENSE`` samples one in 64, each counted for the holds it stands for. Counts, totals
#: and maxima stay exact; only the percentiles come from the sample.
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

# Stands for "this thread has no held stack" in RLock's ownership test: never any lock's holder.
_NO_STACK: list[int] = []  # never appended to
# Threshold in seconds, refreshed by configure(); a module global so the slow path reads it in one step.
_held_long_s = _NEVER
# Guards the lazy creation of a lock's waiter queue (contended path only). Raw and re-entrant: a
# __del__ run by the garbage collector may take another lock meanwhile.
_setup_lock = _thread.RLock()
#: A waiter queued this long (seconds) gets the lock handed over by the next release: see Lock._wake.
#: One GIL switch interval (Go's mutex uses 1 ms; under the GIL a shorter wait is not yet starvation).
_HANDOFF_AFTER = 0.005
#: A waiter asleep this long (seconds) without a wake-up looks at the token itself (see Lock._take).
_RECHECK = 0.05
# Locks being activated right now (id -> claiming thread): see Lock._activate.
_activating: dict[int, int] = {}


def _refresh_thresholds() -> None:
    global _held_long_s
    threshold = _CONFIG.held_long_threshold
    _held_long_s = _NEVER if threshold is None else float(threshold)
    for primitive in _stats.live():
        if isinstance(primitive, Lock):
            primitive._cap = _WAITED  # the next release re-derives it from the new threshold


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
        """The name, or the creation site ``depth`` frames up; key and registry come with first use."""
        if name is None:
            frame = _getframe(depth + 1)
            self._module = frame.f_globals.get("__name__", "?")
            self._line = frame.f_lineno
            self._tname = None
        else:
            self._set_name(name)

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
    """A traced ``threading.Lock``: same behaviour, plus contention, hold-time and lock-order records.

    Instances start *fresh* (see the module docstring); their first acquire activates them. Fresh-only
    code is the few methods below that call :meth:`_activate`; everything else serves both states.
    """

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
        "_module",
        "_n",
        "_name_stats",
        "_rare",
        "_reentries",
        "_t0",
        "_tname",
        "_tok",
        "_w",
        "_waiters",
    )
    _kind = "lock"
    _active: type[Lock]  # the hot-path class a fresh instance switches to (set below)
    name = _Traced.trace_name

    def __init__(self, *, name: str | None = None) -> None:
        # Creation is on the hot path of programs that make a lock per object: no helper calls here.
        self._tok = [True]
        self._holder: _threads.Stack | None = None
        self._waiters: deque[Any] | None = None
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

    # -- first use ------------------------------------------------------------------------------------

    def _activate(self) -> None:
        """First acquire: key, counters, registry entry, then the hot-path class (once, race-free).

        No lock: many threads activate many locks at once (each Future's), and a global lock held by a
        thread that loses the GIL mid-activation would stall them all. ``dict.setdefault`` is atomic,
        so exactly one thread claims a given lock; a thread that finds it claimed yields until it is
        active.
        """
        active = self._active
        while self.__class__ is not active:
            ident = id(self)
            me = _get_ident()
            if _activating.setdefault(ident, me) != me:
                _sleep(0)  # another thread is activating it: a few microseconds
                continue
            try:
                if self.__class__ is not active:
                    self._init_counters()
                    self.__class__ = active
            finally:
                _activating.pop(ident, None)  # also when _init_counters failed: another thread retries

    def _init_counters(self, register: bool = True) -> None:
        """Zero the counters and take the name's shared statistics; with ``register`` (the first
        acquire) also the start values, a key and a registry entry. One flat body: every Future's lock
        runs it once."""
        module = self._module
        kind = self._kind
        ident = (self._tname, None, 0, kind) if module is None else (None, module, self._line, kind)
        shared = _name_stats.get(ident)
        if shared is None:
            shared = _stats.name_stats(*ident)
        self._name_stats = shared
        self._hold_total = 0.0
        self._rare: _stats.Counters | None = None
        self._reentries = 0
        self._ctxn = 0
        self._n = 0
        high = shared.hold_max  # a hold below its name's maximum needs no detour
        # A reset may find threads waiting: _WAITED then keeps their wake-ups (the next release derives
        # the cap). The first acquire finds none.
        self._cap = (high if high < _held_long_s else _held_long_s) if register else _WAITED
        samples = shared.samples
        # Once the name has enough samples a new instance starts sampling at once: a Future's lock,
        # taken three times in its life, then usually costs no sample at all.
        self._w = self._left = 1 if samples < _SAMPLE_ALL else _interval(samples, id(self) >> 4)
        if register:
            self._ctx: list[int] | None = None
            self._t0 = 0.0
            self._key = key = next(_serial)
            _live[key] = _ref(self)

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        """Acquire the lock, like ``threading.Lock.acquire``; returns True when it was acquired."""
        self._activate()
        return self.acquire(blocking, timeout)  # the active class's method from now on

    def __enter__(self) -> bool:
        self._activate()
        return self.__enter__()

    # A ``with`` statement looks up ``__exit__`` before it calls ``__enter__``, and Condition keeps the
    # bound ``acquire``/``release`` of its lock: these fresh methods may run on an active lock.

    def release(self) -> None:
        """Release the lock (from any thread, as Lock allows); ``RuntimeError`` if it is not locked."""
        if self._is_active():
            self.release()
        else:
            self._release_unregistered()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.release()

    def _is_active(self) -> bool:
        return self.__class__ is self._active

    def _acquire_restore(self, state: Any) -> None:
        self._activate()
        self._acquire_restore(state)

    # -- the slow paths -------------------------------------------------------------------------------

    def _release_unregistered(self) -> None:
        """Release when no holder is registered: unlocked (the stdlib's error) or taken mid-acquire."""
        if self._tok:
            msg = "release unlocked lock"
            raise RuntimeError(msg)
        self._give_back()

    def _give_back(self) -> None:
        """Return the token without bookkeeping and wake a waiter (also used to undo a take)."""
        self._tok.append(True)
        if self._waiters:
            self._wake()

    def _wake(self) -> None:
        """Wake the oldest waiter still waiting. One that was already woken and beaten to the token,
        and has waited longer than ``_HANDOFF_AFTER``, gets the lock handed over (the token does not go
        back to the list): a woken waiter needs the GIL to take a free token, which the releasing thread
        already holds, so without this a thread that keeps re-taking the lock could starve the others for
        as long as it runs (Go's sync.Mutex hands over too). Handing over only to a waiter that lost a
        race keeps hand-offs, and the convoys they cause under the GIL, to the starving case.

        A waiter is woken only after this thread wins its ``claim`` (a waiter leaving on a timeout or an
        exception races for the same token): one that left is skipped, and the next one is woken.
        """
        waiters = self._waiters
        while True:
            try:
                waiter = waiters.popleft()  # type: ignore[union-attr]
            except IndexError:  # nobody (left) to wake
                return
            try:
                waiter.claim.pop()
            except IndexError:  # it is leaving: wake the next one instead
                continue
            handed = False
            try:
                if waiter.lost and _monotonic() - waiter.since > _HANDOFF_AFTER:
                    try:
                        self._tok.pop()  # ours again, to hand over
                        handed = True
                        # The waiter owns it from now on, before it even wakes: threads that come to
                        # wait meanwhile see (and report) who has the lock.
                        self._holder = waiter.held
                    except IndexError:  # already re-taken: the waiter queues again, at the front
                        pass
            finally:
                waiter.handed = handed
                waiter.decided = True
                waiter.gate.release()
            return

    def _take(self, timeout: float, held: _threads.Stack | None = None) -> bool:
        """Wait for the token, up to ``timeout`` seconds (-1: for ever); True once this thread (whose
        held stack is ``held``) has it."""
        tok = self._tok
        try:
            tok.pop()
            return True
        except IndexError:
            pass
        if timeout == 0:
            return False
        waiters = self._waiters
        if waiters is None:
            with _setup_lock:
                waiters = self._waiters
                if waiters is None:
                    waiters = self._waiters = deque()
        deadline = None if timeout < 0 else _monotonic() + timeout
        me = _Waiter(held)
        enqueue = waiters.append
        try:
            while True:
                with _setup_lock:  # queued before the last look at the token: no lost wake-up
                    self._cap = _WAITED  # from now on every release looks at the queue (_past_cap)
                    enqueue(me)
                enqueue = waiters.appendleft  # woken and beaten to the token: first in line from now on
                try:
                    tok.pop()
                except IndexError:
                    pass
                else:
                    me.leave_holding_token(waiters)
                    return True
                # Sleep until woken, in slices of at most _RECHECK: an exception (a signal handler's)
                # raised into a release between its return of the token and its wake-up would
                # otherwise leave this thread asleep for ever. A slice that ends with the token free
                # and nobody woken takes it.
                while True:
                    remaining = _RECHECK if deadline is None else min(deadline - _monotonic(), _RECHECK)
                    if remaining > 0 and me.gate.acquire(True, remaining):
                        break  # woken, or handed the lock
                    try:
                        tok.pop()
                    except IndexError:
                        if deadline is None or _monotonic() < deadline:
                            continue
                        if me.withdraw(waiters):
                            return False
                        me.wait_decided()  # a releaser claimed us as we timed out
                        if me.handed:
                            return True
                        try:
                            tok.pop()
                        except IndexError:
                            return False
                        return True
                    me.leave_holding_token(waiters)
                    return True
                if me.handed:
                    return True
                if deadline is not None and _monotonic() >= deadline:
                    try:
                        tok.pop()
                    except IndexError:
                        return False
                    return True
                me.rearm()
        except BaseException:
            # Interrupted (KeyboardInterrupt from a signal handler, ...): leave the queue, and pass on
            # what a releaser already gave us: the lock itself, or a wake-up.
            if not me.withdraw(waiters):
                me.wait_decided()
                if me.handed:
                    self._holder = None
                    self._give_back()
                elif tok:
                    self._wake()
            raise

    def _acquire_slow(self, blocking: Any, timeout: Any) -> bool:
        if blocking is not True or timeout != -1:
            _validate(blocking, timeout)
        held = _current()
        if not blocking:
            try:
                self._tok.pop()
            except IndexError:
                _note_failure(self)
                return False
            self._took(held)  # a trylock cannot deadlock: no edges into it
            return True
        timed = timeout != -1
        try:
            self._tok.pop()
        except IndexError:
            return self._wait(held, timeout, 1)
        if held:
            _lockorder.observe(self, held, timed)
        self._took(held)
        return True

    def _took(self, held: _threads.Stack) -> None:
        self._holder = held
        held.append(self._key)
        self._t0 = _clock()

    def _wait(self, held: _threads.Stack, timeout: float, count: int) -> bool:
        """Block for the token: order check first, then deadlock check, then timed waiting."""
        holder = self._holder
        if holder is not None and holder is not held and _ident_of(holder) == _get_ident():
            # This thread holds the lock on its real stack and is now inside tracedthreading's own
            # logging (a temporary stack): blocking would deadlock on our account. Abort the event.
            raise _events.ReentrantLogging
        if held:
            _lockorder.observe(self, held, timeout != -1, holding=False)
        holder = self._holder
        # Named now: the holder may have finished (and left threading's registry) by the time we get it.
        holder_id = _ident_of(holder)
        holder_name = None if holder_id is None else _threads.thread_name(holder_id)
        got, waited = _deadlock.blocking_acquire(self, held, holder, timeout)
        if got:
            self._took(held)
            self._after_acquired(count)
        _note_contention(self, holder_id, holder_name, waited, got)
        return got

    def _after_acquired(self, count: int) -> None:
        """Hook for RLock: restore the recursion count once the token is ours."""

    def _sample(self, hold: float) -> None:
        """Count one hold into its name's histogram, weighted by the releases it stands for, and
        draw the next sampling interval."""
        ns = int(hold * 1e9)
        weight = self._w
        n = self._n + weight
        self._n = n
        shared = self._name_stats
        try:
            shared.hist[ns.bit_length()] += weight
        except IndexError:  # a hold longer than the histogram covers so far
            _stats.count_into(shared.hist, ns, weight)
        shared.samples += 1  # may lose a count to a race with another instance: it only steers the rate
        self._w = self._left = _interval(shared.samples, ns + n)
        try:
            _renew_if_shrunk(_tls.held)  # released this thread's last lock after nesting? (rare, cheap)
        except AttributeError:
            pass

    def _past_cap(self, hold: float) -> None:
        """A release whose hold passed ``_cap`` (the token is back): threads wait, or the hold is a new
        maximum of its name, or it passed ``held_long_threshold`` (reported).

        While threads wait, ``_cap`` is ``_WAITED``, below any hold, so this one comparison also stands
        for the release's look at the waiter queue. A thread queues itself and lowers ``_cap`` under
        ``_setup_lock`` (see ``_take``), and the cap is raised again under it only once the queue is
        empty: a release that read the raised cap returned the token before the waiter's last look.
        """
        if self._waiters:
            self._wake()
        shared = self._name_stats
        if hold > shared.hold_max:
            with _stats.lock:
                shared.hold_max = max(shared.hold_max, hold)
        with _setup_lock:
            high = shared.hold_max
            self._cap = _WAITED if self._waiters else high if high < _held_long_s else _held_long_s
        if hold > _held_long_s:  # reported once released: never log while holding the user's lock
            _report_held_long(self, hold)

    # -- the protocol threading.Condition uses, and fork support -------------------------------------

    def locked(self) -> bool:
        """True if the lock is held by any thread."""
        return not self._tok

    def _is_owned(self) -> bool:
        # Lock has no owner: like threading.Condition's fallback, "locked" is the best answer.
        return not self._tok

    def _release_save(self) -> None:
        self.release()

    def _at_fork_reinit(self) -> None:
        holder = self._holder
        if holder is not None:  # reset to unlocked: nobody holds it any more
            _unhold(holder, self._key)
        self._holder = None
        self._waiters = None  # the threads that waited do not exist in the child
        self._tok = [True]

    # -- statistics -----------------------------------------------------------------------------------

    def _completed(self) -> int:
        """Holds that ended: the sampled ones' weights plus the releases since the last sample."""
        return self._n + self._w - self._left

    def _counters(self) -> _stats.Counters:
        counters = _stats.Counters(self.name, self._kind)
        rare = self._rare
        if rare is not None:
            counters.add(rare)
        counters.acquisitions += self._completed() + (self._holder is not None)
        counters.hold_total = int(self._hold_total * 1e9)  # maximum and histogram: per name, see _stats
        counters.reentries += self._reentry_count()
        return counters

    def _reentry_count(self) -> int:
        return self._reentries

    def _reset_counters(self) -> None:
        self._init_counters(register=False)

    def _retire(self) -> None:
        """``__del__`` of an active lock: queue its counters for folding, drop its order-graph node."""
        try:
            holder = self._holder
            key = self._key
            if holder is not None:  # dropped while held (legal): it is not held by anyone any more
                _unhold(holder, key)
            _retire_lock((
                key, self._tname, self._module, self._line, self._kind, holder is not None,
                self._n + self._w - self._left, self._hold_total, self._rare, self._reentries,
            ))
            if key in _order_nodes:
                _lockorder.retire(key)
        except Exception:  # noqa: BLE001 - interpreter shutdown, half-built object
            pass

    def __repr__(self) -> str:
        state = "unlocked" if self._tok else "locked"
        return f"<{state} {type(self).__module__}.{type(self).__qualname__} object name={self.name!r} at {id(self):#x}>"


class _ActiveLock(Lock):
    """A :class:`Lock` after its first acquire: the hot path."""

    __slots__ = ()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        """Acquire the lock, like ``threading.Lock.acquire``; returns True when it was acquired."""
        if blocking is True and timeout == -1:
            try:
                self._tok.pop()
            except IndexError:
                return self._acquire_slow(True, -1)
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
        try:
            self._tok.pop()
        except IndexError:
            return self._acquire_slow(True, -1)
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

    def release(self) -> None:
        """Release the lock (from any thread, as Lock allows); ``RuntimeError`` if it is not locked."""
        hold = _clock() - self._t0
        try:
            top = self._holder.pop()
        except AttributeError:  # no holder registered: unlocked, or taken and not yet registered
            self._release_unregistered()
            return
        except IndexError:  # released by another thread, which already emptied the stack
            top = self._key
        if top != self._key:
            _unhold_after_pop(self._holder, self._key, top)
        self._holder = None
        self._hold_total += hold
        left = self._left - 1
        if left:
            self._left = left
        else:
            self._sample(hold)
        self._tok.append(True)
        if hold > self._cap:  # also when threads wait: see _past_cap
            self._past_cap(hold)

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        hold = _clock() - self._t0
        try:
            top = self._holder.pop()
        except AttributeError:  # no holder registered: unlocked, or taken and not yet registered
            self._release_unregistered()
            return
        except IndexError:  # released by another thread, which already emptied the stack
            top = self._key
        if top != self._key:
            _unhold_after_pop(self._holder, self._key, top)
        self._holder = None
        self._hold_total += hold
        left = self._left - 1
        if left:
            self._left = left
        else:
            self._sample(hold)
        self._tok.append(True)
        if hold > self._cap:  # also when threads wait: see _past_cap
            self._past_cap(hold)

    def _acquire_restore(self, state: Any) -> None:
        # Condition.wait must return holding its lock, so on_inversion="raise" only reports here.
        try:
            self.acquire()
        except _lockorder.LockOrderError:
            self.acquire()

    __del__ = Lock._retire


class RLock(Lock):
    """A traced ``threading.RLock``: re-entries are counted apart and never become order edges."""

    # ``_extra``: levels held beyond the first (0 whenever the lock is free), so the common single-level
    # acquire and release never touch it.
    __slots__ = ("_extra",)
    _kind = "rlock"

    def __init__(self, *, name: str | None = None) -> None:
        self._tok = [True]
        self._holder = None
        self._waiters = None
        self._extra = 0
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

    @classmethod
    def _with_identity(cls, tname: str | None, module: str | None, line: int) -> RLock:
        """A fresh RLock with a given identity, built without ``__init__``: a Condition's default
        lock shares its condition's name (every Future makes one of these)."""
        lock = _new_object(cls)
        lock._tok = [True]
        lock._holder = None
        lock._waiters = None
        lock._extra = 0
        lock._tname = tname
        lock._module = module
        lock._line = line
        return lock

    def release(self) -> None:
        """Leave one level; the final level releases. ``RuntimeError`` if this thread does not own it."""
        if self._is_active():
            self.release()
        else:
            self._owner_stack()  # a fresh RLock is owned by nobody: raises the stdlib's error

    def _took(self, held: _threads.Stack) -> None:
        self._holder = held
        self._extra = 0
        held.append(self._key)
        self._t0 = _clock()

    def _after_acquired(self, count: int) -> None:
        self._extra = count - 1

    def locked(self) -> bool:
        """True if some thread holds the lock (Python 3.14 added this to RLock; offered everywhere)."""
        return not self._tok

    def _is_owned(self) -> bool:
        return _mine(self._holder)

    def _unhold_mismatch(self, held: _threads.Stack, top: int | None) -> _threads.Stack:
        """This lock was not on top of this thread's stack: it is held deeper (released out of
        order), or under a stack suspended while tracedthreading logs, or not by this thread (the
        stdlib's RuntimeError). Puts ``top`` back; returns the owner's stack, this lock's key removed."""
        if top is not None:
            held.append(top)
        owner = self._owner_stack()
        _unhold(owner, self._key)
        return owner

    def _owner_stack(self) -> _threads.Stack:
        """The held stack this thread owns the lock under, or the stdlib's RuntimeError.

        Usually the thread's current stack; while tracedthreading logs, the thread runs on a temporary
        stack (see ``_events.emit``), and the lock still belongs to it: ownership is by thread.
        """
        holder = self._holder
        if not _mine(holder):
            msg = "cannot release un-acquired lock"
            raise RuntimeError(msg)
        return holder

    def _acquire_slow(self, blocking: Any, timeout: Any) -> bool:
        if _mine(self._holder):
            # Owned under a suspended held stack (we are inside tracedthreading's logging): re-entry.
            if blocking is not True or timeout != -1:
                _validate(blocking, timeout)
            self._extra += 1
            self._reentries += 1
            return True
        return super()._acquire_slow(blocking, timeout)

    def _recursion_count(self) -> int:
        return self._extra + 1 if self._is_owned() else 0

    def _release_save(self) -> tuple[int, int]:
        """Release every level at once (``Condition.wait``); returns what ``_acquire_restore`` needs."""
        if not self._is_owned():
            msg = "cannot release un-acquired lock"
            raise RuntimeError(msg)
        state = (self._extra + 1, _get_ident())
        self._extra = 0
        self.release()
        return state

    def _at_fork_reinit(self) -> None:
        super()._at_fork_reinit()
        self._extra = 0

    def __repr__(self) -> str:
        holder = self._holder
        state = "locked" if holder is not None else "unlocked"
        owner = _ident_of(holder) or 0
        count = self._extra + 1 if holder is not None else 0
        return (
            f"<{state} {type(self).__module__}.{type(self).__qualname__} object owner={owner} "
            f"count={count} name={self.name!r} at {id(self):#x}>"
        )


class _ActiveRLock(RLock):
    """An :class:`RLock` after its first acquire: the hot path."""

    __slots__ = ()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        """Acquire the lock, or re-enter it if this thread owns it; returns True when acquired."""
        try:
            held = _tls.held
        except AttributeError:
            held = _current()
        if self._holder is held:
            if blocking is not True or timeout != -1:
                _validate(blocking, timeout)
            self._extra += 1
            self._reentries += 1
            return True
        if blocking is True and timeout == -1:
            try:
                self._tok.pop()
            except IndexError:
                return self._acquire_slow(True, -1)
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
        try:
            held = _tls.held
        except AttributeError:
            held = _current()
        if self._holder is held:
            self._extra += 1
            self._reentries += 1
            return True
        try:
            self._tok.pop()
        except IndexError:
            return self._acquire_slow(True, -1)
        if held:
            if held != self._ctx:
                _lockorder.observe(self, held, False)
            else:
                self._ctxn += 1
        self._holder = held
        held.append(self._key)
        self._t0 = _clock()
        return True

    def release(self) -> None:
        """Leave one level; the final level releases. ``RuntimeError`` if this thread does not own it."""
        try:
            held = _tls.held
        except AttributeError:
            held = _NO_STACK
        if self._extra:
            if self._holder is not held:
                self._owner_stack()  # the stdlib's RuntimeError unless this thread owns it
            self._extra -= 1
            return
        # Only the owner's stack holds this lock's key, so finding it on top of this thread's stack
        # proves ownership: the common release needs no other test.
        try:
            top = held.pop()
        except IndexError:
            top = None
        if top != self._key:
            held = self._unhold_mismatch(held, top)
        hold = _clock() - self._t0
        self._holder = None
        self._hold_total += hold
        left = self._left - 1
        if left:
            self._left = left
        else:
            self._sample(hold)
        self._tok.append(True)
        if hold > self._cap:  # also when threads wait: see _past_cap
            self._past_cap(hold)

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            held = _tls.held
        except AttributeError:
            held = _NO_STACK
        if self._extra:
            if self._holder is not held:
                self._owner_stack()  # the stdlib's RuntimeError unless this thread owns it
            self._extra -= 1
            return
        # Only the owner's stack holds this lock's key, so finding it on top of this thread's stack
        # proves ownership: the common release needs no other test.
        try:
            top = held.pop()
        except IndexError:
            top = None
        if top != self._key:
            held = self._unhold_mismatch(held, top)
        hold = _clock() - self._t0
        self._holder = None
        self._hold_total += hold
        left = self._left - 1
        if left:
            self._left = left
        else:
            self._sample(hold)
        self._tok.append(True)
        if hold > self._cap:  # also when threads wait: see _past_cap
            self._past_cap(hold)

    def _acquire_restore(self, state: tuple[int, int]) -> None:
        # Condition.wait must return holding its lock, so on_inversion="raise" only reports here: the
        # cycle is reported (once) and the retry finds the edge known.
        count = state[0]
        held = _current()
        try:
            self._tok.pop()
        except IndexError:
            try:
                self._wait(held, -1, count)
            except _lockorder.LockOrderError:
                self._wait(held, -1, count)
            return
        if held:
            try:
                _lockorder.observe(self, held, False)
            except _lockorder.LockOrderError:
                self._take(-1)  # observe gave the token back before raising: take it again
        self._took(held)
        self._extra = count - 1

    __del__ = Lock._retire


Lock._active = _ActiveLock
RLock._active = _ActiveRLock
_config._listeners.append(_refresh_thresholds)
_refresh_thresholds()
# Same names as the public classes: repr() and error messages read as the stdlib's do.
for _cls in (_ActiveLock, _ActiveRLock):
    _cls.__name__ = _cls.__qualname__ = _cls.__mro__[1].__name__
del _cls


# -- helpers of the slow paths (module functions keep the classes' hot methods short) ---------------


class _Waiter:
    """A thread queued for a lock. It sleeps on ``gate``, a private raw lock it holds while queued.

    ``claim`` holds one token while the waiter may be woken: a releaser must pop it before waking the
    waiter, and a waiter that leaves (timeout, exception, or it took the lock itself) pops it to
    withdraw. Exactly one side wins, so a wake-up or a hand-over never goes to a thread that has left,
    and a waiter knows whether one is on its way. ``decided`` is set (with ``handed``) before the gate
    opens: it tells a waiter that was interrupted at any point what it was given.
    """

    __slots__ = ("claim", "decided", "gate", "handed", "held", "lost", "since")

    def __init__(self, held: _threads.Stack | None) -> None:
        self.held = held  # the waiting thread's held stack: it becomes the lock's holder on a hand-over
        self.gate = _allocate_lock()
        self.gate.acquire()
        self.claim = [True]
        self.decided = False
        self.handed = False  # set by the releaser that hands the lock over, before it opens the gate
        self.lost = False  # woken at least once, then re-queued: another thread took the token first
        self.since = _monotonic()

    def withdraw(self, waiters: deque[Any]) -> bool:
        """Leave the queue; False when a releaser already claimed this waiter (its decision is due)."""
        try:
            waiters.remove(self)
        except ValueError:
            pass
        try:
            self.claim.pop()
        except IndexError:
            return False
        return True

    def leave_holding_token(self, waiters: deque[Any]) -> None:
        """Leave the queue after taking the token ourselves. A releaser already waking us cannot hand
        the lock over (we hold the token): wait for its decision; the lock's next release wakes the next."""
        if not self.withdraw(waiters):
            self.wait_decided()

    def wait_decided(self) -> None:
        """Wait for the releaser that claimed this waiter to decide (a few bytecodes away)."""
        while not self.decided:
            _sleep(0)

    def rearm(self) -> None:
        """Woken and beaten to the token: get ready to be queued (and woken) again."""
        self.lost = True
        self.claim.append(True)  # before ``decided`` is reset: see withdraw
        self.decided = False


def _mine(holder: _threads.Stack | None) -> bool:
    """Whether ``holder`` (a lock's holder stack) belongs to the calling thread: its current stack, or
    one put aside while tracedthreading logs (ownership is by thread)."""
    if holder is None:
        return False
    try:
        if holder is _tls.held:
            return True
    except AttributeError:
        pass
    return _ident_of(holder) == _get_ident()


def _unhold(held: _threads.Stack, key: int) -> None:
    """Remove ``key`` from a held stack when it is not on top (out-of-order or foreign release)."""
    try:
        # Search from the top: the most recent acquisition of this key is the one being released.
        for index in range(len(held) - 1, -1, -1):
            if held[index] == key:
                del held[index]
                return
    except IndexError:  # another thread shrank the list meanwhile; the key is gone with it
        pass


def _unhold_after_pop(held: _threads.Stack, key: int, top: int) -> None:
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
    lock: Any, holder_id: int | None, holder_name: str | None, waited: int, got: bool
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
                      holder_id=holder_id)
        _events.emit(_events.LOCK_CONTENDED, "warning", fields)


def _report_held_long(lock: Any, hold: float) -> None:
    fields = lock_fields(lock)
    fields.update(hold=hold, stack=_threads.caller_stack(_CONFIG.stack_depth, 3))
    _events.emit(_events.LOCK_HELD_LONG, "warning", fields)


def lock_fields(primitive: Any, ident: int | None = None) -> dict[str, Any]:
    """The fields every event carries: ``lock``, ``kind``, ``thread``, ``thread_id``."""
    fields: dict[str, Any] = {"lock": primitive.trace_name, "kind": primitive._kind}
    fields.update(_events.thread_fields(ident))
    return fields


def _after_fork_in_child() -> None:
    """Only the forking thread survives: forget activations in flight and every queued waiter (a
    release must not hand a lock to a thread that does not exist in the child)."""
    global _setup_lock
    _setup_lock = _thread.RLock()
    _activating.clear()
    for primitive in _stats.live():
        if isinstance(primitive, Lock):
            primitive._waiters = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
