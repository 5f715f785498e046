"""A Semaphore limits how many tellers serve at once; tracedthreading shows how long customers queued."""

from __future__ import annotations

import time

import tracedthreading as threading
from tracedthreading.testing import capture_events, events_named

TELLERS = 2
CUSTOMERS = 12
SERVICE_TIME = 0.03  # seconds at the counter


def ms(seconds: float) -> str:
    """Seconds as a readable millisecond figure."""
    return f"{seconds * 1e3:.3f} ms"


def main() -> None:
    """Twelve customers arrive together; two tellers serve them."""
    tellers = threading.Semaphore(TELLERS, name="tellers")
    counter_lock = threading.Lock(name="serving count")
    serving = 0
    most_at_once = 0

    def customer() -> None:
        nonlocal serving, most_at_once
        with tellers:
            with counter_lock:
                serving += 1
                most_at_once = max(most_at_once, serving)
            time.sleep(SERVICE_TIME)
            with counter_lock:
                serving -= 1

    with capture_events() as events:
        customers = [threading.Thread(target=customer, name=f"customer-{i}") for i in range(CUSTOMERS)]
        for thread in customers:
            thread.start()
        for thread in customers:
            thread.join()

    print(f"{CUSTOMERS} customers, {TELLERS} tellers, {ms(SERVICE_TIME)} each at the counter")
    print(f"served: {CUSTOMERS}, at most {most_at_once} at once (limit {TELLERS})")
    stats = threading.snapshot().lock("tellers")
    print()
    print("what tracedthreading recorded for the semaphore 'tellers':")
    print(f"  acquisitions  {stats.acquisitions} (customers served)")
    print(f"  contentions   {stats.contentions} (customers who had to queue)")
    print(f"  wait          total {ms(stats.wait_total)}, max {ms(stats.wait_max)}, "
          f"p50 {ms(stats.wait_p50)}, p99 {ms(stats.wait_p99)}")
    print("  (p50/p99 come from a log2 histogram: each is the middle of its power-of-two bucket)")
    waited_long = events_named(events, "semaphore.contended")
    print(f"  semaphore.contended events (a wait >= contended_threshold, 0.1 s by default): {len(waited_long)}")
    for event in waited_long[:3]:
        print(f"    {event['thread']} waited {ms(event['wait'])}")


if __name__ == "__main__":
    main()
