"""A BoundedSemaphore hands out the bank's three cash drawers; returning one twice is caught as a bug.

A plain Semaphore would silently accept the extra release and from then on let four tellers share three
drawers. The bounded one raises ValueError at the faulty release. tracedthreading shows how the drawers
were shared: how many tellers had to queue for one, for how long, and the teller who gave up waiting.
"""

from __future__ import annotations

import time

import tracedthreading as threading
from tracedthreading.testing import capture_events, events_named

DRAWERS = 3
TELLERS = 6
SHIFTS = 2  # each teller takes a drawer this many times
COUNTING_TIME = 0.02  # seconds a teller keeps a drawer


def ms(seconds: float) -> str:
    """Seconds as a readable millisecond figure."""
    return f"{seconds * 1e3:.3f} ms"


def main() -> None:
    """Six tellers share three drawers; one gives up waiting; one returns a drawer twice."""
    drawers = threading.BoundedSemaphore(DRAWERS, name="cash drawers")
    count_lock = threading.Lock(name="drawers in use")
    in_use = 0
    most_in_use = 0

    def teller() -> None:
        nonlocal in_use, most_in_use
        for _ in range(SHIFTS):
            with drawers:
                with count_lock:
                    in_use += 1
                    most_in_use = max(most_in_use, in_use)
                time.sleep(COUNTING_TIME)
                with count_lock:
                    in_use -= 1

    with capture_events() as events:
        tellers = [threading.Thread(target=teller, name=f"teller-{i}") for i in range(TELLERS)]
        for thread in tellers:
            thread.start()
        for thread in tellers:
            thread.join()

        # Every drawer is out; an impatient teller waits 50 ms for one, then gives up.
        for _ in range(DRAWERS):
            drawers.acquire()
        gave_up: list[bool] = []
        impatient = threading.Thread(target=lambda: gave_up.append(not drawers.acquire(timeout=0.05)),
                                     name="impatient teller")
        impatient.start()
        impatient.join()
        for _ in range(DRAWERS):
            drawers.release()

    print(f"{TELLERS} tellers x {SHIFTS} shifts, {DRAWERS} cash drawers, {ms(COUNTING_TIME)} per shift")
    print(f"drawers handed out: {TELLERS * SHIFTS}, at most {most_in_use} in use at once (limit {DRAWERS})")
    print(f"impatient teller gave up: {gave_up == [True]}")

    # The bug a BoundedSemaphore exists for: a drawer returned twice.
    drawers.acquire()
    drawers.release()
    try:
        drawers.release()
    except ValueError as exc:
        print(f"drawer returned twice: ValueError: {exc} (a plain Semaphore would now hand out {DRAWERS + 1})")

    stats = threading.snapshot().lock("cash drawers")
    print()
    print("what tracedthreading recorded for the bounded semaphore 'cash drawers':")
    print(f"  kind          {stats.kind}")
    print(f"  acquisitions  {stats.acquisitions} (the tellers' {TELLERS * SHIFTS}, and {DRAWERS + 1} by this demo)")
    print(f"  contentions   {stats.contentions} (takes that had to wait for a drawer, the one given up included)")
    print(f"  timeouts      {stats.timeouts} (tellers who gave up)")
    print(f"  wait          total {ms(stats.wait_total)}, max {ms(stats.wait_max)}, "
          f"p50 {ms(stats.wait_p50)}, p99 {ms(stats.wait_p99)}")
    print(f"  now           {drawers!r}")
    contended = events_named(events, "semaphore.contended")
    print(f"  semaphore.contended events (a wait >= contended_threshold, 0.1 s by default): {len(contended)}")


if __name__ == "__main__":
    main()
