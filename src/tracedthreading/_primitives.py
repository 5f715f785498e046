"""``Lock`` and ``RLock``: the traced ownership locks, built on a real ``_thread`` lock.

Where a call goes, in one hop: ``acquire``/``release``/``__enter__``/``__exit__`` are the hot path,
implemented twice with the same behaviour: in C (``_speedups.c``, ``tracedthreading._speedups``) when
the extension is built, else in pure Python (:mod:`tracedthreading._pylock`, which also documents the
design). Both call the same slow paths (:mod:`tracedthreading._lockcore`) for anything rare. This module
adds what both share and is not hot (names, repr, statistics, pickling refusal) and picks one:
:data:`Lock` and :data:`RLock` are the C classes unless the extension is missing or
``TRACEDTHREADING_PURE_PYTHON`` is set (see :mod:`tracedthreading._cext`). The classes of the other
implementation stay importable here (``PyLock``/``PyRLock``, ``CLock``/``CRLock``) for tests.

A lock's type never changes after it is made; subclasses of the public classes work as usual.

The tracer protocol (what the trackers and the statistics may ask a live primitive, by key, through the
registry): ``trace_name``, ``site``, ``_kind``, ``_tt_counters()``, ``_tt_reset()``, ``_tt_owner()``.
"""

from __future__ import annotations

import _thread
import sys
from typing import Any

from tracedthreading import _cext, _lockcore, _lockorder, _pylock, _stats, _threads

__all__ = ["Lock", "RLock"]

_getframe = sys._getframe


def site_of(frame: Any) -> tuple[str, int]:
    """``(module, line)`` of a creation frame: the default name of a primitive is ``module:line``."""
    return frame.f_globals.get("__name__", "?"), frame.f_lineno


class _Traced:
    """What every traced primitive shares: a name (explicit or its creation site), a site, a kind."""

    __slots__ = ()
    _kind = "primitive"
    _module: str | None
    _line: int
    _tname: str | None

    def _init_identity(self, name: str | None, depth: int) -> None:
        """The name, or the creation site ``depth`` frames up; key and registry come with first use."""
        if name is None:
            frame = _getframe(depth + 1)
            self._module = frame.f_globals.get("__name__", "?")
            self._line = frame.f_lineno
            self._tname = None
        else:
            self._set_name(name)

    def _set_name(self, name: Any) -> None:
        self._tname = _lockcore.checked_name(name)
        self._module = None
        self._line = 0

    @property
    def trace_name(self) -> str:
        """The explicit ``name=``, or ``module:line`` of the line that created this primitive."""
        name = self._tname
        if name is None:
            name = self._tname = f"{self._module}:{self._line}"
        return name

    @property
    def site(self) -> str:
        """Where this primitive was created (``module:line``), or its name when it was given one."""
        if self._module is None:
            return self.trace_name
        return f"{self._module}:{self._line}"


class _LockAPI(_Traced):
    """The cold half of Lock and RLock, the same over either hot path."""

    __slots__ = ()
    name = _Traced.trace_name

    def __reduce_ex__(self, protocol: Any) -> Any:
        # A lock's state cannot be copied (a copy would be a second lock, or share the real one): like
        # the stdlib's, copy.copy, copy.deepcopy and pickle refuse it.
        msg = f"cannot pickle {type(self).__module__}.{type(self).__qualname__!r} object"
        raise TypeError(msg)

    def __repr__(self) -> str:
        state = "locked" if self.locked() else "unlocked"  # type: ignore[attr-defined]
        cls = type(self)
        if self._kind == "rlock":
            count = self._recursion_count_any()
            owner = self._tt_owner() if count else 0  # type: ignore[attr-defined]
            return (f"<{state} {cls.__module__}.{cls.__qualname__} object owner={owner or 0} count={count} "
                    f"name={self.trace_name!r} at {id(self):#x}>")
        return f"<{state} {cls.__module__}.{cls.__qualname__} object name={self.trace_name!r} at {id(self):#x}>"

    def _recursion_count_any(self) -> int:
        """The recursion level of an RLock whichever thread holds it (0 when free)."""
        return int(getattr(self, "_count", 0))

    def _tt_counters(self) -> _stats.Counters | None:
        """This lock's counters, or None while it has recorded nothing (never taken)."""
        rare = self._rare  # type: ignore[attr-defined]
        if self._ns is None and rare is None:  # type: ignore[attr-defined]
            return None
        completed, held, hold_ns, reentries = self._tt_totals()  # type: ignore[attr-defined]
        counters = _stats.Counters(self.trace_name, self._kind)
        if rare is not None:
            counters.add(rare)
        counters.acquisitions += completed + held
        counters.hold_total = hold_ns  # maximum and histogram: per name, see _stats.NameStats
        counters.reentries += reentries
        return counters


def _presented(cls: type, name: str) -> type:
    """Name an implementation class like the public one: repr() and errors read as the stdlib's do."""
    cls.__name__ = cls.__qualname__ = name
    cls.__module__ = "tracedthreading"
    return cls


def _add_aliases(cls: type, stdlib_type: type) -> type:
    """The stdlib lock's old aliases (``acquire_lock``...), where it has them: the very same methods of ``cls``.

    Set on the class after it is made: the ``with``/``acquire`` hot paths are not touched.
    """
    for alias, method in (("acquire_lock", "acquire"), ("release_lock", "release"), ("locked_lock", "locked")):
        if hasattr(stdlib_type, alias):
            setattr(cls, alias, getattr(cls, method))
    return cls


class PyLock(_pylock.Lock, _LockAPI):
    """A traced ``threading.Lock``: same behaviour, plus contention, hold-time and lock-order records."""

    __slots__ = ()


class PyRLock(_pylock.RLock, _LockAPI):
    """A traced ``threading.RLock``: re-entries are counted apart and never become order edges."""

    __slots__ = ()


_presented(PyLock, "Lock")
_presented(PyRLock, "RLock")
_add_aliases(PyLock, _thread.LockType)
_add_aliases(PyRLock, _thread.RLock)

CLock: type | None = None
CRLock: type | None = None
if _cext.speedups is not None:
    _cext.speedups._setup(_lockcore, _stats, _lockorder, _threads.current)

    class CLock(_cext.speedups.Lock, _LockAPI):  # type: ignore[no-redef,name-defined]
        """A traced ``threading.Lock``: same behaviour, plus contention, hold-time and lock-order records."""

        __slots__ = ()
        _kind = "lock"

    class CRLock(_cext.speedups.RLock, _LockAPI):  # type: ignore[no-redef,name-defined]
        """A traced ``threading.RLock``: re-entries are counted apart and never become order edges."""

        __slots__ = ()
        _kind = "rlock"

    _presented(CLock, "Lock")
    _presented(CRLock, "RLock")
    _add_aliases(CLock, _thread.LockType)
    _add_aliases(CRLock, _thread.RLock)
    _cext.speedups._fast_classes(CLock, CRLock)  # Lock(name=...) without a dict of keywords (see _speedups.c)
    Lock: type = CLock
    RLock: type = CRLock
else:
    Lock = PyLock
    RLock = PyRLock


def rlock_with_identity(tname: str | None, module: str | None, line: int) -> Any:
    """A new RLock with a given identity: a Condition's default lock shares its condition's name
    (every ``Future`` makes one: under the patch, always with a name)."""
    if module is None and tname is not None:
        return RLock(name=tname)
    lock = RLock(name="")
    lock._tname = tname
    lock._module = module
    lock._line = line
    return lock
