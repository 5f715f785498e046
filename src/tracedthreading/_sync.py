"""Condition, Semaphore, BoundedSemaphore, Event, Barrier, Timer and Thread, measured.

Each subclasses its stdlib twin (so ``isinstance`` checks, private attributes and behaviour are the
stdlib's own) and wraps only the calls that wait, to time them. Their internal condition variables stay
raw stdlib objects: the waiting they do is measured here, once, not again as lock traffic. Counters are
updated under the stats lock: these calls already cost microseconds, so exactness is cheap here.
"""

from __future__ import annotations

import _thread
import itertools
import threading as _std
import weakref
from time import perf_counter_ns as _clock
from typing import Any, Callable, Iterable, Mapping

from tracedthreading import _config, _events, _lockorder, _primitives, _stats, _threads, _trace
from tracedthreading._lockcore import lock_fields
from tracedthreading._primitives import _Traced

__all__ = ["Barrier", "BoundedSemaphore", "Condition", "Event", "Semaphore", "Thread", "Timer"]

_CONFIG = _config.CONFIG
_rlock_with_identity = _primitives.rlock_with_identity
_RLock = _primitives.RLock
_stats_lock = _stats.lock
_get_ident = _thread.get_ident
_std_condition_init = _std.Condition.__init__
_std_semaphore_acquire = _std.Semaphore.acquire
_deque = _std._deque  # the deque threading's Condition keeps its waiters in
_serial_lock = _thread.RLock()
_blocking_sites: set[tuple[str, str]] = set()
_nested = _thread._local()  # wait_for -> wait: report the timeout once, from wait_for


class _Entry(weakref.ref):  # type: ignore[type-arg]
    """The registry entry of a sync primitive that has recorded something: a weak reference that,
    when the primitive dies, hands its counters to the folding queue. Primitives that never record
    (most Futures' Conditions) have no entry and no finalizer at all."""

    __slots__ = ("counters", "key", "tickers")

    def __new__(cls, primitive: Any, counters: _stats.Counters, key: int, tickers: Any = None) -> _Entry:
        return super().__new__(cls, primitive, _retire_entry)

    def __init__(self, primitive: Any, counters: _stats.Counters, key: int, tickers: Any = None) -> None:
        super().__init__(primitive, _retire_entry)
        self.counters = counters
        self.key = key
        self.tickers = tickers  # a Semaphore's (takes, misses) counts, added to its counters as it dies


def _retire_entry(entry: _Entry) -> None:
    if entry.tickers is not None:
        takes, misses = entry.tickers
        entry.counters.acquisitions += _ticks(takes)
        entry.counters.failures += _ticks(misses)
    _stats.retire(entry.counters, entry.key)  # never blocks, never raises: safe wherever it died


def _ticks(count: itertools.count[int]) -> int:
    """How many times an ``itertools.count()`` ticked, read without ticking it (from its repr,
    ``count(N)``): a count is an exact counter that needs no lock, as each tick is one C call."""
    return int(repr(count)[6:-1])


