"""Benchmark of ``chatanyone render``'s engines: speed at 512x768, self-reenactment quality, lip sync.

1. **Speed** (this machine; the neural engine on ``--device``, CPU by default): frames per second of each
   engine alone (warp; neural with the installed or ``--checkpoint`` generator, batches of 8 frames) and with
   H.264 encoding (PyAV, libx264 ``veryfast``), on a portrait from ../shared/data/portraits driven by the
   sample speech's motion; median of ``--runs`` runs. Motion generation, face detection and model loading
   are not timed (done once before).
2. **Self-reenactment** on a video held out from the keypoint model's fit and from the generator's training
   (default WDA_KatieHill_000), in the render framing: every frame is cropped to the 2:3 box around the
   clip's mean face centre (:func:`generator.driving.crop_box`) and scaled to 512 x 768. Source = the first
   frame; driving = the video's own tracked blendshapes and head rotation (relative to the first frame) ->
   keypoints; each rendered frame is compared with the real one (PSNR dB, SSIM on luma), over the whole
   frame and over the face box (the tracked face oval's bounding box, +10 %). Medians over frames. Rows:
   copy the source frame (baseline); each engine driven by our keypoint model as ``render`` does (head
   rotation, no head translation, which a MotionClip does not carry); the same plus the tracked 2D head
   translation; the engine driven by the real tracked landmarks (oracle keypoints). Also the mean 2D
   keypoint error (pixels) of each driving against the tracked landmarks.
3. **Lip sync** (``--lip-sync``): each engine renders the sample speech on a portrait; the mouth opening is
   measured back with the face tracker and correlated with the audio envelope (:func:`generator.metrics.
   lip_sync_r`); a frozen portrait is the baseline.

Run: ``python benchmarks/render_fps.py [--runs 3] [--video PATH] [--portrait PATH] [--checkpoint PATH]
[--device cpu|cuda] [--lip-sync]``. Prints markdown tables.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DATA = REPO.parent / "shared" / "data"
SPEECH = REPO / "chatanyone" / "samples" / "cmu_arctic_a0007.wav"


def _engines(portrait, model, checkpoint: Path | None, device: str):
    """``name -> callable(face, head, rotations) -> list of frames`` for the available engines."""
    from generator.neural import NeuralEngine
    from generator.warp import WarpEngine

    def warp(face, head, rot):
        eng = WarpEngine(portrait, model)
        drive = eng.drive(face, head)
        return (eng.render(drive, t) for t in range(len(face)))

    out = {"warp": warp}
    if checkpoint is not None:
        eng = NeuralEngine(portrait, model, checkpoint, device=device)

        def neural(face, head, rot):
            return eng.frames(face, head, rot)
        out["neural"] = neural
    return out


def speed(portrait_path: Path, runs: int, checkpoint: Path | None, device: str) -> list[tuple[str, float, float]]:
    from generator.driving import load_portrait
    from generator.face_keypoints import FaceKeypointModel
    from generator.render import RenderConfig, driving_from_clip, encode_mp4, load_motion

    clip, audio = load_motion(SPEECH, seed=0)
    face, head = driving_from_clip(clip)
    portrait = load_portrait(portrait_path)
    model = FaceKeypointModel.load()
    T = len(face)
    rows = []
    for name, fn in _engines(portrait, model, checkpoint, device).items():
        eng_fps, enc_fps = [], []
        for _ in range(runs):
            t0 = time.perf_counter()
            for _f in fn(face, head, clip.rotations):
                pass
            eng_fps.append(T / (time.perf_counter() - t0))
            with tempfile.TemporaryDirectory() as d:
                t0 = time.perf_counter()
                encode_mp4(fn(face, head, clip.rotations), T, Path(d) / "x.mp4", audio=audio, config=RenderConfig())
                enc_fps.append(T / (time.perf_counter() - t0))
        rows.append((f"{name} engine (frames only)", float(np.median(eng_fps)), float(np.min(eng_fps))))
        rows.append((f"{name} engine + H.264/AAC encode", float(np.median(enc_fps)), float(np.min(enc_fps))))
    return rows


def reenactment(video: Path, max_frames: int, checkpoint: Path | None, device: str):
    import cv2
    from scipy.spatial.transform import Rotation

    from generator.driving import DrivingFrames, Portrait, _fit_affine, crop_box
    from generator.face_keypoints import (FACE_OVAL, RIGID_POINTS, FaceKeypointModel, FaceObservation,
                                          track_face_video)
    from generator.metrics import psnr, ssim
    from generator.neural import NeuralEngine
    from generator.warp import WarpEngine

    W, H = 512, 768
    tr = track_face_video(video, max_frames=max_frames, keep_frames=True)
    ok = np.flatnonzero(tr.ok)
    c = tr.landmarks[ok][:, :, :2].mean((0, 1))
    x0, y0, bw, bh = crop_box(tr.size[0], tr.size[1], (float(c[0]), float(c[1])), W / H)
    sc = W / bw
    frames = np.stack([cv2.resize(f[y0:y0 + bh, x0:x0 + bw], (W, H), interpolation=cv2.INTER_CUBIC if sc > 1
                                  else cv2.INTER_AREA) for f in tr.frames])
    lm = tr.landmarks.astype(np.float64).copy()
    lm[..., 0] = (lm[..., 0] - x0) * sc
    lm[..., 1] = (lm[..., 1] - y0) * sc
    lm[..., 2] *= sc
    s = ok[0]
    src = FaceObservation(lm[s].astype(np.float32), tr.blendshapes[s], tr.head[s])
    portrait = Portrait(frames[s], src, (x0, y0, bw, bh), video)
    model = FaceKeypointModel.load()
    held = video.stem in model.info.get("holdout", {})
    warp_eng = WarpEngine(portrait, model)
    idx_f = ok[ok > s]
    R0 = Rotation.from_matrix(tr.head[s])
    head = (Rotation.from_matrix(tr.head[idx_f]) * R0.inv()).as_matrix()
    drive = warp_eng.drive(tr.blendshapes[idx_f], head)
    rig = model.local(RIGID_POINTS)
    shift = lm[idx_f][:, list(RIGID_POINTS), :2].mean(1) - drive.points[:, rig].mean(1)
    drive_t = DrivingFrames(drive.points + shift[:, None].astype(np.float32), drive.head_affine.copy())
    drive_t.head_affine[:, :, 2] += shift.astype(np.float32)
    idx = model.indices
    pts = lm[idx_f][:, idx, :2]
    aff = np.stack([_fit_affine(warp_eng.driver.src2, p) for p in pts])
    oracle = DrivingFrames(pts.astype(np.float32), aff.astype(np.float32))
    drivings = {"keypoint model (as render: head rotation only)": drive,
                "keypoint model + tracked head translation": drive_t, "tracked landmarks (oracle keypoints)": oracle}

    def box(l):
        o = l[list(FACE_OVAL), :2]
        lo, hi = o.min(0), o.max(0)
        pad = 0.1 * (hi - lo)
        a0, b0 = np.maximum(lo - pad, 0).astype(int)
        a1, b1 = np.minimum(hi + pad, [W, H]).astype(int)
        return slice(b0, b1), slice(a0, a1)

    real = frames[idx_f]
    boxes = [box(lm[t]) for t in idx_f]

    def score(imgs) -> dict:
        v = np.array([(psnr(a, b), ssim(a, b), psnr(a[bx], b[bx]), ssim(a[bx], b[bx]))
                      for a, b, bx in zip(imgs, real, boxes)])
        med = np.median(v, 0)
        return dict(zip(("psnr", "ssim", "face_psnr", "face_ssim"), med))

    real_kp = lm[idx_f][:, idx, :2]
    kp_err = lambda P: float(np.linalg.norm(P - real_kp, axis=-1).mean())  # noqa: E731
    rows = [("copy source frame (baseline)", kp_err(warp_eng.driver.src2[None]), score([portrait.image] * len(idx_f)))]
    for name, dr in drivings.items():
        rows.append((f"warp, {name}", kp_err(dr.points), score([warp_eng.render(dr, k) for k in range(len(idx_f))])))
    if checkpoint is not None:
        neural = NeuralEngine(portrait, model, checkpoint, device=device)
        zeros = np.zeros((neural.batch_size, 2, H, W), np.uint8)
        for name, dr in drivings.items():
            imgs = []
            for b0 in range(0, len(idx_f), neural.batch_size):
                p = dr.points[b0:b0 + neural.batch_size]
                imgs.extend(neural.render_batch(p, zeros[:len(p)]))
            rows.append((f"neural, {name}", kp_err(dr.points), score(imgs)))
    return rows, len(idx_f), held


def lip_sync(portrait_path: Path, checkpoint: Path | None, device: str) -> list[tuple[str, float, float, int]]:
    from generator.driving import load_portrait
    from generator.face_keypoints import FaceKeypointModel
    from generator.metrics import lip_sync_r, mouth_opening
    from generator.render import driving_from_clip, load_motion

    clip, audio = load_motion(SPEECH, seed=0)
    face, head = driving_from_clip(clip)
    portrait = load_portrait(portrait_path)
    model = FaceKeypointModel.load()
    rows = [("frozen portrait (baseline)",) + lip_sync_r(mouth_opening([portrait.image] * len(face)), audio)]
    for name, fn in _engines(portrait, model, checkpoint, device).items():
        rows.append((name,) + lip_sync_r(mouth_opening(list(fn(face, head, clip.rotations))), audio))
    return rows


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("GLOG_minloglevel", "2")
    from generator.render import neural_checkpoint

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--portrait", default=str(DATA / "portraits" / "echomimic_flux_refs" / "0035.png"))
    ap.add_argument("--video", default=str(DATA / "videos" / "sadtalker" / "WDA_KatieHill_000.mp4"))
    ap.add_argument("--max-frames", type=int, default=200)
    ap.add_argument("--checkpoint", default=None, help="neural generator (default: the installed one)")
    ap.add_argument("--device", default="cpu", help="neural engine device (default cpu)")
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--skip-reenactment", action="store_true")
    ap.add_argument("--lip-sync", action="store_true", help="also measure lip sync of both engines")
    a = ap.parse_args(argv)
    ckpt = Path(a.checkpoint) if a.checkpoint else neural_checkpoint()
    import torch

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs, "
          f"torch threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.1f} at start; "
          f"neural checkpoint: {ckpt or 'none'}; device {a.device}")
    if not a.skip_speed:
        rows = speed(Path(a.portrait), a.runs, ckpt, a.device)
        print(f"\n## Speed at 512x768 ({Path(a.portrait).name}, {SPEECH.name}, median of {a.runs} runs)\n")
        print("| engine | frames/s (median) | frames/s (worst) |\n|---|---|---|")
        for name, med, worst in rows:
            print(f"| {name} | {med:.1f} | {worst:.1f} |")
        if ckpt is None:
            print("| neural | no checkpoint | - |")
    if not a.skip_reenactment:
        rows, n, held = reenactment(Path(a.video), a.max_frames, ckpt, a.device)
        print(f"\n## Self-reenactment on {Path(a.video).name} at 512x768 ({n} frames after the source frame; "
              f"{'held out from' if held else 'NOT held out from'} the keypoint model's fit; medians)\n")
        print("| engine, driving | keypoint error px | PSNR dB | SSIM | face PSNR dB | face SSIM |\n"
              "|---|---|---|---|---|---|")
        for name, err, r in rows:
            print(f"| {name} | {err:.2f} | {r['psnr']:.2f} | {r['ssim']:.4f} | {r['face_psnr']:.2f} | "
                  f"{r['face_ssim']:.4f} |")
    if a.lip_sync:
        rows = lip_sync(Path(a.portrait), ckpt, a.device)
        print(f"\n## Lip sync ({Path(a.portrait).name}, {SPEECH.name}): mouth opening measured back vs audio "
              "log energy\n")
        print("| engine | r at lag 0 | best r | best lag (frames) |\n|---|---|---|---|")
        for name, r0, r, lag in rows:
            print(f"| {name} | {r0:.3f} | {r:.3f} | {lag} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
