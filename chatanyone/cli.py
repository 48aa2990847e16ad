"""``chatanyone``: a thin command line over ``motion`` and ``exporters``.

Errors caused by the user (bad files, bad options) print one line ``chatanyone: error: ...`` and exit 2;
nothing half-written is left behind.
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
from pathlib import Path

DEFAULT_FORMATS = "npz,glb,bvh"
#: ``animate`` shows a progress bar of its phases for audio longer than this (seconds).
PROGRESS_MIN_AUDIO_S = 20.0
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


def check_output_dir(out_dir: Path) -> None:
    """Fail now, before any work, if ``out_dir`` cannot be used or created as the output folder.

    Raises:
        ChatAnyoneError: ``out_dir`` or its nearest existing parent is not a folder, or is not writable.
    """
    from motion.errors import ChatAnyoneError
    if out_dir.exists():
        if not out_dir.is_dir():
            raise ChatAnyoneError(f"output path {out_dir} exists and is not a directory")
        if not os.access(out_dir, os.W_OK | os.X_OK):
            raise ChatAnyoneError(f"output folder {out_dir} is not writable")
        return
    parent = out_dir.absolute().parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise ChatAnyoneError(f"cannot create output folder {out_dir}: {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ChatAnyoneError(f"cannot create output folder {out_dir}: {parent} is not writable")


class _Phases:
    """A tqdm bar over named phases (``animate``'s "loading model", "generating motion", ...) on stderr."""

    def __init__(self, names: list[str], enabled: bool):
        self.names, self.k, self.bar = names, 0, None
        if enabled:
            from tqdm.auto import tqdm
            self.bar = tqdm(total=len(names), desc=f"animate: {names[0]}", unit="phase", file=sys.stderr,
                            bar_format="{desc} |{bar}| {n_fmt}/{total_fmt} phases [{elapsed}]")

    def next(self) -> None:
        self.k += 1
        if self.bar is not None:
            name = self.names[self.k] if self.k < len(self.names) else "done"
            self.bar.set_description_str(f"animate: {name}", refresh=False)
            self.bar.update(1)
            self.bar.refresh()   # a phase change is always drawn (update() skips draws within mininterval)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def cmd_animate(a: argparse.Namespace) -> int:
    from exporters import check_formats, export
    from motion.audio import probe_audio
    from motion.errors import ChatAnyoneError
    # every check that needs no model first: a bad input fails in well under a second
    audio = Path(a.audio)
    out_dir = Path(a.output_dir)
    check_output_dir(out_dir)
    formats = check_formats(a.formats.split(","))
    duration_s = probe_audio(audio)
    from motion.options import check_transcript_length
    check_transcript_length(a.transcript, duration_s)
    from motion.checkpoint import checkpoint_info, style_presets
    info = checkpoint_info(a.checkpoint)
    if a.style is not None and a.style not in style_presets(info)[0]:
        raise ChatAnyoneError(f"unknown style {a.style!r}; choose one of {style_presets(info)[0]}")
    from motion.inference import Intensity, MotionGenerator, load_style_reference
    intensity = Intensity(a.expression, a.head, a.gesture)
    guidance = {k: v for k, v in (("face_guidance", a.face_guidance), ("body_guidance", a.body_guidance),
                                  ("style_guidance", a.style_guidance)) if v is not None}
    reference = load_style_reference(a.style_reference) if a.style_reference else None
    phases = _Phases(["loading model", "generating motion", "writing files"],
                     enabled=not a.quiet and duration_s > PROGRESS_MIN_AUDIO_S)
    try:
        gen = MotionGenerator(a.checkpoint)
        phases.next()
        clip = gen.animate_file(audio, seed=a.seed, fps=a.fps, intensity=intensity, style=a.style,
                                style_reference=reference, steps=a.steps, transcript=a.transcript,
                                progress=not a.quiet, **guidance)
        phases.next()
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ChatAnyoneError(f"cannot create output folder {out_dir}: {e.strerror or e}") from None
        written = export(clip, out_dir, audio.stem, formats, bone_names=a.bone_names)
        phases.next()
    finally:
        phases.close()
    if not a.quiet:
        print(f"{clip.num_frames} frames at {clip.fps:g} fps ({clip.duration:.2f} s)")
        for p in written:
            print(f"wrote {p}")
    return 0


def cmd_export(a: argparse.Namespace) -> int:
    from exporters import cli
    return cli.main(a.args)


def cmd_prepare(a: argparse.Namespace) -> int:
    from motion import prepare
    return prepare.main(a.args)


def cmd_train(a: argparse.Namespace) -> int:
    from motion import train
    return train.main(a.args)


def cmd_train_generator(a: argparse.Namespace) -> int:
    from generator import train_neural
    return train_neural.main(a.args)


def cmd_evaluate(a: argparse.Namespace) -> int:
    from motion import evaluate
    return evaluate.main(a.args)


def cmd_serve(a: argparse.Namespace) -> int:
    from bridge import serve
    return serve.run(a)


def cmd_stream(a: argparse.Namespace) -> int:
    from bridge.stream import StreamOptions, run_stream
    opts = StreamOptions(
        input=a.input, mic=a.mic, ws_audio=a.ws_audio, vmc=a.vmc, livelink=a.livelink, ws=a.ws, host=a.host,
        token=a.token, play=a.play, fps=a.fps, blendshapes=a.blendshapes, subject=a.subject, seed=a.seed,
        style=a.style, style_reference=a.style_reference, checkpoint=a.checkpoint, delay=a.delay,
        device=a.device)
    result = run_stream(opts, log=(lambda m: None) if a.quiet else None)
    if not a.quiet:
        for line in result.summary_lines():
            print(line)
    return 0


def cmd_render(a: argparse.Namespace) -> int:
    from generator import render
    return render.run(a)


class Parser(argparse.ArgumentParser):
    """``argparse`` with the project's error format: one line ``chatanyone: error: ...``, exit 2 (raised
    as :class:`motion.errors.ChatAnyoneError` and printed by :func:`main`), instead of usage + message."""

    def error(self, message: str):
        from motion.options import OptionError
        raise OptionError(f"{' '.join(message.split())} (see `{self.prog} --help`)")


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="chatanyone", description="Speech to avatar motion (ARKit face, SMPL-X body and fingers).")
    sub = p.add_subparsers(dest="command", required=True)

    an = sub.add_parser("animate", help="audio file -> NAME.npz, NAME.glb, NAME.bvh")
    an.add_argument("audio", help="speech audio (wav/flac/ogg/mp3, any rate, any channels)")
    an.add_argument("-o", "--output-dir", default=".", help="output folder (default: current folder)")
    an.add_argument("--seed", type=int, default=0, help="random seed, 0..2^64-1 (default 0)")
    an.add_argument("--fps", type=float, default=30.0, help="output frame rate, 1..240 (default 30, the model's rate)")
    an.add_argument("--expression", type=float, default=1.0, help="face intensity factor, 0..2 (default 1)")
    an.add_argument("--head", type=float, default=1.0, help="head motion intensity factor, 0..2 (default 1)")
    an.add_argument("--gesture", type=float, default=1.0, help="gesture amplitude factor, 0..2 (default 1)")
    an.add_argument("--style", default=None, help="style preset (a training dataset name, e.g. beat2)")
    an.add_argument("--style-reference", default=None, metavar="CLIP",
                    help="take the manner of motion from this clip: a MotionClip .npz or a Live Link Face .csv")
    an.add_argument("--style-guidance", type=float, default=None,
                    help="classifier-free guidance on the style, 0..10 (default motion.inference.STYLE_GUIDANCE; 1 = off)")
    an.add_argument("--steps", type=int, default=None,
                    help="denoising steps per stage, 1..50 (default 4 face, 6 body)")
    an.add_argument("--transcript", default=None,
                    help="text of the speech, if known: phones force-aligned to it (audio of at most 3 minutes)")
    an.add_argument("--face-guidance", type=float, default=None,
                    help="classifier-free guidance on audio for the face, 0..10 (default motion.inference.FACE_GUIDANCE = 2.0; 1 = off)")
    an.add_argument("--body-guidance", type=float, default=None,
                    help="classifier-free guidance on audio for the body, 0..10 (default motion.inference.BODY_GUIDANCE = 1, off)")
    an.add_argument("--formats", default=DEFAULT_FORMATS,
                    help=f"comma list of npz, glb, vrma, bvh, csv or all (default {DEFAULT_FORMATS})")
    an.add_argument("--bone-names", choices=("smplx", "mixamo"), default="smplx",
                    help="joint names of the glb and bvh skeletons (default smplx; mixamo: mixamorig:Hips, ...)")
    an.add_argument("--checkpoint", default=None, help="model .safetensors (default: shipped)")
    an.add_argument("-q", "--quiet", action="store_true",
                    help="no progress bar or summary (the bar shows for audio longer than 20 s)")
    an.set_defaults(func=cmd_animate)

    ex = sub.add_parser("export", help="MotionClip .npz -> glb, vrma, bvh, csv", add_help=False)
    ex.add_argument("args", nargs=argparse.REMAINDER, help="see `chatanyone export --help`")
    ex.set_defaults(func=cmd_export)

    pr = sub.add_parser("prepare", help="videos, Live Link CSV, BEAT2, FACEGOOD -> training clips", add_help=False)
    pr.add_argument("args", nargs=argparse.REMAINDER, help="see `chatanyone prepare --help`")
    pr.set_defaults(func=cmd_prepare)

    tr = sub.add_parser("train", help="train the motion model from a TOML config", add_help=False)
    tr.add_argument("args", nargs=argparse.REMAINDER, help="see `chatanyone train --help`")
    tr.set_defaults(func=cmd_train)

    tg = sub.add_parser("train-generator", help="train the neural render engine from a TOML config "
                        "(configs/generator.toml)", add_help=False)
    tg.add_argument("args", nargs=argparse.REMAINDER, help="see `chatanyone train-generator --help`")
    tg.set_defaults(func=cmd_train_generator)

    ev = sub.add_parser("evaluate", help="metrics on held-out real data (lip sync against real capture), "
                        "next to baselines")
    ev.add_argument("args", nargs=argparse.REMAINDER, help="see `chatanyone evaluate --help`")
    ev.set_defaults(func=cmd_evaluate)

    from generator.render import add_arguments as render_arguments
    rd = sub.add_parser("render", help="portrait image + audio or clip .npz -> 512x768 talking-portrait .mp4")
    render_arguments(rd)
    rd.set_defaults(func=cmd_render)

    st = sub.add_parser("stream", help="live: audio, mic or WebSocket audio -> VMC, Live Link Face, WebSocket",
                        description="Generate motion with the streaming model and send it in real time, in sync "
                                    "with the audio, to one or more outputs.")
    st.add_argument("input", nargs="?", default=None, help="speech AUDIO file, or a CLIP.npz to stream as is")
    st.add_argument("--mic", action="store_true", help="live microphone input (optional extra 'live')")
    st.add_argument("--ws-audio", action="store_true",
                    help="take PCM16 16 kHz audio chunks pushed by a WebSocket client (needs --ws)")
    st.add_argument("--vmc", metavar="HOST:PORT", help="send VMC (OSC/UDP), e.g. 127.0.0.1:39539")
    st.add_argument("--livelink", metavar="HOST:PORT", help="send Live Link Face (UDP), e.g. 127.0.0.1:11111")
    st.add_argument("--ws", type=int, metavar="PORT", help="serve the WebSocket stream on this port (e.g. 8765)")
    st.add_argument("--host", default="127.0.0.1",
                    help="WebSocket bind address (default 127.0.0.1; any other needs --token)")
    st.add_argument("--token", help="secret WebSocket clients must send (?token=... or Authorization: Bearer)")
    st.add_argument("--play", action="store_true", help="play the audio locally in sync (optional extra 'live')")
    st.add_argument("--fps", type=float, default=60.0, help="VMC and Live Link rate, 1..240 (default 60; slerped from 30)")
    st.add_argument("--blendshapes", choices=["vrm0", "perfectsync"], default="vrm0",
                    help="VMC blendshape names: VRM0 presets (A, I, U, E, O, Blink, Joy, ...) or the 52 ARKit "
                         "names in UpperCamel (default vrm0)")
    st.add_argument("--subject", default="ChatAnyone", help="Live Link subject name (default ChatAnyone)")
    st.add_argument("--delay", type=float, default=None,
                    help="seconds between the audio start and frame 0, 0..10 (default: 0.2 for files, the model's "
                         "lookahead + 0.2 for live input)")
    st.add_argument("--device", default=None, help="audio device for --play/--mic (default: the system's)")
    st.add_argument("--seed", type=int, default=0, help="random seed, 0..2^64-1 (default 0)")
    st.add_argument("--style", default=None, help="style preset (a training dataset name)")
    st.add_argument("--style-reference", default=None, metavar="CLIP",
                    help="take the manner of motion from this clip: a MotionClip .npz or a Live Link Face .csv")
    st.add_argument("--checkpoint", default=None, help="model .safetensors (default: shipped)")
    st.add_argument("-q", "--quiet", action="store_true", help="no status lines or summary")
    st.set_defaults(func=cmd_stream)

    from bridge.serve import build_parser as serve_parser
    se = serve_parser(sub.add_parser("serve", help="browser viewer: avatar driven by the WebSocket stream, with audio"))
    se.set_defaults(func=cmd_serve)
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
    try:
        usable = (enabled and not os.environ.get("CHATANYONE_NATIVE_STDERR") and real is not None
                  and sys.stderr is real and real.fileno() == 2)
    except (AttributeError, OSError, ValueError):
        usable = False
    if not usable:
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
    ends or ``closing`` is set and nothing more is waiting. A partial line up to its last ``\\r`` (a
    progress bar redrawing itself) is passed on at once."""
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
    copied out. Only when ``sys.stderr`` is the process's real stderr (not under pytest's capture or
    another redirect) and ``CHATANYONE_NATIVE_STDERR`` is unset; ``-v``/``--verbose`` turns it off per run.
    """
    real = sys.__stderr__
    try:
        usable = (enabled and not os.environ.get("CHATANYONE_NATIVE_STDERR") and real is not None
                  and sys.stderr is real and real.fileno() == 2)
    except (AttributeError, OSError, ValueError):
        usable = False
    if not usable:
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
            delegated = {"export": cmd_export, "prepare": cmd_prepare, "train": cmd_train,  # subcommands
                         "train-generator": cmd_train_generator, "evaluate": cmd_evaluate}   # with their own parser
            if argv[:1] and argv[0] in delegated:
                a = argparse.Namespace(func=delegated[argv[0]], args=argv[1:])
            else:
                a = build_parser().parse_args(argv)
                check_options(a)
            return int(a.func(a) or 0)
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


if __name__ == "__main__":
    raise SystemExit(main())
