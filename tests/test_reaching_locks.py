"""Locks the patch must reach: logging's module lock and handler locks, pytest under the runner."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import pytest

import tracedthreading
from tracedthreading import _lockcore, _primitives, patching

SRC = str(Path(__file__).resolve().parents[1] / "src")


def runner(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``python -m tracedthreading ARGS`` in ``cwd`` (bounded)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])}
    env.pop("TRACEDTHREADING_PYTEST", None)
    return subprocess.run([sys.executable, "-m", "tracedthreading", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_pytest_under_the_runner_gives_no_assert_rewrite_warning(tmp_path: Path) -> None:
    """``python -m tracedthreading -m pytest -W error`` runs: the already imported package is not a warning."""
    (tmp_path / "test_ok.py").write_text("def test_ok():\n    assert 1 + 1 == 2\n")
    result = runner("-m", "pytest", "-W", "error", "-q", "-p", "no:cacheprovider", "test_ok.py", cwd=tmp_path)
    assert "PytestAssertRewriteWarning" not in result.stdout + result.stderr
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


# The documented logging deadlock: a handler whose emit() looks a logger up (handler lock, then logging's
# module lock) against dictConfig() shutting the old handlers down (module lock, then each handler's lock).
LOGGING_INVERSION = """
import logging
import logging.config
import threading

class LookupHandler(logging.Handler):
    def emit(self, record):
        logging.getLogger("audit." + record.name)

handler = LookupHandler()
handler.name = "lookup"
logging.getLogger().addHandler(handler)

def work():
    logging.getLogger("app").warning("hello")

thread = threading.Thread(target=work)
thread.start()
thread.join(30)
logging.config.dictConfig({"version": 1})
print("done")
"""


def test_logging_handler_against_module_lock_inversion_is_reported(tmp_path: Path) -> None:
    """Under the runner, logging's module lock is traced: the handler/module-lock inversion is found."""
    (tmp_path / "logging_inversion.py").write_text(LOGGING_INVERSION)
    result = runner("--summary", "--fail-on-inversion", "logging_inversion.py", cwd=tmp_path)
    assert "done" in result.stdout, result.stderr
    assert result.returncode == 3, result.stderr
    assert "1 lock-order inversion(s)" in result.stderr, result.stderr
    cycle = next(line for line in result.stderr.splitlines() if "cycle:" in line)
    assert "logging._lock" in cycle, cycle
    assert "LookupHandler 'lookup'" in cycle, cycle


def _take_in_another_thread(lock: object) -> bool:
    """Whether a fresh thread gets ``lock`` within 5 s (and gives it back)."""
    got: list[bool] = []

    def take() -> None:
        ok = lock.acquire(timeout=5)  # type: ignore[attr-defined]
        got.append(ok)
        if ok:
            lock.release()  # type: ignore[attr-defined]

    thread = threading.Thread(target=take)
    thread.start()
    thread.join(30)
    return got == [True]


def test_patch_swaps_in_a_traced_logging_module_lock_and_unpatch_restores_it() -> None:
    """Under the patch ``logging._lock`` is a traced RLock named ``logging._lock``; unpatch puts the original back."""
    original = logging._lock  # type: ignore[attr-defined]
    assert not isinstance(original, _primitives._Traced)
    with tracedthreading.patched():
        swapped = logging._lock  # type: ignore[attr-defined]
        assert isinstance(swapped, _primitives._Traced)
        assert swapped.trace_name == "logging._lock"
        assert swapped in _lockcore.quiet  # its own events are not logged while it is held (see _lockcore.quiet)
        logging.getLogger("tt.reaching.swap")  # logging takes its module lock: recorded
        assert tracedthreading.snapshot().lock("logging._lock").acquisitions >= 1
        tracedthreading.patch()  # idempotent: the same traced lock stays
        assert logging._lock is swapped  # type: ignore[attr-defined]
    assert logging._lock is original  # type: ignore[attr-defined]
    assert _take_in_another_thread(original)


def _module_lock_row() -> object:
    return [stats for stats in tracedthreading.snapshot().locks if stats.name == "logging._lock"]


