"""A transfer that locks the two accounts in argument order: a deadlock waiting to happen.

Teller 1 transfers A -> B (locks A, then B), teller 2 transfers B -> A (locks B, then A). Run at the
same moment they can deadlock; here an Event makes teller 2 wait until teller 1 is done, so this run
finishes. tracedthreading still reports the lock-order inversion: it keeps the order in which locks
were taken, and A -> B plus B -> A is a cycle, whatever the timing. See transfer_fixed.py for the fix.
"""

from __future__ import annotations

import tracedthreading as threading
from tracedthreading.testing import capture_events, events_named


class Account:
    """A balance with its own lock."""

    def __init__(self, account_id: int, name: str, balance: int) -> None:
        self.id = account_id
        self.name = name
        self.balance = balance
        self.lock = threading.Lock(name=f"account {name}")


def transfer(src: Account, dst: Account, amount: int) -> None:
    """Move ``amount`` from ``src`` to ``dst``, locking in argument order (the bug)."""
    with src.lock:
        with dst.lock:
            src.balance -= amount
            dst.balance += amount


def main() -> None:
    """Two transfers in opposite directions, forced to run one after the other."""
    a = Account(1, "A", 100)
    b = Account(2, "B", 100)
    first_done = threading.Event(name="teller 1 done")

    def teller_1() -> None:
        transfer(a, b, 30)
        first_done.set()

    def teller_2() -> None:
        first_done.wait()  # never at the same time as teller 1: this run cannot deadlock
        transfer(b, a, 10)

    with capture_events() as events:
        threads = [
            threading.Thread(target=teller_1, name="teller-1"),
            threading.Thread(target=teller_2, name="teller-2"),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    print(f"both transfers completed: A={a.balance}, B={b.balance} (total {a.balance + b.balance})")
    inversions = threading.snapshot().inversions
    print(f"inversions: {len(inversions)}")
    print(f"lock.order_inversion events: {len(events_named(events, 'lock.order_inversion'))}")
    for inversion in inversions:
        print()
        print(inversion)


if __name__ == "__main__":
    main()
