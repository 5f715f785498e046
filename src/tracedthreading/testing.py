"""Helpers for users' own tests: capture tracedthreading's events as plain dicts.

>>> from tracedthreading.testing import capture_events
>>> with capture_events() as events:
...     run_the_code()
>>> [e["event"] for e in events]
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

from tracedthreading import _events, _threads

__all__ = ["capture_events", "events_named", "wait_until_blocked"]


@contextlib.contextmanager
def capture_events() -> Iterator[list[dict[str, Any]]]:
    """Collect every event emitted inside the block, in order, as dicts (``event``, ``level``, fields).

    Events still reach structlog as usual; capturing only adds a listener.
    """
    captured: list[dict[str, Any]] = []
    _events.add_sink(captured.append)
    try:
        yield captured
    finally:
        _events.remove_sink(captured.append)


def events_named(events: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    """The events of one name, e.g. ``events_named(events, "lock.order_inversion")``."""
    return [event for event in events if event["event"] == name]


def wait_until_blocked(thread: Any, primitive: Any, timeout: float = 10.0) -> None:
    """Return once ``thread`` (a Thread or a thread id) is blocked acquiring the traced Lock/RLock
    ``primitive`` (as tracedthreading's wait-for records see it): a test can then act on a known
    contention instead of guessing with sleeps. ``TimeoutError`` if that does not happen in ``timeout``."""
    ident = getattr(thread, "ident", thread)
    key = getattr(primitive, "_key", None)
    if key is None:
        msg = f"{primitive!r} is not a traced Lock/RLock that was ever acquired: nothing can wait for it"
        raise TypeError(msg)
    deadline = time.monotonic() + timeout
    while True:
        record = _threads.record_of_thread(ident)
        if record is not None and record.waiting == key:
            return
        if time.monotonic() >= deadline:
            msg = f"thread {ident} did not block on {primitive!r} within {timeout} s"
            raise TimeoutError(msg)
        time.sleep(0.0005)
