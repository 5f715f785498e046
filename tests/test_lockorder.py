"""The lock-order graph: edges, counts, witnesses, cycle detection, precision rules, lifetime, API."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import tracedthreading
from tracedthreading import _lockorder, _threads
from tracedthreading.testing import capture_events, events_named

INVERSION = "lock.order_inversion"
SUPPRESSED = "lock.order_inversion_suppressed"


# -- helpers ------------------------------------------------------------------------------------------


def nest(*locks: Any) -> None:
    """Take ``locks`` nested, outermost first, then release them."""
    if locks:
        with locks[0]:
            nest(*locks[1:])


def in_thread(target: Callable[[], Any], name: str) -> None:
    """Run ``target`` in a fresh thread called ``name`` and wait for it."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            target()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
            errors.append(exc)

    thread = tracedthreading.Thread(target=run, name=name)
    thread.start()
    thread.join(30)
    if errors:
        raise errors[0]


def graph_edges() -> set[tuple[str, str]]:
    """Every edge of the order graph (ordered part and back edges) as (src name, dst name)."""
    with _lockorder._lock:
        pairs = [(s, d) for s, succ in _lockorder._succ.items() for d in succ] + list(_lockorder._back)
        return {(_lockorder._names[s], _lockorder._names[d]) for s, d in pairs}


def check_invariants() -> None:
    """Assert the Pearce–Kelly invariants and the consistency of every index of the graph."""
    lo = _lockorder
    with lo._lock:
        assert set(lo._succ) == set(lo._pred) == set(lo._ord)
        assert len(set(lo._ord.values())) == len(lo._ord)  # a strict order
        for src, succ in lo._succ.items():
            for dst, edge in succ.items():
                assert (edge.src, edge.dst) == (src, dst)
                assert lo._ord[src] < lo._ord[dst], "ordered edge against the topological order"
                assert src in lo._pred[dst]
                assert (src, dst) not in lo._back
        for dst, preds in lo._pred.items():
            for src in preds:
                assert dst in lo._succ[src]
        assert set(lo._back) == {(s, d) for s, out in lo._back_out.items() for d in out}
        assert set(lo._back) == {(s, d) for d, ins in lo._back_in.items() for s in ins}
        for (src, dst), edge in lo._back.items():
            assert (edge.src, edge.dst) == (src, dst)
            assert src in lo._ord and dst in lo._ord


def rotate(cycle: tuple[str, ...]) -> tuple[str, ...]:
    """The rotation of a cycle that starts with its smallest name (cycles compare up to rotation)."""
    start = cycle.index(min(cycle))
    return cycle[start:] + cycle[:start]


def locks(*names: str) -> list[tracedthreading.Lock]:
    """One named traced Lock per name."""
    return [tracedthreading.Lock(name=name) for name in names]


# -- edges, counts, witnesses, hint -------------------------------------------------------------------


def test_two_lock_inversion_counts_each_edge_and_hint_points_at_the_rare_site() -> None:
    """A->B taken 1,203 times and B->A once: one report, exact counts, and a hint at the B->A site."""
    a, b = locks("A", "B")

    def rare() -> None:
        with b:
            with a:  # the rare site
                pass

    with capture_events() as events:
        for _ in range(1203):
            nest(a, b)
        in_thread(rare, "rare-thread")
        in_thread(rare, "rare-thread")  # the same cycle again: no second report
    (event,) = events_named(events, INVERSION)
    (inversion,) = tracedthreading.snapshot().inversions
    assert rotate(inversion.locks) == ("A", "B")
    counts = {(e.src, e.dst): e.count for e in inversion.edges}
    assert counts == {("A", "B"): 1203, ("B", "A"): 1}
    closing = inversion.edges[-1]
    assert (closing.src, closing.dst, closing.thread) == ("B", "A", "rare-thread")
    assert closing.stack[-1].endswith(f"in {rare.__name__}")
    assert "A->B taken 1,203 times" in inversion.hint
    assert "take A before B there" in inversion.hint
    assert closing.site in inversion.hint
    assert event["lock"] == "A" and event["thread"] == "rare-thread"
    assert event["cycle"] == list(inversion.locks)
    assert "1,203" in event["report"]


def test_counts_deferred_by_the_context_cache_are_flushed_into_the_edge() -> None:
    """Takes counted by the hot path's context cache reach the edge when the context changes."""
    a, b, c = locks("A", "B", "C")
    for _ in range(50):
        nest(a, b)
    nest(c, b)  # B's context changes: its 49 cached A->B takes are flushed
    for _ in range(7):
        nest(a, b)
    nest(b, a)
    (inversion,) = tracedthreading.snapshot().inversions
    assert {(e.src, e.dst): e.count for e in inversion.edges} == {("A", "B"): 57, ("B", "A"): 1}


