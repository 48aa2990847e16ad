"""iPhone ARKit scale for the generated mouth: a per-channel gain fitted to real iPhone capture.

The face stage learns its mouth from FACEGOOD's rig weights and MediaPipe's blendshape scores, whose scales
are not the iPhone's: measured on the data in ``../shared/data``, FACEGOOD and MediaPipe read speech as a wide
``jawOpen`` (the model's 5-95 % range on its training speech: 0.30-0.35) and a small ``mouthLowerDown``
(0.04-0.09), while the iPhone (ARKit face tracking, Live Link Face) reads the same speech mostly as lower-lip
motion: ``jawOpen`` 0.05-0.14, ``mouthLowerDown`` 0.07-0.60 over its speaking takes. A MetaHuman, a
perfect-sync VRM or any rig built for Live Link expects the iPhone's scale.

The map (:class:`MouthScale`) is, per mouth channel ``c`` (the 27 of :data:`motion.conventions.ARKIT_MOUTH`),

    ``y_c = clip(rest_c + gain_c * (x_c - rest_c), 0, 1)``

with ``rest_c`` the model's own 5th percentile on its training speech (its resting mouth is kept) and
``gain_c = D_iphone_c / D_model_c`` (:func:`fit_mouth_scale`), where ``D`` is a channel's dynamic range, the
5-95 % percentile range over frames: for the model, over its output on the training audio; for the iPhone,
the median over the speaking takes :data:`IPHONE_SPEECH_TAKES` (each take's own range, so that a take's
held expression does not count as motion). Left and right channels share one gain (the mean of the two
ranges: the actors' asymmetry is not speech); the lateral channels (``jawLeft/Right``, ``mouthLeft/Right``)
and channels the model barely moves (``D_model < MIN_RANGE``) keep gain 1; gains are clipped to
:data:`GAIN_RANGE` (one octave: the takes disagree with each other by up to 5x); ``mouthClose`` keeps its
fraction of ``jawOpen`` (ARKit defines it relative to the open jaw, so a lip seal stays a seal;
:meth:`MouthScale.apply`). The captures have no audio, so this matches distributions, not frames: which sound makes
which mouth is still learned from the paired data.

It is applied last to the mouth (after the body stage read the face in the model's own units, before
``--expression``), offline and streaming (:meth:`motion.inference.MotionGenerator.finish`). The checkpoint
stores it under ``sampling.mouth_scale``; ``MotionGenerator(mouth_scale=False)`` (``--mouth-scale native``)
gives the model's own scale, in which the lip-sync evaluation against FACEGOOD's rig weights is made.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .conventions import ARKIT_MIRROR, ARKIT_MOUTH, ARKIT_NAMES

#: Live Link Face takes of people speaking (relative to the data root): the NeuroSync speaking capture and
#: the acted takes with mouth motion. Left out: the Sad takes (silent: jawOpen p95 <= 0.003) and
#: ``Angry_MySlate_166`` (the same take as the NeuroSync capture, per ``iphone_arkit``'s README).
IPHONE_SPEECH_TAKES = (
    "neurosync_face_only/livelinkface_60fps_no_audio.csv",
    "iphone_arkit/neurosync_player/Angry_MySlate_164.csv",
    "iphone_arkit/neurosync_player/Angry_MySlate_165.csv",
    "iphone_arkit/neurosync_player/Fearful_MySlate_161.csv",
    "iphone_arkit/neurosync_player/Fearful_MySlate_162.csv",
    "iphone_arkit/neurosync_player/Fearful_MySlate_163.csv",
    "iphone_arkit/neurosync_player/Happy.csv",
)
#: percentiles whose difference is a channel's dynamic range
RANGE_PERCENTILES = (5.0, 95.0)
#: gains are clipped to this range: a channel moves at most one octave towards the iPhone's range. The takes
#: disagree by up to 5x (jawOpen range 0.05-0.24, mouthFunnel 0-0.37 over the seven) and are acted
#: emotions of few people; unclipped (gain 0.25 on jawOpen), the default avatar's inner lips opened 6.5 mm at
#: the /ay/ of the sample, against 16 mm in the model's own scale and 10-20 mm for open vowels in real speech
GAIN_RANGE = (0.5, 2.0)
#: channels whose model range is below this keep gain 1 (the model does not move them; nothing to scale)
MIN_RANGE = 0.01
#: sideways channels: the iPhone actors' lateral offsets are not speech
LATERAL = ("jawLeft", "jawRight", "mouthLeft", "mouthRight")

MOUTH_NAMES = tuple(ARKIT_NAMES[i] for i in ARKIT_MOUTH)
_JAW, _CLOSE = MOUTH_NAMES.index("jawOpen"), MOUTH_NAMES.index("mouthClose")
#: below this jawOpen (model scale) mouthClose takes the per-channel map instead of its fraction of the jaw
SEAL_MIN_JAW = 1e-3


def dynamic_range(x: np.ndarray) -> np.ndarray:
    """``[..., C]`` per-channel 5-95 % percentile range of ``x [T, C]`` (same units as ``x``)."""
    lo, hi = np.percentile(np.asarray(x, np.float64), RANGE_PERCENTILES, axis=0)
    return hi - lo


def _symmetric(d: np.ndarray) -> np.ndarray:
    """``[52]`` per-channel values -> the mean of each left/right pair (others unchanged)."""
    return 0.5 * (d + d[list(ARKIT_MIRROR)])


def iphone_ranges(root: str | Path | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``(median [52], per_take {name: [52]})`` dynamic ranges of :data:`IPHONE_SPEECH_TAKES` (ARKit weights).

    Raises:
        FileNotFoundError: a take is missing under the data root (``../shared/data``).
        ClipError (a ``ValueError``): a take is not a valid Live Link Face CSV.
    """
    from .datasets import data_root, read_livelink_csv
    base = Path(root) if root is not None else data_root()
    per = {}
    for rel in IPHONE_SPEECH_TAKES:
        p = base / rel
        if not p.is_file():
            raise FileNotFoundError(f"iPhone capture {p} is missing")
        per[Path(rel).stem] = dynamic_range(read_livelink_csv(p)[0])
    return np.median(np.stack(list(per.values())), axis=0), per


