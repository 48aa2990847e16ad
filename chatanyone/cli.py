"""``chatanyone``: a thin command line over ``motion``, ``exporters``, ``bridge`` and ``generator``.

One module per subcommand (:data:`COMMANDS`, :mod:`chatanyone.commands`), each with ``add_arguments(parser)``
and ``run(args)``; :func:`main` is the one error wrapper: errors caused by the user (bad files, bad options)
print one line ``chatanyone: error: ...`` and exit 2; nothing half-written is left behind.
"""
from __future__ import annotations

import argparse
import contextlib
import errno
import os
import re
import select
import sys
import threading

#: ``OSError`` numbers that mean the machine, not the program, refused (disk full, read-only, permission):
#: reported as one line like any other user error.
ENVIRONMENT_ERRNOS = frozenset(getattr(errno, n) for n in (
    "ENOSPC", "EDQUOT", "EROFS", "EACCES", "EPERM", "EFBIG", "EIO", "ENOTDIR", "EISDIR", "ENAMETOOLONG",
    "EMFILE", "ENFILE") if hasattr(errno, n))
#: Subcommands whose native libraries' stderr chatter (MediaPipe/absl/TFLite, libmpg123, PortAudio) is
#: dropped (:func:`quiet_native_stderr`). Not ``prepare``/``train``: they may start worker processes.
QUIET_NATIVE_COMMANDS = ("animate", "render", "stream", "serve", "export")
#: Subcommands that may start worker processes: their stderr, and their workers', is filtered line by line
#: (:func:`filter_native_stderr`) unless ``-v``/``--verbose`` is given.
FILTER_NATIVE_COMMANDS = ("prepare", "train", "train-generator", "evaluate")
VERBOSE_FLAGS = ("-v", "--verbose")
#: Lines that :func:`filter_native_stderr` drops: informational/warning logs of native libraries, as
#: MediaPipe 0.10 / LiteRT write them (``chatanyone prepare`` on a GRID clip printed 63 such lines):
#: absl/glog ``I``/``W`` lines (``W0000 00:00:1796177016.06 12018 face_landmarker_graph.cc:181] ...``),
#: their "logging before InitGoogle/InitializeLog" banner, TFLite/LiteRT ``INFO:``/``WARNING:``/``VERBOSE:``
#: lines (``INFO: [environment.cc:36] ...``, ``INFO: Created TensorFlow Lite XNNPACK delegate for CPU.``) and
#: libmpg123's resync notes. Error and fatal lines (``E0000 ...``, ``F0000 ...``, ``ERROR: ...``) are kept.
#: Used with ``.match(line, pos)`` (anchored at ``pos``; no ``^``, which would match only at 0).
NATIVE_LOG_LINE = re.compile(
    rb"(?:[IW]\d{4} \d\d:\d\d:\d+(?:\.\d+)? +\d+ [\w.+-]+:\d+\] "
    rb"|WARNING: Logging before InitGoogle\(\)"
    rb"|WARNING: All log messages before absl::InitializeLog\(\)"
    rb"|(?:INFO|WARNING|VERBOSE): (?:\[[\w.+-]+:\d+\] |Created TensorFlow Lite |Initialized TensorFlow Lite )"
    rb"|Note: (?:Illegal Audio-MPEG-Header|Trying to resync|Skipped \d+ bytes|Hit end of \(available\) data))")


class Parser(argparse.ArgumentParser):
    """``argparse`` with the project's error format: one line ``chatanyone: error: ...``, exit 2 (raised
    as :class:`motion.errors.ChatAnyoneError` and printed by :func:`main`), instead of usage + message."""

    def error(self, message: str):
        from motion.options import OptionError
        raise OptionError(f"{' '.join(message.split())} (see `{self.prog} --help`)")


