"""Timeline trace: who waited for and held which primitive, when, in Chrome Trace Event Format.

Opt-in: :func:`start` switches ``tracedthreading``'s factories (Lock, RLock, Condition, Semaphore,
BoundedSemaphore, Event, Barrier) to the ``Tracing*`` subclasses below, :func:`stop` switches them back and
writes the file. The subclasses only wrap the parent's methods, so the untraced hot path in
``_primitives`` stays as fast as it is when tracing is off. Intervals are appended as tuples to one
``collections.deque(maxlen=CONFIG.trace_buffer)`` (``append`` is atomic under the GIL, no lock needed);
the oldest are dropped when it is full and the count of dropped events is written into ``otherData``.

Open the file in the Perfetto UI (https://ui.perfetto.dev, "Open trace file") or in ``chrome://tracing``.
"""

from __future__ import annotations

import _thread
import collections
import itertools
import os
import sys
import time
from time import perf_counter_ns as _clock
from typing import Any

from tracedthreading import _config, _threads
from tracedthreading._primitives import _ActiveLock, _ActiveRLock, site_of
from tracedthreading._sync import Barrier, BoundedSemaphore, Condition, Event, Semaphore

__all__ = [
    "CLASSES",
    "TracingBarrier",
    "TracingBoundedSemaphore",
    "TracingCondition",
    "TracingEvent",
    "TracingLock",
    "TracingRLock",
    "TracingSemaphore",
    "active",
    "start",
    "stop",
    "trace_data",
]

_get_ident = _thread.get_ident

# Invariant: _buffer is None exactly when no trace is being recorded; records made by tracing objects
# that outlive stop() are then discarded.
_buffer: collections.deque[tuple[Any, ...]] | None = None
_serial = itertools.count()  # next() is atomic: record numbers, so dropped = highest number + 1 - kept
_names: dict[int, str] = {}  # thread ident -> name, captured at the thread's first record
_base_ns = 0
_wall_start = 0.0
_path: str | None = None
active = False  # consulted by tracedthreading._apply_enabled to pick the Tracing* factories

_WAIT = "wait"
_HOLD = "hold"
# An acquire is a wait when the primitive was taken as it was called, or when the call lasted this long:
# the first test alone misses hand-offs (the releaser's waiter grabs the lock between test and take).
_WAIT_FLOOR_NS = 10_000


def _record(cat: str, primitive: Any, tid: int, start: int, end: int, timed_out: bool = False) -> None:
    """Append one interval (never blocks, never takes a traced lock)."""
    buffer = _buffer
    if buffer is None:
        return
    if tid not in _names:
        _names[tid] = _threads.thread_name(tid)
    buffer.append((next(_serial), cat, primitive.trace_name, primitive._kind, tid, start, end - start, timed_out))


def _site_name(name: str | None) -> str | None:
    """The default name (``module:line`` of the user's creation line) for a primitive made through a
    subclass, whose parent would otherwise see the subclass's frame; an explicit name is kept.
    """
    if name is not None:
        return name
    return "%s:%d" % site_of(sys._getframe(2))


class TracingLock(_ActiveLock):
    """A :class:`~tracedthreading.Lock` that also records its waits and holds on the timeline."""

    __slots__ = ("_tr_released", "_tr_start", "_tr_tid")
    _active = _ActiveLock  # replaced below: its own class, so it never counts as fresh

    def __init__(self, *, name: str | None = None) -> None:
        super().__init__(name=_site_name(name))
        self._init_counters()  # active from the start: the fresh state's methods would bypass ours
        self._tr_start = 0
        self._tr_tid = 0
        self._tr_released = 0

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        """Acquire as :meth:`Lock.acquire`; a wait that had to block becomes a "wait" slice."""
        busy = self.locked()
        start = _clock()
        got = super().acquire(blocking, timeout)
        end = _clock()
        tid = _get_ident()
        if blocking and (busy or end - start >= _WAIT_FLOOR_NS):
            _record(_WAIT, self, tid, start, end, not got)
        if got:
            self._tr_start = end
            self._tr_tid = tid
        return got

    __enter__ = acquire

    def release(self) -> None:
        """Release as :meth:`Lock.release`; the hold becomes a "hold" slice of the acquiring thread."""
        end = _clock()
        start, tid = self._tr_start, self._tr_tid
        self._tr_start = 0
        super().release()
        self._tr_released = end
        if start:
            _record(_HOLD, self, tid, start, end)

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.release()


