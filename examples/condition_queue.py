"""A Condition guards the customer queue: the door adds customers and notifies, tellers wait for them.

Tellers wait with a timeout (to check whether the bank closed), so a lull in arrivals shows up as
condition timeouts. The Condition's own lock (an RLock of the same name) shows the contention between
the door and the tellers: the door prints each ticket while still holding the lock, so the teller it
just woke has to wait for the lock before it can return from ``wait``.
"""

from __future__ import annotations

import time
from collections import deque

import tracedthreading as threading
from tracedthreading.testing import capture_events, events_named

TELLERS = 3
CUSTOMERS = 20
LULL = 0.12  # seconds without arrivals, half-way through the morning
POLL = 0.05  # seconds a teller waits before checking again


def ms(seconds: float) -> str:
    """Seconds as a readable millisecond figure."""
    return f"{seconds * 1e3:.3f} ms"


def main() -> None:
    """The door enqueues customers; three tellers serve them until the bank closes."""
    queue_changed = threading.Condition(name="customer queue")
    queue: deque[int] = deque()
    closed = False
    served: dict[str, int] = {}

    def teller() -> None:
        me = threading.current_thread().name
        served[me] = 0
        while True:
            with queue_changed:
                while not queue and not closed:
                    queue_changed.wait(timeout=POLL)
                if not queue:
                    return  # closed and nobody left
                queue.popleft()
            time.sleep(0.002)  # serving happens outside the lock
            served[me] += 1

    with capture_events() as events:
        tellers = [threading.Thread(target=teller, name=f"teller-{i}") for i in range(TELLERS)]
        for thread in tellers:
            thread.start()
        for number in range(CUSTOMERS):
            if number == CUSTOMERS // 2:
                time.sleep(LULL)  # nobody comes in for a while: the waiting tellers time out
            with queue_changed:
                queue.append(number)
                queue_changed.notify()
                time.sleep(0.001)  # printing the ticket under the lock: the woken teller must wait for it
            time.sleep(0.001)
        with queue_changed:
            closed = True
            queue_changed.notify_all()
        for thread in tellers:
            thread.join()

    print(f"customers served: {sum(served.values())} of {CUSTOMERS} "
          f"({', '.join(f'{name}: {count}' for name, count in sorted(served.items()))})")
    snap = threading.snapshot()
    cond = snap.lock("customer queue", "condition")
    lock = snap.lock("customer queue", "rlock")
    print()
    print("what tracedthreading recorded for the condition 'customer queue':")
    print(f"  waits notified   {cond.acquisitions}")
    print(f"  waits timed out  {cond.timeouts}  (condition.wait_timeout events: "
          f"{len(events_named(events, 'condition.wait_timeout'))})")
    print(f"  time in wait     total {ms(cond.wait_total)}, max {ms(cond.wait_max)}, p50 {ms(cond.wait_p50)}")
    print("and for its lock (an RLock named like the condition):")
    print(f"  acquisitions     {lock.acquisitions}, contentions {lock.contentions}, "
          f"wait total {ms(lock.wait_total)}, max {ms(lock.wait_max)}")
    print(f"  hold             total {ms(lock.hold_total)}, max {ms(lock.hold_max)}")
    blockers = ", ".join(f"{name} x{count}" for name, count in lock.blockers[:4]) or "none"
    print(f"  blockers         {blockers}")


if __name__ == "__main__":
    main()
