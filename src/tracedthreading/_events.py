"""Event names (the public schema) and their emission through structlog, guarded against re-entry.

Events are only built on slow paths (a threshold crossed, a new edge, a report). Emission puts a
barrier on the thread's held-lock stack (:func:`tracedthreading._threads.enter_logging`), so locks taken
by logging handlers never become edges of the user's lock-order graph, and a thread already emitting
drops nested events (counted in ``dropped``) instead of recursing.

structlog is imported by the first event that needs a logger, not with the package: importing it pulls
in asyncio, logging, json, ... (about 10 MB and 50-100 ms), and most programs never emit an event.
Where, and why that is safe:

- in the emitting thread when it holds no traced lock, after the re-entry guard is set and with its
  held-lock stack behind a barrier, like the logging it precedes: an event raised by the import itself (a
  ``__del__`` run by the collector, a lock taken by a module being imported) is dropped and counted,
  never recursed into, and adds no order edges. No lock of ours is held around the import, and
  tracedthreading emits only outside its own raw locks: the import waits only on the import system's
  per-module locks (which detect deadlocks between importers), that is for another thread to finish
  importing the same module, and the module bodies of structlog and its dependencies never wait for a
  lock of the program. A thread half-way through importing structlog itself (the program's ``import
  structlog``, interrupted by a collector-run ``__del__`` that emits) gets the partial module: that
  one event fails, is dropped and counted, and the next event imports again. The one case left: the
  collector running such a ``__del__`` inside the tracer's bookkeeping of a thread holding no traced
  lock, as the very first event, just when another thread first-imports one of structlog's
  dependencies and needs that bookkeeping (the hazard of any import in a finalizer);
- in a loader thread when the emitting thread holds traced locks and the event is for the stderr
  fallback: the import would keep those locks held for its duration (see :func:`_defer`);
- while a thread imports structlog, the factories of :func:`tracedthreading.patch` build raw stdlib
  primitives for that thread (see :data:`importing_threads`): module-level locks of structlog and its
  dependencies stay untraced, exactly as when structlog was imported before any patch;
- ``debug`` events with structlog never imported skip the import: structlog cannot be configured then,
  and the stderr fallback drops ``debug`` anyway. A program that configured structlog has imported it:
  its events are always logged at once, in the emitting thread.
"""

from __future__ import annotations

import _thread
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from tracedthreading import _threads

__all__ = [
    "BARRIER_BROKEN",
    "CONDITION_TIMEOUT",
    "DEADLOCK_DETECTED",
    "EVENT_TIMEOUT",
    "LOCK_CONTENDED",
    "LOCK_HELD_LONG",
    "LOCK_HELD_WHILE_BLOCKING",
    "LOCK_ORDER_INVERSION",
    "LOCK_SELF_WAIT",
    "LOCK_WAIT_LONG",
    "SCHEMA",
    "emit",
]

LOCK_CONTENDED = "lock.contended"
LOCK_HELD_LONG = "lock.held_long"
LOCK_WAIT_LONG = "lock.wait_long"
LOCK_SELF_WAIT = "lock.self_wait"
LOCK_ORDER_INVERSION = "lock.order_inversion"
LOCK_ORDER_SUPPRESSED = "lock.order_inversion_suppressed"
LOCK_HELD_WHILE_BLOCKING = "lock.held_while_blocking"
DEADLOCK_DETECTED = "deadlock.detected"
CONDITION_TIMEOUT = "condition.wait_timeout"
EVENT_TIMEOUT = "event.wait_timeout"
SEMAPHORE_CONTENDED = "semaphore.contended"
BARRIER_BROKEN = "barrier.broken"
TIMER_LATE = "timer.late"
THREAD_DIED_HOLDING = "thread.died_holding"
PATCH_MISSED = "patch.missed"
SUMMARY = "tracedthreading.summary"

