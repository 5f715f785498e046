"""Whole-process tracing: make ``threading.Lock()`` & co. return traced primitives, and undo it exactly.

:func:`patch` replaces the eight factories on the ``threading`` module (Lock, RLock, Condition,
Semaphore, BoundedSemaphore, Event, Barrier, Timer), and module globals elsewhere that are the very same
stdlib objects (``from threading import RLock`` bound before the patch: ``functools``, ``unittest.mock``,
``_threading_local``, ``tempfile``, ``_strptime``, ``multiprocessing.dummy``...). Each stand-in, called:

- from code inside ``threading`` itself (``Condition()``'s default RLock, ``Condition(Lock())`` inside
  Semaphore/Event/Barrier, the Events of every Thread) returns the raw stdlib object, so the stdlib's
  internals are never traced twice;
- otherwise calls ``tracedthreading.<Name>`` as it is *at call time* (``configure(enabled=False)`` swaps
  it for the raw factory) with ``name=`` defaulting to ``module:line`` of the code that called it.

The stand-ins: ``Lock`` and ``RLock`` (functions; ``Lock`` is an unsubclassable class on 3.13) become wrapt
``ObjectProxy`` proxies, transparent for ``__name__``, ``__doc__``, ``__wrapped__`` and signatures.
The classes become subclasses of the stdlib classes whose metaclass changes only construction: a proxy
would shadow ``__init__`` (``BoundedSemaphore.__init__`` calls ``Semaphore.__init__(self, value)``, as
do users' subclasses). A user's subclass made under the patch is built the stdlib way, untraced.

wrapt is imported by the first :func:`patch`, which also builds the stand-ins (once): ``import
tracedthreading`` alone does not pay for it (wrapt's package imports ``importlib.metadata``, ``email``,
``inspect``...). The import happens before the first patch is applied, so wrapt's own module-level locks
stay raw.

``isinstance``/``issubclass`` against a stand-in answer as against the original: true for the stdlib's
objects and for the traced ones (which subclass them). On 3.13, where ``threading.Lock`` is a class,
``isinstance(x, threading.Lock)`` is true for raw and traced Locks and false for a traced RLock (as for
a stdlib RLock); on 3.10-3.12 it raises the same ``TypeError`` as without the patch.

Locks created before :func:`patch` stay raw, except ``logging``'s module lock, swapped for a traced one
(see :mod:`tracedthreading._logpatch`); so do factories held where a module scan cannot reach (class
attributes, closures, default arguments): :func:`patch` names those it sees in a ``patch.missed`` event.
"""

from __future__ import annotations

import _thread
import contextlib
import sys
import threading
import types
from collections.abc import Iterator
from typing import Any

from tracedthreading import _cext, _events, _factories, _logpatch, _primitives

__all__ = ["is_patched", "patch", "patched", "unpatch"]

#: The factories :func:`patch` replaces, by the name they have on both ``threading`` and ``tracedthreading``.
NAMES = ("Barrier", "BoundedSemaphore", "Condition", "Event", "Lock", "RLock", "Semaphore", "Timer")

_THREADING_GLOBALS = threading.__dict__
# The stdlib objects, captured at import (before any patch): what unpatch() puts back.
_ORIGINALS: dict[str, Any] = {name: getattr(threading, name) for name in NAMES}
# Other objects that are, in effect, the same factories (bound by modules under other names).
_ALIASES: dict[int, tuple[str, Any]] = {
    id(_thread.allocate_lock): ("Lock", _thread.allocate_lock),
    id(_thread.RLock): ("RLock", _thread.RLock),
}
_SKIP_MODULES = ("_thread", "threading", "tracedthreading", "wrapt")
# The traced classes of both hot-path implementations, for isinstance() against a patched 3.13 Lock.
_TRACED_CLASSES: dict[str, tuple[type, ...]] = {
    "Lock": tuple(cls for cls in (_primitives.PyLock, _primitives.CLock) if cls is not None),
    "RLock": tuple(cls for cls in (_primitives.PyRLock, _primitives.CRLock) if cls is not None),
}

_getframe = sys._getframe
_lock = _thread.allocate_lock()  # raw: guards the patch state below
_active = False
# (module, attribute, original) of every module attribute patch() replaced, threading's first.
_applied: list[tuple[types.ModuleType, str, Any]] = []




