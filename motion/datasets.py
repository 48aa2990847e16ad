"""Dataset adapters: the real recordings in ``../shared/data`` as :class:`TrainingClip` objects.

Every adapter returns 30 fps :class:`~motion.clip.MotionClip` objects in the project's conventions
(DESIGN.md, "Conventions every part speaks"), the take's 16 kHz mono float32 audio (or ``None``), and two
masks saying which face channels and which joints carry *real* data in that dataset (the trainer only
computes losses on masked-in channels).

Datasets (see ``../shared/data/README.md`` for sources and licences):

* **FACEGOOD** (:func:`load_facegood`): one speaker, 7 paired takes, 116 FACEGOOD rig weights per frame at
  30 fps in [0, 1] (measured: min 0.0, max 1.0; values are clipped to [0, 1] anyway). Mapped to ARKit-52
  with the authors' ``blendshape2ARKit.xlsx`` (parsed at load time); only its 27 jaw/mouth rows are marked
  ``valid`` and only those are in ``face_mask``. Two cells reference names that are not in
  ``bs_names_116.npy``: ``eye_upLidRaise_l/_r`` (the rig has ``eye_upperLidRaise_l/_r``) and ``cheek_up``
  matches ``cheek_UP`` case-insensitively. Both belong to invalid rows, so they do not matter for
  training; :func:`facegood_to_arkit` resolves case-insensitively and ignores names it cannot find (see
  :func:`facegood_mapping`, which also reports them). No body: rotations are identity and ``joint_mask`` is
  all False.
* **BEAT2** (:func:`load_beat2`): SMPL-X 2020 axis-angle poses at 30 fps for all 55 joints. See
  :func:`load_beat2` for the root and hand conventions.
* **NeuroSync Live Link capture** (:func:`load_neurosync`): an iPhone Live Link Face CSV at 60 fps, no
  audio; resampled to 30 fps. Blendshapes mapped by column *name*; the eye yaw/pitch/roll columns go to the
  eye joints. Head yaw/pitch/roll columns are all zero in this capture, so the head joints are not real.

Errors: a missing data folder or file raises :class:`FileNotFoundError`; a malformed file raises
:class:`ValueError`.
"""
from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .clip import MotionClip
from .conventions import (ARKIT_INDEX, ARKIT_NAMES, HAND_JOINTS, JOINT_INDEX, MODEL_FPS, NUM_ARKIT, NUM_JOINTS,
                          SAMPLE_RATE)
# The Live Link Face reader moved to motion.livelink; these names stay importable from here.
from .livelink import (LIVELINK_EYE_COLUMNS, LIVELINK_HEAD_COLUMNS, LIVELINK_STANDARD_RATES,  # noqa: F401
                       LIVELINK_TIMECODE, LiveLinkCSV, apply_livelink_head_eyes, parse_livelink_csv,
                       read_livelink_csv, take_rotations)
from .rotations import axis_angle_to_quat

FPS = MODEL_FPS

LICENCE_FACEGOOD = "MIT (FACEGOOD)"
LICENCE_BEAT2 = "CC BY-NC 4.0 (BEAT2)"
LICENCE_NEUROSYNC = "NeuroSync custom licence: MIT below $1M revenue (AnimaVR)"

#: Joints with real BEAT2 data used for training (upper body + head + all 30 finger joints).
BEAT2_REAL_JOINTS: tuple[int, ...] = tuple(JOINT_INDEX[n] for n in (
    "spine1", "spine2", "spine3", "neck", "head", "left_collar", "right_collar",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
)) + HAND_JOINTS