@dataclass
class MouthScale:
    """The per-channel map of the module docstring, for the 27 mouth channels (:data:`MOUTH_NAMES` order).

    Attributes:
        gain: ``[27]`` float32, ``gain_c``.
        rest: ``[27]`` float32 ARKit weights, ``rest_c``.
        stats: what the fit measured (per channel: the model's and the iPhone's ranges), for the model card.
    """

    gain: np.ndarray
    rest: np.ndarray
    stats: dict = field(default_factory=dict)

    def apply(self, mouth: np.ndarray) -> np.ndarray:
        """``[..., 27]`` mouth weights in the model's scale -> ``[..., 27]`` float32 in the iPhone's, in [0, 1].

        Every channel but ``mouthClose`` by the map of the module docstring. ``mouthClose`` keeps its fraction
        of ``jawOpen`` (ARKit's mouthClose closes the lips of the open jaw: a lip seal is ``mouthClose ==
        jawOpen``, :meth:`motion.lipsync.PhoneRulePrior.seal`): ``close' = jaw' * min(close / jaw, 1)``;
        where ``jaw`` is below :data:`SEAL_MIN_JAW` it takes the per-channel map too. With the per-channel
        map for mouthClose as well, the jaw's rest (0.036 in 0.5.2, mouthClose's is 0) left sealed lips of the
        default avatar 2.1-2.5 mm apart at the held-out GRID clips' /p b m/, against 1.3-1.7 mm in the model's
        own scale."""
        x = np.asarray(mouth, np.float32)
        y = np.clip(self.rest + self.gain * (x - self.rest), 0.0, 1.0).astype(np.float32)
        jaw, close = x[..., _JAW], x[..., _CLOSE]
        opened = jaw >= SEAL_MIN_JAW
        fraction = np.clip(close / np.where(opened, jaw, 1.0), 0.0, 1.0)
        y[..., _CLOSE] = np.where(opened, fraction * y[..., _JAW], y[..., _CLOSE])
        return y

    def to_info(self) -> dict:
        """JSON-able form stored in the checkpoint's ``sampling.mouth_scale``."""
        return {"to": "iphone_arkit", "channels": list(MOUTH_NAMES),
                "gain": [round(float(g), 4) for g in self.gain], "rest": [round(float(r), 4) for r in self.rest],
                "stats": self.stats}

    @classmethod
    def from_info(cls, info: dict) -> "MouthScale":
        """Inverse of :meth:`to_info`.

        Raises:
            ValueError: channels other than :data:`MOUTH_NAMES`, or a gain/rest of another length or not finite.
        """
        if list(info.get("channels", [])) != list(MOUTH_NAMES):
            raise ValueError("mouth_scale channels are not the 27 ARKit mouth channels")
        gain = np.asarray(info["gain"], np.float32)
        rest = np.asarray(info["rest"], np.float32)
        if gain.shape != (len(MOUTH_NAMES),) or rest.shape != gain.shape or not np.isfinite(gain).all() \
                or not np.isfinite(rest).all():
            raise ValueError("mouth_scale gain/rest must be 27 finite numbers each")
        return cls(gain, rest, dict(info.get("stats", {})))


