"""The slow paths every Lock and RLock shares, whichever hot path runs it (C or pure Python).

The hot paths (``_speedups.c`` and :mod:`tracedthreading._pylock`) take and release the real lock and
keep the counters; they call these functions only when something is rare: a lock's first use
(:func:`activate`), a held-lock context not seen before (:func:`new_context`), a wait (:func:`begin_wait`,
:func:`wait_long`, :func:`end_wait`), a hold past the lock's cap (:func:`past_cap`), a failed try
(:func:`note_failure`). They are called with the lock's state already consistent (taken and recorded,
or not taken at all), so an exception raised in here (a signal handler's, a LockOrderError) leaves
nothing half done: the caller undoes a take that raised and re-raises.

The trackers (:mod:`~tracedthreading._lockorder`, :mod:`~tracedthreading._deadlock`) only get keys and
values from here and answer with verdicts; this module is the one that reads and writes a lock's fields.
"""

from __future__ import annotations

import _thread
import weakref
from time import perf_counter_ns as _clock_ns
from typing import Any

from tracedthreading import _config, _deadlock, _events, _lockorder, _stats, _threads, _trace
from tracedthreading._cext import speedups as _speedups

__all__ = [
    "activate",
    "begin_wait",
    "end_wait",
    "lock_fields",
    "new_context",
    "note_failure",
    "past_cap",
    "refresh_caps",
    "wait_long",
]

_CONFIG = _config.CONFIG
_NEVER = float("inf")  # a "threshold" no hold reaches
_TRACING = -1.0  # a lock's cap while the timeline is recorded: below any hold, so every hold comes here
_ref = _stats.weakref.ref
_get_ident = _thread.get_ident
_held_long_s = _NEVER  # held_long_threshold in seconds, refreshed by refresh_caps()
_records = _threads._records
_thread_name = _threads.thread_name
_stats_lock = _stats.lock
LockOrderError = _lockorder.LockOrderError
#: Seconds the C hot path waits on its own before a wait goes through :func:`begin_wait` (the wait-for
#: graph, the waiting thread's record): most waits end sooner, and cost one call (:func:`short_wait`).
SHORT_WAIT = 0.001


#: Locks whose own contended/held_long/wait_long/self_wait events are not emitted (statistics and lock
#: order are kept): the traced ``logging._lock``, as emitting while holding it would take handler locks
#: (structlog routed to stdlib logging) against the order of threads logging through a handler.
quiet: weakref.WeakSet[Any] = weakref.WeakSet()


# -- names, first use and caps --------------------------------------------------------------------------


def checked_name(name: Any) -> str:
    """A primitive's ``name=`` as a str, or the ``TypeError`` naming what was given instead."""
    if not isinstance(name, str):
        msg = f"name must be a str, got {type(name).__name__}"
        raise TypeError(msg)
    return str(name)



def activate(lock: Any) -> None:
    """First take of ``lock`` (the caller holds it, recorded): its name's shared statistics, its cap
    and its registry entry. Locks never taken cost neither."""
    module = lock._module
    kind = lock._kind
    ident = (lock._tname, None, 0, kind) if module is None else (None, module, lock._line, kind)
    shared = _stats._name_stats.get(ident)
    if shared is None:
        shared = _stats.name_stats(*ident)
    cap = cap_for(shared)  # before anything is set: a failure (a signal's exception) leaves no half activation
    entry = _ref(lock)
    lock._ns = shared
    lock._cap = cap
    _stats._live[lock._key] = entry


def cap_for(shared: _stats.NameStats | None) -> float:
    """The hold (seconds) above which a release comes to :func:`past_cap`: a new maximum of the name,
    ``held_long_threshold``, or any hold while the timeline trace records."""
    if _trace.active:
        return _TRACING
    high = shared.hold_max if shared is not None else 0.0
    return high if high < _held_long_s else _held_long_s


