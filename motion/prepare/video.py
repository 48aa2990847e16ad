"""Talking videos -> :class:`~motion.prepare.common.Prepared` clips: the audio (the container's first audio
stream, else a same-stem ``.wav``), MediaPipe tracking (:mod:`motion.tracking`), the 30 fps timeline,
camera correction, smoothing and the landmark -> joint rotation fit (:mod:`motion.landmark_ik`); see
:mod:`motion.prepare` for every step."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..clip import MotionClip
from ..conventions import ARKIT_INDEX, JOINT_INDEX, NUM_ARKIT
from ..tracking import MIN_VISIBILITY, MP_POSE, Landmarkers, TrackingError, track_video
from .common import (FPS, MIN_FACE_RATE, SAMPLE_RATE, SMOOTHING, Prepared, PrepareError, _audio_frames,
                     _beside_wav, _load_wav, _samples)
from .signals import resample_valid, smooth_runs

#: Pose landmarks whose resampled positions give the arm bones and the torso (:data:`motion.tracking.MP_POSE`).
BODY_POINTS = ("left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
               "left_hip", "right_hip")


def read_video_audio(path: Path) -> tuple[np.ndarray, float] | None:
    """The first audio stream of a video as 16 kHz mono float32 and its start time (seconds), or None.

    Raises:
        PrepareError: the stream exists but cannot be decoded.
    """
    import av

    from ..audio import prepare_audio
    from ..errors import AudioError

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
                  landmarkers: Landmarkers | None = None) -> Prepared:
    """Track one talking video and fit the skeleton (see :mod:`motion.prepare` for every step).

    Raises:
        PrepareError: no audio (inside or beside), undecodable file, or the face is tracked in fewer than
            ``min_face_rate`` of the frames.
    """
    from scipy.spatial.transform import Rotation

    from ..conventions import NECK_SHARE
    from ..face_idle import DEFAULT_GAZE_SCALE, gaze_from_face, gaze_to_quat
    from ..landmark_ik import (EXT_INDEX, NUM_EXT, fit_rotations, hand_bone_dirs, split_rotation,
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

    own = landmarkers is None
    try:
        lm = Landmarkers(models_dir, pose=pose, hands=hands) if own else landmarkers
        try:
            raw = track_video(path, lm, threads=1, progress=progress)
        finally:
            if own:
                lm.close()
    except TrackingError as e:
        raise PrepareError(str(e)) from None
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
    for n in BODY_POINTS:
        i = MP_POSE[n]
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
