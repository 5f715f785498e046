"""The lock-order graph: edges "held A while acquiring B", incremental cycle detection, inversion reports.

Only the slow path comes here: the primitives cache the held-stack context they last verified and skip
this module while it repeats. New edges are inserted with the Pearce–Kelly dynamic topological order,
so an edge that agrees with the order costs O(1) and one that does not costs only the affected region;
an edge that would close a cycle is kept apart (``_back``) and reported once per distinct cycle.

Precision rules: trylocks add no edge into themselves; RLock re-entries never reach here; every edge
keeps its guard set (other locks held, intersected over all its takes) and a cycle whose edges share a
guard outside the cycle is a gated cycle, suppressed until a guard set shrinks.
"""

from __future__ import annotations

import _thread
import itertools
import os
import sys
from typing import Any

from tracedthreading import _config, _events, _stats, _threads
from tracedthreading.snapshot import Inversion, OrderEdge

__all__ = ["LockOrderError", "forget", "inversions", "observe", "reset", "retire"]

_CONFIG = _config.CONFIG


class LockOrderError(RuntimeError):
    """Raised at the acquire that closes a lock-order cycle when ``on_inversion="raise"``."""

    def __init__(self, inversion: Inversion) -> None:
        super().__init__(str(inversion))
        self.inversion = inversion


class _Edge:
    __slots__ = ("count", "dst", "guards", "src", "stack", "thread", "thread_id", "timed")

    def __init__(self, src: int, dst: int, guards: frozenset[int], timed: bool, stack: tuple[str, ...]) -> None:
        self.src = src
        self.dst = dst
        self.count = 1
        self.guards = guards
        self.timed = timed
        self.stack = stack
        self.thread_id = _thread.get_ident()
        self.thread = _threads.thread_name(self.thread_id)


class _Cycle:
    __slots__ = ("edges", "ident", "nodes")

    def __init__(self, nodes: list[int], edges: list[_Edge]) -> None:
        self.nodes = nodes
        self.edges = edges
        self.ident = frozenset((e.src, e.dst) for e in edges)


_lock = _thread.allocate_lock()  # raw: guards every structure below
_succ: dict[int, dict[int, _Edge]] = {}  # acyclic part, kept in topological order
_pred: dict[int, set[int]] = {}
_ord: dict[int, int] = {}
_back: dict[tuple[int, int], _Edge] = {}  # edges that closed a cycle when added
_names: dict[int, str] = {}
_sites: dict[int, str] = {}
_class_keys: dict[tuple[str, int] | str, int] = {}  # lock_class mode: creation site -> node
_node_of: dict[int, int] = {}  # lock_class mode: lock key -> node
_reported: set[frozenset[tuple[int, int]]] = set()
_pending: list[_Cycle] = []  # gated cycles waiting for a guard set to shrink
_inversions: list[Inversion] = []
_dead: list[int] = []
_stack_cache: dict[tuple[Any, int], tuple[str, ...]] = {}
_STACK_CACHE_MAX = 4096
_ord_counter = itertools.count()
_file_suppressions: tuple[str, ...] = ()
context = ""  # set by the pytest plugin: the test that is running


def observe(lock: Any, held: list[int], timed: bool, holding: bool = True) -> None:
    """Record the edges held -> ``lock`` before (``holding=False``) or just after acquiring ``lock``.

    ``holding`` means the raw lock is already ours but not yet registered as held: a LockOrderError
    then releases it first, so the caller's state stays consistent.
    """
    if not _CONFIG.order:
        if holding and not timed:
            lock._ctx = list(held)
        return
    reports: list[tuple[str, Any]] = []
    with _lock:
        if _dead:
            _drain_dead()
        node = _node(lock)
        if holding and not timed:
            _flush_context(lock, node)
        nodes = [_node_for_key(key) for key in held]
        present = set(nodes)
        for src in nodes:
            if src == node or src is None:
                continue  # a lock's own key (trylock then re-acquire) or a vanished lock
            guards = frozenset(present.difference((src, node, None)))
            edge = _edge(src, node)
            if edge is None:
                edge = _Edge(src, node, guards, timed, _witness_stack())
                reports.extend(_insert(edge))
            else:
                edge.count += 1
                if edge.timed and not timed:
                    edge.timed = False
                if not edge.guards <= guards:
                    edge.guards = edge.guards & guards
                    reports.extend(_recheck(edge))
        if holding and not timed:
            lock._ctx = list(held)
            lock._ctxn = 0
    if reports:
        _publish(reports, lock if holding else None)


