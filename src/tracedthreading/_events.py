"""Event names (the public schema) and their emission, guarded against re-entry.

Events are only built on slow paths (a threshold crossed, a new edge, a report). Emission puts a
barrier on the thread's held-lock stack (:func:`tracedthreading._threads.enter_logging`), so locks taken
by logging handlers never become edges of the user's lock-order graph, and a thread already emitting
drops nested events (counted in ``dropped``) instead of recursing.

Where an event goes, always in the emitting thread before :func:`emit` returns: to every sink; then,
when the application has configured structlog, to ``structlog.get_logger("tracedthreading")``; else, at
warning and above, to the current ``sys.stderr`` through :mod:`tracedthreading._console`, which renders
like structlog's ConsoleRenderer but never imports structlog (asyncio, ssl...: ~13 MiB, 50-100 ms).
"""

from __future__ import annotations

import _thread
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from tracedthreading import _console, _threads

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
#: (``event``, ``level``, ``lock``, ``kind``, ``thread``, ``thread_id``). Rendered into the docs (docs/events.rst).
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


class ReentrantLogging(BaseException):  # noqa: N818 - control flow, never escapes emit()
    """Raised inside :func:`emit` when logging would block on a lock this thread already holds.

    A BaseException so that logging handlers' ``except Exception`` do not swallow it on the way out.
    """


# Sinks receive every event dict (tests, the trace recorder, the pytest plugin); guarded by a raw lock.
_sinks: list[Callable[[dict[str, Any]], None]] = []
_sinks_lock = _thread.RLock()
_emitting = _thread._local()
dropped = 0
_configured_logger: Any = None  # structlog.get_logger("tracedthreading"), once the application configured structlog


def is_emitting() -> bool:
    """True while the calling thread is inside :func:`emit` (its logging handlers are running)."""
    return getattr(_emitting, "active", False)


def _after_fork_in_child() -> None:
    """A raw lock another thread held at the fork stays held for ever in the child: make it afresh."""
    global _sinks_lock
    _sinks_lock = _thread.RLock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def structlog_configured() -> bool:
    """``structlog.is_configured()``, without importing structlog (never imported: never configured)."""
    module = sys.modules.get("structlog")
    is_configured = getattr(module, "is_configured", None)
    return bool(is_configured is not None and is_configured())


def _logger() -> Any:
    """The application's structlog logger (called only when :func:`structlog_configured`)."""
    global _configured_logger
    if _configured_logger is None:
        _configured_logger = sys.modules["structlog"].get_logger("tracedthreading")
    return _configured_logger


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
    """Send one event to the sinks and to structlog or stderr; nested calls from inside logging are dropped."""
    global dropped
    if getattr(_emitting, "active", False):
        dropped += 1
        return
    _emitting.active = True
    saved = _threads.enter_logging()
    try:
        record = {"event": event, "level": level, **fields}
        record.setdefault("timestamp", time.time())
        with _sinks_lock:
            sinks = list(_sinks)
        for sink in sinks:
            sink(dict(record))
        logged = dict(record)
        del logged["event"], logged["level"], logged["timestamp"]
        if structlog_configured():
            if isinstance(logged.get("stack"), list):
                # structlog renders the ``stack`` key as a preformatted traceback string.
                logged["stack"] = "\n".join(logged["stack"])
            getattr(_logger(), level)(event, **logged)
        elif _console.shown(level):
            _console.write(_console.render(event, level, logged, record["timestamp"]))
    except (Exception, ReentrantLogging):  # noqa: BLE001 - the instrumentation must never break the program
        dropped += 1
    finally:
        _threads.leave_logging(saved)
        _emitting.active = False


def reset_logger_cache() -> None:
    """Forget the cached configured logger (after the application reconfigures structlog)."""
    global _configured_logger
    _configured_logger = None
