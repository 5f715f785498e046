"""Re-entrancy: logging through traced handler locks, signal handlers and ``__del__`` taking traced locks.

The logging scenarios run in a subprocess (structlog is configured there, never for the test session).
Scenarios that deadlock today are kept in ``tests/pending_reentrancy.py`` (not collected).
"""

from __future__ import annotations

import gc
import json
import os
import signal
import subprocess
import sys
import threading as std

import pytest

import tracedthreading
from tracedthreading import _events, _threads

LOGGING_SCRIPT = r"""
import io, json, logging, sys, threading, time
import structlog
import tracedthreading
from tracedthreading import _events

try:
    from tracedthreading.patching import patch
    patch()
except ImportError:
    pass
structlog.configure(
    logger_factory=structlog.stdlib.LoggerFactory(),
    wrapper_class=structlog.stdlib.BoundLogger,
    processors=[structlog.stdlib.add_log_level, structlog.processors.JSONRenderer()],
)
SERIALIZE = sys.argv[1] == "serialize"
tracedthreading.configure(contended_threshold=0, held_long_threshold=0, wait_long_threshold=0)
sys.setswitchinterval(1e-5)
buffer = io.StringIO()
handler = logging.StreamHandler(buffer)
if not isinstance(handler.lock, tracedthreading.RLock):  # no patch(): trace the handler's lock by hand
    handler.lock = tracedthreading.RLock(name="handler")
root = logging.getLogger()
root.addHandler(handler)
root.setLevel(logging.DEBUG)
app = structlog.get_logger("app")
user = tracedthreading.Lock(name="user")
errors = []
THREADS, CALLS = 8, 150

def work(i):
    try:
        for k in range(CALLS):
            if SERIALIZE:  # every record goes through the handler under `user`
                with user:
                    logging.getLogger("std").info("record %d %d", i, k)
                    app.info("structlog", i=i, k=k)
            else:  # the handler's own lock is contended, and its events go through the handler itself
                with user:
                    time.sleep(0)  # gives up the GIL while holding: the others really wait for `user`
                logging.getLogger("std").info("record %d %d", i, k)
                app.info("structlog", i=i, k=k)
    except BaseException as exc:
        errors.append(repr(exc))

threads = [threading.Thread(target=work, args=(i,)) for i in range(THREADS)]
for t in threads: t.start()
for t in threads: t.join(30)
lines = buffer.getvalue().splitlines()
snap = tracedthreading.snapshot()
print(json.dumps({
    "errors": errors,
    "lines": len(lines),
    "event_lines": sum('"event": "lock.' in line for line in lines),
    "record_lines": sum('record ' in line or '"structlog"' in line for line in lines),
    "user_contentions": snap.lock("user").contentions,
    "handler_traced": type(handler.lock).__name__,
    "handler_takes": sum(s.acquisitions + s.reentries for s in snap.locks if s.kind == "rlock"),
    "dropped": _events.dropped,
    "inversions": len(snap.inversions),
    "deadlocks": len(snap.deadlocks),
    "calls": THREADS * CALLS * 2,
}))
"""