def _publish(reports: list[tuple[str, Any]], holding_lock: Any) -> None:
    error = None
    for kind, payload in reports:
        if kind == "inversion":
            _events.emit(_events.LOCK_ORDER_INVERSION, "error", _inversion_fields(payload))
            if error is None and _CONFIG.on_inversion == "raise":
                error = LockOrderError(payload)
        else:
            _events.emit(_events.LOCK_ORDER_SUPPRESSED, "debug", payload)
    if error is not None:
        if holding_lock is not None:
            holding_lock._rel()
        raise error


def _inversion_fields(inversion: Inversion) -> dict[str, Any]:
    first = inversion.edges[-1]
    fields: dict[str, Any] = {
        "lock": first.dst,
        "kind": "lock",
        "thread": first.thread,
        "thread_id": first.thread_id,
        "cycle": list(inversion.locks),
        "edges": [
            {"src": e.src, "dst": e.dst, "count": e.count, "thread": e.thread, "thread_id": e.thread_id,
             "stack": list(e.stack), "timed": e.timed}
            for e in inversion.edges
        ],
        "hint": inversion.hint,
        "timed": inversion.timed,
        "report": str(inversion),
    }
    if inversion.context:
        fields["context"] = inversion.context
    return fields


# -- nodes ------------------------------------------------------------------------------------------


def _node(lock: Any) -> int:
    """The graph node of ``lock``: its own key, or its creation site's in lock_class mode."""
    key = lock._key
    if key not in _names:
        _names[key] = lock.name
        _sites[key] = lock.site
    if not _CONFIG.lock_class:
        return key  # type: ignore[no-any-return]
    node = _node_of.get(key)
    if node is None:
        site = lock.site
        node = _class_keys.get(site)
        if node is None:
            node = _class_keys[site] = -key  # negative: never collides with a lock key
            _names[node] = lock.name
            _sites[node] = site
        _node_of[key] = node
    return node


def _node_for_key(key: int) -> int | None:
    if not _CONFIG.lock_class:
        if key not in _names:
            ref = _stats._live.get(key)
            lock = ref() if ref is not None else None
            if lock is None:
                return None
            _names[key] = lock.name
            _sites[key] = lock.site
        return key
    node = _node_of.get(key)
    if node is not None:
        return node
    ref = _stats._live.get(key)
    lock = ref() if ref is not None else None
    return None if lock is None else _node(lock)


def _edge(src: int, dst: int) -> _Edge | None:
    succ = _succ.get(src)
    if succ is not None:
        edge = succ.get(dst)
        if edge is not None:
            return edge
    return _back.get((src, dst)) if _back else None


def _flush_context(lock: Any, node: int) -> None:
    """Add the takes counted against the lock's cached context to those edges."""
    count = lock._ctxn
    old = lock._ctx
    if not count or not old:
        return
    for key in old:
        src = _node_of.get(key, key) if _CONFIG.lock_class else key
        edge = _edge(src, node)
        if edge is not None:
            edge.count += count
    lock._ctxn = 0


def _witness_stack() -> tuple[str, ...]:
    """The acquiring thread's stack, cached per call site (a full walk costs microseconds)."""
    frame = sys._getframe(1)
    while frame is not None and _threads._is_internal(frame.f_code.co_filename):
        frame = frame.f_back
    if frame is None:
        return ()
    site = (frame.f_code, frame.f_lineno)
    stack = _stack_cache.get(site)
    if stack is None:
        if len(_stack_cache) >= _STACK_CACHE_MAX:
            _stack_cache.clear()
        stack = _stack_cache[site] = tuple(_threads.format_frames(frame, _CONFIG.stack_depth))
    return stack


# -- Pearce–Kelly insertion -------------------------------------------------------------------------


def _insert(edge: _Edge) -> list[tuple[str, Any]]:
    src, dst = edge.src, edge.dst
    for node in (src, dst):
        if node not in _ord:
            _ord[node] = next(_ord_counter)
            _succ.setdefault(node, {})
            _pred.setdefault(node, set())
    lower, upper = _ord[dst], _ord[src]
    if lower > upper:
        _add(edge)  # already consistent with the order
    else:
        forward = _reach_forward(dst, upper)
        if src in forward:
            _back[(src, dst)] = edge
        else:
            backward = _reach_backward(src, lower)
            _reorder(backward, forward)
            _add(edge)
    if not _back:
        return []
    path = _path(dst, src)
    if path is None:
        return []
    return _found_cycle([src, *path[:-1]])


def _add(edge: _Edge) -> None:
    _succ[edge.src][edge.dst] = edge
    _pred[edge.dst].add(edge.src)


