"""Faults: exceptions inside blocked waits, fork with held locks, threads dying holding locks, shutdown, off switch."""

from __future__ import annotations

import gc
import json
import os
import signal
import subprocess
import sys
import threading as std
from collections.abc import Callable
from typing import Any

import pytest

import tracedthreading
from tracedthreading import _threads
from tracedthreading.testing import capture_events

needs_signals = pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="needs POSIX signals")


class Interrupted(Exception):
    """Raised by the test's signal handler inside a blocked call."""


def _interrupt_when(ready: Callable[[], bool]) -> std.Thread:
    """Start a thread that sends SIGUSR1 to the process once ``ready()`` is true (the main thread is blocked)."""

    def send() -> None:
        while not ready():
            std.Event().wait(0.002)
        std.Event().wait(0.02)  # let the main thread enter the blocking C call
        os.kill(os.getpid(), signal.SIGUSR1)

    thread = std.Thread(target=send)
    thread.start()
    return thread


def _main_waiting() -> bool:
    held = _threads.all_held().get(std.main_thread().ident or 0)
    return held is not None and held.waiting is not None


@pytest.fixture
def raising_handler() -> Any:
    """SIGUSR1 raises :class:`Interrupted` in the main thread for the duration of the test."""

    def handler(signum: int, frame: object) -> None:
        raise Interrupted

    previous = signal.signal(signal.SIGUSR1, handler)
    yield
    signal.signal(signal.SIGUSR1, previous)


@needs_signals
@pytest.mark.parametrize("factory", [tracedthreading.Lock, tracedthreading.RLock], ids=["Lock", "RLock"])
@pytest.mark.parametrize("timeout", [-1, 30])
def test_exception_inside_blocked_acquire_leaves_state_consistent(
    raising_handler: None, factory: Any, timeout: float,
) -> None:
    """An exception raised by a signal handler while blocked in acquire: nothing held, not waiting, lock reusable."""
    lock = factory(name="victim")
    holding, release = std.Event(), std.Event()

    def holder() -> None:
        with lock:
            holding.set()
            release.wait(30)

    thread = std.Thread(target=holder)
    thread.start()
    holding.wait(30)
    sender = _interrupt_when(_main_waiting)
    with pytest.raises(Interrupted):
        lock.acquire(timeout=timeout)
    sender.join(30)
    mine = _threads.current()
    assert list(mine) == [] and _threads.record_of(mine).waiting is None
    assert lock.locked() and lock._holder is not mine
    release.set()
    thread.join(30)
    with lock:
        assert list(mine) == [lock._key]
    assert list(mine) == []
    stats = tracedthreading.snapshot().lock("victim")
    # The interrupted wait is not recorded (neither a contention nor a timeout): only completed waits are.
    assert (stats.acquisitions, stats.contentions, stats.timeouts) == (2, 0, 0)


@needs_signals
@pytest.mark.parametrize("kind", ["condition", "semaphore", "event", "barrier"])
def test_exception_inside_blocked_wait_leaves_state_consistent(raising_handler: None, kind: str) -> None:
    """An exception raised inside Condition.wait / Semaphore.acquire / Event.wait / Barrier.wait leaves clean state."""
    blocking = std.Event()
    cond = tracedthreading.Condition(name="c")
    sem = tracedthreading.Semaphore(0, name="s")
    event = tracedthreading.Event(name="e")
    barrier = tracedthreading.Barrier(2, name="b")
    calls = {
        "condition": lambda: cond.wait(30),
        "semaphore": lambda: sem.acquire(timeout=30),
        "event": lambda: event.wait(30),
        "barrier": lambda: barrier.wait(30),
    }
    sender = _interrupt_when(blocking.is_set)
    with cond if kind == "condition" else _nothing():
        blocking.set()
        with pytest.raises(Interrupted):
            calls[kind]()
        if kind == "condition":
            assert cond._is_owned() and list(_threads.current()) == [cond._lock._key]
    sender.join(30)
    assert list(_threads.current()) == []
    assert _threads.record_of(_threads.current()).waiting is None
    snap = tracedthreading.snapshot()
    # Nothing completed, so nothing was recorded (a primitive is listed once it records something).
    assert [s.acquisitions for s in snap.locks if s.name == kind[0] and s.kind == kind] in ([], [0])
    if kind == "condition":
        assert snap.lock("c", kind="rlock").acquisitions == 2  # the `with`, and the re-acquire after the wait
        assert not cond._lock.locked()
    if kind == "barrier":
        # As with the stdlib: only a timeout breaks a barrier; the interrupted party just leaves it.
        assert not barrier.broken and barrier.n_waiting == 0


