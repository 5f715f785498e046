"""A thread that ends while holding traced locks is reported, and nothing breaks."""

from __future__ import annotations

import _thread
import subprocess
import sys
import textwrap
import threading as std
import types
from pathlib import Path
from typing import Any

import pytest

import tracedthreading
from tracedthreading import _primitives, _threads
from tracedthreading.testing import capture_events, events_named


def test_thread_dying_with_a_held_lock_is_reported_by_name() -> None:
    """thread.died_holding names the thread and the locks it still held; the lock stays locked."""
    lock = tracedthreading.Lock(name="orphan")
    rlock = tracedthreading.RLock(name="orphan-r")

    def quit_holding() -> None:
        lock.acquire()
        rlock.acquire()

    with capture_events() as events:
        thread = std.Thread(target=quit_holding, name="quitter")
        thread.start()
        thread.join(5)
    [event] = events_named(events, "thread.died_holding")
    assert event["thread"] == "quitter"
    assert event["held"] == ["orphan", "orphan-r"]
    assert lock.locked()
    assert lock.acquire(timeout=0.01) is False
    lock.release()  # a Lock may be released by any thread


def test_thread_ending_clean_reports_nothing() -> None:
    """A thread that released everything ends silently."""
    lock = tracedthreading.Lock(name="tidy")

    def tidy() -> None:
        with lock:
            pass

    with capture_events() as events:
        thread = std.Thread(target=tidy)
        thread.start()
        thread.join(5)
    assert events_named(events, "thread.died_holding") == []


def _as_finalization_leaves_it(function: Any, **kept: Any) -> Any:
    """``function`` as interpreter finalization leaves it: every module global None but ``kept`` (cleared
    in a later pass), builtins emptied."""
    module = sys.modules[function.__module__]
    cleared = {name: None for name in vars(module)}
    cleared.update(kept)
    cleared["__builtins__"] = {}
    return types.FunctionType(function.__code__, cleared, function.__name__, function.__defaults__,
                              function.__closure__)


@pytest.mark.parametrize("same_thread", [True, False], ids=["the-finalizing-thread", "a-daemon-thread"])
def test_exit_watch_is_silent_in_the_state_finalization_leaves(same_thread: bool,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """_ExitWatch.__del__ run during finalization (globals None, builtins gone: the main thread's watch, or
    a daemon's cleared from the main thread) neither raises nor reports: finalizing is not dying."""
    reported = []
    stack = [7]  # holds a (made-up) key: a thread stopped at exit while holding a lock
    ident = _thread.get_ident() if same_thread else -1
    record = _threads.Held(ident, stack)
    watch = _threads._ExitWatch(record)
    monkeypatch.setattr(sys, "is_finalizing", lambda: True)
    finalizing_del = _as_finalization_leaves_it(_threads._ExitWatch.__del__,
                                                on_died_holding=lambda *args: reported.append(args))
    finalizing_del(watch)  # raised NameError (no Exception to match) before
    assert reported == []


def test_daemon_thread_blocked_on_a_traced_lock_at_exit_prints_nothing(tmp_path: Path) -> None:
    """Under the runner (--summary, -X dev), a daemon thread blocked on a Lock the main thread holds at
    exit, itself holding an RLock: the exit prints no 'Exception ignored' (the summary, and nothing else)."""
    script = tmp_path / "blocked.py"
    script.write_text(textwrap.dedent("""
        import threading, time
        lock = threading.Lock()
        lock.acquire()
        other = threading.RLock()
        def worker():
            with other:
                with lock:
                    pass
        for _ in range(2):
            threading.Thread(target=worker, daemon=True).start()
        time.sleep(0.2)
        print("main done")
    """))
    proc = subprocess.run([sys.executable, "-X", "dev", "-m", "tracedthreading", "--summary",
                           "--log-file", str(tmp_path / "log.jsonl"), str(script)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "main done\n"
    assert "Exception ignored" not in proc.stderr
    assert "Traceback" not in proc.stderr
    assert "no lock-order inversions" in proc.stderr


@pytest.mark.parametrize("factory", [_primitives.PyLock, _primitives.PyRLock], ids=["pure-Lock", "pure-RLock"])
def test_a_thread_reusing_a_dead_threads_id_is_not_taken_for_it(factory: type) -> None:
    """The pure locks remember the (token, stack) of the thread that took them last; the token is given
    back when that thread ends, so a new thread with the same id (Linux reuses them at once) takes the
    lock with its own held stack, not the dead thread's."""
    lock = factory(name="reused")
    first: dict[str, Any] = {}

    def take() -> None:
        with lock:
            pass
        first["ident"] = _thread.get_ident()
        first["token"] = _threads.me()[0]

    thread = std.Thread(target=take)
    thread.start()
    thread.join(30)
    assert repr(first["token"]).startswith("<unlocked"), "the ended thread still owns its token"
    seen: list[tuple[int, bool, list[int]]] = []

    def again() -> None:
        with lock:
            seen.append((_thread.get_ident(), lock._holder is _threads.current(), list(_threads.current())))

    for _ in range(50):  # until the id is reused (the first try, on Linux)
        thread = std.Thread(target=again)
        thread.start()
        thread.join(30)
        if seen[-1][0] == first["ident"]:
            break
    assert seen[-1][0] == first["ident"], "no thread reused the id"
    assert all(own and keys == [lock._key] for _, own, keys in seen)
    assert not lock.locked()
