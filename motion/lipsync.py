"""Lip sync judged against real capture: per-channel correlation, lip error, calibration, articulation at
phones, and a phone-rule lip-sync baseline.

Everything works on ARKit-52 weight arrays ``[T, 52]`` at 30 fps (frame ``i`` at ``i / fps`` s) and on
phones with times (:class:`motion.alignment.PhoneInterval`, ARPAbet without stress).

Metrics (one held-out clip, a generated face against the captured one):

* **r at the best lag**: Pearson r between the generated and captured channel, the best over lags of
  -:data:`MAX_LAG` .. +:data:`MAX_LAG` frames (a tracker or an animation may lead or trail the audio by a
  frame or two); for ``jawOpen`` and for every mouth channel that *moves* in the capture (std above
  :data:`MOVING_STD`); **mouth r** is their mean. A constant generated channel scores 0.
* **lip error** (LVE-style): VOCA (Cudeiro et al. 2019) / FaceFormer (Fan et al. 2022) report the mean over
  frames of the largest lip-vertex error; here the same on blendshape weights: mean over frames of the largest
  absolute weight error over the mouth channels (:data:`motion.conventions.ARKIT_MOUTH`, the channels valid in
  the capture). Reported raw and after a per-channel linear :class:`Calibration` fitted on *training*
  speakers only (MediaPipe's blendshape scores are not on the iPhone ARKit scale).
* **articulation at phones** (clips with a known transcript, phones by forced alignment):

  - *lip opening* ``o = jawOpen - mouthClose + mean(mouthLowerDown L/R) + mean(mouthUpperUp L/R)``: in ARKit
    ``mouthClose`` brings the lips together against an open jaw, so ``jawOpen - mouthClose`` is the lip gap
    the jaw leaves; the lower/upper lip raisers open it further (:func:`lip_opening`);
  - *lip closure* at a phone: at the phone's middle frame, the opening is below the highest opening within
    :data:`CLOSURE_CONTEXT_S` around the phone by at least half of that height above the clip's resting
    opening (its 5th percentile), and by more than 0.01: ``max_ctx - o_mid >= 0.5 * (max_ctx - rest)``.
    (The middle frame, not the phone's minimum: a short vowel's edge frames are consonant transitions, and
    with them the real GRID capture "closed" at 75 % of the open vowels; at the middle frame 31 %, with
    12 of 12 bilabials closed either way.) This needs no absolute threshold, so MediaPipe's
    and ARKit's scales compare; a face that never moves never closes. Rates are reported at /p b m/
    and, as a control, at the open vowels /aa ae ao aw ay/ (a mouth that dips everywhere "closes" there too);
  - *rounding*: ``mouthFunnel + mouthPucker`` at /uw ow w uh/ against /iy ih eh ae/, and *jaw*: ``jawOpen``
    at /aa ae ao aw ay/ against /iy ih uw uh/ (the diphthongs /aw ay/ start open; GRID's grammar has few
    /aa ae ao/): raw means side by side and the contrast in units of the
    channel's standard deviation over the clip's speech frames (pooled over clips), which is scale-free.

Baselines: :func:`phone_rule_face` (phones -> visemes -> ARKit weights with a dominance-weighted
coarticulation blend, the approach of Rhubarb Lip Sync, Oculus Lipsync and JALI after Cohen & Massaro 1993),
:func:`energy_face` (each mouth channel a least-squares linear function of the audio's log energy, fitted
on the clip itself: optimistic), and the training mean face.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .alignment import PhoneInterval
from .conventions import ARKIT_INDEX, ARKIT_MOUTH, ARKIT_NAMES, NUM_ARKIT

MAX_LAG = 5
MOVING_STD = 0.03
CLOSURE_CONTEXT_S = 0.15
BILABIAL = ("P", "B", "M")
OPEN_VOWELS = ("AA", "AE", "AO", "AW", "AY")  # /aw ay/ start open: GRID has few /aa ae ao/
CLOSED_VOWELS = ("IY", "IH", "UW", "UH")
ROUNDED = ("UW", "OW", "W", "UH")
SPREAD = ("IY", "IH", "EH", "AE")

# ------------------------------------------------------------------------------------------- visemes
#: Viseme targets in ARKit weights (0-1, iPhone scale; symmetric channels given once without Left/Right).
#: The 15 Oculus/MPEG-4 visemes (sil PP FF TH DD kk CH SS nn RR aa E I O U). PP closes the lips against a
#: slightly open jaw (jawOpen == mouthClose: zero lip gap) and presses them.
VISEMES: dict[str, dict[str, float]] = {
    "sil": {"jawOpen": 0.02},
    "PP": {"jawOpen": 0.08, "mouthClose": 0.08, "mouthPress": 0.35, "mouthRollLower": 0.15, "mouthRollUpper": 0.1},
    "FF": {"jawOpen": 0.10, "mouthClose": 0.04, "mouthRollLower": 0.5, "mouthUpperUp": 0.2, "mouthShrugUpper": 0.1},
    "TH": {"jawOpen": 0.16, "mouthLowerDown": 0.1, "mouthStretch": 0.1},
    "DD": {"jawOpen": 0.15, "mouthLowerDown": 0.1, "mouthStretch": 0.12},
    "kk": {"jawOpen": 0.22, "mouthStretch": 0.12, "mouthLowerDown": 0.1},
    "CH": {"jawOpen": 0.12, "mouthFunnel": 0.45, "mouthPucker": 0.2, "mouthUpperUp": 0.15, "mouthShrugUpper": 0.2},
    "SS": {"jawOpen": 0.06, "mouthStretch": 0.3, "mouthSmile": 0.1, "mouthLowerDown": 0.05},
    "nn": {"jawOpen": 0.12, "mouthStretch": 0.1, "mouthLowerDown": 0.05},
    "RR": {"jawOpen": 0.12, "mouthFunnel": 0.3, "mouthPucker": 0.35},
    "aa": {"jawOpen": 0.5, "mouthLowerDown": 0.25, "mouthUpperUp": 0.1, "mouthStretch": 0.05},
    "E": {"jawOpen": 0.32, "mouthStretch": 0.3, "mouthSmile": 0.15, "mouthLowerDown": 0.2, "mouthUpperUp": 0.1},
    "I": {"jawOpen": 0.14, "mouthStretch": 0.4, "mouthSmile": 0.25, "mouthLowerDown": 0.05},
    "O": {"jawOpen": 0.32, "mouthFunnel": 0.55, "mouthPucker": 0.3},
    "U": {"jawOpen": 0.12, "mouthPucker": 0.75, "mouthFunnel": 0.3},
}
#: ARPAbet phone -> viseme (Oculus Lipsync's grouping; HH takes a neutral half-open mouth).
PHONE_TO_VISEME: dict[str, str] = {
    "SIL": "sil", "P": "PP", "B": "PP", "M": "PP", "F": "FF", "V": "FF", "TH": "TH", "DH": "TH",
    "T": "DD", "D": "DD", "K": "kk", "G": "kk", "NG": "kk", "HH": "kk", "CH": "CH", "JH": "CH", "SH": "CH",
    "ZH": "CH", "S": "SS", "Z": "SS", "N": "nn", "L": "nn", "Y": "I", "R": "RR", "ER": "RR",
    "AA": "aa", "AH": "aa", "AO": "O", "AW": "aa", "AY": "aa", "AE": "E", "EH": "E", "EY": "E",
    "IH": "I", "IY": "I", "OW": "O", "OY": "O", "UH": "U", "UW": "U", "W": "U",
}
#: Coarticulation dominance (Cohen & Massaro 1993): how strongly a viseme holds its target against its
#: neighbours. Lip closures and lip-teeth contacts must be reached; tongue consonants borrow the lips of
#: the surrounding vowels.
DOMINANCE: dict[str, float] = {"PP": 25.0, "FF": 12.0, "U": 3.0, "O": 2.5, "CH": 2.5, "RR": 1.5, "sil": 1.5,
                               "aa": 1.5, "E": 1.5, "I": 1.5, "SS": 1.0, "TH": 0.7, "DD": 0.5, "nn": 0.5,
                               "kk": 0.4}
COART_SIGMA_S = 0.03  # width of the blend (s); a 60 ms /m/ between open vowels still closes (lip gap < 0.02)


def _viseme_vector(name: str) -> np.ndarray:
    v = np.zeros(NUM_ARKIT, np.float32)
    for k, w in VISEMES[name].items():
        if k in ARKIT_INDEX:
            v[ARKIT_INDEX[k]] = w
        else:
            v[ARKIT_INDEX[k + "Left"]] = w
            v[ARKIT_INDEX[k + "Right"]] = w
    return v


def _coart_kernel(sigma_s: float, rate: float) -> np.ndarray:
    """The coarticulation blend's Gaussian of ``sigma_s`` seconds sampled at ``rate`` Hz, to +-3 sigma."""
    half = max(1, int(np.ceil(3 * sigma_s * rate)))
    return np.exp(-0.5 * (np.arange(-half, half + 1) / (sigma_s * rate)) ** 2)


