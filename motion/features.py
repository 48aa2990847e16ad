"""Audio features for the motion model at 30 fps: log-mel, energy, pitch, voicing and phones.

Frame ``i`` of every feature describes the audio around time ``i / fps`` seconds (frame centres, frame 0
at t = 0).  All low-level features are first computed by ``librosa`` at a 10 ms hop (100 Hz, the rate
``pocketsphinx`` also uses) with centred windows, lightly box-smoothed over one 30 fps frame and then
linearly interpolated at the exact fractional positions ``i * 100 / fps``; the number of frames is
``round(len(samples) / 16000 * fps)``.  This needs no integer hop (16000 / 30 is not one).

Two model-input layouts (:meth:`AudioFeatures.stack`):

* ``"fixed"`` (checkpoints up to 0.4.0): log-mel, energy and pitch normalised by fixed constants;
* ``"running"``: log-mel, energy and pitch relative to their running means over the speech so far
  (:class:`motion.phone_features.RunningNorm`: a different voice, microphone or loudness does not move them),
  then the phone posteriors.

Neither uses statistics of the future, so a streaming extractor (:class:`StreamingFeatures`) and an offline
one produce the same numbers.

Phones (the last 40 columns) come, by default, from ``pocketsphinx`` (the US English acoustic model and
phonetic LM ship inside the wheel): all-phone decoding, or forced alignment when a transcript is given and
every word is in the bundled CMU dictionary (otherwise the source asked for).  A frame-level phone classifier
distilled from pocketsphinx (:mod:`motion.phone_features`, ``phones="classifier"``) is the other source:
frame-exact in streaming, but measured far worse on unseen speakers (``benchmarks/phone_features.py``).
hama's CTC phoneme recogniser (``phones="hama"``, :func:`hama_segments`, the optional extra ``hama``) is an
opt-in third, offline only. Nothing is downloaded.
"""
from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass

import librosa
import numpy as np
from scipy.ndimage import uniform_filter1d

from .audio import SAMPLE_RATE
from .errors import AudioError

__all__ = [
    "PHONES", "PHONE_SLICE", "SIL_INDEX", "N_MELS", "FEATURE_DIM", "FEATURE_LAYOUT", "LAYOUTS", "PHONE_SOURCES",
    "DEFAULT_PHONE_SOURCE", "AudioFeatures", "StreamingFeatures", "extract_features", "onset_strength",
    "phone_segments",
]

PHONES: tuple[str, ...] = (
    "SIL",
    "AA", "AE", "AH", "AO", "AW", "AY", "B", "CH", "D", "DH", "EH", "ER", "EY", "F", "G", "HH", "IH",
    "IY", "JH", "K", "L", "M", "N", "NG", "OW", "OY", "P", "R", "S", "SH", "T", "TH", "UH", "UW", "V",
    "W", "Y", "Z", "ZH",
)
"""Phone inventory: 'SIL' then the 39 CMUdict / pocketsphinx en-us phones (ARPAbet, no stress)."""
SIL_INDEX = 0
_PHONE_INDEX = {p: i for i, p in enumerate(PHONES)}

N_MELS = 80
N_FFT = 512          # 32 ms FFT at 16 kHz
WIN_LENGTH = 400     # 25 ms analysis window
HOP_100HZ = 160      # 10 ms hop
FMIN, FMAX = 20.0, 8000.0
MEL_FLOOR = 1e-6     # log(mel + MEL_FLOOR)
RMS_FLOOR = 1e-5     # log(rms + RMS_FLOOR)
PITCH_FMIN, PITCH_FMAX = 60.0, 500.0
YIN_FRAME = 1024     # 64 ms; YIN needs > 2 periods of PITCH_FMIN

# Fixed normalisation constants for stack() (measured on CMU ARCTIC / Common Voice speech, rounded).
MEL_MEAN, MEL_SCALE = -6.0, 4.0            # log-mel (natural log of power)  -> about [-2, 3]
ENERGY_REF, ENERGY_SCALE = -4.5, 2.5       # log RMS; -4.5 ~ rms 0.011 (quiet speech, -39 dBFS)
PITCH_REF, PITCH_SCALE = float(np.log(150.0)), 0.5  # log-F0 around 150 Hz, +-0.5 ~ x/1.65
VOICED_MIN_LOG_RMS = float(np.log(0.003))  # voicing needs rms above -50 dBFS ...
VOICED_MIN_NCCF = 0.5                      # ... and a normalised autocorrelation >= 0.5 at the YIN period
NCCF_WIN = 512                             # 32 ms correlation window

