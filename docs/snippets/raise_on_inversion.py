"""configure(on_inversion="raise"): the acquire that closes a cycle raises LockOrderError instead.

Shown in docs/lock-order.rst.
"""

import tracedthreading as threading

threading.configure(on_inversion="raise")
first = threading.Lock(name="first")
second = threading.Lock(name="second")

with first:
    with second:
        pass

try:
    with second:
        with first:  # closes the cycle first -> second -> first
            print("not reached")
except threading.LockOrderError as error:
    print(f"LockOrderError: cycle {' -> '.join(error.inversion.locks)}")
    print(f"first held afterwards: {first.locked()}, second held afterwards: {second.locked()}")

with second:
    with first:  # raised once per cycle: the same order now goes ahead
        print("the second time, the same order goes ahead")
