"""RLock for nested bank methods: ``transfer`` calls ``withdraw`` and ``deposit`` under the same lock.

With an RLock the inner acquires are re-entries (counted apart, never a lock-order edge). With a plain
Lock the same code deadlocks on itself; here the acquire is timed, so the example shows the
``lock.self_wait`` event tracedthreading emits instead of hanging.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import tracedthreading as threading
from tracedthreading.testing import capture_events, events_named

LOCK_TIMEOUT = 0.5  # seconds; only a self-deadlock ever waits this long here
TELLERS = 4
TRANSFERS_PER_TELLER = 100


def ms(seconds: float) -> str:
    """Seconds as a readable millisecond figure."""
    return f"{seconds * 1e3:.3f} ms"


class Bank:
    """Accounts guarded by one lock; every method takes it, and ``transfer`` calls the others."""

    def __init__(self, lock: Any) -> None:
        self.lock = lock
        self.accounts = {"alice": 1_000, "bob": 1_000}

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the bank's lock; a timed acquire, so a self-deadlock ends in TimeoutError."""
        if not self.lock.acquire(timeout=LOCK_TIMEOUT):
            msg = f"could not acquire {self.lock.name!r} within {LOCK_TIMEOUT} s"
            raise TimeoutError(msg)
        try:
            yield
        finally:
            self.lock.release()

    def deposit(self, account: str, amount: int) -> None:
        """Add ``amount`` to ``account``."""
        with self.locked():
            self.accounts[account] += amount

    def withdraw(self, account: str, amount: int) -> None:
        """Take ``amount`` from ``account``."""
        with self.locked():
            self.accounts[account] -= amount

    def transfer(self, src: str, dst: str, amount: int) -> None:
        """Withdraw then deposit, atomically: nobody sees the money in flight."""
        with self.locked():
            self.withdraw(src, amount)
            self.deposit(dst, amount)


def with_rlock() -> None:
    """Tellers transfer back and forth; the RLock makes the nested calls re-entries."""
    bank = Bank(threading.RLock(name="bank (RLock)"))

    def teller(index: int) -> None:
        src, dst = ("alice", "bob") if index % 2 else ("bob", "alice")
        for _ in range(TRANSFERS_PER_TELLER):
            bank.transfer(src, dst, 5)

    tellers = [threading.Thread(target=teller, args=(i,), name=f"teller-{i}") for i in range(TELLERS)]
    for thread in tellers:
        thread.start()
    for thread in tellers:
        thread.join()
    total = sum(bank.accounts.values())
    transfers = TELLERS * TRANSFERS_PER_TELLER
    print(f"RLock: {transfers} transfers done, balances {bank.accounts}, total {total:,} (conserved: {total == 2_000})")
    stats = threading.snapshot().lock("bank (RLock)")
    print(f"  acquisitions {stats.acquisitions} (one per transfer), reentries {stats.reentries} "
          f"(withdraw + deposit inside each transfer), contentions {stats.contentions}")
    print(f"  hold total {ms(stats.hold_total)}, max {ms(stats.hold_max)}")


def with_plain_lock() -> None:
    """The same bank with a plain Lock: transfer's inner withdraw waits for a lock its own thread holds."""
    bank = Bank(threading.Lock(name="bank (Lock)"))
    outcome: list[str] = []

    def teller() -> None:
        try:
            bank.transfer("alice", "bob", 5)
            outcome.append("transfer completed")
        except TimeoutError as exc:
            outcome.append(f"transfer failed: {exc}")

    with capture_events() as events:
        worker = threading.Thread(target=teller, name="teller-lock")
        worker.start()
        worker.join(timeout=10)
    print()
    print(f"plain Lock: {outcome[0] if outcome else 'the teller is still stuck'}")
    print("  (without the timeout the teller would hang forever: a Lock is not re-entrant)")
    self_waits = events_named(events, "lock.self_wait")
    print(f"self-waits reported: {len(self_waits)}")
    for event in self_waits:
        print(f"  event {event['event']!r} ({event['level']}): thread {event['thread']!r} blocks on "
              f"{event['lock']!r}, which it already holds, at:")
        for frame in event["stack"][-3:]:
            print(f"      {frame}")
    stats = threading.snapshot().lock("bank (Lock)")
    print(f"  lock 'bank (Lock)': acquisitions {stats.acquisitions}, contentions {stats.contentions}, "
          f"timeouts {stats.timeouts}, wait max {ms(stats.wait_max)}")


def main() -> None:
    """Run the RLock version, then the self-deadlocking Lock version."""
    with_rlock()
    with_plain_lock()


if __name__ == "__main__":
    main()
