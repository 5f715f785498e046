"""patch()/unpatch()/patched(): threading's factories build traced primitives, and are restored exactly."""

from __future__ import annotations

import _thread
import functools
import queue
import sys
import threading
import types
import warnings
from collections.abc import Iterator
from typing import Any

import pytest

import tracedthreading
from tracedthreading import patching
from tracedthreading.testing import capture_events, events_named

ORIGINALS = dict(patching._ORIGINALS)


@pytest.fixture(autouse=True)
def _unpatched() -> Iterator[None]:
    """Every test starts and ends unpatched."""
    tracedthreading.unpatch()
    yield
    tracedthreading.unpatch()


def _line() -> int:
    """The line number of the caller (to build the expected default name)."""
    return sys._getframe(1).f_lineno


def _make(name: str) -> Any:
    """Call ``threading.<name>`` with the arguments it needs."""
    args: dict[str, tuple[Any, ...]] = {"Barrier": (2,), "Timer": (60, print)}
    return getattr(threading, name)(*args.get(name, ()))


@pytest.mark.parametrize("name", patching.NAMES)
def test_factories_build_traced_primitives_named_after_the_caller(name: str) -> None:
    """Under the patch ``threading.X()`` is ``tracedthreading.X``, named ``module:line`` of the call."""
    with tracedthreading.patched():
        made, line = getattr(threading, name)(*{"Barrier": (2,), "Timer": (60, print)}.get(name, ())), _line()
    assert type(made) is getattr(tracedthreading, name)
    assert made.trace_name == f"{__name__}:{line}"


def test_one_line_run_in_two_modules_names_each_after_its_module() -> None:
    """The stand-ins cache a site's name per code object and instruction: the same code run with two
    modules' globals (``exec``) still names what it makes after each module, and each line of a loop
    body after its own line."""
    code = compile("made = [threading.Condition() for _ in range(3)]\nlast = threading.Semaphore()\n",
                   "<sites>", "exec")
    names = []
    with tracedthreading.patched():
        for module in ("first_module", "second_module", "first_module"):
            namespace = {"__name__": module, "threading": threading}
            exec(code, namespace)
            names.append(([c.trace_name for c in namespace["made"]], namespace["last"].trace_name))
    assert names == [
        (["first_module:1"] * 3, "first_module:2"),
        (["second_module:1"] * 3, "second_module:2"),
        (["first_module:1"] * 3, "first_module:2"),
    ]


def test_a_stand_in_takes_positional_and_keyword_arguments_as_the_stdlib_does() -> None:
    """Arguments reach the traced class as given (the name is added as a keyword); a bad one raises the
    stdlib's error; ``name=`` given by the caller wins over the site's."""
    with tracedthreading.patched():
        lock = threading.Lock()
        condition, condition_line = threading.Condition(lock), _line()
        by_keyword = threading.Condition(lock=lock)
        semaphore = threading.BoundedSemaphore(value=3, name="pool")
        barrier = threading.Barrier(2, None, 5.0)
        with pytest.raises(ValueError, match="semaphore initial value must be >= 0"):
            threading.Semaphore(-1)
        with pytest.raises(TypeError):
            threading.Event(1)  # type: ignore[call-arg]
    assert condition._lock is lock and by_keyword._lock is lock
    assert (semaphore.trace_name, semaphore._value) == ("pool", 3)
    assert (barrier.parties, barrier._timeout) == (2, 5.0)
    assert condition.trace_name == f"{__name__}:{condition_line}"


def test_explicit_name_is_kept() -> None:
    """A ``name=`` given to the patched factory is passed through."""
    with tracedthreading.patched():
        lock = threading.Lock(name="mine")  # type: ignore[call-arg]
    assert lock.name == "mine"


def test_unpatch_restores_identity_everywhere() -> None:
    """After unpatch() every replaced attribute is the very same stdlib object as before."""
    import _strptime
    import _threading_local
    import multiprocessing.dummy
    import tempfile
    import unittest.mock

    holders = [
        (functools, "RLock"), (unittest.mock, "RLock"), (_threading_local, "RLock"),
        (tempfile, "_allocate_lock"), (_strptime, "_thread_allocate_lock"),
        (multiprocessing.dummy, "Lock"), (multiprocessing.dummy, "Condition"),
    ]
    before = {(module.__name__, attr): getattr(module, attr) for module, attr in holders}
    tracedthreading.patch()
    for module, attr in holders:
        assert getattr(module, attr) is not before[module.__name__, attr], (module.__name__, attr)
        assert patching._ORIGINAL_OF[id(getattr(module, attr))] is before[module.__name__, attr]
    assert type(functools.RLock()) is tracedthreading.RLock
    tracedthreading.unpatch()
    for module, attr in holders:
        assert getattr(module, attr) is before[module.__name__, attr]
    for name, original in ORIGINALS.items():
        assert getattr(threading, name) is original


