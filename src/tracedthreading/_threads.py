"""Per-thread tracer state: the stack of held traced locks, and what the thread is blocked on.

Each thread has one held stack for its whole life: a plain ``list`` of lock keys, outermost first
(pushing and popping cost one C call). The C locks find it in the thread state's dict, the pure-Python
locks in :data:`tls` (``tls.me``, with the thread's token, see :data:`NOBODY`), mostly through the copy
a lock keeps of its last taker's; all hold the same list, made by :func:`current`. A lock remembers its
holder's stack, so "does this thread hold it" is an identity test. The rest of what the tracer knows of a thread
(its id, its name, the lock it is blocked on) is its :class:`Held` record, found from the stack with
:func:`record_of`: only slow paths need it.

While tracedthreading logs, the thread's stack carries :data:`BARRIER` on top (:func:`enter_logging`):
locks taken by logging handlers then form no lock-order edges with the locks the program holds, and a
handler that would wait for a lock this same thread holds below the barrier is detected.
"""

from __future__ import annotations

import _thread
import os
import sys
import threading as _std
import weakref
from collections.abc import Callable
from typing import Any

__all__ = [
    "BARRIER",
    "Held",
    "Stack",
    "all_held",
    "current",
    "enter_logging",
    "ident_of",
    "leave_logging",
    "record_of",
    "thread_name",
    "visible",
]

Stack = list  # a thread's held lock keys, outermost first (see the module docstring)

#: Pushed on a thread's held stack while tracedthreading logs; keys below it are not "held" for the
#: lock-order graph. Lock keys start at 1, so 0 is never a key.
BARRIER = 0


class Held:
    """What the tracer knows of one thread: its id and name, its held stack, what it is blocked on."""

    # Invariant on ``stack``: only the owning thread appends; any thread may remove a key it releases
    # (Lock allows release by another thread), with one list call, atomic under the GIL.
    __slots__ = ("__weakref__", "ident", "name", "stack", "token", "waiting")

    def __init__(self, ident: int, stack: list[int], token: Any = None) -> None:
        self.ident = ident
        self.name = ""  # the thread's name when first seen: outlives threading's registry entry
        self.stack = stack
        self.token = token  # the thread's token (see :data:`NOBODY`), taken by the thread while it lives
        self.waiting: int | None = None  # the key of the traced primitive this thread is blocked on

    def __repr__(self) -> str:
        return f"<Held thread={self.ident} keys={list(self.stack)!r}>"


tls = _thread._local()
#: ``here.__dict__`` is the calling thread's own (empty) dict: an identity test without a call (Python
#: checks for signals after calls), for a pure RLock's ownership tests (its release, ``_is_owned``). Kept apart from :data:`tls`, whose dict
#: holds the thread's exit watch, so that a lock remembering a dead thread's dict keeps nothing alive.
here = _thread._local()
#: A thread's ``(token, held stack, here.__dict__)``, in ``tls.me``. The token is a stdlib
#: ``_thread.RLock`` the thread takes when its stack is made and gives back when it ends (a fork's child
#: frees every other thread's), so ``token._is_owned()`` is a cheap, allocation-free "is this that
#: thread?". The pure-Python locks cache the triple of the thread that took them last (one tuple: read
#: and written atomically). :data:`NOBODY` is no thread's, ever.
NOBODY: tuple[Any, list[int], dict[str, Any]] = (_thread.RLock(), [], {})
# Every live thread's record, for deadlock reports and fork handling (weak: a finished thread's goes).
_all: weakref.WeakValueDictionary[int, Held] = weakref.WeakValueDictionary()
_all_lock = _thread.RLock()
_all_refs = _all.data  # ident -> weak reference to the record: read on every contended acquire
# Record of each registered stack, by id(stack). A record holds its stack, so an id is never reused
# while its entry exists; entries go when their thread ends with nothing held (see _ExitWatch).
_records: dict[int, Held] = {}
#: Called with the record of a thread that ends while holding traced locks (set by the lock core).
on_died_holding: Callable[[Held, list[int]], None] | None = None


def current() -> list[int]:
    """The calling thread's held stack, created on first use."""
    try:
        return tls.held  # type: ignore[no-any-return]
    except AttributeError:
        return _new()


def me() -> tuple[Any, list[int], dict[str, Any]]:
    """The calling thread's ``(token, held stack, here.__dict__)`` (see :data:`NOBODY`), made on first use."""
    try:
        return tls.me  # type: ignore[no-any-return]
    except AttributeError:
        _new()
        return tls.me  # type: ignore[no-any-return]