def test_cycle_of_three_locks_across_three_threads_names_each_witness() -> None:
    """A->B, B->C, C->A taken in three threads: one report with the three locks and their witnesses."""
    a, b, c = locks("A", "B", "C")
    in_thread(lambda: nest(a, b), "t1")
    in_thread(lambda: nest(b, c), "t2")
    assert not tracedthreading.snapshot().inversions
    in_thread(lambda: nest(c, a), "t3")
    (inversion,) = tracedthreading.snapshot().inversions
    assert rotate(inversion.locks) == ("A", "B", "C")
    witnesses = {(e.src, e.dst): e.thread for e in inversion.edges}
    assert witnesses == {("A", "B"): "t1", ("B", "C"): "t2", ("C", "A"): "t3"}
    for i, edge in enumerate(inversion.edges):
        assert (edge.src, edge.dst) == (inversion.locks[i], inversion.locks[(i + 1) % 3])
        assert edge.stack
    assert str(inversion).splitlines()[1].strip() == "cycle: " + " -> ".join((*inversion.locks, inversion.locks[0]))


def test_cycle_within_one_thread_at_different_times_is_reported() -> None:
    """One thread taking A then B, and later B then A, is an inversion (two threads could do it)."""
    a, b = locks("A", "B")
    nest(a, b)
    nest(b, a)
    assert [rotate(i.locks) for i in tracedthreading.snapshot().inversions] == [("A", "B")]


def test_one_edge_closing_several_cycles_gives_one_report_with_the_shortest() -> None:
    """E->A closes A->E and A->B->E: one report, for the shortest cycle (E, A)."""
    a, b, e = locks("A", "B", "E")
    nest(a, b, e)  # A->B, A->E, B->E
    nest(e, a)
    (inversion,) = tracedthreading.snapshot().inversions
    assert rotate(inversion.locks) == ("A", "E")


def test_witness_stack_is_bounded_and_cached_per_call_site() -> None:
    """A witness stack keeps at most stack_depth frames, captured once per call site."""
    tracedthreading.configure(stack_depth=3)
    a, b, c = locks("A", "B", "C")

    def deep(n: int, inner: Any) -> None:
        if n:
            deep(n - 1, inner)
        else:
            nest(a, inner)

    deep(10, b)
    deep(10, c)  # same call site as the A->B take: the cached stack is reused
    with _lockorder._lock:
        ab = _lockorder._edge(a._key, b._key)
        ac = _lockorder._edge(a._key, c._key)
        assert ab is not None and ac is not None
        assert len(ab.stack) == 3 and ab.stack[0].endswith("in deep") and ab.stack[-1].endswith("in nest")
        assert ac.stack is ab.stack
        assert len(_lockorder._stack_cache) == 1


def test_edges_record_the_context_they_were_first_seen_in() -> None:
    """Each OrderEdge carries the context (test id) of its first take; the Inversion the closing one."""
    a, b = locks("A", "B")
    try:
        _lockorder.context = "tests/x.py::test_one"
        nest(a, b)
        _lockorder.context = "tests/x.py::test_two"
        nest(b, a)
    finally:
        _lockorder.context = ""
    (inversion,) = tracedthreading.snapshot().inversions
    assert {(e.src, e.context) for e in inversion.edges} == {("A", "tests/x.py::test_one"),
                                                             ("B", "tests/x.py::test_two")}
    assert inversion.context == "tests/x.py::test_two"


# -- precision ---------------------------------------------------------------------------------------


def test_rlock_reentry_is_not_an_edge() -> None:
    """Re-entering an RLock while holding another lock adds no edge (so no false inversion)."""
    r = tracedthreading.RLock(name="R")
    (x,) = locks("X")
    with r:
        with x:
            with r:  # re-entry: not "X held while acquiring R"
                pass
    assert graph_edges() == {("R", "X")}
    assert not tracedthreading.snapshot().inversions


def test_trylock_adds_no_edge_into_itself_but_locks_taken_under_it_do() -> None:
    """acquire(blocking=False) adds no edge from held locks; locks taken while holding it do."""
    a, b, c = locks("A", "B", "C")
    with b:
        assert a.acquire(blocking=False)
        with c:
            pass
        a.release()
    assert graph_edges() == {("B", "C"), ("A", "C")}
    nest(a, b)  # would close B->A->B had the trylock been an edge
    assert not tracedthreading.snapshot().inversions


def test_rlock_and_semaphore_trylocks_add_no_edge_into_themselves() -> None:
    """The trylock rule holds for RLocks and (with order_semaphores) Semaphores as for Locks."""
    tracedthreading.configure(order_semaphores=True)
    b, c = locks("B", "C")
    r = tracedthreading.RLock(name="R")
    sem = tracedthreading.Semaphore(1, name="S")
    with b:
        assert r.acquire(blocking=False)
        assert sem.acquire(blocking=False)
        with c:
            pass
        sem.release()
        r.release()
    assert graph_edges() == {("B", "C"), ("R", "C"), ("S", "C")}
    nest(r, b)  # would close B->R->B had the trylock been an edge
    nest(sem, b)
    assert not tracedthreading.snapshot().inversions


