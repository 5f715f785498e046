"""The one configuration object: defaults, ``TRACEDTHREADING_*`` environment variables, validation."""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["CONFIG", "Config", "configure", "load_env"]

_ON_INVERSION = ("log", "raise")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _seconds(name: str, value: Any, *, allow_none: bool = False) -> float | None:
    """Validate a non-negative duration in seconds; ``None`` (or "off") disables it where allowed."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("off", "none", "")):
        if allow_none:
            return None
        msg = f"{name} must be a number of seconds, got {value!r}"
        raise ValueError(msg)
    if isinstance(value, bool):
        msg = f"{name} must be a number of seconds, got {value!r}"
        raise ValueError(msg)
    try:
        seconds = float(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an int beyond any float (10**400)
        msg = f"{name} must be a number of seconds, got {value!r}"
        raise ValueError(msg) from None
    if math.isnan(seconds) or seconds < 0:
        msg = f"{name} must be a non-negative number of seconds, got {value!r}"
        raise ValueError(msg)
    return seconds


def _flag(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
    msg = f"{name} must be a boolean (1/0, true/false, yes/no, on/off), got {value!r}"
    raise ValueError(msg)


def _count(name: str, value: Any, *, minimum: int) -> int:
    """An integer setting: ``minimum`` or more, and at most ``sys.maxsize`` (the sizes it sets are C sizes)."""
    if isinstance(value, bool):
        msg = f"{name} must be an integer >= {minimum}, got {value!r}"
        raise ValueError(msg)
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: int(inf)
        msg = f"{name} must be an integer >= {minimum}, got {value!r}"
        raise ValueError(msg) from None
    if number < minimum or (isinstance(value, float) and value != number):
        msg = f"{name} must be an integer >= {minimum}, got {value!r}"
        raise ValueError(msg)
    if number > sys.maxsize:
        msg = f"{name} must be an integer >= {minimum} and <= {sys.maxsize}, got {value!r}"
        raise ValueError(msg)
    return number


def _choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        msg = f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}"
        raise ValueError(msg)
    return str(value)


def _trace_path(name: str, value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str) or not value.strip():
        msg = f"{name} must be a file path (or None to stop tracing), got {value!r}"
        raise ValueError(msg)
    problem = writable_file_problem(value)
    if problem:
        msg = f"{name}: cannot write {value!r}: {problem}"
        raise ValueError(msg)
    return value


def writable_file_problem(path: str) -> str | None:
    """Why a file cannot be created at ``path`` (its directory is missing, or it is a directory), else None:
    checked when a setting or option names an output file, not after the whole run."""
    if os.path.isdir(path):
        return "is a directory"
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        return f"no directory {directory!r}"
    return None


def _suppressions(name: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        msg = f"{name} must be an iterable of lock names or sites, got the string {value!r}"
        raise ValueError(msg)
    if not isinstance(value, Iterable):
        msg = f"{name} must be an iterable of lock names or sites, got {value!r}"
        raise ValueError(msg)
    items = tuple(value)
    for item in items:
        if not isinstance(item, str) or not item.strip():
            msg = f"{name} entries must be non-empty strings, got {item!r}"
            raise ValueError(msg)
    return items


class Config:
    """Every setting of tracedthreading; read it through :data:`CONFIG`, change it with :func:`configure`.

    Durations are seconds (floats). ``None`` disables a threshold.
    """

    __slots__ = (
        "contended_threshold",
        "enabled",
        "held_long_threshold",
        "lock_class",
        "max_dead_names",
        "on_inversion",
        "order",
        "order_semaphores",
        "stack_depth",
        "suppressions",
        "trace",
        "trace_buffer",
        "wait_long_threshold",
    )

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Restore every setting to its documented default."""
        #: emit ``lock.contended`` (and the other ``*.wait`` events) when a wait lasts at least this long.
        self.contended_threshold: float | None = 0.1
        #: emit ``lock.held_long`` when a hold lasts at least this long.
        self.held_long_threshold: float | None = 1.0
        #: emit ``lock.wait_long`` (holder's stack included) when a wait is still going after this long.
        self.wait_long_threshold: float | None = 30.0
        #: frames kept per captured stack.
        self.stack_depth: int = 16
        #: new primitives are traced; when False they are the raw stdlib objects.
        self.enabled: bool = True
        #: track the lock-order graph and detect inversions.
        self.order: bool = True
        #: put Semaphores in the lock-order graph too (they are not ownership locks).
        self.order_semaphores: bool = False
        #: key the order graph by creation site (lockdep's lock classes) instead of by instance.
        self.lock_class: bool = False
        #: what an inversion does at the acquire that closes the cycle: "log" or "raise".
        self.on_inversion: str = "log"
        #: lock names or creation sites whose inversions are accepted.
        self.suppressions: tuple[str, ...] = ()
        #: where the timeline trace goes: setting a path starts recording, None stops and writes it.
        self.trace: str | None = None
        #: maximum events kept by the timeline trace ring buffer.
        self.trace_buffer: int = 100_000
        #: names whose primitives are all dead kept as rows of their own; the next ones fold into one
        #: "(other names)" row per kind, which counts them (memory bounded with a name per object).
        self.max_dead_names: int = 10_000

    def as_dict(self) -> dict[str, Any]:
        """The settings as a plain dict (for reports and tests)."""
        return {name: getattr(self, name) for name in sorted(self.__slots__)}


