"""Benchmark of ``chatanyone render``'s warp engine: speed at 512x768 and self-reenactment quality.

1. **Speed** (this CPU): frames per second of the warp engine alone and with H.264 encoding (PyAV,
   libx264 ``veryfast``), on a portrait from ../shared/data/portraits driven by the sample speech's motion;
   median of ``--runs`` runs. Motion generation and face detection are not timed (done once before).
2. **Self-reenactment** on a video held out from the keypoint model's fit (default WDA_KatieHill_000):
   source = its first frame; driving = the video's own tracked blendshapes and head rotation (relative to
   the first frame) -> keypoints -> warp; each rendered frame is compared with the real one (PSNR dB, SSIM
   on luma), over the whole frame and over the face box (bounding box of the tracked face oval, +10 %).
   Rows: copy the source frame (baseline); warp driven by our keypoint model (what ``render`` does: head
   rotation, no head translation, which a MotionClip does not carry); the same plus the tracked 2D head
   translation; warp driven by the real tracked landmarks (the warp's upper bound with perfect keypoints).
   Also the mean 2D keypoint error (pixels) of each driving against the tracked landmarks.
   The neural engine has no checkpoint in this version and has no row.

Run: ``python benchmarks/render_fps.py [--runs 3] [--video PATH] [--portrait PATH]``. Prints markdown tables.
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


def speed(portrait_path: Path, runs: int) -> list[tuple[str, float, float]]:
    from generator.driving import load_portrait
    from generator.face_keypoints import FaceKeypointModel
    from generator.render import RenderConfig, driving_from_clip, encode_mp4, load_motion
    from generator.warp import WarpEngine

    clip, audio = load_motion(SPEECH, seed=0)
    face, head = driving_from_clip(clip)
    portrait = load_portrait(portrait_path)
    model = FaceKeypointModel.load()
    T = len(face)
    eng_fps, enc_fps = [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        eng = WarpEngine(portrait, model)
        drive = eng.drive(face, head)
        frames = [eng.render(drive, t) for t in range(T)]
        eng_fps.append(T / (time.perf_counter() - t0))
        with tempfile.TemporaryDirectory() as d:
            t0 = time.perf_counter()
            eng = WarpEngine(portrait, model)
            drive = eng.drive(face, head)
            encode_mp4((eng.render(drive, t) for t in range(T)), T, Path(d) / "x.mp4", audio=audio,
                       config=RenderConfig())
            enc_fps.append(T / (time.perf_counter() - t0))
        del frames
    return [("warp engine (frames only)", float(np.median(eng_fps)), float(np.min(eng_fps))),
            ("warp engine + H.264/AAC encode", float(np.median(enc_fps)), float(np.min(enc_fps)))]


def reenactment(video: Path, max_frames: int) -> tuple[list[tuple[str, dict]], int]:
    from scipy.spatial.transform import Rotation

    from generator.driving import DrivingFrames, Portrait, _fit_affine
    from generator.face_keypoints import FACE_OVAL, FaceKeypointModel, FaceObservation, track_face_video
    from generator.metrics import psnr, ssim
    from generator.warp import WarpEngine

    tr = track_face_video(video, max_frames=max_frames, keep_frames=True)
    ok = np.flatnonzero(tr.ok)
    s = ok[0]
    src = FaceObservation(tr.landmarks[s], tr.blendshapes[s], tr.head[s])
    portrait = Portrait(tr.frames[s], src, (0, 0, tr.size[0], tr.size[1]), video)
    model = FaceKeypointModel.load()
    held = model.info.get("holdout", {})
    eng = WarpEngine(portrait, model)
    frames_idx = ok[ok > s]
    R0 = Rotation.from_matrix(tr.head[s])
    head = (Rotation.from_matrix(tr.head[frames_idx]) * R0.inv()).as_matrix()
    drive = eng.drive(tr.blendshapes[frames_idx], head)
    # the same plus the head's tracked 2D translation (MotionClips have no head translation: root locked,
    # spine not used by the warp): shift so the rigid points' centroid matches the tracked one
    from generator.face_keypoints import RIGID_POINTS
    rig = model.local(RIGID_POINTS)
    shift = tr.landmarks[frames_idx][:, list(RIGID_POINTS), :2].mean(1) - drive.points[:, rig].mean(1)
    drive_t = DrivingFrames(drive.points + shift[:, None].astype(np.float32), drive.head_affine.copy())
    drive_t.head_affine[:, :, 2] += shift.astype(np.float32)
    # oracle driving: the tracked landmarks themselves (same keypoint subset), head affine from them
    idx = model.indices
    pts = tr.landmarks[frames_idx][:, idx, :2]
    aff = np.stack([_fit_affine(eng.driver.src2, p) for p in pts.astype(np.float64)])
    oracle = DrivingFrames(pts.astype(np.float32), aff.astype(np.float32))

    def box(lm):
        o = lm[list(FACE_OVAL), :2]
        lo, hi = o.min(0), o.max(0)
        pad = 0.1 * (hi - lo)
        x0, y0 = np.maximum(lo - pad, 0).astype(int)
        x1, y1 = np.minimum(hi + pad, [tr.size[0], tr.size[1]]).astype(int)
        return slice(y0, y1), slice(x0, x1)

    names = ["copy source frame (baseline)", "warp, keypoint model (as render: head rotation only)",
             "warp, keypoint model + tracked head translation", "warp, tracked landmarks (oracle keypoints)"]
    rows = {n: [] for n in names}
    real_kp = tr.landmarks[frames_idx][:, idx, :2]
    kp_err = {n: float(np.linalg.norm(P - real_kp, axis=-1).mean()) for n, P in
              zip(names, (eng.driver.src2[None], drive.points, drive_t.points, oracle.points))}
    for k, t in enumerate(frames_idx):
        real = tr.frames[t]
        b = box(tr.landmarks[t])
        outs = dict(zip(names, (portrait.image, eng.render(drive, k), eng.render(drive_t, k), eng.render(oracle, k))))
        for name, img in outs.items():
            rows[name].append((psnr(img, real), ssim(img, real), psnr(img[b], real[b]), ssim(img[b], real[b])))
    out = []
    for name, v in rows.items():
        a = np.array(v)
        out.append((name, {"kp_err": kp_err[name], "psnr": a[:, 0].mean(), "ssim": a[:, 1].mean(), "face_psnr": a[:, 2].mean(),
                           "face_ssim": a[:, 3].mean()}))
    return out, len(frames_idx), video.stem in held


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("GLOG_minloglevel", "2")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--portrait", default=str(DATA / "portraits" / "echomimic_flux_refs" / "0035.png"))
    ap.add_argument("--video", default=str(DATA / "videos" / "sadtalker" / "WDA_KatieHill_000.mp4"))
    ap.add_argument("--max-frames", type=int, default=200)
    ap.add_argument("--skip-speed", action="store_true")
    a = ap.parse_args(argv)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs, "
          f"load average {os.getloadavg()[0]:.1f} at start")
    if not a.skip_speed:
        rows = speed(Path(a.portrait), a.runs)
        print(f"\n## Speed at 512x768 ({Path(a.portrait).name}, {SPEECH.name}, median of {a.runs} runs)\n")
        print("| engine | frames/s (median) | frames/s (worst) |\n|---|---|---|")
        for name, med, worst in rows:
            print(f"| {name} | {med:.1f} | {worst:.1f} |")
        print("| neural | no checkpoint in this version | - |")
    rows, n, held = reenactment(Path(a.video), a.max_frames)
    print(f"\n## Self-reenactment on {Path(a.video).name} ({n} frames after the source frame; "
          f"{'held out from' if held else 'NOT held out from'} the keypoint model's fit)\n")
    print("| driving | keypoint error px | PSNR dB | SSIM | face PSNR dB | face SSIM |\n|---|---|---|---|---|---|")
    for name, r in rows:
        print(f"| {name} | {r['kp_err']:.2f} | {r['psnr']:.2f} | {r['ssim']:.4f} | {r['face_psnr']:.2f} | {r['face_ssim']:.4f} |")
    print("| neural engine | no checkpoint in this version | | | | |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