@pytest.mark.parametrize("mode", ["serialize", "free"])
def test_heavy_logging_through_traced_handler_locks_does_not_recurse_or_deadlock(mode: str) -> None:
    """8 threads log (stdlib and structlog-to-stdlib) into a handler with a traced lock, every threshold 0."""
    proc = subprocess.run([sys.executable, "-c", LOGGING_SCRIPT, mode], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    result = json.loads(proc.stdout)
    assert result["errors"] == []
    assert result["handler_traced"] == "RLock"
    assert result["user_contentions"] > 0
    # Every record reached the handler once; the other lines are tracedthreading's own events.
    assert result["record_lines"] == result["calls"]
    assert result["lines"] == result["calls"] + result["event_lines"]
    assert result["event_lines"] >= result["user_contentions"]  # contended (and wait_long) events about `user`
    assert result["handler_takes"] >= result["lines"]  # one take per line written, re-entries included
    assert result["inversions"] == 0 and result["deadlocks"] == 0


def _send_signal(handler: object) -> object:
    """Install ``handler`` for SIGUSR1 and return the previous one."""
    return signal.signal(signal.SIGUSR1, handler)  # type: ignore[arg-type]


@pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="needs POSIX signals")
def test_signal_handler_taking_traced_locks_between_acquires_keeps_state_consistent() -> None:
    """A SIGUSR1 handler that takes a Lock and re-enters an RLock, fired 300 times at varied points, leaves exact counts."""
    outer = tracedthreading.RLock(name="outer")
    inner = tracedthreading.Lock(name="inner")
    in_handler = tracedthreading.Lock(name="in-handler")
    ran = []

    def handler(signum: int, frame: object) -> None:
        with in_handler:
            with outer:  # a re-entry when the main thread holds `outer`, a plain acquire otherwise
                ran.append(list(_threads.current()))

    previous = _send_signal(handler)
    try:
        for k in range(300):
            if k % 3 == 0:
                os.kill(os.getpid(), signal.SIGUSR1)
            with outer:
                if k % 3 == 1:
                    os.kill(os.getpid(), signal.SIGUSR1)
                with inner:
                    if k % 3 == 2:
                        os.kill(os.getpid(), signal.SIGUSR1)
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert len(ran) == 300
    assert list(_threads.current()) == []
    snap = tracedthreading.snapshot()
    assert snap.lock("in-handler").acquisitions == 300
    assert snap.lock("inner").acquisitions == 300
    reentries = sum(1 for k in range(300) if k % 3 != 0)  # the handler ran while `outer` was held
    assert snap.lock("outer").reentries == reentries
    assert snap.lock("outer").acquisitions == 300 + (300 - reentries)
    assert not outer.locked() and not inner.locked() and not in_handler.locked()


@pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="needs POSIX signals")
def test_signal_handler_runs_while_main_thread_blocks_on_a_traced_lock() -> None:
    """A handler taking a traced lock while the main thread waits for another thread's lock (the stdlib's
    wait runs the handler and goes on waiting); the wait then completes, every stack exact."""
    contended = tracedthreading.Lock(name="contended")
    side = tracedthreading.Lock(name="side")
    holding, handled = std.Event(), std.Event()
    seen: list[list[int]] = []

    def handler(signum: int, frame: object) -> None:
        with side:
            seen.append(list(_threads.current()))
        handled.set()

    def holder() -> None:
        with contended:
            holding.set()
            while _threads.all_held().get(main_ident) is None or _threads.all_held()[main_ident].waiting is None:
                std.Event().wait(0.001)
            os.kill(os.getpid(), signal.SIGUSR1)
            handled.wait(10)

    main_ident = std.get_ident()
    _threads.current()
    previous = _send_signal(handler)
    try:
        thread = std.Thread(target=holder)
        thread.start()
        holding.wait(30)
        with contended:
            inside = list(_threads.current())
        thread.join(30)
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert handled.is_set()
    assert seen == [[side._key]]
    assert inside == [contended._key]
    assert list(_threads.current()) == []
    snap = tracedthreading.snapshot()
    assert snap.lock("contended").acquisitions == 2
    assert snap.lock("contended").contentions == 1
    assert snap.lock("side").acquisitions == 1


def test_del_taking_traced_locks_keeps_held_stacks_and_counts_exact() -> None:
    """``__del__`` methods taking traced locks, run by ``del`` and by the cycle collector, while other locks are held."""
    guard = tracedthreading.RLock(name="guard")
    in_del = tracedthreading.Lock(name="in-del")
    stacks: list[list[int]] = []
    dropped = _events.dropped

    class Resource:
        def __init__(self, cyclic: bool) -> None:
            self.me = self if cyclic else None

        def __del__(self) -> None:
            with guard:  # re-entered when the caller holds it
                with in_del:
                    stacks.append(list(_threads.current()))

    with guard:
        resource = Resource(cyclic=False)
        del resource
        assert list(_threads.current()) == [guard._key]
    gc.disable()
    try:
        with guard:
            for _ in range(50):
                Resource(cyclic=True)
            gc.collect()
            assert list(_threads.current()) == [guard._key]
    finally:
        gc.enable()
    assert stacks == [[guard._key, in_del._key]] * 51
    snap = tracedthreading.snapshot()
    assert snap.lock("in-del").acquisitions == 51
    assert snap.lock("guard").acquisitions == 2
    assert snap.lock("guard").reentries == 51
    assert list(_threads.current()) == []
    assert _events.dropped == dropped
    assert not guard.locked() and not in_del.locked()

