"""Timeline trace: who waited for and held which primitive, when, in Chrome Trace Event Format.

Opt-in: between :func:`start` and :func:`stop` every traced primitive, whenever and however it was made
(before the trace started, or by a patched ``threading``), reports its waits and holds to :func:`record`.
The hot paths pay nothing for this while no trace runs: a lock's hold reaches the slow path only past
its cap, and :func:`start` lowers every cap below any hold (the :data:`listeners` re-derive them);
waits are slow paths already. Intervals are appended as tuples to one
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
import weakref
from time import perf_counter_ns as _clock
from collections.abc import Callable
from typing import Any

from tracedthreading import _config, _threads

__all__ = ["HOLD", "WAIT", "active", "listeners", "record", "start", "stop", "trace_data"]

_get_ident = _thread.get_ident

# Invariant: _buffer is None exactly when no trace is being recorded; records made by tracing objects
# that outlive stop() are then discarded.
_buffer: collections.deque[tuple[Any, ...]] | None = None
_serial = itertools.count()  # next() is atomic: record numbers, so dropped = highest number + 1 - kept
_names: dict[int, str] = {}  # track -> name of its thread, captured at the track's first record
# A thread ident is reused once its thread ended: one track per thread *lifetime*. ident -> (weak
# reference to what identifies the lifetime (its Thread object, else its held-lock record), or None;
# the track). A first lifetime's track is its ident; later ones count up from _REUSED_BASE: above any
# ident (pointers below 2**48, Windows ids below 2**32) and exact as a JavaScript number (< 2**53).
_tracks: dict[int, tuple[Any, int]] = {}
_REUSED_BASE = 2**52
_reused = itertools.count(_REUSED_BASE)
_hold_ends: dict[int, int] = {}  # track -> end of its last hold (see last_hold_end)
_base_ns = 0
_wall_start = 0.0
_path: str | None = None
active = False  # True between start() and stop(): the primitives' slow paths call record()
#: Called (no arguments) when a trace starts or stops: the lock core re-derives every lock's cap.
listeners: list[Callable[[], None]] = []

WAIT = "wait"
HOLD = "hold"


def record(cat: str, name: str, kind: str, tid: int, start: int, end: int, timed_out: bool = False) -> None:
    """Append one interval (``perf_counter_ns`` values) of thread ``tid``: a ``WAIT`` or a ``HOLD`` of the
    primitive ``name``. Never blocks, never takes a traced lock; a no-op once the trace stopped."""
    buffer = _buffer
    if buffer is None:
        return
    track = _track(tid)
    if cat is HOLD:
        _hold_ends[track] = end
    buffer.append((next(_serial), cat, name, kind, track, start, end - start, timed_out))


def _lifetime(tid: int) -> Any:
    """What identifies the current lifetime of thread ``tid``: its Thread object, or its held-lock record."""
    thread = _threads._active.get(tid) or _threads._limbo.get(tid)
    return thread if thread is not None else _threads.record_of_thread(tid)


def _track(tid: int) -> int:
    """The track of thread ``tid``'s current lifetime (a new one when the ident was reused)."""
    owner = _lifetime(tid)
    entry = _tracks.get(tid)
    if entry is not None:
        ref, track = entry
        if owner is None or (ref is not None and ref() is owner):
            return track
        if ref is not None:  # another lifetime of this ident had this track: a new one
            track = next(_reused)
    else:
        track = tid
    try:
        _tracks[tid] = (weakref.ref(owner) if owner is not None else None, track)
    except TypeError:  # not weakly referenceable: the lifetime cannot be told apart
        _tracks[tid] = (None, track)
    _names[track] = _threads.thread_name(tid)
    return track


def last_hold_end(tid: int) -> int:
    """When thread ``tid``'s last recorded hold ended (ns; 0 if none): a Condition's wait slice starts
    there, so the slices of one thread nest (hold, wait, hold) instead of overlapping."""
    return _hold_ends.get(_track(tid), 0) if _buffer is not None else 0


def _switch() -> None:
    for listener in listeners:
        listener()


def start(path: str | os.PathLike[str] | None = None) -> None:
    """Start recording the waits and holds of every traced primitive.

    ``path`` (optional) is where :func:`stop` writes the trace. ``RuntimeError`` if already started.
    """
    global _buffer, _base_ns, _wall_start, _path, active, _serial, _reused
    if active:
        msg = "tracedthreading trace already started; call stop() first"
        raise RuntimeError(msg)
    _path = None if path is None else os.fspath(path)
    _names.clear()
    _tracks.clear()
    _hold_ends.clear()
    _serial = itertools.count()
    _reused = itertools.count(_REUSED_BASE)
    _wall_start = time.time()
    _base_ns = _clock()
    _buffer = collections.deque(maxlen=_config.CONFIG.trace_buffer)
    active = True
    _switch()


def stop() -> dict[str, Any]:
    """Stop recording, write the file given to :func:`start`; returns the trace."""
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