def phone_rule_face(phones: list[PhoneInterval], num_frames: int, fps: float = 30.0,
                    sigma_s: float = COART_SIGMA_S, scale: float = 1.0) -> np.ndarray:
    """Rule-based lip sync: phones -> visemes (:data:`PHONE_TO_VISEME`) -> ARKit weights, blended.

    At 100 Hz each phone's viseme target is weighted by its :data:`DOMINANCE` and a Gaussian of
    ``sigma_s`` seconds around every instant; the weighted mean of the targets is the face (a Cohen-Massaro
    style dominance blend: a /b/ closes the lips even when short, a /t/ takes the neighbouring vowels'
    lips); then sampled at ``i / fps`` s.

    Args:
        phones: time-ordered phones (gaps are silence); ARPAbet without stress, unknown names -> silence.
        num_frames: T.
        fps: output frame rate (Hz).
        sigma_s: coarticulation width in seconds.
        scale: multiplies every weight (an amplitude control; 1 = the table's iPhone-like scale).
    Returns:
        ``[T, 52]`` float32 ARKit weights in [0, 1] (non-mouth channels 0).
    """
    rate = 100.0
    n = int(np.ceil(num_frames / fps * rate)) + 1
    names = np.full(n, "sil", dtype=object)
    for p in phones:
        a, b = int(round(p.start_s * rate)), int(round(p.end_s * rate))
        names[max(a, 0):max(min(b, n), 0)] = PHONE_TO_VISEME.get(p.phone.upper(), "sil")
    targets = np.stack([_viseme_vector(v) for v in names])               # [n, 52]
    dom = np.array([DOMINANCE[v] for v in names], np.float64)            # [n]
    k = _coart_kernel(sigma_s, rate)
    num = np.stack([np.convolve(targets[:, c] * dom, k, "same") for c in range(NUM_ARKIT)], 1)
    den = np.convolve(dom, k, "same")[:, None]
    face100 = num / np.maximum(den, 1e-9)
    pos = np.arange(num_frames) / fps * rate
    out = np.stack([np.interp(pos, np.arange(n), face100[:, c]) for c in range(NUM_ARKIT)], 1)
    return np.clip(out * scale, 0.0, 1.0).astype(np.float32)