@dataclass
class TrainingClip:
    """One training take.

    Attributes:
        name: ``"<dataset>/<take>"``, e.g. ``"facegood/1114_2_01"``.
        dataset: ``"facegood"``, ``"beat2"`` or ``"neurosync"``.
        audio: ``[N]`` float32 mono at 16 kHz, aligned with frame 0 and trimmed to the clip's duration
            (at most one frame's worth of samples longer or shorter); ``None`` when the take has no audio.
        clip: the motion at 30 fps (``meta`` holds ``dataset``, ``source`` and ``licence``).
        face_mask: ``[52]`` bool, ARKit channels that are real in this dataset.
        joint_mask: ``[55]`` bool, joints whose rotations are real.
        licence: human-readable licence of the source data.
        face_valid: optional ``[T, 52]`` bool per-frame validity (prepared clips, :func:`load_prepared`);
            ``None``: ``face_mask`` holds for every frame.
        joint_valid: optional ``[T, 55]`` bool per-frame validity; ``None``: ``joint_mask`` holds for every frame.
    """

    name: str
    dataset: str
    audio: np.ndarray | None
    clip: MotionClip
    face_mask: np.ndarray
    joint_mask: np.ndarray
    licence: str
    face_valid: np.ndarray | None = None
    joint_valid: np.ndarray | None = None


