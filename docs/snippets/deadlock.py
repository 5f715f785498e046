"""A real deadlock: two threads each hold one lock and wait (with a timeout) for the other's.

Shown in docs/lock-order.rst: the deadlock is reported as the second thread starts to wait, then both
waits time out and the program goes on.
"""

import tracedthreading as threading

left = threading.Lock(name="left")
right = threading.Lock(name="right")
both_hold = threading.Barrier(2, name="both hold")


def worker(mine, theirs):
    with mine:
        both_hold.wait(30)
        if theirs.acquire(timeout=1):
            theirs.release()


a = threading.Thread(target=worker, args=(left, right), name="A")
b = threading.Thread(target=worker, args=(right, left), name="B")
for thread in (a, b):
    thread.start()
for thread in (a, b):
    thread.join(30)

for report in threading.snapshot().deadlocks:
    print(report)
