"""Adapters for the inputs that are not tracked: BEAT2 SMPL-X mocap, FACEGOOD blendshape takes and Live Link
Face CSV, each with its same-stem ``.wav``, to a :class:`~motion.prepare.common.Prepared` clip at 30 fps."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from ..clip import MotionClip
from ..conventions import ARKIT_NAMES, JOINT_INDEX, NUM_ARKIT, NUM_JOINTS, arkit_upper_camel
from .common import (FPS, NO_SMOOTHING, Prepared, PrepareError, _audio_frames, _beside_wav, _find_upwards,
                     _identity, _load_wav, _samples)


def prepare_beat2(path: Path) -> Prepared:
    """A BEAT2 ``*.smplxflame30.npz`` with its ``.wav`` (root locked; see :mod:`motion.prepare`).

    Raises:
        PrepareError: the wav is missing or the npz has no ``poses [T, 165]``.
    """
    from scipy.spatial.transform import Rotation

    from ..datasets import BEAT2_REAL_JOINTS, beat2_rotations

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
    from ..datasets import _load_names116, facegood_to_arkit

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
    """A Live Link Face CSV (:func:`motion.livelink.parse_livelink_csv`, fps from its timecodes) with a
    same-stem ``.wav``; head and eye angles go in where they are real (:func:`motion.livelink.take_rotations`);
    resampled to 30 fps.

    Raises:
        PrepareError: unreadable CSV, missing ``Timecode`` or ARKit columns, no wav, no frames, non-numeric cells.
    """
    from ..livelink import parse_livelink_csv, take_rotations

    try:
        take = parse_livelink_csv(path)
    except ValueError as e:  # motion.errors.ClipError
        raise PrepareError(str(e)) from None
    header = {c.lower() for c in take.columns}
    need = ["Timecode"] + [arkit_upper_camel(n) for n in ARKIT_NAMES]
    missing = [n for n in need if n.lower() not in header]
    if missing:
        raise PrepareError(f"CSV lacks {len(missing)} required column(s): {', '.join(missing[:6])}"
                           + (" ..." if len(missing) > 6 else ""))
    wav = _beside_wav(path, path.stem)
    if wav is None:
        raise PrepareError(f"no audio: {path.stem}.wav not found beside it")
    rot, jv = take_rotations(take)
    clip = MotionClip(take.fps, take.face, rot, None, {"source_fps": take.fps}).resample(FPS)
    audio = _load_wav(wav)
    T = min(clip.num_frames, _audio_frames(len(audio)))
    clip = clip.slice(0, T)
    clip.meta.pop("audio_offset_s", None)
    entry = {"kind": "livelink", "audio_source_original": str(wav),
             "qa": {"tracking_rate": 1.0, "dropped_frames": 0, "sync_signal": "jawOpen"}, "smoothing": NO_SMOOTHING}
    return Prepared(clip, audio[: _samples(T)], np.ones((T, NUM_ARKIT), bool),
                    np.repeat(jv[None], T, 0), entry)
