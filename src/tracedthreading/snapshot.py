"""Immutable views of what tracedthreading recorded: :func:`snapshot` returns a :class:`Snapshot`.

Shaped like ``tracemalloc``: frozen dataclasses (immutable value objects) with a readable ``__str__``,
``as_dict`` and ``Snapshot.dump``/``Snapshot.load`` (JSON) so a run's figures can be kept and compared later.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from tracedthreading import _stats

__all__ = ["DeadlockReport", "DeadlockThread", "Inversion", "LockStats", "OrderEdge", "Snapshot", "snapshot"]


@dataclass(frozen=True)
class LockStats:
    """Statistics of every primitive sharing one name (an explicit ``name=`` or a creation site).

    Fields: ``name``; ``kind`` (lock, rlock, condition, semaphore, boundedsemaphore, event, barrier, timer);
    ``instances`` in use since the last reset (a primitive counts once it has recorded something: a Lock
    once acquired, a Condition once waited on; those never used cost nothing and are not listed);
    ``acquisitions`` (successful outermost acquires; for
    Condition/Event/Barrier successful waits; for Timer callbacks run); ``reentries`` (RLock re-entries);
    ``contentions`` (acquires or waits that had to block, timed-out ones included); ``timeouts``;
    ``failures`` (non-blocking acquires that found it taken); ``broken`` (BrokenBarrierError raised);
    ``wait_total``/``wait_max``/``wait_p50``/``wait_p99`` and ``hold_total``/``hold_max``/``hold_p50``/
    ``hold_p99`` in seconds (hold of a Timer: its callback; wait of a Timer: how late it started;
    Lock/RLock hold percentiles count every hold on the C hot path and a weighted sample of them on the
    pure-Python one; counts, totals and maxima are exact);
    ``blockers``: (thread name, times) pairs of the threads that held it while another waited, most first;
    ``folded_names``: on the ``"(other names)"`` row of a kind, how many names of dead primitives past
    ``max_dead_names`` were folded into it (0 on every other row).
    """

    name: str
    kind: str
    instances: int = 0
    acquisitions: int = 0
    reentries: int = 0
    contentions: int = 0
    timeouts: int = 0
    failures: int = 0
    broken: int = 0
    wait_total: float = 0.0
    wait_max: float = 0.0
    wait_p50: float = 0.0
    wait_p99: float = 0.0
    hold_total: float = 0.0
    hold_max: float = 0.0
    hold_p50: float = 0.0
    hold_p99: float = 0.0
    blockers: tuple[tuple[str, int], ...] = ()
    wait_hist: tuple[int, ...] = field(default=(), repr=False)
    hold_hist: tuple[int, ...] = field(default=(), repr=False)
    folded_names: int = 0

    @property
    def contention_ratio(self) -> float:
        """Fraction of attempts that had to block (0.0 when never used)."""
        attempts = self.acquisitions + self.timeouts
        return self.contentions / attempts if attempts else 0.0

    @classmethod
    def from_counters(cls, counters: _stats.Counters, instances: int, folded_names: int = 0) -> LockStats:
        """Convert raw counters (nanoseconds) into a value object (seconds)."""
        blockers = tuple(sorted((counters.blockers or {}).items(), key=lambda item: (-item[1], item[0])))
        return cls(
            name=counters.name,
            kind=counters.kind,
            instances=instances,
            acquisitions=counters.acquisitions,
            reentries=counters.reentries,
            contentions=counters.contentions,
            timeouts=counters.timeouts,
            failures=counters.failures,
            broken=counters.broken,
            wait_total=counters.wait_total / 1e9,
            wait_max=counters.wait_max / 1e9,
            wait_p50=min(_stats.percentile(counters.wait_hist, 0.50), counters.wait_max / 1e9),
            wait_p99=min(_stats.percentile(counters.wait_hist, 0.99), counters.wait_max / 1e9),
            hold_total=counters.hold_total / 1e9,
            hold_max=counters.hold_max / 1e9,
            hold_p50=min(_stats.percentile(counters.hold_hist, 0.50), counters.hold_max / 1e9),
            hold_p99=min(_stats.percentile(counters.hold_hist, 0.99), counters.hold_max / 1e9),
            blockers=blockers,
            wait_hist=_trim(counters.wait_hist),
            hold_hist=_trim(counters.hold_hist),
            folded_names=folded_names,
        )

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (histograms as lists, blockers as [name, count] pairs)."""
        data = asdict(self)
        data["blockers"] = [list(pair) for pair in self.blockers]
        data["wait_hist"] = list(self.wait_hist)
        data["hold_hist"] = list(self.hold_hist)
        return data

    @property
    def label(self) -> str:
        """The name as reports show it: the "(other names)" row says how many names it holds."""
        if self.folded_names and self.name == _stats.OTHER_NAMES:
            return f"({self.folded_names:,} other names)"
        return self.name

    def __str__(self) -> str:
        return (
            f"{self.label} ({self.kind}): {self.acquisitions} acquisitions, {self.contentions} contended, "
            f"wait total {self.wait_total:.6f}s max {self.wait_max:.6f}s, "
            f"hold total {self.hold_total:.6f}s max {self.hold_max:.6f}s"
        )


