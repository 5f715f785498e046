"""Per-lock statistics: the registry of live primitives, folding of dead ones, log-scaled histograms.

Counters live in each primitive (slots, or the C struct) and are only written while that primitive is
held (or under :data:`lock` for the rare paths that are not), so they are exact without a lock on the
hot path. This module never reads them: the registry maps a key to a weak reference, and a live
primitive answers the tracer protocol (``_tt_counters()``, ``_tt_reset()``, ``_tt_owner()``) for
itself. Durations in :class:`Counters` are integer nanoseconds, converted to float seconds in the
snapshot; they are not all kept that way before: a pure-Python Lock/RLock adds up its holds in float
seconds, and :class:`NameStats` keeps a name's hold maximum in float seconds (on both hot paths), each
converted to integer nanoseconds when counters are collected or folded. A primitive that dies hands its counters to :func:`retire` or :func:`retire_lock`, which
queue them; :func:`drain` folds the queue into per-name aggregates, so memory is bounded by the number
of names, not of instances ever created. And the names are bounded too: past ``max_dead_names`` rows,
a name none of whose primitives is alive any more folds into one :data:`OTHER_NAMES` row per kind
(which counts the names folded), its per-name record dropped. A name with a live primitive is never
folded: for Lock/RLock, one of its locks holds a reference to its :class:`NameStats` (a reference
count above the registry's own says so, at no cost to the locks); for the other primitives, a live
registry entry carries the name.
"""

from __future__ import annotations

import _thread
import itertools
import os
import sys
import weakref
from operator import add as _add
from typing import Any

from tracedthreading import _config
from tracedthreading._cext import speedups as _speedups

__all__ = [
    "HIST_BUCKETS",
    "OTHER_NAMES",
    "Counters",
    "NameStats",
    "drain",
    "live",
    "name_stats",
    "next_key",
    "primitive",
    "retire",
    "retire_lock",
]

#: Histogram bucket ``i`` counts durations ``d`` (in ns) with ``d.bit_length() == i``: [2**(i-1), 2**i).
HIST_BUCKETS = 64

# Guards the folded aggregates and rare counters. Raw (never traced) and re-entrant: the garbage
# collector may run a __del__ that takes traced locks while this thread is inside the tracer. Never
# rebound (a forked child re-initializes it in place): other modules keep a reference to it.
lock = _thread.RLock()
# The registry of live primitives, key -> weak reference: the pure-Python locks and the sync
# primitives. The C locks keep their own (a key -> pointer table in _speedups, no weak references:
# every Future's lock is one of them), read through _c_lookup and _c_live.
_live: dict[int, weakref.ref[Any]] = {}
_c_lookup = _speedups.lookup if _speedups is not None else None
_c_live = _speedups.live if _speedups is not None else None
_dead: list[Counters] = []
# Never rebound, only mutated: the C locks append to it as they die (see _speedups._setup), as
# _name_stats is read there and _lockorder._names.
_dead_locks: list[tuple[Any, ...]] = []
_folded: dict[tuple[str, str], Counters] = {}
_instances: dict[tuple[str, str], int] = {}
# What Lock/RLock share per name (explicit name, or creation site) and kind: see NameStats.
_name_stats: dict[tuple[str | None, str | None, int, str], NameStats] = {}
_DRAIN_AT = 4096
_CONFIG = _config.CONFIG
#: The row (one per kind) that the names of dead primitives beyond ``max_dead_names`` fold into.
OTHER_NAMES = "(other names)"
# kind -> how many names folded into that kind's OTHER_NAMES row (a name used again after it was
# folded counts again). A kind has an entry exactly when its row is in _folded.
_folded_names: dict[str, int] = {}
# Rows of _folded beyond max_dead_names, made because their name still had a live primitive: row ->
# its NameStats key (None for the other primitives). Folded once the name's last primitive is gone.
_over: dict[tuple[str, str], tuple[Any, ...] | None] = {}
_since_sweep = 0  # dead primitives folded since _over was last looked through
#: A new key for a primitive (keys start at 1; one counter for the C and the pure-Python primitives).
next_key = _speedups.next_key if _speedups is not None else itertools.count(1).__next__
_Tally = _speedups.Tally if _speedups is not None else None


def names_changed() -> None:
    """A name's statistics were replaced, removed or reset, or its maximum grew: the C hot path forgets
    the name it caches (see ``last_name`` in _speedups.c). Also before a reference count is read."""
    if _speedups is not None:
        _speedups.names_changed()