#: The subcommands, in ``chatanyone --help`` order: name -> (module, one-line help). Each module offers
#: ``add_arguments(parser)`` and ``run(args) -> int`` (:mod:`chatanyone.commands`); it is imported only when its
#: command runs, so ``chatanyone --help`` imports no torch, scipy or model code.
COMMANDS: dict[str, tuple[str, str]] = {
    "animate": ("chatanyone.commands.animate", "audio file -> NAME.npz, NAME.glb, NAME.bvh"),
    "export": ("chatanyone.commands.export", "MotionClip .npz -> glb, vrma, bvh, csv"),
    "prepare": ("chatanyone.commands.prepare", "videos, Live Link CSV, BEAT2, FACEGOOD -> training clips"),
    "train": ("chatanyone.commands.train", "train the motion model from a TOML config"),
    "train-generator": ("generator.train_neural",
                        "train the neural render engine from a TOML config (configs/generator.toml)"),
    "evaluate": ("chatanyone.commands.evaluate",
                 "metrics on held-out real data (lip sync against real capture), next to baselines"),
    "render": ("generator.render", "portrait image + audio or clip .npz -> 512x768 talking-portrait .mp4"),
    "stream": ("chatanyone.commands.stream",
               "live: audio, mic or WebSocket audio -> VMC, Live Link Face, WebSocket"),
    "serve": ("chatanyone.commands.serve", "browser viewer: avatar driven by the WebSocket stream, with audio"),
}


def command_module(name: str):
    """The module of subcommand ``name`` (:data:`COMMANDS`), imported now."""
    import importlib
    return importlib.import_module(COMMANDS[name][0])


def build_parser(commands=None) -> argparse.ArgumentParser:
    """The ``chatanyone`` parser. Every subcommand is listed; only those in ``commands`` (default: all) get
    their options, which imports their modules (:func:`main` passes just the one being run)."""
    p = Parser(prog="chatanyone", description="Speech to avatar motion (ARKit face, SMPL-X body and fingers).")
    sub = p.add_subparsers(dest="command", required=True)
    for name, (_, help_text) in COMMANDS.items():
        if commands is not None and name not in commands:
            sub.add_parser(name, help=help_text)
            continue
        module = command_module(name)
        sp = sub.add_parser(name, help=help_text, description=getattr(module, "DESCRIPTION", None) or help_text)
        module.add_arguments(sp)
        sp.set_defaults(run=module.run)
    return p


def check_options(a: argparse.Namespace) -> None:
    """Check every numeric option of the parsed command against :mod:`motion.options`' bounds (before
    anything is loaded); ``None`` (an option's default) passes.

    Raises:
        motion.options.OptionError: the first option out of range, named as on the command line.
    """
    from motion import options as o
    ints = {"seed": o.SEED_RANGE, "steps": o.STEPS_RANGE}
    floats = {"fps": o.FPS_RANGE, "expression": o.INTENSITY_RANGE, "head": o.INTENSITY_RANGE,
              "gesture": o.INTENSITY_RANGE, "face_guidance": o.GUIDANCE_RANGE, "body_guidance": o.GUIDANCE_RANGE,
              "style_guidance": o.GUIDANCE_RANGE, "delay": o.DELAY_RANGE}
    for dest, bounds in ints.items():
        if getattr(a, dest, None) is not None:
            o.check_int("--" + dest.replace("_", "-"), getattr(a, dest), bounds)
    for dest, bounds in floats.items():
        if getattr(a, dest, None) is not None:
            o.check_float("--" + dest.replace("_", "-"), getattr(a, dest), bounds)


def _real_stderr_usable(enabled: bool, posix_only: bool = False) -> bool:
    """Whether fd 2 may be redirected: ``enabled``, ``CHATANYONE_NATIVE_STDERR`` unset, ``sys.stderr`` is the
    process's real stderr on fd 2 (not under pytest's capture or another redirect), and POSIX if asked."""
    real = sys.__stderr__
    try:
        return bool(enabled and (os.name == "posix" or not posix_only)
                    and not os.environ.get("CHATANYONE_NATIVE_STDERR")
                    and real is not None and sys.stderr is real and real.fileno() == 2)
    except (AttributeError, OSError, ValueError):
        return False