# --------------------------------------------------------------------------------------- correlation

def pearson_best_lag(x: np.ndarray, y: np.ndarray, max_lag: int = MAX_LAG) -> tuple[float, float, int]:
    """Pearson r at lag 0, and the best r with its lag (frames; positive: ``x`` lags ``y``).

    ``x``, ``y``: ``[T]``. A constant series gives r = 0 at every lag.
    """
    def r(a, b):
        if len(a) < 3 or a.std() < 1e-6 or b.std() < 1e-6:
            return 0.0
        return float(np.corrcoef(a, b)[0, 1])
    r0 = r(x, y)
    best = (r0, 0)
    for lag in range(-max_lag, max_lag + 1):
        if lag > 0:
            v = r(x[lag:], y[:-lag])
        elif lag < 0:
            v = r(x[:lag], y[-lag:])
        else:
            v = r0
        if v > best[0]:
            best = (v, lag)
    return r0, best[0], best[1]


def moving_channels(capture: np.ndarray, valid: np.ndarray | None = None, min_std: float = MOVING_STD) -> list[int]:
    """ARKit indices of the mouth channels (:data:`ARKIT_MOUTH`) whose captured std exceeds ``min_std``.

    ``capture`` ``[T, 52]``; ``valid`` optional ``[52]`` bool (channels real in this capture)."""
    sd = capture.std(0)
    return [i for i in ARKIT_MOUTH if sd[i] > min_std and (valid is None or valid[i])]


def lip_error(pred: np.ndarray, capture: np.ndarray, channels: list[int]) -> float:
    """LVE on weights: mean over frames of max over ``channels`` of ``|pred - capture|`` (``[T, 52]`` each)."""
    if not channels:
        return float("nan")
    return float(np.abs(pred[:, channels] - capture[:, channels]).max(1).mean())


