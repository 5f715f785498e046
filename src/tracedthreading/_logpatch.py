"""logging's own locks under the patch: a traced module lock, and handler locks named after their handler.

``logging._lock`` is made when ``logging`` is imported, which is nearly always before the patch (wrapt,
pytest and the runner import it), so it would stay raw and every inversion through it (a handler whose
``emit`` calls ``logging.getLogger``, against ``dictConfig``/``shutdown`` taking the module lock, then the
handlers' locks) would go unseen. CPython 3.10-3.13 read the global at call time everywhere
(``_acquireLock``/``_releaseLock`` on 3.10-3.12, ``with _lock:`` on 3.13, the at-fork handlers
``_acquireLock``/``_prepareFork``, ``_after_at_fork_child_reinit_locks``, ``_releaseLock``/``_afterFork``),
so :func:`swap_in` replaces it by a traced RLock named ``logging._lock`` (whose ``_at_fork_reinit`` the
at-fork handler then calls), and :func:`swap_out` puts the original back.

A swap is done while holding the lock being replaced (so no thread is inside logging's critical
sections), by a thread not already inside them, and only when no other thread waits in a function that
takes the lock through the global and gives it back through the global later (``_acquireLock``,
``_prepareFork``): such a thread would release a lock it does not hold. It is retried for at most
:data:`SWAP_TIMEOUT` seconds; a swap not done is named in ``patch.missed`` (``logging._lock``).

Handler locks (``Handler.createLock``) are named ``<module>.<Class>`` of their handler, plus ``'name'``
when the handler has a name; a name given later (``handler.name = ...``, as ``dictConfig`` does) renames
the lock if it has not been taken yet: under the patch ``Handler.name``/``Handler.set_name`` are wrapped.
"""

from __future__ import annotations

import _thread
import contextlib
import sys
import time
import types
from typing import Any

from tracedthreading import _lockcore, _lockorder, _primitives, _stats

__all__ = ["HANDLER", "MODULE_LOCK", "MODULE_LOCK_NAME", "SWAP_TIMEOUT", "handler_lock_name", "quieted", "site_name", "swap_in", "swap_out"]

#: The name of the traced ``logging._lock``.
MODULE_LOCK_NAME = "logging._lock"
#: Seconds :func:`swap_in`/:func:`swap_out` try to find logging's lock free of waiters.
SWAP_TIMEOUT = 1.0
#: The site name of ``Handler.createLock``: each lock made there is named after its handler instead.
HANDLER: Any = object()
#: The site name of logging's module lock, made under the patch: named MODULE_LOCK_NAME, quiet (see :func:`quieted`).
MODULE_LOCK: Any = object()
_NO_CAP = 9e9  # seconds: a lock's cap no hold reaches
_STACK_MAX = 64  # frames of a thread's stack looked at for a pending take of logging's lock

_Traced = _primitives._Traced
_lock = _thread.allocate_lock()  # raw: one swap at a time
# (logging module, original module lock, traced module lock) while the traced one is in place.
_swapped: list[tuple[types.ModuleType, Any, Any]] = []
# (logging.Handler, original ``name`` property, original ``set_name``) while the wrappers are in place.
_renaming: list[tuple[type, Any, Any]] = []


def site_name(module: str, frame: Any) -> Any:
    """The name for a primitive made in ``logging`` at ``frame``: the module lock's, :data:`HANDLER`, or None."""
    if module != "logging":
        return None
    code = frame.f_code.co_name
    if code == "createLock":
        return HANDLER
    if code == "<module>":  # the only lock logging makes at import is its module lock
        return MODULE_LOCK
    return None


def quieted(lock: Any) -> Any:
    """``lock`` (logging's module lock), its own events silenced (see ``_lockcore.quiet``)."""
    if isinstance(lock, _Traced):
        _lockcore.quiet.add(lock)
    return lock


def _describe(handler: Any) -> str:
    cls = type(handler)
    text = f"{cls.__module__}.{cls.__qualname__}"
    name = getattr(handler, "_name", None)  # what Handler.name reads, without calling a property
    return f"{text} {name!r}" if name else text


def handler_lock_name(frame: Any) -> str:
    """The name of the lock ``Handler.createLock`` (running in ``frame``) is making: its handler's."""
    try:
        return _describe(frame.f_locals["self"])
    except Exception:  # noqa: BLE001 - a handler we cannot describe gets the site name
        return f"logging:{frame.f_lineno}"


# -- the module lock ---------------------------------------------------------------------------------


def _owned(lock: Any) -> bool:
    is_owned = getattr(lock, "_is_owned", None)
    return bool(is_owned()) if is_owned is not None else False


def _waiting(codes: set[Any], me: int) -> bool:
    """Whether a thread other than ``me`` is running (blocked) in one of the functions ``codes``.

    The whole stack is looked at (bounded): a lock written in Python (the pure-Python traced RLock) puts
    its own frames above ``_acquireLock``.
    """
    for ident, frame in sys._current_frames().items():
        depth = 0
        while frame is not None and ident != me and depth < _STACK_MAX:
            if frame.f_code in codes:
                return True
            frame = frame.f_back
            depth += 1
    return False


