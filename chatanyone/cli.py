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
    from motion.inference import Intensity, MotionGenerator, load_style_reference
    audio = Path(a.audio)
    out_dir = Path(a.output_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ChatAnyoneError(f"output path {out_dir} exists and is not a directory")
    formats = check_formats(a.formats.split(","))
    intensity = Intensity(a.expression, a.head, a.gesture)
    gen = MotionGenerator(a.checkpoint)
    guidance = {k: v for k, v in (("face_guidance", a.face_guidance), ("body_guidance", a.body_guidance))
                if v is not None}
    if a.style_guidance is not None:
        guidance["style_guidance"] = a.style_guidance
    reference = load_style_reference(a.style_reference) if a.style_reference else None
    clip = gen.animate_file(audio, seed=a.seed, fps=a.fps, intensity=intensity, style=a.style,
                            style_reference=reference, steps=a.steps, transcript=a.transcript,
                            progress=not a.quiet, **guidance)
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
    return train.main(a.args)


def cmd_train_generator(a: argparse.Namespace) -> int:
    from generator import train_neural
    return train_neural.main(a.args)


def cmd_evaluate(a: argparse.Namespace) -> int:
    from motion import evaluate
    argv = (["--checkpoint", a.checkpoint] if a.checkpoint else []) + ["--out", a.out]
    argv += ["--config", a.config] if a.config else []
    argv += ["--no-speed"] if a.no_speed else []
    for d in a.data:
        argv += ["--data", d]
    return evaluate.main(argv)


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
    an.add_argument("--style-reference", default=None, metavar="CLIP",
                    help="take the manner of motion from this clip: a MotionClip .npz or a Live Link Face .csv")
    an.add_argument("--style-guidance", type=float, default=None,
                    help="classifier-free guidance on the style (default motion.inference.STYLE_GUIDANCE; 1 = off)")
    an.add_argument("--steps", type=int, default=None, help="denoising steps (default from checkpoint)")
    an.add_argument("--transcript", default=None, help="text of the speech, if known")
    an.add_argument("--face-guidance", type=float, default=None,
                    help="classifier-free guidance on audio for the face (default motion.inference.FACE_GUIDANCE = 2.0; 1 = off)")
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

    tr = sub.add_parser("train", help="train the motion model from a TOML config", add_help=False)
    tr.add_argument("args", nargs=argparse.REMAINDER, help="see `chatanyone train --help`")
    tr.set_defaults(func=cmd_train)

    tg = sub.add_parser("train-generator", help="train the neural render engine from a TOML config "
                        "(configs/generator.toml)", add_help=False)
    tg.add_argument("args", nargs=argparse.REMAINDER, help="see `chatanyone train-generator --help`")
    tg.set_defaults(func=cmd_train_generator)

    ev = sub.add_parser("evaluate", help="metrics on held-out real data, next to baselines")
    ev.add_argument("--checkpoint", default=None)
    ev.add_argument("--out", default="eval", help="folder for report.md")
    ev.add_argument("--config", default=None, help="take the held-out clips from this training config")
    ev.add_argument("--data", action="append", default=[], metavar="DIR",
                    help="also evaluate on the clips of this `chatanyone prepare` folder (repeatable)")
    ev.add_argument("--no-speed", action="store_true", help="skip the speed measurements")
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
    st.add_argument("--fps", type=float, default=60.0, help="VMC and Live Link rate (default 60; slerped from 30)")
    st.add_argument("--blendshapes", choices=["vrm0", "perfectsync"], default="vrm0",
                    help="VMC blendshape names: VRM0 presets (A, I, U, E, O, Blink, Joy, ...) or the 52 ARKit "
                         "names in UpperCamel (default vrm0)")
    st.add_argument("--subject", default="ChatAnyone", help="Live Link subject name (default ChatAnyone)")
    st.add_argument("--delay", type=float, default=None,
                    help="seconds between the audio start and frame 0 (default: 0.2 for files, the model's "
                         "lookahead + 0.2 for live input)")
    st.add_argument("--device", default=None, help="audio device for --play/--mic (default: the system's)")
    st.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
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


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    delegated = {"export": cmd_export, "prepare": cmd_prepare, "train": cmd_train,  # subcommands with
                 "train-generator": cmd_train_generator}                           # their own parser
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
