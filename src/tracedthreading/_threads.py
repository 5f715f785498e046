"""Per-thread tracer state: the stack of held traced locks, and what the thread is blocked on.

Each thread owns one :class:`Held` (a ``list`` of lock keys, so pushing and popping cost one C call).
Locks point at their holder's ``Held`` (``lock._holder``), which gives the owner's thread id for the
wait-for graph without any global registry on the hot path.
"""

from __future__ import annotations

import _thread
import os
import sys
import threading as _std
import weakref
from typing import Any

__all__ = ["Held", "current", "thread_name"]


class Held(list):  # type: ignore[type-arg]
    """Keys of the traced locks a thread holds, outermost first, plus what it waits for."""

    # Invariant: only the owning thread appends; any thread may remove a key it releases (Lock allows
    # release by another thread), which list.remove does atomically under the GIL.
    __slots__ = ("__weakref__", "ident", "name", "waiting")

    def __init__(self, ident: int) -> None:
        super().__init__()
        self.ident = ident
        self.name = ""  # the thread's name when first seen: outlives threading's registry entry
        self.waiting: Any = None  # the traced primitive this thread is blocked on, if any

    def __repr__(self) -> str:
        return f"<Held thread={self.ident} keys={list(self)!r}>"


tls = _thread._local()
# Every live thread's Held, for deadlock reports and fork handling (weak: a finished thread's goes away).
_all: weakref.WeakValueDictionary[int, Held] = weakref.WeakValueDictionary()
_all_lock = _thread.RLock()


def current() -> Held:
    """The calling thread's :class:`Held`, created on first use."""
    try:
        return tls.held  # type: ignore[no-any-return]
    except AttributeError:
        return _new()


def _new() -> Held:
    ident = _thread.get_ident()
    held = Held(ident)
    held.name = thread_name(ident)
    tls.held = held
    tls.exit_watch = _ExitWatch(held)
    with _all_lock:
        _all[ident] = held
    return held


class _ExitWatch:
    """Lives in the thread's local storage, which Python clears when the thread ends: a thread that
    ends while still holding traced locks is reported (``thread.died_holding``) at that moment."""

    __slots__ = ("held",)

    def __init__(self, held: Held) -> None:
        self.held = held

    def __del__(self) -> None:
        held = self.held
        if not held or _thread.get_ident() != held.ident:
            return
        try:
            from tracedthreading import _events

            names = [_name_of_key(key) for key in list(held)]
            _events.emit(_events.THREAD_DIED_HOLDING, "error", {
                "lock": names[-1], "kind": "lock", "thread": thread_name(held.ident), "thread_id": held.ident,
                "held": names,
            })
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


def _name_of_key(key: int) -> str:
    from tracedthreading import _stats

    ref = _stats._live.get(key)
    lock = ref() if ref is not None else None
    return lock.trace_name if lock is not None else f"<dead lock {key}>"


def all_held() -> dict[int, Held]:
    """A copy of every known thread's :class:`Held`, by thread id."""
    with _all_lock:
        return dict(_all.items())


def suspend() -> Held | None:
    """Give the calling thread an empty held stack (while logging); returns what :func:`resume` restores."""
    saved = getattr(tls, "held", None)
    tls.held = Held(_thread.get_ident())
    return saved


def resume(saved: Held | None) -> None:
    """Restore the held stack that :func:`suspend` put aside."""
    if saved is None:
        try:
            del tls.held
        except AttributeError:
            pass
    else:
        tls.held = saved


def thread_name(ident: int) -> str:
    """The name of thread ``ident`` without creating a ``_DummyThread`` (which would take locks)."""
    thread = _std._active.get(ident) or _std._limbo.get(ident)  # type: ignore[attr-defined]
    if thread is not None:
        try:
            return str(thread.name)
        except Exception:  # noqa: BLE001 - a half-built Thread
            pass
    if ident == _main_ident:
        return "MainThread"
    held = _all.get(ident)
    if held is not None and held.name:
        return held.name
    return f"Thread-{ident}"


def thread_stack(ident: int, depth: int) -> list[str]:
    """The current stack of another thread (``sys._current_frames``), innermost last, as ``file:line in func``."""
    frame = sys._current_frames().get(ident)
    return format_frames(frame, depth)


def format_frames(frame: Any, depth: int) -> list[str]:
    """Walk ``frame`` outwards for at most ``depth`` frames, skipping tracedthreading's own."""
    lines: list[str] = []
    while frame is not None and len(lines) < depth:
        code = frame.f_code
        if not _is_internal(code.co_filename):
            lines.append(f"{code.co_filename}:{frame.f_lineno} in {code.co_name}")
        frame = frame.f_back
    lines.reverse()
    return lines


def caller_stack(depth: int, skip: int = 1) -> list[str]:
    """The calling thread's stack without tracedthreading frames, innermost last."""
    return format_frames(sys._getframe(skip), depth)


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
_THREADING_FILE = os.path.abspath(_std.__file__)


def _is_internal(filename: str) -> bool:
    """tracedthreading's own frames and threading.py's (thread bootstrap) are left out of stacks."""
    return filename.startswith(_PACKAGE_DIR) or filename == _THREADING_FILE


_main_ident = _thread.get_ident()


def _after_fork_in_child() -> None:
    """Only the forking thread survives a fork: keep its stack, forget the others."""
    global _main_ident, _all_lock
    _all_lock = _thread.RLock()
    ident = _thread.get_ident()
    held = getattr(tls, "held", None)
    _all.clear()
    if held is not None:
        held.ident = ident
        held.waiting = None
        _all[ident] = held
    _main_ident = ident


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