@contextlib.contextmanager
def quiet_native_stderr(enabled: bool = True):
    """Drop what native libraries write straight to file descriptor 2 (MediaPipe's absl/TFLite lines,
    libmpg123's "Note: Illegal Audio-MPEG-Header", ALSA/PortAudio chatter) while Python's own stderr
    (``sys.stderr``: our messages, tracebacks, warnings, tqdm bars) still reaches the terminal.

    How: ``sys.stderr`` is re-opened on a duplicate of fd 2, then fd 2 is pointed at ``/dev/null``; both
    are restored on exit (the duplicate stays open, one descriptor per call). Only when ``sys.stderr`` is
    the process's real stderr (not under pytest's capture or another redirect) and
    ``CHATANYONE_NATIVE_STDERR`` is unset (set it to see those lines). Child processes would inherit the
    silenced fd 2, so commands that may start workers (``prepare``, ``train``) run without it.
    """
    real = sys.__stderr__
    if not _real_stderr_usable(enabled):
        yield
        return
    real.flush()
    saved = os.dup(2)
    stream = open(saved, "w", buffering=1, encoding=real.encoding, errors="backslashreplace", closefd=False)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    sys.stderr = stream
    try:
        yield
    finally:
        try:
            stream.flush()
        finally:
            sys.stderr = real
            os.dup2(saved, 2)
            # ``stream`` and ``saved`` stay open: a daemon thread (a server's logger) or a tqdm bar may
            # still hold ``stream`` and write to it after we return; it reaches the terminal either way.


def _copy_filtered(read_fd: int, write_fd: int, closing: threading.Event) -> None:
    """Copy ``read_fd`` to ``write_fd`` line by line, without :data:`NATIVE_LOG_LINE` lines, until the pipe
    ends or ``closing`` is set and nothing more is waiting. A progress bar's partial line (one with a
    ``\\r`` or a control sequence) is passed on at once, up to a native line written onto it."""
    buf = b""

    def out(data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(write_fd, view):]
            except OSError:                    # the terminal went away: drop the rest
                return

    try:
        while True:
            ready, _, _ = select.select([read_fd], [], [], 0.05)
            if not ready:
                if closing.is_set():
                    break
                continue
            chunk = os.read(read_fd, 65536)
            if not chunk:
                break
            *lines, buf = (buf + chunk).split(b"\n")
            data = b"".join(_without_native(line + b"\n") for line in lines)
            if _REDRAW.search(buf):            # a progress bar's partial line: out now, up to a native line
                p = _native_start(buf)
                data, buf = data + buf[:p], buf[p:]
            if data:
                out(data)
        if buf:
            out(_without_native(buf))
    finally:
        os.close(read_fd)


_REDRAW = re.compile(rb"\r|\x1b\[[0-9;]*[A-Za-z]")      # carriage return, or a terminal control sequence


def _native_start(line: bytes) -> int:
    """Where a :data:`NATIVE_LOG_LINE` starts in ``line``: at its start, or anywhere in a progress bar's
    line (one with a ``\\r`` or a control sequence: a native line written while a bar is drawn follows the
    bar's text directly); ``len(line)`` when there is none."""
    if NATIVE_LOG_LINE.match(line):
        return 0
    m = NATIVE_LOG_LINE.search(line) if _REDRAW.search(line) else None
    return m.start() if m else len(line)


def _without_native(line: bytes) -> bytes:
    p = _native_start(line)
    return line if p == len(line) else line[:p]