def fit_mouth_scale(model_faces: list[np.ndarray], root: str | Path | None = None) -> MouthScale:
    """Fit the :class:`MouthScale` of the module docstring.

    Args:
        model_faces: the model's ``[T, 52]`` ARKit output (its own scale, ``MotionGenerator(mouth_scale=False)``)
            on its training audio, one array per clip (pooled over frames).
        root: data root holding :data:`IPHONE_SPEECH_TAKES` (default ``../shared/data``).
    Raises:
        ValueError: no frames.
        FileNotFoundError: see :func:`iphone_ranges`.
    """
    faces = [np.asarray(f, np.float64) for f in model_faces if len(f)]
    if not faces:
        raise ValueError("fit_mouth_scale needs the model's output on some audio")
    pooled = np.concatenate(faces)
    d_model = _symmetric(dynamic_range(pooled))
    d_phone, _ = iphone_ranges(root)
    d_phone = _symmetric(d_phone)
    rest = np.percentile(pooled, RANGE_PERCENTILES[0], axis=0)
    gain = np.ones(52)
    for i in ARKIT_MOUTH:
        if ARKIT_NAMES[i] in LATERAL or d_model[i] < MIN_RANGE:
            continue
        gain[i] = np.clip(d_phone[i] / d_model[i], *GAIN_RANGE)
    # ARKit's mouthClose closes the lips of an open jaw (it is only meaningful up to jawOpen): apply() keeps its
    # fraction of the jaw; this gain serves only where the jaw is (almost) shut
    gain[ARKIT_NAMES.index("mouthClose")] = gain[ARKIT_NAMES.index("jawOpen")]
    idx = list(ARKIT_MOUTH)
    stats = {"model_range": [round(float(d_model[i]), 4) for i in idx],
             "iphone_range": [round(float(d_phone[i]), 4) for i in idx],
             "iphone_takes": list(IPHONE_SPEECH_TAKES), "frames": int(len(pooled)),
             "percentiles": list(RANGE_PERCENTILES), "gain_range": list(GAIN_RANGE), "min_range": MIN_RANGE}
    return MouthScale(gain[idx].astype(np.float32), rest[idx].astype(np.float32), stats)


def scale_error(faces: list[np.ndarray], root: str | Path | None = None) -> dict[str, float]:
    """How far a face's mouth scale is from the iPhone's: per speech channel (moving in the iPhone takes,
    range >= 0.02, lateral channels left out) ``|log2(D_face / D_iphone)|`` in octaves, with ``D`` the
    symmetric dynamic range (module docstring); returns ``{"median_octaves": ..., channel: signed log2
    ratio, ...}``. 0 = the iPhone's range; 1 = twice or half as wide."""
    d = _symmetric(dynamic_range(np.concatenate([np.asarray(f, np.float64) for f in faces])))
    d_phone = _symmetric(iphone_ranges(root)[0])
    out: dict[str, float] = {}
    errs = []
    for i in ARKIT_MOUTH:
        n = ARKIT_NAMES[i]
        if n in LATERAL or d_phone[i] < 0.02 or n.endswith("Right"):
            continue
        r = float(np.log2(max(d[i], 1e-4) / d_phone[i]))
        out[n.replace("Left", "")] = round(r, 3)
        errs.append(abs(r))
    out["median_octaves"] = round(float(np.median(errs)), 3)
    return out
