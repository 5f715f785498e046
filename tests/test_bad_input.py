"""Bad input everywhere: the stdlib's exception (type and message) for the threading API, clear errors for ours.

The "Bad input" table of docs/guarantees.rst is this file's cases and their outcomes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading as std
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import tracedthreading
from tracedthreading import _config, _trace


def _outcome(call: Callable[[], Any]) -> tuple[str, str]:
    """``("ok", "")`` or the exception's type name and message."""
    try:
        call()
    except Exception as exc:  # noqa: BLE001 - the outcome is what we compare
        return type(exc).__name__, str(exc)
    return "ok", ""


def _held(make: Callable[[], Any], use: Callable[[Any], Any]) -> Callable[[], Any]:
    """Call ``use(obj)`` on a freshly made, acquired primitive, releasing it afterwards."""

    def call() -> Any:
        obj = make()
        obj.acquire()
        try:
            return use(obj)
        finally:
            obj.release()

    return call


# (case, call(module)): the traced module must give exactly what threading gives.
SAME: list[tuple[str, Callable[[ModuleType], Any]]] = [
    ("Lock().acquire('x')", lambda m: m.Lock().acquire("x")),
    ("Lock().acquire(timeout='x')", lambda m: m.Lock().acquire(timeout="x")),
    ("Lock().acquire(True, None)", lambda m: m.Lock().acquire(True, None)),
    ("Lock().acquire(blocking=[])", lambda m: m.Lock().acquire(blocking=[])),
    ("Lock().acquire(False, 1)", lambda m: m.Lock().acquire(False, 1)),
    ("Lock().acquire(timeout=-5)", lambda m: m.Lock().acquire(timeout=-5)),
    ("Lock().acquire(timeout=1e100)", lambda m: m.Lock().acquire(timeout=1e100)),
    ("Lock().acquire(timeout=nan)", lambda m: m.Lock().acquire(timeout=float("nan"))),
    ("Lock().release() unlocked", lambda m: m.Lock().release()),
    ("RLock().acquire('x')", lambda m: m.RLock().acquire("x")),
    ("RLock().acquire(False, 1)", lambda m: m.RLock().acquire(False, 1)),
    ("RLock().acquire(timeout=-5)", lambda m: m.RLock().acquire(timeout=-5)),
    ("RLock().acquire(timeout='x')", lambda m: m.RLock().acquire(timeout="x")),
    ("RLock() re-entry acquire(False, 1)", lambda m: _held(m.RLock, lambda r: r.acquire(False, 1))()),
    ("RLock().release() not owned", lambda m: m.RLock().release()),
    ("RLock()._release_save() not owned", lambda m: m.RLock()._release_save()),
    ("Condition(1)", lambda m: m.Condition(1)),
    ("Condition().wait(0) not owned", lambda m: m.Condition().wait(0)),
    ("Condition().notify() not owned", lambda m: m.Condition().notify()),
    ("Condition().notify_all() not owned", lambda m: m.Condition().notify_all()),
    ("Condition().wait('x') owned", lambda m: _held(m.Condition, lambda c: c.wait("x"))()),
    ("Condition().wait_for(None, 0) owned", lambda m: _held(m.Condition, lambda c: c.wait_for(None, 0))()),
    ("Semaphore(-1)", lambda m: m.Semaphore(-1)),
    ("Semaphore('x')", lambda m: m.Semaphore("x")),
    ("Semaphore().acquire(False, 1)", lambda m: m.Semaphore().acquire(False, 1)),
    ("Semaphore().release(0)", lambda m: m.Semaphore().release(0)),
    ("Semaphore().release('x')", lambda m: m.Semaphore().release("x")),
    ("BoundedSemaphore(-1)", lambda m: m.BoundedSemaphore(-1)),
    ("BoundedSemaphore(1).release()", lambda m: m.BoundedSemaphore(1).release()),
    ("Event(1)", lambda m: m.Event(1)),
    ("Event().wait('x')", lambda m: m.Event().wait("x")),
    ("Barrier(1, action=3).wait()", lambda m: m.Barrier(1, action=3).wait()),
    ("Barrier(2).wait('x')", lambda m: m.Barrier(2).wait("x")),
    ("Thread(target=3).run()", lambda m: m.Thread(target=3).run()),
]