class _Measured(_Traced):
    """Identity plus a per-instance :class:`~tracedthreading._stats.Counters`, made on first use.

    Like a Lock, a primitive joins the registry only once it records something: a Future's Condition
    that nobody waits on costs no registry entry and nothing when it dies.
    """

    # Slots, not instance-dict entries: the stdlib classes keep their dicts at the size they expect.
    __slots__ = ("_c", "_key", "_line", "_module", "_tname")
    name = _Traced.trace_name

    def _init_traced(self, name: str | None, depth: int) -> None:
        self._init_identity(name, depth + 1)
        self._c: _stats.Counters | None = None  # and no _key yet: both come with the first record

    def _counts(self) -> _stats.Counters:
        """This primitive's counters, created (and registered) on first use; call with ``_stats.lock`` held."""
        c = self._c
        if c is None:
            self._key = key = _stats.next_key()
            c = self._c = _stats.Counters(self.trace_name, self._kind)
            _stats._live[key] = _Entry(self, c, key, self._tickers())
        return c

    def _tickers(self) -> Any:
        """Counts kept outside the counters, that its registry entry adds as it dies (a Semaphore's)."""
        return None

    def _tt_counters(self) -> _stats.Counters:
        counters = _stats.Counters(self.trace_name, self._kind)
        with _stats.lock:
            if self._c is not None:
                counters.add(self._c)
        return counters

    def _tt_owner(self) -> int | None:
        return None  # not an ownership lock: never part of a wait-for chain

    def _tt_reset(self) -> None:
        with _stats.lock:
            c = self._c
            if c is not None:  # zeroed in place (its registry entry folds it when this dies)
                c.__init__(c.name, c.kind)

    def _record(self, waited: int, *, ok: bool = True, blocked: bool = True, broken: bool = False) -> None:
        with _stats.lock:
            c = self._counts()
            if ok:
                c.acquisitions += 1
            else:
                c.timeouts += 1
            if broken:
                c.broken += 1
            if blocked:
                c.contentions += 1
                c.wait_total += waited
                if waited > c.wait_max:
                    c.wait_max = waited
                c.wait_hist = _stats.record(c.wait_hist, waited)

    def _trace_wait(self, start: int, end: int, timed_out: bool) -> None:
        """Put one wait on the timeline, while a trace is recorded."""
        if _trace.active:
            _trace.record(_trace.WAIT, self.trace_name, self._kind, _get_ident(), start, end, timed_out)

    def _emit(self, event: str, level: str, **extra: Any) -> None:
        fields = lock_fields(self)
        fields.update(extra)
        _events.emit(event, level, fields)

    def _repr_at(self) -> str:
        return f"<{type(self).__module__}.{type(self).__qualname__} at {id(self):#x} name={self.trace_name!r}"


def check_held_while_blocking(call: str, exempt: int | None = None) -> None:
    """Report (once per call site) a thread about to block in ``call`` while holding traced locks."""
    held = getattr(_threads.tls, "held", None)
    if not held:
        return
    keys = [key for key in _threads.holding(held) if key != exempt]
    if not keys:
        return
    stack = _threads.caller_stack(_CONFIG.stack_depth, 3)
    site = (call, stack[-1] if stack else "?")
    with _serial_lock:
        if site in _blocking_sites:
            return
        _blocking_sites.add(site)
    names = []
    for key in keys:
        lock = _stats.primitive(key)
        names.append(lock.trace_name if lock is not None else f"<dead lock {key}>")
    fields: dict[str, Any] = {"lock": names[-1], "kind": "lock", **_events.thread_fields()}
    fields.update(call=call, held=names, stack=stack)
    _events.emit(_events.LOCK_HELD_WHILE_BLOCKING, "warning", fields)


def reset_blocking_sites() -> None:
    """Forget which held-while-blocking sites were reported."""
    with _serial_lock:
        _blocking_sites.clear()


