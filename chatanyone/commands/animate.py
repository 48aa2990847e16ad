"""``chatanyone animate``: an audio file -> NAME.npz, NAME.glb, NAME.bvh (or the ``--formats`` asked for).

Every check that needs no model (output folder, formats, audio, transcript length, style preset) runs
before the model and torch are imported: a bad input fails in a fraction of a second.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

DEFAULT_FORMATS = "npz,glb,bvh"
#: ``animate`` shows a progress bar of its phases for audio longer than this (seconds).
PROGRESS_MIN_AUDIO_S = 20.0


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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``animate`` options."""
    from motion.conventions import MODEL_FPS
    parser.add_argument("audio", help="speech audio (wav/flac/ogg/mp3, any rate, any channels)")
    parser.add_argument("-o", "--output-dir", default=".", help="output folder (default: current folder)")
    parser.add_argument("--seed", type=int, default=0, help="random seed, 0..2^64-1 (default 0)")
    parser.add_argument("--fps", type=float, default=MODEL_FPS,
                        help=f"output frame rate, 1..240 (default {MODEL_FPS:g}, the model's rate)")
    parser.add_argument("--expression", type=float, default=1.0, help="face intensity factor, 0..2 (default 1)")
    parser.add_argument("--mouth-scale", choices=("iphone", "native"), default="iphone",
                        help="mouth weights in iPhone ARKit scale as Live Link Face records them (default; what "
                             "MetaHuman and perfect-sync rigs expect) or the model's native scale (its training "
                             "capture's: a wider jawOpen, less lower-lip motion); see motion.face_scale")
    parser.add_argument("--head", type=float, default=1.0, help="head motion intensity factor, 0..2 (default 1)")
    parser.add_argument("--gesture", type=float, default=1.0, help="gesture amplitude factor, 0..2 (default 1)")
    parser.add_argument("--style", default=None, help="style preset (a training dataset name, e.g. beat2)")
    parser.add_argument("--style-reference", default=None, metavar="CLIP",
                        help="take the manner of motion from this clip: a MotionClip .npz or a Live Link Face .csv")
    parser.add_argument("--style-guidance", type=float, default=None,
                        help="classifier-free guidance on the style, 0..10 (default: the checkpoint's, 1 = off for the shipped one)")
    parser.add_argument("--steps", type=int, default=None,
                        help="denoising steps per stage, 1..50 (default: the checkpoint's, 4 face and 6 body for the shipped one)")
    parser.add_argument("--transcript", default=None,
                        help="text of the speech, if known: phones force-aligned to it (audio of at most 3 minutes)")
    parser.add_argument("--face-guidance", type=float, default=None,
                        help="classifier-free guidance on audio for the face, 0..10 (default: the checkpoint's, 2 for the shipped one; 1 = off)")
    parser.add_argument("--body-guidance", type=float, default=None,
                        help="classifier-free guidance on audio for the body, 0..10 (default: the checkpoint's, 1 = off for the shipped one)")
    parser.add_argument("--formats", default=DEFAULT_FORMATS,
                        help=f"comma list of npz, glb, vrma, bvh, csv or all (default {DEFAULT_FORMATS})")
    parser.add_argument("--bone-names", choices=("smplx", "mixamo"), default="smplx",
                        help="joint names of the glb and bvh skeletons (default smplx; mixamo: mixamorig:Hips, ...)")
    parser.add_argument("--checkpoint", default=None, help="model .safetensors (default: shipped)")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="no progress bar or summary (the bar shows for audio longer than 20 s)")


def run(a: argparse.Namespace) -> int:
    """Animate ``a.audio`` into ``a.output_dir``; returns 0 (user errors raise ChatAnyoneError)."""
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
    reference = load_style_reference(a.style_reference) if a.style_reference else None
    phases = _Phases(["loading model", "generating motion", "writing files"],
                     enabled=not a.quiet and duration_s > PROGRESS_MIN_AUDIO_S)
    try:
        gen = MotionGenerator(a.checkpoint, mouth_scale=a.mouth_scale == "iphone")
        phases.next()
        # option values left None (no flag) are the checkpoint's defaults (motion.options.SamplingOptions)
        clip = gen.animate_file(audio, seed=a.seed, fps=a.fps, intensity=intensity, style=a.style,
                                style_reference=reference, steps=a.steps, transcript=a.transcript,
                                face_guidance=a.face_guidance, body_guidance=a.body_guidance,
                                style_guidance=a.style_guidance, progress=not a.quiet)
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