def test_witness_stacks_are_captured_only_for_new_edges(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stack is taken when an edge is first seen, never when a known edge is observed again."""
    captured: list[int] = []
    witness = _lockorder._witness_stack

    def counting() -> tuple[str, ...]:
        captured.append(1)
        return witness()

    monkeypatch.setattr(_lockorder, "_witness_stack", counting)
    a, b, c = locks("A", "B", "C")
    nest(a, b)  # new edge A->B
    nest(c, b)  # new edge C->B: B's cached context is now [C]
    nest(a, b)  # a known edge, observed again (the context changed back): no stack
    assert len(captured) == 2
    with _lockorder._lock:
        assert _lockorder._edge(a._key, b._key).count == 2  # the observation did happen


def test_timed_acquire_is_an_edge_and_the_report_says_timed() -> None:
    """A timed acquire records an edge, marked timed, and the report says so."""
    a, b = locks("A", "B")
    nest(a, b)
    with b:
        assert a.acquire(timeout=5)
        a.release()
    (inversion,) = tracedthreading.snapshot().inversions
    assert inversion.timed
    assert [e.timed for e in inversion.edges if e.src == "B"] == [True]
    assert "timed" in str(inversion)


def test_gated_cycle_is_suppressed_then_reported_when_a_guard_set_shrinks() -> None:
    """A cycle taken only under gate G is a debug event; taking one edge without G reports it."""
    g, a, b = locks("G", "A", "B")
    with capture_events() as events:
        nest(g, a, b)
        nest(g, b, a)
    assert not tracedthreading.snapshot().inversions
    (suppressed,) = events_named(events, SUPPRESSED)
    assert suppressed["level"] == "debug"
    assert rotate(tuple(suppressed["cycle"])) == ("A", "B") and "G" in suppressed["reason"]
    with capture_events() as events:
        nest(b, a)  # B->A without G: the guard set shrinks to nothing
    (event,) = events_named(events, INVERSION)
    (inversion,) = tracedthreading.snapshot().inversions
    assert rotate(inversion.locks) == ("A", "B")
    assert {e.src: e.guards for e in inversion.edges} == {"A": ("G",), "B": ()}


def test_gated_shortest_cycle_does_not_hide_an_ungated_longer_one() -> None:
    """When the shortest cycle through the new edge is gated, an ungated longer one is reported."""
    g, a, b, x = locks("G", "A", "B", "X")
    nest(g, a, b)
    nest(a, x)
    nest(x, b)
    nest(g, b, a)  # closes A->B->A (gated by G) and A->X->B->A (not gated)
    (inversion,) = tracedthreading.snapshot().inversions
    assert rotate(inversion.locks) == ("A", "X", "B")


def test_condition_wait_releases_its_lock_without_self_wait_or_bogus_edges() -> None:
    """While a thread waits on a Condition its lock is off its held stack; the re-take is no edge."""
    for make_lock in (lambda: tracedthreading.RLock(name="L"), lambda: tracedthreading.Lock(name="L")):
        tracedthreading.reset()
        lock = make_lock()
        cond = tracedthreading.Condition(lock, name="cond")
        (x,) = locks("X")
        waiting = tracedthreading.Event()
        seen: dict[str, Any] = {}

        def waiter() -> None:
            with cond:
                seen["before"] = list(_threads.current())
                waiting.set()
                cond.wait(timeout=10)
                seen["after"] = list(_threads.current())
            seen["end"] = list(_threads.current())

        with capture_events() as events:
            thread = tracedthreading.Thread(target=waiter)
            thread.start()
            waiting.wait(30)
            with x:
                with cond:  # the waiter released the lock: this succeeds
                    seen["during"] = list(_threads.all_held()[thread.ident].stack)
                    cond.notify()
            thread.join(30)
        assert seen == {"before": [lock._key], "during": [], "after": [lock._key], "end": []}
        assert graph_edges() == {("X", "L")}
        bad = {"lock.self_wait", "deadlock.detected", INVERSION}
        assert not [e for e in events if e["event"] in bad]


def test_lock_released_by_another_thread_keeps_every_held_stack_consistent() -> None:
    """A Lock released by another thread leaves the holder's stack without it, and others intact."""
    a, b, m, n = locks("A", "B", "M", "N")
    step = [tracedthreading.Event() for _ in range(4)]
    seen: dict[str, list[int]] = {}

    def holder() -> None:
        a.acquire()
        b.acquire()
        step[0].set()
        step[1].wait(30)  # main releases A (not on top of our stack)
        seen["after_foreign"] = list(_threads.current())
        b.release()
        with m:
            with n:
                seen["nested"] = list(_threads.current())
        seen["end"] = list(_threads.current())

    thread = tracedthreading.Thread(target=holder)
    thread.start()
    step[0].wait(30)
    with n:
        a.release()  # a foreign release, while main holds N
        assert list(_threads.current()) == [n._key]
    step[1].set()
    thread.join(30)
    assert seen == {"after_foreign": [b._key], "nested": [m._key, n._key], "end": []}
    assert not a.locked()


def test_semaphores_join_the_order_graph_only_when_asked() -> None:
    """Semaphores add no edges by default; with order_semaphores=True their inversions are reported."""
    sem = tracedthreading.Semaphore(1, name="S")
    (lock,) = locks("L")
    nest(sem, lock)
    nest(lock, sem)
    assert graph_edges() == set()
    assert not tracedthreading.snapshot().inversions
    tracedthreading.configure(order_semaphores=True)
    nest(sem, lock)
    nest(lock, sem)
    assert graph_edges() == {("S", "L"), ("L", "S")}
    (inversion,) = tracedthreading.snapshot().inversions
    assert rotate(inversion.locks) == ("L", "S")


def test_events_are_never_in_the_order_graph() -> None:
    """Setting or waiting on an Event while holding a lock adds no edge."""
    (lock,) = locks("L")
    event = tracedthreading.Event(name="E")
    event.set()
    with lock:
        event.wait()
        event.clear()
    assert graph_edges() == set()


def test_held_while_blocking_is_reported_once_per_site() -> None:
    """Event/Barrier/Condition(other lock)/Thread.join while holding a lock: one warning per call site."""
    (x,) = locks("X")
    event = tracedthreading.Event(name="E")
    barrier = tracedthreading.Barrier(1, name="B")
    cond = tracedthreading.Condition(name="C")
    thread = tracedthreading.Thread(target=lambda: None)
    thread.start()
    with capture_events() as events:
        for _ in range(2):  # the second round repeats the same sites
            with x:
                event.wait(0)
                barrier.wait()
                with cond:
                    cond.wait(0)
                thread.join(30)
        with cond:
            cond.wait(0)  # only its own lock held: not blocking while holding
    reports = events_named(events, "lock.held_while_blocking")
    assert sorted(e["call"] for e in reports) == ["Barrier.wait", "Condition.wait", "Event.wait", "Thread.join"]
    for report in reports:
        assert report["held"] == ["X"] and report["level"] == "warning"
        assert report["stack"][-1].endswith("in test_held_while_blocking_is_reported_once_per_site")


def test_order_off_records_nothing() -> None:
    """configure(order=False) keeps the graph empty."""
    tracedthreading.configure(order=False)
    a, b = locks("A", "B")
    nest(a, b)
    nest(b, a)
    assert graph_edges() == set()
    assert not tracedthreading.snapshot().inversions


# -- lock identity and lifetime ----------------------------------------------------------------------


def test_short_lived_locks_leave_the_graph_small() -> None:
    """100,000 locks nested under one long-lived lock and dropped leave one node and no edges."""
    outer = tracedthreading.Lock(name="outer")
    for _ in range(100_000):
        inner = tracedthreading.Lock()
        with outer:
            with inner:
                pass
    del inner
    sizes = _lockorder.stats()
    assert sizes["nodes"] <= 1 and sizes["edges"] == 0 and sizes["names"] <= 1
    assert sizes["stack_cache"] <= 2
    check_invariants()


def _make_a() -> tracedthreading.Lock:
    return tracedthreading.Lock()  # creation site of class A


def _make_b() -> tracedthreading.Lock:
    return tracedthreading.Lock()  # creation site of class B


def test_lock_class_mode_reports_inversions_across_instances_of_a_site() -> None:
    """With lock_class=True, a1->b1 and b2->a2 (same creation sites) form a class cycle."""
    tracedthreading.configure(lock_class=True)
    a1, a2, b1, b2 = _make_a(), _make_a(), _make_b(), _make_b()
    nest(a1, b1)
    nest(a1, a2)  # two instances of one class nested: not an edge
    nest(b2, a2)
    (inversion,) = tracedthreading.snapshot().inversions
    assert sorted(inversion.locks) == sorted([a1.site, b1.site])
    assert graph_edges() == {(a1.name, b1.name), (b1.name, a1.name)}


def test_instances_are_separate_nodes_by_default() -> None:
    """Without lock_class, opposite orders over different instances are not an inversion."""
    a1, a2, b1, b2 = _make_a(), _make_a(), _make_b(), _make_b()
    nest(a1, b1)
    nest(b2, a2)
    assert not tracedthreading.snapshot().inversions


def test_lock_class_counts_include_cached_takes_of_every_instance() -> None:
    """In lock_class mode, edge counts include takes cached by each instance's context."""
    tracedthreading.configure(lock_class=True)
    a, b1, b2 = _make_a(), _make_b(), _make_b()
    for _ in range(5):
        nest(a, b1)
    for _ in range(3):
        nest(a, b2)
    nest(b1, a)
    (inversion,) = tracedthreading.snapshot().inversions
    assert sorted(e.count for e in inversion.edges) == [1, 8]


def test_forget_drops_a_locks_history() -> None:
    """After forget(A), A's old edges are gone; taking A->B again re-creates the edge."""
    a, b = locks("A", "B")
    nest(a, b)
    tracedthreading.forget(a)
    assert graph_edges() == set()
    nest(b, a)
    assert not tracedthreading.snapshot().inversions
    nest(a, b)  # B's cached context names A: it must still be observed
    (inversion,) = tracedthreading.snapshot().inversions
    assert rotate(inversion.locks) == ("A", "B")
    with pytest.raises(TypeError, match="forget\\(\\) needs a tracedthreading primitive"):
        tracedthreading.forget(object())


def test_forget_in_lock_class_mode_drops_the_class_history() -> None:
    """With lock_class=True, forgetting one instance forgets its class: the old order is gone."""
    tracedthreading.configure(lock_class=True)
    a1, a2, b1 = _make_a(), _make_a(), _make_b()
    nest(a1, b1)
    tracedthreading.forget(a1)
    assert graph_edges() == set()
    nest(b1, a2)  # the opposite order, now the only one known
    assert not tracedthreading.snapshot().inversions
    nest(a2, b1)
    (inversion,) = tracedthreading.snapshot().inversions
    assert sorted(inversion.locks) == sorted([a1.site, b1.site])


def test_removing_a_node_moves_back_edges_into_the_order() -> None:
    """Once the node a back edge's cycle ran through is gone, the back edge rejoins the ordered part."""
    a, b, c = locks("A", "B", "C")
    nest(a, b)
    nest(b, c)
    nest(c, a)
    assert _lockorder.stats()["back_edges"] == 1
    tracedthreading.forget(b)
    assert _lockorder.stats()["back_edges"] == 0
    assert graph_edges() == {("C", "A")}
    check_invariants()
    nest(a, c)  # a new cycle through the surviving edge is still found
    assert [rotate(i.locks) for i in tracedthreading.snapshot().inversions] == [("A", "B", "C"), ("A", "C")]


# -- suppressions, raise mode, reset -------------------------------------------------------------------


def test_suppressions_by_name_and_by_site_wildcard() -> None:
    """configure(suppressions=...) accepts a cycle naming a listed lock or a site matching a '*' prefix."""
    a, b = locks("A", "B")
    tracedthreading.configure(suppressions=["B"])
    with capture_events() as events:
        nest(a, b)
        nest(b, a)
    assert not tracedthreading.snapshot().inversions
    (event,) = events_named(events, SUPPRESSED)
    assert "suppression 'B'" in event["reason"]
    u1, u2 = tracedthreading.Lock(), tracedthreading.Lock()
    module = u1.site.rsplit(":", 1)[0]
    tracedthreading.configure(suppressions=[f"{module}:*"])
    nest(u1, u2)
    nest(u2, u1)
    assert not tracedthreading.snapshot().inversions
    tracedthreading.configure(suppressions=["nomatch*"])
    c, d = locks("C", "D")
    nest(c, d)
    nest(d, c)
    assert len(tracedthreading.snapshot().inversions) == 1


def test_suppressions_file_from_the_environment(tmp_path: Any) -> None:
    """TRACEDTHREADING_SUPPRESSIONS names a file of patterns, read at import."""
    path = tmp_path / "suppressions.txt"
    path.write_text("# known and accepted\nlegacy.*   # every legacy lock\n\n", encoding="utf-8")
    code = textwrap.dedent("""
        import tracedthreading as t
        def cycle(x, y):
            with x:
                with y: pass
            with y:
                with x: pass
        cycle(t.Lock(name="legacy.a"), t.Lock(name="new.b"))
        print(len(t.snapshot().inversions))
        cycle(t.Lock(name="new.c"), t.Lock(name="new.d"))
        print(len(t.snapshot().inversions))
    """)
    env = {**os.environ, "TRACEDTHREADING_SUPPRESSIONS": str(path)}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["0", "1"]


def test_suppressions_file_that_cannot_be_read_is_a_clear_error(tmp_path: Any) -> None:
    """A missing suppressions file fails the import with a ValueError naming the variable and the path."""
    missing = tmp_path / "missing.txt"
    env = {**os.environ, "TRACEDTHREADING_SUPPRESSIONS": str(missing)}
    result = subprocess.run([sys.executable, "-c", "import tracedthreading"], env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("ValueError: TRACEDTHREADING_SUPPRESSIONS: cannot read")
    assert str(missing) in last


def test_load_suppressions_rejects_a_binary_file(tmp_path: Any) -> None:
    """A suppressions file that is not UTF-8 text raises ValueError naming the variable."""
    path = tmp_path / "bin"
    path.write_bytes(b"\xff\xfe\x00")
    saved = _lockorder._file_suppressions
    try:
        with pytest.raises(ValueError, match="TRACEDTHREADING_SUPPRESSIONS: .* is not a UTF-8 text file"):
            _lockorder.load_suppressions(str(path))
    finally:
        _lockorder._file_suppressions = saved


@pytest.mark.parametrize("how", ["with", "acquire", "timed", "rlock"])
def test_raise_mode_raises_and_leaves_the_lock_free_and_the_stack_consistent(how: str) -> None:
    """on_inversion="raise": LockOrderError at the closing acquire, lock not held, held stack intact."""
    tracedthreading.configure(on_inversion="raise")
    a = tracedthreading.RLock(name="A") if how == "rlock" else tracedthreading.Lock(name="A")
    b = tracedthreading.Lock(name="B")
    nest(a, b)
    with b:
        with pytest.raises(tracedthreading.LockOrderError) as info:
            if how == "with":
                with a:
                    pass
            elif how == "timed":
                a.acquire(timeout=5)
            else:
                a.acquire()
        assert not a.locked()
        assert list(_threads.current()) == [b._key]
    assert list(_threads.current()) == []
    assert rotate(info.value.inversion.locks) == ("A", "B")
    assert "POSSIBLE DEADLOCK" in str(info.value)
    nest(b, a)  # the cycle is known now: later takes proceed
    assert a.acquire(blocking=False)
    a.release()


def test_raise_mode_on_a_contended_acquire_raises_before_blocking() -> None:
    """on_inversion="raise" on an acquire that would block raises before waiting, holding nothing new."""
    tracedthreading.configure(on_inversion="raise")
    a, b = locks("A", "B")
    nest(a, b)
    taken, done = tracedthreading.Event(), tracedthreading.Event()

    def hold_a() -> None:
        with a:
            taken.set()
            done.wait(30)

    thread = tracedthreading.Thread(target=hold_a)
    thread.start()
    taken.wait(30)
    try:
        with b:
            with pytest.raises(tracedthreading.LockOrderError):
                a.acquire()
            assert list(_threads.current()) == [b._key]
    finally:
        done.set()
        thread.join(30)
    assert not a.locked()


def test_reset_clears_inversions_and_the_graph() -> None:
    """reset() empties snapshot().inversions and the graph; the same cycle is then reported again."""
    a, b = locks("A", "B")
    nest(a, b)
    nest(b, a)
    assert len(tracedthreading.snapshot().inversions) == 1
    tracedthreading.reset()
    assert tracedthreading.snapshot().inversions == ()
    assert _lockorder.stats()["nodes"] == 0
    nest(a, b)
    nest(b, a)
    assert len(tracedthreading.snapshot().inversions) == 1


def test_inversion_round_trips_through_as_dict() -> None:
    """An Inversion survives as_dict/inversion_from_dict, context and guards included."""
    from tracedthreading.snapshot import inversion_from_dict

    g, a, b = locks("G", "A", "B")
    nest(g, a, b)
    nest(b, a)
    (inversion,) = tracedthreading.snapshot().inversions
    assert inversion_from_dict(inversion.as_dict()) == inversion


# -- randomized schedules against an independent model ------------------------------------------------


def _model(steps: list[tuple[str, Any]]) -> tuple[list[tuple[str, ...]], set[tuple[str, str]], bool]:
    """Expected reports of ``steps``: for each new edge (a, b) that closes a cycle, the shortest cycle
    b -> ... -> a -> b, ties broken by the names along it. Also the final edge set, and whether some
    closing edge had a gated cycle (then the schedule is not used).
    """
    edges: dict[tuple[str, str], frozenset[str]] = {}
    reports: list[tuple[str, ...]] = []
    gated = False
    for kind, arg in steps:
        if kind == "forget":
            edges = {pair: guards for pair, guards in edges.items() if arg not in pair}
            continue
        for i, dst in enumerate(arg):
            held = arg[:i]
            for src in held:
                guards = frozenset(held) - {src, dst}
                if (src, dst) in edges:
                    edges[(src, dst)] &= guards
                    continue
                edges[(src, dst)] = guards
                cycles = []
                for path in _simple_paths(edges, dst, src):  # dst -> ... -> src, then src -> dst
                    cycle_edges = [*zip(path, path[1:]), (src, dst)]
                    common = frozenset.intersection(*(edges[e] for e in cycle_edges)) - set(path)
                    gated = gated or bool(common)
                    cycles.append(path)
                if cycles:
                    reports.append(tuple(min(cycles, key=lambda p: (len(p), p))))
    return reports, set(edges), gated


def _simple_paths(edges: Any, start: str, goal: str) -> Iterator[list[str]]:
    """Every simple path start ->* goal over ``edges`` (a plain DFS)."""
    succ: dict[str, list[str]] = {}
    for s, d in edges:
        succ.setdefault(s, []).append(d)
    stack = [[start]]
    while stack:
        path = stack.pop()
        for nxt in succ.get(path[-1], ()):
            if nxt == goal:
                yield [*path, nxt]
            elif nxt not in path:
                stack.append([*path, nxt])


def _schedule(rng: random.Random, names: list[str]) -> list[list[tuple[str, Any]]]:
    """Per thread, a list of steps: nested acquisitions of 2-3 distinct locks, rarely a forget()."""
    threads = []
    for _ in range(rng.randint(1, 3)):
        steps: list[tuple[str, Any]] = []
        for _ in range(rng.randint(2, 8)):
            if rng.random() < 0.08:
                steps.append(("forget", rng.choice(names)))
            else:
                steps.append(("nest", rng.sample(names, rng.choice((2, 2, 3)))))
        threads.append(steps)
    return threads


def test_randomized_schedules_report_exactly_the_expected_cycles() -> None:
    """Seeded random schedules over 6 locks, threads run one after the other, match an independent model.

    "Exactly" means: one report per new edge that closes at least one cycle, naming the shortest cycle
    through that edge (ties broken by lock names along the cycle from the edge's destination); compared
    as sets of cycles up to rotation, with no duplicates. Other cycles closed by the same edge share its
    fix and are not reported. Schedules whose closing edges have a cycle taken under a common gate lock
    are skipped (the gate rule has its own tests), and so are counted to keep the check meaningful.
    """
    rng = random.Random(20240611)
    names = [f"L{i}" for i in range(6)]
    checked = cyclic = 0
    while checked < 150:
        threads = _schedule(rng, names)
        steps = [step for thread_steps in threads for step in thread_steps]
        expected, final_edges, gated = _model(steps)
        if gated:
            continue
        tracedthreading.reset()
        lock_of = {name: tracedthreading.Lock(name=name) for name in names}

        def run(thread_steps: list[tuple[str, Any]]) -> None:
            for kind, arg in thread_steps:
                if kind == "forget":
                    tracedthreading.forget(lock_of[arg])
                else:
                    nest(*(lock_of[n] for n in arg))

        for index, thread_steps in enumerate(threads):
            in_thread(lambda s=thread_steps: run(s), f"worker-{index}")
        reported = [i.locks for i in tracedthreading.snapshot().inversions]
        assert sorted(map(rotate, reported)) == sorted(map(rotate, expected)), (steps, reported, expected)
        assert graph_edges() == final_edges
        check_invariants()
        checked += 1
        cyclic += bool(expected)
    assert cyclic >= 40  # enough schedules actually had cycles


def test_randomized_graph_keeps_the_order_invariants_under_insertions_and_removals() -> None:
    """Random edges and node removals keep Pearce–Kelly's order and find exactly the closed cycles."""
    rng = random.Random(7)
    for _ in range(30):
        tracedthreading.reset()
        pool = locks(*(f"N{i}" for i in range(12)))
        steps: list[tuple[str, Any]] = []
        for _ in range(40):
            if rng.random() < 0.1:
                victim = rng.choice(pool)
                tracedthreading.forget(victim)
                steps.append(("forget", victim.name))
            else:
                pair = rng.sample(pool, 2)
                nest(*pair)
                steps.append(("nest", [p.name for p in pair]))
            check_invariants()
        expected, final_edges, _ = _model(steps)
        assert graph_edges() == final_edges
        reported = [i.locks for i in tracedthreading.snapshot().inversions]
        assert sorted(map(rotate, reported)) == sorted(map(rotate, expected))


# -- names of locks made on one line --------------------------------------------------------------------


def test_locks_made_on_one_line_have_distinct_names_in_the_report() -> None:
    """``a, b = Lock(), Lock()`` share the default name ``module:line``: in the graph and the report the
    second live one is ``module:line#2``, so the cycle reads ``m:4 -> m:4#2``, not ``m:4 -> m:4``."""
    a, b = tracedthreading.Lock(), tracedthreading.Lock()
    assert a.name == b.name
    with capture_events() as events:
        nest(a, b)
        nest(b, a)
    [event] = events_named(events, INVERSION)
    cycle = event["cycle"]
    assert sorted(cycle) == [a.name, f"{a.name}#2"]
    assert f"cycle: {cycle[0]} -> {cycle[1]} -> {cycle[0]}\n" in event["report"]
    assert graph_edges() == {(a.name, f"{a.name}#2"), (f"{a.name}#2", a.name)}


def test_instance_suffixes_are_given_per_live_lock_and_reset_when_none_is_left() -> None:
    """Suffixes number the live locks of one name in the order they enter the graph; once every lock of
    that name is gone the next one is plain again (the bookkeeping is bounded by the live locks)."""
    def make() -> Any:
        return tracedthreading.Lock(name="worker lock")

    outer = tracedthreading.Lock(name="outer")
    first, second, third = make(), make(), make()
    for lock in (first, second, third):
        nest(outer, lock)
    assert {dst for _, dst in graph_edges()} == {"worker lock", "worker lock#2", "worker lock#3"}
    del first, second, third, lock
    import gc

    gc.collect()
    fresh = make()
    nest(outer, fresh)
    assert {dst for _, dst in graph_edges()} == {"worker lock"}
    assert _lockorder._live_names == {"outer": [1, 1], "worker lock": [1, 1]}


# -- edges of locks that died ---------------------------------------------------------------------------


def _take_pair_and_drop(first: str, second: str, times: int = 1) -> None:
    """Make two locks, take ``first`` then ``second`` ``times`` times, and let both die."""
    a, b = tracedthreading.Lock(name=first), tracedthreading.Lock(name=second)
    for _ in range(times):
        nest(a, b)


def test_edges_of_dead_locks_are_kept_per_name() -> None:
    """A lock-order edge outlives its locks, by name, for the summary and the graph (``transfer_fixed.py``
    rendered "no lock-order edges recorded": its accounts were gone at exit)."""
    import gc

    _take_pair_and_drop("account A", "account B", times=3)
    _take_pair_and_drop("account A", "account B", times=2)  # the same names again: one edge, counts summed
    gc.collect()
    assert _lockorder.stats()["nodes"] == 0
    [edge] = _lockorder.edges()
    assert (edge.src, edge.dst, edge.count) == ("account A", "account B", 5)
    assert edge.thread == "MainThread" and edge.stack and edge.stack[-1].endswith("in nest")


def test_dead_edge_merges_with_a_live_edge_of_the_same_names() -> None:
    """A live edge and a dead one between the same names are one edge in ``edges()``."""
    import gc

    _take_pair_and_drop("x", "y", times=4)
    gc.collect()
    x, y = tracedthreading.Lock(name="x"), tracedthreading.Lock(name="y")
    nest(x, y)
    assert [(e.src, e.dst, e.count) for e in _lockorder.edges()] == [("x", "y", 5)]


def test_dead_edges_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """At most ``_RETIRED_MAX`` name pairs are kept; further pairs are counted, not stored."""
    import gc

    monkeypatch.setattr(_lockorder, "_RETIRED_MAX", 5)
    for i in range(12):
        _take_pair_and_drop(f"src {i}", f"dst {i}")
        gc.collect()
    _lockorder.stats()
    assert len(_lockorder._retired) == 5
    assert _lockorder.stats()["retired_edges_dropped"] == 7
    assert len(_lockorder.edges()) == 5


def test_forget_drops_the_history_for_good() -> None:
    """``forget(lock)`` is a request to drop the lock's history: its edges are not kept as dead edges."""
    a, b = tracedthreading.Lock(name="fa"), tracedthreading.Lock(name="fb")
    nest(a, b)
    tracedthreading.forget(a)
    del a, b
    import gc

    gc.collect()
    assert _lockorder.edges() == ()


# -- cost of the cycle searches -----------------------------------------------------------------------


def _calls_per_acquire(order: list[Any]) -> list[int]:
    """Take ``order`` nested; for each acquire, the Python and C calls made inside the order graph."""
    here = _lockorder.__file__
    count = [0]

    def profile(frame: Any, event: str, arg: Any) -> None:
        if event in ("call", "c_call") and frame.f_code.co_filename == here:
            count[0] += 1

    per_acquire = []
    taken = []
    try:
        for lock in order:
            count[0] = 0
            sys.setprofile(profile)
            lock.acquire()
            sys.setprofile(None)
            taken.append(lock)
            per_acquire.append(count[0])
    finally:
        sys.setprofile(None)
        for lock in reversed(taken):
            lock.release()
    return per_acquire


def test_adversarial_graph_bounds_the_search_work_of_each_acquire() -> None:
    """Locks nested in index order, then a shuffled subset nested: each acquire's cycle searches stay
    within a fixed amount of work (the gated-cycle searches once took seconds per acquire), and the
    inversions they close are still all reported once the deferred searches are read."""
    ls = locks(*(f"L{i:02d}" for i in range(60)))
    nest(*ls)
    subset = random.Random(7).sample(ls, 20)
    with capture_events():
        calls = _calls_per_acquire(subset)
        found = tracedthreading.snapshot().inversions
    assert max(calls) <= 40_000, calls  # 9.4 million in one acquire before the searches were bounded
    assert found
    for inversion in found:  # every report is a real cycle of recorded edges, its edges ungated
        pairs = [(e.src, e.dst) for e in inversion.edges]
        assert all(pair in graph_edges() for pair in pairs)
        assert [d for _, d in pairs] == [s for s, _ in pairs[1:] + pairs[:1]]
        common = set.intersection(*(set(e.guards) for e in inversion.edges)) - set(inversion.locks)
        assert not common, inversion


def test_a_guard_set_shrinking_searches_again_only_the_pending_edges_it_can_affect(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Two gated cycles under different gates: dropping one gate re-searches that cycle's edge only."""
    g1, a, b, g2, c, d = locks("G1", "A", "B", "G2", "C", "D")
    with capture_events():
        nest(g1, a, b)
        nest(g1, b, a)
        nest(g2, c, d)
        nest(g2, d, c)
    assert _lockorder.stats()["pending"] == 2
    searched: list[tuple[str, str]] = []
    search = _lockorder._ungated_cycle

    def counting(edge: Any, *args: Any) -> Any:
        searched.append((_lockorder._names[edge.src], _lockorder._names[edge.dst]))
        return search(edge, *args)

    monkeypatch.setattr(_lockorder, "_ungated_cycle", counting)
    with capture_events() as events:
        nest(d, c)  # D->C without G2
    assert searched == [("D", "C")]
    (inversion,) = tracedthreading.snapshot().inversions
    assert rotate(inversion.locks) == ("C", "D")
    assert len(events_named(events, INVERSION)) == 1


def _owe_a_search(monkeypatch: pytest.MonkeyPatch, held: list[Any]) -> list[dict[str, Any]]:
    """Close A->B->A (gated by G) and A->X->B->A (not) with no allowance left for the search; the
    locks are kept alive in ``held`` (a dead lock's edges, and its owed searches, are dropped)."""
    held[:] = g, a, b, x = locks("G", "A", "B", "X")
    nest(g, a, b)
    nest(a, x)
    nest(x, b)
    monkeypatch.setattr(_lockorder, "_ACQUIRE_BUDGET", 0)
    with capture_events() as events:
        nest(g, b, a)
    assert _lockorder.stats()["pending"] == 1
    return events


def test_a_search_the_acquire_cannot_afford_is_made_when_the_inversions_are_read(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the acquire's allowance a gated cycle's search is owed, not dropped: reading the
    inversions makes it, and reports it then."""
    held: list[Any] = []
    events = _owe_a_search(monkeypatch, held)
    assert not events_named(events, INVERSION) and not events_named(events, SUPPRESSED)
    with capture_events() as events:
        (inversion,) = tracedthreading.snapshot().inversions
    assert rotate(inversion.locks) == ("A", "X", "B")
    assert len(events_named(events, INVERSION)) == 1
    assert _lockorder.stats()["pending"] == 0


def test_an_owed_search_made_by_a_later_acquire_refuses_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """An owed search is made by the next observation with allowance to spare; under
    on_inversion="raise" its report does not refuse that unrelated acquire."""
    tracedthreading.configure(on_inversion="raise")
    held: list[Any] = []
    _owe_a_search(monkeypatch, held)
    monkeypatch.setattr(_lockorder, "_ACQUIRE_BUDGET", 4_000)
    y, z = locks("Y", "Z")
    with capture_events() as events:
        nest(y, z)  # a new context: observed, and the owed search is made
    (event,) = events_named(events, INVERSION)
    assert rotate(tuple(event["cycle"])) == ("A", "X", "B")
    assert _lockorder.stats()["pending"] == 0
