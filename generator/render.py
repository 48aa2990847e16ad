"""``chatanyone render PORTRAIT AUDIO|CLIP.npz -o out.mp4``: portrait image + motion -> talking portrait video.

Pipeline (ChatAnyone §3.2-3.4, issue 7): motion (generated from the audio with
:class:`motion.inference.MotionGenerator`, or a saved :class:`motion.clip.MotionClip` ``.npz``) -> per frame
ARKit weights and head rotation deltas (:func:`generator.driving.head_rotation_deltas`) -> driving facial
keypoints on the portrait (:class:`generator.driving.KeypointDriver`) -> an engine draws the frame:

* ``warp`` (default, no trained weights): :class:`generator.warp.WarpEngine`, a piecewise-affine warp with a
  painted mouth interior. The body does not move (the skeleton's spine and arms are not used).
* ``neural``: the hybrid-control neural generator (:class:`generator.neural.NeuralEngine`): the same driving
  keypoints plus the hand control images (:mod:`generator.hands`) drawn from the clip's finger joints. It
  needs a checkpoint: ``--checkpoint PATH``, else the one installed in :data:`NEURAL_CHECKPOINT_DIR`
  (``chatanyone train-generator configs/generator.toml --install``); without one it refuses with a clear
  error. Runs on CUDA when available (``--device``).

Output: MP4, H.264 (``libx264``, ``yuv420p``, CRF :attr:`RenderConfig.crf`) at 30 fps, 512 wide x 768 tall,
one frame per motion frame; audio muxed in as AAC (mono, :attr:`RenderConfig.audio_rate` Hz), encoded with
**PyAV** (FFmpeg bindings). The file is written atomically (:func:`motion.fileio.atomic_output`).

Audio for a ``.npz`` clip: ``--audio`` if given, else ``meta["audio_source"]`` (from ``audio_offset_s``) when
that file exists, else the video is silent (a note is printed).
"""
from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from motion.conventions import MODEL_FPS, SAMPLE_RATE
from motion.errors import ChatAnyoneError

ENGINES = ("warp", "neural")
NEURAL_CHECKPOINT_DIR = Path(__file__).resolve().parent / "checkpoints"


class RenderError(ChatAnyoneError):
    """``render`` cannot run with these inputs/options (engine unavailable, bad output path, ...)."""


@dataclass
class RenderConfig:
    """Options of :func:`render`.

    Attributes:
        engine: ``"warp"`` or ``"neural"``.
        size: ``(width, height)`` pixels of the output (512 x 768).
        fps: output frame rate; the motion is resampled to it when it differs.
        crf, preset: libx264 quality (lower CRF = better) and speed preset.
        audio_rate: AAC sample rate (Hz); the 16 kHz speech is resampled to it (soxr).
        audio_bitrate: AAC bit rate (bit/s).
        seed: motion generation seed (audio input only).
        checkpoint: neural engine checkpoint (None: the installed one, :func:`neural_checkpoint`).
        device: neural engine device, ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``.
    """

    engine: str = "warp"
    size: tuple[int, int] = (512, 768)  # generator.driving.OUTPUT_SIZE
    fps: float = MODEL_FPS
    crf: int = 18
    preset: str = "veryfast"
    audio_rate: int = 48000
    audio_bitrate: int = 96000
    seed: int = 0
    checkpoint: str | None = None
    device: str = "auto"


@dataclass
class RenderResult:
    """What :func:`render` wrote: path, frame count, fps, ``(width, height)``, audio seconds (0 = none),
    engine, wall seconds spent rendering+encoding, and the portrait crop ``(x0, y0, w, h)``."""

    path: Path
    num_frames: int
    fps: float
    size: tuple[int, int]
    audio_s: float
    engine: str
    seconds: float
    crop: tuple[int, int, int, int] = field(default=(0, 0, 0, 0))


def neural_checkpoint() -> Path | None:
    """The installed neural generator checkpoint (``generator/checkpoints/*.safetensors``), or None."""
    if NEURAL_CHECKPOINT_DIR.is_dir():
        found = sorted(NEURAL_CHECKPOINT_DIR.glob("*.safetensors"))
        if found:
            return found[0]
    return None


def check_engine(engine: str, checkpoint: str | Path | None = None) -> Path | None:
    """The neural checkpoint to use (``checkpoint``, else the installed one; None for ``warp``).

    Raises:
        RenderError: unknown engine, or ``neural`` without a checkpoint (given file missing, none installed).
        NeuralCheckpointError: the checkpoint is not a readable neural generator checkpoint.
    """
    if engine not in ENGINES:
        raise RenderError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    if engine != "neural":
        return None
    if checkpoint is not None:
        ckpt = Path(checkpoint)
        if not ckpt.is_file():
            raise RenderError(f"neural generator checkpoint {ckpt} not found")
    else:
        ckpt = neural_checkpoint()
        if ckpt is None:
            raise RenderError("no neural generator checkpoint is installed; use --engine warp")
    from .neural import load_checkpoint

    load_checkpoint(ckpt)  # fails fast (NeuralCheckpointError) before any work
    return ckpt