class TracingRLock(_ActiveRLock):
    """A :class:`~tracedthreading.RLock` that also records its waits and outermost holds."""

    __slots__ = ("_tr_released", "_tr_start")
    _active = _ActiveRLock  # replaced below: its own class, so it never counts as fresh

    def __init__(self, *, name: str | None = None) -> None:
        super().__init__(name=_site_name(name))
        self._init_counters()  # active from the start: the fresh state's methods would bypass ours
        self._tr_start = 0
        self._tr_released = 0

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        """Acquire or re-enter as :meth:`RLock.acquire`; only the outermost level is a hold."""
        if self._is_owned():
            return super().acquire(blocking, timeout)
        busy = self.locked()
        start = _clock()
        got = super().acquire(blocking, timeout)
        end = _clock()
        if blocking and (busy or end - start >= _WAIT_FLOOR_NS):
            _record(_WAIT, self, _get_ident(), start, end, not got)
        if got:
            self._tr_start = end
        return got

    __enter__ = acquire

    def release(self) -> None:
        """Release one level as :meth:`RLock.release`; the last level ends the hold slice."""
        end = _clock()
        last = self._recursion_count() == 1
        start = self._tr_start
        super().release()
        if last:
            self._tr_start = 0
            self._tr_released = end
            if start:
                _record(_HOLD, self, _get_ident(), start, end)

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.release()

    def _acquire_restore(self, state: tuple[int, int]) -> None:
        # Condition.wait re-acquires through here, not through acquire(): time that wait too.
        busy = self.locked()
        start = _clock()
        super()._acquire_restore(state)
        end = _clock()
        if busy or end - start >= _WAIT_FLOOR_NS:
            _record(_WAIT, self, _get_ident(), start, end)
        self._tr_start = end


TracingLock._active = TracingLock
TracingRLock._active = TracingRLock


