"""Bad input everywhere: the stdlib's exception (type and message) for the threading API, clear errors for ours.

The table in the README's "guarantees" section is this file's cases and their outcomes.
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
from tracedthreading import _config


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
    ],
)
def test_bad_configure_values_are_rejected_by_name(settings: dict[str, Any], error: type, message: str) -> None:
    """``configure()`` names the setting and the bad value, and applies nothing when one value is bad."""
    before = _config.CONFIG.as_dict()
    with pytest.raises(error, match=_literal(message)):
        tracedthreading.configure(order_semaphores=not before["order_semaphores"], **settings)
    assert _config.CONFIG.as_dict() == before


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
