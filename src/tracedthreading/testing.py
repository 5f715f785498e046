"""Helpers for users' own tests: capture tracedthreading's events as plain dicts.

>>> from tracedthreading.testing import capture_events
>>> with capture_events() as events:
...     run_the_code()
>>> [e["event"] for e in events]
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from tracedthreading import _events

__all__ = ["capture_events", "events_named"]


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
