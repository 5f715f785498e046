"""A thread that ends while holding traced locks is reported, and nothing breaks."""

from __future__ import annotations

import threading as std

import tracedthreading
from tracedthreading.testing import capture_events, events_named


def test_thread_dying_with_a_held_lock_is_reported_by_name() -> None:
    """thread.died_holding names the thread and the locks it still held; the lock stays locked."""
    lock = tracedthreading.Lock(name="orphan")
    rlock = tracedthreading.RLock(name="orphan-r")

    def quit_holding() -> None:
        lock.acquire()
        rlock.acquire()

    with capture_events() as events:
        thread = std.Thread(target=quit_holding, name="quitter")
        thread.start()
        thread.join(5)
    [event] = events_named(events, "thread.died_holding")
    assert event["thread"] == "quitter"
    assert event["held"] == ["orphan", "orphan-r"]
    assert lock.locked()
    assert lock.acquire(timeout=0.01) is False
    lock.release()  # a Lock may be released by any thread


def test_thread_ending_clean_reports_nothing() -> None:
    """A thread that released everything ends silently."""
    lock = tracedthreading.Lock(name="tidy")

    def tidy() -> None:
        with lock:
            pass

    with capture_events() as events:
        thread = std.Thread(target=tidy)
        thread.start()
        thread.join(5)
    assert events_named(events, "thread.died_holding") == []