@contextlib.contextmanager
def filter_native_stderr(enabled: bool = True):
    """Drop native libraries' log lines (:data:`NATIVE_LOG_LINE`: MediaPipe's absl and LiteRT lines) from
    file descriptor 2, keep everything else, for commands that start worker processes.

    How: fd 2 becomes the write end of a pipe that a thread copies to the real stderr line by line,
    skipping the native lines. Child processes (``prepare --workers``, ``train --nproc``) inherit the pipe,
    so their native lines are dropped too while their own messages, warnings and tracebacks still reach
    the terminal, in order with ours. On exit fd 2 is restored and whatever is waiting in the pipe is
    copied out. Only on POSIX (the copier waits on the pipe with ``select``, which Windows does not offer
    for pipes), when ``sys.stderr`` is the process's real stderr (not under pytest's capture or another
    redirect) and ``CHATANYONE_NATIVE_STDERR`` is unset; ``-v``/``--verbose`` turns it off per run.
    """
    real = sys.__stderr__
    if not _real_stderr_usable(enabled, posix_only=True):
        yield
        return
    real.flush()
    saved = os.dup(2)
    read_fd, write_fd = os.pipe()
    os.set_inheritable(saved, False)
    closing = threading.Event()
    copier = threading.Thread(target=_copy_filtered, args=(read_fd, saved, closing), daemon=True,
                              name="chatanyone-stderr-filter")
    copier.start()
    os.dup2(write_fd, 2)
    os.close(write_fd)
    try:
        yield
    finally:
        try:
            real.flush()
        finally:
            os.dup2(saved, 2)                  # our write end is gone; workers still alive keep theirs
            closing.set()
            copier.join(timeout=5.0)           # what is already in the pipe is copied out first


def _split_verbose(argv: list[str]) -> tuple[list[str], bool]:
    """``argv`` of a delegated command without ``-v``/``--verbose`` (before any ``--``), and whether one was there."""
    end = argv.index("--") if "--" in argv else len(argv)
    kept = [x for x in argv[:end] if x not in VERBOSE_FLAGS]
    return kept + argv[end:], len(kept) != end


def main(argv: list[str] | None = None) -> int:
    """Run ``chatanyone ARGS``; returns the exit code (0, 2 for user errors, 130 for Ctrl-C).

    A user error (:class:`motion.errors.ChatAnyoneError`, an option out of range, a full disk, a read-only
    or forbidden folder) prints one line ``chatanyone: error: ...`` on stderr and returns 2.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    from motion.errors import ChatAnyoneError
    verbose = False
    if argv[:1] and argv[0] in FILTER_NATIVE_COMMANDS:
        rest, verbose = _split_verbose(argv[1:])
        argv = argv[:1] + rest
    with quiet_native_stderr(bool(argv) and argv[0] in QUIET_NATIVE_COMMANDS), \
            filter_native_stderr(bool(argv) and argv[0] in FILTER_NATIVE_COMMANDS and not verbose):
        try:
            name = argv[0] if argv and argv[0] in COMMANDS else None
            a = build_parser([name] if name else []).parse_args(argv)
            check_options(a)
            return int(a.run(a) or 0)
        except ChatAnyoneError as e:
            print(f"chatanyone: error: {' '.join(str(e).split())}", file=sys.stderr)
            return 2
        except OSError as e:
            if e.errno not in ENVIRONMENT_ERRNOS:
                raise
            where = f": {e.filename}" if e.filename else ""
            print(f"chatanyone: error: {e.strerror or e}{where}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("chatanyone: interrupted", file=sys.stderr)
            return 130


#: Commands whose console-script process ends with ``os._exit`` once :func:`main` has returned (every file
#: written and closed, stdout/stderr flushed): the interpreter's normal teardown, which frees torch's, numba's
#: and scipy's module state, adds ~0.5 s to a ~3 s ``chatanyone animate`` (``benchmarks/startup.py``). Set
#: ``CHATANYONE_NORMAL_EXIT=1`` to keep the normal exit (atexit handlers, e.g. a profiler's).
FAST_EXIT_COMMANDS = ("animate", "export")


def console_main() -> None:
    """Entry point of the ``chatanyone`` console script: :func:`main` on ``sys.argv``, then the process exits
    with its code (at once, skipping the interpreter's teardown, for :data:`FAST_EXIT_COMMANDS`). An exception
    that escapes :func:`main` (a bug: a traceback) exits normally. ``python -m chatanyone.cli`` always exits
    normally."""
    argv = sys.argv[1:]
    code = main(argv)
    if argv[:1] and argv[0] in FAST_EXIT_COMMANDS and not os.environ.get("CHATANYONE_NORMAL_EXIT"):
        for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
            try:
                if stream is not None:
                    stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    raise SystemExit(main())