def _reach_forward(start: int, upper: int) -> set[int]:
    seen = {start}
    todo = [start]
    while todo:
        node = todo.pop()
        for nxt in _succ.get(node, ()):
            if nxt not in seen and _ord[nxt] <= upper:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def _reach_backward(start: int, lower: int) -> set[int]:
    seen = {start}
    todo = [start]
    while todo:
        node = todo.pop()
        for prv in _pred.get(node, ()):
            if prv not in seen and _ord[prv] >= lower:
                seen.add(prv)
                todo.append(prv)
    return seen


def _reorder(backward: set[int], forward: set[int]) -> None:
    """Pearce–Kelly: give the nodes that reach ``src`` the lowest of the affected slots."""
    nodes = sorted(backward, key=_ord.__getitem__) + sorted(forward, key=_ord.__getitem__)
    slots = sorted(_ord[node] for node in nodes)
    for node, slot in zip(nodes, slots):
        _ord[node] = slot


def _path(start: int, goal: int) -> list[int] | None:
    """Shortest path start ->* goal over every edge (ordered and back edges), as a node list."""
    parents: dict[int, int | None] = {start: None}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            nexts = list(_succ.get(node, ()))
            nexts.extend(dst for (src, dst) in _back if src == node)
            for nxt in nexts:
                if nxt in parents:
                    continue
                parents[nxt] = node
                if nxt == goal:
                    path = [nxt]
                    while parents[path[-1]] is not None:
                        path.append(parents[path[-1]])  # type: ignore[arg-type]
                    path.reverse()
                    return path
                following.append(nxt)
        frontier = following
    return None


# -- cycles -----------------------------------------------------------------------------------------


def _found_cycle(nodes: list[int]) -> list[tuple[str, Any]]:
    edges = [_edge(nodes[i], nodes[(i + 1) % len(nodes)]) for i in range(len(nodes))]
    if any(edge is None for edge in edges):
        return []
    cycle = _Cycle(nodes, edges)  # type: ignore[arg-type]
    if cycle.ident in _reported or any(c.ident == cycle.ident for c in _pending):
        return []
    return _judge(cycle)


def _judge(cycle: _Cycle) -> list[tuple[str, Any]]:
    names = [_names.get(node, str(node)) for node in cycle.nodes]
    gates = frozenset.intersection(*(edge.guards for edge in cycle.edges)) - set(cycle.nodes)
    if gates:
        _pending.append(cycle)
        gate_names = sorted(_names.get(g, str(g)) for g in gates)
        return [("suppressed", {"lock": names[0], "kind": "lock", **_events.thread_fields(),
                                "cycle": names, "reason": f"every edge taken under {', '.join(gate_names)}"})]
    _reported.add(cycle.ident)
    suppressed = _suppressed_by(cycle)
    if suppressed:
        return [("suppressed", {"lock": names[0], "kind": "lock", **_events.thread_fields(),
                                "cycle": names, "reason": f"suppression {suppressed!r}"})]
    inversion = _make_inversion(cycle)
    _inversions.append(inversion)
    return [("inversion", inversion)]


def _recheck(edge: _Edge) -> list[tuple[str, Any]]:
    """A guard set shrank: gated cycles through ``edge`` may now be real inversions."""
    reports: list[tuple[str, Any]] = []
    for cycle in [c for c in _pending if edge in c.edges]:
        gates = frozenset.intersection(*(e.guards for e in cycle.edges)) - set(cycle.nodes)
        if not gates:
            _pending.remove(cycle)
            reports.extend(_judge(cycle))
    return reports


def _suppressed_by(cycle: _Cycle) -> str | None:
    patterns = (*_CONFIG.suppressions, *_file_suppressions)
    if not patterns:
        return None
    for node in cycle.nodes:
        for label in (_names.get(node), _sites.get(node)):
            if label is None:
                continue
            for pattern in patterns:
                if label == pattern or label.startswith(pattern.rstrip("*")) and pattern.endswith("*"):
                    return pattern
    return None


def _pending_takes(edge: _Edge) -> int:
    """Takes of ``edge`` counted by its destination lock's context cache but not yet flushed."""
    if _CONFIG.lock_class:
        return 0
    ref = _stats._live.get(edge.dst)
    lock = ref() if ref is not None else None
    if lock is None:
        return 0
    ctx = lock._ctx
    if ctx and edge.src in ctx:
        return int(lock._ctxn)
    return 0


