"""``python -m tracedthreading``: run a script or module with ``threading`` patched, like ``python -m cProfile``.

    python -m tracedthreading [options] script.py [args...]
    python -m tracedthreading [options] -m module [args...]
    python -m tracedthreading report [report options]

The target sees the ``sys.argv``, ``sys.path[0]`` and ``__main__`` it would see run directly, and the
process exits with its exit code. Exit codes of the runner itself: 2 for a usage error (bad option,
missing script or module), 3 with ``--fail-on-inversion`` when an inversion or deadlock was seen and
the target itself succeeded, 1 when the target raised an uncaught exception.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, NoReturn

__all__ = ["EXIT_INVERSION", "EXIT_USAGE", "main"]

EXIT_USAGE = 2
EXIT_INVERSION = 3

_PROG = "python -m tracedthreading"
_ORDER_EDGES_MAX = 2000  # order edges carried by the summary event for `report --graph`
_USAGE = f"{_PROG} [options] (script.py | -m module) [args ...]\n       {_PROG} report [options] LOG"
# Options that take a value: the splitter below must know them to find where the target starts.
_VALUED = ("--contended-threshold", "--held-long-threshold", "--wait-long-threshold", "--log-file", "--top",
           "--trace-file")


class _Parser(argparse.ArgumentParser):
    """argparse that reports errors on one line (plus usage) and exits 2, never with a traceback."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def _seconds() -> Any:
    def parse(text: str) -> float | None:
        from tracedthreading import _config

        try:
            return _config._seconds("the value", text, allow_none=True)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


def _file_path(text: str) -> str:
    if not text.strip():
        msg = f"expected a file path, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return text


