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
    kept only when its wrist lies within :data:`motion.tracking.HAND_WRIST_MAX_DIST` (normalised image
    units) of a wrist the pose model sees with visibility >= :data:`motion.tracking.MIN_VISIBILITY` (the
    hand model reports false hands on tight face crops); hands are assigned to sides by that wrist, not by
    MediaPipe's handedness label.

  Decoding, the landmarkers, the ``.task`` files and the hand assignment are :mod:`motion.tracking`'s
  (shared with :mod:`generator.face_keypoints`).

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

Layout (one module per concern; everything below is importable from ``motion.prepare`` itself, loaded on
first use so that ``import motion.prepare`` and ``chatanyone prepare --help`` load neither SciPy nor MediaPipe):

* :mod:`.common`: constants (:data:`FPS`, :data:`SMOOTHING`, :data:`LICENCES`, QA thresholds),
  :class:`PrepareError`, the :class:`Job` / :class:`Prepared` records;
* :mod:`.discovery`: inputs -> jobs (:func:`discover`), licences by source folder;
* :mod:`.video`: talking videos (:func:`prepare_video`, :func:`read_video_audio`);
* :mod:`.adapters`: BEAT2, FACEGOOD, Live Link Face (:func:`prepare_beat2`, :func:`prepare_facegood`,
  :func:`prepare_livelink`);
* :mod:`.signals`: resampling and smoothing over valid frames (:func:`resample_valid`, :func:`smooth_runs`);
* :mod:`.qa`: A/V lag (:func:`sync_qa`, :func:`shift_motion`), real channels, the contact sheet;
* :mod:`.runner`: one clip's files (:func:`prepare_one`), the manifest, :func:`run` over many inputs;
* :mod:`.cli`: the options (``add_arguments`` / ``run_command``, as ``chatanyone prepare`` uses them) and
  :func:`main` (``python -m motion.prepare``).
"""
from __future__ import annotations

import importlib
from typing import Any

#: Public name -> submodule that defines it (imported on first access, PEP 562).
_EXPORTS: dict[str, str] = {
    **{n: "common" for n in ("FPS", "SAMPLE_RATE", "MANIFEST", "MANIFEST_VERSION", "PREPARE_VERSION",
                             "MIN_FACE_RATE", "LAG_WARN_FRAMES", "MAX_LAG_FRAMES", "SMOOTHING", "NO_SMOOTHING",
                             "LICENCES", "PrepareError", "Job", "Prepared")},
    **{n: "discovery" for n in ("discover",)},
    **{n: "signals" for n in ("smooth_runs", "resample_valid")},
    **{n: "qa" for n in ("sync_qa", "shift_motion", "head_angles_deg", "contact_sheet")},
    **{n: "video" for n in ("read_video_audio", "prepare_video")},
    **{n: "adapters" for n in ("prepare_beat2", "prepare_facegood", "prepare_livelink")},
    **{n: "runner" for n in ("prepare_one", "read_manifest", "is_complete", "Report", "run", "_worker")},
    **{n: "cli" for n in ("main", "add_arguments", "run_command")},
    # the tracker's, re-exported under their old names here
    **{n: "..tracking" for n in ("VIDEO_EXTS", "TASK_FILES", "default_models_dir", "MIN_VISIBILITY",
                                 "HAND_WRIST_MAX_DIST")},
}

__all__ = [n for n in _EXPORTS if not n.startswith("_")]


def __getattr__(name: str) -> Any:
    try:
        where = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    module = importlib.import_module(where if where.startswith("..") else f".{where}", __name__)
    value = getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