def _make_inversion(cycle: _Cycle) -> Inversion:
    edges = []
    for edge in cycle.edges:
        count = edge.count + _pending_takes(edge)
        edges.append(OrderEdge(
            src=_names.get(edge.src, str(edge.src)), dst=_names.get(edge.dst, str(edge.dst)), count=count,
            thread=edge.thread, thread_id=edge.thread_id, stack=edge.stack, timed=edge.timed,
            guards=tuple(sorted(_names.get(g, str(g)) for g in edge.guards)),
        ))
    locks = tuple(_names.get(node, str(node)) for node in cycle.nodes)
    return Inversion(
        locks=locks, edges=tuple(edges), hint=_hint(edges), timed=any(e.timed for e in edges), context=context,
    )


def _hint(edges: list[OrderEdge]) -> str:
    """Name the dominant order and the rare edge that breaks it: the likely culprit."""
    rare = min(edges, key=lambda e: e.count)
    others = [e for e in edges if e is not rare]
    if len(edges) == 2:
        dominant = others[0]
        order = f"{dominant.src}->{dominant.dst} taken {dominant.count:,} time{'s' if dominant.count != 1 else ''}"
    else:
        order = ", ".join(f"{e.src}->{e.dst} x{e.count:,}" for e in others)
    return (
        f"{order}; {rare.src}->{rare.dst} {rare.count:,} time{'s' if rare.count != 1 else ''}, at {rare.site} "
        f"(thread {rare.thread!r}) - take {rare.dst} before {rare.src} there, or avoid holding {rare.src}"
    )


# -- lifetime ---------------------------------------------------------------------------------------


def retire(key: int) -> None:
    """A lock died (called from ``__del__``): queue its node for removal, never blocking."""
    if key in _names:
        _dead.append(key)


def _drain_dead() -> None:
    while _dead:
        key = _dead.pop()
        _names.pop(key, None)
        _sites.pop(key, None)
        if _CONFIG.lock_class or key in _node_of:
            _node_of.pop(key, None)
            continue  # class nodes outlive their instances (bounded by the number of sites)
        _remove_node(key)


def _remove_node(node: int) -> None:
    for dst in _succ.pop(node, {}):
        preds = _pred.get(dst)
        if preds is not None:
            preds.discard(node)
    for src in _pred.pop(node, set()):
        succ = _succ.get(src)
        if succ is not None:
            succ.pop(node, None)
    _ord.pop(node, None)
    if _back:
        for pair in [pair for pair in _back if node in pair]:
            del _back[pair]
    if _pending:
        _pending[:] = [c for c in _pending if node not in c.nodes]


def forget(lock: Any) -> None:
    """Drop everything the order graph knows about ``lock`` (its edges, pending gated cycles)."""
    with _lock:
        key = lock._key
        node = _node_of.get(key, key) if _CONFIG.lock_class else key
        _remove_node(node)
        _names.pop(key, None)
        _sites.pop(key, None)
    lock._ctx = None


def inversions() -> tuple[Inversion, ...]:
    """Every inversion reported since the last reset, oldest first."""
    with _lock:
        return tuple(_inversions)


def stats() -> dict[str, int]:
    """Sizes of the graph (for memory tests and the summary)."""
    with _lock:
        return {
            "nodes": len(_ord),
            "edges": sum(len(s) for s in _succ.values()) + len(_back),
            "names": len(_names),
            "pending": len(_pending),
            "stack_cache": len(_stack_cache),
        }


def reset() -> None:
    """Forget the whole graph and every report; cached contexts of live locks are invalidated."""
    with _lock:
        _succ.clear()
        _pred.clear()
        _ord.clear()
        _back.clear()
        _names.clear()
        _sites.clear()
        _class_keys.clear()
        _node_of.clear()
        _reported.clear()
        _pending.clear()
        _inversions.clear()
        _dead.clear()
        _stack_cache.clear()
    for primitive in _stats.live():
        if hasattr(primitive, "_ctx"):
            primitive._ctx = None
            primitive._ctxn = 0


def load_suppressions(path: str) -> tuple[str, ...]:
    """Read a suppressions file: one lock name or creation site per line, ``#`` comments, ``*`` suffix."""
    global _file_suppressions
    try:
        with open(path, encoding="utf-8") as stream:
            lines = stream.read().splitlines()
    except OSError as exc:
        msg = f"TRACEDTHREADING_SUPPRESSIONS: cannot read {path!r}: {exc.strerror}"
        raise ValueError(msg) from None
    except UnicodeDecodeError:
        msg = f"TRACEDTHREADING_SUPPRESSIONS: {path!r} is not a UTF-8 text file"
        raise ValueError(msg) from None
    entries = []
    for line in lines:
        entry = line.split("#", 1)[0].strip()
        if entry:
            entries.append(entry)
    _file_suppressions = tuple(entries)
    return _file_suppressions


def _after_fork_in_child() -> None:
    global _lock
    _lock = _thread.allocate_lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