# Where the stdlib's factory is a C function, its signature errors differ in wording: same type suffices.
SAME_TYPE: list[tuple[str, Callable[[ModuleType], Any]]] = [
    ("Lock(1)", lambda m: m.Lock(1)),
    ("Lock(x=1)", lambda m: m.Lock(x=1)),
    ("Lock().acquire(1, 2, 3)", lambda m: m.Lock().acquire(1, 2, 3)),
    # Same message too once Semaphore.acquire lets the stdlib see a non-number timeout first (pending).
    ("Semaphore(0).acquire(timeout='x')", lambda m: m.Semaphore(0).acquire(timeout="x")),
    # Same message too until Timer.run stops computing its schedule first (tests/pending_bad_input.py).
    ("Timer('x', print).run()", lambda m: m.Timer("x", print).run()),
]


@pytest.mark.parametrize(("case", "call"), SAME, ids=[case for case, _ in SAME])
def test_same_exception_and_message_as_the_stdlib(case: str, call: Callable[[ModuleType], Any]) -> None:
    """The traced primitive raises the stdlib twin's exception type with the same message (or neither raises)."""
    assert _outcome(lambda: call(tracedthreading)) == _outcome(lambda: call(std))


@pytest.mark.parametrize(("case", "call"), SAME_TYPE, ids=[case for case, _ in SAME_TYPE])
def test_same_exception_type_as_the_stdlib(case: str, call: Callable[[ModuleType], Any]) -> None:
    """Signature mistakes raise the same exception type as the stdlib twin."""
    expected = _outcome(lambda: call(std))
    assert expected[0] != "ok"
    assert _outcome(lambda: call(tracedthreading))[0] == expected[0]


def test_rlock_positional_arguments_are_a_clear_type_error() -> None:
    """``RLock(1)`` (silently ignored by CPython's C RLock, deprecated since 3.13) is a TypeError here."""
    with pytest.raises(TypeError, match="positional argument"):
        tracedthreading.RLock(1)  # type: ignore[call-arg]


@pytest.mark.parametrize("factory", ["Lock", "RLock", "Condition", "Semaphore", "BoundedSemaphore", "Event"])
@pytest.mark.parametrize("name", [3, b"x", ["x"]])
def test_non_string_name_is_a_type_error_naming_the_type(factory: str, name: Any) -> None:
    """``name=`` must be a str: anything else is a TypeError that names the type given."""
    with pytest.raises(TypeError, match=f"name must be a str, got {type(name).__name__}"):
        getattr(tracedthreading, factory)(name=name)


