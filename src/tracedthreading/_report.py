"""Tables of per-lock statistics, shared by the runner's ``--summary``, the pytest plugin and ``report``."""

from __future__ import annotations

from collections.abc import Sequence

from tracedthreading.snapshot import LockStats

__all__ = ["format_lock_table"]


def format_lock_table(locks: Sequence[LockStats], top: int = 10, fmt: str = "text") -> str:
    """The ``top`` most-waited-on primitives as a table (``fmt``: "text" or "markdown")."""
    rows = sorted(locks, key=lambda s: (s.wait_total, s.contentions, s.hold_total), reverse=True)[:top]
    header = ("name", "kind", "acq", "contended", "cont%", "wait total", "wait max", "hold total", "hold max")
    body = [
        (s.name, s.kind, str(s.acquisitions), str(s.contentions), f"{100 * s.contention_ratio:.1f}",
         f"{s.wait_total:.6f}", f"{s.wait_max:.6f}", f"{s.hold_total:.6f}", f"{s.hold_max:.6f}")
        for s in rows
    ]
    if fmt == "markdown":
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in body]
        return "\n".join(lines)
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in body]
    return "\n".join(lines)
