"""Shared fixtures: every test starts from empty statistics and the default configuration.

No test may hang the suite: each has a timeout (pytest-timeout, see ``pyproject.toml``), and a test that
fails while its threads still wait on a lock cannot hang the interpreter's exit either: at the end of
the session, threads still alive after a bounded wait are listed and the process exits at once.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator

import pytest

import tracedthreading
from tracedthreading import _config

_LEFTOVER_GRACE = 10.0  # seconds the session waits, in all, for threads tests left running


@pytest.fixture(autouse=True)
def _fresh_state() -> Iterator[None]:
    """Reset statistics, the order graph, reports and settings around each test."""
    saved = _config.CONFIG.as_dict()
    tracedthreading.reset()
    yield
    _config.configure(**saved)
    tracedthreading.reset()


def pytest_unconfigure(config: pytest.Config) -> None:
    """Threads a failed test left blocked would make the interpreter wait for ever at exit: wait a
    bounded time, then name them and leave without waiting (the failure itself is already reported)."""
    deadline = time.monotonic() + _LEFTOVER_GRACE
    for thread in threading.enumerate():
        if thread is threading.current_thread() or thread.daemon:
            continue
        thread.join(max(0.0, deadline - time.monotonic()))
    stuck = [t for t in threading.enumerate() if t is not threading.current_thread() and not t.daemon and t.is_alive()]
    if stuck:
        names = ", ".join(sorted(t.name for t in stuck))
        sys.stderr.write(f"\nconftest: {len(stuck)} thread(s) still alive after the session, not waited for: {names}\n")
        sys.stderr.flush()
        status = getattr(config, "_tt_exitstatus", 1) or 1
        os._exit(int(status))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    session.config._tt_exitstatus = exitstatus  # type: ignore[attr-defined]
