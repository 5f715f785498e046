"""tracedthreading: ``import tracedthreading as threading`` and find out why your threads wait.

Every public name of the stdlib ``threading`` module is here. Lock, RLock, Condition, Semaphore,
BoundedSemaphore, Event, Barrier, Timer and Thread are traced drop-ins; the rest are the stdlib's own
objects. The additions (:func:`snapshot`, :func:`reset`, :func:`configure`, :func:`forget`, the value
objects and :class:`LockOrderError`) are listed in ``__all__`` after the threading names.

PYTEST_DONT_REWRITE: the runner imports this package before ``python -m tracedthreading -m pytest``
starts pytest, which would otherwise warn that its plugin's package cannot be rewritten (no asserts here).
"""

from __future__ import annotations

import os as _os
import sys as _sys
import threading as _std
from typing import Any as _Any

from tracedthreading import _config, _deadlock, _events, _factories, _lockcore, _lockorder, _primitives, _stats
from tracedthreading import _sync, _trace
from tracedthreading._config import configure as _configure
from tracedthreading._lockorder import LockOrderError
from tracedthreading._primitives import Lock, RLock
from tracedthreading._sync import Barrier, BoundedSemaphore, Condition, Event, Semaphore, Thread, Timer
from tracedthreading.snapshot import (
    DeadlockReport,
    DeadlockThread,
    Inversion,
    LockStats,
    OrderEdge,
    Snapshot,
)
from tracedthreading._collect import snapshot  # after the line above: the package's ``snapshot`` is the function
from tracedthreading.patching import patch, patched, unpatch

__version__ = "0.1.0"

_TRACED = {
    "Barrier": Barrier,
    "BoundedSemaphore": BoundedSemaphore,
    "Condition": Condition,
    "Event": Event,
    "Lock": Lock,
    "RLock": RLock,
    "Semaphore": Semaphore,
    "Thread": Thread,
    "Timer": Timer,
}
for _cls in _TRACED.values():
    _cls.__module__ = __name__
_sys.modules[__name__ + ".snapshot"].snapshot = snapshot  # defined in _collect (see there), exported here too

# The rest of threading's public API, as the stdlib's own objects (the set differs by version).
_THREADING_NAMES = sorted(set(_std.__all__) | {"get_ident", "get_native_id", "main_thread", "TIMEOUT_MAX",
                                               "excepthook", "local", "settrace", "setprofile", "stack_size"})
# Hooks that programs assign (threading.excepthook = ...) live on the stdlib module: reads and writes
# of these names are forwarded there by _Module below, so assigning through us changes what Thread uses.
_FORWARDED = frozenset({"excepthook"})
for _name in _THREADING_NAMES:
    if _name not in _TRACED and _name not in _FORWARDED and hasattr(_std, _name):
        globals()[_name] = getattr(_std, _name)
__excepthook__ = getattr(_std, "__excepthook__", None)
# Deprecated camelCase spellings, kept by the stdlib outside __all__ (3.10-3.13): the stdlib's own, warning as there.
for _name in ("currentThread", "activeCount"):
    if hasattr(_std, _name):
        globals()[_name] = getattr(_std, _name)

_ADDITIONS = [
    "DeadlockReport",
    "DeadlockThread",
    "Inversion",
    "LockOrderError",
    "LockStats",
    "OrderEdge",
    "Snapshot",
    "configure",
    "forget",
    "patch",
    "patched",
    "reset",
    "snapshot",
    "unpatch",
]
__all__ = sorted({name for name in _THREADING_NAMES if name in globals() or name in _FORWARDED} | set(_ADDITIONS))


def configure(**settings: _Any) -> dict[str, _Any]:
    """Change settings (see the configuration page of the docs); returns the previous values.

    Unknown names raise ``TypeError``; bad values raise ``ValueError`` naming the setting and the value.
    ``enabled=False`` makes primitives created afterwards the raw stdlib ones (zero overhead).
    """
    return _configure(**settings)


def reset() -> None:
    """Clear every statistic, the lock-order graph, inversions and deadlock reports."""
    _stats.reset()
    _lockorder.reset()
    _deadlock.reset()
    _sync.reset_blocking_sites()


def forget(lock: _Any) -> None:
    """Drop ``lock``'s lock-order history (its edges and any pending gated cycle through it)."""
    if not isinstance(lock, _primitives._Traced):
        msg = f"forget() needs a tracedthreading primitive, got {type(lock).__name__}"
        raise TypeError(msg)
    key = getattr(lock, "_key", None)
    if key is not None:  # a primitive never used has no history
        _lockorder.forget(key)


# -- the off switch: when disabled, the module's factories are the stdlib's (accepting name=) ----------


def _raw_lock(*, name: str | None = None) -> _Any:
    return _std._allocate_lock()  # type: ignore[attr-defined]


def _raw(factory: _Any) -> _Any:
    def make(*args: _Any, name: str | None = None, **kwargs: _Any) -> _Any:
        return factory(*args, **kwargs)

    make.__name__ = make.__qualname__ = factory.__name__
    make.__doc__ = factory.__doc__
    return make


_RAW = {name: _raw(getattr(_std, name)) for name in _TRACED if name != "Lock"}
_RAW["Lock"] = _raw_lock


def _apply_enabled() -> None:
    table = _TRACED if _config.CONFIG.enabled else _RAW
    globals().update(table)
    _factories.current.update(table)


def _apply_trace() -> None:
    """``configure(trace=path)`` starts the timeline trace; ``configure(trace=None)`` stops and writes it."""
    wanted = _config.CONFIG.trace
    if wanted is not None and not _trace.active:
        _trace.start(wanted)
    elif wanted is None and _trace.active and _trace._path is not None:
        _trace.stop()


_config._listeners.append(_apply_enabled)
_config._listeners.append(_apply_trace)


def _env_error_deferred() -> bool:
    """Whether a bad ``TRACEDTHREADING_*`` value waits for a caller that reports it in one line: the
    runner (``python -m tracedthreading``), and pytest, which loads the plugin in every run (a run that
    does not enable it must not fail for it)."""
    argv = list(getattr(_sys, "orig_argv", ()))
    runner = any(a == "-m" and b == __name__ for a, b in zip(argv, argv[1:])) or f"-m{__name__}" in argv
    return runner or "_pytest.config" in _sys.modules


try:
    _config.load_env()
    if _os.environ.get("TRACEDTHREADING_SUPPRESSIONS"):
        _lockorder.load_suppressions(_os.environ["TRACEDTHREADING_SUPPRESSIONS"])
except ValueError as _exc:
    if not _env_error_deferred():
        raise
    _config.env_error = _exc  # nothing of the environment applied
    del _exc
_apply_enabled()
del _cls, _name


class _Module(_sys.modules[__name__].__class__):  # type: ignore[misc]
    """This module, forwarding the settable hooks (``excepthook``) to the stdlib ``threading``."""

    def __getattr__(self, name: str) -> _Any:
        if name in _FORWARDED:
            return getattr(_std, name)
        msg = f"module {__name__!r} has no attribute {name!r}"
        raise AttributeError(msg)

    def __setattr__(self, name: str, value: _Any) -> None:
        if name in _FORWARDED:
            setattr(_std, name, value)
        else:
            super().__setattr__(name, value)


_sys.modules[__name__].__class__ = _Module