@dataclass
class Calibration:
    """Per-channel linear map ``capture ~ a * pred + b`` (``[52]`` each), clipped to [0, 1] when applied."""

    a: np.ndarray
    b: np.ndarray

    @classmethod
    def identity(cls) -> "Calibration":
        return cls(np.ones(NUM_ARKIT), np.zeros(NUM_ARKIT))

    @classmethod
    def fit(cls, preds: list[np.ndarray], captures: list[np.ndarray], valid: list[np.ndarray]) -> "Calibration":
        """Least squares per channel over the frames of all pairs (``[T_k, 52]`` each; ``valid`` ``[T_k, 52]``
        bool or ``[52]``). A channel that is constant in the predictions gets ``a = 0`` and ``b`` the
        captured mean; a channel without valid frames stays the identity."""
        a, b = np.ones(NUM_ARKIT), np.zeros(NUM_ARKIT)
        for c in range(NUM_ARKIT):
            xs, ys = [], []
            for p, y, v in zip(preds, captures, valid):
                m = np.broadcast_to(np.asarray(v, bool)[..., c] if np.ndim(v) == 2 else bool(v[c]), (len(p),))
                xs.append(p[:, c][m])
                ys.append(y[:, c][m])
            x, y = np.concatenate(xs), np.concatenate(ys)
            if len(x) < 2:
                continue
            if x.std() < 1e-6:
                a[c], b[c] = 0.0, float(y.mean())
            else:
                a[c], b[c] = np.polyfit(x, y, 1)
        return cls(a, b)

    def apply(self, pred: np.ndarray) -> np.ndarray:
        return np.clip(pred * self.a + self.b, 0.0, 1.0).astype(np.float32)


def energy_face(log_energy: np.ndarray, capture: np.ndarray, channels: list[int]) -> np.ndarray:
    """Optimistic energy baseline: each channel in ``channels`` the least-squares line in the clip's log
    energy ``[T]`` fitted to the capture ``[T, 52]`` of this very clip; other channels 0. ``[T, 52]``."""
    out = np.zeros_like(capture, dtype=np.float32)
    A = np.stack([log_energy, np.ones_like(log_energy)], 1)
    for c in channels:
        coef, *_ = np.linalg.lstsq(A, capture[:, c], rcond=None)
        out[:, c] = A @ coef
    return np.clip(out, 0, 1)


@dataclass
class ClipScores:
    """Scores of one generated face against one capture."""

    jaw_r: float
    jaw_lag: int
    mouth_r: float
    channel_r: dict[str, float]
    lip_error: float
    lip_error_cal: float
    energy_r: float = float("nan")  # diagnostic: generated jawOpen vs the audio's log energy (best lag)


def score_clip(pred: np.ndarray, capture: np.ndarray, channels: list[int],
               calibration: Calibration | None = None, max_lag: int = MAX_LAG) -> ClipScores:
    """:class:`ClipScores` of ``pred`` ``[T, 52]`` against ``capture`` ``[T, 52]`` over the moving mouth
    ``channels`` (jawOpen always scored); ``calibration`` None: the calibrated error equals the raw one."""
    jaw = ARKIT_INDEX["jawOpen"]
    _, jr, jl = pearson_best_lag(pred[:, jaw], capture[:, jaw], max_lag)
    rs = {ARKIT_NAMES[c]: pearson_best_lag(pred[:, c], capture[:, c], max_lag)[1] for c in channels}
    err = lip_error(pred, capture, channels)
    err_cal = lip_error(calibration.apply(pred), capture, channels) if calibration is not None else err
    return ClipScores(jr, jl, float(np.mean(list(rs.values()))) if rs else float("nan"), rs, err, err_cal)


# -------------------------------------------------------------------------------------- articulation

def lip_opening(face: np.ndarray) -> np.ndarray:
    """Lip gap proxy ``[T]``: jawOpen - mouthClose + mean(mouthLowerDown) + mean(mouthUpperUp)."""
    I = ARKIT_INDEX
    return (face[:, I["jawOpen"]] - face[:, I["mouthClose"]]
            + 0.5 * (face[:, I["mouthLowerDownLeft"]] + face[:, I["mouthLowerDownRight"]])
            + 0.5 * (face[:, I["mouthUpperUpLeft"]] + face[:, I["mouthUpperUpRight"]]))


