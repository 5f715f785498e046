"""The console renderer of the stderr default: structlog's ConsoleRenderer layout, without structlog."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time

import pytest
import structlog

from tracedthreading import _console

WHEN = 86400.0 * 365 + 3723.0


def structlog_line(event: str, level: str, fields: dict) -> str:
    """What structlog's ConsoleRenderer(colors=False) makes of the event, at time ``WHEN``."""
    renderer = structlog.dev.ConsoleRenderer(colors=False)
    event_dict = {"event": event, "level": level, "logger_name": "tracedthreading",
                  "timestamp": time.strftime("%H:%M:%S", time.localtime(WHEN)), **fields}
    return renderer(None, level, event_dict)  # type: ignore[no-any-return]


@pytest.mark.parametrize("fields", [
    {"lock": "a", "kind": "lock", "hold": 0.5},
    {"lock": "account A", "kind": "rlock", "wait": 1.25, "timed_out": False, "holder": None, "holder_id": 7},
    {"lock": "x=y", "kind": "event", "quote": "it's", "tab": "a\tb", "items": [1, "b"], "mapping": {"k": 1}},
])
@pytest.mark.parametrize("level", ["warning", "error", "critical", "info"])
def test_line_matches_structlog_console_renderer(fields: dict, level: str) -> None:
    """A flat event renders character for character as structlog's ConsoleRenderer(colors=False)."""
    assert _console.render("lock.contended", level, fields, WHEN) == structlog_line("lock.contended", level, fields)


def test_long_event_name_is_not_cut() -> None:
    """An event name longer than the 30-column pad is kept whole, as structlog does."""
    name = "tracedthreading.a_rather_long_event_name"
    assert _console.render(name, "warning", {"lock": "a"}, WHEN) == structlog_line(name, "warning", {"lock": "a"})


def test_stack_is_a_block_after_the_line() -> None:
    """``stack`` (a list, innermost last) follows the line as a traceback-like block, one frame a line."""
    text = _console.render("lock.held_long", "warning",
                           {"lock": "a", "kind": "lock", "stack": ["app.py:3 in main", "app.py:9 in work"]}, WHEN)
    first, *rest = text.splitlines()
    assert first.endswith("[tracedthreading] kind=lock lock=a")
    assert "stack" not in first
    assert rest == ["  Stack (most recent call last):", "    app.py:3 in main", "    app.py:9 in work"]


def test_holder_stack_is_a_block_too() -> None:
    """``lock.wait_long`` carries two stacks: both are blocks, labelled, never a list repr on the line."""
    text = _console.render("lock.wait_long", "warning",
                           {"lock": "a", "stack": ["w.py:1 in wait"], "holder_stack": ["h.py:2 in hold"]}, WHEN)
    assert text.splitlines()[1:] == ["  Stack (most recent call last):", "    w.py:1 in wait",
                                     "  Holder stack (most recent call last):", "    h.py:2 in hold"]
    assert "holder_stack" not in text.splitlines()[0]


def test_report_replaces_its_structured_copies() -> None:
    """An event with a ``report`` (inversion, deadlock) prints the report as lines, not the edges list
    and the report again with ``\\n`` escapes on one huge line."""
    report = "POSSIBLE DEADLOCK: lock-order inversion\n  cycle: a -> b -> a\n  fix: take a before b"
    fields = {"lock": "a", "kind": "lock", "cycle": ["a", "b"], "timed": False, "hint": "take a before b",
              "edges": [{"src": "a", "dst": "b", "stack": ["x.py:1 in f"] * 50}] * 2, "report": report,
              "threads": [{"thread": "t"}]}
    text = _console.render("lock.order_inversion", "error", fields, WHEN)
    first, *rest = text.splitlines()
    assert rest == report.splitlines()
    assert "\\n" not in text
    assert "edges=" not in first and "hint=" not in first and "report=" not in first and "threads=" not in first
    assert first.endswith("[tracedthreading] cycle=['a', 'b'] kind=lock lock=a timed=False")
    assert len(first) < 200


def test_write_goes_to_the_current_stderr() -> None:
    """Each write looks ``sys.stderr`` up again (pytest's capture swaps it); a None stderr is skipped."""
    saved = sys.stderr
    try:
        sys.stderr = first = io.StringIO()
        _console.write("one\ntwo")
        sys.stderr = second = io.StringIO()
        _console.write("three")
        sys.stderr = None  # type: ignore[assignment]
        _console.write("lost")
    finally:
        sys.stderr = saved
    assert (first.getvalue(), second.getvalue()) == ("one\ntwo\n", "three\n")


def test_write_survives_a_closed_stream() -> None:
    """A closed stderr (ValueError) or a failing one (OSError) loses the line, never raises."""
    closed = io.StringIO()
    closed.close()

    class Broken(io.StringIO):
        def write(self, text: str) -> int:
            raise OSError("disk full")

    saved = sys.stderr
    try:
        for stream in (closed, Broken()):
            sys.stderr = stream
            _console.write("line")
    finally:
        sys.stderr = saved


def test_timestamp_is_local_hh_mm_ss_of_the_emission() -> None:
    """The line starts with the emission time, local ``%H:%M:%S`` (TimeStamper's format there)."""
    line = _console.render("e", "warning", {}, WHEN)
    assert line.startswith(time.strftime("%H:%M:%S", time.localtime(WHEN)) + " [warning  ] e ")


def test_shown_levels() -> None:
    """The stderr default shows warning and above: info (timeouts of polling waits) and debug are not shown."""
    assert [level for level in ("debug", "info", "warning", "error", "critical") if _console.shown(level)] == [
        "warning", "error", "critical"]


FORK_MID_WRITE_SCRIPT = r"""
import _thread, os, sys, threading, time
from tracedthreading import _console

class SlowStream:  # like sys.stderr's buffer: a lock held for the whole write, never reset by a fork
    def __init__(self):
        self.lock = _thread.allocate_lock()
    def write(self, text):
        with self.lock:
            time.sleep(0.3)
    def flush(self):
        pass

sys.stderr = SlowStream()
writer = threading.Thread(target=_console.write, args=("from a thread",))
writer.start()
time.sleep(0.1)  # the thread is inside the stream's write now
pid = os.fork()
if pid == 0:
    _console.write("from the child")  # blocks for ever if the fork happened mid-write
    os._exit(0)
deadline = time.monotonic() + 10
while time.monotonic() < deadline:
    done, _status = os.waitpid(pid, os.WNOHANG)
    if done:
        print("child done")
        break
    time.sleep(0.05)
else:
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    print("child hung")
writer.join(30)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_fork_waits_for_a_write_in_progress_so_the_child_can_write() -> None:
    """A fork while another thread writes an event: the fork waits for the write, so the child's copy of
    the stream's own lock is free and the child's first event is written instead of hanging."""
    proc = subprocess.run([sys.executable, "-W", "ignore", "-c", FORK_MID_WRITE_SCRIPT], capture_output=True,
                          text=True, timeout=60)
    assert proc.stdout.strip() == "child done", proc.stdout + proc.stderr
