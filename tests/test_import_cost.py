"""Import-time weight: ``import tracedthreading`` leaves structlog (and asyncio) and wrapt unimported.

tracedthreading never imports structlog itself (the stderr default has its own renderer; a program
that configured structlog has imported it), wrapt is imported by the first ``patch()``. Each
case runs in a fresh interpreter (the test session itself has imported everything long ago); none
asserts a duration, only which modules are loaded and that events still arrive where they did.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[1] / "src")
HEAVY = ("structlog", "asyncio", "wrapt")


def run(code: str, *args: str, module: bool = False, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``code`` (or ``-m tracedthreading ARGS`` when ``module``) in a fresh interpreter; it must succeed."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "tracedthreading", *args] if module else [sys.executable, "-c", textwrap.dedent(code)]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env, cwd=cwd, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc


def loaded(proc: subprocess.CompletedProcess[str]) -> dict[str, bool]:
    """The JSON object the child printed last: module name -> whether it was in ``sys.modules``."""
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


REPORT = f"import json, sys; print(json.dumps({{name: name in sys.modules for name in {HEAVY!r}}}))"


def test_import_loads_neither_structlog_nor_wrapt() -> None:
    """The package, its testing helpers and the patch module import without structlog, asyncio or wrapt."""
    proc = run(f"""
        import tracedthreading, tracedthreading.testing, tracedthreading.patching, tracedthreading.snapshot
        lock = tracedthreading.Lock()
        with lock:
            pass
        tracedthreading.snapshot()
        {REPORT}
    """)
    assert loaded(proc) == dict.fromkeys(HEAVY, False)


def test_events_on_stderr_never_import_structlog() -> None:
    """No structlog setup: a warning event is one readable line on stderr, and structlog stays unimported."""
    proc = run(f"""
        import sys, time, tracedthreading
        from tracedthreading import _events
        tracedthreading.configure(held_long_threshold=0.001)
        lock = tracedthreading.Lock(name="first")
        with lock:
            time.sleep(0.01)
        assert _events.dropped == 0, _events.dropped
        print("program output")
        {REPORT}
    """)
    assert loaded(proc) == dict.fromkeys(HEAVY, False)
    assert proc.stdout.splitlines()[0] == "program output"
    [line] = [line for line in proc.stderr.splitlines() if "lock.held_long" in line]
    assert "lock=first" in line and "[warning  ]" in line


def test_stderr_shows_warnings_and_above_only() -> None:
    """Timeouts of polling waits (info) are not printed on stderr; listeners and a configured structlog get them."""
    proc = run("""
        import queue, sys, tracedthreading
        from tracedthreading import _events
        seen = []
        _events.add_sink(seen.append)
        event, cond = tracedthreading.Event(name="poll"), tracedthreading.Condition(name="cond")
        for _ in range(5):
            event.wait(0.001)
            with cond:
                cond.wait(0.001)
        _events.emit(_events.LOCK_CONTENDED, "warning", {"lock": "shown", "kind": "lock", "wait": 1.0})
        print(sorted({e["event"] for e in seen}))
        import structlog
        records = []
        structlog.configure(processors=[lambda logger, method, event_dict: records.append((method, event_dict["event"])) or ""],
                            logger_factory=structlog.ReturnLoggerFactory())
        event.wait(0.001)
        print(records)
    """)
    assert proc.stdout.splitlines() == [
        "['condition.wait_timeout', 'event.wait_timeout', 'lock.contended']",
        "[('info', 'event.wait_timeout')]",
    ]
    assert "wait_timeout" not in proc.stderr
    assert [line for line in proc.stderr.splitlines() if "lock.contended" in line][0].count("lock=shown") == 1


def test_structlog_configured_after_import_gets_the_events() -> None:
    """An app importing and configuring structlog after tracedthreading still receives every event."""
    proc = run("""
        import sys, time, tracedthreading
        tracedthreading.configure(held_long_threshold=0.001)
        import structlog
        structlog.configure(processors=[structlog.processors.add_log_level, structlog.processors.JSONRenderer()],
                            logger_factory=structlog.PrintLoggerFactory(sys.stdout))
        lock = tracedthreading.Lock(name="json")
        for _ in range(2):
            with lock:
                time.sleep(0.01)
    """)
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [(r["event"], r["lock"], r["level"]) for r in records] == [("lock.held_long", "json", "warning")] * 2
    assert "lock.held_long" not in proc.stderr


def test_debug_event_without_structlog_does_not_import_it() -> None:
    """A debug event (dropped by the fallback anyway) reaches listeners without importing structlog."""
    proc = run(f"""
        from tracedthreading import _events
        from tracedthreading.testing import capture_events
        with capture_events() as events:
            _events.emit(_events.LOCK_ORDER_SUPPRESSED, "debug", {{"lock": "x", "kind": "lock", "cycle": []}})
        assert [e["event"] for e in events] == [_events.LOCK_ORDER_SUPPRESSED], events
        assert _events.dropped == 0
        {REPORT}
    """)
    assert loaded(proc)["structlog"] is False
    assert proc.stderr == ""


def test_simultaneous_first_events_all_arrive() -> None:
    """Eight threads emitting their first events at once all import structlog and all reach stderr."""
    proc = run("""
        import threading
        from tracedthreading import _events
        barrier = threading.Barrier(8)
        def worker(i):
            barrier.wait(30)
            _events.emit(_events.LOCK_CONTENDED, "warning", {"lock": f"l{i}", "kind": "lock", "wait": 1.0})
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert _events.dropped == 0, _events.dropped
    """)
    lines = [line for line in proc.stderr.splitlines() if "lock.contended" in line]
    assert sorted(line.split("lock=")[1].split()[0] for line in lines) == [f"l{i}" for i in range(8)]


def test_event_under_the_patch_imports_nothing() -> None:
    """An event under patch() is printed without importing structlog: no module's locks are made for it."""
    proc = run("""
        import sys, threading, time, tracedthreading
        tracedthreading.configure(held_long_threshold=0.001)
        tracedthreading.patch()
        lock = threading.Lock()
        with lock:
            time.sleep(0.01)
        tracedthreading.unpatch()
        names = {stats.name.split(":")[0] for stats in tracedthreading.snapshot().locks}
        print(sorted(names), "structlog" in sys.modules, "asyncio" in sys.modules)
    """)
    assert proc.stdout.split("\n")[0] == "['__main__'] False False"
    assert "lock.held_long" in proc.stderr


