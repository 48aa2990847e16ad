"""``chatanyone export CLIP.npz [-f FORMATS] [-o OUT_DIR] [--fps FPS] [--bone-names smplx|mixamo]``.

Converts a saved clip. :func:`add_arguments` and :func:`run` are the options and their handling (as every
``chatanyone`` subcommand offers them); :func:`main` parses an argv. Both raise
:class:`motion.errors.ChatAnyoneError` for user mistakes (bad options, unreadable or invalid clip, unwritable
folder, a full disk); ``chatanyone``'s own ``main`` prints them on one line and exits 2. Run as ``python -m exporters.cli`` it prints them the same way.
Every option is checked before the clip is read, the clip before anything is written; all formats are
written together or not at all (:func:`exporters.export`), and the input clip is never overwritten.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from motion.errors import ChatAnyoneError
from motion.options import FPS_RANGE, check_float  # --fps: 1..240, one range and message for every command

from . import BONE_NAME_OPTIONS, FORMAT_OPTIONS, FORMATS, check_formats, export



class _Parser(argparse.ArgumentParser):
    """argparse that raises :class:`ChatAnyoneError` instead of printing usage and exiting (one-line errors)."""

    def error(self, message: str):
        raise ChatAnyoneError(message)


DESCRIPTION = "Convert a motion clip (.npz) to animation files."


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``export`` options (``chatanyone export`` and ``python -m exporters.cli``)."""
    p.add_argument("clip", help="a MotionClip .npz (from `chatanyone animate`)")
    p.add_argument("-f", "--format", default="all",
                   help=f"{'|'.join(FORMATS)}|all, or a comma list (default: all)")
    p.add_argument("-o", "--output-dir", default=".", help="output folder, created if missing (default: current folder)")
    p.add_argument("--fps", type=float, default=None,
                   help=f"frame rate of the written files, {FPS_RANGE[0]:g}-{FPS_RANGE[1]:g} (resampled: linear "
                        "face, slerp rotations; e.g. 60 for a Live Link Face CSV as the iPhone app writes it); "
                        "default: the clip's own")
    p.add_argument("--bone-names", choices=BONE_NAME_OPTIONS, default="smplx",
                   help="joint names of the glb and bvh skeletons: smplx (default) or mixamo (mixamorig:Hips, ...)")
    p.add_argument("-q", "--quiet", action="store_true", help="do not list the written files")


def build_parser(prog: str = "chatanyone export") -> argparse.ArgumentParser:
    p = _Parser(prog=prog, description=DESCRIPTION)
    add_arguments(p)
    return p


def check_fps(fps: float | None) -> float | None:
    """Validate ``--fps`` (``None``: keep the clip's rate).

    Raises:
        ChatAnyoneError: not a finite number within :data:`motion.options.FPS_RANGE` (as ``chatanyone``
            checks every command's ``--fps``).
    """
    return None if fps is None else check_float("--fps", fps, FPS_RANGE)


def _same_file(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` name one file: by resolved path (also for folders still to be created,
    ``out/new/..``) or by device and inode (hard links)."""
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (without the program name) and :func:`run` it; returns 0.

    Raises:
        ChatAnyoneError: a bad option, or what :func:`run` raises.
    """
    return run(build_parser().parse_args(argv))


def run(a: argparse.Namespace) -> int:
    """Write the files the parsed options (:func:`add_arguments`) ask for; returns 0.

    When ``-f all`` (the default) would write the npz onto the input clip itself (``-o`` is the clip's
    folder), the npz is skipped with a note; naming ``npz`` explicitly (or any format whose file is the
    input) is an error.

    Raises:
        ChatAnyoneError: unknown format or bone names, ``--fps`` out of range, ``--bone-names mixamo``
            without glb or bvh, a clip path that is missing, a folder or not a valid clip (e.g. NaN values),
            an output path that is not a writable folder, an output file that is the input, or an I/O error
            while writing (e.g. a full disk). Nothing is left half-written (:func:`exporters.export`).
    """
    from motion.clip import MotionClip

    requested = [f.strip() for f in a.format.split(",") if f.strip()]
    formats = check_formats(requested)
    fps = check_fps(a.fps)
    if a.bone_names != "smplx" and not any("bone_names" in FORMAT_OPTIONS.get(f, ()) for f in formats):
        raise ChatAnyoneError(f"--bone-names applies to {' and '.join(FORMAT_OPTIONS)} only; "
                              f"none of them is among the formats ({', '.join(formats)})")
    src = Path(a.clip)
    if src.is_dir():
        raise ChatAnyoneError(f"{src} is a folder; give a clip .npz file (from `chatanyone animate`)")
    out_dir = Path(a.output_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ChatAnyoneError(f"output path {out_dir} exists and is not a folder")
    stem = src.stem
    skipped = []
    for name in list(formats):
        target = out_dir / f"{stem}{FORMATS[name][1]}"
        if src.is_file() and _same_file(src, target):
            if name == "npz" and "npz" not in requested:
                formats.remove(name)               # "all" next to the input: the npz is already there
                skipped.append(target)
            else:
                raise ChatAnyoneError(f"writing {name} to {target} would overwrite the input clip; "
                                      "choose another --output-dir")
    if not formats:
        raise ChatAnyoneError(f"nothing to write: the only format would overwrite the input {src}")
    clip = MotionClip.load(src)
    if fps is not None:
        clip = clip.resample(fps)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ChatAnyoneError(f"cannot create the output folder {out_dir}: {e.strerror or e}") from None
    written = export(clip, out_dir, stem, formats, bone_names=a.bone_names)
    if not a.quiet:
        for p in skipped:
            print(f"skipped {p} (it is the input clip)")
        for p in written:
            print(f"wrote {p}")
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except ChatAnyoneError as e:
        print(f"chatanyone export: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        print("chatanyone export: interrupted", file=sys.stderr)
        raise SystemExit(130) from None
