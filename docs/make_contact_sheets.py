"""Render the contact sheets of the default avatar's head with Blender (headless, Workbench), into docs/.

    python docs/make_contact_sheets.py [--blender blender] [--size 192] [--work runs/contact_sheets]

* ``docs/head_arkit52.jpg``: the neutral face and each of the 52 ARKit morph targets at weight 1 (the GLB
  exporter's avatar, ``exporters.glb.write`` of a one-frame rest clip, every other weight 0).
* ``docs/head_speech.jpg``: four frames of ``chatanyone animate chatanyone/samples/cmu_arctic_a0007.wav``
  (audio only, as the README's quick start runs it; the sample says "and you always want to see it in the
  superlative degree", ``cmu_arctic_a0007.txt``): the two vowel frames (pocketsphinx forced alignment of
  those words, :func:`motion.alignment.force_align`) with the widest inner-lip gap, and the frames of the
  sentence's lip consonants with the smallest: the /p/ of "superlative" (lips closed) and its /v/ (lower
  lip to the upper teeth). Each tile is labelled with the phone, the time, ``jawOpen``, ``mouthClose`` and
  the inner-lip gap in mm (the head's landmarks 62/66 displaced by the frame's 52 weights). The avatar shows
  what the model makes: where the model keeps the jaw open through a /p/, so does the picture.

Each tile is rendered by ``docs/render_head.py`` inside ``blender -b --factory-startup``.
"""
from __future__ import annotations

import argparse
import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image, ImageDraw, ImageFont

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from exporters import glb  # noqa: E402
from motion.alignment import force_align  # noqa: E402
from motion.clip import MotionClip  # noqa: E402
from motion.conventions import ARKIT_INDEX, ARKIT_NAMES  # noqa: E402

SAMPLE = REPO / "chatanyone" / "samples" / "cmu_arctic_a0007.wav"
TRANSCRIPT = SAMPLE.with_suffix(".txt").read_text().strip()   # the sample's words (ARCTIC's prompt)
LIP_CONSONANTS = {"P", "B", "M", "F", "V"}
VOWELS = {"AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH", "UW"}


def blender(args: list[str], exe: str) -> None:
    env = {"PATH": os.pathsep.join([str(Path(exe).parent), "/usr/bin", "/bin"]),
           "HOME": os.environ.get("HOME", "/tmp"), "LANG": "C.UTF-8", "OMP_NUM_THREADS": "1"}
    cmd = ["nice", "-n", "10", exe, "-b", "--factory-startup", "--python-exit-code", "2",
           "--python", str(REPO / "docs" / "render_head.py"), "--"] + args
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"blender failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")