@pytest.mark.parametrize(
    ("settings", "error", "message"),
    [
        ({"contended_threshold": -1}, ValueError, "contended_threshold must be a non-negative number"),
        ({"contended_threshold": "abc"}, ValueError, "contended_threshold must be a number of seconds, got 'abc'"),
        ({"held_long_threshold": float("nan")}, ValueError, "held_long_threshold must be a non-negative"),
        ({"wait_long_threshold": True}, ValueError, "wait_long_threshold must be a number of seconds, got True"),
        ({"enabled": "maybe"}, ValueError, "enabled must be a boolean"),
        ({"order": None}, ValueError, "order must be a boolean"),
        ({"stack_depth": 0}, ValueError, "stack_depth must be an integer >= 1, got 0"),
        ({"stack_depth": 1.5}, ValueError, "stack_depth must be an integer >= 1, got 1.5"),
        ({"on_inversion": "panic"}, ValueError, "on_inversion must be one of 'log', 'raise', got 'panic'"),
        ({"suppressions": "abc"}, ValueError, "suppressions must be an iterable of lock names or sites"),
        ({"suppressions": [1]}, ValueError, "suppressions entries must be non-empty strings, got 1"),
        ({"contended_treshold": 1}, TypeError, "unknown setting 'contended_treshold'; known: "),
        ({"stack_depth": float("inf")}, ValueError, "stack_depth must be an integer >= 1, got inf"),
        ({"stack_depth": 10**30}, ValueError, "stack_depth must be an integer >= 1 and <= "),
        ({"trace_buffer": float("inf")}, ValueError, "trace_buffer must be an integer >= 1, got inf"),
        ({"trace_buffer": 2**64}, ValueError, "trace_buffer must be an integer >= 1 and <= "),
        ({"max_dead_names": -1}, ValueError, "max_dead_names must be an integer >= 0, got -1"),
        ({"max_dead_names": "many"}, ValueError, "max_dead_names must be an integer >= 0, got 'many'"),
        ({"max_dead_names": float("inf")}, ValueError, "max_dead_names must be an integer >= 0, got inf"),
        ({"max_dead_names": True}, ValueError, "max_dead_names must be an integer >= 0, got True"),
        ({"contended_threshold": 10**400}, ValueError, "contended_threshold must be a number of seconds, got 1000"),
        ({"trace": "/nonexistent/x.json"}, ValueError, "trace: cannot write '/nonexistent/x.json': no directory"),
    ],
)
def test_bad_configure_values_are_rejected_by_name(settings: dict[str, Any], error: type, message: str) -> None:
    """``configure()`` names the setting and the bad value, and applies nothing when one value is bad."""
    before = _config.CONFIG.as_dict()
    with pytest.raises(error, match=_literal(message)):
        tracedthreading.configure(order_semaphores=not before["order_semaphores"], **settings)
    assert _config.CONFIG.as_dict() == before
    assert not _trace.active


def test_configure_with_a_directory_as_trace_applies_nothing(tmp_path: Path) -> None:
    """A trace path that is a directory is refused at once; the other settings given are not applied."""
    before = _config.CONFIG.as_dict()
    with pytest.raises(ValueError, match="trace: cannot write .*: is a directory"):
        tracedthreading.configure(stack_depth=3, trace=str(tmp_path))
    assert _config.CONFIG.as_dict() == before
    assert not _trace.active


def _literal(text: str) -> str:
    import re

    return re.escape(text)


def test_configure_takes_no_positional_arguments() -> None:
    """``configure({"x": 1})`` is a TypeError, not a silently ignored dict."""
    with pytest.raises(TypeError):
        tracedthreading.configure({"enabled": False})  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("TRACEDTHREADING_CONTENDED_THRESHOLD", "-1", "TRACEDTHREADING_CONTENDED_THRESHOLD must be a non-negative"),
        ("TRACEDTHREADING_CONTENDED_THRESHOLD", "abc", "TRACEDTHREADING_CONTENDED_THRESHOLD must be a number"),
        ("TRACEDTHREADING_ENABLED", "maybe", "TRACEDTHREADING_ENABLED must be a boolean"),
        ("TRACEDTHREADING_STACK_DEPTH", "0", "TRACEDTHREADING_STACK_DEPTH must be an integer >= 1"),
        ("TRACEDTHREADING_MAX_DEAD_NAMES", "-5", "TRACEDTHREADING_MAX_DEAD_NAMES must be an integer >= 0"),
    ],
)
def test_bad_environment_variable_fails_the_import_naming_the_variable(variable: str, value: str, message: str) -> None:
    """A bad ``TRACEDTHREADING_*`` value makes ``import tracedthreading`` raise ValueError naming the variable."""
    env = {**os.environ, variable: value}
    proc = subprocess.run([sys.executable, "-c", "import tracedthreading"], capture_output=True, text=True,
                          env=env, timeout=60)
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("ValueError: ")
    assert message in last and repr(value) in last


def test_forget_rejects_what_is_not_a_traced_primitive() -> None:
    """``forget(3)`` and ``forget(threading.Lock())`` are TypeErrors naming the type given."""
    with pytest.raises(TypeError, match="got int"):
        tracedthreading.forget(3)
    with pytest.raises(TypeError, match="needs a tracedthreading primitive"):
        tracedthreading.forget(std.Lock())


