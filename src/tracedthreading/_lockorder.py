"""The lock-order graph: edges "held A while acquiring B", incremental cycle detection, inversion reports.

Only the slow path comes here, by key: the primitives cache the held-stack context they last verified
and skip this module while it repeats, counting those takes (handed back with the next :func:`observe`,
and read through :data:`cached_takes` for exact counts). This module never touches a primitive: it
finds names in the registry (:func:`tracedthreading._stats.primitive`) and answers each observation
with a verdict (the inversion to refuse, in ``on_inversion="raise"`` mode).

New edges are inserted with the Pearce–Kelly dynamic topological order, so an edge that agrees with the order costs O(1) and one that does not costs only the affected region; an
edge that would close a cycle is kept apart (``_back``) and never enters the ordered part.

Reports. A new edge that closes cycles gives one report (one per closing edge, so one per distinct
cycle): the shortest cycle through it, ties broken by the locks' names, preferring a cycle that is not
gated. Other cycles through the same new edge share its fix and are not reported again.

Precision rules: trylocks add no edge into themselves; RLock re-entries never reach here; every edge
keeps its guard set (other locks held, intersected over all its takes) and a cycle whose edges share a
guard outside the cycle is a gated cycle, suppressed until a guard set shrinks.
"""

from __future__ import annotations

import _thread
import itertools
import os
import sys
from dataclasses import replace
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from tracedthreading import _config, _events, _stats, _threads
from tracedthreading.snapshot import Inversion, OrderEdge

__all__ = ["LockOrderError", "forget", "inversions", "load_suppressions", "observe", "reset", "retire", "stats"]

_CONFIG = _config.CONFIG


class LockOrderError(RuntimeError):
    """Raised at the acquire that closes a lock-order cycle when ``on_inversion="raise"``."""

    def __init__(self, inversion: Inversion) -> None:
        super().__init__(str(inversion))
        self.inversion = inversion


class _Edge:
    __slots__ = ("context", "count", "dst", "guards", "src", "stack", "thread", "thread_id", "timed")

    def __init__(self, src: int, dst: int, guards: frozenset[int], timed: bool, stack: tuple[str, ...]) -> None:
        self.src = src
        self.dst = dst
        self.count = 1
        self.guards = guards
        self.timed = timed
        self.stack = stack
        self.thread_id = _thread.get_ident()
        self.thread = _threads.thread_name(self.thread_id)
        self.context = context


# Raw (never traced) and re-entrant: the garbage collector can run a __del__ that takes traced locks
# while this thread is inside observe(); such a nested observe is skipped (see there), other readers
# (snapshot, stats) may nest safely.
_lock = _thread.RLock()
# Invariant: ``_succ`` (with ``_pred`` its mirror) is acyclic and _ord[src] < _ord[dst] for each of its
# edges; every other edge is in ``_back`` (mirrored by ``_back_out``/``_back_in``). Cycle searches walk both.
_succ: dict[int, dict[int, _Edge]] = {}
_pred: dict[int, set[int]] = {}
_ord: dict[int, int] = {}
_back: dict[tuple[int, int], _Edge] = {}
_back_out: dict[int, dict[int, _Edge]] = {}
_back_in: dict[int, set[int]] = {}
_names: dict[int, str] = {}  # never rebound: the C locks look their key up here as they die
# Live locks sharing a name (two made on one line, or given one name) are told apart in the graph and its
# reports by an instance suffix: name -> [live nodes with it, last number given]; "name#2" is the second.
_live_names: dict[str, list[int]] = {}
_suffixed: dict[int, str] = {}  # key -> its unsuffixed name, for the keys that got a suffix
_sites: dict[int, str] = {}
_class_keys: dict[str, int] = {}  # lock_class mode: creation site -> node
_node_of: dict[int, int] = {}  # lock_class mode: lock key -> node
_reported: set[frozenset[tuple[int, int]]] = set()
# Closing edges whose shortest cycle is gated. ``_pending``: searched, every cycle found gated; they are
# searched again (moved to ``_dirty``) when a guard set they depend on shrinks. ``_dirty``: a search is
# owed (the acquire that needed it had spent its allowance); True while the first search is still owed.
_pending: dict[_Edge, None] = {}
_dirty: dict[_Edge, bool] = {}
_heavy: set[_Edge] = set()  # owed searches larger than an acquire's whole allowance: made when read
_inversions: list[Inversion] = []
_dead: list[tuple[int, list[int] | None, int]] = []  # (key, cached context, takes counted against it)
# Edges of locks that died, by (src name, dst name), for the summary and the graph: a program's locks are
# often gone by exit (per-object locks). Bounded: past _RETIRED_MAX pairs new ones are only counted.
_retired: dict[tuple[str, str], OrderEdge] = {}
_RETIRED_MAX = 10_000
_retired_dropped = 0
_stack_cache: dict[tuple[Any, int], tuple[str, ...]] = {}
_STACK_CACHE_MAX = 4096
_SEARCH_BUDGET = 20_000  # edge visits one search past a gated shortest cycle may make (then: gated)
_ACQUIRE_BUDGET = 4_000  # edge visits one observation may spend on cycle searches; the rest is owed
_UNBOUNDED = 1 << 62
_work_left = _ACQUIRE_BUDGET  # what the current observation may still spend (under _lock)
_MAX_DEPTH = 200  # longest path the gated-cycle search follows (it recurses)
_ord_counter = itertools.count()
_file_suppressions: tuple[str, ...] = ()
context = ""  # set by the pytest plugin: the test that is running