class _nothing:
    """A do-nothing context manager (``contextlib.nullcontext`` with a shorter name)."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


FORK_SCRIPT = r"""
import json, os, sys, threading
import tracedthreading
from tracedthreading import _threads
from tracedthreading.testing import wait_until_blocked
a = tracedthreading.Lock(name="a"); r = tracedthreading.RLock(name="r"); other = tracedthreading.Lock(name="other")
go, stop = threading.Event(), threading.Event()
def background():
    with other:
        go.set(); stop.wait()
thread = threading.Thread(target=background, daemon=True); thread.start(); go.wait()
with a, r, r:
    waiter = threading.Thread(target=lambda: a.acquire() and a.release(), daemon=True); waiter.start()
    wait_until_blocked(waiter, a)  # the waiter is blocked on `a` when the fork happens
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        result = {}
        try:
            result["held"] = list(_threads.current()) == [a._key, r._key]
            result["threads"] = sorted(_threads.all_held()) == [threading.get_ident()]
            fresh = tracedthreading.Lock(name="fresh")
            with fresh:
                result["fresh_held"] = list(_threads.current()) == [a._key, r._key, fresh._key]
            result["other_locked"] = other.locked()          # its holder does not exist in the child
            result["other_timeout"] = other.acquire(timeout=0.01)
            r.release(); r.release(); a.release()
            result["after"] = list(_threads.current())
            result["a_again"] = a.acquire(timeout=1)
            a.release()
            snap = tracedthreading.snapshot()
            result["fresh_acq"] = snap.lock("fresh").acquisitions
            result["other_timeouts"] = snap.lock("other").timeouts
            result["r_reentries"] = snap.lock("r").reentries
        except BaseException as exc:
            result["error"] = repr(exc)
        os.write(write, json.dumps(result).encode())
        os._exit(0)
    os.close(write)
    data = b""
    while chunk := os.read(read, 65536):
        data += chunk
    _, status = os.waitpid(pid, 0)