# --------------------------------------------------------------------------------------------------
# Motion and audio
# --------------------------------------------------------------------------------------------------
def load_motion(motion_path: str | Path, *, audio_path: str | Path | None = None, seed: int = 0,
                progress: bool = False):
    """Motion and its audio from an audio file or a MotionClip ``.npz``.

    Returns:
        ``(clip, audio)``: :class:`~motion.clip.MotionClip` and ``[N]`` float32 16 kHz mono or None.
    Raises:
        AudioError / ClipError: unreadable inputs.
    """
    from motion.audio import load_audio
    from motion.clip import MotionClip

    p = Path(motion_path)
    if p.suffix.lower() == ".npz":
        clip = MotionClip.load(p)
        if clip.num_frames == 0:
            raise RenderError(f"{p}: the clip has no frames, nothing to render")
        audio = None
        if audio_path is not None:
            audio = load_audio(audio_path)
        else:
            src = clip.meta.get("audio_source")
            if src and Path(src).is_file():
                audio = load_audio(src)
                off = int(round(float(clip.meta.get("audio_offset_s") or 0.0) * SAMPLE_RATE))
                audio = audio[max(off, 0):]
        return clip, audio
    from motion.inference import MotionGenerator

    audio = load_audio(p if audio_path is None else audio_path)
    clip = MotionGenerator().generate(audio, seed=seed, progress=progress, audio_source=str(p.resolve()))
    return clip, audio


def driving_from_clip(clip, fps: float = MODEL_FPS) -> tuple[np.ndarray, np.ndarray]:
    """``(face [T, 52] float32, head [T, 3, 3] float64)`` at ``fps`` from a MotionClip (module docstring)."""
    from .driving import head_rotation_deltas

    if abs(clip.fps - fps) > 1e-6:
        clip = clip.resample(fps)
    return clip.face, head_rotation_deltas(clip.rotations)


# --------------------------------------------------------------------------------------------------
# Encoding
# --------------------------------------------------------------------------------------------------
def encode_mp4(frames: Iterable[np.ndarray], num_frames: int, path: str | Path, *, fps: float = MODEL_FPS,
               audio: np.ndarray | None = None, audio_rate_in: int = SAMPLE_RATE,
               config: RenderConfig | None = None, progress: bool = False) -> None:
    """Encode ``[H, W, 3]`` uint8 RGB frames (H.264 yuv420p) and optional mono float audio (AAC) into an MP4
    at ``path`` (written in place: wrap it in :func:`motion.fileio.atomic_output`)."""
    import av
    import soxr
    from tqdm import tqdm

    cfg = config or RenderConfig()
    W, H = cfg.size
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(path), "w", format="mp4") as c:
        vs = c.add_stream("libx264", rate=rate)
        vs.width, vs.height, vs.pix_fmt = W, H, "yuv420p"
        vs.options = {"crf": str(cfg.crf), "preset": cfg.preset}
        vs.codec_context.time_base = 1 / rate
        if audio is not None and len(audio):
            a = c.add_stream("aac", rate=cfg.audio_rate, layout="mono")
            a.bit_rate = cfg.audio_bitrate
            x = np.asarray(audio, np.float32)
            if audio_rate_in != cfg.audio_rate:
                x = soxr.resample(x, audio_rate_in, cfg.audio_rate).astype(np.float32)
            x = np.clip(x, -1.0, 1.0)
            n = a.codec_context.frame_size or 1024
            for i in range(0, len(x), n):
                fr = av.AudioFrame.from_ndarray(np.ascontiguousarray(x[None, i:i + n]), format="fltp", layout="mono")
                fr.sample_rate = cfg.audio_rate
                fr.pts = i
                fr.time_base = Fraction(1, cfg.audio_rate)
                c.mux(a.encode(fr))
            c.mux(a.encode(None))
        with tqdm(total=num_frames, desc="render", unit="fr", disable=not progress, leave=False) as bar:
            for k, img in enumerate(frames):
                if img.shape != (H, W, 3):
                    raise RenderError(f"engine produced a {img.shape} frame, expected {(H, W, 3)}")
                vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
                vf.pts = k
                vf.time_base = 1 / rate
                c.mux(vs.encode(vf))
                bar.update(1)
        c.mux(vs.encode(None))


# --------------------------------------------------------------------------------------------------
# Render
# --------------------------------------------------------------------------------------------------
def warp_frames(portrait, face: np.ndarray, head: np.ndarray, keypoint_model=None) -> Iterator[np.ndarray]:
    """Frames ``[H, W, 3]`` uint8 of the warp engine for ``face [T, 52]`` and ``head [T, 3, 3]``."""
    from .face_keypoints import FaceKeypointModel
    from .warp import WarpEngine

    eng = WarpEngine(portrait, keypoint_model or FaceKeypointModel.load())
    drive = eng.drive(face, head)
    for t in range(len(face)):
        yield eng.render(drive, t)