class Counters:
    """Mutable statistics of one primitive (or of a name's dead instances, folded)."""

    __slots__ = (
        "acquisitions",
        "blockers",
        "broken",
        "contentions",
        "failures",
        "hold_hist",
        "hold_max",
        "hold_total",
        "kind",
        "name",
        "reentries",
        "timeouts",
        "wait_hist",
        "wait_max",
        "wait_total",
    )

    def __init__(self, name: str, kind: str) -> None:
        self.name = name
        self.kind = kind
        self.acquisitions = 0
        self.reentries = 0
        self.contentions = 0
        self.timeouts = 0
        self.failures = 0
        self.broken = 0
        self.wait_total = 0
        self.wait_max = 0
        self.hold_total = 0
        self.hold_max = 0
        self.wait_hist: list[int] | None = None
        self.hold_hist: list[int] | None = None
        self.blockers: dict[str, int] | None = None

    def add(self, other: Counters) -> None:
        """Fold ``other`` into this record."""
        self.acquisitions += other.acquisitions
        self.reentries += other.reentries
        self.contentions += other.contentions
        self.timeouts += other.timeouts
        self.failures += other.failures
        self.broken += other.broken
        self.wait_total += other.wait_total
        self.hold_total += other.hold_total
        self.wait_max = max(self.wait_max, other.wait_max)
        self.hold_max = max(self.hold_max, other.hold_max)
        self.wait_hist = merge_hist(self.wait_hist, other.wait_hist)
        self.hold_hist = merge_hist(self.hold_hist, other.hold_hist)
        if other.blockers:
            mine = self.blockers if self.blockers is not None else {}
            for thread, count in other.blockers.items():
                mine[thread] = mine.get(thread, 0) + count
            self.blockers = mine


#: Buckets a new histogram starts with (durations under 2**27 ns, about 134 ms); it grows on demand.
_INITIAL_BUCKETS = 28


def new_hist(size: int = _INITIAL_BUCKETS) -> list[int]:
    """An empty log2 histogram (short: most locks never see a long duration, and memory is per lock)."""
    return [0] * size


def record(hist: list[int] | None, duration_ns: int, weight: int = 1) -> list[int]:
    """Count one duration ``weight`` times into ``hist`` (created when None, grown in place when too
    short); returns it. A weight above 1 stands for the holds a sampling lock skipped."""
    index = min(duration_ns.bit_length(), HIST_BUCKETS - 1)
    if hist is None:
        hist = new_hist()
    if index >= len(hist):
        hist.extend([0] * (index + 1 - len(hist)))
    hist[index] += weight
    return hist


class NameStats:
    """Hold statistics every Lock/RLock of one name and kind shares: the maximum (exact, updated under
    :data:`lock`), the sampled histogram and how many samples it has (which sets the sampling rate).

    Per name, not per instance: a program that makes a lock per object keeps one of these per site.
    Instances of a name may add to the histogram from different threads at once, so an increment can
    occasionally be lost: it only feeds percentiles. Counts and totals are per instance, exact.
    """

    __slots__ = ("hist", "hold_max", "samples", "tally")

    def __init__(self) -> None:
        self.hist = new_hist()
        self.hold_max = 0.0  # seconds
        self.samples = 0
        # Where the name's dead C locks add up until a drain folds them (see _speedups.c).
        self.tally = _Tally() if _Tally is not None else None

    def clear(self) -> None:
        self.hist[:] = [0] * len(self.hist)  # in place: live locks keep adding to this list
        self.hold_max = 0.0
        self.samples = 0
        if self.tally is not None:
            self.tally.take()  # what the name's dead locks added since the last drain goes too
        names_changed()


def name_stats(name: str | None, module: str | None, line: int, kind: str) -> NameStats:
    """The :class:`NameStats` of the locks named ``name`` (or created at ``module:line``) of ``kind``."""
    ident = (name, None, 0, kind) if module is None else (None, module, line, kind)
    shared = _name_stats.get(ident)
    if shared is None:
        with lock:
            shared = _name_stats.setdefault(ident, NameStats())
    return shared


def count_into(hist: list[int], duration_ns: int, weight: int) -> None:
    """:func:`record` into a shared histogram too short for the duration (it grows in place)."""
    with lock:
        record(hist, duration_ns, weight)


def merge_hist(a: list[int] | None, b: list[int] | None) -> list[int] | None:
    """Element-wise sum (a new list, summed in C); None stands for an empty histogram."""
    if b is None:
        return None if a is None else list(a)
    if a is None:
        return list(b)
    if len(a) != len(b):
        size = max(len(a), len(b))
        a = a + [0] * (size - len(a))
        b = b + [0] * (size - len(b))
    return list(map(_add, a, b))


def percentile(hist: list[int] | None, fraction: float) -> float:
    """The ``fraction`` quantile in seconds, estimated as the geometric middle of its bucket."""
    if not hist:
        return 0.0
    total = sum(hist)
    if total == 0:
        return 0.0
    rank = fraction * total
    seen = 0
    for index, count in enumerate(hist):
        seen += count
        if count and seen >= rank:
            if index == 0:
                return 0.0
            low = 1 << (index - 1)
            return (low * 1.4142135623730951) / 1e9
    return 0.0