def observe(key: int, held: list[int], timed: bool, ctx: list[int] | None = None, ctxn: int = 0) -> Inversion | None:
    """Record the edges "held -> ``key``" for an acquire of the lock ``key`` (before it blocks, or just
    after it succeeded); returns the inversion the caller must refuse (``on_inversion="raise"``), else None.

    ``held`` is the thread's held stack (keys above its last barrier count; ``key`` itself is skipped).
    ``ctx``/``ctxn``: the context the lock cached before and how many takes were counted against it since
    (their edges exist): they are added to those edges now. Reports are emitted here, once per cycle.
    """
    if not _CONFIG.order:
        return None
    if _lock._is_owned():
        # Re-entered from a __del__ the GC ran inside the tracer: the graph is mid-update. Dropping
        # this one observation is safe (the caller's context cache stays unset: the next take records it).
        return None
    global _work_left
    keys = _threads.visible(held)
    reports: list[tuple[str, Any]] = []
    with _lock:
        _work_left = _ACQUIRE_BUDGET
        if _dead:
            _drain_dead()
        node = _node_for_key(key)
        if node is None:
            return None  # not (or no longer) registered: nothing to name it by
        if ctxn and ctx:
            _flush_context(ctx, ctxn, node)
        if len(keys) == 1:
            nodes = [_node_for_key(keys[0])]
        else:
            nodes = list(dict.fromkeys([_node_for_key(k) for k in keys]))  # one edge per source node
        present = set(nodes)
        shrunk: list[tuple[_Edge, frozenset[int]]] = []
        for src in nodes:
            if src == node or src is None:
                continue  # the lock's own key (or class), or a vanished lock
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
                    shrunk.append((edge, edge.guards - guards))
                    edge.guards = edge.guards & guards
        if shrunk and _pending:
            fresh = _stale(shrunk)
        else:
            fresh = ()
        if _dirty:
            reports.extend(_run_dirty(fresh))
    if reports:
        return _publish(reports)
    return None


def flush(key: int, ctx: list[int] | None, ctxn: int) -> None:
    """Add ``ctxn`` takes of lock ``key`` under its cached context ``ctx`` to those edges (the lock is
    leaving that context for one that needs no observation: it holds nothing else now)."""
    if not ctx or not ctxn or _lock._is_owned():
        return
    with _lock:
        node = _node_for_key(key)
        if node is not None:
            _flush_context(ctx, ctxn, node)


def _publish(reports: list[tuple[str, Any]]) -> Inversion | None:
    refuse = None
    for kind, payload in reports:
        if kind in ("inversion", "late"):
            _events.emit(_events.LOCK_ORDER_INVERSION, "error", _inversion_fields(payload))
            if refuse is None and kind == "inversion" and _CONFIG.on_inversion == "raise":
                refuse = payload
        else:
            _events.emit(_events.LOCK_ORDER_SUPPRESSED, "debug", payload)
    return refuse  # type: ignore[no-any-return]


