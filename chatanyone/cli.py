"""``chatanyone``: a thin command line over ``motion`` and ``exporters``.

Errors caused by the user (bad files, bad options) print one line ``chatanyone: error: ...`` and exit 2;
nothing half-written is left behind.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEFAULT_FORMATS = "npz,glb,bvh"


def cmd_animate(a: argparse.Namespace) -> int:
    from exporters import check_formats, export
    from motion.errors import ChatAnyoneError
    from motion.inference import Intensity, MotionGenerator
    audio = Path(a.audio)
    out_dir = Path(a.output_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ChatAnyoneError(f"output path {out_dir} exists and is not a directory")
    formats = check_formats(a.formats.split(","))
    intensity = Intensity(a.expression, a.head, a.gesture)
    gen = MotionGenerator(a.checkpoint)
    guidance = {k: v for k, v in (("face_guidance", a.face_guidance), ("body_guidance", a.body_guidance))
                if v is not None}
    clip = gen.animate_file(audio, seed=a.seed, fps=a.fps, intensity=intensity, style=a.style,
                            steps=a.steps, transcript=a.transcript, progress=not a.quiet, **guidance)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = export(clip, out_dir, audio.stem, formats)
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
    argv = [a.config] + (["--out-dir", a.out_dir] if a.out_dir else []) + (["--install"] if a.install else [])
    return train.main(argv)


def cmd_evaluate(a: argparse.Namespace) -> int:
    from motion import evaluate
    argv = (["--checkpoint", a.checkpoint] if a.checkpoint else []) + ["--out", a.out]
    argv += ["--config", a.config] if a.config else []
    return evaluate.main(argv)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="chatanyone", description="Speech to avatar motion (ARKit face, SMPL-X body and fingers).")
    sub = p.add_subparsers(dest="command", required=True)

    an = sub.add_parser("animate", help="audio file -> NAME.npz, NAME.glb, NAME.bvh")
    an.add_argument("audio", help="speech audio (wav/flac/ogg/mp3, any rate, any channels)")
    an.add_argument("-o", "--output-dir", default=".", help="output folder (default: current folder)")
    an.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    an.add_argument("--fps", type=float, default=30.0, help="output frame rate (model runs at 30)")
    an.add_argument("--expression", type=float, default=1.0, help="face intensity factor, 0..2 (default 1)")
    an.add_argument("--head", type=float, default=1.0, help="head motion intensity factor, 0..2 (default 1)")
    an.add_argument("--gesture", type=float, default=1.0, help="gesture amplitude factor, 0..2 (default 1)")
    an.add_argument("--style", default=None, help="style preset (a training dataset name, e.g. beat2)")
    an.add_argument("--steps", type=int, default=None, help="denoising steps (default from checkpoint)")
    an.add_argument("--transcript", default=None, help="text of the speech, if known")
    an.add_argument("--face-guidance", type=float, default=None,
                    help="classifier-free guidance on audio for the face (default motion.inference.FACE_GUIDANCE = 2; 1 = off)")
    an.add_argument("--body-guidance", type=float, default=None,
                    help="classifier-free guidance on audio for the body (default motion.inference.BODY_GUIDANCE = 1, off)")
    an.add_argument("--formats", default=DEFAULT_FORMATS,
                    help=f"comma list of npz, glb, vrma, bvh, csv or all (default {DEFAULT_FORMATS})")
    an.add_argument("--checkpoint", default=None, help="model .safetensors (default: shipped)")
    an.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")
    an.set_defaults(func=cmd_animate)

    ex = sub.add_parser("export", help="MotionClip .npz -> glb, vrma, bvh, csv", add_help=False)
    ex.add_argument("args", nargs=argparse.REMAINDER, help="see `chatanyone export --help`")
    ex.set_defaults(func=cmd_export)

    pr = sub.add_parser("prepare", help="videos, Live Link CSV, BEAT2, FACEGOOD -> training clips", add_help=False)
    pr.add_argument("args", nargs=argparse.REMAINDER, help="see `chatanyone prepare --help`")
    pr.set_defaults(func=cmd_prepare)

    tr = sub.add_parser("train", help="train the motion model from a TOML config")
    tr.add_argument("config")
    tr.add_argument("--out-dir")
    tr.add_argument("--install", action="store_true", help="copy the result over the shipped checkpoint")
    tr.set_defaults(func=cmd_train)

    ev = sub.add_parser("evaluate", help="metrics on held-out real data, next to baselines")
    ev.add_argument("--checkpoint", default=None)
    ev.add_argument("--out", default="eval", help="folder for report.md")
    ev.add_argument("--config", default=None, help="take the held-out clips from this training config")
    ev.set_defaults(func=cmd_evaluate)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    delegated = {"export": cmd_export, "prepare": cmd_prepare}  # subcommands with their own parser
    if argv[:1] and argv[0] in delegated:
        a = argparse.Namespace(func=delegated[argv[0]], args=argv[1:])
    else:
        a = parser.parse_args(argv)
    from motion.errors import ChatAnyoneError
    try:
        return int(a.func(a) or 0)
    except ChatAnyoneError as e:
        print(f"chatanyone: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("chatanyone: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