def test_patch_and_unpatch_are_idempotent() -> None:
    """Patching twice patches once; unpatching twice restores once."""
    tracedthreading.patch()
    proxy = threading.Lock
    tracedthreading.patch()
    assert threading.Lock is proxy
    assert patching.is_patched()
    tracedthreading.unpatch()
    tracedthreading.unpatch()
    assert threading.Lock is ORIGINALS["Lock"]
    assert not patching.is_patched()


def test_patched_nests() -> None:
    """An inner patched() leaves the outer patch in place; the outer one undoes it."""
    with tracedthreading.patched():
        with tracedthreading.patched():
            pass
        assert patching.is_patched()
        assert type(threading.Lock()) is tracedthreading.Lock
    assert threading.Lock is ORIGINALS["Lock"]


def test_threading_internals_stay_raw() -> None:
    """Calls made inside threading (default RLock, Condition(Lock()), Thread's Events) get stdlib objects."""
    with tracedthreading.patched():
        semaphore = threading.Semaphore()
        condition = threading.Condition()
        thread = threading.Thread(target=print)
        raw_condition = ORIGINALS["Condition"]()
    assert type(semaphore._cond) is ORIGINALS["Condition"]  # type: ignore[attr-defined]
    assert type(semaphore._cond._lock) is type(_thread.allocate_lock())  # type: ignore[attr-defined]
    assert type(condition._lock) is tracedthreading.RLock  # type: ignore[attr-defined]
    assert type(thread._started) is ORIGINALS["Event"]  # type: ignore[attr-defined]
    assert type(raw_condition._lock) is _thread.RLock  # type: ignore[attr-defined]


def test_stdlib_users_get_traced_locks() -> None:
    """queue.Queue made under the patch has traced locks named after queue's own lines."""
    with tracedthreading.patched():
        q: queue.Queue[int] = queue.Queue()
    assert type(q.mutex) is tracedthreading.Lock
    assert q.mutex.name.startswith("queue:")
    assert type(q.not_empty) is tracedthreading.Condition


def test_disabled_configuration_applies_at_call_time() -> None:
    """configure(enabled=False) under the patch makes threading.Lock() a raw lock."""
    with tracedthreading.patched():
        tracedthreading.configure(enabled=False)
        raw = threading.Lock()
        tracedthreading.configure(enabled=True)
        traced = threading.Lock()
    assert type(raw) is type(_thread.allocate_lock())
    assert type(traced) is tracedthreading.Lock


def test_locks_made_before_the_patch_stay_raw() -> None:
    """Only primitives created under the patch are traced."""
    before = threading.Lock()
    with tracedthreading.patched():
        assert type(before) is type(_thread.allocate_lock())


def _isinstance(obj: Any, cls: Any) -> Any:
    """isinstance's result, or the type of exception it raises."""
    try:
        return isinstance(obj, cls)
    except TypeError:
        return TypeError


@pytest.mark.parametrize("name", patching.NAMES)
def test_isinstance_behaves_as_without_the_patch(name: str) -> None:
    """isinstance against a patched factory answers as the stdlib one does, for raw and traced objects."""
    raw = _make(name)
    expected = _isinstance(raw, ORIGINALS[name])
    with tracedthreading.patched():
        traced = _make(name)
        assert _isinstance(raw, getattr(threading, name)) == expected
        assert _isinstance(traced, getattr(threading, name)) == expected
        if expected is True:
            assert issubclass(type(traced), getattr(threading, name))
            assert not isinstance(object(), getattr(threading, name))


def test_traced_rlock_is_not_a_lock() -> None:
    """Where threading.Lock is a class (3.13), a traced RLock is no Lock, as with the stdlib."""
    with tracedthreading.patched():
        rlock = threading.RLock()
        expected = _isinstance(ORIGINALS["RLock"](), ORIGINALS["Lock"])
        assert _isinstance(rlock, threading.Lock) == expected
        if isinstance(ORIGINALS["Lock"], type):
            assert isinstance(threading.Lock(), threading.Lock)


def _call_as_class_attribute(factory: Any) -> Any:
    """What ``Holder().make()`` does when the class attribute ``make`` is ``factory``: bound or not."""

    class Holder:
        make = factory

    try:
        return type(Holder().make())
    except TypeError:  # bound as a method: the factory got the instance as an argument
        return TypeError


@pytest.mark.parametrize("name", ["Lock", "RLock"])
def test_a_patched_factory_binds_as_a_class_attribute_as_the_original_does(name: str) -> None:
    """Called through an instance, a factory kept as a class attribute builds what the stdlib's does (the
    stdlib's RLock function binds, and ignores the instance it is given)."""
    with warnings.catch_warnings():  # 3.13 deprecates the argument the stdlib's bound RLock passes on
        warnings.simplefilter("ignore", DeprecationWarning)
        expected = _call_as_class_attribute(ORIGINALS[name])
    with tracedthreading.patched():
        got = _call_as_class_attribute(getattr(threading, name))
    if expected is TypeError:
        assert got is TypeError
    else:
        assert got is getattr(tracedthreading, name)


