"""Two tests that take two locks in opposite orders: under ``pytest --tracedthreading`` the second fails.

Shown in docs/pytest-plugin.rst. Neither test deadlocks on its own; the plugin keeps the lock-order
history of the whole session, so the second order closes the cycle and fails the test that took it.
"""

import threading

accounts = threading.Lock()
audit = threading.Lock()


def test_transfer():
    with accounts:
        with audit:
            pass


def test_nightly_report():
    with audit:
        with accounts:
            pass