def retire_lock(record: tuple[Any, ...]) -> None:
    """Queue a dead, used Lock/RLock as a plain tuple (called as it dies: no allocation beyond it).

    ``record`` is (key, name, module, line, kind, held, completed holds, hold_total in ns, rare,
    reentries); the maximum and histogram are kept per name (:class:`NameStats`).
    """
    _dead_locks.append(record)
    _live.pop(record[0], None)
    if len(_dead_locks) >= _DRAIN_AT:
        try_drain()


def _fold_lock(record: tuple[Any, ...], live_sync: Any) -> None:
    """Fold one dead lock's record, or (its first field a Tally) what a name's dead C locks added up."""
    key, name, module, line, kind, held, completed, hold_total, rare, reentries = record
    deaths = 1
    if key.__class__ is _Tally:
        deaths, completed, hold_total, reentries = key.take()
        if not deaths:  # taken already (a reset)
            return
    ident = (name if name is not None else f"{module}:{line}", kind)
    folded = _folded.get(ident)
    if folded is None:
        ns_ident = (name, None, 0, kind) if module is None else (None, module, line, kind)
        folded = _new_row(ident, ns_ident, live_sync)
        ident = (folded.name, kind)  # the "(other names)" row's, when the name folded there
    if rare is not None:
        folded.add(rare)
    folded.acquisitions += completed + held
    folded.reentries += reentries
    folded.hold_total += int(hold_total)
    _instances[ident] = _instances.get(ident, 0) + deaths


def _refs_in(table: dict[Any, Any], key: Any) -> int:
    """References to ``table[key]`` (0 when absent), counted from a call made exactly like this one."""
    value = table.get(key)
    return 0 if value is None else sys.getrefcount(value)


_probe: dict[int, Any] = {0: object()}
_UNUSED = _refs_in(_probe, 0)  # the references of a value only its table holds, seen from _refs_in
del _probe


def _name_live(ident: tuple[str, str], ns_ident: tuple[Any, ...] | None, live_sync: Any) -> bool:
    """Whether a primitive of this name is alive: a Lock/RLock holds its name's NameStats; another
    primitive has a registry entry carrying its name (``live_sync()`` gathers them, once per drain)."""
    if ns_ident is not None:
        names_changed()  # the C hot path's cached name holds references of its own
        return _refs_in(_name_stats, ns_ident) > _UNUSED
    return ident in live_sync()


def _new_row(ident: tuple[str, str], ns_ident: tuple[Any, ...] | None, live_sync: Any) -> Counters:
    """The record a dead primitive of a name without one folds into: its own row within
    ``max_dead_names`` (or while the name is alive), else its kind's :data:`OTHER_NAMES` row."""
    kept = len(_folded) - len(_over) - len(_folded_names)
    if kept < _CONFIG.max_dead_names:
        folded = _folded[ident] = Counters(*ident)
        return folded
    if _name_live(ident, ns_ident, live_sync):
        folded = _folded[ident] = Counters(*ident)
        _over[ident] = ns_ident
        return folded
    return _into_other(ident[1], ns_ident)


def _into_other(kind: str, ns_ident: tuple[Any, ...] | None) -> Counters:
    """``kind``'s :data:`OTHER_NAMES` row, with the (dead) name's NameStats moved into it and dropped.
    A name counts when its NameStats goes (or, for the other primitives, each time: see _fold_row)."""
    other = _folded.get((OTHER_NAMES, kind))
    if other is None:
        other = _folded[(OTHER_NAMES, kind)] = Counters(OTHER_NAMES, kind)
        _folded_names[kind] = 0
    if ns_ident is None:
        _folded_names[kind] += 1
        return other
    shared = _name_stats.pop(ns_ident, None)
    if shared is not None:  # None: this name folded already (its other dead locks, in this drain)
        names_changed()
        _folded_names[kind] += 1
        other.hold_max = max(other.hold_max, int(shared.hold_max * 1e9))
        if any(shared.hist):
            other.hold_hist = merge_hist(other.hold_hist, shared.hist)
    return other


def _sweep(live_sync: Any) -> None:
    """Fold the rows kept past the bound whose names have no live primitive any more."""
    global _since_sweep
    _since_sweep = 0
    for ident, ns_ident in list(_over.items()):
        if _name_live(ident, ns_ident, live_sync):
            continue
        del _over[ident]
        row = _folded.pop(ident)
        instances = _instances.pop(ident, 0)
        other = _into_other(ident[1], ns_ident)
        other.add(row)
        key = (OTHER_NAMES, ident[1])
        _instances[key] = _instances.get(key, 0) + instances