def _trim(hist: list[int] | None) -> tuple[int, ...]:
    if not hist:
        return ()
    end = len(hist)
    while end and not hist[end - 1]:
        end -= 1
    return tuple(hist[:end])


@dataclass(frozen=True)
class OrderEdge:
    """One edge of the lock-order graph: ``src`` was held while ``dst`` was acquired.

    ``thread``/``thread_id``/``stack`` describe the first time it was seen (the witness), ``count`` how
    often it was taken, ``timed`` whether every take was a timed acquire, ``guards`` the other locks held
    every time it was taken, ``context`` what was running when it was first seen (the pytest plugin sets
    it to the test's node id).
    """

    src: str
    dst: str
    count: int
    thread: str
    thread_id: int
    stack: tuple[str, ...]
    timed: bool = False
    guards: tuple[str, ...] = ()
    context: str = ""

    @property
    def site(self) -> str:
        """The innermost frame of the witness stack (where ``dst`` was acquired)."""
        return self.stack[-1] if self.stack else "?"


@dataclass(frozen=True)
class Inversion:
    """A cycle in the lock-order graph: ``locks`` in cycle order, ``edges[i]`` goes locks[i] -> locks[i+1]."""

    locks: tuple[str, ...]
    edges: tuple[OrderEdge, ...]
    hint: str
    timed: bool = False
    context: str = ""

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict."""
        return _plain(asdict(self))

    def __str__(self) -> str:
        return format_inversion(self)


@dataclass(frozen=True)
class DeadlockThread:
    """One thread of a detected deadlock: what it holds, what it waits for, where it is."""

    thread: str
    thread_id: int
    holds: tuple[str, ...]
    waits_for: str
    stack: tuple[str, ...]


@dataclass(frozen=True)
class DeadlockReport:
    """Threads blocked in a cycle of waits, each waiting for a lock the next one holds."""

    threads: tuple[DeadlockThread, ...]
    context: str = ""

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict."""
        return _plain(asdict(self))

    def __str__(self) -> str:
        lines = [f"DEADLOCK: {len(self.threads)} threads wait for each other"]
        for thread in self.threads:
            lines.append(
                f"  thread {thread.thread!r} (id {thread.thread_id}) holds "
                f"{', '.join(thread.holds) or 'nothing traced'} and waits for {thread.waits_for}"
            )
            lines.extend(f"      {frame}" for frame in thread.stack)
        return "\n".join(lines)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def format_inversion(inversion: Inversion) -> str:
    """A lockdep-style, human-readable report of one inversion."""
    chain = " -> ".join((*inversion.locks, inversion.locks[0]))
    lines = [
        "POSSIBLE DEADLOCK: lock-order inversion" + (" (a timed acquire is involved)" if inversion.timed else ""),
        f"  cycle: {chain}",
    ]
    for edge in inversion.edges:
        timed = ", timed" if edge.timed else ""
        lines.append(
            f"  {edge.src} -> {edge.dst}: taken {edge.count:,} time{'s' if edge.count != 1 else ''}{timed}; "
            f"first by thread {edge.thread!r} (id {edge.thread_id}) holding {edge.src}, at:"
        )
        lines.extend(f"      {frame}" for frame in edge.stack)
    lines.append(f"  fix: {inversion.hint}")
    return "\n".join(lines)