def neural_frames(portrait, clip, checkpoint: str | Path, fps: float = MODEL_FPS, device: str = "auto",
                  keypoint_model=None) -> Iterator[np.ndarray]:
    """Frames ``[H, W, 3]`` uint8 of the neural engine for a MotionClip (face, head and hands)."""
    from .face_keypoints import FaceKeypointModel
    from .neural import NeuralEngine

    if abs(clip.fps - fps) > 1e-6:
        clip = clip.resample(fps)
    face, head = driving_from_clip(clip, fps)
    eng = NeuralEngine(portrait, keypoint_model or FaceKeypointModel.load(), checkpoint, device=device)
    yield from eng.frames(face, head, clip.rotations)


def render(portrait_path: str | Path, motion_path: str | Path, out_path: str | Path, *,
           audio_path: str | Path | None = None, config: RenderConfig | None = None,
           progress: bool = False) -> RenderResult:
    """Render a talking portrait video (module docstring).

    Raises:
        RenderError: unknown/unavailable engine, output folder missing.
        FaceNotFoundError: ``no face detected in PORTRAIT``. PortraitError: unreadable image.
        AudioError / ClipError: unreadable motion input.
    """
    from motion.fileio import atomic_output

    from .driving import load_portrait

    cfg = config or RenderConfig()
    ckpt = check_engine(cfg.engine, cfg.checkpoint)
    out = Path(out_path)
    if not out.parent.is_dir():
        raise RenderError(f"cannot write {out}: the folder {out.parent} does not exist")
    portrait = load_portrait(portrait_path, cfg.size)  # fails fast on a face-less image
    clip, audio = load_motion(motion_path, audio_path=audio_path, seed=cfg.seed, progress=progress)
    face, head = driving_from_clip(clip, cfg.fps)
    T = len(face)
    if audio is not None:
        audio = audio[: int(round(T / cfg.fps * SAMPLE_RATE))]
    t0 = time.perf_counter()
    with atomic_output(out) as tmp:
        frames = (neural_frames(portrait, clip, ckpt, cfg.fps, cfg.device) if cfg.engine == "neural"
                  else warp_frames(portrait, face, head))
        encode_mp4(frames, T, tmp, fps=cfg.fps, audio=audio, config=cfg, progress=progress)
    secs = time.perf_counter() - t0
    return RenderResult(out, T, cfg.fps, cfg.size, 0.0 if audio is None else len(audio) / SAMPLE_RATE,
                        cfg.engine, secs, portrait.crop)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``render`` options (shared by ``chatanyone render`` and ``python -m generator.render``)."""
    p.add_argument("portrait", help="portrait image (png/jpg) with one visible face")
    p.add_argument("motion", help="speech audio (wav/flac/ogg/mp3) or a MotionClip .npz")
    p.add_argument("-o", "--output", required=True, help="output .mp4")
    p.add_argument("--engine", choices=ENGINES, default="warp", help="warp (default, no weights) or neural")
    p.add_argument("--seed", type=int, default=0, help="motion seed for audio input (default 0)")
    p.add_argument("--audio", default=None, help="audio to mux with a .npz clip (default: the clip's audio_source)")
    p.add_argument("--checkpoint", default=None,
                   help="neural engine checkpoint .safetensors (default: the installed one)")
    p.add_argument("--device", default="auto", help="neural engine device: auto (CUDA when available), cpu, cuda")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")


def run(a: argparse.Namespace) -> int:
    """Run ``render`` from parsed :func:`add_arguments` options; returns the exit code (errors raise)."""
    res = render(a.portrait, a.motion, a.output, audio_path=a.audio,
                 config=RenderConfig(engine=a.engine, seed=a.seed, checkpoint=getattr(a, "checkpoint", None),
                                     device=getattr(a, "device", "auto")), progress=not a.quiet)
    if not a.quiet:
        if res.audio_s == 0.0:
            print("note: no audio found for this clip; the video is silent (use --audio)", file=sys.stderr)
        print(f"{res.num_frames} frames at {res.fps:g} fps, {res.size[0]}x{res.size[1]}, engine {res.engine}, "
              f"{res.num_frames / max(res.seconds, 1e-9):.1f} frames/s; portrait crop x={res.crop[0]} y={res.crop[1]} "
              f"{res.crop[2]}x{res.crop[3]}")
        print(f"wrote {res.path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m generator.render", description=__doc__.splitlines()[0])
    add_arguments(p)
    a = p.parse_args(argv)
    try:
        return run(a)
    except ChatAnyoneError as e:
        print(f"render: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