def closures(face: np.ndarray, phones: list[PhoneInterval], targets=BILABIAL, fps: float = 30.0,
             context_s: float = CLOSURE_CONTEXT_S) -> list[bool]:
    """For each phone in ``targets``: do the lips close there (module docstring definition)?"""
    o = lip_opening(face)
    rest = float(np.percentile(o, 5))
    out = []
    T = len(o)
    for p in phones:
        if p.phone not in targets:
            continue
        mid = int(round(0.5 * (p.start_s + p.end_s) * fps))  # the phone's middle frame
        a, b = max(0, mid), min(T, mid + 1)
        ca = max(0, int(np.floor((p.start_s - context_s) * fps)))
        cb = min(T, int(np.ceil((p.end_s + context_s) * fps)) + 1)
        if b <= a or cb <= ca:
            continue
        lo, hi = float(o[a:b].min()), float(o[ca:cb].max())
        out.append(hi - lo >= 0.5 * (hi - rest) and hi - lo > 0.01)
    return out


@dataclass
class Articulation:
    """Articulation of one face over clips with phones (see the module docstring)."""

    closure_bilabial: float = float("nan")   # fraction of /p b m/ with a lip closure
    n_bilabial: int = 0
    closure_open_vowel: float = float("nan")  # control: "closures" at /aa ae ao/
    rounding_raw: tuple[float, float] = (float("nan"), float("nan"))  # funnel+pucker at rounded / spread
    rounding_d: float = float("nan")          # contrast in speech-frame std units
    jaw_raw: tuple[float, float] = (float("nan"), float("nan"))       # jawOpen at open / closed vowels
    jaw_d: float = float("nan")
    extra: dict = field(default_factory=dict)


def _phone_frames(phones: list[PhoneInterval], T: int, fps: float) -> list[str]:
    from .alignment import phones_at_frames
    return phones_at_frames(phones, T, fps)


def articulation(faces: list[np.ndarray], phone_lists: list[list[PhoneInterval]], fps: float = 30.0) -> Articulation:
    """:class:`Articulation` pooled over clips (``faces[k]`` ``[T_k, 52]`` with phones ``phone_lists[k]``)."""
    I = ARKIT_INDEX
    cb, cv = [], []
    pools = {"round": ([], []), "jaw": ([], [])}
    raw = {"round": ([], []), "jaw": ([], [])}
    for face, phones in zip(faces, phone_lists):
        cb += closures(face, phones, BILABIAL, fps)
        cv += closures(face, phones, OPEN_VOWELS, fps)
        lab = np.array(_phone_frames(phones, len(face), fps))
        speech = lab != "SIL"
        sig = {"round": face[:, I["mouthFunnel"]] + face[:, I["mouthPucker"]], "jaw": face[:, I["jawOpen"]]}
        sets = {"round": (ROUNDED, SPREAD), "jaw": (OPEN_VOWELS, CLOSED_VOWELS)}
        for k, x in sig.items():
            if speech.sum() < 3:
                continue
            mu, sd = x[speech].mean(), x[speech].std()
            z = (x - mu) / sd if sd > 1e-6 else np.zeros_like(x)
            for j, group in enumerate(sets[k]):
                m = np.isin(lab, group)
                pools[k][j].append(z[m])
                raw[k][j].append(x[m])

    def mean(parts):
        v = np.concatenate(parts) if parts else np.zeros(0)
        return float(v.mean()) if len(v) else float("nan")
    return Articulation(
        closure_bilabial=float(np.mean(cb)) if cb else float("nan"), n_bilabial=len(cb),
        closure_open_vowel=float(np.mean(cv)) if cv else float("nan"),
        rounding_raw=(mean(raw["round"][0]), mean(raw["round"][1])),
        rounding_d=mean(pools["round"][0]) - mean(pools["round"][1]),
        jaw_raw=(mean(raw["jaw"][0]), mean(raw["jaw"][1])),
        jaw_d=mean(pools["jaw"][0]) - mean(pools["jaw"][1]))


# ------------------------------------------------------------------------------------ known transcripts

def known_transcript(name: str) -> str | None:
    """Transcript of a prepared clip whose name spells it: GRID (``.../grid__bbaf2n``), else None.

    (The Obama sentence cuts are named by their words too, but their names are cut at 60 characters, so
    half of them lack the last word; they are training data and not needed here.)"""
    from .alignment import grid_transcript
    stem = name.rsplit("/", 1)[-1]
    if stem.startswith("grid__"):
        return grid_transcript(stem[len("grid__"):])
    return None