def test_subclassing_a_patched_class_subclasses_the_stdlib_one() -> None:
    """``class C(threading.Event)`` under the patch builds a plain stdlib-style object, old-style init included."""
    with tracedthreading.patched():

        class MyEvent(threading.Event):  # type: ignore[misc]
            def __init__(self) -> None:
                threading.Event.__init__(self)
                self.extra = 1

        event = MyEvent()
        assert isinstance(event, MyEvent) and isinstance(event, threading.Event)
    assert type(event) is MyEvent and event.extra == 1
    assert issubclass(MyEvent, ORIGINALS["Event"])
    assert isinstance(event, ORIGINALS["Event"]) and not event.is_set()


def test_bounded_semaphore_calls_semaphore_init() -> None:
    """A stdlib BoundedSemaphore made under the patch (its __init__ calls Semaphore.__init__) works."""
    with tracedthreading.patched():
        traced = threading.BoundedSemaphore(2)
        raw = ORIGINALS["BoundedSemaphore"](2)
        with threading.Semaphore():
            pass
    assert traced.acquire() and raw.acquire()
    traced.release()
    with pytest.raises(ValueError):
        traced.release()


def test_module_imported_under_the_patch_is_restored() -> None:
    """A module that copied a patched factory gets the original back at unpatch()."""
    with tracedthreading.patched():
        module = types.ModuleType("tt_late_module")
        module.Lock = threading.Lock  # what ``from threading import Lock`` does
        sys.modules["tt_late_module"] = module
    try:
        assert module.Lock is ORIGINALS["Lock"]
    finally:
        del sys.modules["tt_late_module"]


def test_leftover_proxy_calls_the_original_after_unpatch() -> None:
    """A reference to a proxy kept past unpatch() builds raw objects again."""
    with tracedthreading.patched():
        kept = threading.Lock
    assert type(kept()) is type(_thread.allocate_lock())


class _ReadOnlyModule(types.ModuleType):
    """A module refusing attribute assignment."""

    def __setattr__(self, name: str, value: Any) -> None:
        msg = "read-only"
        raise AttributeError(msg)


def test_unpatchable_holders_are_reported() -> None:
    """Class attributes and read-only modules holding a factory are named in one patch.missed event."""
    module = types.ModuleType("tt_holder")

    class Holder:
        factory = staticmethod(ORIGINALS["Lock"])

    Holder.__module__ = "tt_holder"
    module.Holder = Holder  # type: ignore[attr-defined]
    readonly = _ReadOnlyModule("tt_readonly")
    readonly.__dict__["Event"] = ORIGINALS["Event"]
    sys.modules.update(tt_holder=module, tt_readonly=readonly)
    try:
        with capture_events() as events, tracedthreading.patched():
            pass
    finally:
        del sys.modules["tt_holder"], sys.modules["tt_readonly"]
    missed = events_named(events, "patch.missed")
    assert len(missed) == 1
    assert "tt_holder.Holder.factory" in missed[0]["modules"]
    assert "tt_readonly.Event" in missed[0]["modules"]
    assert readonly.Event is ORIGINALS["Event"]


def test_closures_and_default_arguments_holding_a_factory_are_reported() -> None:
    """Factories a module scan cannot replace in closures and default arguments are named too (as docs/runner.rst says)."""
    module = types.ModuleType("tt_hidden")
    module.__dict__["__name__"] = "tt_hidden"
    exec(  # noqa: S102 - a module's source, defined here so the test shows what is found
        "def make(factory=LOCK):\n"
        "    return factory()\n"
        "def keyword(*, factory=EVENT):\n"
        "    return factory()\n"
        "def outer(factory):\n"
        "    def build():\n"
        "        return factory()\n"
        "    return build\n"
        "builder = outer(RLOCK)\n"
        "class Pool:\n"
        "    def grow(self, factory=LOCK):\n"
        "        return factory()\n",
        {**module.__dict__, "LOCK": ORIGINALS["Lock"], "EVENT": ORIGINALS["Event"], "RLOCK": ORIGINALS["RLock"]},
        module.__dict__,
    )
    for name in ("LOCK", "EVENT", "RLOCK"):
        module.__dict__.pop(name, None)
    sys.modules["tt_hidden"] = module
    try:
        with capture_events() as events, tracedthreading.patched():
            pass
    finally:
        del sys.modules["tt_hidden"]
    missed = events_named(events, "patch.missed")
    assert len(missed) == 1
    names = [name for name in missed[0]["modules"] if name.startswith("tt_hidden.")]
    assert names == sorted(["tt_hidden.make (default argument)", "tt_hidden.keyword (default argument)",
                            "tt_hidden.builder (closure)", "tt_hidden.Pool.grow (default argument)"])