def sheet(tiles: list[tuple[Path, str]], cols: int, size: int, out: Path) -> None:
    font = ImageFont.load_default(size=max(11, size // 16))
    rows = (len(tiles) + cols - 1) // cols
    lines = max(t[1].count("\n") + 1 for t in tiles)
    label_h = max(16, size // 12) * lines
    img = Image.new("RGB", (cols * size, rows * (size + label_h)), (30, 32, 36))
    draw = ImageDraw.Draw(img)
    for i, (path, label) in enumerate(tiles):
        x, y = (i % cols) * size, (i // cols) * (size + label_h)
        img.paste(Image.open(path).convert("RGB").resize((size, size), Image.LANCZOS), (x, y))
        draw.text((x + 4, y + size + 1), label, fill=(235, 235, 235), font=font)
    img.save(out, quality=85, optimize=True)
    print(f"wrote {out} ({out.stat().st_size / 1e3:.0f} kB, {len(tiles)} tiles)")


def lip_gap_mm(face: np.ndarray) -> np.ndarray:
    """Inner-lip gap (mm) per frame of ARKit weights ``face [T, 52]``: landmarks 62 (upper) and 66 (lower)."""
    h = glb.head_asset()
    lm = h["landmarks_ibug68"][[62, 66]].astype(np.int64)
    p = h["vertices"][lm].astype(np.float64)[None] + np.einsum("tk,kvc->tvc", face, h["targets"][:, lm])
    return np.linalg.norm(p[:, 0] - p[:, 1], axis=-1) * 1000


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--blender", default=shutil.which("blender") or "blender")
    ap.add_argument("--size", type=int, default=192, help="tile size in pixels")
    ap.add_argument("--work", type=Path, default=REPO / "runs" / "contact_sheets")
    ap.add_argument("--shapes-only", action="store_true", help="only the 52-shape sheet")
    ap.add_argument("--speech-only", action="store_true", help="only the speech sheet (after a new checkpoint)")
    ap.add_argument("--checkpoint", default=None, help="model for the speech sheet (default: the shipped one)")
    ap.add_argument("--mouth-scale", choices=("iphone", "native"), default="iphone",
                    help="chatanyone animate --mouth-scale for the speech sheet (default iphone, as users get it)")
    ap.add_argument("--speech-sheet", type=Path, default=REPO / "docs" / "head_speech.jpg",
                    help="where the speech sheet goes (default docs/head_speech.jpg)")
    args = ap.parse_args()
    work = args.work
    work.mkdir(parents=True, exist_ok=True)

    # 1. the 52 shapes and the neutral face
    if not args.speech_only:
        rest = glb.write(MotionClip.rest(1, 30.0), work / "rest.glb")
        blender([str(rest), str(work / "shapes"), "--shapes", "--size", str(2 * args.size)], args.blender)
        tiles = [(work / "shapes" / "neutral.png", "neutral")] + [(work / "shapes" / f"{n}.png", n) for n in ARKIT_NAMES]
        tiles.append((work / "shapes" / "jawOpen+mouthClose.png", "jawOpen+mouthClose"))
        sheet(tiles, 9, args.size, REPO / "docs" / "head_arkit52.jpg")
    if args.shapes_only:
        return 0

    # 2. the sample speech: vowels open, /p/ closed
    out = work / "speech"
    out.mkdir(exist_ok=True)
    for old in glob.glob(str(out / "*")):
        if os.path.isfile(old):
            os.remove(old)
    subprocess.run(["chatanyone", "animate", str(SAMPLE), "-o", str(out), "--formats", "npz,glb", "-q",
                    "--mouth-scale", args.mouth_scale]
                   + (["--checkpoint", args.checkpoint] if args.checkpoint else []), check=True)
    clip = MotionClip.load(next(Path(p) for p in glob.glob(str(out / "*.npz"))))
    speech_glb = next(Path(p) for p in glob.glob(str(out / "*.glb")))
    samples, sr = sf.read(SAMPLE, dtype="float32")
    phones = force_align(samples, TRANSCRIPT)
    gap = lip_gap_mm(clip.face)
    frames_of = lambda p: np.arange(int(np.ceil(p.start_s * clip.fps)),  # noqa: E731
                                    min(clip.num_frames, int(np.floor(p.end_s * clip.fps)) + 1))
    vowels = sorted(((gap[frames_of(p)].max(), p) for p in phones if p.phone in VOWELS and len(frames_of(p))),
                    key=lambda t: -t[0])[:2]
    picks = [(int(frames_of(p)[np.argmax(gap[frames_of(p)])]), p.phone) for _, p in vowels]
    picks += [(int(frames_of(p)[np.argmin(gap[frames_of(p)])]), p.phone) for p in phones
              if p.phone in LIP_CONSONANTS]
    picks.sort()
    blender([str(speech_glb), str(out / "frames"), "--frames", ",".join(str(f) for f, _ in picks),
             "--size", str(2 * args.size)], args.blender)
    tiles = []
    for f, ph in picks:
        label = (f"/{ph.lower()}/ at {f / clip.fps:.2f} s\njawOpen {clip.face[f, ARKIT_INDEX['jawOpen']]:.2f}, "
                 f"mouthClose {clip.face[f, ARKIT_INDEX['mouthClose']]:.2f}\ninner lips {gap[f]:.1f} mm apart")
        print(label)
        tiles.append((out / "frames" / f"frame_{f:04d}.png", label))
    sheet(tiles, 4, int(args.size * 1.25), args.speech_sheet)
    return 0


if __name__ == "__main__":
    sys.exit(main())