class Condition(_Measured, _std.Condition):
    """A traced ``threading.Condition``: time spent in ``wait``/``wait_for``, timeouts, notifications.

    Without a ``lock`` argument it makes a traced :class:`RLock` of the same name, so the re-acquire
    after each wait shows up as contention on that lock.
    """

    _kind = "condition"

    def __init__(self, lock: Any = None, *, name: str | None = None) -> None:
        # Flat: every Future makes one of these (usually named by the patch, from its creation site).
        if name.__class__ is str:
            self._tname = name
            self._module = None
            self._line = 0
        else:
            self._init_identity(name, 1)  # the creation site, or the TypeError for a bad name
        self._c = None  # and no _key yet: both come with the first record
        if lock is not None:
            _std_condition_init(self, lock)
            return
        # The stdlib's __init__ (3.10-3.13) inlined for our own RLock, which has every method it looks for
        # (tests/test_api.py compares the attributes with the stdlib's): a Python call less per Future.
        if self._module is None:  # named (by the patch, from the creation site): the lock gets the name
            lock = self._lock = _RLock(name=self._tname)
        else:
            lock = self._lock = _rlock_with_identity(self._tname, self._module, self._line)  # the condition's
        self.acquire = lock.acquire
        self.release = lock.release
        self._release_save = lock._release_save
        self._acquire_restore = lock._acquire_restore
        self._is_owned = lock._is_owned
        self._waiters = _deque()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until notified or ``timeout`` elapses; returns False on timeout (as the stdlib)."""
        check_held_while_blocking("Condition.wait", getattr(self._lock, "_key", None))
        start = _clock()
        notified = super().wait(timeout)
        end = _clock()
        waited = end - start
        self._record(waited, ok=notified)
        if _trace.active:
            # The slice runs from the release of the lock to its re-acquire, inside this call: the
            # thread's slices then nest (hold | wait | hold) on the timeline.
            released = _trace.last_hold_end(_get_ident())
            acquired = int(getattr(self._lock, "_t0", 0) * 1e9)  # type: ignore[attr-defined]
            if start <= released <= acquired <= end:
                start, end = released, acquired
            self._trace_wait(start, end, not notified)
        if not notified and not getattr(_nested, "active", False):
            self._emit(_events.CONDITION_TIMEOUT, "info", wait=waited / 1e9, timeout=timeout)
        return notified

    def wait_for(self, predicate: Callable[[], Any], timeout: float | None = None) -> Any:
        """Wait until ``predicate()`` is true or ``timeout`` elapses; returns the last predicate value."""
        start = _clock()
        outer = getattr(_nested, "active", False)
        _nested.active = True
        try:
            result = super().wait_for(predicate, timeout)
        finally:
            _nested.active = outer
        if not result and not outer:
            self._emit(_events.CONDITION_TIMEOUT, "info", wait=(_clock() - start) / 1e9, timeout=timeout)
        return result

    def __repr__(self) -> str:
        return f"<Condition({self._lock!r}, {len(self._waiters)}) name={self.trace_name!r}>"  # type: ignore[attr-defined]


class Semaphore(_Measured, _std.Semaphore):
    """A traced ``threading.Semaphore``: acquisitions, waits and timeouts."""

    _kind = "semaphore"
    _std_release = _std.Semaphore.release  # the stdlib twin's (BoundedSemaphore's checks the bound)
    # Tries that got a permit, and tries that found none, are counted by itertools counts (``_take()``
    # and ``_miss()`` tick them: exact without the stats lock, whose ``with`` would cost more than the
    # stdlib's own acquire; every ThreadPoolExecutor.submit tries its idle semaphore). The counters
    # show them added (see _tt_counters and _retire_entry).
    __slots__ = ("_miss", "_misses", "_take", "_takes")

    def __init__(self, value: int = 1, *, name: str | None = None) -> None:
        super().__init__(value)
        self._init_traced(name, 1)
        self._takes = takes = itertools.count()
        self._take = takes.__next__
        self._misses = misses = itertools.count()
        self._miss = misses.__next__

    def _tickers(self) -> tuple[itertools.count[int], itertools.count[int]]:
        return self._takes, self._misses

    def _tt_counters(self) -> _stats.Counters:
        counters = super()._tt_counters()
        counters.acquisitions += _ticks(self._takes)
        counters.failures += _ticks(self._misses)
        return counters

    def _tt_reset(self) -> None:
        with _stats.lock:  # re-entrant: the zeroing below and the base's are one step
            super()._tt_reset()
            c = self._c
            if c is not None:  # what the counts ticked so far is taken off
                c.acquisitions = -_ticks(self._takes)
                c.failures = -_ticks(self._misses)

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        """Decrement the counter, waiting (up to ``timeout``) while it is zero; like the stdlib."""
        if not blocking and timeout is not None:
            msg = "can't specify timeout for non-blocking acquire"
            raise ValueError(msg)
        if _std_semaphore_acquire(self, False):
            if self._c is None:  # its first record: registered (the count is ticked below)
                with _stats_lock:
                    self._counts()
            self._take()
            if _CONFIG.order_semaphores:
                self._order_push(observe=bool(blocking))  # a try cannot deadlock: no edge into it
            return True
        # A try (non-blocking, or timeout <= 0, which the stdlib answers without waiting) found no permit.
        if not blocking or (isinstance(timeout, (int, float)) and timeout <= 0):
            if self._c is None:
                with _stats_lock:
                    self._counts()
            self._miss()
            return False
        start = _clock()
        got = _std_semaphore_acquire(self, True, timeout)
        end = _clock()
        waited = end - start
        self._record(waited, ok=got)
        self._trace_wait(start, end, not got)
        if got and _CONFIG.order_semaphores:
            self._order_push()
        threshold = _CONFIG.contended_threshold
        if threshold is not None and waited >= threshold * 1e9:
            self._emit(_events.SEMAPHORE_CONTENDED, "warning", wait=waited / 1e9, timed_out=not got)
        return got

    __enter__ = acquire

    def release(self, n: int = 1) -> None:
        """Increment the counter by ``n`` and wake waiters (``ValueError`` for n < 1, as the stdlib)."""
        self._std_release(n)
        if _CONFIG.order_semaphores:
            self._order_pop(n)

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.release()

    def _order_push(self, observe: bool = True) -> None:
        """Semaphores join the lock-order graph only when ``order_semaphores`` is on (callers check).
        Without ``observe`` (a non-blocking try) it only goes on the held stack, as a Lock's try does."""
        held = _threads.current()
        if held and observe:
            inversion = _lockorder.observe(self._key, held, False)
            if inversion is not None:
                _std.Semaphore.release(self)  # raise mode: leave the semaphore as it was
                raise _lockorder.LockOrderError(inversion)
        held.append(self._key)

    def _order_pop(self, n: int) -> None:
        if self._c is None:  # never acquired through here, so never pushed on any held stack
            return
        held = getattr(_threads.tls, "held", None)
        for _ in range(n):
            if held is not None and self._key in held:
                _remove_last(held, self._key)
                continue
            for record in _threads.all_held().values():
                if self._key in record.stack:
                    _remove_last(record.stack, self._key)
                    break

    def __repr__(self) -> str:
        return f"{self._repr_at()}: value={self._value}>"  # type: ignore[attr-defined]