def test_snapshot_queries_reject_unknown_names_and_fields() -> None:
    """``Snapshot.lock`` of an unknown name is a KeyError naming it; ``top`` of an unknown field a ValueError."""
    snap = tracedthreading.snapshot()
    with pytest.raises(KeyError, match="no statistics for a primitive named 'nope'"):
        snap.lock("nope")
    with pytest.raises(ValueError, match="unknown LockStats field 'nope'"):
        snap.top(key="nope")


GARBAGE = {
    "empty": b"",
    "binary": b"\x00\xff\xfe",
    "a list": b"[1, 2]",
    "null": b"null",
    "no locks": b'{"x": 1}',
    "locks not a list": b'{"locks": 3}',
    "lock not an object": b'{"locks": ["a"]}',
    "name not a string": b'{"locks": [{"name": 1, "kind": "lock"}]}',
    "count not a number": b'{"locks": [{"name": "a", "kind": "lock", "acquisitions": "x"}]}',
    "inversion without edges": b'{"locks": [], "inversions": [{"locks": ["a"]}]}',
    "deadlock not an object": b'{"locks": [], "deadlocks": [3]}',
    "histogram entry not a number": b'{"locks": [{"name": "a", "kind": "lock", "wait_hist": ["x"]}]}',
    "blocker not a pair": b'{"locks": [{"name": "a", "kind": "lock", "blockers": [[1]]}]}',
    "deeply nested": b'{"locks": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    "huge number": b'{"locks": [{"name": "a", "kind": "lock", "acquisitions": 1e999}]}',
    "huge histogram entry": b'{"locks": [{"name": "a", "kind": "lock", "wait_hist": [1e999]}]}',
    "NaN": b'{"locks": [{"name": "a", "kind": "lock", "wait_total": NaN}]}',
    "inversion with an empty cycle": b'{"locks": [], "inversions": [{"locks": [], "edges": []}]}',
    "edge count not a number": (
        b'{"locks": [], "inversions": [{"locks": ["a"], "edges": [{"src": "a", "dst": "b", "count": "x", '
        b'"thread": "t", "thread_id": 1, "stack": []}]}]}'
    ),
}


@pytest.mark.parametrize("content", GARBAGE.values(), ids=GARBAGE.keys())
def test_snapshot_load_of_garbage_is_a_value_error_naming_the_file(tmp_path: Path, content: bytes) -> None:
    """``Snapshot.load`` of a file that is not a snapshot raises ValueError naming the file."""
    path = tmp_path / "snap.json"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=f"{_literal(str(path))}: not a tracedthreading snapshot"):
        tracedthreading.Snapshot.load(path)


def test_snapshot_load_of_a_missing_file_is_the_os_error(tmp_path: Path) -> None:
    """A path that does not exist gives the usual FileNotFoundError (it names the path)."""
    with pytest.raises(FileNotFoundError, match="missing.json"):
        tracedthreading.Snapshot.load(tmp_path / "missing.json")


def test_snapshot_round_trip_still_works_after_all_that(tmp_path: Path) -> None:
    """A real dump loads back equal, so the garbage checks do not reject good files."""
    with tracedthreading.Lock(name="good"):
        pass
    snap = tracedthreading.snapshot()
    snap.dump(tmp_path / "good.json")
    assert tracedthreading.Snapshot.load(tmp_path / "good.json") == snap
    assert json.loads((tmp_path / "good.json").read_text())["locks"][0]["name"] == "good"


# -- the runner ---------------------------------------------------------------------------------------

_SRC = str(Path(__file__).resolve().parents[1] / "src")


