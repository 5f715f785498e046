"""The public surface: every threading name, the additions, reprs and names."""

from __future__ import annotations

import re
import threading as std

import pytest

import tracedthreading

TRACED = ["Lock", "RLock", "Condition", "Semaphore", "BoundedSemaphore", "Event", "Barrier", "Timer", "Thread"]


@pytest.mark.parametrize("name", sorted(std.__all__))
def test_every_threading_name_is_exported(name: str) -> None:
    """Each name of threading.__all__ is importable from tracedthreading and listed in its __all__."""
    assert hasattr(tracedthreading, name)
    assert name in tracedthreading.__all__


@pytest.mark.parametrize("name", ["get_ident", "get_native_id", "main_thread", "TIMEOUT_MAX", "excepthook", "local",
                                  "Thread", "current_thread", "enumerate", "active_count", "settrace",
                                  "setprofile", "stack_size", "ThreadError", "BrokenBarrierError"])
def test_usual_extras_are_the_stdlib_objects(name: str) -> None:
    """Names tracedthreading does not instrument are the stdlib's very objects (or a traced subclass)."""
    ours, theirs = getattr(tracedthreading, name), getattr(std, name)
    if name == "Thread":
        assert issubclass(ours, theirs)
    else:
        assert ours is theirs


def test_excepthook_assignment_reaches_the_stdlib() -> None:
    """threading.excepthook = f through tracedthreading changes the hook Thread really uses."""
    seen = []
    saved = std.excepthook
    try:
        tracedthreading.excepthook = lambda args: seen.append(args.exc_type)
        assert std.excepthook is tracedthreading.excepthook
        thread = tracedthreading.Thread(target=lambda: 1 / 0)
        thread.start()
        thread.join(30)
    finally:
        std.excepthook = saved
    assert seen == [ZeroDivisionError]


def test_all_is_sorted_and_resolves() -> None:
    """__all__ is sorted and every entry exists."""
    assert tracedthreading.__all__ == sorted(tracedthreading.__all__)
    for name in tracedthreading.__all__:
        assert hasattr(tracedthreading, name), name


@pytest.mark.parametrize("name", TRACED[2:])
def test_sync_primitives_subclass_their_stdlib_twins(name: str) -> None:
    """isinstance checks against the stdlib classes keep working."""
    assert issubclass(getattr(tracedthreading, name), getattr(std, name))


def test_default_name_is_creation_site() -> None:
    """Without name= a primitive is named module:line of the line that created it."""
    lock = tracedthreading.Lock()
    line = test_default_name_is_creation_site.__code__.co_firstlineno + 2
    assert lock.name == f"{__name__}:{line}"
    cond = tracedthreading.Condition()
    assert cond.name == f"{__name__}:{line + 3}"


@pytest.mark.parametrize("name", TRACED[:-2])
def test_explicit_name_and_repr(name: str) -> None:
    """name= is used verbatim and shows in the repr next to the stdlib-style state."""
    factory = getattr(tracedthreading, name)
    primitive = factory(2, name="teller") if name == "Barrier" else factory(name="teller")
    assert primitive.name == "teller"
    assert "name='teller'" in repr(primitive)


def test_lock_repr_shows_state() -> None:
    """Lock and RLock reprs follow the stdlib's <locked|unlocked ... object ... at 0x...> shape."""
    lock, rlock = tracedthreading.Lock(name="a"), tracedthreading.RLock(name="b")
    assert re.match(r"<unlocked tracedthreading\.Lock object name='a' at 0x[0-9a-f]+>", repr(lock))
    with lock, rlock, rlock:
        assert repr(lock).startswith("<locked ")
        assert re.match(rf"<locked tracedthreading\.RLock object owner={std.get_ident()} count=2 ", repr(rlock))


@pytest.mark.parametrize("bad", [1, b"x", ["x"]])
def test_name_must_be_a_string(bad: object) -> None:
    """A non-string name is a TypeError that says so."""
    with pytest.raises(TypeError, match="name must be a str"):
        tracedthreading.Lock(name=bad)  # type: ignore[arg-type]


def test_timer_keeps_thread_name_semantics() -> None:
    """Timer.name is still the thread's name; the statistics name is trace_name."""
    timer = tracedthreading.Timer(10, lambda: None, name="announce")
    assert timer.trace_name == "announce"
    assert timer.name.startswith("Thread-")
    timer.cancel()


def test_forget_rejects_foreign_objects() -> None:
    """forget() names the problem when given something that is not a traced primitive."""
    with pytest.raises(TypeError, match="tracedthreading primitive"):
        tracedthreading.forget(std.Lock())


def test_off_switch_gives_raw_stdlib_primitives() -> None:
    """configure(enabled=False) makes new primitives the stdlib's own, still accepting name=."""
    tracedthreading.configure(enabled=False)
    lock = tracedthreading.Lock(name="x")
    assert type(lock) is type(std.Lock())
    assert type(tracedthreading.Condition(name="c")) is std.Condition
    tracedthreading.configure(enabled=True)
    assert isinstance(tracedthreading.Lock(), tracedthreading._primitives.Lock)