CONFIG = Config()

_VALIDATORS = {
    "contended_threshold": lambda n, v: _seconds(n, v, allow_none=True),
    "held_long_threshold": lambda n, v: _seconds(n, v, allow_none=True),
    "wait_long_threshold": lambda n, v: _seconds(n, v, allow_none=True),
    "stack_depth": lambda n, v: _count(n, v, minimum=1),
    "enabled": _flag,
    "order": _flag,
    "order_semaphores": _flag,
    "lock_class": _flag,
    "on_inversion": lambda n, v: _choice(n, v, _ON_INVERSION),
    "suppressions": _suppressions,
    "trace_buffer": lambda n, v: _count(n, v, minimum=1),
    "max_dead_names": lambda n, v: _count(n, v, minimum=0),
    "trace": _trace_path,
}

_listeners: list[Any] = []
#: A bad ``TRACEDTHREADING_*`` value found at import, kept for the runner and the pytest plugin to report
#: (only they defer it: anywhere else ``import tracedthreading`` raises it).
env_error: ValueError | None = None


def configure(**settings: Any) -> dict[str, Any]:
    """Change settings; every value is validated before any is applied. Returns the previous values.

    Raises ``TypeError`` for an unknown setting and ``ValueError`` naming the setting and the bad value.
    """
    validated = _validate(settings, source="configure()")
    previous = {name: getattr(CONFIG, name) for name in validated}
    for name, value in validated.items():
        setattr(CONFIG, name, value)
    for listener in _listeners:
        listener()
    return previous


def _validate(settings: Mapping[str, Any], *, source: str) -> dict[str, Any]:
    validated = {}
    for name, value in settings.items():
        validator = _VALIDATORS.get(name)
        if validator is None:
            msg = f"{source}: unknown setting {name!r}; known: {', '.join(sorted(_VALIDATORS))}"
            raise TypeError(msg)
        validated[name] = validator(name, value)
    return validated


def load_env(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Apply ``TRACEDTHREADING_<SETTING>`` variables; a bad value raises ``ValueError`` naming the variable.

    ``TRACEDTHREADING_SUPPRESSIONS`` names a file (see :mod:`tracedthreading._lockorder`) and is read there.
    """
    environ = os.environ if environ is None else environ
    settings: dict[str, Any] = {}
    for name in _VALIDATORS:
        if name in ("suppressions", "trace"):
            continue  # a file each: read by _lockorder, started by the runner's --trace-file
        variable = f"TRACEDTHREADING_{name.upper()}"
        if variable in environ:
            settings[variable] = environ[variable]
    validated = {}
    for variable, raw in settings.items():
        name = variable[len("TRACEDTHREADING_") :].lower()
        validated[name] = _VALIDATORS[name](variable, raw)
    for name, value in validated.items():
        setattr(CONFIG, name, value)
    for listener in _listeners:
        listener()
    return validated
