"""An Event opens the bank: customers who arrive early wait for it, one gives up, a late one walks in."""

from __future__ import annotations

import time

import tracedthreading as threading
from tracedthreading.testing import capture_events, events_named

EARLY_CUSTOMERS = 5
OPENING_DELAY = 0.2  # seconds between the early customers' arrival and the opening
PATIENCE = 0.05  # seconds the impatient customer waits before leaving


def ms(seconds: float) -> str:
    """Seconds as a readable millisecond figure."""
    return f"{seconds * 1e3:.3f} ms"


def main() -> None:
    """Customers wait on ``bank open``; the manager sets it."""
    opened = threading.Event(name="bank open")
    entered: list[str] = []
    entered_lock = threading.Lock(name="entry log")

    def customer() -> None:
        opened.wait()
        with entered_lock:
            entered.append(threading.current_thread().name)

    def impatient_customer() -> None:
        if not opened.wait(timeout=PATIENCE):
            print(f"impatient customer left after {ms(PATIENCE)}: the bank was still closed")

    with capture_events() as events:
        impatient = threading.Thread(target=impatient_customer, name="impatient")
        impatient.start()
        impatient.join()  # gone before the bank opens

        early = [threading.Thread(target=customer, name=f"early-{i}") for i in range(EARLY_CUSTOMERS)]
        for thread in early:
            thread.start()
        time.sleep(OPENING_DELAY)  # the early customers queue at the door
        opened.set()
        print(f"manager opened the bank after {ms(OPENING_DELAY)}")
        for thread in early:
            thread.join()

        late = threading.Thread(target=customer, name="late")  # the door is open: no wait at all
        late.start()
        late.join()

    print(f"customers who entered: {len(entered)} ({', '.join(sorted(entered))})")
    stats = threading.snapshot().lock("bank open")
    print()
    print("what tracedthreading recorded for the event 'bank open':")
    print(f"  successful waits  {stats.acquisitions} (early customers + the late one)")
    print(f"  blocked waits     {stats.contentions} (early customers + the impatient one)")
    print(f"  timeouts          {stats.timeouts}")
    print(f"  wait              total {ms(stats.wait_total)}, max {ms(stats.wait_max)}, p50 {ms(stats.wait_p50)}")
    for event in events_named(events, "event.wait_timeout"):
        print(f"  event {event['event']!r}: thread {event['thread']!r} waited {ms(event['wait'])} "
              f"(timeout={event['timeout']})")


if __name__ == "__main__":
    main()
