"""Per-thread tracer state: the stack of held traced locks, and what the thread is blocked on.

Each thread's held stack is a plain ``list`` of lock keys, outermost first (pushing and popping cost one
C call), and locks point at their holder's stack (``lock._holder``). The rest of what the tracer knows of
a thread (its id, its name, the primitive it is blocked on) is its :class:`Held` record, found from the
stack with :func:`record_of`: only slow paths need it.

Why not a list subclass carrying those fields: an empty list that grows to one item and back
reallocates its storage both ways, a tenth of an uncontended ``with``. On CPython 3.10 and 3.11 a list
made by ``[0]`` has room for exactly one item and keeps it when popped empty; only the list literal
makes one, so the stack is a plain list. (3.12+ frees the storage of any list popped empty, so there
the stack reallocates like any list, and :func:`renew_if_shrunk` never finds one to renew.)
"""

from __future__ import annotations

import _thread
import os
import sys
import threading as _std
import weakref
from typing import Any

__all__ = ["Held", "Stack", "current", "ident_of", "record_of", "renew_if_shrunk", "thread_name"]

Stack = list  # a thread's held lock keys, outermost first (see the module docstring)


class Held:
    """What the tracer knows of one thread: its id and name, its held stack, what it is blocked on."""

    # Invariant on ``stack``: only the owning thread appends; any thread may remove a key it releases
    # (Lock allows release by another thread), which list operations do atomically under the GIL.
    __slots__ = ("__weakref__", "ident", "name", "stack", "waiting")

    def __init__(self, ident: int, stack: list[int]) -> None:
        self.ident = ident
        self.name = ""  # the thread's name when first seen: outlives threading's registry entry
        self.stack = stack
        self.waiting: Any = None  # the traced primitive this thread is blocked on, if any

    def __repr__(self) -> str:
        return f"<Held thread={self.ident} keys={list(self.stack)!r}>"


def new_stack() -> list[int]:
    """An empty held stack that pushes and pops one key without reallocating (see the docstring)."""
    stack = [0]
    stack.pop()
    return stack


def renew_if_shrunk(stack: list[int]) -> None:
    """Give the calling thread a fresh stack if ``stack`` is its current one, empty, and has lost its
    room for one key (a stack that grew past one key and shrank back reallocates down to nothing).

    Called now and then on a release (with a hold sample, from ``_sample`` inside ``release`` or
    ``__exit__``): only an empty stack is swapped, and no lock points at an empty stack; a stack put
    aside while tracedthreading logs is left alone. Nor is the stack swapped while any tracedthreading
    call is in progress further down this thread (an acquire or a wait interrupted by a signal handler
    or by a ``__del__`` that is doing this release): it holds the stack in a local and will push on it.
    """
    if stack or sys.getsizeof(stack) == _EMPTY_SIZE:
        return
    record = _records.get(id(stack))
    if record is None or record.stack is not stack or getattr(tls, "held", None) is not stack:
        return
    try:
        frame = sys._getframe(3)  # the caller of release/__exit__ (this, _sample, release are above it)
    except ValueError:  # called from shallower code (tests): nothing below it
        frame = None
    while frame is not None:
        if frame.f_code.co_filename in _STACK_HOLDERS:
            return
        frame = frame.f_back
    fresh = new_stack()
    record.stack = fresh
    _records[id(fresh)] = record
    tls.held = fresh
    _records.pop(id(stack), None)


_EMPTY_SIZE = sys.getsizeof(new_stack())
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
# The modules whose functions keep a thread's held stack in a local while they run.
_STACK_HOLDERS = frozenset(
    os.path.join(_PACKAGE_DIR, name)
    for name in ("_deadlock.py", "_events.py", "_lockorder.py", "_primitives.py", "_sync.py", "_threads.py",
                 "_trace.py")
)
tls = _thread._local()
# Every live thread's record, for deadlock reports and fork handling (weak: a finished thread's goes).
_all: weakref.WeakValueDictionary[int, Held] = weakref.WeakValueDictionary()
_all_lock = _thread.RLock()
# Record of each registered stack, by id(stack). A record holds its stack, so an id is never reused
# while its entry exists; entries go when their thread ends with nothing held (see _ExitWatch).
_records: dict[int, Held] = {}


def current() -> list[int]:
    """The calling thread's held stack, created on first use."""
    try:
        return tls.held  # type: ignore[no-any-return]
    except AttributeError:
        return _new()


def record_of(stack: list[int] | None) -> Held | None:
    """The :class:`Held` record of the thread owning ``stack`` (None for an unknown stack)."""
    return None if stack is None else _records.get(id(stack))


def ident_of(stack: list[int] | None) -> int | None:
    """The id of the thread owning ``stack`` (None for no stack or an unknown one)."""
    record = record_of(stack)
    return None if record is None else record.ident


def _registered(ident: int) -> Held:
    """A new record, with a new empty stack, for thread ``ident``; registered under its stack."""
    record = Held(ident, new_stack())
    record.name = thread_name(ident)
    _records[id(record.stack)] = record
    return record


def _new() -> list[int]:
    ident = _thread.get_ident()
    record = _registered(ident)
    stack = tls.held = record.stack
    tls.exit_watch = _ExitWatch(record)
    with _all_lock:
        _all[ident] = record
    return stack


class _ExitWatch:
    """Lives in the thread's local storage, which Python clears when the thread ends: a thread that
    ends while still holding traced locks is reported (``thread.died_holding``) at that moment, and a
    thread that ends holding nothing gives up its stack's record."""

    __slots__ = ("record",)

    def __init__(self, record: Held) -> None:
        self.record = record

    def __del__(self) -> None:
        record = self.record
        stack = record.stack
        if not stack:
            try:
                _records.pop(id(stack), None)  # no lock points at an empty stack
            except Exception:  # noqa: BLE001 - interpreter shutdown (module globals cleared)
                pass
            return
        if _thread.get_ident() != record.ident:
            return
        try:
            from tracedthreading import _events

            names = [_name_of_key(key) for key in list(stack)]
            _events.emit(_events.THREAD_DIED_HOLDING, "error", {
                "lock": names[-1], "kind": "lock", "thread": thread_name(record.ident),
                "thread_id": record.ident, "held": names,
            })
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


def _name_of_key(key: int) -> str:
    from tracedthreading import _stats

    ref = _stats._live.get(key)
    lock = ref() if ref is not None else None
    return lock.trace_name if lock is not None else f"<dead lock {key}>"


def all_held() -> dict[int, Held]:
    """A copy of every known thread's :class:`Held` record, by thread id."""
    with _all_lock:
        return dict(_all.items())


def suspend() -> list[int] | None:
    """Give the calling thread an empty held stack (while logging); returns what :func:`resume` restores."""
    saved = getattr(tls, "held", None)
    tls.held = _registered(_thread.get_ident()).stack
    return saved


def resume(saved: list[int] | None) -> None:
    """Restore the held stack that :func:`suspend` put aside."""
    temporary = getattr(tls, "held", None)
    if temporary is not None and not temporary:
        _records.pop(id(temporary), None)  # (a lock still held on it keeps its record, and the stack)
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
    stack = getattr(tls, "held", None)
    _all.clear()
    if stack is not None:
        record = _records.get(id(stack))
        if record is None:
            record = _records[id(stack)] = Held(ident, stack)
        record.ident = ident
        record.waiting = None
        _all[ident] = record
    _main_ident = ident


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