FEATURE_LAYOUT: tuple[tuple[str, int], ...] = (
    ("mel", N_MELS), ("energy", 1), ("pitch", 1), ("voiced", 1), ("phones", len(PHONES)),
)
"""Order and width of the blocks in :meth:`AudioFeatures.stack`."""
FEATURE_DIM = sum(w for _, w in FEATURE_LAYOUT)
"""Width D of :meth:`AudioFeatures.stack` (80 mel + energy + pitch + voiced + 40 phones = 123)."""
PHONE_SLICE = slice(FEATURE_DIM - len(PHONES), FEATURE_DIM)
"""Columns of the phone posteriors in :meth:`AudioFeatures.stack` (the last block of every layout)."""
LAYOUTS = ("fixed", "fixed-sil", "running")
"""Model-input layouts of :meth:`AudioFeatures.stack` (all :data:`FEATURE_DIM` wide, blocks in
:data:`FEATURE_LAYOUT` order): ``fixed`` as up to checkpoint 0.4.0; ``fixed-sil`` the same with the phone
block all 'SIL'; ``running`` relative to the running means (:mod:`motion.phone_features`)."""
PHONE_SOURCES = ("classifier", "pocketsphinx", "hama", "none")
DEFAULT_PHONE_SOURCE = "pocketsphinx"
"""Where ``extract_features(phones=True)`` gets its phones (see :data:`PHONE_SOURCES`)."""


@dataclass
class AudioFeatures:
    """Frame-aligned audio features; frame ``i`` is centred at ``i / fps`` seconds.

    Attributes:
        mel: ``[T, 80]`` float32, ``log(mel_power + 1e-6)`` of an 80-band Slaney mel spectrogram
            (``librosa.feature.melspectrogram``: n_fft 512, win 400, fmin 20 Hz, fmax 8 kHz, power 2,
            samples in full-scale units).
        energy: ``[T]`` float32, ``log(rms + 1e-5)`` (natural log) of the 25 ms frame RMS
            (``librosa.feature.rms``); digital silence is ``log(1e-5) = -11.5``, a full-scale sine -0.35.
        pitch: ``[T]`` float32, natural log of F0 in Hz from ``librosa.yin`` (60-500 Hz), 0 where unvoiced.
        voiced: ``[T]`` float32 in {0, 1}: 1 where RMS > -50 dBFS and the signal is periodic: the
            normalised cross-correlation (NCCF, as in RAPT, Talkin 1995) between the 32 ms window and the
            same window one YIN period later is >= 0.5.
        phones: ``[T, 40]`` float32 phone posteriors over :data:`PHONES` (rows sum to 1): the classifier's
            softmax, or for pocketsphinx the fraction of the frame's 1/fps window covered by each
            recognised/aligned phone; all 'SIL' when phones were not asked for.
        fps: frame rate in Hz.
        relative: ``[T, 83]`` float32 or None: :func:`motion.phone_features.classifier_input` of the
            running-normalised mel, energy and pitch (+ voicing); the first 83 columns of the ``running``
            layout.
        phone_source: which source filled ``phones`` (:data:`PHONE_SOURCES`, or ``"aligned"``).
    """

    mel: np.ndarray
    energy: np.ndarray
    pitch: np.ndarray
    voiced: np.ndarray
    phones: np.ndarray
    fps: float = 30.0
    relative: np.ndarray | None = None
    phone_source: str = "none"

    @property
    def num_frames(self) -> int:
        """T, the number of frames."""
        return int(self.energy.shape[0])

    def stack(self, layout: str = "fixed") -> np.ndarray:
        """Concatenate the normalised features into the model input.

        Args:
            layout: one of :data:`LAYOUTS`.
        Returns:
            ``[T, FEATURE_DIM]`` float32, blocks in :data:`FEATURE_LAYOUT` order.  ``fixed``:
            ``(mel - MEL_MEAN) / MEL_SCALE`` (80), ``(energy - ENERGY_REF) / ENERGY_SCALE`` (1),
            ``voiced * (pitch - PITCH_REF) / PITCH_SCALE`` (1; 0 when unvoiced), ``voiced`` (1),
            ``phones`` (40); ``fixed-sil``: the same with every frame's phones 'SIL'; ``running``:
            :attr:`relative` (83) then ``phones`` (40).  No layout depends on frames after the current one
            (beyond the features' own lookahead).
        Raises:
            ValueError: unknown layout, or ``running`` on features computed without :attr:`relative`.
        """
        if layout not in LAYOUTS:
            raise ValueError(f"unknown feature layout {layout!r}; use one of {LAYOUTS}")
        phones = self.phones
        if layout == "fixed-sil":
            phones = np.zeros_like(self.phones)
            phones[:, SIL_INDEX] = 1.0
        if layout == "running":
            if self.relative is None:
                raise ValueError("these features have no running-normalised block")
            return np.concatenate([self.relative, phones], axis=1).astype(np.float32, copy=False)
        pitch_n = np.where(self.voiced > 0, (self.pitch - PITCH_REF) / PITCH_SCALE, 0.0)
        out = np.concatenate([
            (self.mel - MEL_MEAN) / MEL_SCALE,
            ((self.energy - ENERGY_REF) / ENERGY_SCALE)[:, None],
            pitch_n[:, None],
            self.voiced[:, None],
            phones,
        ], axis=1)
        return out.astype(np.float32, copy=False)


def _num_frames(n_samples: int, fps: float) -> int:
    return int(round(n_samples / SAMPLE_RATE * fps))


