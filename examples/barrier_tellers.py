"""A Barrier makes the tellers open their counters together; the waits show how spread out they arrived.

The first teller to arrive waits longest and the last one hardly at all, so the barrier's wait max is
the arrival spread. A second, smaller shift shows what a broken barrier looks like: one teller never
comes, the others give up after a timeout and tracedthreading counts the BrokenBarrierErrors.
"""

from __future__ import annotations

import time

import tracedthreading as threading
from tracedthreading.testing import capture_events, events_named

TELLERS = 4
ARRIVAL_GAP = 0.03  # seconds between two tellers' arrivals


def ms(seconds: float) -> str:
    """Seconds as a readable millisecond figure."""
    return f"{seconds * 1e3:.3f} ms"


def morning_shift() -> None:
    """Four tellers arrive ARRIVAL_GAP apart and start serving at the same moment."""
    opening = threading.Barrier(TELLERS, name="counters open")
    own_waits: dict[str, float] = {}

    def teller(index: int) -> None:
        time.sleep(index * ARRIVAL_GAP)  # commuting
        began = time.perf_counter()
        opening.wait()
        own_waits[threading.current_thread().name] = time.perf_counter() - began

    tellers = [threading.Thread(target=teller, args=(i,), name=f"teller-{i}") for i in range(TELLERS)]
    for thread in tellers:
        thread.start()
    for thread in tellers:
        thread.join()

    print(f"morning shift: {TELLERS} tellers arriving {ms(ARRIVAL_GAP)} apart all passed the barrier")
    for name, waited in sorted(own_waits.items()):
        print(f"  {name} waited {ms(waited)}")
    stats = threading.snapshot().lock("counters open")
    print("what tracedthreading recorded for the barrier 'counters open':")
    print(f"  passed {stats.acquisitions}, broken {stats.broken}")
    print(f"  wait max {ms(stats.wait_max)} (the first arrival: this is the arrival spread), "
          f"total {ms(stats.wait_total)}")
    print(f"  expected spread about {ms((TELLERS - 1) * ARRIVAL_GAP)}")


def late_shift() -> None:
    """Three of four tellers show up; they give up after a timeout and the barrier breaks."""
    opening = threading.Barrier(TELLERS, timeout=0.1, name="late shift")
    outcomes: list[str] = []

    def teller() -> None:
        try:
            opening.wait()
            outcomes.append("passed")
        except threading.BrokenBarrierError:
            outcomes.append("broken")

    with capture_events() as events:
        tellers = [threading.Thread(target=teller, name=f"late-teller-{i}") for i in range(TELLERS - 1)]
        for thread in tellers:
            thread.start()
        for thread in tellers:
            thread.join()

    stats = threading.snapshot().lock("late shift")
    print()
    print(f"late shift: only {TELLERS - 1} of {TELLERS} tellers came: {outcomes.count('broken')} got "
          f"BrokenBarrierError")
    print(f"  barrier 'late shift': passed {stats.acquisitions}, broken {stats.broken}, "
          f"barrier.broken events {len(events_named(events, 'barrier.broken'))}")


def main() -> None:
    """Run the morning shift, then the broken late shift."""
    morning_shift()
    late_shift()


if __name__ == "__main__":
    main()
