"""``chatanyone export CLIP.npz --format glb|vrma|bvh|csv|npz|all [-o OUT_DIR]``: convert a saved clip.

:func:`main` raises :class:`motion.errors.ChatAnyoneError` for user mistakes (unknown format, unreadable or
invalid clip, unwritable folder); ``chatanyone``'s own ``main`` prints them on one line. Run as
``python -m exporters.cli`` it prints them the same way and exits 2.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from motion.errors import ChatAnyoneError

from . import FORMATS, check_formats, export


def build_parser(prog: str = "chatanyone export") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="Convert a motion clip (.npz) to animation files.")
    p.add_argument("clip", help="a MotionClip .npz (from `chatanyone animate`)")
    p.add_argument("-f", "--format", default="all",
                   help=f"{'|'.join(FORMATS)}|all, or a comma list (default: all)")
    p.add_argument("-o", "--output-dir", default=".", help="output folder, created if missing (default: current folder)")
    p.add_argument("-q", "--quiet", action="store_true", help="do not list the written files")
    return p


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (without the program name), write the files, return 0.

    Raises:
        ChatAnyoneError: unknown format, missing/invalid clip file (e.g. NaN values), output path that is
            not a writable folder. Nothing is left half-written (:func:`exporters.export`).
    """
    from motion.clip import MotionClip

    a = build_parser().parse_args(argv)
    formats = check_formats(f.strip() for f in a.format.split(",") if f.strip())
    clip = MotionClip.load(a.clip)
    out_dir = Path(a.output_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ChatAnyoneError(f"output path {out_dir} exists and is not a folder")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ChatAnyoneError(f"cannot create the output folder {out_dir}: {e.strerror or e}") from None
    written = export(clip, out_dir, Path(a.clip).stem, formats)
    if not a.quiet:
        for p in written:
            print(f"wrote {p}")
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except ChatAnyoneError as e:
        print(f"chatanyone export: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