stop.set()
print(json.dumps({"child": json.loads(data), "status": os.waitstatus_to_exitcode(status),
                  "parent_after": list(_threads.current())}))
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_fork_with_held_locks_gives_the_child_a_sane_tracker() -> None:
    """A child forked while holding traced locks keeps its own stack, forgets other threads, can make new locks."""
    proc = subprocess.run([sys.executable, "-W", "ignore", "-c", FORK_SCRIPT], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["status"] == 0
    assert result["parent_after"] == []
    child = result["child"]
    assert "error" not in child, child
    assert child["held"] and child["threads"] and child["fresh_held"]
    assert child["other_locked"] is True and child["other_timeout"] is False
    assert child["after"] == []
    assert child["a_again"] is True
    assert child["fresh_acq"] == 1 and child["other_timeouts"] == 1 and child["r_reentries"] == 1


def test_thread_dying_while_holding_locks_breaks_nothing() -> None:
    """A thread that ends holding a Lock and an RLock: no exception, one thread.died_holding, Lock releasable."""
    lock = tracedthreading.Lock(name="orphan")
    rlock = tracedthreading.RLock(name="orphan-r")
    errors: list[BaseException] = []

    def die() -> None:
        try:
            lock.acquire()
            rlock.acquire()
            rlock.acquire()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    with capture_events() as events:
        thread = std.Thread(target=die)
        thread.start()
        thread.join(30)
        assert lock.locked() and rlock.locked()  # as with the stdlib: the locks stay taken
        assert lock.acquire(timeout=0.01) is False
        assert rlock.acquire(timeout=0.01) is False
        lock.release()  # a Lock may be released by any thread
        with lock:
            assert list(_threads.current()) == [lock._key]
    assert errors == []
    errors_logged = [e for e in events if e["level"] in ("error", "critical")]
    assert [(e["event"], e["held"]) for e in errors_logged] == [("thread.died_holding", ["orphan", "orphan-r"])]
    assert list(_threads.current()) == []
    snap = tracedthreading.snapshot()
    assert snap.lock("orphan").acquisitions == 2 and snap.lock("orphan").timeouts == 1
    assert snap.lock("orphan-r").acquisitions == 1  # still held by the dead thread, counted once
    assert snap.lock("orphan-r").reentries == 1
    with pytest.raises(RuntimeError, match="un-acquired"):
        rlock.release()  # only its (dead) owner could


def test_a_held_lock_that_is_garbage_collected_leaves_the_held_stack() -> None:
    """Dropping the last reference to a held Lock (legal with the stdlib) does not leave its key held forever."""

    def take_and_drop() -> None:
        lock = tracedthreading.Lock()
        lock.acquire()

    take_and_drop()
    gc.collect()
    assert list(_threads.current()) == []


def test_timer_run_called_directly_reports_no_bogus_lateness() -> None:
    """``Timer.run()`` without ``start()`` (as some tests do) does not report the time since boot as lateness."""
    tracedthreading.configure(contended_threshold=0)
    with capture_events() as events:
        tracedthreading.Timer(0, lambda: None, name="direct").run()
    assert all(event.get("late", 0) < 1.0 for event in events), events
    assert tracedthreading.snapshot().lock("direct").wait_max < 1.0


SHUTDOWN_SCRIPT = r"""
import sys, threading, time
import tracedthreading
tracedthreading.configure(contended_threshold=0, held_long_threshold=0, wait_long_threshold=0)
lock, rlock = tracedthreading.Lock(name="l"), tracedthreading.RLock(name="r")
cond, sem = tracedthreading.Condition(name="c"), tracedthreading.Semaphore(1, name="s")
event, barrier = tracedthreading.Event(name="e"), tracedthreading.Barrier(3, name="b")
started = threading.Barrier(7)
def holder():
    with lock, rlock, rlock, sem:
        started.wait(); time.sleep(60)
def waiter(primitive):
    started.wait()
    with primitive:
        pass
def cond_waiter():
    with cond:
        started.wait(); cond.wait()
def busy():
    started.wait()
    mine = tracedthreading.Lock(name="busy")
    while True:
        with mine:
            event.wait(0)
for target, args in [(holder, ()), (waiter, (lock,)), (waiter, (rlock,)), (waiter, (sem,)), (cond_waiter, ()),
                     (busy, ())]:
    threading.Thread(target=target, args=args, daemon=True).start()
threading.Thread(target=barrier.wait, daemon=True).start()
started.wait()
time.sleep(0.05)
print("exiting", flush=True)
"""


def test_shutdown_with_daemon_threads_holding_traced_locks_is_silent() -> None:
    """Exiting while daemon threads hold, wait for and churn traced locks prints no traceback from tracedthreading."""
    proc = subprocess.run([sys.executable, "-c", SHUTDOWN_SCRIPT], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "exiting"
    assert "Traceback" not in proc.stderr
    assert "Exception ignored" not in proc.stderr
    assert "Error" not in proc.stderr


# -- the off switch -------------------------------------------------------------------------------------

OFF_SCRIPT = r"""
import json, threading
import tracedthreading as t
made = {"Lock": t.Lock(name="x"), "RLock": t.RLock(name="x"), "Condition": t.Condition(name="x"),
        "Semaphore": t.Semaphore(2, name="x"), "BoundedSemaphore": t.BoundedSemaphore(name="x"),
        "Event": t.Event(name="x"), "Barrier": t.Barrier(1, name="x"), "Timer": t.Timer(1, print, name="x")}
raw = {"Lock": type(threading.Lock()), "RLock": type(threading.RLock()), "Condition": threading.Condition,
       "Semaphore": threading.Semaphore, "BoundedSemaphore": threading.BoundedSemaphore, "Event": threading.Event,
       "Barrier": threading.Barrier, "Timer": threading.Timer}
with made["Lock"]:
    pass
print(json.dumps({"identical": {name: type(obj) is raw[name] for name, obj in made.items()},
                  "locks": len(t.snapshot().locks)}))
"""


def test_env_off_switch_gives_raw_stdlib_objects() -> None:
    """With TRACEDTHREADING_ENABLED=0 every factory returns the stdlib's own type, and nothing is recorded."""
    env = {**os.environ, "TRACEDTHREADING_ENABLED": "0"}
    proc = subprocess.run([sys.executable, "-c", OFF_SCRIPT], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["identical"] == dict.fromkeys(result["identical"], True)
    assert len(result["identical"]) == 8
    assert result["locks"] == 0


def test_configure_off_switch_gives_raw_stdlib_objects_and_back() -> None:
    """``configure(enabled=False)`` makes new primitives the stdlib's types; ``enabled=True`` brings tracing back."""
    tracedthreading.configure(enabled=False)
    made = [
        (tracedthreading.Lock(name="off"), type(std.Lock())),
        (tracedthreading.RLock(name="off"), type(std.RLock())),
        (tracedthreading.Condition(name="off"), std.Condition),
        (tracedthreading.Semaphore(name="off"), std.Semaphore),
        (tracedthreading.BoundedSemaphore(name="off"), std.BoundedSemaphore),
        (tracedthreading.Event(name="off"), std.Event),
        (tracedthreading.Barrier(1, name="off"), std.Barrier),
    ]
    for obj, expected in made:
        assert type(obj) is expected
    with made[0][0]:
        pass
    assert [s for s in tracedthreading.snapshot().locks if s.name == "off"] == []
    tracedthreading.configure(enabled=True)
    traced = tracedthreading.Lock(name="on")
    assert type(traced) is not type(std.Lock())
    with traced:
        pass
    assert tracedthreading.snapshot().lock("on").acquisitions == 1


TOKEN_FORK_SCRIPT = r"""
import _thread, json, os, threading
from tracedthreading import _primitives, _threads

lock = _primitives.PyLock(name="shared")
ready, done = threading.Event(), threading.Event()
parent_thread = {}

def hold_token():
    with lock:  # the lock now remembers this thread's (token, stack)
        pass
    parent_thread["ident"] = _thread.get_ident()
    parent_thread["token"] = _threads.me()[0]
    ready.set()
    done.wait(30)

t = threading.Thread(target=hold_token)
t.start()
ready.wait(30)
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    result = {}
    try:
        result["other_token"] = repr(parent_thread["token"]).split()[0]  # owned by nobody in the child
        seen = []
        def again():
            with lock:
                seen.append((_thread.get_ident(), lock._holder is _threads.current(), list(_threads.current())))
        for _ in range(20):
            c = threading.Thread(target=again)
            c.start()
            c.join(30)
            if seen[-1][0] == parent_thread["ident"]:
                break
        result["reused"] = seen[-1][0] == parent_thread["ident"]
        result["own_stacks"] = all(own and keys == [lock._key] for _, own, keys in seen)
    except BaseException as exc:
        result["error"] = repr(exc)
    os.write(w, json.dumps(result).encode())
    os._exit(0)
os.close(w)
data = os.read(r, 65536)
os.waitpid(pid, 0)
done.set()
t.join(30)
print(data.decode())
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_childs_new_thread_is_never_taken_for_a_parent_thread() -> None:
    """In a fork's child the other threads' tokens are freed: a new thread there (which may get the id of
    a parent thread that last took a pure lock) takes the lock with its own held stack."""
    proc = subprocess.run([sys.executable, "-W", "ignore", "-c", TOKEN_FORK_SCRIPT], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    child = json.loads(proc.stdout)
    assert "error" not in child, child
    assert child["other_token"] == "<unlocked"
    assert child["own_stacks"] is True
