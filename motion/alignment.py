"""Phones with times: pocketsphinx forced alignment of a known transcript, and transcripts known from names.

The decoder itself lives in :mod:`motion.features` (:func:`motion.features.phone_segments`, the model's
phone features); this module turns its 10 ms frame segments into :class:`PhoneInterval` objects in seconds,
refuses to fall back silently when a transcript cannot be aligned, and knows the transcripts that our
held-out data spell in their names:

* **GRID** (Cooke, Barker, Cunningham, Shao 2006): six-word command sentences whose file stem spells the
  sentence one character per word, e.g. ``bbaf2n`` = "bin blue at f two now" (:func:`grid_transcript`).
* **CMU ARCTIC** HTS full-context ``.lab`` files (times in 100 ns, the phone between ``-`` and ``+``;
  :func:`read_htk_lab`), the reference for the alignment accuracy test.

Phones are ARPAbet without stress (the 39 CMUdict phones of :data:`motion.features.PHONES`) plus ``SIL``;
pocketsphinx noise units (``+NSN+``, ``+SPN+`` ...) are reported as ``SIL``.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .conventions import MODEL_FPS
from .errors import ChatAnyoneError

__all__ = ["PhoneInterval", "AlignmentError", "force_align", "recognise_phones", "grid_transcript",
           "read_htk_lab", "onset_errors", "phones_at_frames", "LAB_TO_ARPABET"]

#: pocketsphinx reports 100 frames per second (10 ms hop)
PS_FRAME_S = 0.01

#: Festival/ARCTIC/TIMIT label phones spelled differently from the CMUdict inventory.
LAB_TO_ARPABET = {"ax": "AH", "pau": "SIL", "sil": "SIL", "h#": "SIL", "axr": "ER", "el": "L", "em": "M",
                  "en": "N", "nx": "N", "dx": "T", "hv": "HH", "ix": "IH"}

# GRID grammar (Cooke et al. 2006): command, colour, preposition, letter (no W), digit, adverb.
_GRID = [
    {"b": "bin", "l": "lay", "p": "place", "s": "set"},
    {"b": "blue", "g": "green", "r": "red", "w": "white"},
    {"a": "at", "b": "by", "i": "in", "w": "with"},
    None,  # letter: spoken as its name
    {"z": "zero", "0": "zero", "1": "one", "2": "two", "3": "three", "4": "four", "5": "five", "6": "six",
     "7": "seven", "8": "eight", "9": "nine"},
    {"a": "again", "n": "now", "p": "please", "s": "soon"},
]


class AlignmentError(ChatAnyoneError):
    """A transcript could not be force-aligned (empty, out-of-dictionary word, or the decoder failed)."""


@dataclass(frozen=True)
class PhoneInterval:
    """One phone: ARPAbet name without stress (or ``SIL``), start and end time in seconds (end exclusive)."""

    phone: str
    start_s: float
    end_s: float


def _intervals(segments) -> list[PhoneInterval]:
    from .features import PHONES
    out = []
    for name, first, last in segments:
        p = name.upper()
        p = p if p in PHONES else "SIL"
        out.append(PhoneInterval(p, first * PS_FRAME_S, (last + 1) * PS_FRAME_S))
    return out


def _aligner():
    """A fresh pocketsphinx decoder for forced alignment, batch cepstral mean normalisation.

    A decoder carries state from one utterance to the next (live CMN's running mean and more): measured on
    GRID, ``bbaf2n`` aligned to 16 phones first and 18 after other clips, and ``lbbc2a`` aligned or failed
    depending on what came before. A new decoder per utterance (about 0.3 s to load) makes the alignment a
    function of the audio and the transcript alone.
    """
    from pocketsphinx import Decoder, get_model_path
    mp = get_model_path()
    return Decoder(hmm=os.path.join(mp, "en-us", "en-us"), dict=os.path.join(mp, "en-us", "cmudict-en-us.dict"),
                   lm=None, loglevel="FATAL", cmn="batch")


def force_align(samples: np.ndarray, transcript: str) -> list[PhoneInterval]:
    """Force-align ``transcript`` to ``samples`` with pocketsphinx (en-us model and CMUdict inside the wheel).

    Two passes, as pocketsphinx 5 does it: a word-level search constrained to the transcript, then a
    phone-level alignment (``Decoder.set_alignment``); a fresh decoder per call (see :func:`_aligner`).

    Args:
        samples: ``[N]`` float32 mono audio at 16 kHz, full scale [-1, 1].
        transcript: the words spoken (punctuation and case are ignored; every word must be in the bundled
            CMU dictionary, e.g. a spelled letter as ``"f."``).
    Returns:
        Phones in time order covering the utterance, times in seconds (10 ms resolution).
    Raises:
        AlignmentError: empty transcript, a word not in the dictionary, or no alignment found (measured:
            one of the 11 GRID clips, ``lbbc2a``, does not align at pocketsphinx's default beams).
        motion.errors.AudioError: audio not 16 kHz mono float.
    """
    from . import features as F
    y = F._check_input(samples, F.SAMPLE_RATE)
    words = _words(transcript)
    if not words:
        raise AlignmentError(f"nothing to align in transcript {transcript!r}")
    pcm = F._to_int16(y)
    dec = _aligner()
    missing = [w for w in words if dec.lookup_word(w) is None]
    if missing:
        raise AlignmentError(f"words not in the pronunciation dictionary: {', '.join(missing)}")
    segs = F._align_segments(pcm, words, dec=dec)
    if not segs:
        raise AlignmentError(f"pocketsphinx found no alignment of {transcript!r}")
    return _intervals(segs)


def _words(text: str) -> list[str]:
    """Lower-case words; keeps a trailing '.' on single letters ("f." is the letter's name in CMUdict)."""
    out = []
    for w in re.sub(r"[^a-z0-9'. ]+", " ", text.lower().replace("’", "'")).split():
        w = w if re.fullmatch(r"[a-z]\.", w) else w.strip(".")
        if w.strip("'"):
            out.append(w)
    return out


def recognise_phones(samples: np.ndarray, transcript: str | None = None) -> list[PhoneInterval]:
    """Phones of ``samples``: forced alignment when ``transcript`` aligns, else pocketsphinx all-phone
    decoding (:func:`motion.features.phone_segments`). Same arguments and units as :func:`force_align`."""
    if transcript:
        try:
            return force_align(samples, transcript)
        except AlignmentError:
            pass
    from .features import phone_segments
    return _intervals(phone_segments(samples))


def phones_at_frames(phones: list[PhoneInterval], num_frames: int, fps: float = MODEL_FPS) -> list[str]:
    """The phone under each frame centre ``i / fps`` s (``SIL`` outside every interval), ``[num_frames]``."""
    out = ["SIL"] * num_frames
    for p in phones:
        a = max(0, int(np.ceil(p.start_s * fps - 1e-9)))
        b = min(num_frames, int(np.ceil(p.end_s * fps - 1e-9)))
        for i in range(a, b):
            out[i] = p.phone
    return out


def grid_transcript(stem: str) -> str | None:
    """The sentence a GRID file stem spells (``"bbaf2n"`` -> ``"bin blue at f. two now"``), or None.

    The corpus' own file names may carry a prefix (``id2_vcd_swwp2s``); the last ``_``-separated part is used.
    Letters are written as CMUdict letter names (``"a."``, ``"f."``) so that they align as the letter.
    """
    s = stem.rsplit("_", 1)[-1].lower()
    if len(s) != 6:
        return None
    words = []
    for ch, table in zip(s, _GRID):
        if table is None:
            if not ch.isalpha() or ch == "w":
                return None
            words.append(ch + ".")
        elif ch in table:
            words.append(table[ch])
        else:
            return None
    return " ".join(words)


def read_htk_lab(path: str | Path) -> list[PhoneInterval]:
    """HTS/HTK label file (``start end label`` per line, times in 100 ns) -> phones in seconds.

    Full-context labels (``x^sil-hh+iy=t@...``) give the centre phone; plain ``start end phone`` lines work too.
    Names are mapped to the CMUdict inventory with :data:`LAB_TO_ARPABET`.
    """
    out = []
    for line in Path(path).read_text().splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        lab = parts[2]
        if "-" in lab and "+" in lab:
            lab = lab.split("-", 1)[1].split("+", 1)[0]
        out.append(PhoneInterval(LAB_TO_ARPABET.get(lab.lower(), lab.upper()), int(parts[0]) * 1e-7,
                                 int(parts[1]) * 1e-7))
    return out


def onset_errors(hyp: list[PhoneInterval], ref: list[PhoneInterval]) -> np.ndarray:
    """Absolute onset differences (seconds) between matched non-silence phones of two phone sequences.

    The sequences are matched by phone identity with :class:`difflib.SequenceMatcher` (so a substituted or
    dropped phone is skipped, not mismatched); ``[K]`` float64 over the K matched phones.
    """
    import difflib
    h = [p for p in hyp if p.phone != "SIL"]
    r = [p for p in ref if p.phone != "SIL"]
    sm = difflib.SequenceMatcher(a=[p.phone for p in h], b=[p.phone for p in r], autojunk=False)
    errs = [abs(h[m.a + k].start_s - r[m.b + k].start_s) for m in sm.get_matching_blocks() for k in range(m.size)]
    return np.asarray(errs, np.float64)
