"""Captured stacks keep the user's frames: no pytest, pluggy, runpy or tracedthreading frames, and
``stack_depth`` frames of the user's own code when it has that many."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import tracedthreading
from tracedthreading import _lockorder, _threads
from tracedthreading.testing import capture_events, events_named

SRC = str(Path(__file__).resolve().parents[1] / "src")
TOOLS = ("_pytest", "pluggy", "runpy", "tracedthreading" + os.sep, "threading.py")


def nest(depth: int, action):  # noqa: ANN001, ANN201 - a helper making ``depth`` user frames
    if depth == 0:
        return action()
    return nest(depth - 1, action)


def assert_user_frames(stack, depth: int) -> None:  # noqa: ANN001
    assert len(stack) == depth, stack
    assert not [frame for frame in stack if any(tool in frame for tool in TOOLS)], stack


def test_held_long_stack_under_pytest_has_only_user_frames() -> None:
    """Under pytest, the kept frames are this test's, not pluggy's and _pytest's, and there are stack_depth."""
    tracedthreading.configure(held_long_threshold=0.001, stack_depth=4)
    lock = tracedthreading.Lock(name="slow")

    def hold() -> None:
        with lock:
            time.sleep(0.005)

    with capture_events() as events:
        nest(2, hold)
    [event] = events_named(events, "lock.held_long")
    assert_user_frames(event["stack"], 4)
    assert event["stack"][-1].endswith("in hold")


def test_short_user_stack_is_not_padded_with_tool_frames() -> None:
    """With fewer user frames than stack_depth, the stack holds just those (pytest's own frames are left out)."""
    tracedthreading.configure(held_long_threshold=0.001, stack_depth=50)
    lock = tracedthreading.Lock(name="slow")
    with capture_events() as events:
        with lock:
            time.sleep(0.005)
    [event] = events_named(events, "lock.held_long")
    assert_user_frames(event["stack"], 1)
    assert "test_short_user_stack_is_not_padded_with_tool_frames" in event["stack"][0]


def test_witness_stack_under_pytest_has_only_user_frames() -> None:
    """The order-edge witness (captured once per edge) keeps stack_depth user frames too."""
    tracedthreading.configure(stack_depth=3)
    a, b = tracedthreading.Lock(name="a"), tracedthreading.Lock(name="b")

    def take() -> None:
        with a, b:
            pass

    nest(5, take)
    [edge] = _lockorder.edges()
    assert_user_frames(edge.stack, 3)
    assert edge.stack[-1].endswith("in take")


def test_witness_stack_under_the_runner_has_no_runpy_frames(tmp_path: Path) -> None:
    """``python -m tracedthreading script.py``: the runner's runpy frames are not in the witness."""
    script = tmp_path / "prog.py"
    script.write_text(textwrap.dedent("""
        import threading
        from tracedthreading import _lockorder
        a, b = threading.Lock(), threading.Lock()
        def take():
            with a, b:
                pass
        take()
        [edge] = _lockorder.edges()
        print(repr(edge.stack))
    """))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "tracedthreading", str(script)], capture_output=True, text=True,
                          timeout=120, env=env, cwd=tmp_path, check=False)
    assert proc.returncode == 0, proc.stderr
    stack = eval(proc.stdout.strip())  # noqa: S307 - a tuple of strings this test printed
    assert_user_frames(stack, 2)
    assert stack[0].endswith("in <module>") and stack[1].endswith("in take")


def test_tool_frames_are_recognized_by_module() -> None:
    """The frames left out are those of pytest, pluggy, runpy, threading and tracedthreading themselves."""
    def frame(name: str, filename: str = "/app/code.py") -> object:
        return type("F", (), {"f_globals": {"__name__": name}, "f_code": type("C", (), {"co_filename": filename})})()

    tools = ["_pytest.python", "pytest", "pluggy._callers", "runpy", "threading", "tracedthreading._lockcore"]
    users = ["__main__", "app.models", "pytest_helpers", "tests.test_x", "threadingx", "pluggyish"]
    assert [name for name in tools + users if _threads.is_tool_frame(frame(name))] == tools
    # ``python -m pytest``: pytest/__main__.py runs as __main__, known by its directory.
    assert _threads.is_tool_frame(frame("__main__", "/venv/lib/site-packages/pytest/__main__.py"))
    assert not _threads.is_tool_frame(frame("__main__", "/home/me/pytest_plugins/main.py"))
    # A user's code is never hidden for the name of a directory its project happens to live in.
    assert not _threads.is_tool_frame(frame("app.models", "/home/me/threading/app/models.py"))