def past_cap(lock: Any, hold: float, start: float, owner: Any) -> None:
    """A release (already done) whose hold passed the lock's cap: a new maximum of its name, a hold past
    ``held_long_threshold`` (reported), or a hold for the timeline. ``start``: when the hold began
    (``perf_counter`` seconds); ``owner``: the holder's thread id or held stack."""
    shared = lock._ns
    if shared is not None and hold > shared.hold_max:
        with _stats.lock:
            shared.hold_max = max(shared.hold_max, hold)
        _stats.names_changed()  # new locks of this name start from the new maximum
    lock._cap = cap_for(shared)
    if _trace.active:
        tid = owner if isinstance(owner, int) else _threads.ident_of(owner)
        # Rounded, not truncated: the hold must start on the very nanosecond the wait before it ended.
        begin = round(start * 1e9)
        _trace.record(_trace.HOLD, lock.trace_name, lock._kind, tid or _get_ident(), begin, begin + round(hold * 1e9))
    if hold > _held_long_s and lock not in quiet:  # reported once released: never log while holding the user's lock
        fields = lock_fields(lock)
        fields.update(hold=hold, stack=_threads.caller_stack(_CONFIG.stack_depth, 2))
        _events.emit(_events.LOCK_HELD_LONG, "warning", fields)


def refresh_caps() -> None:
    """Settings or tracing changed: every live lock derives its cap again."""
    global _held_long_s
    threshold = _CONFIG.held_long_threshold
    _held_long_s = _NEVER if threshold is None else float(threshold)
    if _speedups is not None:  # the caps the C path gives locks it activates from now on
        _speedups._set_caps(_held_long_s, _trace.active)
    for primitive in _stats.live():
        if hasattr(primitive, "_cap"):
            try:
                primitive._cap = cap_for(primitive._ns)
            except Exception:  # noqa: BLE001 - a lock being torn down
                continue


# -- lock-order contexts ------------------------------------------------------------------------------


def new_context(lock: Any, held: list[int], timed: bool, edges: bool = True) -> Any:
    """A take whose held-lock context is not the one the lock cached (or its first take): activate it if
    needed, record the order edges (unless ``edges`` is false: a trylock cannot deadlock) and cache the
    context (not for a timed take: timed edges are marked, so each is observed). ``held`` ends with the
    lock's own key. A take holding nothing else has no edge and leaves the cache as it is (a lock used
    both alone and under another one keeps the latter cached). Returns the inversion to refuse, if any."""
    if lock._ns is None:
        activate(lock)
    if len(held) < 2 or not edges:
        return None
    ctx = held[:-1]
    if timed:  # observed every time: the cached context and its counted takes stay as they are
        return _lockorder.observe(lock._key, ctx, True)
    refuse = _lockorder.observe(lock._key, ctx, False, lock._ctx, lock._ctxn)
    lock._ctx = ctx
    lock._ctxn = 0
    return refuse


def cached_takes() -> list[tuple[int, list[int], int]]:
    """(key, context, takes) of every live lock whose cached context counted takes (for _lockorder)."""
    out = []
    for primitive in _stats.live():
        ctx = getattr(primitive, "_ctx", None)
        if ctx:
            count = primitive._ctxn
            if count:
                out.append((primitive._key, ctx, count))
    return out


def invalidate_contexts(key: int | None) -> None:
    """Drop cached contexts: those holding ``key`` (forgotten), or all (``None``: the graph was reset)."""
    for primitive in _stats.live():
        ctx = getattr(primitive, "_ctx", None)
        if ctx is None:
            continue
        if key is None or primitive._key == key:  # everything, or the forgotten lock's own edges: gone
            primitive._ctx = None
            primitive._ctxn = 0
        elif key in ctx:
            # An impossible key appended: the context no longer matches (the next take observes and
            # re-creates the forgotten edge), and the takes it counted still flush into its other edges.
            primitive._ctx = [*ctx, _threads.BARRIER]