def _new() -> list[int]:
    ident = _thread.get_ident()
    stack: list[int] = []
    token = _thread.RLock()
    token.acquire()
    record = Held(ident, stack, token)
    record.name = thread_name(ident)
    _records[id(stack)] = record
    tls.held = stack
    tls.me = (token, stack, here.__dict__)
    tls.exit_watch = _ExitWatch(record)
    with _all_lock:
        _all[ident] = record
    return stack


def record_of(stack: list[int] | None) -> Held | None:
    """The :class:`Held` record of the thread owning ``stack`` (None for an unknown stack)."""
    return None if stack is None else _records.get(id(stack))


def ident_of(stack: list[int] | None) -> int | None:
    """The id of the thread owning ``stack`` (None for no stack or an unknown one)."""
    record = record_of(stack)
    return None if record is None else record.ident


def visible(stack: list[int]) -> list[int]:
    """The keys of ``stack`` the lock-order graph sees: those above its last :data:`BARRIER`."""
    keys = list(stack)  # one C call: a snapshot even if another thread removes a key meanwhile
    if BARRIER in keys:
        keys = keys[len(keys) - keys[::-1].index(BARRIER):]
    return keys


def holding(stack: list[int]) -> list[int]:
    """Every key held on ``stack``, barriers left out (what a report says the thread holds)."""
    return [key for key in list(stack) if key != BARRIER]


def enter_logging() -> tuple[list[int], int | None]:
    """Put a :data:`BARRIER` on the calling thread's stack (tracedthreading is about to log). A thread
    that logs is not blocked on anything (an event may be emitted just before a wait): the lock it is
    about to wait for is hidden until :func:`leave_logging`. Returns what ``leave_logging`` needs."""
    stack = current()
    stack.append(BARRIER)
    record = _records.get(id(stack))
    waiting = None
    if record is not None:
        waiting, record.waiting = record.waiting, None
    return stack, waiting


def leave_logging(saved: tuple[list[int], int | None]) -> None:
    """Undo :func:`enter_logging`: its barrier off the stack (the topmost one), the wait shown again."""
    stack, waiting = saved
    if waiting is not None:
        record = _records.get(id(stack))
        if record is not None:
            record.waiting = waiting
    if stack and stack[-1] == BARRIER:
        stack.pop()
        return
    keys = list(stack)
    if BARRIER in keys:  # a handler left a lock held (or released one of ours): remove ours anyway
        index = len(keys) - 1 - keys[::-1].index(BARRIER)
        try:
            del stack[index]
        except IndexError:
            pass


class _ExitWatch:
    """Lives in the thread's local storage, which Python clears when the thread ends: a thread that
    ends while still holding traced locks is reported (``thread.died_holding``) at that moment, and a
    thread that ends holding nothing gives up its stack's record."""

    __slots__ = ("record",)

    def __init__(self, record: Held) -> None:
        self.record = record

    # Also run while the interpreter finalizes: the main thread's watch as its thread state is cleared,
    # a daemon thread's from the main thread, when module globals may already be None and builtins
    # gone. So what it needs is bound now (defaults), and it catches everything with a bound name.
    def __del__(self, _holding: Any = holding, _records: Any = _records, _get_ident: Any = _thread.get_ident,
                _sys: Any = sys, _ignored: Any = BaseException) -> None:
        try:
            record = self.record
            token = record.token
            try:
                token.release()  # first: this thread's id may be reused once it has ended
            except _ignored:  # run by another thread (a fork's child, finalization): the owner is gone
                try:
                    token._at_fork_reinit()
                except _ignored:  # noqa: S110 - no token (a record made by hand)
                    pass
            stack = record.stack
            keys = _holding(stack)
            if not keys:
                _records.pop(id(stack), None)  # no lock points at a stack that holds nothing
                return
            report = on_died_holding  # None once finalization cleared this module
            if report is not None and _get_ident() == record.ident and not _sys.is_finalizing():
                report(record, keys)  # a thread ending, not the interpreter stopping its threads
        except _ignored:  # noqa: S110 - a destructor: nothing to raise to
            pass


def all_held() -> dict[int, Held]:
    """A copy of every known thread's :class:`Held` record, by thread id."""
    with _all_lock:
        return dict(_all.items())


