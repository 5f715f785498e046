"""Every script in examples/ runs in a fresh interpreter and prints the figures it promises."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    """Run this interpreter with ``args`` from the repository root; it must exit 0 without a traceback."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH")]))
    env.pop("TRACEDTHREADING_SUPPRESSIONS", None)
    result = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"{args} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr, result.stderr
    return result


def run_example(name: str) -> str:
    """Run ``examples/<name>`` directly; returns its stdout."""
    return run(str(EXAMPLES / name)).stdout


def number(pattern: str, text: str) -> int:
    """The integer captured by ``pattern`` (thousands separators allowed) in ``text``."""
    match = re.search(pattern, text)
    assert match is not None, f"{pattern!r} not found in:\n{text}"
    return int(match.group(1).replace(",", ""))


def test_every_example_is_tested() -> None:
    """Each example script has a test below, so a new example cannot be forgotten."""
    scripts = {path.name for path in EXAMPLES.glob("*.py")}
    tested = {name.removeprefix("test_") + ".py" for name in globals() if name.startswith("test_")}
    assert scripts, "no examples found"
    assert scripts <= tested, f"untested examples: {sorted(scripts - tested)}"


def test_examples_readme_lists_every_example() -> None:
    """examples/README.md has a line for every script."""
    readme = (EXAMPLES / "README.md").read_text(encoding="utf-8")
    missing = [path.name for path in EXAMPLES.glob("*.py") if path.name not in readme]
    assert not missing, f"examples/README.md does not list {missing}"


def test_bank_account() -> None:
    """The racy total is wrong (or the run says no update was lost), the locked total is right."""
    out = run_example("bank_account.py")
    expected = number(r"expected balance ([\d,]+)", out)
    racy = re.search(r"race detected: expected ([\d,]+), got ([\d,]+)", out)
    if racy is not None:
        assert int(racy.group(1).replace(",", "")) == expected
        assert int(racy.group(2).replace(",", "")) != expected
    else:
        assert "no update was lost this time" in out
    assert f"balance {expected:,} (correct)" in out
    deposits = expected // 10
    assert number(r"acquisitions\s+([\d,]+)", out) == deposits
    assert 0 <= number(r"contentions\s+([\d,]+)", out) <= deposits
    for label in ("wait ", "hold ", "blockers"):
        assert f"  {label}" in out


def test_bank_account_under_the_runner() -> None:
    """The README's main command runs the example and adds the summary naming the example's lock."""
    result = run("-m", "tracedthreading", "--summary", "examples/bank_account.py")
    assert "balance 20,000 (correct)" in result.stdout
    assert re.search(r"(?m)^balance\s+lock\s+2,000\s", result.stderr), result.stderr


def test_rlock_nested() -> None:
    """The RLock run counts two re-entries per transfer; the Lock run reports one self-wait and times out."""
    out = run_example("rlock_nested.py")
    assert "400 transfers done" in out
    assert "conserved: True" in out
    assert number(r"acquisitions (\d+) \(one per transfer\)", out) == 400
    assert number(r"reentries (\d+)", out) == 800
    assert "transfer failed: could not acquire 'bank (Lock)' within 0.5 s" in out
    assert number(r"self-waits reported: (\d+)", out) == 1
    assert "event 'lock.self_wait' (warning): thread 'teller-lock' blocks on 'bank (Lock)'" in out
    assert re.search(r"rlock_nested\.py:\d+ in withdraw", out)
    assert number(r"'bank \(Lock\)': acquisitions \d+, contentions \d+, timeouts (\d+)", out) == 1


def test_semaphore_tellers() -> None:
    """At most two customers are served at once, all twelve are served, some had to queue."""
    out = run_example("semaphore_tellers.py")
    assert "served: 12, at most 2 at once (limit 2)" in out
    assert number(r"acquisitions\s+(\d+)", out) == 12
    assert 1 <= number(r"contentions\s+(\d+)", out) <= 10  # the two who got the free tellers never wait
    assert re.search(r"wait\s+total [\d.]+ ms, max [\d.]+ ms, p50 [\d.]+ ms, p99 [\d.]+ ms", out)