@dataclass(frozen=True)
class Snapshot:
    """Everything recorded at one moment: ``locks`` (one :class:`LockStats` per name), ``inversions``,
    ``deadlocks``.
    """

    locks: tuple[LockStats, ...]
    inversions: tuple[Inversion, ...] = ()
    deadlocks: tuple[DeadlockReport, ...] = ()

    def lock(self, name: str, kind: str | None = None) -> LockStats:
        """The statistics of ``name`` (and ``kind`` when several kinds share a name); ``KeyError`` if absent."""
        for stats in self.locks:
            if stats.name == name and (kind is None or stats.kind == kind):
                return stats
        msg = f"no statistics for a primitive named {name!r}"
        raise KeyError(msg)

    def top(self, n: int = 10, key: str = "wait_total") -> list[LockStats]:
        """The ``n`` entries with the largest ``key`` (any numeric LockStats field)."""
        if key not in {f.name for f in fields(LockStats)} and key != "contention_ratio":
            msg = f"unknown LockStats field {key!r}"
            raise ValueError(msg)
        return sorted(self.locks, key=lambda s: getattr(s, key), reverse=True)[:n]

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict."""
        return {
            "locks": [stats.as_dict() for stats in self.locks],
            "inversions": [inversion.as_dict() for inversion in self.inversions],
            "deadlocks": [deadlock.as_dict() for deadlock in self.deadlocks],
        }

    def dump(self, path: str | os.PathLike[str]) -> None:
        """Write the snapshot as JSON to ``path``."""
        import json  # here, not at import: ``import tracedthreading`` needs no JSON

        with open(path, "w", encoding="utf-8") as stream:
            json.dump(self.as_dict(), stream, indent=1)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Snapshot:
        """Read a snapshot written by :meth:`dump`; ``ValueError`` names the file when it is not one."""
        try:
            with open(path, encoding="utf-8") as stream:
                data = strict_json_loads(stream.read())
            return cls.from_dict(data)
        except RecursionError:
            msg = f"{os.fspath(path)}: not a tracedthreading snapshot (nested too deeply)"
            raise ValueError(msg) from None
        except (ValueError, KeyError, TypeError, AttributeError, IndexError, OverflowError) as exc:
            msg = f"{os.fspath(path)}: not a tracedthreading snapshot ({exc})"
            raise ValueError(msg) from None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Snapshot:
        """Rebuild a snapshot from :meth:`as_dict` output."""
        locks = tuple(lock_stats_from_dict(item) for item in data["locks"])
        inversions = tuple(inversion_from_dict(item) for item in data.get("inversions", ()))
        deadlocks = tuple(
            DeadlockReport(
                threads=tuple(
                    DeadlockThread(
                        thread=t["thread"], thread_id=t["thread_id"], holds=tuple(t["holds"]),
                        waits_for=t["waits_for"], stack=tuple(t.get("stack", ())),
                    )
                    for t in item["threads"]
                ),
                context=item.get("context", ""),
            )
            for item in data.get("deadlocks", ())
        )
        return cls(locks=locks, inversions=inversions, deadlocks=deadlocks)

    def compare_to(self, old: Snapshot) -> list[tuple[str, str, int, float]]:
        """Per (name, kind): ``(name, kind, acquisitions added, wait_total added)``, biggest wait first."""
        before = {(s.name, s.kind): s for s in old.locks}
        rows = []
        for stats in self.locks:
            prior = before.get((stats.name, stats.kind))
            acquisitions = stats.acquisitions - (prior.acquisitions if prior else 0)
            waited = stats.wait_total - (prior.wait_total if prior else 0.0)
            rows.append((stats.name, stats.kind, acquisitions, waited))
        rows.sort(key=lambda row: row[3], reverse=True)
        return rows


def lock_stats_from_dict(item: dict[str, Any]) -> LockStats:
    """Rebuild :class:`LockStats` from its ``as_dict``; ``TypeError``/``KeyError`` on a wrong shape."""
    known = {f.name for f in fields(LockStats)}
    values = {key: value for key, value in item.items() if key in known}
    values["blockers"] = tuple((str(name), int(count)) for name, count in values.get("blockers", ()))
    values["wait_hist"] = tuple(int(x) for x in values.get("wait_hist", ()))
    values["hold_hist"] = tuple(int(x) for x in values.get("hold_hist", ()))
    for key in ("name", "kind"):
        if not isinstance(values.get(key), str):
            msg = f"LockStats.{key} must be a string, got {values.get(key)!r}"
            raise TypeError(msg)
    for f in fields(LockStats):
        if f.name in values and f.type in ("int", "float"):
            value = values[f.name]
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                msg = f"LockStats.{f.name} must be a number, got {value!r}"
                raise TypeError(msg)
    return LockStats(**values)


def inversion_from_dict(item: dict[str, Any]) -> Inversion:
    """Rebuild :class:`Inversion` from its ``as_dict``; ``ValueError`` for a cycle of no lock or no edge."""
    if not item["locks"] or not item["edges"]:
        msg = "an inversion's cycle needs at least one lock and one edge"
        raise ValueError(msg)
    edges = tuple(
        OrderEdge(
            src=e["src"], dst=e["dst"], count=int(e["count"]), thread=e["thread"], thread_id=int(e["thread_id"]),
            stack=tuple(e["stack"]), timed=bool(e.get("timed", False)), guards=tuple(e.get("guards", ())),
            context=str(e.get("context", "")),
        )
        for e in item["edges"]
    )
    return Inversion(
        locks=tuple(item["locks"]), edges=edges, hint=item.get("hint", ""), timed=bool(item.get("timed", False)),
        context=item.get("context", ""),
    )


def strict_json_loads(text: str) -> Any:
    """``json.loads`` refusing what is no finite number (``NaN``, ``Infinity``, ``1e999``): a ``ValueError``
    naming it, so nothing read can carry a NaN into a report or out again as invalid JSON."""
    import json

    return json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)


class JSONNumberError(ValueError):
    """A JSON number Python cannot hold as a finite float (raised by :func:`strict_json_loads`)."""


def _reject_constant(name: str) -> float:
    msg = f"{name} is not a number"
    raise JSONNumberError(msg)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        msg = f"number out of range: {text[:40]}"
        raise JSONNumberError(msg)
    return value


# snapshot() reads _lockorder and _deadlock, which import this module: it is defined in
# tracedthreading._collect, above them, and the package binds it here when it is imported.
snapshot: Callable[[], Snapshot]


def merge(snapshots: Iterable[Snapshot]) -> Snapshot:
    """Concatenate several snapshots (e.g. from xdist workers); same-name stats are kept apart."""
    locks: list[LockStats] = []
    inversions: list[Inversion] = []
    deadlocks: list[DeadlockReport] = []
    for snap in snapshots:
        locks.extend(snap.locks)
        inversions.extend(snap.inversions)
        deadlocks.extend(snap.deadlocks)
    return Snapshot(tuple(locks), tuple(inversions), tuple(deadlocks))