def _live_sync_names() -> Any:
    """A function giving the (name, kind) of every live registered primitive other than Lock/RLock,
    gathered on its first call (a drain needs it only for a new name past the bound)."""
    found: list[set[tuple[str, str]]] = []

    def names() -> set[tuple[str, str]]:
        if not found:
            live_names = set()
            for entry in list(_live.values()):
                counters = getattr(entry, "counters", None)  # the sync primitives' registry entries
                if counters is not None:
                    live_names.add((counters.name, counters.kind))
            found.append(live_names)
        return found[0]

    return names


def retire(counters: Counters, key: int) -> None:
    """Queue a dead primitive's counters (called from ``__del__``: never blocks, never raises)."""
    _dead.append(counters)
    _live.pop(key, None)
    if len(_dead) >= _DRAIN_AT:
        try_drain()


def try_drain() -> None:
    """Fold the queues now unless the stats lock is busy (never blocks: safe from ``__del__``)."""
    if not lock._is_owned() and lock.acquire(False):  # not from inside a drain on this thread
        try:
            _drain_locked()
        finally:
            lock.release()


def _drain_locked(*, sweep: bool = False) -> None:
    global _since_sweep
    live_sync = _live_sync_names()
    _since_sweep += len(_dead_locks) + len(_dead)
    # In the order they died (the first names keep their rows). Taken off the queue first: a primitive
    # dying meanwhile (a finalizer run by the collector) queues for the next drain.
    batch = _dead_locks[:]
    del _dead_locks[: len(batch)]
    for record in batch:
        _fold_lock(record, live_sync)
    batch = _dead[:]
    del _dead[: len(batch)]
    for counters in batch:
        ident = (counters.name, counters.kind)
        folded = _folded.get(ident)
        if folded is None:
            folded = _new_row(ident, None, live_sync)
            ident = (folded.name, counters.kind)
        folded.add(counters)
        _instances[ident] = _instances.get(ident, 0) + 1
    # Rows kept past the bound are looked through again once as many primitives died as there are:
    # a constant cost per death however many names are alive.
    if _over and (sweep or _since_sweep >= len(_over)):
        _sweep(live_sync)


def drain() -> None:
    """Fold every queued dead primitive into the per-name aggregates."""
    with lock:
        _drain_locked()


def primitive(key: int) -> Any:
    """The live primitive registered under ``key``, or None once it is gone (or was never registered)."""
    ref = _live.get(key)
    if ref is not None:
        return ref()
    return None if _c_lookup is None else _c_lookup(key)


def live() -> list[Any]:
    """Every live traced primitive (strong references: the caller drops them soon)."""
    refs = list(_live.values())
    out = [] if _c_live is None else _c_live()
    for ref in refs:
        primitive = ref()
        if primitive is not None:
            out.append(primitive)
    return out


def collect() -> dict[tuple[str, str], tuple[Counters, int]]:
    """Aggregate folded and live counters by (name, kind): ``{(name, kind): (counters, instances)}``."""
    with lock:
        _drain_locked(sweep=True)
        merged: dict[tuple[str, str], tuple[Counters, int]] = {}
        for ident in set(_folded) | set(_instances):
            total = Counters(*ident)
            folded = _folded.get(ident)
            if folded is not None:
                total.add(folded)
            merged[ident] = (total, _instances.get(ident, 0))
    for alive in live():
        try:
            counters = alive._tt_counters()
        except Exception:  # noqa: BLE001 - a primitive being torn down
            continue
        if counters is None:  # registered, nothing recorded yet
            continue
        ident = (counters.name, counters.kind)
        entry = merged.get(ident)
        if entry is None:
            merged[ident] = (counters, 1)
        else:
            entry[0].add(counters)
            merged[ident] = (entry[0], entry[1] + 1)
    for (name, module, line, kind), shared in list(_name_stats.items()):
        entry = merged.get((name if module is None else f"{module}:{line}", kind))
        if entry is not None:
            counters = entry[0]
            counters.hold_max = max(counters.hold_max, int(shared.hold_max * 1e9))
            if any(shared.hist):
                counters.hold_hist = merge_hist(counters.hold_hist, shared.hist)
    return merged


def folded_names(kind: str) -> int:
    """How many names folded into ``kind``'s :data:`OTHER_NAMES` row (0 when none did)."""
    return _folded_names.get(kind, 0)


def reset() -> None:
    """Forget folded statistics and zero every live primitive's counters."""
    with lock:
        _drain_locked()  # drops dead primitives' registry entries
        _dead_locks.clear()
        _folded.clear()
        _instances.clear()
        _folded_names.clear()
        _over.clear()
        for shared in _name_stats.values():
            shared.clear()
    for alive in live():
        try:
            alive._tt_reset()
        except Exception:  # noqa: BLE001
            continue


def _after_fork_in_child() -> None:
    # Re-made in place, not rebound: other modules keep a reference to it (the hot paths' slow parts).
    lock._at_fork_reinit()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
