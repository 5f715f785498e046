"""Real deadlocks (wait-for cycles) at the moment they happen, self-waits and the long-wait watchdog."""

from __future__ import annotations

import threading as std_threading
from typing import Any

import tracedthreading
from tracedthreading import _stats, _threads
from tracedthreading.testing import capture_events, events_named

DEADLOCK = "deadlock.detected"


def run_deadlock(count: int, timeout: float, same_name: bool = False
                 ) -> tuple[list[dict[str, Any]], list[Any], dict[str, Any]]:
    """``count`` threads, thread i holding lock i and then waiting (timed) for lock i+1; wait for them all.

    Returns the captured events, the locks, and what the sink saw when the deadlock event arrived.
    """
    lock_list = [tracedthreading.Lock(name="L" if same_name else f"L{i}") for i in range(count)]
    barrier = std_threading.Barrier(count)  # raw: a traced one would warn about blocking while holding
    returned: list[str] = []
    results: dict[str, bool] = {}
    at_event: dict[str, Any] = {}

    def worker(i: int) -> None:
        with lock_list[i]:
            barrier.wait(30)
            got = lock_list[(i + 1) % count].acquire(timeout=timeout)
            returned.append(f"w{i}")
            results[f"w{i}"] = got
            if got:
                lock_list[(i + 1) % count].release()

    def sink(event: dict[str, Any]) -> None:
        if event["event"] == DEADLOCK and not at_event:
            at_event["returned"] = list(returned)
            held = _threads.all_held()
            at_event["waiting"] = sorted(
                _stats.primitive(h.waiting).name for h in held.values() if h.waiting is not None
            )

    from tracedthreading import _events

    _events.add_sink(sink)
    try:
        with capture_events() as events:
            threads = [tracedthreading.Thread(target=worker, args=(i,), name=f"w{i}") for i in range(count)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(30)
    finally:
        _events.remove_sink(sink)
    at_event["results"] = results
    return events, lock_list, at_event


def test_a_deadlock_between_locks_of_one_name_names_them_as_the_order_graph_does() -> None:
    """Two locks named alike (``L`` and ``L#2`` in the order graph): the deadlock report tells them apart
    with the same names, so it agrees with the inversion report of the same cycle."""
    events, _lock_list, _seen = run_deadlock(2, timeout=1.0, same_name=True)
    (event,) = events_named(events, DEADLOCK)
    threads = {t["thread"]: t for t in event["threads"]}
    assert sorted(t["waits_for"] for t in threads.values()) == ["L", "L#2"]
    assert threads["w0"]["holds"] == [threads["w1"]["waits_for"]]
    assert threads["w1"]["holds"] == [threads["w0"]["waits_for"]]
    (inversion,) = events_named(events, "lock.order_inversion")
    assert sorted(inversion["cycle"]) == ["L", "L#2"]


def test_two_thread_deadlock_is_reported_while_both_threads_still_wait() -> None:
    """A holds L0, waits L1; B holds L1, waits L0 (timed): reported before either wait returns; reset() clears it."""
    events, lock_list, seen = run_deadlock(2, timeout=1.0)
    (event,) = events_named(events, DEADLOCK)
    assert seen["returned"] == []  # emitted by the thread about to block, while the other still waited
    # The reporting thread runs tracedthreading's logging as the event arrives, so it shows as waiting
    # for nothing (see _threads.enter_logging); the other one still waits.
    assert len(seen["waiting"]) == 1 and seen["waiting"][0] in ("L0", "L1")
    assert event["level"] == "critical"
    threads = {t["thread"]: t for t in event["threads"]}
    assert set(threads) == {"w0", "w1"}
    assert threads["w0"]["holds"] == ["L0"] and threads["w0"]["waits_for"] == "L1"
    assert threads["w1"]["holds"] == ["L1"] and threads["w1"]["waits_for"] == "L0"
    for info in threads.values():
        assert info["stack"] and info["stack"][-1].endswith("in worker")
    (report,) = tracedthreading.snapshot().deadlocks
    assert {t.thread: (t.holds, t.waits_for) for t in report.threads} == {
        "w0": (("L0",), "L1"), "w1": (("L1",), "L0")}
    assert "DEADLOCK: 2 threads wait for each other" in str(report)
    assert set(seen["results"]) == {"w0", "w1"}  # both timed waits returned: the program ends
    tracedthreading.reset()
    assert tracedthreading.snapshot().deadlocks == ()  # reset() clears the reports


def test_three_thread_deadlock_names_every_thread_once() -> None:
    """A cycle of three threads is one report naming all three with what each holds and waits for."""
    events, _locks, seen = run_deadlock(3, timeout=1.0)
    (event,) = events_named(events, DEADLOCK)
    assert seen["returned"] == []
    chain = {t["thread"]: (t["holds"], t["waits_for"]) for t in event["threads"]}
    assert chain == {"w0": (["L0"], "L1"), "w1": (["L1"], "L2"), "w2": (["L2"], "L0")}
    assert len(tracedthreading.snapshot().deadlocks) == 1


def test_no_deadlock_when_the_holder_is_not_waiting_on_a_lock() -> None:
    """Waiting for a lock whose holder waits on an Event (not a lock) is contention, not a deadlock."""
    lock = tracedthreading.Lock(name="L")
    taken, done = tracedthreading.Event(), tracedthreading.Event()

    def holder() -> None:
        with lock:
            taken.set()
            done.wait(30)

    thread = tracedthreading.Thread(target=holder)
    with capture_events() as events:
        thread.start()
        taken.wait(30)
        assert not lock.acquire(timeout=0.01)
        done.set()
        thread.join(30)
    assert not events_named(events, DEADLOCK)
    assert tracedthreading.snapshot().deadlocks == ()


def test_blocking_on_a_lock_you_hold_is_a_self_wait_warning_not_a_deadlock() -> None:
    """A thread acquiring a plain Lock it holds gets lock.self_wait (once per lock), no deadlock."""
    lock = tracedthreading.Lock(name="L")
    with capture_events() as events:
        with lock:
            assert not lock.acquire(timeout=0.01)
            assert not lock.acquire(timeout=0.01)
    (event,) = events_named(events, "lock.self_wait")
    assert event["lock"] == "L" and event["level"] == "warning"
    assert event["stack"][-1].endswith("in test_blocking_on_a_lock_you_hold_is_a_self_wait_warning_not_a_deadlock")
    assert not events_named(events, DEADLOCK)
    assert tracedthreading.snapshot().deadlocks == ()


def test_self_wait_released_by_another_thread_proceeds() -> None:
    """A Lock used as a signal (held, re-acquired, released by another thread) works and is no deadlock."""
    lock = tracedthreading.Lock(name="signal")
    lock.acquire()
    timer = tracedthreading.Timer(0.01, lock.release)
    with capture_events() as events:
        timer.start()
        assert lock.acquire(timeout=10)
    timer.join(30)
    lock.release()
    assert len(events_named(events, "lock.self_wait")) == 1
    assert not events_named(events, DEADLOCK)
    assert list(_threads.current()) == []


def test_long_wait_names_the_holder_with_both_stacks() -> None:
    """A wait past wait_long_threshold emits lock.wait_long with the holder and both stacks."""
    tracedthreading.configure(wait_long_threshold=0.05)
    lock = tracedthreading.Lock(name="L")
    taken = tracedthreading.Event()
    release = std_threading.Event()  # raw: set from the sink, inside event emission

    def holder_function() -> None:
        with lock:
            taken.set()
            release.wait(10)

    def sink(event: dict[str, Any]) -> None:
        if event["event"] == "lock.wait_long":
            release.set()

    thread = tracedthreading.Thread(target=holder_function, name="holder")
    from tracedthreading import _events

    _events.add_sink(sink)
    try:
        with capture_events() as events:
            thread.start()
            taken.wait(30)
            assert lock.acquire()  # blocks until the sink lets the holder go
            lock.release()
            thread.join(30)
    finally:
        _events.remove_sink(sink)
    (event,) = events_named(events, "lock.wait_long")
    assert event["holder"] == "holder" and event["holder_id"] == thread.ident
    assert event["wait"] >= 0.05
    assert event["stack"][-1].endswith("in test_long_wait_names_the_holder_with_both_stacks")
    assert any("in holder_function" in frame for frame in event["holder_stack"])
    assert not events_named(events, DEADLOCK)


def test_long_wait_threshold_defaults_to_30_seconds() -> None:
    """The watchdog is on by default, at go-deadlock's order of magnitude: 30 s."""
    from tracedthreading import _config

    assert _config.Config().wait_long_threshold == 30.0


def test_self_wait_past_the_threshold_is_also_a_long_wait() -> None:
    """A thread blocked on a Lock it holds itself gets lock.self_wait, then lock.wait_long naming itself."""
    tracedthreading.configure(wait_long_threshold=0.05)
    lock = tracedthreading.Lock(name="L")
    with capture_events() as events:
        with lock:
            assert not lock.acquire(timeout=0.3)
    assert len(events_named(events, "lock.self_wait")) == 1
    (event,) = events_named(events, "lock.wait_long")
    assert event["lock"] == "L" and event["holder"] == std_threading.current_thread().name
    assert not events_named(events, DEADLOCK)


def test_long_wait_watchdog_can_be_turned_off() -> None:
    """wait_long_threshold=None never emits lock.wait_long."""
    tracedthreading.configure(wait_long_threshold=None)
    lock = tracedthreading.Lock(name="L")
    with capture_events() as events:
        lock.acquire()
        timer = tracedthreading.Timer(0.05, lock.release)
        timer.start()
        with lock:  # a self-wait until the timer releases it
            pass
        timer.join(30)
    assert not events_named(events, "lock.wait_long")


def test_timed_wait_shorter_than_the_threshold_is_not_a_long_wait() -> None:
    """A timed acquire that gives up before wait_long_threshold is not reported as a long wait."""
    tracedthreading.configure(wait_long_threshold=5)
    lock = tracedthreading.Lock(name="L")
    taken, done = tracedthreading.Event(), tracedthreading.Event()

    def holder() -> None:
        with lock:
            taken.set()
            done.wait(30)

    thread = tracedthreading.Thread(target=holder)
    with capture_events() as events:
        thread.start()
        taken.wait(30)
        assert not lock.acquire(timeout=0.02)
        done.set()
        thread.join(30)
    assert not events_named(events, "lock.wait_long")

