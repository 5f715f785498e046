"""Which implementation runs the lock hot path: the C extension ``_speedups``, or the pure-Python one.

The C extension is optional (built by ``pip install`` when a compiler is there, as wrapt's is). It is
used unless it is missing or ``TRACEDTHREADING_PURE_PYTHON`` is set to a true value (1, true, yes, on);
the pure-Python path is then the whole library, and the reference both are tested against.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

__all__ = ["describe", "speedups"]

_FORCED = os.environ.get("TRACEDTHREADING_PURE_PYTHON", "").strip().lower() in ("1", "true", "yes", "on")
#: The interface this Python code needs of the extension (``API`` in _speedups.c): an older build fails it.
API = 3

speedups: ModuleType | None
_why: str
if _FORCED:
    speedups, _why = None, "TRACEDTHREADING_PURE_PYTHON is set"
else:
    try:
        speedups = importlib.import_module("tracedthreading._speedups")
    except ModuleNotFoundError as exc:
        if exc.name != "tracedthreading._speedups":
            raise
        speedups, _why = None, "the C extension was not built: no compiler when it was installed?"
    except ImportError as exc:  # built, but not loadable here (another Python's build, a broken file)
        speedups, _why = None, f"the C extension cannot be loaded: {exc}"
    else:
        _why = ""
        built = getattr(speedups, "API", 1)
        if built != API:
            speedups, _why = None, (f"the C extension was built from other sources (API {built}, this code "
                                    f"needs {API}): reinstall to rebuild it")


def describe() -> str:
    """One line saying which hot path this process uses, and why when it is the slower one."""
    if speedups is not None:
        return "lock hot path: C extension (tracedthreading._speedups)"
    return f"lock hot path: pure Python ({_why})"