def _inversion_fields(inversion: Inversion) -> dict[str, Any]:
    closing = inversion.edges[-1]  # the edge just taken; its dst is the lock being acquired
    fields: dict[str, Any] = {
        "lock": closing.dst,
        "kind": "lock",
        **_events.thread_fields(),
        "cycle": list(inversion.locks),
        "edges": [
            {"src": e.src, "dst": e.dst, "count": e.count, "thread": e.thread, "thread_id": e.thread_id,
             "stack": list(e.stack), "timed": e.timed, "guards": list(e.guards), "context": e.context}
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


def _identity(key: int) -> tuple[str, str] | None:
    """(name, site) of the live primitive ``key``, from the registry; None once it is gone."""
    primitive = _stats.primitive(key)
    if primitive is None:
        return None
    return primitive.trace_name, primitive.site


def _node_for_key(key: int) -> int | None:
    """The graph node of lock ``key``: the key itself, or its creation site's node in lock_class mode."""
    if not _CONFIG.lock_class:
        if key not in _names:
            identity = _identity(key)
            if identity is None:
                return None
            name, _sites[key] = identity
            _names[key] = _instance_name(key, name)
        return key
    node = _node_of.get(key)
    if node is not None:
        return node
    identity = _identity(key)
    if identity is None:
        return None
    name, site = identity
    _names[key], _sites[key] = name, site
    node = _class_keys.get(site)
    if node is None:
        node = _class_keys[site] = -key  # negative: never collides with a lock key
        _names[node] = name
        _sites[node] = site
    _node_of[key] = node
    return node


def graph_name(key: int) -> str | None:
    """The name lock ``key`` has in the order graph (``name#2`` for a second live lock of that name), or
    None when it is no node of it (a lock-free read: reports of other trackers use it to agree)."""
    return _names.get(key)


def _instance_name(key: int, name: str) -> str:
    """``name`` for the first live lock of that name, ``name#N`` for the N-th while earlier ones live."""
    entry = _live_names.get(name)
    if entry is None:
        _live_names[name] = [1, 1]
        return name
    entry[0] += 1
    entry[1] += 1
    _suffixed[key] = name
    return f"{name}#{entry[1]}"


def _drop_name(key: int) -> None:
    """Forget the name of lock ``key`` (it died or was forgotten); a name with no live lock left is reset."""
    name = _names.pop(key, None)
    _sites.pop(key, None)
    if name is None or _CONFIG.lock_class:
        return
    base = _suffixed.pop(key, name)
    entry = _live_names.get(base)
    if entry is not None:
        entry[0] -= 1
        if entry[0] <= 0:
            del _live_names[base]


def _edge(src: int, dst: int) -> _Edge | None:
    succ = _succ.get(src)
    if succ is not None:
        edge = succ.get(dst)
        if edge is not None:
            return edge
    return _back.get((src, dst)) if _back else None


def _flush_context(ctx: list[int], count: int, node: int) -> None:
    """Add the ``count`` takes made under the cached context ``ctx`` to its edges into ``node``."""
    for src in dict.fromkeys(_node_of.get(key, key) if _CONFIG.lock_class else key for key in ctx):
        edge = _edge(src, node)
        if edge is not None:
            edge.count += count


def _witness_stack() -> tuple[str, ...]:
    """The acquiring thread's user frames (see :func:`_threads.user_frames`), cached per call path."""
    # The key is the whole path (code, line) of the frames kept: walking frames is cheap, it is
    # formatting them that costs. Keyed on the innermost frame alone, two paths through one acquire
    # line would share the first path's stack.
    site = tuple(_threads.user_frames(sys._getframe(1), _CONFIG.stack_depth))
    stack = _stack_cache.get(site)
    if stack is None:
        if len(_stack_cache) >= _STACK_CACHE_MAX:
            _stack_cache.clear()
        stack = _stack_cache[site] = tuple(_threads.format_path(list(site)))
    return stack


# -- Pearce–Kelly insertion -------------------------------------------------------------------------


def _insert(edge: _Edge) -> list[tuple[str, Any]]:
    """Add a new edge; returns the reports of the cycle it closes, if any."""
    src, dst = edge.src, edge.dst
    for node in (src, dst):
        if node not in _ord:
            _ord[node] = next(_ord_counter)
            _succ.setdefault(node, {})
            _pred.setdefault(node, set())
    if not _place(edge):
        _back[(src, dst)] = edge
        _back_out.setdefault(src, {})[dst] = edge
        _back_in.setdefault(dst, set()).add(src)
        return _close(edge)  # the ordered part already has a path dst ->* src
    if _back:
        return _close(edge)  # a path dst ->* src may run through back edges
    return []


def _place(edge: _Edge) -> bool:
    """Put ``edge`` in the ordered part, reordering the affected region; False if it closes a cycle there."""
    src, dst = edge.src, edge.dst
    lower, upper = _ord[dst], _ord[src]
    if lower < upper:
        forward = _reach_forward(dst, upper, src)
        if forward is None:
            return False
        _reorder(_reach_backward(src, lower), forward)
    _succ[src][dst] = edge
    _pred[dst].add(src)
    return True


def _reach_forward(start: int, upper: int, target: int) -> set[int] | None:
    """Nodes reachable from ``start`` in the ordered part up to order ``upper``; None (at once) if
    ``target`` is among them."""
    seen = {start}
    todo = [start]
    while todo:
        node = todo.pop()
        following = _succ.get(node, ())
        if target in following:
            return None
        for nxt in following:
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
    """Pearce–Kelly: the nodes that reach ``src`` take the lowest of the affected slots, in their old order."""
    nodes = sorted(backward, key=_ord.__getitem__) + sorted(forward, key=_ord.__getitem__)
    slots = sorted(_ord[node] for node in nodes)
    for node, slot in zip(nodes, slots):
        _ord[node] = slot


def _out(node: int) -> Iterator[tuple[int, _Edge]]:
    """Every edge leaving ``node``, ordered part and back edges."""
    yield from _succ.get(node, {}).items()
    back = _back_out.get(node)
    if back:
        yield from back.items()


def _settle_back() -> None:
    """After nodes were removed, move back edges that no longer close a cycle into the ordered part."""
    for pair, edge in list(_back.items()):
        if edge.src in _ord and edge.dst in _ord and _place(edge):
            del _back[pair]
            _discard_back(_back_out, edge.src, edge.dst)
            _discard_back(_back_in, edge.dst, edge.src)


def _discard_back(index: dict[int, Any], node: int, other: int) -> None:
    """Remove ``other`` from ``index[node]`` (a dict or set), dropping the entry once empty."""
    entries = index.get(node)
    if entries is not None:
        if isinstance(entries, dict):
            entries.pop(other, None)
        else:
            entries.discard(other)
        if not entries:
            del index[node]


# -- cycles -----------------------------------------------------------------------------------------


def _shortest_cycle(edge: _Edge) -> list[_Edge] | None:
    """The shortest cycle through ``edge`` (ties: smallest lock names first), closing edge last."""
    src, dst = edge.src, edge.dst
    # Breadth-first from dst until src: distances of the nodes that can start a shortest path.
    dist = {dst: 0}
    frontier = [dst]
    found = False
    while frontier and not found:
        following = []
        for node in frontier:
            for nxt, _e in _out(node):
                if nxt not in dist:
                    dist[nxt] = dist[node] + 1
                    following.append(nxt)
                    if nxt == src:
                        found = True  # the nodes nearer than src are all known: enough
                        break
            if found:
                break
        frontier = following
    global _work_left
    _work_left -= len(dist)
    if not found:
        return None
    # Distance to src, over the explored region only, walking edges backwards from src.
    to_src = {src: 0}
    frontier = [src]
    while frontier:
        following = []
        for node in frontier:
            for prv in itertools.chain(_pred.get(node, ()), _back_in.get(node, ())):
                if prv not in to_src and dist.get(prv) == dist[node] - 1:
                    to_src[prv] = to_src[node] + 1
                    following.append(prv)
        frontier = following
    path: list[_Edge] = []
    node = dst
    while node != src:
        steps = [(e, nxt) for nxt, e in _out(node) if to_src.get(nxt) == to_src[node] - 1]
        step, node = min(steps, key=lambda item: (_names.get(item[1], ""), item[1]))
        path.append(step)
    path.append(edge)
    return path


def _distances_to(target: int) -> dict[int, int]:
    """Edges needed from each node that can reach ``target`` (breadth-first over the reversed graph)."""
    dist = {target: 0}
    frontier = [target]
    pred, back = _pred, _back_in
    while frontier:
        following = []
        for node in frontier:
            step = dist[node] + 1
            for source in (pred.get(node, ()), back.get(node, ())):
                for prv in source:
                    if prv not in dist:
                        dist[prv] = step
                        following.append(prv)
        frontier = following
    return dist


class _Search:
    """One look for an ungated cycle through ``edge``: rounds of a depth-first walk over simple paths
    from ``edge.dst``, each charged to a shared count of edge visits."""

    __slots__ = ("budget", "dist", "edge", "spent", "start")

    def __init__(self, edge: _Edge, dist: dict[int, int], budget: int, spent: int) -> None:
        self.edge = edge
        self.dist = dist
        self.budget = budget
        self.spent = spent
        dst = edge.dst
        self.start = edge.guards - {dst} if dst in edge.guards else edge.guards

    def round(self, limit: int, until: int, first: bool) -> tuple[list[_Edge] | None, bool, bool]:
        """Ungated cycles of at most ``limit`` edges (pruned by the distance left to ``edge.src``), within
        ``until`` visits in all: the smallest by names of the shortest found (or the first found, when
        ``first``); whether a path was left out for its length; whether the visits ran out."""
        edge = self.edge
        src, dst = edge.src, edge.dst
        dist = self.dist
        succ, back = _succ, _back_out
        empty: dict[int, _Edge] = {}

        def out(node: int) -> Iterator[tuple[int, _Edge]]:  # _out() without a generator frame per visit
            more = back.get(node)
            ordered = succ.get(node, empty).items()
            return itertools.chain(ordered, more.items()) if more else iter(ordered)

        best: list[_Edge] | None = None
        best_key: list[tuple[str, int]] | None = None
        cut = exhausted = False
        spent = self.spent
        path: list[_Edge] = []
        gates = [self.start]  # locks that still guard every edge of the path and are not on it
        on_path = {dst}
        stack = [out(dst)]
        while stack:
            descended = False
            depth = len(path)
            remaining = gates[-1]
            if best is not None and depth + 2 > len(best):
                stack[-1] = iter(())  # nothing as short down here
            for nxt, e in stack[-1]:
                spent += 1
                if spent > until:
                    exhausted = True
                    break
                if nxt == src:
                    left = remaining & e.guards if remaining else remaining
                    if not left or left == {src}:
                        cycle = [*path, e, edge]
                        if best is None or len(cycle) < len(best):
                            best, best_key = cycle, None
                        else:  # same length: the smaller by names, as a sorted search would find first
                            key = [(_names.get(c.dst, ""), c.dst) for c in cycle[:-1]]
                            if best_key is None:
                                best_key = [(_names.get(c.dst, ""), c.dst) for c in best[:-1]]
                            if key < best_key:
                                best, best_key = cycle, key
                        if first:
                            break
                    continue
                if nxt in on_path:
                    continue
                far = dist.get(nxt)
                if far is None:
                    continue
                if depth + far + 2 > limit or (best is not None and depth + far + 2 > len(best)):
                    cut = True
                    continue
                left = remaining & e.guards if remaining else remaining
                if nxt in left:
                    left = left - {nxt}
                path.append(e)
                on_path.add(nxt)
                gates.append(left)
                stack.append(out(nxt))
                descended = True
                break
            if exhausted or (first and best is not None):
                break
            if not descended:
                stack.pop()
                if path:
                    on_path.discard(path.pop().dst)
                    gates.pop()
        self.spent = spent
        return best, cut, exhausted


def _ungated_cycle(edge: _Edge, budget: int, deep: bool = True) -> tuple[list[_Edge] | None, bool]:
    """The shortest ungated cycle through ``edge`` (ties by names) found within ``budget`` edge visits,
    and whether the budget ran out first (the search was then cut short).

    Iterative deepening over simple paths from ``edge.dst``, each step pruned by the distance left to
    ``edge.src`` (a round walks only paths that can close within its length), without sorting: the
    gates still possible (locks guarding every edge so far and not on the path) are carried along, so
    a cycle is judged the moment it closes. When ``deep``, if half the budget goes by without a cycle,
    the rest goes to one walk without a length limit that takes the first ungated cycle it meets,
    however long (as a plain depth-first search would; its report is long too, so an acquire never
    makes that walk). Every visit is charged to :data:`_work_left` too.
    """
    global _work_left
    src, dst = edge.src, edge.dst
    dist = _distances_to(src)
    search = _Search(edge, dist, budget, len(dist) // 4)  # the breadth-first pass: cheap steps, a quarter each
    best: list[_Edge] | None = None
    exhausted = False
    if dst in dist:
        limit = dist[dst] + 1  # cycle length (edges, the closing one included) the round allows
        while limit <= _MAX_DEPTH + 2:
            best, cut, exhausted = search.round(limit, budget // 2 if deep else budget, False)
            if best is not None or exhausted or not cut:
                break
            limit += 1
        if best is None and exhausted and deep:
            best, _cut, exhausted = search.round(_MAX_DEPTH + 2, budget, True)
    _work_left -= search.spent
    return best, exhausted and best is None


def _gates(cycle: list[_Edge]) -> frozenset[int]:
    """Locks held at every take of every edge of ``cycle`` (other than its own locks)."""
    return frozenset.intersection(*(e.guards for e in cycle)) - {e.src for e in cycle}


def _close(edge: _Edge) -> list[tuple[str, Any]]:
    """``edge`` is new: report the cycle it closes (if any), or keep it pending when every one is gated."""
    cycle = _shortest_cycle(edge)
    if cycle is None:
        return []
    if _gates(cycle):
        return _search(edge, True)
    return _judge(cycle)


def _search(edge: _Edge, first: bool) -> list[tuple[str, Any]]:
    """Look past the gated shortest cycle of ``edge`` for an ungated one, within the allowances: report
    it, or file the edge as pending (every cycle gated), or leave it owed when the acquire's share ran out."""
    budget = min(_SEARCH_BUDGET, _work_left)
    if budget <= 0:
        _dirty[edge] = first
        return []
    ungated, exhausted = _ungated_cycle(edge, budget, budget >= _SEARCH_BUDGET)
    if ungated is not None:
        _dirty.pop(edge, None)
        _heavy.discard(edge)
        _pending.pop(edge, None)
        return _judge(ungated)
    if exhausted and budget < _SEARCH_BUDGET:
        _dirty[edge] = first  # cut short by this acquire's allowance, not by the search's own
        if budget >= _ACQUIRE_BUDGET:
            _heavy.add(edge)  # no acquire can afford it: inversions() will make it
        return []
    _dirty.pop(edge, None)
    _heavy.discard(edge)
    cycle = _shortest_cycle(edge) if first else None
    if first and cycle is None:
        return []  # the cycle went away while the search was owed (a lock died)
    _pending[edge] = None
    if cycle is None:
        return []
    names = [_names.get(e.src, str(e.src)) for e in cycle]
    gates = sorted(_names.get(g, str(g)) for g in _gates(cycle))
    return [("suppressed", {"lock": _names.get(edge.dst, str(edge.dst)), "kind": "lock",
                            **_events.thread_fields(), "cycle": names,
                            "reason": f"every edge taken under {', '.join(gates)}"})]


def _judge(cycle: list[_Edge]) -> list[tuple[str, Any]]:
    ident = frozenset((e.src, e.dst) for e in cycle)
    if ident in _reported:
        return []
    _reported.add(ident)
    suppressed = _suppressed_by(cycle)
    if suppressed:
        names = [_names.get(e.src, str(e.src)) for e in cycle]
        return [("suppressed", {"lock": names[0], "kind": "lock", **_events.thread_fields(),
                                "cycle": names, "reason": f"suppression {suppressed!r}"})]
    inversion = _make_inversion(cycle)
    _inversions.append(inversion)
    return [("inversion", inversion)]


def _stale(shrunk: list[tuple[_Edge, frozenset[int]]]) -> set[_Edge]:
    """Guard sets shrank: the pending edges that may now close an ungated cycle are owed a new search.

    Only a pending edge whose own guards hold a removed lock can be affected (every gate of a cycle
    through it guards it too), or the pending edge whose guards shrank."""
    fresh = set()
    for pending in list(_pending):
        for edge, removed in shrunk:
            if edge is pending or not removed.isdisjoint(pending.guards):
                del _pending[pending]
                _dirty[pending] = False
                fresh.add(pending)
                break
    return fresh


def _run_dirty(fresh: Iterable[_Edge]) -> list[tuple[str, Any]]:
    """Make the owed searches the allowance still covers; reports of searches owed by an earlier
    acquire are "late" (published, never refused at this unrelated acquire)."""
    reports: list[tuple[str, Any]] = []
    for edge, first in list(_dirty.items()):
        if _work_left <= 0:
            break
        if edge not in _dirty or (edge in _heavy and _work_left < _SEARCH_BUDGET):
            continue
        late = edge not in fresh
        for kind, payload in _search(edge, first):
            reports.append(("late" if late and kind == "inversion" else kind, payload))
    return reports


def _suppressed_by(cycle: list[_Edge]) -> str | None:
    patterns = (*_CONFIG.suppressions, *_file_suppressions)
    if not patterns:
        return None
    for edge in cycle:
        for label in (_names.get(edge.dst), _sites.get(edge.dst)):
            if label is None:
                continue
            for pattern in patterns:
                if label == pattern or (pattern.endswith("*") and label.startswith(pattern.rstrip("*"))):
                    return pattern
    return None


#: Returns ``(key, ctx, ctxn)`` of every live lock with takes counted against its cached context and not
#: yet added to the graph (set by the lock core, which owns those caches).
cached_takes: Callable[[], Iterable[tuple[int, list[int], int]]] = tuple
#: Told when cached contexts must be dropped: a key (contexts holding it) or None (all of them).
invalidate_contexts: Callable[[int | None], None] = lambda key: None


def _pending_takes(edge: _Edge, cached: list[tuple[int, list[int], int]]) -> int:
    """Takes of ``edge`` counted by context caches (of the destination lock, or its class) not yet flushed."""
    total = 0
    for key, ctx, ctxn in cached:
        node = _node_of.get(key, key) if _CONFIG.lock_class else key
        if node != edge.dst:
            continue
        if any((_node_of.get(k, k) if _CONFIG.lock_class else k) == edge.src for k in ctx):
            total += ctxn
    return total


def _order_edge(edge: _Edge, cached: list[tuple[int, list[int], int]] | None = None) -> OrderEdge:
    """The public value of an internal edge (names resolved, deferred takes counted)."""
    if cached is None:
        cached = [entry for entry in cached_takes() if entry[2]]
    return OrderEdge(
        src=_names.get(edge.src, str(edge.src)), dst=_names.get(edge.dst, str(edge.dst)),
        count=edge.count + _pending_takes(edge, cached), thread=edge.thread, thread_id=edge.thread_id, stack=edge.stack,
        timed=edge.timed, guards=tuple(sorted(_names.get(g, str(g)) for g in edge.guards)), context=edge.context,
    )


def _make_inversion(cycle: list[_Edge]) -> Inversion:
    cached = [entry for entry in cached_takes() if entry[2]]
    edges = [_order_edge(edge, cached) for edge in cycle]
    locks = tuple(e.src for e in edges)
    return Inversion(
        locks=locks, edges=tuple(edges), hint=_hint(edges), timed=any(e.timed for e in edges), context=context,
    )


def _hint(edges: list[OrderEdge]) -> str:
    """Name the dominant order and the rare edge that breaks it: the likely culprit."""
    rare = min(reversed(edges), key=lambda e: e.count)  # on a tie, the edge that closed the cycle
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


def retire(key: int, ctx: list[int] | None = None, ctxn: int = 0) -> None:
    """A lock died (called from ``__del__``): queue its node for removal, never blocking; ``ctx``/``ctxn``
    are its cached context and the takes counted against it, added to those edges first."""
    if key in _names:
        _dead.append((key, ctx, ctxn))


def _drain_dead() -> None:
    removed = False
    batch = []
    while _dead:
        batch.append(_dead.pop())
    for key, ctx, ctxn in batch:  # every count first: a lock dying with its partner must find their edge
        if ctx and ctxn:
            _flush_context(ctx, ctxn, _node_of.get(key, key) if _CONFIG.lock_class else key)
    for key, _ctx, _ctxn in batch:
        if _CONFIG.lock_class or key in _node_of:
            _drop_name(key)
            _node_of.pop(key, None)
            continue  # class nodes outlive their instances (bounded by the number of sites)
        if key in _ord:
            _retire_edges(key)
        _drop_name(key)
        removed = _remove_node(key) or removed
    if removed and _back:
        _settle_back()


def _retire_edges(node: int) -> None:
    """Keep the edges of the dead lock ``node`` by name (see ``_retired``), before the node goes."""
    global _retired_dropped
    touching = [*_succ.get(node, {}).values(), *(_back_out.get(node) or {}).values()]
    touching.extend(_succ[src][node] for src in _pred.get(node, ()))
    touching.extend(_back[(src, node)] for src in _back_in.get(node, ()))
    for edge in touching:
        cached = []
        if edge.src == node:  # takes of a live lock counted by its context cache, not yet in the edge
            primitive = _stats.primitive(edge.dst)
            ctx, ctxn = getattr(primitive, "_ctx", None), getattr(primitive, "_ctxn", 0)
            if ctx and ctxn:
                cached.append((edge.dst, ctx, ctxn))
        value = _order_edge(edge, cached)
        pair = (value.src, value.dst)
        known = _retired.get(pair)
        if known is None:
            if len(_retired) >= _RETIRED_MAX:
                _retired_dropped += 1
                continue
            _retired[pair] = value
        else:
            _retired[pair] = _merged(known, value)


def _merged(older: OrderEdge, newer: OrderEdge) -> OrderEdge:
    """One edge for two of the same names: counts summed, the older witness, timed only if both were."""
    guards = tuple(sorted(set(older.guards).intersection(newer.guards)))
    return replace(older, count=older.count + newer.count, timed=older.timed and newer.timed, guards=guards)


def _remove_node(node: int) -> bool:
    """Drop ``node``, its edges, and the reports and pending checks that mention it; True if it had edges."""
    if node not in _ord:
        return False
    for dst in _succ.pop(node, {}):
        _pred[dst].discard(node)
    for src in _pred.pop(node, set()):
        _succ[src].pop(node, None)
    for dst in _back_out.pop(node, {}):
        del _back[(node, dst)]
        _discard_back(_back_in, dst, node)
    for src in _back_in.pop(node, set()):
        del _back[(src, node)]
        _discard_back(_back_out, src, node)
    del _ord[node]
    if _reported:
        _reported.difference_update([ident for ident in _reported if any(node in pair for pair in ident)])
    for owed in (_pending, _dirty):
        for edge in [e for e in owed if node in (e.src, e.dst)]:
            del owed[edge]
            _heavy.discard(edge)
    return True


def forget(key: int) -> None:
    """Drop everything the order graph knows about lock ``key`` (its edges, reports, pending gated cycles)."""
    with _lock:
        node = _node_of.get(key, key) if _CONFIG.lock_class else key
        if _remove_node(node) and _back:
            _settle_back()
        if node != key:
            _class_keys.pop(_sites.get(node, ""), None)
            _names.pop(node, None)
            _sites.pop(node, None)
            for other in [k for k, n in _node_of.items() if n == node]:
                del _node_of[other]
        _drop_name(key)
    invalidate_contexts(key)  # locks whose cached context holds it must observe again


def inversions() -> tuple[Inversion, ...]:
    """Every inversion reported since the last reset, oldest first (searches still owed are made first)."""
    global _work_left
    reports: list[tuple[str, Any]] = []
    nested = _lock._is_owned()  # from a __del__ inside observe(): the graph is mid-update
    with _lock:
        if _dirty and not nested:
            if _dead:
                _drain_dead()
            _work_left = _UNBOUNDED
            reports = _run_dirty(())
        found = tuple(_inversions)
    if reports:
        _publish(reports)
    return found


def edges(limit: int | None = None) -> tuple[OrderEdge, ...]:
    """The edges of the lock-order graph, most taken first, at most ``limit``: live locks' edges, and
    those of dead locks kept by name (an edge between two names appears once, its counts summed)."""
    with _lock:
        if _dead:
            _drain_dead()
        internal = [edge for succ in _succ.values() for edge in succ.values()]
        internal.extend(_back.values())
        cached = [entry for entry in cached_takes() if entry[2]]
        by_names = dict(_retired)
        for edge in internal:
            value = _order_edge(edge, cached)
            pair = (value.src, value.dst)
            known = by_names.get(pair)
            by_names[pair] = value if known is None else _merged(known, value)
    found = list(by_names.values())
    found.sort(key=lambda e: (-e.count, e.src, e.dst))
    return tuple(found if limit is None else found[:limit])


def stats() -> dict[str, int]:
    """Sizes of the graph (for memory tests and the summary); dead locks are dropped first."""
    with _lock:
        if _dead:
            _drain_dead()
        return {
            "nodes": len(_ord),
            "edges": sum(len(s) for s in _succ.values()) + len(_back),
            "back_edges": len(_back),
            "names": len(_names),
            "pending": len(_pending) + len(_dirty),
            "reported": len(_reported),
            "stack_cache": len(_stack_cache),
            "retired_edges": len(_retired),
            "retired_edges_dropped": _retired_dropped,
        }


def reset() -> None:
    """Forget the whole graph and every report; cached contexts of live locks are invalidated."""
    global _retired_dropped
    with _lock:
        _succ.clear()
        _pred.clear()
        _ord.clear()
        _back.clear()
        _back_out.clear()
        _back_in.clear()
        _names.clear()
        _sites.clear()
        _live_names.clear()
        _suffixed.clear()
        _class_keys.clear()
        _node_of.clear()
        _reported.clear()
        _pending.clear()
        _dirty.clear()
        _heavy.clear()
        _inversions.clear()
        _dead.clear()
        _retired.clear()
        _retired_dropped = 0
        _stack_cache.clear()
    invalidate_contexts(None)


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
    _lock = _thread.RLock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