def test_cash_drawers() -> None:
    """Three drawers for six tellers: all shifts served, one teller gives up, a double return is caught."""
    out = run_example("cash_drawers.py")
    assert "drawers handed out: 12, at most 3 in use at once (limit 3)" in out
    assert "impatient teller gave up: True" in out
    assert "drawer returned twice: ValueError: Semaphore released too many times" in out
    assert re.search(r"kind\s+boundedsemaphore", out)
    assert number(r"acquisitions\s+(\d+)", out) == 12 + 3 + 1
    assert number(r"timeouts\s+(\d+)", out) == 1
    assert 1 <= number(r"contentions\s+(\d+)", out) <= 12 + 1  # the first three takes never wait
    assert re.search(r"wait\s+total [\d.]+ ms, max [\d.]+ ms", out)
    assert "name='cash drawers': value=3/3>" in out


def test_event_open_bank() -> None:
    """Six customers get in after the opening and the impatient one times out, once."""
    out = run_example("event_open_bank.py")
    assert "impatient customer left" in out
    assert "customers who entered: 6" in out
    assert number(r"successful waits\s+(\d+)", out) == 6
    assert number(r"timeouts\s+(\d+)", out) == 1
    assert 1 <= number(r"blocked waits\s+(\d+)", out) <= 6
    assert "event 'event.wait_timeout': thread 'impatient'" in out


def test_condition_queue() -> None:
    """Every customer is served; the condition's waits and its lock's figures are printed."""
    out = run_example("condition_queue.py")
    assert "customers served: 20 of 20" in out
    assert number(r"waits notified\s+(\d+)", out) >= 1
    timeouts = number(r"waits timed out\s+(\d+)", out)
    assert timeouts >= 1  # the lull in arrivals is longer than a teller's poll
    assert number(r"condition\.wait_timeout events: (\d+)", out) == timeouts
    # The door takes the lock once per customer and to close, each teller at least once per customer served.
    assert number(r"acquisitions\s+(\d+), contentions \d+, wait total [\d.]+ ms", out) >= 2 * 20 + 1
    assert "blockers" in out


def test_barrier_tellers() -> None:
    """Four tellers pass the barrier with nothing broken; the late shift breaks for its three tellers."""
    out = run_example("barrier_tellers.py")
    assert "passed 4, broken 0" in out
    assert "3 got BrokenBarrierError" in out
    assert "barrier 'late shift': passed 0, broken 3, barrier.broken events 3" in out


def test_timer_announcement() -> None:
    """Both due timers run their callback once, the cancelled one never does."""
    out = run_example("timer_announcement.py")
    assert "[announcement] the bank closes in 15 minutes" in out
    assert "[announcement] the bank is now closed" in out
    assert "we are open again" not in out
    assert re.search(r"timer 'closing soon': callbacks run 1, late by [\d.]+ ms", out)
    assert re.search(r"timer 'closed': callbacks run 1, late by [\d.]+ ms", out)
    assert re.search(r"timer 'reopening': callbacks run 0,", out)


def test_transfer_inversion() -> None:
    """Both transfers complete and exactly one inversion between the two accounts is reported."""
    out = run_example("transfer_inversion.py")
    assert "both transfers completed: A=80, B=120 (total 200)" in out
    assert number(r"(?m)^inversions: (\d+)$", out) == 1
    assert number(r"lock\.order_inversion events: (\d+)", out) == 1
    assert "POSSIBLE DEADLOCK: lock-order inversion" in out
    assert re.search(r"cycle: account (A -> account B -> account A|B -> account A -> account B)", out)
    assert re.search(r"transfer_inversion\.py:\d+ in transfer", out)


def test_transfer_fixed() -> None:
    """Concurrent transfers in both directions conserve money and report no inversion."""
    out = run_example("transfer_fixed.py")
    assert "400 concurrent transfers completed" in out
    assert "conserved: True" in out
    assert re.search(r"(?m)^inversions: 0$", out)
    assert "lock.order_inversion events: 0" in out
    assert "account A: acquisitions 400" in out


def test_dining_philosophers() -> None:
    """The left-first table has one five-lock cycle; the ordered table has none."""
    out = run_example("dining_philosophers.py")
    assert "eating in turn): everyone ate; inversions: 1" in out
    assert "cycle of 5 locks" in out
    assert re.search(r"table 2 .*: 250 meals, \d+ waits for a fork; inversions: 0", out)


def test_examples_import_tracedthreading_as_threading() -> None:
    """Every example uses the drop-in spelling the README teaches."""
    for path in EXAMPLES.glob("*.py"):
        assert "import tracedthreading as threading" in path.read_text(encoding="utf-8"), path.name