def test_wrapt_is_imported_by_the_first_patch() -> None:
    """``patch()`` imports wrapt (before patching: its own locks stay raw) and the stand-ins work."""
    proc = run(f"""
        import sys, threading, tracedthreading
        from tracedthreading import patching
        assert "wrapt" not in sys.modules and not patching._FACTORIES
        with tracedthreading.patched():
            assert type(threading.Lock()) is tracedthreading.Lock
            assert type(threading.RLock()) is tracedthreading.RLock
            assert threading.Lock.__wrapped__ is patching._ORIGINALS["Lock"]
        assert threading.Lock is patching._ORIGINALS["Lock"]
        {REPORT}
    """)
    assert loaded(proc)["wrapt"] is True and loaded(proc)["structlog"] is False  # wrapt>=2.5 imports asyncio


def test_runner_without_options_never_imports_structlog(tmp_path: Path) -> None:
    """``python -m tracedthreading script.py``: no event, so structlog is not imported, even at exit."""
    script = tmp_path / "prog.py"
    script.write_text(textwrap.dedent(f"""
        import atexit, threading
        lock = threading.Lock()
        with lock:
            pass
        def at_exit():
            {REPORT}
        atexit.register(at_exit)
        print(type(lock).__module__)
    """))
    proc = run("", str(script), module=True, cwd=tmp_path)
    assert proc.stdout.splitlines()[0] == "tracedthreading"
    assert loaded(proc)["wrapt"] is True and loaded(proc)["structlog"] is False
    assert proc.stderr == ""


def test_runner_summary_event_still_reaches_listeners(tmp_path: Path) -> None:
    """A listener still registered at exit (no log file, no structlog) gets the summary event, untouched."""
    script = tmp_path / "prog.py"
    script.write_text(textwrap.dedent("""
        import atexit, sys, threading
        from tracedthreading import _events
        seen = []
        _events.add_sink(seen.append)
        lock = threading.Lock(name="mine")
        with lock:
            pass
        def at_exit():
            [summary] = [e for e in seen if e["event"] == "tracedthreading.summary"]
            print(sorted(stats["name"] for stats in summary["locks"]), "order_edges" in summary,
                  "structlog" in sys.modules)
        atexit.register(at_exit)
    """))
    proc = run("", str(script), module=True, cwd=tmp_path)
    assert proc.stdout.splitlines()[-1] == "['mine'] True False"
    assert proc.stderr == ""


