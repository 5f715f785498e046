"""The rare, opposite order: 1,203 transfers take accounts then audit, one nightly report audit then accounts.

Shown in docs/lock-order.rst: the run never deadlocks, and the inversion is reported with both orders.
"""

import tracedthreading as threading

accounts = threading.Lock(name="accounts")
audit = threading.Lock(name="audit")


def transfer():
    with accounts:
        with audit:
            pass


def nightly_report():
    with audit:
        with accounts:  # the rare, opposite order
            pass


for _ in range(1203):
    transfer()
reporter = threading.Thread(target=nightly_report, name="report-thread")
reporter.start()
reporter.join(30)

inversion = threading.snapshot().inversions[0]
print(inversion)
print()
print("locks:", inversion.locks)
print("edge counts:", [(edge.src, edge.dst, edge.count) for edge in inversion.edges])