#: Every event name with its level and the fields it carries beyond the common ones
#: (``event``, ``level``, ``lock``, ``kind``, ``thread``, ``thread_id``). Rendered into the README.
SCHEMA: dict[str, tuple[str, str, tuple[str, ...]]] = {
    LOCK_CONTENDED: ("warning", "a wait for a Lock/RLock/Condition's lock reached contended_threshold",
                     ("wait", "timed_out", "holder", "holder_id")),
    LOCK_HELD_LONG: ("warning", "a hold reached held_long_threshold; stack is where it was released",
                     ("hold", "stack")),
    LOCK_WAIT_LONG: ("warning", "a wait is still going after wait_long_threshold",
                     ("wait", "holder", "holder_id", "stack", "holder_stack")),
    LOCK_SELF_WAIT: ("warning", "a thread blocks on a Lock it holds itself (legal only if another thread releases it)",
                     ("stack",)),
    LOCK_ORDER_INVERSION: ("error", "a cycle in the lock-order graph: a potential deadlock",
                           ("cycle", "edges", "hint", "timed")),
    LOCK_ORDER_SUPPRESSED: ("debug", "a cycle whose every edge was taken under a common gate lock, or suppressed",
                            ("cycle", "reason")),
    LOCK_HELD_WHILE_BLOCKING: ("warning", "a thread blocks in wait/join while holding traced locks",
                               ("call", "held", "stack")),
    DEADLOCK_DETECTED: ("critical", "threads are blocked in a cycle of waits right now",
                        ("threads",)),
    CONDITION_TIMEOUT: ("info", "Condition.wait/wait_for returned on timeout", ("wait", "timeout")),
    EVENT_TIMEOUT: ("info", "Event.wait returned False on timeout", ("wait", "timeout")),
    SEMAPHORE_CONTENDED: ("warning", "a Semaphore acquire waited at least contended_threshold",
                          ("wait", "timed_out")),
    BARRIER_BROKEN: ("warning", "Barrier.wait raised BrokenBarrierError", ("wait", "parties")),
    TIMER_LATE: ("warning", "a Timer started its function later than scheduled by contended_threshold",
                 ("late", "interval", "callback")),
    THREAD_DIED_HOLDING: ("error", "a thread ended while holding traced locks", ("held",)),
    PATCH_MISSED: ("warning", "patch() found modules holding the stdlib factories it cannot replace",
                   ("modules",)),
    SUMMARY: ("info", "per-lock statistics written by the runner at exit", ("locks", "inversions", "deadlocks", "order_edges")),
}

_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}


class ReentrantLogging(BaseException):  # noqa: N818 - control flow, never escapes emit()
    """Raised inside :func:`emit` when logging would block on a lock this thread already holds.

    A BaseException so that logging handlers' ``except Exception`` do not swallow it on the way out.
    """

# Sinks receive every event dict (tests, the trace recorder, the pytest plugin); guarded by a raw lock.
_sinks: list[Callable[[dict[str, Any]], None]] = []
_sinks_lock = _thread.RLock()
_emitting = _thread._local()
dropped = 0


_CURRENT: Any = object()  # _StderrLogger's stream: whatever sys.stderr is when the line is written


class _StderrLogger:
    """Writes one rendered line to ``sys.stderr`` under a raw (never traced) lock.

    The *current* ``sys.stderr``; a deferred event (see :func:`_defer`) goes to the one its emission saw.
    """

    _lock = _thread.allocate_lock()

    def __init__(self, stream: Any = _CURRENT) -> None:
        self._stream = stream

    def msg(self, message: str) -> None:
        with self._lock:
            stream = sys.stderr if self._stream is _CURRENT else self._stream
            if stream is None:
                return
            try:
                stream.write(message + "\n")
                stream.flush()
            except (OSError, ValueError):
                pass

    log = debug = info = warning = warn = error = critical = exception = fatal = msg


_WHEN = "_tracedthreading_when"  # the emission time of a deferred event, for the fallback's timestamp