def _positive_int(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        number = 0
    if number < 1:
        msg = f"the value must be a positive integer, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return number


def _parser() -> _Parser:
    parser = _Parser(
        prog=_PROG, usage=_USAGE, allow_abbrev=False,
        description="Run a Python script or module with threading's locks traced (contention, hold times, "
                    "lock-order inversions, deadlocks).",
        epilog="Exit status: the target's own; 2 for a usage error; 3 with --fail-on-inversion when an inversion "
               "or deadlock was seen and the target succeeded. 'report' reads a --log-file: see "
               f"'{_PROG} report --help'.",
    )
    parser.add_argument("-m", dest="module", metavar="module", help="run a library module as a script (like python -m)")
    parser.add_argument("--contended-threshold", type=_seconds(), metavar="SECONDS", default=argparse.SUPPRESS,
                        help="log lock.contended for waits at least this long ('off' disables; default 0.1)")
    parser.add_argument("--held-long-threshold", type=_seconds(), metavar="SECONDS", default=argparse.SUPPRESS,
                        help="log lock.held_long for holds at least this long (default 1.0)")
    parser.add_argument("--wait-long-threshold", type=_seconds(), metavar="SECONDS", default=argparse.SUPPRESS,
                        help="log lock.wait_long, with the holder's stack, for waits still going (default 30)")
    parser.add_argument("--log-file", metavar="PATH", type=_file_path,
                        help="write every event as one JSON object per line to PATH (structlog's JSONRenderer)")
    parser.add_argument("--summary", action="store_true",
                        help="print the top contended / longest held locks and any inversions to stderr at exit")
    parser.add_argument("--top", type=_positive_int, default=10, metavar="N", help="rows in --summary tables (10)")
    parser.add_argument("--fail-on-inversion", action="store_true",
                        help=f"exit {EXIT_INVERSION} if a lock-order inversion or deadlock was seen")
    parser.add_argument("--trace-file", metavar="PATH", type=_file_path, help="record a timeline trace of lock activity to PATH")
    parser.add_argument("--version", action=_Version, nargs=0,
                        help="print the version and which lock hot path runs (C extension or pure Python)")
    return parser


class _Version(argparse.Action):
    """``--version``: one line on stdout (argparse's own action wraps it to the terminal width), exit 0."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: Any, values: Any, option: Any = None) -> None:
        print(_version())
        parser.exit(0)


def _version() -> str:
    """``tracedthreading X (Python Y): lock hot path: ...``: the version, and whether the C path runs."""
    from tracedthreading import _cext

    return f"tracedthreading {_package_version()} (Python {sys.version.split()[0]}): {_cext.describe()}"


def _package_version() -> str:
    from tracedthreading import __version__

    return __version__


def _split(argv: list[str]) -> tuple[list[str], list[str]]:
    """Our options, and the target with its arguments (``-m module args...`` or ``script args...``)."""
    index = 0
    while index < len(argv):
        token = argv[index]
        if token == "--":
            return argv[:index], argv[index + 1 :]
        if token == "-m" or (token.startswith("-m") and not token.startswith("--")):
            return argv[:index], argv[index:]
        if not token.startswith("-") or token == "-":
            return argv[:index], argv[index:]
        if token in _VALUED:
            index += 1
        index += 1
    return argv, []


def main(argv: list[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); returns the process exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["report"]:
        return _report(argv[1:])
    from tracedthreading import _config

    if _config.env_error is not None:
        print(f"{_PROG}: error: {_config.env_error}", file=sys.stderr)
        return EXIT_USAGE
    parser = _parser()
    ours, target = _split(argv)
    if target[:1] == ["-m"] or (target and target[0].startswith("-m")):
        module = target[0][2:] or (target[1] if len(target) > 1 else "")
        if not module:
            parser.error("argument -m: expected a module name")
        rest = target[1:] if target[0][2:] else target[2:]
        options = parser.parse_args(ours)
        options.module = module
    else:
        options = parser.parse_args(ours)
        if not target:
            parser.error("no script or -m module to run")
        rest = target[1:]
    return _Run(parser, options, target[0] if options.module is None else None, rest).run()


def _report(argv: list[str]) -> int:
    from tracedthreading import _report

    code = _report.main(argv)
    return int(code or 0)


class _Run:
    """One run of a target under the patch: set up, run, wait for threads, report, decide the exit code."""

    def __init__(self, parser: _Parser, options: argparse.Namespace, script: str | None, args: list[str]) -> None:
        self.parser = parser
        self.options = options
        self.script = script
        self.args = args
        self.log_stream: Any = None
        self.trace: Any = None
        self.namespace: dict[str, Any] | None = None  # the target's globals, alive until the summary
        self.origin: str | None = None  # the -m module's file, when found before the run
        self.pid = os.getpid()  # a child the target forks runs on from here: the exit steps are ours

    def run(self) -> int:
        self._check_target()
        self._check_outputs()
        self._configure()
        import logging  # noqa: F401 - before the patch, on every version: its module locks stay raw, as
        # when wrapt imports it (3.10, 3.12, 3.13); handlers the target makes are traced either way

        from tracedthreading import patching

        patching.patch()
        try:
            code = self._execute()
            _wait_for_threads()
        finally:
            patching.unpatch()
        if os.getpid() != self.pid:
            # A child of os.fork() in the target, ending normally: the summary, its event in the shared
            # log and the trace file are the runner's (the parent's), not written twice.
            return code
        failed = self._finish()
        if failed and self.options.fail_on_inversion and code == 0:
            return EXIT_INVERSION
        return code

    # -- before --------------------------------------------------------------------------------------

    def _check_target(self) -> None:
        if self.script is not None:
            if not os.path.exists(self.script):
                self.parser.error(f"can't open file {self.script!r}: no such file or directory")
            return
        import importlib.util

        module = self.options.module
        try:
            spec = importlib.util.find_spec(module)
            if spec is not None and spec.submodule_search_locations is not None:
                spec = importlib.util.find_spec(module + ".__main__")
        except ValueError as exc:
            self.parser.error(f"cannot find module {module!r}: {exc}")
        except Exception as exc:  # noqa: BLE001 - a package of the target's failed to import
            missing = exc.name if isinstance(exc, ModuleNotFoundError) else None
            if missing and (module == missing or module.startswith(missing + ".")):
                self.parser.error(f"cannot find module {module!r}: {exc}")
            return  # the target's own failure: running it shows its traceback, as python -m does
        if spec is None:
            self.parser.error(f"no module named {module!r} (or it is a package without __main__)")
        self.origin = spec.origin

    def _check_outputs(self) -> None:
        """Output files that cannot be created, or that are the target's own file, are usage errors now
        (not after the whole run; and never a truncated script)."""
        from tracedthreading import _config

        source = self.script if self.script is not None else self.origin
        for option, path in (("--log-file", self.options.log_file), ("--trace-file", self.options.trace_file)):
            if not path:
                continue
            problem = _config.writable_file_problem(path)
            if problem:
                self.parser.error(f"{option}: cannot write {path!r}: {problem}")
            if source and os.path.exists(path) and os.path.samefile(path, source):
                what = "script" if self.script is not None else "module"
                self.parser.error(f"{option} {path!r} is the {what} to run: it would be overwritten")

    def _configure(self) -> None:
        import tracedthreading

        settings = {
            name: getattr(self.options, name)
            for name in ("contended_threshold", "held_long_threshold", "wait_long_threshold")
            if hasattr(self.options, name)  # given (None for 'off'); a threshold not given is no attribute
        }
        if settings:
            tracedthreading.configure(**settings)
        if self.options.log_file:
            self._open_log(self.options.log_file)
        if self.options.trace_file:
            try:
                from tracedthreading import _trace
            except ImportError:
                self.parser.error("--trace-file needs tracedthreading._trace, which this installation lacks")
            self.trace = _trace
            _trace.start(self.options.trace_file)

    def _open_log(self, path: str) -> None:
        """Send tracedthreading's events to ``path`` as JSON lines (the runner is an application)."""
        import structlog

        from tracedthreading import _events

        try:
            self.log_stream = open(path, "w", encoding="utf-8")  # noqa: SIM115 - closed in _finish
        except OSError as exc:
            self.parser.error(f"cannot open --log-file {path!r}: {exc.strerror or exc}")
        # Made before the patch, so the logger's own file lock is a raw one and never shows up as traffic.
        writer = structlog.WriteLogger(self.log_stream)
        structlog.configure(
            processors=[
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                structlog.processors.JSONRenderer(),
            ],
            logger_factory=lambda *_args: writer,
            wrapper_class=structlog.BoundLogger,
            cache_logger_on_first_use=True,
        )
        _events.reset_logger_cache()

    # -- during --------------------------------------------------------------------------------------

    def _execute(self) -> int:
        """Run the target as ``python script.py``/``python -m module`` would; returns its exit code."""
        import runpy

        saved_argv, saved_path0 = sys.argv[:], sys.path[0] if sys.path else None
        try:
            if self.script is not None:
                sys.argv[:] = [self.script, *self.args]
                sys.path[0:1] = [os.path.dirname(os.path.realpath(self.script))]
                # Kept until the summary, as a real __main__ lives until exit: its locks keep their edges.
                self.namespace = runpy.run_path(self.script, run_name="__main__")
            else:
                sys.argv[:] = [self.options.module, *self.args]  # run_module puts the file path in argv[0]
                self.namespace = runpy.run_module(self.options.module, run_name="__main__", alter_sys=True)
        except SystemExit as exc:
            return _exit_code(exc.code)
        except KeyboardInterrupt:
            _print_exception(*sys.exc_info())
            return 130
        except BaseException:  # noqa: BLE001 - the target's uncaught exception: report it like Python does
            _print_exception(*sys.exc_info())
            return 1
        finally:
            sys.argv[:] = saved_argv
            if saved_path0 is not None:
                sys.path[0:1] = [saved_path0]
        return 0

    # -- after ---------------------------------------------------------------------------------------

    def _finish(self) -> bool:
        """Emit the summary event, print ``--summary``, stop the trace; True if inversions or deadlocks.

        With no option asking for it (no ``--summary``, ``--fail-on-inversion``, ``--log-file``) and nobody
        to receive the summary event (structlog unconfigured, no event listener), no snapshot is taken.
        """
        from tracedthreading import _events

        to_logger = self.log_stream is not None
        emitted = to_logger or _events.structlog_configured() or _events.has_sinks()
        failed = False
        if emitted or self.options.summary or self.options.fail_on_inversion:
            import tracedthreading

            snap = tracedthreading.snapshot()
            if emitted:
                _emit_summary(_summary_fields(snap), to_logger=to_logger)
            if self.options.summary:
                _print_summary(snap, self.options.top)
            failed = bool(snap.inversions or snap.deadlocks)
        if self.trace is not None:
            try:
                self.trace.stop()
            except (OSError, RuntimeError) as exc:
                print(f"tracedthreading: cannot write --trace-file: {exc}", file=sys.stderr)
        if self.log_stream is not None:
            self._flush_log()
        return failed

    def _flush_log(self) -> None:
        """Flush the log (it stays open for events after the summary); a write that failed (a full disk)
        is one line, never a traceback, and the log is closed: later events are dropped."""
        stream = self.log_stream
        try:
            stream.flush()
        except OSError as exc:
            print(f"tracedthreading: cannot write --log-file {self.options.log_file!r}: {exc.strerror or exc}",
                  file=sys.stderr)
            try:
                stream.close()  # the buffer's flush fails again, and the file is closed all the same
            except OSError:
                pass


def _summary_fields(snap: Any) -> dict[str, Any]:
    """The fields of the ``tracedthreading.summary`` event, from ``snap`` and the order graph."""
    from dataclasses import asdict

    from tracedthreading import _events, _lockorder

    return {
        "lock": None, "kind": "summary", **_events.thread_fields(),
        "locks": [stats.as_dict() for stats in snap.locks],
        "inversions": [inversion.as_dict() for inversion in snap.inversions],
        "deadlocks": [deadlock.as_dict() for deadlock in snap.deadlocks],
        # The whole order graph for `report --graph` (bounded: the busiest edges first).
        "order_edges": [asdict(edge) for edge in _lockorder.edges(limit=_ORDER_EDGES_MAX)],
    }


def _wait_for_threads() -> None:
    """Join non-daemon threads (running threading's atexit hooks first) as the interpreter does at exit.

    ``threading._shutdown`` is what ``Py_FinalizeEx`` calls; it is idempotent, so the real exit later
    returns at once. Without this the summary would be taken while the target's threads still run.
    """
    import threading

    shutdown = getattr(threading, "_shutdown", None)
    if shutdown is not None and threading.current_thread() is threading.main_thread():
        shutdown()


def _emit_summary(fields: dict[str, Any], *, to_logger: bool) -> None:
    """The ``tracedthreading.summary`` event: to the log when there is one; always to event listeners.

    Without ``--log-file`` (and no structlog setup of the target's own) the stderr fallback would print
    the whole table as one giant line, so listeners (``capture_events``, the trace) get it alone then.
    """
    from tracedthreading import _events

    if to_logger or _events.structlog_configured():
        _events.emit(_events.SUMMARY, "info", fields)
        return
    import time

    record = {"event": _events.SUMMARY, "level": "info", **fields, "timestamp": time.time()}
    with _events._sinks_lock:
        sinks = list(_events._sinks)
    for sink in sinks:
        sink(dict(record))


def _print_summary(snap: Any, top: int) -> None:
    from tracedthreading._report import format_lock_table

    out = sys.stderr
    lines = [
        "",
        f"== tracedthreading: top {top} contended locks ==",
        format_lock_table(snap.locks, top, order="wait"),
        "",
        f"== tracedthreading: top {top} longest held locks ==",
        format_lock_table(snap.locks, top, order="hold"),
    ]
    if snap.inversions or snap.deadlocks:
        lines.append("")
        lines.append(f"== tracedthreading: {len(snap.inversions)} lock-order inversion(s), "
                     f"{len(snap.deadlocks)} deadlock(s) ==")
        lines.extend(str(item) for item in (*snap.inversions, *snap.deadlocks))
    else:
        lines.append("no lock-order inversions, no deadlocks")
    from tracedthreading import _cext

    if _cext.speedups is None:  # the slower path, and why: worth one line
        lines.append(f"tracedthreading: {_cext.describe()}")
    out.write("\n".join(lines) + "\n")
    out.flush()


def _exit_code(code: Any) -> int:
    """The exit status Python gives ``sys.exit(code)``: None is 0, ints as they are, anything else is printed, 1."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def _print_exception(exc_type: Any, exc: Any, tb: Any) -> None:
    """Report the target's exception through ``sys.excepthook``, without the runner's own frames."""
    here = os.path.abspath(__file__)
    import runpy

    skip = {here, os.path.abspath(runpy.__file__), "<frozen runpy>"}
    while tb is not None and (tb.tb_frame.f_code.co_filename in skip
                              or os.path.abspath(tb.tb_frame.f_code.co_filename) in skip):
        tb = tb.tb_next
    if exc is not None:
        exc = exc.with_traceback(tb)  # the hook prints the exception's own __traceback__ on 3.11+
    try:
        sys.excepthook(exc_type, exc, tb)
    except Exception:  # noqa: BLE001 - a broken hook of the target's: fall back to the plain traceback
        import traceback

        traceback.print_exception(exc_type, exc, tb)