# --------------------------------------------------------------------------------------------------
def data_root() -> Path:
    """The data folder: ``$CHATANYONE_DATA`` if set, else ``../shared/data`` next to the repository."""
    env = os.environ.get("CHATANYONE_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "shared" / "data"


def _root(root) -> Path:
    r = Path(root) if root is not None else data_root()
    if not r.is_dir():
        raise FileNotFoundError(f"data folder {r} does not exist (set CHATANYONE_DATA)")
    return r


def _read_audio(path: Path) -> np.ndarray:
    """Read a wav as float32 mono 16 kHz (resampling with scipy if needed)."""
    import soundfile as sf

    x, sr = sf.read(str(path), dtype="float32", always_2d=True)
    x = x.mean(axis=1)
    if sr != SAMPLE_RATE:
        from math import gcd

        from scipy.signal import resample_poly

        g = gcd(int(sr), SAMPLE_RATE)
        x = resample_poly(x, SAMPLE_RATE // g, int(sr) // g).astype(np.float32)
    return np.ascontiguousarray(x, dtype=np.float32)


def _identity_rotations(T: int) -> np.ndarray:
    rot = np.zeros((T, NUM_JOINTS, 4), np.float32)
    rot[..., 3] = 1.0
    return rot


def _samples_for(frames: int, fps: float = FPS) -> int:
    return int(round(frames * SAMPLE_RATE / fps))


# --------------------------------------------------------------------------------------------------
# FACEGOOD
# --------------------------------------------------------------------------------------------------
@dataclass
class FacegoodMapping:
    """Parsed ``blendshape2ARKit.xlsx``.

    Attributes:
        sources: ARKit name -> list of FACEGOOD names combined with ``max`` (empty: no source).
        valid: ARKit name -> the sheet's status is ``valid``.
        missing: FACEGOOD names referenced by the sheet but absent from ``bs_names_116.npy``
            (after case-insensitive matching).
    """

    sources: dict[str, list[str]]
    valid: dict[str, bool]
    missing: list[str]


def _norm_arkit(name: str) -> str | None:
    lower = {n.lower(): n for n in ARKIT_NAMES}
    return lower.get(name.strip().lower())  # handles the sheet's "browDownleft"


def read_facegood_xlsx(path) -> tuple[dict[str, list[str]], dict[str, bool]]:
    """Parse FACEGOOD's ``blendshape2ARKit.xlsx``.

    Rows: ARKit name (column A), FACEGOOD expression (column C: a name or ``max(a,b,...)``), status
    (column G: ``valid``/``Invalid``). ARKit names are matched case-insensitively.

    Returns:
        ``(sources, valid)``, both keyed by all 52 ARKit names.
    Raises:
        FileNotFoundError: no such file. ValueError: the sheet does not list all 52 ARKit channels.
    """
    import openpyxl

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    ws = openpyxl.load_workbook(path, read_only=True, data_only=True).worksheets[0]
    sources: dict[str, list[str]] = {}
    valid: dict[str, bool] = {}
    for row in ws.iter_rows(values_only=True):
        if not row or not isinstance(row[0], str):
            continue
        ark = _norm_arkit(row[0])
        if ark is None:
            continue
        expr = row[2] if len(row) > 2 and isinstance(row[2], str) else ""
        m = re.fullmatch(r"\s*max\((.*)\)\s*", expr)
        names = [s.strip() for s in (m.group(1) if m else expr).split(",") if s.strip()]
        status = str(row[6]).strip().lower() if len(row) > 6 and row[6] is not None else ""
        sources[ark] = names
        valid[ark] = status == "valid"
    missing = [n for n in ARKIT_NAMES if n not in sources]
    if missing:
        raise ValueError(f"{path}: no row for ARKit channels {missing[:5]}")
    return sources, valid


def facegood_mapping(xlsx_path, names116) -> FacegoodMapping:
    """Resolve the xlsx against the 116 rig names (case-insensitive); see :class:`FacegoodMapping`."""
    sources, valid = read_facegood_xlsx(xlsx_path)
    lower = {str(n).lower() for n in names116}
    missing = sorted({s for v in sources.values() for s in v if s.lower() not in lower})
    return FacegoodMapping(sources, valid, missing)


def _default_facegood_xlsx() -> Path:
    return data_root() / "facegood" / "blendshape2ARKit.xlsx"


def facegood_to_arkit(bs116: np.ndarray, names116, xlsx_path=None) -> tuple[np.ndarray, np.ndarray]:
    """FACEGOOD rig weights -> ARKit-52.

    Args:
        bs116: ``[T, 116]`` FACEGOOD weights (any float dtype; clipped to [0, 1]).
        names116: the 116 column names (``facegood/bs_names_116.npy``), in ``bs116``'s column order.
        xlsx_path: the mapping sheet; default ``data_root()/facegood/blendshape2ARKit.xlsx``.
    Returns:
        ``(face [T, 52] float32 in [0, 1], face_mask [52] bool)``: each ARKit channel is the max of its
        listed FACEGOOD shapes (names matched case-insensitively; unknown names skipped, channels with no
        known source are 0); the mask is True for the sheet's ``valid`` rows (the 27 jaw/mouth channels).
    Raises:
        ValueError: ``bs116`` is not ``[T, len(names116)]``.
    """
    bs116 = np.asarray(bs116, dtype=np.float64)
    names = [str(n) for n in names116]
    if bs116.ndim != 2 or bs116.shape[1] != len(names):
        raise ValueError(f"bs116 must be [T, {len(names)}], got {list(bs116.shape)}")
    m = facegood_mapping(xlsx_path or _default_facegood_xlsx(), names)
    col = {n.lower(): i for i, n in enumerate(names)}
    bs = np.clip(bs116, 0.0, 1.0)
    face = np.zeros((bs.shape[0], NUM_ARKIT), np.float32)
    mask = np.zeros(NUM_ARKIT, bool)
    for ark, srcs in m.sources.items():
        idx = [col[s.lower()] for s in srcs if s.lower() in col]
        k = ARKIT_INDEX[ark]
        if idx:
            face[:, k] = bs[:, idx].max(axis=1)
        mask[k] = m.valid[ark]
    return face, mask


def _load_names116(path: Path) -> list[str]:
    with warnings.catch_warnings():  # "created on Python 2" header warning
        warnings.simplefilter("ignore")
        return [str(n) for n in np.load(path, allow_pickle=False)]


def load_facegood(root=None) -> list[TrainingClip]:
    """FACEGOOD paired takes (``facegood/paired/*.wav`` + ``*.bs116.npy``), 30 fps.

    Audio and motion are aligned from the start and both trimmed to the shorter (motion frames at 30 fps
    vs ``len(wav) / 16000``; the wavs are 0-30 ms longer). Face channels outside the 27 valid jaw/mouth
    channels are zero and masked out; rotations are identity and ``joint_mask`` is all False.

    Raises:
        FileNotFoundError: the data folder, names file, mapping sheet or a take's wav is missing.
    """
    r = _root(root) / "facegood"
    names = _load_names116(r / "bs_names_116.npy")
    xlsx = r / "blendshape2ARKit.xlsx"
    out = []
    for npy in sorted((r / "paired").glob("*.bs116.npy")):
        take = npy.name[: -len(".bs116.npy")]
        wav = npy.with_name(take + ".wav")
        if not wav.is_file():
            raise FileNotFoundError(f"{wav}: no such file (paired with {npy.name})")
        with warnings.catch_warnings():  # "created on Python 2" header warning
            warnings.simplefilter("ignore")
            bs = np.load(npy, allow_pickle=False)
        face, fmask = facegood_to_arkit(bs, names, xlsx)
        audio = _read_audio(wav)
        T = min(face.shape[0], int(np.floor(len(audio) * FPS / SAMPLE_RATE + 1e-6)))
        face = face[:T]
        audio = audio[: _samples_for(T)]
        clip = MotionClip(FPS, face, _identity_rotations(T), None,
                          {"dataset": "facegood", "source": f"facegood/paired/{take}",
                           "licence": LICENCE_FACEGOOD, "audio_source": str(wav), "audio_offset_s": 0.0})
        out.append(TrainingClip(f"facegood/{take}", "facegood", audio, clip, fmask,
                                np.zeros(NUM_JOINTS, bool), LICENCE_FACEGOOD))
    if not out:
        raise FileNotFoundError(f"no *.bs116.npy takes in {r / 'paired'}")
    return out


# --------------------------------------------------------------------------------------------------
# BEAT2
# --------------------------------------------------------------------------------------------------
def beat2_rotations(poses: np.ndarray, lock_root: bool = True) -> np.ndarray:
    """BEAT2 ``poses [T, 165]`` axis-angle (SMPL-X order, radians) -> ``[T, 55, 4]`` float32 xyzw.

    With ``lock_root`` the pelvis (global orientation) is set to identity.
    Raises:
        ValueError: ``poses`` is not ``[T, 165]``.
    """
    poses = np.asarray(poses, dtype=np.float64)
    if poses.ndim != 2 or poses.shape[1] != 3 * NUM_JOINTS:
        raise ValueError(f"poses must be [T, {3 * NUM_JOINTS}], got {list(poses.shape)}")
    q = axis_angle_to_quat(poses.reshape(-1, NUM_JOINTS, 3))
    if lock_root:
        q[:, 0] = (0.0, 0.0, 0.0, 1.0)
    return q


def load_beat2(root=None, lock_root: bool = True) -> list[TrainingClip]:
    """BEAT2 takes (``beat2/*.smplxflame30.npz`` + ``.wav``), 30 fps.

    Conventions and decisions:

    * **Axes**: BEAT2's SMPL-X frame is already +Y up, facing +Z (``trans`` y ~ 1.30 m). Its global
      orientation is not identity but a near-constant tilt: mean axis-angle ``(-0.29, 0.06, -0.06)`` rad
      (``2_scott_0_1_1``; ``(-0.30, 0.01, -0.07)`` for ``0_3_3``), i.e. about -17 deg about X (pelvis
      tipped back) with small yaw/roll (std 0.05-0.16 rad), compensated by the spine. With ``lock_root``
      (default, our upper-body convention) the pelvis rotation is replaced by identity, which leaves the
      upper body leaning slightly forward of how it was captured; translation is zero.
      ``meta["beat2_global_orient_mean"]`` keeps the take's mean.
    * **Hands**: the poses are treated as *flat-hand* relative (SMPL-X ``flat_hand_mean=True``, zero = flat
      hand), which is our convention, so they are copied unchanged. Evidence: the mean finger pose is a
      relaxed curl (0.3-0.5 rad per joint, always in the flexion direction), which is what a full pose
      relative to the flat hand looks like; with ``flat_hand_mean=False`` the stored values would be offsets
      from the MANO mean (already a relaxed curl), making a clenched fist on average. The take's 120 fps BVH
      (flat-hand rest) shows finger angles of the same size (~25 deg on the proximal joints).
      EMAGE/BEAT2 loaders call ``smplx.create(..., use_pca=False)``; we could not confirm their
      ``flat_hand_mean`` flag from code here, so this rests on the data check above.
    * **Face**: BEAT2's jaw correlates only weakly with the audio (r = 0.26, data README), so no face
      channel is marked real (``face_mask`` all False, face zeros) and the jaw/eye joints are masked out.
    * **Masks**: ``joint_mask`` is True for :data:`BEAT2_REAL_JOINTS` (spine1-3, neck, head, collars,
      shoulders, elbows, wrists, 30 finger joints).
    * **Audio**: aligned from the start, trimmed to ``T / 30`` s (the 0_1_1 wav is 0.56 s longer).

    Args:
        root: data folder (default :func:`data_root`).
        lock_root: set the pelvis rotation to identity (default True).
    Raises:
        FileNotFoundError: no BEAT2 takes or a take's wav is missing.
    """
    r = _root(root) / "beat2"
    out = []
    for npz in sorted(r.glob("*.smplxflame30.npz")):
        take = npz.name[: -len(".smplxflame30.npz")]
        wav = npz.with_name(take + ".wav")
        if not wav.is_file():
            raise FileNotFoundError(f"{wav}: no such file (paired with {npz.name})")
        with np.load(npz, allow_pickle=False) as z:
            poses = np.asarray(z["poses"], np.float64)
            fps = float(z["mocap_frame_rate"]) if "mocap_frame_rate" in z.files else FPS
        from scipy.spatial.transform import Rotation

        g_mean = Rotation.from_rotvec(poses[:, :3]).mean().as_rotvec()
        rot = beat2_rotations(poses, lock_root=lock_root)
        T = rot.shape[0]
        audio = _read_audio(wav)
        meta = {"dataset": "beat2", "source": f"beat2/{take}", "licence": LICENCE_BEAT2,
                "audio_source": str(wav), "audio_offset_s": 0.0, "root_locked": bool(lock_root),
                "beat2_global_orient_mean": [float(v) for v in g_mean]}
        clip = MotionClip(fps, np.zeros((T, NUM_ARKIT), np.float32), rot, None, meta)
        if fps != FPS:
            clip = clip.resample(FPS)
            T = clip.num_frames
        n = min(len(audio), _samples_for(T))
        if n < _samples_for(T):  # audio shorter than motion: trim the motion
            T = int(np.floor(n * FPS / SAMPLE_RATE))
            clip = clip.slice(0, T)
            n = _samples_for(T)
        jmask = np.zeros(NUM_JOINTS, bool)
        jmask[list(BEAT2_REAL_JOINTS)] = True
        out.append(TrainingClip(f"beat2/{take}", "beat2", audio[:n], clip, np.zeros(NUM_ARKIT, bool),
                                jmask, LICENCE_BEAT2))
    if not out:
        raise FileNotFoundError(f"no *.smplxflame30.npz takes in {r}")
    return out


# --------------------------------------------------------------------------------------------------
# Live Link Face CSV (NeuroSync); the reader and its conventions live in motion.livelink
# --------------------------------------------------------------------------------------------------
def load_neurosync(root=None) -> list[TrainingClip]:
    """The NeuroSync Live Link Face capture (``neurosync_face_only/*.csv``), 60 -> 30 fps, no audio.

    * ``face_mask``: all True except ``tongueOut`` when it is (near) constant zero (max < 1e-3; it is
      here, max 0.0006). Note browOuterUp*, mouthFunnel, mouthLeft, mouthFrown* are exactly zero in this
      capture but are kept as real (the tracker reported them).
    * Head: HeadYaw/Pitch/Roll go into neck (:data:`motion.conventions.NECK_SHARE` = 40 % of the rotation) and
      head (the rest), composing exactly to the captured rotation (:func:`motion.conventions.split_neck_head`),
      axes per :func:`motion.conventions.livelink_angles_to_quat`; the joints are real only when the columns are not all
      zero (in this capture they are all zero, so neck/head are masked out).
    * Eyes: LeftEye*/RightEye* angles go into ``left_eye_smplhf``/``right_eye_smplhf`` (same mapping),
      marked real.

    Raises:
        FileNotFoundError: no CSV in the folder.
    """
    r = _root(root) / "neurosync_face_only"
    files = sorted(r.glob("*.csv"))
    if not files:
        raise FileNotFoundError(f"no Live Link CSV in {r}")
    out = []
    for path in files:
        d = parse_livelink_csv(path)
        rot, jmask = take_rotations(d)
        fmask = d.present.copy()
        t = ARKIT_INDEX["tongueOut"]
        if d.face[:, t].max() < 1e-3:
            fmask[t] = False
        meta = {"dataset": "neurosync", "source": f"neurosync_face_only/{path.name}",
                "licence": LICENCE_NEUROSYNC, "source_fps": d.fps, "head_real": bool(jmask[JOINT_INDEX["head"]])}
        clip = MotionClip(d.fps, d.face, rot, None, meta).resample(FPS)
        out.append(TrainingClip(f"neurosync/{path.stem}", "neurosync", None, clip, fmask, jmask,
                                LICENCE_NEUROSYNC))
    return out


def load_all(root=None) -> list[TrainingClip]:
    """All datasets: :func:`load_facegood` + :func:`load_beat2` + :func:`load_neurosync`."""
    return load_facegood(root) + load_beat2(root) + load_neurosync(root)


# --------------------------------------------------------------------------------------------------
# Prepared datasets (``chatanyone prepare``, :mod:`motion.prepare`)
# --------------------------------------------------------------------------------------------------
def load_prepared(dataset_dir) -> list[TrainingClip]:
    """Clips written by ``chatanyone prepare`` (:mod:`motion.prepare`) into ``dataset_dir``.

    Reads ``dataset_dir/dataset.json`` and, per listed clip, ``NAME.npz`` (a MotionClip file plus
    ``face_valid [T, 52]`` and ``joint_valid [T, 55]`` bool) and ``NAME.wav`` (16 kHz mono).

    Returns:
        One :class:`TrainingClip` per clip, in manifest order: ``name`` ``"prepared/<NAME>"``, ``dataset``
        the source kind (``"video"``, ``"beat2"``, ``"facegood"``, ``"livelink"``), ``audio`` ``[N]``
        float32 16 kHz, ``face_mask``/``joint_mask`` = channels valid in >= 50 % of the frames, and the
        per-frame ``face_valid``/``joint_valid`` masks.
    Raises:
        FileNotFoundError: no such folder, no ``dataset.json``, or a listed file is missing.
        ValueError: the manifest is not valid JSON or an npz lacks the validity masks / has wrong shapes.
    """
    import json

    d = Path(dataset_dir)
    man_path = d / "dataset.json"
    if not man_path.is_file():
        raise FileNotFoundError(f"{man_path}: no such file (run chatanyone prepare first)")
    try:
        man = json.loads(man_path.read_text())
    except json.JSONDecodeError:
        raise ValueError(f"{man_path}: not valid JSON") from None
    out = []
    for name, e in man.get("clips", {}).items():
        files = e.get("files", {})
        npz, wav = d / files.get("npz", f"{name}.npz"), d / files.get("wav", f"{name}.wav")
        for f in (npz, wav):
            if not f.is_file():
                raise FileNotFoundError(f"{f}: no such file (listed in {man_path})")
        clip = MotionClip.load(npz)
        with np.load(npz, allow_pickle=False) as z:
            if "face_valid" not in z.files or "joint_valid" not in z.files:
                raise ValueError(f"{npz}: no face_valid/joint_valid masks (not a prepared clip)")
            fv = np.asarray(z["face_valid"], bool)
            jv = np.asarray(z["joint_valid"], bool)
        T = clip.num_frames
        if fv.shape != (T, NUM_ARKIT) or jv.shape != (T, NUM_JOINTS):
            raise ValueError(f"{npz}: masks must be [{T}, {NUM_ARKIT}] and [{T}, {NUM_JOINTS}], "
                             f"got {list(fv.shape)} and {list(jv.shape)}")
        audio = _read_audio(wav)
        licence = str(e.get("licence", clip.meta.get("licence", "unknown")))
        fmask = fv.mean(0) >= 0.5 if T else np.zeros(NUM_ARKIT, bool)
        jmask = jv.mean(0) >= 0.5 if T else np.zeros(NUM_JOINTS, bool)
        out.append(TrainingClip(f"prepared/{name}", str(e.get("kind", "prepared")), audio, clip,
                                fmask, jmask, licence, fv, jv))
    return out