def _replace(logging: types.ModuleType, old: Any, new: Any, *, silent: bool = False) -> bool:
    """Make ``logging._lock`` ``new`` instead of ``old``, safely (see the module docstring); False if not done."""
    if _owned(old):  # this thread is inside logging's lock: its own release would reach the new lock
        return False
    codes = {func.__code__ for func in (getattr(logging, "_acquireLock", None), getattr(logging, "_prepareFork", None))
             if isinstance(func, types.FunctionType)}
    me = _thread.get_ident()
    deadline = time.monotonic() + SWAP_TIMEOUT
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not old.acquire(timeout=remaining):
            return False
        try:
            if getattr(logging, "_lock", None) is not old:  # replaced meanwhile by someone else
                return False
            if not _waiting(codes, me):
                logging._lock = new  # type: ignore[attr-defined]
                if silent:  # ``old`` is a traced lock nobody else took: its release below reaches no slow
                    old._cap = _NO_CAP  # path (no timeline slice, no held_long, no hold maximum)
                return True
        finally:
            old.release()
        time.sleep(0.001)  # a thread waits to take the old lock through the global: let it finish


def swap_in(make_rlock: Any) -> list[str]:
    """Trace logging's module lock and name handler locks after their handler; return what was missed.

    ``make_rlock``: the RLock factory in effect (``configure(enabled=False)`` makes it raw: no swap then).
    """
    logging = sys.modules.get("logging")
    if not isinstance(logging, types.ModuleType):
        return []  # imported later, under the patch: its module lock is traced from the start
    missed: list[str] = []
    with _lock:
        _wrap_set_name(logging)
        original = getattr(logging, "_lock", None)
        if original is None or isinstance(original, _Traced) or _swapped:
            return missed
        traced = make_rlock(name=MODULE_LOCK_NAME)
        if not isinstance(traced, _Traced):
            return missed
        quieted(traced)  # its own events would be logged while holding it: see _lockcore.quiet
        if _replace(logging, original, traced):
            _swapped.append((logging, original, traced))
        else:
            missed.append(MODULE_LOCK_NAME)
    return missed


def swap_out() -> None:
    """Put back the original module lock and ``Handler.name``/``set_name`` (what :func:`swap_in` replaced).

    A module lock that cannot be swapped back safely in :data:`SWAP_TIMEOUT` (this thread is inside it,
    or others keep waiting on it) stays the traced one, which works as logging's lock; the next
    :func:`swap_out` tries again.
    """
    with _lock:
        if _renaming:
            handler, name_property, set_name = _renaming.pop()
            if getattr(handler.__dict__.get("set_name"), "_tt_wraps", None) is set_name:
                handler.set_name = set_name  # type: ignore[attr-defined]
                handler.name = name_property  # type: ignore[attr-defined]
        if _swapped:
            logging, original, traced = _swapped[0]
            unused = traced._ns is None  # nobody took it: the take below must leave no trace either
            ident = (MODULE_LOCK_NAME, None, 0, traced._kind)
            new_name = unused and ident not in _stats._name_stats
            if getattr(logging, "_lock", None) is not traced or _replace(logging, traced, original, silent=unused):
                _swapped.clear()
                if unused:
                    _forget_own_take(traced, ident if new_name else None)


def _forget_own_take(traced: Any, ident: Any) -> None:
    """Undo what :func:`swap_out`'s own take of a lock nobody else took recorded: no statistics row, no
    order-graph node (a program that never logs does not see ``logging._lock`` in its summary).
    ``ident``: the name's shared statistics made by that take, to drop (None: they existed before)."""
    with contextlib.suppress(Exception):
        key = traced._key
        traced._tt_reset()
        traced._ns = None  # never activated, as far as the statistics go: nothing is folded when it dies
        if key is not None:
            _stats._live.pop(key, None)
            _lockorder.forget(key)
        if ident is not None:
            with _stats.lock:
                _stats._name_stats.pop(ident, None)
            _stats.names_changed()


# -- handler names -----------------------------------------------------------------------------------


def _wrap_set_name(logging: types.ModuleType) -> None:
    """Under the patch, naming a handler also names its lock (if the lock has not been taken yet)."""
    handler = getattr(logging, "Handler", None)
    if _renaming or not isinstance(handler, type):
        return
    name_property = handler.__dict__.get("name")
    set_name = handler.__dict__.get("set_name")
    if not isinstance(name_property, property) or not isinstance(set_name, types.FunctionType):
        return

    def naming_set_name(self: Any, name: Any) -> None:
        lock = getattr(self, "lock", None)
        before = _describe(self) if isinstance(lock, _Traced) else None
        set_name(self, name)
        if before is not None:
            with contextlib.suppress(Exception):  # naming is a courtesy: it never breaks logging
                if lock._ns is None and lock.trace_name == before:  # type: ignore[union-attr]
                    lock._set_name(_describe(self))  # type: ignore[union-attr]

    naming_set_name.__name__ = naming_set_name.__qualname__ = set_name.__name__
    naming_set_name.__doc__ = set_name.__doc__
    naming_set_name._tt_wraps = set_name  # type: ignore[attr-defined]
    _renaming.append((handler, name_property, set_name))
    handler.set_name = naming_set_name  # type: ignore[attr-defined]
    handler.name = property(name_property.fget, naming_set_name, name_property.fdel, name_property.__doc__)  # type: ignore[attr-defined]