class TracingCondition(Condition):
    """A :class:`~tracedthreading.Condition` whose waits are slices (its default lock a TracingRLock)."""

    def __init__(self, lock: Any = None, *, name: str | None = None) -> None:
        name = _site_name(name)
        super().__init__(TracingRLock(name=name) if lock is None else lock, name=name)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait as :meth:`Condition.wait`: one slice from releasing the lock to having it again."""
        lock = self._lock  # type: ignore[attr-defined]
        start = _clock()
        notified = super().wait(timeout)
        end = _clock()
        # With a tracing lock, use its release and re-acquire times so the slices of this thread nest:
        # hold ... | wait (re-acquire wait inside) | hold ...
        released, acquired = getattr(lock, "_tr_released", 0), getattr(lock, "_tr_start", 0)
        if start <= released <= acquired <= end:
            start, end = released, acquired
        _record(_WAIT, self, _get_ident(), start, end, not notified)
        return notified


class TracingSemaphore(Semaphore):
    """A :class:`~tracedthreading.Semaphore` whose blocking acquires are slices."""

    def __init__(self, value: int = 1, *, name: str | None = None) -> None:
        super().__init__(value, name=_site_name(name))

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        """Acquire as :meth:`Semaphore.acquire`; a wait that found the counter at zero is a slice."""
        busy = self._value == 0  # type: ignore[attr-defined]
        start = _clock()
        got = super().acquire(blocking, timeout)
        if busy and blocking:  # no hand-off race here: a zero counter is the one sign of a wait
            _record(_WAIT, self, _get_ident(), start, _clock(), not got)
        return got

    __enter__ = acquire


class TracingBoundedSemaphore(TracingSemaphore, BoundedSemaphore):
    """A :class:`~tracedthreading.BoundedSemaphore` whose blocking acquires are slices."""


class TracingEvent(Event):
    """A :class:`~tracedthreading.Event` whose blocking waits are slices."""

    def __init__(self, *, name: str | None = None) -> None:
        super().__init__(name=_site_name(name))

    def wait(self, timeout: float | None = None) -> bool:
        """Wait as :meth:`Event.wait`; a wait on an unset flag is a slice."""
        if self._flag:  # type: ignore[attr-defined]
            return super().wait(timeout)
        start = _clock()
        flag = super().wait(timeout)
        _record(_WAIT, self, _get_ident(), start, _clock(), not flag)
        return flag


class TracingBarrier(Barrier):
    """A :class:`~tracedthreading.Barrier` whose waits are slices (the arrival spread, per thread)."""

    def __init__(
        self, parties: int, action: Any = None, timeout: float | None = None, *, name: str | None = None,
    ) -> None:
        super().__init__(parties, action, timeout, name=_site_name(name))

    def wait(self, timeout: float | None = None) -> int:
        """Wait as :meth:`Barrier.wait`; a broken barrier ends the slice as timed out."""
        start = _clock()
        try:
            index = super().wait(timeout)
        except BaseException:
            _record(_WAIT, self, _get_ident(), start, _clock(), True)
            raise
        _record(_WAIT, self, _get_ident(), start, _clock())
        return index


#: The factories ``tracedthreading`` exposes while a trace is recorded.
CLASSES: dict[str, type] = {
    "Barrier": TracingBarrier,
    "BoundedSemaphore": TracingBoundedSemaphore,
    "Condition": TracingCondition,
    "Event": TracingEvent,
    "Lock": TracingLock,
    "RLock": TracingRLock,
    "Semaphore": TracingSemaphore,
}
# Present themselves exactly like the untraced classes (reprs, error messages): a drop-in stays one.
for _public, _cls in CLASSES.items():
    _cls.__module__ = "tracedthreading"
    _cls.__qualname__ = _cls.__name__ = _public
del _public, _cls


def _switch() -> None:
    import tracedthreading

    tracedthreading._apply_enabled()


def start(path: str | os.PathLike[str] | None = None) -> None:
    """Start recording: primitives created from now on through ``tracedthreading`` are traced.

    ``path`` (optional) is where :func:`stop` writes the trace. ``RuntimeError`` if already started.
    """
    global _buffer, _base_ns, _wall_start, _path, active, _serial
    if active:
        msg = "tracedthreading trace already started; call stop() first"
        raise RuntimeError(msg)
    _path = None if path is None else os.fspath(path)
    _names.clear()
    _serial = itertools.count()
    _wall_start = time.time()
    _base_ns = _clock()
    _buffer = collections.deque(maxlen=_config.CONFIG.trace_buffer)
    active = True
    _switch()


def stop() -> dict[str, Any]:
    """Stop recording, restore the untraced factories, write the file given to :func:`start`; returns the trace."""
    global _buffer, active
    if not active:
        msg = "tracedthreading trace is not started"
        raise RuntimeError(msg)
    data = trace_data()
    _buffer = None
    active = False
    _switch()
    if _path is not None:
        import json  # only when a trace is written

        with open(_path, "w", encoding="utf-8") as stream:
            json.dump(data, stream, separators=(",", ":"))
            stream.write("\n")
    return data


def trace_data() -> dict[str, Any]:
    """The trace recorded so far as a Chrome Trace Event Format dict (``traceEvents``, ``otherData``)."""
    buffer = _buffer
    records = list(buffer) if buffer is not None else []
    # Records are numbered from 0 in the order they were made: the highest kept number counts them all.
    total = max((record[0] for record in records), default=-1) + 1
    pid = os.getpid()
    events: list[dict[str, Any]] = [
        {"name": "process_name", "ph": "M", "pid": pid, "tid": 0, "args": {"name": f"python pid {pid}"}},
    ]
    for tid, name in sorted(_names.items()):
        events.append({"name": "thread_name", "ph": "M", "pid": pid, "tid": tid, "args": {"name": name}})
    for _number, cat, name, kind, tid, begin, duration, timed_out in records:
        args: dict[str, Any] = {"lock": name, "kind": kind}
        if timed_out:
            args["timed_out"] = True
        events.append({
            "name": f"{cat} {name}", "cat": cat, "ph": "X", "pid": pid, "tid": tid,
            "ts": (begin - _base_ns) / 1000, "dur": duration / 1000, "args": args,
        })
    return {
        "traceEvents": events,
        "displayTimeUnit": "ms",
        "otherData": {
            "tool": "tracedthreading",
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(_wall_start)),
            "buffer": buffer.maxlen if buffer is not None else _config.CONFIG.trace_buffer,
            "recorded_events": total,
            "dropped_events": total - len(records),
        },
    }

