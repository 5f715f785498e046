"""Timers for delayed announcements: scheduled versus actual start, and how long each callback ran.

For a Timer, tracedthreading's ``wait_*`` figures are lateness (actual start minus scheduled start) and
its ``hold_*`` figures are the callback's run time. The second announcement is due while the main
thread runs pure-Python work with a long GIL switch interval, so its timer thread gets the GIL late:
that lateness is what the ``timer.late`` event reports. A third timer is cancelled and never runs.
"""

from __future__ import annotations

import sys
import time

import tracedthreading as threading
from tracedthreading.testing import capture_events, events_named

DELAY = 0.1  # seconds until each announcement is due


def ms(seconds: float) -> str:
    """Seconds as a readable millisecond figure."""
    return f"{seconds * 1e3:.3f} ms"


def announce(text: str) -> None:
    """Read the announcement out (takes a few milliseconds)."""
    print(f"  [announcement] {text}")
    time.sleep(0.005)


def busy(seconds: float) -> None:
    """Pure-Python work that keeps the GIL until the switch interval forces a hand-over."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def report(name: str) -> None:
    """Print a timer's snapshot entry."""
    stats = threading.snapshot().lock(name)
    print(f"  timer {name!r}: callbacks run {stats.acquisitions}, late by {ms(stats.wait_max)} "
          f"(scheduled {ms(DELAY)} after start), callback took {ms(stats.hold_max)}")


def main() -> None:
    """An idle main thread, a GIL-hogging main thread, and a cancelled timer."""
    print("1. the main thread sleeps while the timer is due:")
    closing = threading.Timer(DELAY, announce, args=("the bank closes in 15 minutes",), name="closing soon")
    closing.start()
    closing.join()
    report("closing soon")

    print("2. the main thread is busy in pure Python (switch interval 0.3 s) when the timer is due:")
    saved = sys.getswitchinterval()
    sys.setswitchinterval(0.3)
    try:
        with capture_events() as events:
            closed = threading.Timer(DELAY, announce, args=("the bank is now closed",), name="closed")
            closed.start()
            busy(DELAY + 0.2)
            closed.join()
    finally:
        sys.setswitchinterval(saved)
    report("closed")
    for event in events_named(events, "timer.late"):
        print(f"  event 'timer.late': {event['lock']!r} started {ms(event['late'])} late "
              f"(interval {event['interval']} s, callback {ms(event['callback'])})")

    print("3. a timer cancelled before it is due:")
    reopening = threading.Timer(DELAY, announce, args=("we are open again",), name="reopening")
    reopening.start()
    reopening.cancel()
    reopening.join()
    report("reopening")


if __name__ == "__main__":
    main()