#: The speaker of each GRID clip in ``../shared/data/videos/grid``. GRID's file names spell the sentence,
#: not the speaker, so the clips were grouped by looking at their frames: 11 clips, 10 speakers (pwij3p and
#: id2_vcd_swwp2s are the same man). Labels are ours (m = man, f = woman), not GRID's speaker numbers.
GRID_SPEAKERS = {"bbaf2n": "GRID m1", "brbk7n": "GRID f1", "id2_vcd_swwp2s": "GRID m2", "pwij3p": "GRID m2",
                 "lbax4n": "GRID m3", "lbbc2a": "GRID f2", "lrwp9a": "GRID f3", "lwbsza": "GRID f4",
                 "sbia1a": "GRID m4", "sbwe5n": "GRID m5", "swiz3n": "GRID m6"}

#: Name fragments of the other clips -> speaker (the talking videos name their speaker; FACEGOOD and BEAT2
#: are one speaker each). Checked in this order.
_SPEAKER_FRAGMENTS = (("Obama", "Obama"), ("obama", "Obama"), ("TedLieu", "Ted Lieu"),
                      ("Klobuchar", "Amy Klobuchar"), ("KatieHill", "Katie Hill"),
                      ("AlexandriaOcasioCortez", "Alexandria Ocasio-Cortez"), ("AOC", "Alexandria Ocasio-Cortez"),
                      ("facegood", "FACEGOOD speaker"), ("scott", "BEAT2 Scott"))


def speaker_of(name: str) -> str:
    """Who speaks in a training or held-out clip, by its name as the loaders give it (``facegood/1114_3_16``,
    ``beat2/2_scott_0_3_3``, ``prepared/grid__bbaf2n``, ``prepared/edtalk__mouth_source_Klobuchar``).

    GRID clips by :data:`GRID_SPEAKERS`; other clips by the speaker their name carries. A clip no rule
    knows is its own speaker (its name is returned), so an unknown clip is never merged with another.
    Used to check that held-out speakers are never trained on and to count them."""
    stem = name.rsplit("/", 1)[-1]
    if stem.startswith("grid__"):
        return GRID_SPEAKERS.get(stem[len("grid__"):], name)
    for fragment, speaker in _SPEAKER_FRAGMENTS:
        if fragment in name:
            return speaker
    return name


# ------------------------------------------------------------------------------ phone-rule face prior

