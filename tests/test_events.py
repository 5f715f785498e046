"""Events: emitted only past thresholds, carry the common fields, go to stderr or the app's structlog."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading as std
import time

import tracedthreading
from tracedthreading import _events
from tracedthreading.testing import capture_events, events_named

COMMON = {"event", "level", "lock", "kind", "thread", "thread_id", "timestamp"}


def _contend(lock: tracedthreading.Lock, hold: float) -> None:
    started = std.Event()

    def holder() -> None:
        with lock:
            started.set()
            time.sleep(hold)

    thread = std.Thread(target=holder, name="slowpoke")
    thread.start()
    started.wait(5)
    with lock:
        pass
    thread.join(5)


def test_no_event_below_thresholds() -> None:
    """Uncontended, short holds emit nothing at all."""
    lock = tracedthreading.Lock(name="quiet")
    with capture_events() as events:
        for _ in range(1000):
            with lock:
                pass
    assert events == []


def test_contended_event_past_threshold_has_schema_fields() -> None:
    """A wait past contended_threshold emits lock.contended with wait, holder and the common fields."""
    tracedthreading.configure(contended_threshold=0.01)
    lock = tracedthreading.Lock(name="busy")
    with capture_events() as events:
        _contend(lock, 0.05)
    [event] = events_named(events, "lock.contended")
    assert COMMON <= set(event)
    assert set(_events.SCHEMA["lock.contended"][2]) <= set(event)
    assert event["lock"] == "busy" and event["kind"] == "lock" and event["holder"] == "slowpoke"
    assert event["wait"] >= 0.03 and event["timed_out"] is False


def test_held_long_event_carries_stack() -> None:
    """A hold past held_long_threshold emits lock.held_long with a stack that names this test."""
    tracedthreading.configure(held_long_threshold=0.01)
    lock = tracedthreading.RLock(name="slow")
    with capture_events() as events:
        with lock:
            time.sleep(0.02)
    [event] = events_named(events, "lock.held_long")
    assert event["hold"] >= 0.015
    assert any("test_held_long_event_carries_stack" in frame for frame in event["stack"])


def test_other_primitives_emit_their_events() -> None:
    """Timeouts of Condition/Event, a broken Barrier and a late Timer are reported."""
    tracedthreading.configure(contended_threshold=0.0)
    with capture_events() as events:
        cond = tracedthreading.Condition(name="c")
        with cond:
            cond.wait(0.001)
        tracedthreading.Event(name="e").wait(0.001)
        barrier = tracedthreading.Barrier(2, name="b")
        try:
            barrier.wait(0.001)
        except std.BrokenBarrierError:
            pass
        timer = tracedthreading.Timer(0.0, lambda: None, name="t")
        timer.start()
        timer.join(5)
    names = {e["event"] for e in events}
    assert {"condition.wait_timeout", "event.wait_timeout", "barrier.broken", "timer.late"} <= names
    for event in events:
        assert event["event"] in _events.SCHEMA
        assert COMMON <= set(event)


def test_wait_for_reports_one_timeout() -> None:
    """Condition.wait_for that times out reports a single timeout event, not one per inner wait."""
    cond = tracedthreading.Condition(name="wf")
    with capture_events() as events, cond:
        assert cond.wait_for(lambda: False, timeout=0.03) is False
    assert len(events_named(events, "condition.wait_timeout")) == 1


def test_default_output_is_stderr_not_stdout() -> None:
    """Without structlog configured, events are one readable line each on stderr; stdout stays clean."""
    code = textwrap.dedent("""
        import threading, time, tracedthreading
        tracedthreading.configure(held_long_threshold=0.001)
        lock = tracedthreading.Lock(name="printed")
        with lock:
            time.sleep(0.01)
        print("program output")
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    assert proc.stdout == "program output\n"
    lines = [line for line in proc.stderr.splitlines() if "lock.held_long" in line]
    assert len(lines) == 1 and "printed" in lines[0]


def test_configured_structlog_is_followed() -> None:
    """When the application configured structlog, events go through its processors (here JSON)."""
    code = textwrap.dedent("""
        import structlog, sys, time, tracedthreading
        structlog.configure(processors=[structlog.processors.add_log_level,
                                        structlog.processors.JSONRenderer()],
                            logger_factory=structlog.PrintLoggerFactory(sys.stdout))
        tracedthreading.configure(held_long_threshold=0.001)
        lock = tracedthreading.Lock(name="json")
        with lock:
            time.sleep(0.01)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    record = json.loads(proc.stdout.splitlines()[0])
    assert record["event"] == "lock.held_long" and record["lock"] == "json" and record["level"] == "warning"


def test_library_never_configures_structlog() -> None:
    """Importing and using tracedthreading leaves structlog unconfigured."""
    code = "import structlog, tracedthreading; l = tracedthreading.Lock(); l.acquire(); l.release(); " \
           "print(structlog.is_configured())"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "False"


def test_emit_is_not_reentrant() -> None:
    """An event emitted while emitting (e.g. from a logging handler's lock) is dropped, not recursed."""
    before = _events.dropped

    def nested_sink(event: dict) -> None:
        _events.emit("lock.contended", "warning", {"lock": "inner", "kind": "lock"})

    _events.add_sink(nested_sink)
    try:
        with capture_events() as events:
            _events.emit("lock.contended", "warning", {"lock": "outer", "kind": "lock"})
    finally:
        _events.remove_sink(nested_sink)
    assert [e["lock"] for e in events] == ["outer"]
    assert _events.dropped == before + 1


def test_docs_document_every_event() -> None:
    """The docs' event table (docs/events.rst, generated from _events.SCHEMA) has a row for every event,
    with its level and fields."""
    from pathlib import Path

    docs = Path(__file__).resolve().parents[1] / "docs"
    assert "\n.. tt-events::\n" in (docs / "events.rst").read_text(encoding="utf-8")
    sys.path.insert(0, str(docs / "_ext"))
    try:
        import ttgen
    finally:
        sys.path.remove(str(docs / "_ext"))
    table = "\n".join(ttgen.event_schema_rst())
    rows = table.split("   * - ")[2:]  # after the header row
    assert len(rows) == len(_events.SCHEMA)
    for row, (name, (level, _when, fields)) in zip(rows, _events.SCHEMA.items()):
        assert row.startswith(f"``{name}``"), row
        assert f"     - {level}\n" in row, row
        for field in fields:
            assert f"``{field}``" in row, (name, field)


def test_inversion_on_stderr_is_readable_and_printed_when_it_happens() -> None:
    """Without structlog, an inversion is a short line plus its report's lines, written at the acquire that
    closes the cycle (before the program's next output), once; not one 8 KB line with ``\\n`` escapes."""
    code = textwrap.dedent("""
        import sys, tracedthreading
        a, b = tracedthreading.Lock(name="acct A"), tracedthreading.Lock(name="acct B")
        with a:
            with b:
                pass
        with b:
            with a:
                print("after the inversion", file=sys.stderr, flush=True)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert lines[-1] == "after the inversion"
    [header] = [i for i, line in enumerate(lines) if "lock.order_inversion" in line]
    assert max(len(line) for line in lines) < 300
    assert "\\n" not in proc.stderr and "edges=" not in lines[header]
    assert lines[header + 1] == "POSSIBLE DEADLOCK: lock-order inversion"
    assert lines[header + 2] == "  cycle: acct A -> acct B -> acct A"
    assert sum("POSSIBLE DEADLOCK" in line for line in lines) == 1