def record_of_thread(ident: int) -> Held | None:
    """The record of live thread ``ident``, if it ever used a traced lock (no lock taken: reading a weak
    dictionary's entry is safe beside writers under the GIL)."""
    ref = _all_refs.get(ident)
    return None if ref is None else ref()


def thread_name(ident: int) -> str:
    """The name of thread ``ident`` without creating a ``_DummyThread`` (which would take locks)."""
    thread = _active.get(ident) or _limbo.get(ident)
    if thread is not None:
        name = getattr(thread, "_name", None)  # Thread.name without the property call
        if name is None:
            try:
                name = thread.name
            except Exception:  # noqa: BLE001 - a half-built Thread
                name = None
        if name is not None:
            return str(name)
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


def user_frames(frame: Any, depth: int) -> list[tuple[Any, int]]:
    """(code, line) of the first ``depth`` frames from ``frame`` outwards that are not tools' (see
    :func:`is_tool_frame`), innermost first."""
    path: list[tuple[Any, int]] = []
    while frame is not None and len(path) < depth:
        if not is_tool_frame(frame):
            path.append((frame.f_code, frame.f_lineno))
        frame = frame.f_back
    return path


def format_path(path: list[tuple[Any, int]]) -> list[str]:
    """``file:line in function`` lines of a :func:`user_frames` path, innermost last."""
    return [f"{code.co_filename}:{line} in {code.co_name}" for code, line in reversed(path)]


def format_frames(frame: Any, depth: int) -> list[str]:
    """Walk ``frame`` outwards and keep at most ``depth`` user frames (no tracedthreading, pytest, runpy...)."""
    return format_path(user_frames(frame, depth))


def caller_stack(depth: int, skip: int = 1) -> list[str]:
    """The calling thread's stack without tracedthreading frames, innermost last."""
    return format_frames(sys._getframe(skip), depth)


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
_THREADING_FILE = os.path.abspath(_std.__file__)


def is_internal(filename: str) -> bool:
    """tracedthreading's own frames and threading.py's (thread bootstrap) are left out of stacks."""
    return filename.startswith(_PACKAGE_DIR) or filename == _THREADING_FILE


# Top-level packages whose frames are tools around the user's code, never the user's: pytest's machinery,
# the runner's runpy, thread bootstrap, tracedthreading itself. A stack of them says nothing about the bug.
_TOOL_PACKAGES = frozenset({"_pytest", "pytest", "pluggy", "runpy", "threading", "tracedthreading"})


_tool_files: dict[str, bool] = {}  # co_filename -> in a tool package's directory (a cache, bounded)
_TOOL_FILES_MAX = 4096


def is_tool_frame(frame: Any) -> bool:
    """True for frames of the packages in ``_TOOL_PACKAGES``: by module name, or for a tool's
    ``__main__.py`` run as ``__main__`` (``python -m pytest``), by the directory it is in."""
    name = frame.f_globals.get("__name__")
    if isinstance(name, str) and name.partition(".")[0] in _TOOL_PACKAGES:
        return True
    filename = frame.f_code.co_filename
    tool = _tool_files.get(filename)
    if tool is None:
        if len(_tool_files) >= _TOOL_FILES_MAX:
            _tool_files.clear()
        parts = filename.replace("\\", "/").split("/")
        # Only the package's own __main__.py: a user's file is never hidden for where its project lives.
        tool = is_internal(filename) or (parts[-1] == "__main__.py" and len(parts) > 1 and parts[-2] in _TOOL_PACKAGES)
        _tool_files[filename] = tool
    return tool


_main_ident = _thread.get_ident()
_active = _std._active  # type: ignore[attr-defined]
_limbo = _std._limbo  # type: ignore[attr-defined]


def _after_fork_in_child() -> None:
    """Only the forking thread survives a fork: keep its stack, forget the others."""
    global _main_ident, _all_lock
    _all_lock = _thread.RLock()
    ident = _thread.get_ident()
    stack = getattr(tls, "held", None)
    _all.clear()
    for record in list(_records.values()):  # every other thread is gone: its id may be reused now
        if record.stack is not stack and record.token is not None:
            record.token._at_fork_reinit()
    if stack is not None:
        record = _records.get(id(stack))
        if record is None:
            record = _records[id(stack)] = Held(ident, stack, getattr(tls, "me", (None,))[0])
        record.ident = ident
        record.waiting = None
        _all[ident] = record
    _main_ident = ident


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