def _remove_last(held: list[int], key: int) -> None:
    for index in range(len(held) - 1, -1, -1):
        if held[index] == key:
            del held[index]
            return


class BoundedSemaphore(Semaphore, _std.BoundedSemaphore):
    """A traced ``threading.BoundedSemaphore``: ``ValueError`` when released too many times."""

    _kind = "boundedsemaphore"
    _std_release = _std.BoundedSemaphore.release

    def __repr__(self) -> str:
        return f"{self._repr_at()}: value={self._value}/{self._initial_value}>"  # type: ignore[attr-defined]


class Event(_Measured, _std.Event):
    """A traced ``threading.Event``: how long ``wait`` blocked, and the waits that timed out."""

    _kind = "event"

    def __init__(self, *, name: str | None = None) -> None:
        super().__init__()
        self._init_traced(name, 1)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the flag is set or ``timeout`` elapses; returns the flag (as the stdlib)."""
        if self._flag:  # type: ignore[attr-defined]
            self._record(0, blocked=False)
            return True
        check_held_while_blocking("Event.wait")
        start = _clock()
        flag = super().wait(timeout)
        end = _clock()
        waited = end - start
        self._record(waited, ok=flag)
        self._trace_wait(start, end, not flag)
        if not flag:
            self._emit(_events.EVENT_TIMEOUT, "info", wait=waited / 1e9, timeout=timeout)
        return flag

    def __repr__(self) -> str:
        return f"{self._repr_at()}: {'set' if self._flag else 'unset'}>"  # type: ignore[attr-defined]


class Barrier(_Measured, _std.Barrier):
    """A traced ``threading.Barrier``: wait per thread (the arrival spread) and broken barriers."""

    _kind = "barrier"

    def __init__(
        self, parties: int, action: Callable[[], Any] | None = None, timeout: float | None = None,
        *, name: str | None = None,
    ) -> None:
        super().__init__(parties, action, timeout)
        self._init_traced(name, 1)

    def wait(self, timeout: float | None = None) -> int:
        """Wait for all parties; returns this thread's arrival index, or raises BrokenBarrierError."""
        check_held_while_blocking("Barrier.wait")
        start = _clock()
        try:
            index = super().wait(timeout)
        except _std.BrokenBarrierError:
            end = _clock()
            waited = end - start
            self._record(waited, ok=False, broken=True)
            self._trace_wait(start, end, True)
            self._emit(_events.BARRIER_BROKEN, "warning", wait=waited / 1e9, parties=self.parties)
            raise
        end = _clock()
        self._record(end - start)
        self._trace_wait(start, end, False)
        return index

    def __repr__(self) -> str:
        if self.broken:
            return f"{self._repr_at()}: broken>"
        return f"{self._repr_at()}: waiters={self.n_waiting}/{self.parties}>"


