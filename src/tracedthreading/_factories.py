"""The factories ``tracedthreading`` hands out right now, by name: the traced classes, or the raw stdlib
ones while ``configure(enabled=False)``. Filled by the package; read at call time by the patched
``threading`` (:mod:`tracedthreading.patching`), which so never imports the package itself."""

from __future__ import annotations

from typing import Any

__all__ = ["current"]

#: "Lock", "RLock", "Condition", ... -> the factory ``tracedthreading.<name>`` is now.
current: dict[str, Any] = {}
