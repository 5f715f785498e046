"""Event names (the public schema) and their emission through structlog, guarded against re-entry.

Events are only built on slow paths (a threshold crossed, a new edge, a report). Emission swaps the
thread's held-lock stack for an empty one, so locks taken by logging handlers never become edges of
the user's lock-order graph, and a thread already emitting drops nested events (counted in
``dropped``) instead of recursing.
"""

from __future__ import annotations

import _thread
import sys
import time
from collections.abc import Callable
from typing import Any

import structlog

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


class _StderrLogger:
    """Writes one rendered line to the *current* ``sys.stderr`` under a raw (never traced) lock."""

    _lock = _thread.allocate_lock()

    def msg(self, message: str) -> None:
        with self._lock:
            stream = sys.stderr
            if stream is None:
                return
            try:
                stream.write(message + "\n")
                stream.flush()
            except (OSError, ValueError):
                pass

    log = debug = info = warning = warn = error = critical = exception = fatal = msg


def _drop_verbose(logger: Any, method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    if _LEVELS.get(method, 20) < 20:
        raise structlog.DropEvent
    return event_dict


_fallback = structlog.wrap_logger(
    _StderrLogger(),
    processors=[
        _drop_verbose,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="%H:%M:%S", utc=False),
        structlog.dev.ConsoleRenderer(colors=False),
    ],
    logger_name="tracedthreading",
)
_configured_logger: Any = None


def _logger() -> Any:
    """The application's structlog setup when it made one, else a stderr fallback (never stdout)."""
    global _configured_logger
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
    saved = _threads.suspend()
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
        getattr(_logger(), level)(event, **logged)
    except (Exception, ReentrantLogging):  # noqa: BLE001 - the instrumentation must never break the program
        dropped += 1
    finally:
        _threads.resume(saved)
        _emitting.active = False


def reset_logger_cache() -> None:
    """Forget the cached configured logger (after the application reconfigures structlog)."""
    global _configured_logger
    _configured_logger = None
