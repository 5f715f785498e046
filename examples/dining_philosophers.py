"""Dining philosophers: a lock-order cycle through five locks, found without ever deadlocking.

At table 1 each philosopher takes the left fork, then the right one. All five at once can deadlock,
so here they eat one after the other; the order graph still closes the cycle fork 0 -> fork 1 -> ...
-> fork 4 -> fork 0 and tracedthreading reports it. At table 2 every philosopher takes the
lower-numbered fork first (one global order): they dine concurrently and no inversion is reported.
"""

from __future__ import annotations

import time

import tracedthreading as threading

SEATS = 5
MEALS = 50


def dine(forks: list[threading.Lock], seat: int, ordered: bool) -> None:
    """One meal for the philosopher at ``seat``."""
    left, right = seat, (seat + 1) % SEATS
    if ordered:
        left, right = min(left, right), max(left, right)
    with forks[left]:
        with forks[right]:
            time.sleep(0)  # eating (lets the neighbours run)


def set_table(table: int) -> list[threading.Lock]:
    """Five forks, named by table and position."""
    return [threading.Lock(name=f"table {table} fork {i}") for i in range(SEATS)]


def main() -> None:
    """Table 1 in turn (left fork first), table 2 concurrently (lower fork first)."""
    before = len(threading.snapshot().inversions)
    forks = set_table(1)
    for seat in range(SEATS):  # one at a time: this run cannot deadlock
        philosopher = threading.Thread(target=dine, args=(forks, seat, False), name=f"philosopher-{seat}")
        philosopher.start()
        philosopher.join()
    found = threading.snapshot().inversions[before:]
    print(f"table 1 (left fork first, eating in turn): everyone ate; inversions: {len(found)}")
    for inversion in found:
        print(f"  cycle of {len(inversion.locks)} locks: {' -> '.join((*inversion.locks, inversion.locks[0]))}")

    before = len(threading.snapshot().inversions)
    forks = set_table(2)

    def philosopher(seat: int) -> None:
        for _ in range(MEALS):
            dine(forks, seat, True)

    diners = [threading.Thread(target=philosopher, args=(seat,), name=f"philosopher-{seat}") for seat in range(SEATS)]
    for thread in diners:
        thread.start()
    for thread in diners:
        thread.join()
    found = threading.snapshot().inversions[before:]
    snap = threading.snapshot()
    meals = sum(snap.lock(f"table 2 fork {i}").acquisitions for i in range(SEATS)) // 2
    contended = sum(snap.lock(f"table 2 fork {i}").contentions for i in range(SEATS))
    print(f"table 2 (lower fork first, all at once): {meals} meals, {contended} waits for a fork; "
          f"inversions: {len(found)}")


if __name__ == "__main__":
    main()