def _dispatch(name: str, original: Any, frame: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Build the primitive for a call made from ``frame``: raw inside ``threading``, traced elsewhere."""
    caller_globals = frame.f_globals
    if caller_globals is _THREADING_GLOBALS or not _active:
        return original(*args, **kwargs)
    if "name" not in kwargs:
        site_name = _site_entry(frame)
        if site_name is _logpatch.HANDLER:  # Handler.createLock: named after the handler
            site_name = _logpatch.handler_lock_name(frame)
        elif site_name is _logpatch.MODULE_LOCK:  # logging imported under the patch: its module lock
            kwargs["name"] = _logpatch.MODULE_LOCK_NAME
            return _logpatch.quieted(_current[name](*args, **kwargs))
        kwargs["name"] = site_name
    return _current[name](*args, **kwargs)


# ``module:line`` names of creation sites (or logging's names, see _logpatch), shared: a Future made 50,000 times at one line gets one
# string, not 50,000 equal ones (bounded: cleared when full; an entry is only a cache).
_site_names: dict[tuple[str, int], Any] = {}
_SITE_NAMES_MAX = 4096


def _site_entry(frame: Any) -> Any:
    """``module:line`` of ``frame``'s current line, or logging's marker for it (see _logpatch), cached."""
    site = (frame.f_globals.get("__name__", "?"), frame.f_lineno)
    site_name = _site_names.get(site)
    if site_name is None:
        if len(_site_names) >= _SITE_NAMES_MAX:
            _site_names.clear()
        site_name = _site_names[site] = _logpatch.site_name(site[0], frame) or "%s:%d" % site
    return site_name


def _site_name_of(frame: Any) -> str | None:
    """The name of what ``frame``'s current line creates, for the C stand-ins to cache by code object and
    instruction; None where it depends on more than the line (logging's handler and module locks)."""
    site_name = _site_entry(frame)
    return site_name if site_name.__class__ is str else None


def _dispatch_from_c(name: str, original: Any, frame: Any, args: tuple[Any, ...], kwargs: Any) -> Any:
    """A C stand-in's call that :func:`_site_name_of` left to Python (its kwargs: the caller's, or None)."""
    return _dispatch(name, original, frame, args, {} if kwargs is None else dict(kwargs))


def _standin_call(cls: Any, *args: Any, **kwargs: Any) -> Any:
    """Construction through a class stand-in: what ``_speedups.StandinMeta`` does in C, in Python."""
    if cls._tt_standin is not cls:  # a user's subclass: built as usual
        return type.__call__(cls, *args, **kwargs)
    return _dispatch(cls._tt_name, cls._tt_original, _getframe(1), args, kwargs)


# The C metaclass builds the stand-ins' primitives in C (see _speedups.c); without it, _standin_call does.
_MetaBase: type = _cext.speedups.StandinMeta if _cext.speedups is not None else type


class _FactoryClass(_MetaBase):  # type: ignore[valid-type,misc]
    """Metaclass of the stand-ins for Condition, Semaphore, ... : subclasses of the stdlib classes.

    A wrapt proxy would shadow ``__init__``/``__enter__``/``__repr__`` (``BoundedSemaphore.__init__`` calls
    ``Semaphore.__init__(self, value)``), so these are real subclasses whose only change is construction.
    """

    _tt_name: str
    _tt_original: type
    _tt_standin: type  # the stand-in itself: its subclasses inherit it, so they can tell they are not

    if _MetaBase is type:
        __call__ = _standin_call

    def __instancecheck__(cls, obj: Any) -> bool:
        if cls._tt_standin is not cls:
            return type.__instancecheck__(cls, obj)
        return isinstance(obj, cls._tt_original)  # the traced classes subclass the stdlib ones

    def __subclasscheck__(cls, other: Any) -> bool:
        if cls._tt_standin is not cls:
            return type.__subclasscheck__(cls, other)
        return issubclass(other, cls._tt_original)


def _factory_class(wrapt: Any) -> type:
    """The proxy class for ``Lock`` and ``RLock``, made when wrapt is first imported (by :func:`patch`)."""

    class _Factory(wrapt.ObjectProxy):  # type: ignore[misc,name-defined]
        """The proxy for ``Lock`` and ``RLock`` (functions, or an unsubclassable class on 3.13).

        A transparent wrapt ``ObjectProxy`` whose call builds the primitive. (Not a ``FunctionWrapper``:
        calling one looks up ``__self__`` on the wrapped function, an ``AttributeError`` raised and
        cleared on every call, which made a patched ``threading.RLock()`` cost twice a traced one.)
        """

        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            frame = _getframe(1)
            if frame.f_globals is _THREADING_GLOBALS:  # threading's own internals: always raw, at once
                return self.__wrapped__(*args, **kwargs)
            return _dispatch(self._self_name, self.__wrapped__, frame, args, kwargs)

        def __instancecheck__(self, obj: Any) -> bool:
            original = self.__wrapped__
            if not isinstance(original, type):
                return isinstance(obj, original)  # raises the stdlib's own TypeError for a function
            return isinstance(obj, original) or self.__subclasscheck__(type(obj))

        def __subclasscheck__(self, cls: Any) -> bool:
            original = self.__wrapped__
            if not isinstance(original, type) or issubclass(cls, original):
                return issubclass(cls, original)
            # Either implementation of the traced class (and its subclasses); an RLock is no Lock.
            return issubclass(cls, _TRACED_CLASSES.get(self._self_name, ()))

    _Factory.__qualname__ = "_Factory"
    return _Factory


def _make_factory(name: str, original: Any, proxy_class: type) -> Any:
    """The stand-in for ``original``: it builds ``tracedthreading.<name>`` for callers outside ``threading``."""
    if isinstance(original, type) and name not in ("Lock", "RLock"):
        namespace = {"__module__": original.__module__, "__qualname__": original.__qualname__,
                     "__doc__": original.__doc__, "_tt_name": name, "_tt_original": original}
        standin = _FactoryClass(original.__name__, (original,), namespace)
        standin._tt_standin = standin
        return standin
    factory = proxy_class(original)
    factory._self_name = name
    return factory


def _make_all() -> None:
    """Import wrapt and fill the stand-in tables, once (by :func:`patch`, before it patches anything).

    One stand-in per distinct original: ``threading.RLock`` and ``_thread.RLock`` get different ones.
    """
    if _FACTORIES:
        return
    import wrapt  # outside _lock: an import waits on the import system's locks, never while we hold ours

    proxy_class = _factory_class(wrapt)
    with _lock:
        if _FACTORIES:
            return
        factories = {id(obj): _make_factory(name, obj, proxy_class) for name, obj in _ORIGINALS.items()}
        for key, (name, obj) in _ALIASES.items():
            if key not in factories:
                factories[key] = _make_factory(name, obj, proxy_class)
        _ORIGINAL_OF.update((id(factory), _original_of(factory)) for factory in factories.values())
        _PROXY_IDS.update((id(proxy), proxy) for proxy in factories.values())
        _FACTORIES.update(factories)  # last: a non-empty _FACTORIES means the tables are complete


def _original_of(factory: Any) -> Any:
    return factory._tt_original if isinstance(factory, _FactoryClass) else factory.__wrapped__


_current = _factories.current  # filled by the package once it is initialised: read at call time only
if _cext.speedups is not None:
    _cext.speedups._set_standins(globals(), _THREADING_GLOBALS, _current, _site_name_of, _dispatch_from_c)
# Filled by _make_all() on the first patch(): stand-in by id of its original, original by id of its
# stand-in, stand-in by its own id.
_FACTORIES: dict[int, Any] = {}
_ORIGINAL_OF: dict[int, Any] = {}
_PROXY_IDS: dict[int, Any] = {}


def is_patched() -> bool:
    """True between :func:`patch` and :func:`unpatch`."""
    return _active


def patch() -> None:
    """Make ``threading``'s factories (and modules' copies of them) build traced primitives; idempotent.

    A second call only patches modules imported since the first. Emits ``patch.missed`` naming the
    places holding a stdlib factory that cannot be replaced (class attributes, read-only modules).
    """
    global _active
    _make_all()
    with _lock:
        if not _active:
            for name, original in _ORIGINALS.items():
                setattr(threading, name, _FACTORIES[id(original)])
                _applied.append((threading, name, original))
            _active = True
        missed = _patch_modules()
    missed += _logpatch.swap_in(_current["RLock"])  # outside _lock: it may wait (bounded) for logging's lock
    if missed:
        _report_missed(missed)


def unpatch() -> None:
    """Put every original factory back (by identity) wherever :func:`patch` replaced it; idempotent.

    Module attributes that were rebound to something else since are left alone; modules imported
    under the patch that copied a proxy (``from threading import Lock``) get the original too.
    """
    global _active
    with _lock:
        if not _active:
            return
        _active = False
        for module, attribute, original in reversed(_applied):
            if getattr(module, attribute, None) is _FACTORIES[id(original)]:
                setattr(module, attribute, original)
        _applied.clear()
        for module, attribute, proxy in _scan(_PROXY_IDS):
            with contextlib.suppress(AttributeError, TypeError):
                setattr(module, attribute, _ORIGINAL_OF[id(proxy)])
    _logpatch.swap_out()


@contextlib.contextmanager
def patched() -> Iterator[None]:
    """``with patched():`` traces the block; it undoes only a patch it made itself (nesting is safe)."""
    was_active = _active
    patch()
    try:
        yield
    finally:
        if not was_active:
            unpatch()


# -- the module scan ----------------------------------------------------------------------------------


def _targets() -> dict[int, Any]:
    targets: dict[int, Any] = {id(obj): obj for obj in _ORIGINALS.values()}
    targets.update((key, obj) for key, (_name, obj) in _ALIASES.items())
    return targets


def _skipped(module_name: str) -> bool:
    return any(module_name == skip or module_name.startswith(skip + ".") for skip in _SKIP_MODULES)


def _holds(value: Any, wanted: dict[int, Any]) -> bool:
    """Whether ``value`` is one of ``wanted`` (a table by id), by identity."""
    return id(value) in wanted and value is wanted[id(value)]


def _scan(wanted: dict[int, Any]) -> Iterator[tuple[types.ModuleType, str, Any]]:
    """``(module, attribute, value)`` for module globals whose value is one of ``wanted`` (by identity)."""
    for module_name, module in list(sys.modules.items()):
        if not isinstance(module, types.ModuleType) or _skipped(module_name):
            continue
        namespace = getattr(module, "__dict__", None)
        if not isinstance(namespace, dict):
            continue
        for attribute, value in list(namespace.items()):
            if _holds(value, wanted):
                yield module, attribute, value


def _function_holders(qualname: str, function: Any, wanted: dict[int, Any]) -> Iterator[str]:
    """``qualname (default argument)`` / ``qualname (closure)`` when ``function`` keeps a factory there."""
    defaults = [*(function.__defaults__ or ()), *(function.__kwdefaults__ or {}).values()]
    if any(_holds(value, wanted) for value in defaults):
        yield f"{qualname} (default argument)"
    for cell in function.__closure__ or ():
        try:
            content = cell.cell_contents
        except ValueError:  # an empty cell
            continue
        if _holds(content, wanted):
            yield f"{qualname} (closure)"
            break


def _hidden_holders(module_name: str, module: types.ModuleType, wanted: dict[int, Any]) -> Iterator[str]:
    """Where ``module`` keeps a factory the scan cannot replace: class attributes (``module.Class.attr``),
    default arguments and closures of its functions and of its classes' methods (named by the module
    attribute that reaches them: ``module.function (closure)``, ``module.Class.method (default argument)``)."""
    for name, value in list(vars(module).items()):
        if isinstance(value, types.FunctionType) and getattr(value, "__module__", None) == module_name:
            yield from _function_holders(f"{module_name}.{name}", value, wanted)
            continue
        if not isinstance(value, type) or getattr(value, "__module__", None) != module_name:
            continue
        for attribute, member in list(vars(value).items()):
            if isinstance(member, (staticmethod, classmethod)):
                member = member.__func__
            if _holds(member, wanted):
                yield f"{module_name}.{name}.{attribute}"
            elif isinstance(member, types.FunctionType):
                yield from _function_holders(f"{module_name}.{name}.{attribute}", member, wanted)


def _patch_modules() -> list[str]:
    """Replace module globals that are stdlib factories; return the holders left unpatched."""
    wanted = _targets()
    missed: list[str] = []
    for module, attribute, original in _scan(wanted):
        try:
            setattr(module, attribute, _FACTORIES[id(original)])
        except (AttributeError, TypeError):
            missed.append(f"{module.__name__}.{attribute}")
            continue
        _applied.append((module, attribute, original))
    for module_name, module in list(sys.modules.items()):
        if isinstance(module, types.ModuleType) and not _skipped(module_name):
            with contextlib.suppress(Exception):  # a module whose vars() misbehave is just not scanned
                missed.extend(_hidden_holders(module_name, module, wanted))
    return sorted(set(missed))


def _report_missed(missed: list[str]) -> None:
    fields: dict[str, Any] = {"lock": "threading", "kind": "patch", **_events.thread_fields(), "modules": missed}
    _events.emit(_events.PATCH_MISSED, "warning", fields)