def viseme_table(phones: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Per-phone viseme targets and dominances: ``([P, 52] float32 ARKit weights, [P] float64)`` for the
    phone names ``phones`` (ARPAbet without stress; 'SIL' and unknown names -> the 'sil' viseme)."""
    vis = [PHONE_TO_VISEME.get(p.upper(), "sil") for p in phones]
    return np.stack([_viseme_vector(v) for v in vis]), np.array([DOMINANCE[v] for v in vis], np.float64)


def phone_rule_from_posteriors(posteriors: np.ndarray, phones: tuple[str, ...], fps: float = 30.0,
                               sigma_s: float = COART_SIGMA_S) -> np.ndarray:
    """:func:`phone_rule_face` computed from frame-level phone posteriors instead of intervals.

    Each frame's viseme target is the posterior-weighted mix of its phones' targets, weighted by their
    :data:`DOMINANCE`, blended over time with a Gaussian of ``sigma_s`` seconds (the same Cohen-Massaro
    dominance blend, sampled at the frame rate instead of 100 Hz; frames outside the array count as absent,
    so a window's edge frames use only the context the window has).

    Args:
        posteriors: ``[..., T, P]`` float, rows summing to 1 (e.g. :attr:`motion.features.AudioFeatures.phones`).
        phones: the ``P`` phone names of the posterior columns (:data:`motion.features.PHONES`).
        fps: frame rate (Hz) of the posteriors.
        sigma_s: coarticulation width (seconds).
    Returns:
        ``[..., T, 52]`` float32 ARKit weights in [0, 1] (non-mouth channels 0).
    """
    targets, _ = viseme_table(phones)
    return _posterior_blend(posteriors, phones, targets.astype(np.float64), fps, sigma_s)


def _posterior_blend(posteriors: np.ndarray, phones: tuple[str, ...], values: np.ndarray, fps: float,
                     sigma_s: float) -> np.ndarray:
    """The dominance blend over time of per-phone ``values [P, K]``: ``[..., T, K]`` float32 in [0, 1]."""
    from scipy.ndimage import convolve1d
    _, dom = viseme_table(phones)
    w = np.asarray(posteriors, np.float64) * dom                # [..., T, P] dominance-weighted posteriors
    k = _coart_kernel(sigma_s, fps)
    num = convolve1d(w @ values, k, axis=-2, mode="constant")
    den = convolve1d(w.sum(-1, keepdims=True), k, axis=-2, mode="constant")
    return np.clip(num / np.maximum(den, 1e-9), 0.0, 1.0).astype(np.float32)


def bilabial_share(posteriors: np.ndarray, phones: tuple[str, ...], fps: float = 30.0,
                   sigma_s: float = COART_SIGMA_S) -> np.ndarray:
    """The share of the lip-closing viseme (PP: /p b m/) in :func:`phone_rule_from_posteriors`'s dominance
    blend, ``[..., T]`` float32 in [0, 1]: 1 inside a /p b m/ (its dominance holds the lips shut against the
    neighbouring vowels), falling to 0 within about ``3 * sigma_s`` around it."""
    pp = np.array([[PHONE_TO_VISEME.get(p.upper(), "sil") == "PP"] for p in phones], np.float64)
    return _posterior_blend(posteriors, phones, pp, fps, sigma_s)[..., 0]


class PhoneRulePrior:
    """The face stage's articulation prior: the phone-rule mouth (:func:`phone_rule_from_posteriors`) read
    from the model input's phone block, in the face stage's normalised units.

    The face stage of a checkpoint with ``info["face_prior"]["kind"] == "phone_rule"`` denoises the residual
    ``x_n - prior(cond)`` (``x_n = (face_vector - face_mean) / face_std``); sampling adds the prior back
    (:func:`motion.diffusion.sample`'s ``prior``). The viseme table carries what two minutes of one English
    speaker's video cannot teach (lip closure at /p b m/, rounding at /uw ow w/); the diffusion learns how real
    mouths depart from it. (ChatAnyone issue 13; the residual-on-a-rule design follows JALI's split of
    articulation rules from learned style, Edwards et al. 2016.)

    Args:
        face_std: ``[FACE_DIM]`` the face stage's normalisation std (only the mouth part is used).
        phone_slice: columns of the phone posteriors in the model input.
        phones: their names (:data:`motion.features.PHONES`).
        fps: frame rate (Hz).
        sigma_s: coarticulation width (seconds).
        gain: optional ``[27]`` per mouth channel (:data:`ARKIT_MOUTH` order) multiplying the rule's weights:
            the least-squares slope of the captured weights on the rule's over the training frames
            (:func:`fit_prior_gain`), so that the residual is small where the rule's scale is not the data's.
    """

    kind = "phone_rule"

    def __init__(self, face_std: np.ndarray, phone_slice: slice, phones: tuple[str, ...], fps: float = 30.0,
                 sigma_s: float = COART_SIGMA_S, gain: np.ndarray | None = None, face_mean: np.ndarray | None = None):
        self.std = np.asarray(face_std, np.float32)
        #: None, or ``[FACE_DIM]`` the stage's mean: then :func:`motion.diffusion.sample` applies :meth:`seal`
        self.face_mean = None if face_mean is None else np.asarray(face_mean, np.float32)
        self.phone_slice, self.phones, self.fps, self.sigma_s = phone_slice, tuple(phones), float(fps), float(sigma_s)
        self.mouth = np.asarray(ARKIT_MOUTH)
        self.gain = np.ones(len(self.mouth), np.float32) if gain is None else np.asarray(gain, np.float32)

    def info(self) -> dict:
        """JSON metadata stored in the checkpoint."""
        return {"kind": self.kind, "sigma_s": self.sigma_s, "gain": [round(float(g), 5) for g in self.gain]}

    def mouth_weights(self, cond: np.ndarray) -> np.ndarray:
        """``cond [..., T, C]`` -> ``[..., T, 27]`` the rule's mouth weights (ARKit scale, before the gain)."""
        face = phone_rule_from_posteriors(np.asarray(cond)[..., self.phone_slice], self.phones, self.fps, self.sigma_s)
        return face[..., self.mouth]

    def seal(self, x_n: np.ndarray, cond: np.ndarray) -> np.ndarray:
        """Lip seal at /p b m/: where the phones call for closed lips (:func:`bilabial_share` ``s``), the
        sampled face ``x_n [..., T, FACE_DIM]`` (normalised by :attr:`face_mean` and this prior's std) is moved
        towards sealed lips: ``mouthClose`` up to ``s * jawOpen`` (ARKit's mouthClose brings the lips
        together against the open jaw, so equal weights leave no gap) and the lip raisers
        (``mouthLowerDown``, ``mouthUpperUp``) scaled by ``1 - s``. The diffusion learns from captures whose
        closures are weak (FACEGOOD never animates mouthClose; MediaPipe under-reads it), so a sampled /m/ kept
        the lips 8-14 mm apart on the sample speech; the rule's closure is a constraint, as in JALI
        (Edwards et al. 2016). Returns a new array."""
        s = bilabial_share(np.asarray(cond)[..., self.phone_slice], self.phones, self.fps, self.sigma_s)[..., None]
        m = len(self.mouth)
        mean, std = self.face_mean[:m], self.std[:m]
        raw = np.asarray(x_n, np.float32)[..., :m] * std + mean
        col = {ARKIT_NAMES[c]: i for i, c in enumerate(self.mouth)}
        jaw, close = col["jawOpen"], col["mouthClose"]
        raw[..., close] = np.maximum(raw[..., close], (s[..., 0] * np.clip(raw[..., jaw], 0, 1)))
        for name in ("mouthLowerDownLeft", "mouthLowerDownRight", "mouthUpperUpLeft", "mouthUpperUpRight"):
            raw[..., col[name]] *= 1.0 - s[..., 0]
        out = np.array(x_n, np.float32, copy=True)
        out[..., :m] = (raw - mean) / std
        return out

    def __call__(self, cond: np.ndarray) -> np.ndarray:
        """``cond [..., T, C]`` model input -> ``[..., T, FACE_DIM]`` float32 prior (normalised units; zero
        outside the mouth channels)."""
        cond = np.asarray(cond)
        out = np.zeros(cond.shape[:-1] + (len(self.std),), np.float32)
        m = len(self.mouth)
        out[..., :m] = self.mouth_weights(cond) * (self.gain / self.std[:m])
        return out


def fit_prior_gain(rules: list[np.ndarray], captures: list[np.ndarray], masks: list[np.ndarray],
                   bounds: tuple[float, float] = (0.0, 1.0)) -> np.ndarray:
    """Per-channel least-squares slope (with intercept) of captured mouth weights on the rule's, pooled over
    clips: ``rules``/``captures`` ``[T_k, 27]``, ``masks`` ``[T_k, 27]`` bool (real frames); -> ``[27]``
    float32 clipped to ``bounds`` (0 where the rule does not predict the capture; channels without frames 0)."""
    x = np.concatenate(rules).astype(np.float64)
    y = np.concatenate(captures).astype(np.float64)
    m = np.concatenate(masks).astype(bool)
    gain = np.zeros(x.shape[1], np.float32)
    for c in range(x.shape[1]):
        xc, yc = x[m[:, c], c], y[m[:, c], c]
        if len(xc) > 10 and xc.std() > 1e-6:
            gain[c] = np.clip(np.cov(xc, yc)[0, 1] / xc.var(ddof=1), *bounds)
    return gain


def av_offset_frames(audio: np.ndarray, capture: np.ndarray, max_lag: int = 10, fps: float = 30.0) -> tuple[int, float, float]:
    """Audio-video offset of a tracked talking video, as SyncNet-style data preparation corrects it (Chung &
    Zisserman, "Out of time: automated lip sync in the wild", 2016), but with a phone rule instead of a
    learned sync network: the lag at which the phone-rule jaw (pocketsphinx all-phone decoding of ``audio``)
    best correlates with the captured ``jawOpen``.

    Args:
        audio: ``[N]`` float32 16 kHz mono; capture: ``[T, 52]`` tracked ARKit weights at ``fps``.
        max_lag: search range (frames).
    Returns:
        ``(lag, r_at_lag, r_at_0)``; ``lag > 0``: the video's mouth moves ``lag`` frames before the sound
        (shift the capture later by ``lag`` frames to align it).
    """
    from .alignment import recognise_phones
    T = len(capture)
    rule = phone_rule_face(recognise_phones(audio), T, fps)[:, ARKIT_INDEX["jawOpen"]]
    r0, best, lag = pearson_best_lag(rule, capture[:, ARKIT_INDEX["jawOpen"]], max_lag)
    return int(lag), float(best), float(r0)