def _to_fps(x: np.ndarray, num_frames: int, fps: float, rate: float = 100.0) -> np.ndarray:
    """Resample a frame sequence at ``rate`` Hz (frame k at k / rate s) to ``fps`` (frame i at i / fps s).

    Box-smooths over one output frame (rate / fps input frames, an anti-alias pool) and then linearly
    interpolates at the exact fractional positions ``i * rate / fps``; positions past the end repeat the
    last frame.  ``x`` is ``[N]`` or ``[N, D]``; returns ``[num_frames]`` or ``[num_frames, D]`` float32.
    """
    x = np.asarray(x, dtype=np.float32)
    size = max(1, int(round(rate / fps)))
    if size > 1:
        x = uniform_filter1d(x, size=size, axis=0, mode="nearest")
    pos = np.arange(num_frames, dtype=np.float64) * (rate / fps)
    pos = np.clip(pos, 0, x.shape[0] - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, x.shape[0] - 1)
    w = (pos - lo).astype(np.float32)
    if x.ndim == 2:
        w = w[:, None]
    return ((1.0 - w) * x[lo] + w * x[hi]).astype(np.float32)


def _periodicity(y: np.ndarray, f0: np.ndarray) -> np.ndarray:
    """NCCF at the YIN period for each 100 Hz frame (centred like ``librosa.yin``), in [-1, 1].

    ``r = <a, b> / sqrt(<a, a> <b, b>)`` with ``a`` the ``NCCF_WIN`` samples of the frame and ``b`` the
    same span shifted by one period ``round(sr / f0)`` (Talkin 1995, RAPT); ~1 for a periodic signal,
    ~0 for noise.  Frames come from ``librosa.util.frame`` with YIN's centring (zero padding).
    """
    pad = YIN_FRAME // 2
    frames = librosa.util.frame(np.pad(y, (pad, pad)), frame_length=YIN_FRAME, hop_length=HOP_100HZ,
                                axis=0)[: len(f0)]
    lag = np.clip(np.round(SAMPLE_RATE / f0).astype(np.int64), 1, YIN_FRAME - NCCF_WIN)
    start = (YIN_FRAME - NCCF_WIN - lag) // 2          # keep the pair centred in the frame
    idx = start[:, None] + np.arange(NCCF_WIN)[None, :]
    rows = np.arange(frames.shape[0])[:, None]
    a = frames[rows, idx]
    b = frames[rows, idx + lag[:, None]]
    num = np.einsum("ij,ij->i", a, b)
    den = np.sqrt(np.einsum("ij,ij->i", a, a) * np.einsum("ij,ij->i", b, b))
    return np.where(den > 0, num / np.maximum(den, 1e-20), 0.0).astype(np.float32)


