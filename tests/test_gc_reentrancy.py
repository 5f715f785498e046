"""A ``__del__`` run by the garbage collector inside the tracer must not deadlock the thread.

The tracer's raw locks are re-entrant and a nested lock-order observation is skipped (found by the
hardening work; this test deadlocked before the fix).
"""

from __future__ import annotations

import subprocess
import sys

DEL_SCRIPT = r"""
import gc, sys
import tracedthreading as tt
outer = tt.Lock(name="outer")
ran = [0]
class Resource:
    def __init__(self):
        self.me = self          # a cycle: freed by the collector, at whatever allocation triggers it
    def __del__(self):
        with outer:             # a traced lock, taken while the main thread may be inside observe()
            with tt.Lock(name="in-del"):
                ran[0] += 1
a = tt.Lock(name="a")
for i in range(20000):
    for _ in range(3):
        Resource()
    with a:
        lock = tt.Lock()        # a new edge a -> lock each time: observe() allocates under its raw lock
        with lock:
            pass
gc.collect()
print("done", ran[0])
"""


def test_del_run_by_gc_inside_observe_does_not_deadlock() -> None:
    """A cyclic object's ``__del__`` taking traced locks, collected while the tracer holds its own lock, finishes."""
    proc = subprocess.run([sys.executable, "-c", DEL_SCRIPT], capture_output=True, text=True, timeout=20)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["done", "60000"]