# -- waits --------------------------------------------------------------------------------------------


class Wait:
    """One blocked acquire, from :func:`begin_wait` to :func:`end_wait` (opaque to the hot paths)."""

    __slots__ = ("deadline", "holder_id", "holder_name", "record", "start")

    def __init__(self, record: _threads.Held | None, holder_id: int | None, timeout: float) -> None:
        self.record = record
        self.holder_id = holder_id
        # Named now: the holder may have finished (and left threading's registry) by the time we get it.
        self.holder_name = None if holder_id is None else _thread_name(holder_id)
        self.start = start = _clock_ns()
        self.deadline = None if timeout < 0 else start + int(timeout * 1e9)


def begin_wait(
    lock: Any, held: list[int], timeout: float, holder_id: int | None, mine: bool, refuse: bool = True,
    start: int | None = None,
) -> tuple[Wait, float]:
    """The real lock is taken and this thread is about to wait for it (``timeout`` seconds, -1: for ever).

    Checks the order edges first (a LockOrderError, in raise mode and when ``refuse``, is raised before
    blocking), then the wait-for graph, starting from ``holder_id`` (the thread holding it, if known);
    ``mine`` says the holder is this very thread (a self-wait). Returns the wait and how long to wait
    first: the whole timeout, or ``wait_long_threshold`` after which the caller calls :func:`wait_long`.
    ``start``: when the wait began (ns), if the caller already waited a little (the C path waits up to
    ``SHORT_WAIT`` before it comes here; ``timeout`` is then what is left of it).
    """
    key = lock._key
    if mine and _events.is_emitting():
        # Inside tracedthreading's own logging, a handler waits for a lock this thread holds outside
        # it: that would never end. The event is dropped instead (emit catches this).
        raise _events.ReentrantLogging
    if key is not None and held and _CONFIG.order:
        inversion = _lockorder.observe(key, held, timeout != -1)
        if inversion is not None and refuse:
            raise LockOrderError(inversion)
    record = _records.get(id(held))
    if record is not None:
        record.waiting = key
    try:
        if key is not None:
            if mine and lock not in quiet:
                _deadlock.report_self_wait(key, lock.site)
            elif holder_id is not None:
                _deadlock.check(key, _get_ident(), holder_id)
        wait = Wait(record, holder_id, timeout)
        if start is not None:
            wait.start = start
    except BaseException:
        if record is not None:
            record.waiting = None
        raise
    slice_ = _CONFIG.wait_long_threshold
    if slice_ is None or (timeout != -1 and timeout <= slice_):
        return wait, timeout
    return wait, slice_


def wait_long(lock: Any, wait: Wait) -> float:
    """The first slice of a wait ended with the lock still taken: report it (``lock.wait_long``) and
    return how much longer to wait (-1: for ever)."""
    now = _clock_ns()
    key = lock._key
    if key is not None and lock not in quiet:
        _deadlock.report_wait_long(key, (now - wait.start) / 1e9, owner_id(lock))
    if wait.deadline is None:
        return -1
    return max(wait.deadline - _clock_ns(), 0) / 1e9


def end_wait(lock: Any, wait: Wait, got: bool, taken_at: int | None = None) -> None:
    """A wait ended (``got``: with the lock, taken at ``taken_at`` ns, else it timed out): count it,
    report it past ``contended_threshold``, put it on the timeline."""
    if wait.record is not None:
        wait.record.waiting = None
    _account(lock, wait.start, _clock_ns() if taken_at is None else taken_at, got, wait.holder_id, wait.holder_name)


def short_wait(lock: Any, start: int, end: int, got: bool, holder_id: int | None) -> None:
    """A wait the C hot path did alone (it ended within ``SHORT_WAIT``, or had a timeout that short):
    only its accounting comes here. ``start``/``end`` in ns."""
    _account(lock, start, end, got, holder_id, None if holder_id is None else _thread_name(holder_id))


