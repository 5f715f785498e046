"""The stderr default's renderer: structlog's ConsoleRenderer layout (no colors), without importing structlog.

When the application has not configured structlog, events are shown on stderr by this small renderer
instead: importing structlog (asyncio, ssl, ...) would cost ~13 MiB and 50-100 ms in a program that
never asked for it. One line per event, ``HH:MM:SS [level    ] event     [tracedthreading] key=value``
with keys sorted; stacks and reports follow the line as blocks.
"""

from __future__ import annotations

import _thread
import os
import sys
import time
from typing import Any

__all__ = ["render", "shown", "write"]

_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}
_SHOWN = 30  # warning and above: info events (polling waits that time out) would flood stderr
_LEVEL_WIDTH = 9  # the longest level name structlog pads to ("exception")
_EVENT_WIDTH = 30
_QUOTED = frozenset(" \t=\r\n\"'")
_STACKS = (("stack", "Stack"), ("holder_stack", "Holder stack"))
_REPORT_COPIES = ("edges", "hint", "threads")  # structured forms of what the report says, left off the line
_lock = _thread.allocate_lock()  # raw: one event's lines are never interleaved with another's


def shown(level: str) -> bool:
    """True for the levels the stderr default prints (warning and above)."""
    return _LEVELS.get(level, 20) >= _SHOWN


def _value(value: Any) -> str:
    """structlog's ConsoleRenderer value form: plain strings bare unless they need quoting, else repr."""
    if isinstance(value, str) and not _QUOTED.intersection(value):
        return value
    return repr(value)


def render(event: str, level: str, fields: dict[str, Any], when: float) -> str:
    """The text of one event: its line, then its stacks and report (no trailing newline)."""
    report = fields.get("report")
    skipped = {"report", *(_REPORT_COPIES if isinstance(report, str) else ())}
    skipped.update(key for key, _ in _STACKS)
    parts = [
        time.strftime("%H:%M:%S", time.localtime(when)),
        f"[{level:<{_LEVEL_WIDTH}}]",
        f"{event:<{_EVENT_WIDTH}}",
        "[tracedthreading]",
    ]
    parts.extend(f"{key}={_value(fields[key])}" for key in sorted(fields) if key not in skipped)
    lines = [" ".join(parts)]
    for key, title in _STACKS:
        stack = fields.get(key)
        if stack:
            lines.append(f"  {title} (most recent call last):")
            lines.extend(f"    {frame}" for frame in (stack.splitlines() if isinstance(stack, str) else stack))
    if isinstance(report, str):
        lines.extend(report.splitlines())
    elif report is not None:
        lines[0] += f" report={_value(report)}"
    return "\n".join(lines)


def write(text: str) -> None:
    """Write ``text`` and a newline to the *current* ``sys.stderr`` (pytest's capture swaps it); errors are lost."""
    with _lock:
        stream = sys.stderr
        if stream is None:
            return
        try:
            stream.write(text + "\n")
            stream.flush()
        except (OSError, ValueError):
            pass


_FORK_WAIT = 1.0  # seconds a fork waits for a write in progress in another thread
_held_for_fork = False


def _before_fork() -> None:
    """Let a write in progress finish before the fork: a thread forked mid-``write`` would leave the
    child's ``sys.stderr`` buffer locked for ever (its I/O lock is not reset after a fork), so the child's
    first event would hang. Bounded: a stream that blocks (a full pipe) does not block the fork."""
    global _held_for_fork
    _held_for_fork = _lock.acquire(True, _FORK_WAIT)


def _after_fork_in_parent() -> None:
    global _held_for_fork
    if _held_for_fork:
        _held_for_fork = False
        _lock.release()


def _after_fork_in_child() -> None:
    global _lock, _held_for_fork
    _held_for_fork = False
    _lock = _thread.allocate_lock()  # possibly held by a thread that does not exist in the child


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent,
                        after_in_child=_after_fork_in_child)