@pytest.mark.parametrize("name", ["currentThread", "activeCount"])
def test_deprecated_camel_case_functions_are_there_as_in_the_stdlib(name: str) -> None:
    """``currentThread``/``activeCount`` exist exactly where the stdlib has them and warn as it does."""
    assert hasattr(tracedthreading, name) == hasattr(std, name)
    if not hasattr(std, name):
        return
    with pytest.warns(DeprecationWarning, match=name):
        ours = getattr(tracedthreading, name)()
    with pytest.warns(DeprecationWarning, match=name):
        theirs = getattr(std, name)()
    assert ours == theirs
    assert name not in tracedthreading.__all__  # as in threading.__all__


def _implementations(kind: str) -> list[type]:
    from tracedthreading import _primitives

    names = ("PyLock", "CLock") if kind == "Lock" else ("PyRLock", "CRLock")
    return [cls for cls in (getattr(_primitives, name) for name in names) if cls is not None]


@pytest.mark.parametrize("alias", ["acquire_lock", "release_lock", "locked_lock"])
@pytest.mark.parametrize("kind", ["Lock", "RLock"])
def test_lock_aliases_exist_where_the_stdlib_has_them(kind: str, alias: str) -> None:
    """The old ``acquire_lock``/``release_lock``/``locked_lock`` aliases are on our classes iff on the stdlib's."""
    import _thread

    stdlib_type = _thread.LockType if kind == "Lock" else _thread.RLock
    for cls in _implementations(kind):
        assert hasattr(cls, alias) == hasattr(stdlib_type, alias), (cls, alias)


def test_lock_aliases_behave_as_the_stdlib_ones() -> None:
    """Each alias does what the stdlib's does, and is traced like the method it names."""
    import _thread

    if not hasattr(_thread.LockType, "acquire_lock"):
        pytest.skip("this Python's lock type has no acquire_lock alias")  # 3.10-3.13 all have it
    for cls in _implementations("Lock"):
        for lock in (cls(name=f"alias {cls.__module__}.{id(cls)}"), _thread.allocate_lock()):
            assert lock.acquire_lock() is True
            assert lock.locked_lock() is True
            assert lock.acquire_lock(False) is False
            assert lock.acquire_lock(blocking=True, timeout=0.01) is False
            assert lock.release_lock() is None
            assert lock.locked_lock() is False
            with pytest.raises(RuntimeError):
                lock.release_lock()
            with pytest.raises(ValueError):
                lock.acquire_lock(False, 1)
        stats = tracedthreading.snapshot().lock(f"alias {cls.__module__}.{id(cls)}")
        assert stats.acquisitions == 1
        assert stats.timeouts >= 1


@pytest.mark.parametrize("module", [std, tracedthreading], ids=["stdlib", "traced"])
def test_timer_with_no_interval_waits_until_cancelled(module: object) -> None:
    """``Timer(None, f)`` starts, never calls ``f`` on its own, and ends when cancelled (as the stdlib's)."""
    calls: list[int] = []
    timer = module.Timer(None, calls.append, args=(1,))  # type: ignore[attr-defined]
    timer.start()
    timer.join(0.2)
    assert timer.is_alive()
    timer.cancel()
    timer.join(30)
    assert not timer.is_alive()
    assert calls == []


@pytest.mark.parametrize("module", [std, tracedthreading], ids=["stdlib", "traced"])
def test_timer_finished_after_the_callback_raises(module: object) -> None:
    """A callback that raises leaves ``finished`` as the stdlib leaves it (unset); one that returns sets it."""

    def boom() -> None:
        raise ValueError("boom")

    failing = module.Timer(0, boom)  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="boom"):
        failing.run()
    ok = module.Timer(0, lambda: None)  # type: ignore[attr-defined]
    ok.run()
    assert (failing.finished.is_set(), ok.finished.is_set()) == (std_timer_states()[0], True)


def std_timer_states() -> tuple[bool]:
    """``finished.is_set()`` of a stdlib Timer whose callback raised, run here (the reference)."""

    def boom() -> None:
        raise ValueError("boom")

    timer = std.Timer(0, boom)
    with pytest.raises(ValueError):
        timer.run()
    return (timer.finished.is_set(),)


@pytest.mark.parametrize("lock", [None, "Lock", "RLock"])
def test_condition_sets_up_the_same_state_as_the_stdlibs(lock: str | None) -> None:
    """Our Condition's ``__init__`` (inlined for its default RLock) leaves the attributes the stdlib's
    ``__init__`` leaves, bound to the same lock, on every Python version."""
    given = None if lock is None else getattr(tracedthreading, lock)()
    ours = tracedthreading.Condition(given)
    reference = std.Condition.__new__(std.Condition)
    std.Condition.__init__(reference, ours._lock)  # the stdlib's own set-up, on the same lock
    expected = vars(reference)
    got = {name: value for name, value in vars(ours).items() if name in expected}
    assert got.keys() == expected.keys()
    for name, value in expected.items():
        if name == "_waiters":
            assert type(got[name]) is type(value) and not got[name]
        else:
            assert got[name] == value, name