def _account(lock: Any, start: int, end: int, got: bool, holder_id: int | None, holder_name: str | None) -> None:
    """Count one wait, report it past ``contended_threshold``, put it on the timeline."""
    waited = end - start
    with _stats_lock:
        rare = lock._rare
        if rare is None:
            rare = lock._rare = _stats.Counters(lock.trace_name, lock._kind)
        rare.contentions += 1
        if not got:
            rare.timeouts += 1
        rare.wait_total += waited
        if waited > rare.wait_max:
            rare.wait_max = waited
        hist = rare.wait_hist
        bucket = waited.bit_length() if waited > 0 else 0
        if hist is not None and bucket < len(hist):
            hist[bucket] += 1
        else:
            rare.wait_hist = _stats.record(hist, max(waited, 0))
        if holder_name is not None:
            blockers = rare.blockers
            if blockers is None:
                blockers = rare.blockers = {}
            blockers[holder_name] = blockers.get(holder_name, 0) + 1
    if _trace.active:
        _trace.record(_trace.WAIT, lock.trace_name, lock._kind, _get_ident(), start, end, not got)
    threshold = _CONFIG.contended_threshold
    if threshold is not None and waited >= threshold * 1e9 and lock not in quiet:
        fields = lock_fields(lock)
        fields.update(wait=waited / 1e9, timed_out=not got, holder=holder_name, holder_id=holder_id)
        _events.emit(_events.LOCK_CONTENDED, "warning", fields)


def abort_wait(wait: Wait) -> None:
    """A wait interrupted by an exception: it is not counted (neither a contention nor a timeout)."""
    if wait.record is not None:
        wait.record.waiting = None


def note_failure(lock: Any) -> None:
    """A try (``blocking=False`` or ``timeout=0``) found the lock taken."""
    with _stats.lock:
        rare = lock._rare
        if rare is None:
            rare = lock._rare = _stats.Counters(lock.trace_name, lock._kind)
        rare.failures += 1


def owner_id(lock: Any) -> int | None:
    """The id of the thread holding ``lock`` right now, if any."""
    try:
        return lock._tt_owner()  # type: ignore[no-any-return]
    except Exception:  # noqa: BLE001 - a lock being torn down
        return None


# -- events and the end of things ---------------------------------------------------------------------


def lock_fields(primitive: Any, ident: int | None = None) -> dict[str, Any]:
    """The fields every event carries: ``lock``, ``kind``, ``thread``, ``thread_id``."""
    fields: dict[str, Any] = {"lock": primitive.trace_name, "kind": primitive._kind}
    fields.update(_events.thread_fields(ident))
    return fields


def _died_holding(record: _threads.Held, keys: list[int]) -> None:
    names = [_deadlock.name_of(key) for key in keys]
    _events.emit(_events.THREAD_DIED_HOLDING, "error", {
        "lock": names[-1], "kind": "lock", "thread": _threads.thread_name(record.ident),
        "thread_id": record.ident, "held": names,
    })


def retire(record: tuple[Any, ...], ctx: list[int] | None = None, ctxn: int = 0) -> None:
    """A used Lock/RLock died (``record`` as :func:`tracedthreading._stats.retire_lock` takes it, ``ctx``
    and ``ctxn`` its cached context): fold its counters and drop its order-graph node. Never blocks,
    never raises: it runs wherever it died."""
    try:
        _stats.retire_lock(record)
        _lockorder.retire(record[0], ctx, ctxn)
    except Exception:  # noqa: BLE001, S110 - interpreter shutdown
        pass


_threads.on_died_holding = _died_holding
_lockorder.cached_takes = cached_takes
_lockorder.invalidate_contexts = invalidate_contexts
_config._listeners.append(refresh_caps)
_trace.listeners.append(refresh_caps)
refresh_caps()