def test_first_event_from_a_del_run_by_the_collector() -> None:
    """Events emitted by ``__del__`` methods the collector runs anywhere (inside the tracer's own
    bookkeeping, or inside another emission) never deadlock: each event is either printed or, when
    nested inside another emission, dropped and counted."""
    proc = run("""
        import gc, sys
        import tracedthreading as tt
        from tracedthreading import _events
        ran = [0]
        class Resource:
            def __init__(self):
                self.me = self          # a cycle: freed by the collector, at whatever allocation triggers it
            def __del__(self):
                ran[0] += 1
                if ran[0] % 1000 == 1:
                    _events.emit(_events.LOCK_CONTENDED, "warning", {"lock": "in-del", "kind": "lock", "wait": 1.0})
        a = tt.Lock(name="a")
        for i in range(20000):
            for _ in range(3):
                Resource()
            with a:
                lock = tt.Lock()    # a new edge a -> lock each time: the tracer allocates under its raw lock
                with lock:
                    pass
        gc.collect()
        print(ran[0], "structlog" in sys.modules, _events.dropped)
    """)
    ran, imported, dropped = proc.stdout.split()
    logged = sum("in-del" in line for line in proc.stderr.splitlines())
    assert (ran, imported) == ("60000", "False")
    assert logged + int(dropped) == 60 and logged >= 1


def test_runner_threshold_off_disables(tmp_path: Path) -> None:
    """``--contended-threshold off`` turns the setting off (found while benchmarking: it was ignored)."""
    script = tmp_path / "prog.py"
    script.write_text("from tracedthreading import _config\nprint(_config.CONFIG.contended_threshold)\n")
    assert run("", "--contended-threshold", "off", str(script), module=True, cwd=tmp_path).stdout == "None\n"
    assert run("", "--contended-threshold", "0.5", str(script), module=True, cwd=tmp_path).stdout == "0.5\n"
    assert run("", str(script), module=True, cwd=tmp_path).stdout == "0.1\n"


def test_configured_structlog_is_logged_at_once_even_holding_a_lock() -> None:
    """With the application's structlog setup, events are logged in the emitting thread, before emit returns."""
    proc = run("""
        import sys, structlog, tracedthreading
        from tracedthreading import _events
        lines = []
        class Collect:
            def msg(self, message):
                lines.append(message)
            warning = msg
        structlog.configure(processors=[structlog.processors.JSONRenderer()], logger_factory=lambda *args: Collect())
        with tracedthreading.Lock(name="held"):
            _events.emit(_events.LOCK_CONTENDED, "warning", {"lock": "held", "kind": "lock", "wait": 1.0})
            print(len(lines))
    """)
    assert proc.stdout.split() == ["1"]


def test_event_printed_before_emit_returns_holding_a_lock() -> None:
    """Holding a traced lock, the event is written to stderr at once, by the emitting thread, in order."""
    proc = run("""
        import io, sys, tracedthreading
        from tracedthreading import _events
        sys.stderr, real = io.StringIO(), sys.stderr
        with tracedthreading.Lock(name="held"):
            _events.emit(_events.LOCK_CONTENDED, "warning", {"lock": "held", "kind": "lock", "wait": 1.0})
            _events.emit(_events.LOCK_HELD_LONG, "warning", {"lock": "held", "kind": "lock", "hold": 2.0})
            written = sys.stderr.getvalue()
        sys.stderr = real
        print([name for line in written.splitlines() for name in ("lock.contended", "lock.held_long") if name in line])
    """)
    assert proc.stdout.strip() == "['lock.contended', 'lock.held_long']"


def test_fork_child_prints_events() -> None:
    """A child forked after events were printed prints its own (the renderer's raw lock is made afresh)."""
    proc = run("""
        import os, sys, warnings
        warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork() of a process that had threads
        import tracedthreading
        from tracedthreading import _console, _events
        with tracedthreading.Lock(name="parent"):
            _events.emit(_events.LOCK_CONTENDED, "warning", {"lock": "parent", "kind": "lock", "wait": 1.0})
        _console._lock.acquire()  # as if another thread were writing at the fork
        pid = os.fork()
        if pid == 0:
            _events.emit(_events.LOCK_CONTENDED, "warning", {"lock": "child", "kind": "lock", "wait": 1.0})
            sys.stderr.flush()
            os._exit(0)
        _console._lock.release()
        _, status = os.waitpid(pid, 0)
        print(status)
    """)
    assert proc.stdout.split() == ["0"]
    locks = sorted(line.split("lock=")[1].split()[0] for line in proc.stderr.splitlines() if "lock.contended" in line)
    assert locks == ["child", "parent"]