def _check_input(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    if sample_rate != SAMPLE_RATE:
        raise AudioError(f"Features need {SAMPLE_RATE} Hz audio, got {sample_rate} Hz "
                         "(use motion.audio.load_audio / prepare_audio first).")
    y = np.asarray(samples, dtype=np.float32)
    if y.ndim != 1:
        raise AudioError(f"Features need mono audio of shape [N], got shape {y.shape}.")
    if not np.isfinite(y).all():
        raise AudioError("Features need finite audio samples; found NaN or inf.")
    return y


# --------------------------------------------------------------------------------------------- phones

_DECODER_LOCK = threading.Lock()
#: Beam (and phone beam) of all-phone decoding. 1e-10 (until 0.4.0) lost the search on real speech: the
#: 112 s FACEGOOD take 1114_2_03 decoded as one 'HH' from 6.1 s to the end (37 phones; 604 at 1e-12 and wider).
#: 1e-20: 2.0 s per 60 s of speech on one core (1e-10: 1.3 s; pocketsphinx's default 1e-48: 2.1 s).
ALLPHONE_BEAM = 1e-20


def _decoder(kind: str):
    """A fresh pocketsphinx Decoder: ``'allphone'`` (phonetic LM) or ``'align'`` (dictionary only).

    Fresh for every utterance: a decoder keeps its live cepstral-mean normalisation (and more) from one
    utterance to the next, so a reused one decoded the same audio differently depending on what it had
    heard before (checked on the shipped sample: the first and second decoding differed). Creating one
    takes ~25 ms once the model files are in the page cache.
    """
    from pocketsphinx import Decoder, get_model_path

    mp = get_model_path()
    hmm = os.path.join(mp, "en-us", "en-us")
    if kind == "allphone":
        return Decoder(hmm=hmm, allphone=os.path.join(mp, "en-us", "en-us-phone.lm.bin"),
                       dict=None, loglevel="FATAL", lw=2.0, beam=ALLPHONE_BEAM, pbeam=ALLPHONE_BEAM)
    return Decoder(hmm=hmm, dict=os.path.join(mp, "en-us", "cmudict-en-us.dict"), lm=None, loglevel="FATAL")


def _to_int16(y: np.ndarray) -> bytes:
    return (np.clip(y, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


def _normalise_transcript(text: str) -> list[str]:
    text = text.lower().replace("’", "'")
    return [w for w in re.sub(r"[^a-z0-9' ]+", " ", text).split() if w.strip("'")]


def _align_segments(pcm: bytes, transcript: str | list[str], dec=None) -> list[tuple[str, int, int]] | None:
    """Forced alignment (two-pass: word then phone level); None when it cannot be done reliably.

    ``transcript``: text (normalised here), or a list of dictionary words used as they are.
    ``dec``: the pocketsphinx decoder to use (default: a fresh aligner, :func:`_decoder`).
    """
    words = list(transcript) if isinstance(transcript, list) else _normalise_transcript(transcript)
    if not words:
        return None
    dec = dec if dec is not None else _decoder("align")
    if any(dec.lookup_word(w) is None for w in words):
        return None  # out-of-dictionary word: we do not guess pronunciations
    try:
        dec.set_align_text(" ".join(words))
        dec.start_utt()
        dec.process_raw(pcm, full_utt=True)
        dec.end_utt()
        if dec.hyp() is None:
            return None
        dec.set_alignment()
        dec.start_utt()
        dec.process_raw(pcm, full_utt=True)
        dec.end_utt()
        alignment = dec.get_alignment()
        if alignment is None:
            return None
        return [(p.name, int(p.start), int(p.start + p.duration - 1)) for p in alignment.phones()]
    except RuntimeError:
        return None


def phone_segments(samples: np.ndarray, transcript: str | None = None) -> list[tuple[str, int, int]]:
    """Recognise (or align) phones with pocketsphinx.

    Args:
        samples: ``[N]`` float32 mono audio at 16 kHz, full scale [-1, 1].
        transcript: optional text of the utterance.  When given and every word is in the bundled CMU
            dictionary, the phones are force-aligned to it; otherwise (or when alignment fails) all-phone
            decoding with the bundled phonetic LM is used, on overlapping pieces of
            :data:`ALLPHONE_PIECE_S` seconds (each phone kept from the piece that holds its middle away from
            the overlaps).

    Returns:
        ``[(phone, first_frame, last_frame), ...]`` in pocketsphinx's 100 frames/s (10 ms) units, inclusive;
        phone names as the decoder emits them (ARPAbet, 'SIL', noise units like '+NSN+').
    """
    y = _check_input(samples, SAMPLE_RATE)
    pcm = _to_int16(y)
    if transcript:
        with _DECODER_LOCK:
            segs = _align_segments(pcm, transcript)
        if segs:
            return segs
    n = len(y)
    piece, step = int(ALLPHONE_PIECE_S * SAMPLE_RATE), int((ALLPHONE_PIECE_S - ALLPHONE_OVERLAP_S) * SAMPLE_RATE)
    if n <= piece:
        return _allphone(pcm, 0)
    spans = []
    for a in range(0, n, step):
        b = min(n, a + piece)
        spans.append((a, b))
        if b == n:
            break
    decoded = _decode_pieces([(pcm[2 * a:2 * b], a // HOP_100HZ) for a, b in spans])
    out: list[tuple[str, int, int]] = []
    half = int(ALLPHONE_OVERLAP_S * 100 / 2)
    for (a, b), segs in zip(spans, decoded):
        first, last = a == 0, b == n
        lo = a // HOP_100HZ + (0 if first else half)           # keep the phones whose middle falls here
        hi = b // HOP_100HZ - (0 if last else half)
        for name, s0, s1 in segs:
            if lo <= (s0 + s1) // 2 < hi or (last and (s0 + s1) // 2 >= hi):
                out.append((name, s0, s1))
    return out


def allphone_workers() -> int:
    """Processes that decode the all-phone pieces of long audio at once: ``OMP_NUM_THREADS`` when set (the
    CPU budget the user gave torch, as :class:`motion.inference.MotionGenerator` reads it), else the CPU count;
    at most 4. pocketsphinx holds the GIL while it decodes, so threads would not run side by side."""
    n = int(os.environ.get("OMP_NUM_THREADS") or os.cpu_count() or 1)
    return max(1, min(4, n))


def _decode_pieces(pieces: list[tuple[bytes, int]]) -> list[list[tuple[str, int, int]]]:
    """All-phone decoding of ``(pcm, offset)`` pieces, in order: side by side in forked worker processes
    (:func:`allphone_workers`; each piece gets a fresh decoder either way, so the result is the same as one
    after the other), or here when there is one worker, one piece, or no ``fork`` (not Linux/macOS)."""
    import multiprocessing as mp
    workers = min(allphone_workers(), len(pieces))
    if workers < 2 or "fork" not in mp.get_all_start_methods():
        return [_allphone(p, o) for p, o in pieces]
    from concurrent.futures import ProcessPoolExecutor
    # fork: the child has the model files and this module already loaded (no imports, ~10 ms to start);
    # it runs only pocketsphinx, never torch, and takes no lock the parent's threads may hold
    with ProcessPoolExecutor(workers, mp_context=mp.get_context("fork")) as pool:
        return list(pool.map(_allphone_unlocked, [p for p, _ in pieces], [o for _, o in pieces]))


#: All-phone decoding works on pieces of at most this many seconds (overlapping by ALLPHONE_OVERLAP_S), which
#: bounds what one lost search can spoil: with the old beams of 1e-10 one decoding stopped finding phones
#: (150 s of real speech ended in one 'Y' from 66.6 s on; the 64 s BEAT2 take in a 2.9 s 'JH'), and pieces alone
#: did not cure it (1114_2_03 still had one 'HH' from 6.1 s to 20 s): ALLPHONE_BEAM did.
ALLPHONE_PIECE_S = 20.0
ALLPHONE_OVERLAP_S = 2.0


def _allphone(pcm: bytes, offset: int) -> list[tuple[str, int, int]]:
    """All-phone decoding of int16 ``pcm`` with a fresh decoder; frames (100 Hz) shifted by ``offset``."""
    with _DECODER_LOCK:
        return _allphone_unlocked(pcm, offset)


def _allphone_unlocked(pcm: bytes, offset: int) -> list[tuple[str, int, int]]:
    dec = _decoder("allphone")
    dec.start_utt()
    dec.process_raw(pcm, full_utt=True)
    dec.end_utt()
    return [(s.word, int(s.start_frame) + offset, int(s.end_frame) + offset) for s in dec.seg()]


class LivePhoneDecoder:
    """All-phone decoding of a stream as its audio arrives (pocketsphinx live decoding), for
    :class:`StreamingFeatures`: each call feeds only the audio not fed before and reads the current best
    phone path, instead of decoding every window's audio again with a fresh decoder.

    Measured against decoding each 1.7 s window afresh (the streaming path until 0.5.1), fed in 200 ms steps:
    9 ms per step instead of 73-75 ms, and the phones of the frames a step emits agree with the offline
    decoding (:func:`phone_segments`) as often or more (a0009 0.76 vs 0.97, a 30 s FACEGOOD take 0.81 vs
    0.70: the live search keeps the whole utterance's left context and its cepstral mean).

    The utterance is restarted every :data:`ALLPHONE_PIECE_S` seconds of audio (as the offline pieces are),
    carrying the cepstral mean over; the phones of the audio before a restart are kept as last decoded.
    Times are 100 Hz frames (:data:`HOP_100HZ` samples) from the first sample of the stream.
    """

    def __init__(self):
        self._dec = None
        self._fed = 0            # samples fed so far
        self._utt = 0            # sample where the current utterance started
        self._done: list[tuple[str, int, int]] = []   # segments of the utterances before the current one

    def feed(self, audio: np.ndarray, offset: int) -> None:
        """Feed ``audio [N]`` float32 16 kHz that starts at sample ``offset`` of the stream; samples fed
        before are skipped. A gap (``offset`` after the samples fed so far) restarts the utterance there."""
        y = np.asarray(audio, np.float32)
        if offset > self._fed:
            self._restart(offset)
        new = y[self._fed - offset:]
        if not len(new):
            return
        if self._dec is None:
            self._restart(offset + len(y) - len(new))
        piece = int(ALLPHONE_PIECE_S * SAMPLE_RATE)
        while len(new):
            room = piece - (self._fed - self._utt)
            part, new = new[:room], new[room:]
            self._dec.process_raw(_to_int16(part), full_utt=False)
            self._fed += len(part)
            if self._fed - self._utt >= piece:
                self._restart(self._fed)

    def _restart(self, at: int) -> None:
        cmn = None
        if self._dec is not None:
            self._dec.end_utt()
            self._done += self._current()
            cmn = self._dec.get_cmn()
        self._dec = _decoder("allphone")
        if cmn:
            self._dec.set_cmn(cmn)
        self._dec.start_utt()
        self._fed = self._utt = at

    def _current(self) -> list[tuple[str, int, int]]:
        off = self._utt // HOP_100HZ
        return [(seg.word, int(seg.start_frame) + off, int(seg.end_frame) + off)
                for seg in self._dec.seg() or ()]         # None before the search has a hypothesis

    def segments(self, since: int = 0) -> list[tuple[str, int, int]]:
        """``[(phone, first, last), ...]`` (100 Hz frames of the stream, inclusive) of the audio fed so far,
        those ending at or after frame ``since``; older ones are forgotten."""
        self._done = [x for x in self._done if x[2] >= since]
        cur = self._current() if self._dec is not None else []
        return self._done + [x for x in cur if x[2] >= since]


# ----------------------------------------------------------------------- phones from hama (opt-in)

#: hama's IPA phonemes -> ARPAbet (:data:`PHONES`). hama (PyPI ``hama``, Apache-2.0, its CTC phoneme
#: recogniser ships inside the wheel) is multilingual; its English inventory maps one to one, the other
#: symbols to the nearest English phone; a symbol not listed here is dropped (the gap takes its neighbours).
IPA_TO_ARPABET = {
    "æ": "AE", "ɑ": "AA", "ɒ": "AA", "a": "AA", "ä": "AA", "ɔ": "AO", "ʌ": "AH", "ə": "AH", "ɐ": "AH",
    "ɛ": "EH", "e": "EY", "eɪ": "EY", "ɝ": "ER", "ɚ": "ER", "ɜ": "ER", "ɪ": "IH", "ɨ": "IH", "i": "IY",
    "oʊ": "OW", "o": "OW", "ɔɪ": "OY", "ʊ": "UH", "u": "UW", "aɪ": "AY", "aʊ": "AW", "eə": "EH", "ɪə": "IH",
    "ju": "UW", "wa": "AA", "wi": "IY",
    "b": "B", "β": "B", "ɓ": "B", "t͡ʃ": "CH", "d": "D", "ɾ": "D", "ð": "DH", "f": "F", "ɸ": "F", "g": "G",
    "ɡ": "G", "h": "HH", "ɦ": "HH", "d͡ʒ": "JH", "k": "K", "kʰ": "K", "l": "L", "ɫ": "L", "m": "M", "ɱ": "M",
    "n": "N", "ŋ": "NG", "p": "P", "pʰ": "P", "ɹ": "R", "r": "R", "ɻ": "R", "s": "S", "ʃ": "SH", "t": "T",
    "tʰ": "T", "θ": "TH", "v": "V", "w": "W", "j": "Y", "z": "Z", "ʒ": "ZH"}
#: hama's CTC spans start this late against hand-labelled phones (ARCTIC a0009's /p/: 0.815 s labelled,
#: hama 0.90 s; the issue's check of the shipped sample: 50-90 ms); they are moved this much earlier
HAMA_ONSET_LAG_S = 0.07
#: a phone holds until the next one starts, at most this long (CTC spans mark a phone's peak, not its length;
#: held without limit, the last phone of an utterance kept the mouth open through the silence after it)
HAMA_MAX_PHONE_S = 0.25
_HAMA_MODEL = None


def hama_segments(samples: np.ndarray) -> list[tuple[str, int, int]]:
    """Phones of ``samples`` by hama's phoneme recogniser, in :func:`phone_segments`' form.

    An opt-in phone source (``phones="hama"``; ``pip install -e '.[hama]'``): more robust to the voice than
    pocketsphinx (the phones of a0007 with and without a 3-semitone pitch shift differ by a phone error
    rate of 0.21-0.23 against pocketsphinx's 0.76-0.82; measured for issue 13) but slower (15-22x real
    time on 2 cores against ~43x) and offline only (no live decoding).

    Args:
        samples: ``[N]`` float32 mono audio at 16 kHz, full scale [-1, 1].
    Returns:
        ``[(phone, first_frame, last_frame), ...]`` in 100 frames/s units, inclusive, ARPAbet names
        (:data:`IPA_TO_ARPABET`) and 'SIL' wherever no phone holds (:data:`HAMA_MAX_PHONE_S`), with onsets
        moved :data:`HAMA_ONSET_LAG_S` earlier.
    Raises:
        ChatAnyoneError: hama is not installed.
    """
    global _HAMA_MODEL
    y = _check_input(samples, SAMPLE_RATE)
    if _HAMA_MODEL is None:
        try:
            from hama import ASRModel
        except ImportError:
            from .errors import ChatAnyoneError
            raise ChatAnyoneError("phone source 'hama' needs the hama package: pip install -e '.[hama]'") from None
        _HAMA_MODEL = ASRModel()
    result = _HAMA_MODEL.transcribe_waveform(y, SAMPLE_RATE)
    spans = []
    for sp in _HAMA_MODEL.phoneme_spans(result):
        name = IPA_TO_ARPABET.get(sp.phoneme.replace("\u032a", "").replace("\u031e", ""))   # dental, lowered marks
        if name:
            spans.append((name, max(0.0, sp.start_ms / 1000 - HAMA_ONSET_LAG_S)))
    n100 = len(y) // HOP_100HZ + 1
    out, t = [], 0
    for k, (name, start) in enumerate(spans):
        nxt = spans[k + 1][1] if k + 1 < len(spans) else n100 / 100
        s100 = max(t, int(start * 100))
        e100 = max(s100, int(min(nxt, start + HAMA_MAX_PHONE_S) * 100) - 1)
        if s100 >= n100:
            break
        if s100 > t:
            out.append(("SIL", t, s100 - 1))
        out.append((name, s100, min(e100, n100 - 1)))
        t = min(e100, n100 - 1) + 1
    if t < n100:
        out.append(("SIL", t, n100 - 1))
    return out


def _phone_posteriors(segments, n100: int, num_frames: int, fps: float) -> np.ndarray:
    labels = np.full(n100, SIL_INDEX, dtype=np.int64)
    for name, start, end in segments:
        idx = _PHONE_INDEX.get(name.upper(), SIL_INDEX)  # noise units (+NSN+, +SPN+, ...) -> SIL
        labels[max(start, 0):min(end + 1, n100)] = idx
    one_hot = np.eye(len(PHONES), dtype=np.float32)[labels]
    post = _to_fps(one_hot, num_frames, fps)
    return post / np.maximum(post.sum(axis=1, keepdims=True), 1e-6)


# ------------------------------------------------------------------------------------------- features

def extract_features(samples: np.ndarray, sample_rate: int = SAMPLE_RATE, fps: float = 30,
                     num_frames: int | None = None, transcript: str | None = None,
                     phones: bool | str = True, relative: bool = True) -> AudioFeatures:
    """Compute :class:`AudioFeatures` for a clip.

    Args:
        samples: ``[N]`` float32 mono audio at 16 kHz in [-1, 1] (from :func:`motion.audio.load_audio`).
        sample_rate: must be 16000 (checked).
        fps: output frame rate in Hz; frame i is centred at i / fps seconds.
        num_frames: force the output length T: the audio is zero-padded (silence) or truncated to
            ``num_frames / fps`` seconds first.  Default ``round(N / 16000 * fps)``.
        transcript: optional text: phones are force-aligned to it with pocketsphinx (see
            :func:`phone_segments`); when that cannot be done, ``phones`` decides.
        phones: the phone source, one of :data:`PHONE_SOURCES`; True = :data:`DEFAULT_PHONE_SOURCE`
            (pocketsphinx all-phone), False = ``"none"`` (every frame 'SIL').
        relative: compute :attr:`AudioFeatures.relative` (the running normalisation; needed by the
            classifier and the ``running`` layout).

    Returns:
        :class:`AudioFeatures` with T frames.

    Raises:
        AudioError: wrong sample rate, non-mono or non-finite samples, or T < 1.
        ValueError: unknown phone source.
    """
    source = DEFAULT_PHONE_SOURCE if phones is True else ("none" if phones is False else str(phones))
    if source not in PHONE_SOURCES:
        raise ValueError(f"unknown phone source {phones!r}; use one of {PHONE_SOURCES}")
    y = _check_input(samples, sample_rate)
    T = _num_frames(len(y), fps) if num_frames is None else int(num_frames)
    if T < 1:
        raise AudioError(f"Audio of {len(y)} samples gives {T} frames at {fps} fps; need at least 1.")
    n_needed = int(round(T / fps * SAMPLE_RATE))
    if len(y) < n_needed:
        y = np.pad(y, (0, n_needed - len(y)))
    elif len(y) > n_needed and num_frames is not None:
        y = y[:n_needed]

    # 100 Hz features, frame k centred at k * 10 ms (librosa centre=True).
    mel_power = librosa.feature.melspectrogram(
        y=y, sr=SAMPLE_RATE, n_fft=N_FFT, win_length=WIN_LENGTH, hop_length=HOP_100HZ,
        n_mels=N_MELS, fmin=FMIN, fmax=FMAX, power=2.0)
    n100 = mel_power.shape[1]
    mel = _to_fps(np.log(mel_power.T + MEL_FLOOR), T, fps)

    rms = librosa.feature.rms(y=y, frame_length=WIN_LENGTH, hop_length=HOP_100HZ)[0]
    log_rms100 = np.log(rms + RMS_FLOOR)
    energy = _to_fps(log_rms100, T, fps)

    f0 = librosa.yin(y, fmin=PITCH_FMIN, fmax=PITCH_FMAX, sr=SAMPLE_RATE, frame_length=YIN_FRAME,
                     hop_length=HOP_100HZ)
    nccf = _periodicity(y, f0)
    n = min(len(f0), len(log_rms100))
    voiced100 = ((log_rms100[:n] > VOICED_MIN_LOG_RMS) & (nccf[:n] >= VOICED_MIN_NCCF)).astype(np.float32)
    voiced = (_to_fps(voiced100, T, fps) >= 0.5).astype(np.float32)
    # Interpolate pitch only across voiced 100 Hz frames so unvoiced garbage does not leak in.
    log_f0 = np.log(f0[:n]).astype(np.float32)
    pitch = np.where(voiced > 0, _to_fps(np.where(voiced100 > 0, log_f0, 0.0), T, fps)
                     / np.maximum(_to_fps(voiced100, T, fps), 1e-6), 0.0).astype(np.float32)

    rel = None
    if relative or source == "classifier":
        from .phone_features import RunningNorm, classifier_input
        rel = classifier_input(*RunningNorm().normalise(mel, energy, pitch, voiced), voiced)
    segs = None
    if transcript:
        with _DECODER_LOCK:
            segs = _align_segments(_to_int16(y), transcript)
    if segs:
        source = "aligned"
        post = _phone_posteriors(segs, n100, T, fps)
    elif source == "pocketsphinx":
        post = _phone_posteriors(phone_segments(y), n100, T, fps)
    elif source == "hama":
        post = _phone_posteriors(hama_segments(y), n100, T, fps)
    elif source == "classifier":
        from .phone_features import phone_posteriors
        post = phone_posteriors(rel)
    else:
        post = np.zeros((T, len(PHONES)), dtype=np.float32)
        post[:, SIL_INDEX] = 1.0
    return AudioFeatures(mel=mel, energy=energy, pitch=pitch, voiced=voiced, phones=post, fps=float(fps),
                         relative=rel, phone_source=source)


def onset_strength(samples: np.ndarray, sample_rate: int = SAMPLE_RATE, fps: float = 30,
                   num_frames: int | None = None) -> np.ndarray:
    """Onset strength envelope (spectral flux, ``librosa.onset.onset_strength``) at ``fps``.

    Args:
        samples: ``[N]`` float32 mono audio at 16 kHz.
        sample_rate: must be 16000.
        fps: output frame rate in Hz (frame i at i / fps s).
        num_frames: output length; default ``round(N / 16000 * fps)``.

    Returns:
        ``[T]`` float32, non-negative, arbitrary units (librosa's log-power mel flux, 100 Hz, pooled).
    """
    y = _check_input(samples, sample_rate)
    T = _num_frames(len(y), fps) if num_frames is None else int(num_frames)
    env = librosa.onset.onset_strength(y=y, sr=SAMPLE_RATE, hop_length=HOP_100HZ, n_fft=N_FFT)
    return _to_fps(env, T, fps)


class StreamingFeatures:
    """Model inputs for a stream, frame-exact with :func:`extract_features` + :meth:`AudioFeatures.stack`.

    The streaming path computes raw features (``relative=False``, ``phones=False``) on short audio buffers
    that overlap; this class carries the running normalisation (:class:`motion.phone_features.RunningNorm`)
    across them, normalising each frame once and in order, keeps the last normalised frames for the phone
    classifier's left context, and stacks each layout.

    Args:
        layouts: the layouts to produce (:data:`LAYOUTS`), e.g. ``("running", "fixed-sil")``.
        phones: :data:`PHONE_SOURCES`. ``"pocketsphinx"`` decodes the stream live (:class:`LivePhoneDecoder`,
            all-phone; a window's newest frames get the phones of the best path through the audio up to the
            window's end plus the features' 64 ms, so they can differ from the offline decoding of the whole
            clip, which also sees later audio); ``"classifier"`` is frame-exact with offline.
    Raises:
        ValueError: unknown layout or phone source.
    """

    def __init__(self, layouts, phones: str = "none"):
        self.layouts = list(dict.fromkeys(layouts))
        if any(k not in LAYOUTS for k in self.layouts) or phones not in PHONE_SOURCES or phones == "hama":
            raise ValueError(f"streaming features: layouts {self.layouts}, phones {phones!r} not supported"
                             + (" (hama decodes whole utterances, not a live stream)" if phones == "hama" else ""))
        self.phones = phones
        self.need_rel = phones == "classifier" or "running" in self.layouts
        self._norm = None
        self._rel = np.zeros((0, 83), np.float32)   # normalised rows [base, next)
        self._base = self._next = None
        self._live = LivePhoneDecoder() if phones == "pocketsphinx" else None

    def rows(self, feats: AudioFeatures, first: int, start: int, end: int,
             audio: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """``{layout: [end - start, FEATURE_DIM] float32}`` for frames [start, end) of the stream.

        Args:
            feats: raw features of frames ``[first, first + feats.num_frames)``, with
                ``first <= start <= end <= first + feats.num_frames``; successive calls must not leave a gap
                (``first`` <= the previous call's ``end``) and ``end`` must not decrease.
            audio: the 16 kHz samples ``feats`` were computed from (starting at frame ``first``); needed
                for ``phones="pocketsphinx"``.
        """
        out: dict[str, np.ndarray] = {}
        sl = slice(start - first, end - first)
        post = None
        if self.phones == "pocketsphinx":
            if audio is None:
                raise ValueError("streaming pocketsphinx phones need the buffer's audio")
            y = _check_input(audio, SAMPLE_RATE)
            n100 = 1 + len(y) // HOP_100HZ  # as librosa's centred frames in extract_features
            at = int(round(first * SAMPLE_RATE / feats.fps))      # the buffer's first sample in the stream
            self._live.feed(y, at)
            f0 = at // HOP_100HZ
            segs = [(w, a - f0, b - f0) for w, a, b in self._live.segments(since=f0)]
            post = _phone_posteriors(segs, n100, feats.num_frames, feats.fps)[sl]
        if self.need_rel:
            from .phone_features import CLASSIFIER_LEFT_FRAMES, RunningNorm, classifier_input, phone_posteriors
            if self._norm is None:
                self._norm, self._base, self._next = RunningNorm(), first, first
            if first > self._next:
                raise ValueError(f"streaming features: frames [{self._next}, {first}) were skipped")
            a, b = self._next - first, end - first
            if b > a:
                new = classifier_input(*self._norm.normalise(feats.mel[a:b], feats.energy[a:b], feats.pitch[a:b],
                                                             feats.voiced[a:b]), feats.voiced[a:b])
                self._rel = np.concatenate([self._rel, new])
                self._next = end
            keep = max(self._base, start - CLASSIFIER_LEFT_FRAMES)
            self._rel, self._base = self._rel[keep - self._base:], keep
            rel = self._rel[start - self._base:end - self._base]
            if self.phones == "classifier":
                post = phone_posteriors(self._rel[:end - self._base])[start - self._base:]
        for k in self.layouts:
            f = AudioFeatures(mel=feats.mel[sl], energy=feats.energy[sl], pitch=feats.pitch[sl],
                              voiced=feats.voiced[sl], phones=feats.phones[sl] if post is None else post,
                              fps=feats.fps, relative=rel if self.need_rel else None)
            out[k] = f.stack(k)
        return out
