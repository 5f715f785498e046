"""The transfer from transfer_inversion.py, fixed: always lock the account with the smaller id first.

With one global order there is no cycle, so the tellers can run truly concurrently, in both
directions, and tracedthreading reports no inversion.
"""

from __future__ import annotations

import tracedthreading as threading
from tracedthreading.testing import capture_events, events_named

TRANSFERS_PER_TELLER = 200


class Account:
    """A balance with its own lock."""

    def __init__(self, account_id: int, name: str, balance: int) -> None:
        self.id = account_id
        self.name = name
        self.balance = balance
        self.lock = threading.Lock(name=f"account {name}")


def transfer(src: Account, dst: Account, amount: int) -> None:
    """Move ``amount`` from ``src`` to ``dst``, locking both accounts in id order."""
    first, second = (src, dst) if src.id < dst.id else (dst, src)
    with first.lock:
        with second.lock:
            src.balance -= amount
            dst.balance += amount


def main() -> None:
    """Two tellers transfer in opposite directions at the same time."""
    a = Account(1, "A", 10_000)
    b = Account(2, "B", 10_000)
    start = threading.Barrier(2, name="tellers start")

    def teller(src: Account, dst: Account) -> None:
        start.wait()  # both directions really overlap
        for _ in range(TRANSFERS_PER_TELLER):
            transfer(src, dst, 1)

    with capture_events() as events:
        threads = [
            threading.Thread(target=teller, args=(a, b), name="teller-1"),
            threading.Thread(target=teller, args=(b, a), name="teller-2"),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    total = a.balance + b.balance
    print(f"{2 * TRANSFERS_PER_TELLER} concurrent transfers completed: A={a.balance:,}, B={b.balance:,} "
          f"(total {total:,}, conserved: {total == 20_000})")
    snap = threading.snapshot()
    print(f"inversions: {len(snap.inversions)}")
    print(f"lock.order_inversion events: {len(events_named(events, 'lock.order_inversion'))}")
    for name in ("account A", "account B"):
        stats = snap.lock(name)
        print(f"  {name}: acquisitions {stats.acquisitions}, contentions {stats.contentions}")


if __name__ == "__main__":
    main()