class Thread(_std.Thread):
    """``threading.Thread``, whose ``join`` reports being called while holding traced locks."""

    def join(self, timeout: float | None = None) -> None:
        """Wait for the thread to end (as the stdlib)."""
        check_held_while_blocking("Thread.join")
        super().join(timeout)


def _interval_ns(interval: Any) -> int:
    """A Timer's interval in nanoseconds, for its schedule; 0 for one with no due time (``Timer(None, f)``
    waits until cancelled, as ``Event.wait(None)`` does) or an interval only ``Event.wait`` can judge."""
    try:
        return max(0, int(interval * 1e9))
    except (TypeError, ValueError, OverflowError):
        return 0


class Timer(_Measured, _std.Timer):
    """A traced ``threading.Timer``: scheduled versus actual start (lateness) and callback duration.

    ``name=`` names the statistics; the thread keeps the stdlib's automatic thread name.
    """

    _kind = "timer"

    def __init__(
        self, interval: float, function: Callable[..., Any], args: Iterable[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None, *, name: str | None = None,
    ) -> None:
        super().__init__(interval, function, args, kwargs)
        self._init_traced(name, 1)
        self._scheduled = 0

    def start(self) -> None:
        """Start the timer thread; the callback is due ``interval`` seconds from now."""
        self._scheduled = _clock() + _interval_ns(self.interval)
        with _stats.lock:
            self._counts()  # a started timer is listed even if cancelled (threads cost far more)
        super().start()

    def run(self) -> None:
        # Same behaviour as threading.Timer.run, with the callback timed against its schedule.
        called = _clock()
        self.finished.wait(self.interval)
        if self.finished.is_set():
            return
        began = _clock()
        if not self._scheduled:  # run() called directly, without start()
            self._scheduled = called + _interval_ns(self.interval)
        late = max(0, began - self._scheduled)
        try:
            self.function(*self.args, **self.kwargs)
        finally:
            took = _clock() - began
            with _stats.lock:
                c = self._counts()
                c.acquisitions += 1
                c.wait_total += late
                c.wait_max = max(c.wait_max, late)
                c.wait_hist = _stats.record(c.wait_hist, late)
                c.hold_total += took
                c.hold_max = max(c.hold_max, took)
                c.hold_hist = _stats.record(c.hold_hist, took)
            threshold = _CONFIG.contended_threshold
            if threshold is not None and late >= threshold * 1e9:
                self._emit(_events.TIMER_LATE, "warning", late=late / 1e9, interval=self.interval,
                           callback=took / 1e9)
        self.finished.set()  # not when the callback raised: the stdlib's Timer leaves it unset then

    name = _std.Thread.name  # the thread's name; the statistics use trace_name