def _drop_verbose(logger: Any, method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    if _LEVELS.get(method, 20) < 20:
        raise _structlog.DropEvent
    return event_dict


def _stamp(logger: Any, method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """``TimeStamper(fmt="%H:%M:%S", utc=False)``, of the emission time when the event was deferred."""
    when = event_dict.pop(_WHEN, None)
    event_dict["timestamp"] = time.strftime("%H:%M:%S", time.localtime(time.time() if when is None else when))
    return event_dict


#: Idents of the threads importing structlog right now: for them the patched factories build raw
#: primitives (read by :mod:`tracedthreading.patching`; a set mutated in place, never rebound).
importing_threads: set[int] = set()
_structlog: Any = None  # the structlog module, once imported and the fallback built
_fallback: Any = None
_fallback_processors: list[Any] = []
_configured_logger: Any = None
# Events handed to the loader thread, in emission order; None while no loader runs (see _defer).
_pending: list[tuple[str, str, dict[str, Any], float, Any, bool]] | None = None
_pending_lock = _thread.allocate_lock()  # raw: held only around operations on _pending
_loader_running = _thread.allocate_lock()  # raw: held by the loader thread from its start to its end
_exit_wait_registered = False
_LOADER_WAIT_AT_EXIT = 0.5  # seconds: at most this long for the loader to print its events at exit (then they are dropped, counted)
_LOADER_WAIT_AT_FORK = 2.0  # seconds: a fork waits this long for the loader's import to finish


def _load_structlog() -> Any:
    """Import structlog and build the stderr fallback logger, once (see the module docstring)."""
    global _structlog, _fallback
    if _structlog is not None:
        return _structlog
    ident = _thread.get_ident()
    importing_threads.add(ident)
    try:
        import structlog
    finally:
        importing_threads.discard(ident)
    processors = [
        _drop_verbose,
        structlog.processors.add_log_level,
        _stamp,
        structlog.dev.ConsoleRenderer(colors=False),
    ]
    fallback = structlog.wrap_logger(_StderrLogger(), processors=processors, logger_name="tracedthreading")
    if _structlog is None:  # first events racing in two threads build equal fallbacks: either serves
        _fallback_processors[:] = processors
        _fallback = fallback
        _structlog = structlog
    return _structlog


def _defer(event: str, level: str, logged: dict[str, Any], when: float, *, holding: bool) -> bool:
    """Hand the event to the loader thread rather than import structlog here; False: log it now.

    Importing structlog takes 50-100 ms, more while other threads compete for the GIL. A thread holding
    traced locks (the first ``lock.contended`` is emitted right after its acquire) would keep them that
    long, and the threads waiting for them would wait that much longer, and report it: contention made
    by tracedthreading. So when structlog is not loaded, nobody configured it (the event is for the
    stderr fallback) and this thread holds traced locks, the event is queued and a loader thread
    imports structlog and prints it, to the ``sys.stderr`` its emission saw, with its time. While the
    loader runs every event queues behind it, which keeps the order. The loader holds no lock of the
    program; the interpreter waits for it at exit, and so does a fork (see :func:`_wait_for_loader`).
    """
    global _pending
    configured = structlog_configured()
    with _pending_lock:
        if _pending is None:
            if _structlog is not None or configured or not holding:
                return False
            if _LEVELS.get(level, 20) < 20:
                return True  # for the fallback, which drops debug: nothing to print, nothing to import
            if not _start_loader():
                return False
            _pending = []
        if configured or _LEVELS.get(level, 20) >= 20:  # the fallback drops debug: nothing to print
            _pending.append((event, level, logged, when, sys.stderr, configured))
    return True


def _start_loader() -> bool:
    """Start the loader thread (called under ``_pending_lock``, while none runs); False if it cannot."""
    global _exit_wait_registered
    if not _loader_running.acquire(False):
        return False
    try:
        _thread.start_new_thread(_load_and_print, ())  # raw: not in threading.enumerate(), never joined
    except RuntimeError:  # no new threads (interpreter shutdown): the emitting thread imports after all
        _loader_running.release()
        return False
    if not _exit_wait_registered:
        import atexit

        atexit.register(_wait_for_loader, _LOADER_WAIT_AT_EXIT)
        _exit_wait_registered = True
    return True


def _load_and_print() -> None:
    """The loader thread: import structlog, then log the queued events until none is left."""
    global _pending, dropped
    _emitting.active = True  # an event caused by its own work (a __del__, an imported module) is dropped
    try:
        try:
            _load_structlog()
        except BaseException:  # noqa: BLE001, S110 - the queued events are counted as dropped below
            pass
        while True:
            with _pending_lock:
                batch = _pending or []
                if not batch or _structlog is None:
                    dropped += len(batch)
                    _pending = None
                    return
                _pending = []
            for event, level, logged, when, stream, configured in batch:
                try:
                    if configured:
                        logger = _logger()
                    else:
                        logged[_WHEN] = when
                        logger = _structlog.wrap_logger(_StderrLogger(stream), processors=_fallback_processors,
                                                        logger_name="tracedthreading")
                    getattr(logger, level)(event, **logged)
                except BaseException:  # noqa: BLE001 - the instrumentation must never break the program
                    dropped += 1
    finally:
        _loader_running.release()


def _wait_for_loader(timeout: float) -> None:
    """Wait (at most ``timeout`` seconds) until no loader thread runs: at exit, and before a fork."""
    if _loader_running.acquire(True, timeout):
        _loader_running.release()


def is_emitting() -> bool:
    """True while the calling thread is inside :func:`emit` (its logging handlers are running)."""
    return getattr(_emitting, "active", False)


def _after_fork_in_child() -> None:
    """The child has no loader thread (a fork waited for it, up to a point), and any raw lock another
    thread held at the fork stays held for ever there: every lock of this module is made afresh."""
    global _pending, _pending_lock, _loader_running, _sinks_lock
    _sinks_lock = _thread.RLock()
    _pending = None  # events the parent's loader had yet to print: the parent prints them
    _pending_lock = _thread.allocate_lock()
    _loader_running = _thread.allocate_lock()
    _StderrLogger._lock = _thread.allocate_lock()  # held by a thread that does not exist in the child


if hasattr(os, "register_at_fork"):
    # An import in progress in another thread at fork time would leave its module locks held in the child.
    os.register_at_fork(before=lambda: _wait_for_loader(_LOADER_WAIT_AT_FORK), after_in_child=_after_fork_in_child)


def structlog_configured() -> bool:
    """``structlog.is_configured()``, without importing structlog (never imported: never configured)."""
    module = sys.modules.get("structlog")
    is_configured = getattr(module, "is_configured", None)
    return bool(is_configured is not None and is_configured())


def _logger() -> Any:
    """The application's structlog setup when it made one, else a stderr fallback (never stdout)."""
    global _configured_logger
    structlog = _structlog if _structlog is not None else _load_structlog()
    if structlog.is_configured():
        if _configured_logger is None:
            _configured_logger = structlog.get_logger("tracedthreading")
        return _configured_logger
    return _fallback


def add_sink(sink: Callable[[dict[str, Any]], None]) -> None:
    """Send every future event dict to ``sink`` as well (called outside any tracer lock)."""
    with _sinks_lock:
        _sinks.append(sink)


def remove_sink(sink: Callable[[dict[str, Any]], None]) -> None:
    """Stop sending events to ``sink``; unknown sinks are ignored."""
    with _sinks_lock:
        try:
            _sinks.remove(sink)
        except ValueError:
            pass


def has_sinks() -> bool:
    """True while some listener (``capture_events``, the pytest plugin...) receives events."""
    with _sinks_lock:
        return bool(_sinks)


def thread_fields(ident: int | None = None) -> dict[str, Any]:
    """``thread`` (name) and ``thread_id`` of ``ident`` (default: the calling thread)."""
    if ident is None:
        ident = _thread.get_ident()
    return {"thread": _threads.thread_name(ident), "thread_id": ident}


def emit(event: str, level: str, fields: dict[str, Any]) -> None:
    """Send one event to the sinks and to structlog; nested calls from inside logging are dropped."""
    global dropped
    if getattr(_emitting, "active", False):
        dropped += 1
        return
    _emitting.active = True
    saved = _threads.enter_logging()
    holding = bool(_threads.holding(saved[0]))
    try:
        record = {"event": event, "level": level, **fields}
        record.setdefault("timestamp", time.time())
        with _sinks_lock:
            sinks = list(_sinks)
        for sink in sinks:
            sink(dict(record))
        logged = dict(record)
        del logged["event"], logged["level"], logged["timestamp"]
        if isinstance(logged.get("stack"), list):
            # structlog renders the ``stack`` key as a preformatted traceback string.
            logged["stack"] = "\n".join(logged["stack"])
        if _structlog is None or _pending is not None:
            if _LEVELS.get(level, 20) < 20 and "structlog" not in sys.modules:
                return  # nobody configured structlog, and the fallback drops debug: no import for nothing
            if _defer(event, level, logged, record["timestamp"], holding=holding):
                return
        getattr(_logger(), level)(event, **logged)
    except (Exception, ReentrantLogging):  # noqa: BLE001 - the instrumentation must never break the program
        dropped += 1
    finally:
        _threads.leave_logging(saved)
        _emitting.active = False


def reset_logger_cache() -> None:
    """Forget the cached configured logger (after the application reconfigures structlog)."""
    global _configured_logger
    _configured_logger = None