def test_unpatch_leaves_no_row_for_a_module_lock_nobody_took() -> None:
    """Putting the original back takes the traced lock once: if nothing else took it, that take leaves no trace."""
    import gc

    gc.collect()  # traced module locks of earlier tests fold now, not in the middle of this one
    tracedthreading.reset()
    assert _module_lock_row() == []
    from tracedthreading import _trace

    _trace.start()
    try:
        with tracedthreading.patched():
            pass
    finally:
        data = _trace.stop()
    gc.collect()
    assert _module_lock_row() == []
    assert "logging._lock" not in json.dumps(data)  # nor a slice on a timeline being recorded
    with tracedthreading.patched():
        logging.getLogger("tt.reaching.row")
    assert tracedthreading.snapshot().lock("logging._lock").acquisitions >= 1


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX only")
def test_fork_after_the_swap_reinitialises_the_traced_module_lock() -> None:
    """logging's at-fork handlers use the traced module lock: after a fork both processes can take it."""
    handler = logging.StreamHandler(io.StringIO())
    with tracedthreading.patched():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork() with threads alive
            pid = os.fork()
        if pid == 0:  # the child: its main thread and a new thread both get logging's lock
            code = 1
            try:
                lock = logging._lock  # type: ignore[attr-defined]
                if isinstance(lock, _primitives._Traced) and not lock.locked() and _take_in_another_thread(lock):
                    logging.getLogger("tt.reaching.child").addHandler(handler)
                    code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert not logging._lock.locked()  # type: ignore[attr-defined]
        assert _take_in_another_thread(logging._lock)  # type: ignore[attr-defined]


def test_a_thread_waiting_in_acquire_lock_delays_the_swap(monkeypatch: pytest.MonkeyPatch) -> None:
    """A thread on its way into logging's lock through the global (it will release through the global
    too) is waited for: the swap never leaves it releasing a lock it does not hold."""
    acquire = getattr(logging, "_acquireLock", None) or getattr(logging, "_prepareFork", None)
    release = getattr(logging, "_releaseLock", None) or getattr(logging, "_afterFork", None)
    assert acquire is not None and release is not None
    entered, go = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    class Gate:
        """logging's lock for this test: the waiter is held inside acquire() until the swap was tried."""

        def __init__(self) -> None:
            self.inner = threading.Lock()  # not owned by a thread: the test can free it whoever left it held

        def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
            if threading.current_thread().name == "waiter":
                entered.set()
                go.wait(30)
            return self.inner.acquire(blocking, timeout)

        def release(self) -> None:
            self.inner.release()

        def __enter__(self) -> bool:
            return self.acquire()

        def __exit__(self, *exc: object) -> None:
            self.release()

        def _is_owned(self) -> bool:
            return False  # nobody takes it twice in this test

    gate = Gate()
    monkeypatch.setattr(logging, "_lock", gate)

    def waiter() -> None:
        try:
            acquire()  # takes logging._lock as it is now (the gate)...
            release()  # ...and gives back logging._lock as it is then: must be the same lock
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            errors.append(exc)

    thread = threading.Thread(target=waiter, name="waiter")
    thread.start()
    swapper = threading.Thread(target=tracedthreading.patch)
    try:
        assert entered.wait(30)
        swapper.start()
        swapper.join(0.2)  # the swap is being tried while the waiter is inside acquire
        go.set()
        thread.join(30)
        swapper.join(30)
        assert not errors, errors
        assert isinstance(logging._lock, _primitives._Traced)  # type: ignore[attr-defined]
    finally:
        go.set()
        thread.join(30)
        if gate.inner.locked():  # the waiter failed to give it back: free it for logging's next user
            gate.inner.release()
        tracedthreading.unpatch()
    assert logging._lock is gate  # type: ignore[attr-defined]


def test_handler_locks_are_named_after_their_handler() -> None:
    """A handler's lock is named after its class, and its name when it has one before its lock is used."""
    name_property, set_name = logging.Handler.__dict__["name"], logging.Handler.set_name
    with tracedthreading.patched():
        plain = logging.StreamHandler()
        named = logging.StreamHandler()
        named.name = "quiet"

        class Custom(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                pass

        custom = Custom()
        custom.set_name("mine")
        used = Custom()
        used.acquire()
        used.release()
        used.name = "late"
    assert plain.lock.trace_name == "logging.StreamHandler"
    assert named.lock.trace_name == "logging.StreamHandler 'quiet'"
    assert custom.lock.trace_name == f"{__name__}.{Custom.__qualname__} 'mine'"
    assert used.lock.trace_name == f"{__name__}.{Custom.__qualname__}"  # a lock already recorded keeps its name
    assert logging.Handler.__dict__["name"] is name_property
    assert logging.Handler.set_name is set_name


def test_logging_imported_under_the_patch_gets_a_named_quiet_module_lock(tmp_path: Path) -> None:
    """``import logging`` after the patch: its module lock is traced from the start, named and quiet."""
    code = (
        "import sys, tracedthreading\n"
        "from tracedthreading import _lockcore\n"
        "tracedthreading.patch()\n"
        "assert 'logging' not in sys.modules, 'logging already imported'\n"
        "import logging\n"
        "print(logging._lock.trace_name, logging._lock in _lockcore.quiet)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["logging._lock", "True"]
