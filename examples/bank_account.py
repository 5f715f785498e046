"""A bank account updated by a pool of tellers: first racy, then fixed with a Lock, and what the Lock cost.

Run it directly (``python examples/bank_account.py``) or under the runner
(``python -m tracedthreading --summary examples/bank_account.py``).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import tracedthreading as threading

TELLERS = 8
DEPOSITS_PER_TELLER = 250
AMOUNT = 10
EXPECTED = TELLERS * DEPOSITS_PER_TELLER * AMOUNT


def ms(seconds: float) -> str:
    """Seconds as a readable millisecond figure."""
    return f"{seconds * 1e3:.3f} ms"


class Account:
    """A balance; ``deposit_racy`` is the classic read-modify-write bug, ``deposit`` the fixed version."""

    def __init__(self) -> None:
        self.balance = 0
        self.lock = threading.Lock(name="balance")

    def deposit_racy(self, amount: int) -> None:
        """Read, let another thread run, write back: concurrent deposits overwrite each other."""
        balance = self.balance
        time.sleep(0)  # gives up the GIL, as any I/O or a longer computation would
        self.balance = balance + amount

    def deposit(self, amount: int) -> None:
        """The same read-modify-write, made atomic by the lock."""
        with self.lock:
            balance = self.balance
            time.sleep(0)
            self.balance = balance + amount


def run_tellers(deposit: object) -> None:
    """Every teller of the pool makes its share of the deposits through ``deposit``."""

    ready = threading.Barrier(TELLERS, name="tellers ready")

    def teller() -> None:
        ready.wait()  # all tellers start together, so their deposits really overlap
        for _ in range(DEPOSITS_PER_TELLER):
            deposit(AMOUNT)  # type: ignore[operator]

    with ThreadPoolExecutor(max_workers=TELLERS, thread_name_prefix="teller") as pool:
        for future in [pool.submit(teller) for _ in range(TELLERS)]:
            future.result()


def main() -> None:
    """Show the race, then the fix and the contention it introduced."""
    print(f"{TELLERS} tellers each deposit {AMOUNT} x {DEPOSITS_PER_TELLER} times: expected balance {EXPECTED:,}")

    racy = Account()
    run_tellers(racy.deposit_racy)
    if racy.balance != EXPECTED:
        lost = (EXPECTED - racy.balance) // AMOUNT
        print(f"without a lock: race detected: expected {EXPECTED:,}, got {racy.balance:,} ({lost:,} deposits lost)")
    else:
        print(f"without a lock: no update was lost this time (got {racy.balance:,}); the race is still there")

    fixed = Account()
    started = time.perf_counter()
    run_tellers(fixed.deposit)
    elapsed = time.perf_counter() - started
    verdict = "correct" if fixed.balance == EXPECTED else "WRONG"
    print(f"with threading.Lock: balance {fixed.balance:,} ({verdict}) in {ms(elapsed)}")

    stats = threading.snapshot().lock("balance")
    print()
    print("what tracedthreading recorded for the lock 'balance':")
    print(f"  acquisitions  {stats.acquisitions:,}")
    print(f"  contentions   {stats.contentions:,} ({100 * stats.contention_ratio:.1f}% of acquires had to wait)")
    print(f"  wait          total {ms(stats.wait_total)}, max {ms(stats.wait_max)}, p50 {ms(stats.wait_p50)}")
    print(f"  hold          total {ms(stats.hold_total)}, max {ms(stats.hold_max)}, p50 {ms(stats.hold_p50)}")
    blockers = ", ".join(f"{name} x{count:,}" for name, count in stats.blockers[:4]) or "none"
    print(f"  blockers      {blockers}")


if __name__ == "__main__":
    main()
