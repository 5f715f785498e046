"""The timeline trace: Chrome Trace Event Format output, per-thread slices, the ring buffer, the factory switch."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from test import lock_tests
from typing import Any

import pytest

import tracedthreading
from tracedthreading import _primitives, _sync, _threads, _trace


@pytest.fixture(autouse=True)
def _no_trace_left() -> Iterator[None]:
    """Never leave a trace running (and the factories switched) after a test."""
    yield
    if _trace.active:
        _trace.stop()


def _wait_until_blocked(thread: Any, primitive: Any) -> None:
    """Spin until ``thread`` is blocked acquiring ``primitive`` (the tracer's own wait-for state)."""
    deadline = time.monotonic() + 10
    while getattr(_threads.all_held().get(thread.ident), "waiting", None) != primitive._key:
        assert time.monotonic() < deadline, "thread never blocked"
        time.sleep(0.0005)


def _slices(data: dict[str, Any], cat: str | None = None, tid: int | None = None) -> list[dict[str, Any]]:
    return [e for e in data["traceEvents"] if e["ph"] == "X" and (cat is None or e["cat"] == cat)
            and (tid is None or e["tid"] == tid)]


def test_two_threads_hold_and_wait_slices(tmp_path: Path) -> None:
    """Two contending threads each get N hold slices and a wait slice ending where their first hold starts."""
    rounds = 5
    path = tmp_path / "trace.json"
    _trace.start(path)
    lock = tracedthreading.Lock(name="shared")
    go = tracedthreading.Event(name="go")

    def worker() -> None:
        go.wait(30)
        for _ in range(rounds):
            with lock:
                pass

    lock.acquire()
    threads = [tracedthreading.Thread(target=worker, name=f"worker-{i}") for i in range(2)]
    for thread in threads:
        thread.start()
    go.set()
    for thread in threads:
        _wait_until_blocked(thread, lock)
    lock.release()
    for thread in threads:
        thread.join(30)
    _trace.stop()

    data = json.loads(path.read_text())
    assert data["displayTimeUnit"] == "ms"
    assert data["otherData"]["dropped_events"] == 0
    names = {e["tid"]: e["args"]["name"] for e in data["traceEvents"] if e["ph"] == "M" and e["name"] == "thread_name"}
    for thread in threads:
        assert names[thread.ident] == thread.name
        holds = sorted(_slices(data, "hold", thread.ident), key=lambda e: e["ts"])
        waits = [e for e in _slices(data, "wait", thread.ident) if e["args"]["lock"] == "shared"]
        assert len(holds) == rounds
        assert all(e["name"] == "hold shared" and e["pid"] == os.getpid() and e["dur"] >= 0 for e in holds)
        assert waits, "a thread blocked on the lock has a wait slice"
        first_wait = min(waits, key=lambda e: e["ts"])
        # In whole ns (ts/dur are µs floats): the wait ends no later than the first hold begins.
        assert round((first_wait["ts"] + first_wait["dur"]) * 1000) <= round(holds[0]["ts"] * 1000)
    main_holds = _slices(data, "hold", _threads._thread.get_ident())
    assert len(main_holds) == 1
    main_end = main_holds[0]["ts"] + main_holds[0]["dur"]
    assert all(min(e["ts"] for e in _slices(data, "wait", t.ident)) < main_end for t in threads)


def test_primitives_made_before_the_trace_and_patched_ones_are_traced() -> None:
    """One recording hook: a lock made before start(), and one made by a patched threading, both record."""
    import threading

    early = tracedthreading.Lock(name="early")
    early_r = tracedthreading.RLock(name="early-r")
    with early:  # used before the trace: its cap was derived without it
        pass
    factories = (tracedthreading.Lock, tracedthreading.RLock, tracedthreading.Condition)
    _trace.start()
    assert (tracedthreading.Lock, tracedthreading.RLock, tracedthreading.Condition) == factories
    with tracedthreading.patched():
        patched_lock = threading.Lock()
    assert type(patched_lock) is tracedthreading.Lock
    with early, early_r, patched_lock:
        pass
    data = _trace.stop()
    held = sorted(e["args"]["lock"] for e in _slices(data, "hold"))
    assert held == sorted(["early", "early-r", patched_lock.name])
    with early:  # after stop(): nothing recorded, and the cap is back to normal
        pass
    assert _trace._buffer is None


def test_tracing_primitives_keep_names_and_statistics() -> None:
    """A traced lock is named after its creator's line, looks like a plain one, and still counts."""
    _trace.start()
    lock = tracedthreading.Lock(); line = __import__("sys")._getframe().f_lineno  # noqa: E702
    cond = tracedthreading.Condition()
    _trace.stop()
    with lock:
        pass
    assert lock.name == f"{__name__}:{line}"
    assert cond.trace_name == cond._lock.trace_name == f"{__name__}:{line + 1}"
    assert repr(lock).startswith("<unlocked tracedthreading.Lock object")
    assert tracedthreading.snapshot().lock(lock.name, "lock").acquisitions == 1


def test_ring_buffer_counts_what_it_dropped() -> None:
    """With room for 10 events, 25 holds keep the last 10 and report 15 dropped."""
    tracedthreading.configure(trace_buffer=10)
    _trace.start()
    lock = tracedthreading.Lock(name="busy")
    for _ in range(25):
        assert lock.acquire(False)  # non-blocking: a hold, never a wait slice
        lock.release()
    data = _trace.stop()
    holds = _slices(data, "hold")
    assert len(holds) == 10
    assert data["otherData"] == {**data["otherData"], "buffer": 10, "recorded_events": 25, "dropped_events": 15}
    assert holds == sorted(holds, key=lambda e: e["ts"])  # the newest were kept, oldest first


def test_rlock_reentry_is_one_hold_and_condition_wait_splits_it() -> None:
    """Re-entering an RLock makes one hold; a Condition wait ends the hold and starts a new one after it."""
    _trace.start()
    rlock = tracedthreading.RLock(name="r")
    with rlock:
        with rlock:
            pass
    cond = tracedthreading.Condition(name="c")
    with cond:
        cond.wait(0.001)
    data = _trace.stop()
    assert len([e for e in _slices(data, "hold") if e["args"]["lock"] == "r"]) == 1
    cond_holds = sorted((e for e in _slices(data, "hold") if e["args"]["kind"] == "rlock" and e["args"]["lock"] == "c"),
                        key=lambda e: e["ts"])
    (cond_wait,) = [e for e in _slices(data, "wait") if e["args"]["kind"] == "condition"]
    assert len(cond_holds) == 2 and cond_wait["args"]["timed_out"] is True
    assert cond_holds[0]["ts"] + cond_holds[0]["dur"] <= cond_wait["ts"] + 1e-3
    assert cond_holds[1]["ts"] >= cond_wait["ts"] + cond_wait["dur"] - 1e-3


def test_waits_of_event_semaphore_and_barrier() -> None:
    """Blocking waits on Event, Semaphore, BoundedSemaphore and Barrier are slices; non-blocking ones are not."""
    _trace.start()
    event = tracedthreading.Event(name="e")
    sem = tracedthreading.Semaphore(0, name="s")
    bounded = tracedthreading.BoundedSemaphore(1, name="b")
    barrier = tracedthreading.Barrier(2, name="bar")
    event.wait(0.001)
    sem.acquire(timeout=0.001)
    bounded.acquire()
    bounded.release()
    helper = tracedthreading.Thread(target=barrier.wait, name="helper")
    helper.start()
    barrier.wait()
    helper.join(30)
    event.set()
    event.wait()
    data = _trace.stop()
    waits = _slices(data, "wait")
    kinds = sorted((e["args"]["lock"], e["args"].get("timed_out", False)) for e in waits)
    assert kinds == [("bar", False), ("bar", False), ("e", True), ("s", True)]
    assert {e["tid"] for e in waits if e["args"]["lock"] == "bar"} == {helper.ident, _threads._main_ident}


def test_start_and_stop_misuse() -> None:
    """Starting twice or stopping when not started raises a RuntimeError saying so."""
    with pytest.raises(RuntimeError, match="not started"):
        _trace.stop()
    _trace.start()
    with pytest.raises(RuntimeError, match="already started"):
        _trace.start()
    _trace.stop()


def test_objects_outliving_the_trace_record_nothing() -> None:
    """A tracing lock used after stop() still works and counts, but nothing is recorded without a trace."""
    _trace.start()
    lock = tracedthreading.Lock(name="old")
    _trace.stop()
    with lock:
        pass
    assert _trace._buffer is None
    _trace.start()
    data = _trace.stop()
    assert _slices(data) == [] and data["otherData"]["recorded_events"] == 0
    assert tracedthreading.snapshot().lock("old").acquisitions == 1


@pytest.fixture
def _recording() -> Iterator[None]:
    """A timeline trace records for the duration of the test."""
    _trace.start()
    yield
    if _trace.active:
        _trace.stop()


# While a trace records, every primitive takes its slow paths for the timeline: they still pass
# CPython's own conformance tests.
@pytest.mark.usefixtures("_recording")
class TestLockWhileTracing(lock_tests.LockTests):
    locktype = staticmethod(tracedthreading.Lock)


@pytest.mark.usefixtures("_recording")
class TestRLockWhileTracing(lock_tests.RLockTests):
    locktype = staticmethod(tracedthreading.RLock)


@pytest.mark.usefixtures("_recording")
class TestConditionWhileTracing(lock_tests.ConditionTests):
    condtype = staticmethod(tracedthreading.Condition)


@pytest.mark.usefixtures("_recording")
class TestBoundedSemaphoreWhileTracing(lock_tests.BoundedSemaphoreTests):
    semtype = staticmethod(tracedthreading.BoundedSemaphore)


def test_threads_with_reused_idents_get_one_track_each() -> None:
    """Threads run one after another often get the ident of a finished one: each lifetime is its own
    track, named after its thread (10 philosophers were drawn as 6 tracks)."""
    lock = tracedthreading.Lock(name="fork")
    _trace.start()
    threads = []
    for i in range(10):
        def work(rounds: int = i + 1) -> None:
            for _ in range(rounds):
                with lock:
                    pass
        thread = tracedthreading.Thread(target=work, name=f"philosopher-{i}")
        thread.start()
        thread.join(30)
        threads.append(thread)
    data = _trace.stop()
    assert len({t.ident for t in threads}) < 10, "no ident was reused: the case is not exercised"
    names = {e["tid"]: e["args"]["name"] for e in data["traceEvents"] if e["ph"] == "M" and e["name"] == "thread_name"}
    by_name = {name: tid for tid, name in names.items()}
    assert sorted(by_name) == sorted(t.name for t in threads)
    assert len(set(names)) == 10
    for i, thread in enumerate(threads):
        assert len(_slices(data, "hold", by_name[thread.name])) == i + 1
    assert by_name["philosopher-0"] == threads[0].ident  # a first lifetime keeps the thread's ident
    assert all(0 < tid < 2**53 for tid in names)  # exact in JSON readers (JavaScript numbers)