def _runner(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m tracedthreading ARGS`` in ``cwd``, this checkout first on the path."""
    environ = {**os.environ, **(env or {}),
               "PYTHONPATH": os.pathsep.join([_SRC, os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "tracedthreading", *args], cwd=cwd, env=environ,
                          capture_output=True, text=True, timeout=120)


def _target(tmp_path: Path, code: str = "print('ran')\nraise SystemExit(5)\n") -> Path:
    path = tmp_path / "target.py"
    path.write_text(code)
    return path


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--trace-file", "{tmp}/missing/trace.json"], "--trace-file: cannot write '{tmp}/missing/trace.json': no directory"),
        (["--trace-file", "{tmp}"], "--trace-file: cannot write '{tmp}': is a directory"),
        (["--log-file", "{tmp}/missing/log.jsonl"], "--log-file: cannot write '{tmp}/missing/log.jsonl': no directory"),
        (["--log-file", ""], "argument --log-file: expected a file path, got ''"),
        (["--trace-file", ""], "argument --trace-file: expected a file path, got ''"),
        (["--log-file", "{script}"], "--log-file '{script}' is the script to run: it would be overwritten"),
    ],
)
def test_runner_refuses_bad_output_files_before_running_anything(tmp_path: Path, options: list[str],
                                                                   message: str) -> None:
    """An output file that cannot be written (or is the script itself) is a usage error at once: exit 2,
    one line, the target never runs and the script is left intact."""
    script = _target(tmp_path)
    source = script.read_text()
    fill = {"tmp": str(tmp_path), "script": str(script)}
    proc = _runner(*[o.format(**fill) for o in options], str(script), cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "ran" not in proc.stdout
    assert "Traceback" not in proc.stderr
    assert message.format(**fill) in proc.stderr
    assert script.read_text() == source


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")
def test_runner_log_file_that_fills_up_is_one_line_and_the_target_status(tmp_path: Path) -> None:
    """``--log-file /dev/full``: every write fails; the runner says so once and exits with the target's status."""
    script = _target(tmp_path, "import threading\nl = threading.Lock()\nwith l:\n    pass\nraise SystemExit(5)\n")
    proc = _runner("--log-file", "/dev/full", "--summary", str(script), cwd=tmp_path)
    assert proc.returncode == 5, proc.stderr
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr
    assert proc.stderr.count("tracedthreading: cannot write --log-file '/dev/full'") == 1, proc.stderr


@pytest.mark.parametrize(("variable", "value"), [("TRACEDTHREADING_STACK_DEPTH", "0"),
                                                 ("TRACEDTHREADING_CONTENDED_THRESHOLD", "abc")])
def test_runner_with_a_bad_environment_variable_is_one_line_and_exit_2(tmp_path: Path, variable: str,
                                                                      value: str) -> None:
    """A bad ``TRACEDTHREADING_*`` variable under the runner: one line naming it, exit 2, no traceback."""
    proc = _runner(str(_target(tmp_path)), cwd=tmp_path, env={variable: value})
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert variable in line and repr(value) in line


def test_pytest_without_the_plugin_enabled_survives_a_bad_environment_variable(tmp_path: Path) -> None:
    """The plugin is loaded by every pytest run: a bad ``TRACEDTHREADING_*`` variable must not break a
    run that does not enable it (it is a usage error only for runs that do)."""
    (tmp_path / "test_x.py").write_text("def test_x():\n    assert True\n")
    env = {**os.environ, "TRACEDTHREADING_STACK_DEPTH": "0",
           "PYTHONPATH": os.pathsep.join([_SRC, os.environ.get("PYTHONPATH", "")])}
    env.pop("PYTEST_ADDOPTS", None)
    plain = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_x.py"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert plain.returncode == 0, plain.stdout + plain.stderr
    assert "1 passed" in plain.stdout
    enabled = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--tracedthreading",
                              "test_x.py"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert enabled.returncode == 4, enabled.stdout + enabled.stderr  # pytest's usage error
    assert "tracedthreading: TRACEDTHREADING_STACK_DEPTH must be an integer >= 1, got '0'" in enabled.stderr
    assert "Traceback" not in enabled.stderr


def test_runner_module_whose_package_fails_to_import_shows_the_targets_traceback(tmp_path: Path) -> None:
    """``-m pkg.mod`` where ``pkg/__init__.py`` raises: the target's own traceback, as ``python -m`` shows it."""
    package = tmp_path / "brokenpkg"
    package.mkdir()
    (package / "__init__.py").write_text("raise RuntimeError('package init failed')\n")
    (package / "mod.py").write_text("print('ran')\n")
    proc = _runner("-m", "brokenpkg.mod", cwd=tmp_path)
    plain = subprocess.run([sys.executable, "-m", "brokenpkg.mod"], cwd=tmp_path, capture_output=True, text=True,
                           timeout=60)
    assert proc.returncode == plain.returncode == 1
    assert "RuntimeError: package init failed" in proc.stderr
    assert 'brokenpkg/__init__.py", line 1' in proc.stderr
    assert "cannot find module" not in proc.stderr and "_cli.py" not in proc.stderr



# -- report: valid JSON of the wrong shape --------------------------------------------------------------

_EDGE = '{"src": "a", "dst": "b", "count": 2, "thread": "t", "thread_id": 1, "stack": []}'
_BACK = '{"src": "b", "dst": "a", "count": 1, "thread": "t", "thread_id": 1, "stack": []}'
REPORT_INPUT = {
    "deadlock.detected without stack": (
        '{"event": "deadlock.detected", "level": "error", "threads": [{"thread": "t", "thread_id": 1, '
        '"holds": ["a"], "waits_for": "b"}, {"thread": "u", "thread_id": 2, "holds": ["b"], "waits_for": "a"}]}',
        None),
    "inversion with an empty cycle": (
        '{"event": "lock.order_inversion", "level": "error", "cycle": [], "edges": []}',
        "lock.order_inversion.cycle must name at least one lock"),
    "inversion edge without count": (
        '{"event": "lock.order_inversion", "level": "error", "cycle": ["a", "b"], "edges": ['
        '{"src": "a", "dst": "b", "thread": "t", "thread_id": 1, "stack": []}, ' + _BACK + ']}',
        "lock.order_inversion.edges[0].count must be an integer, got null"),
    "1e999 in a histogram": (
        '{"event": "tracedthreading.summary", "level": "info", "locks": [{"name": "a", "kind": "lock", '
        '"wait_hist": [1e999]}]}',
        "number out of range: 1e999"),
    "1e999 as a wait": ('{"event": "lock.contended", "level": "warning", "lock": "a", "wait": 1e999}',
                        "number out of range: 1e999"),
    "NaN as a wait": ('{"event": "lock.contended", "level": "warning", "lock": "a", "wait": NaN}',
                      "NaN is not a number"),
    "lone surrogate in a lock name": (
        '{"event": "lock.contended", "level": "warning", "lock": "a\\ud800b", "wait": 0.5}',
        "a string holds a lone surrogate"),
}


@pytest.mark.parametrize(("line", "error"), REPORT_INPUT.values(), ids=REPORT_INPUT.keys())
@pytest.mark.parametrize("fmt", ["text", "json"])
def test_report_never_tracebacks_on_valid_json_of_the_wrong_shape(tmp_path: Path, line: str, error: str | None,
                                                                  fmt: str) -> None:
    """Each wrongly shaped line is an error naming the file, line and field (exit 2), or, where the
    shape is allowed (a deadlock without stacks), a report; never a traceback, never NaN in JSON."""
    log = tmp_path / "events.jsonl"
    log.write_text(line + "\n", encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "tracedthreading", "report", "--format", fmt, str(log)],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join([_SRC, os.environ.get("PYTHONPATH", "")])})
    assert "Traceback" not in proc.stderr, proc.stderr
    if error is None:
        assert proc.returncode == 0, proc.stderr
        if fmt == "json":
            json.loads(proc.stdout, parse_constant=lambda name: pytest.fail(f"{name} in the JSON output"))
    else:
        assert proc.returncode == 2
        assert f"{log}:1: {error}" in proc.stderr
