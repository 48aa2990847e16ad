"""Phone sources for the motion model, measured: accuracy against a hand-checked alignment, agreement on unseen
speakers, speed.

    python benchmarks/phone_features.py [--classifier PATH]

Rows: pocketsphinx all-phone decoding, pocketsphinx forced alignment to the known transcript, ``hama``
(if installed: a CTC phoneme recogniser with its model inside the wheel), and the frame-level classifier
distilled from pocketsphinx (:mod:`motion.phone_features`, the default). Columns, on CMU ARCTIC a0009
against its ``.lab`` (HTS labels, 10 ms resolution): phone error rate (edit distance of the phone sequence
/ reference length), correct phones, median onset error of the phones matched with the same name, frame
accuracy at 100 Hz over the speech frames. Then the classifier's frame agreement with its teacher
(pocketsphinx all-phone) on speakers it never heard (the held-out talking videos' audio and the test
audio), and the speed of each source on 60 s of speech (x real time, this machine's threads).
"""
from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DATA = REPO.parent / "shared" / "data"
LAB = DATA / "test_audio" / "cmu_arctic_a0009_phone.lab"
WAV = DATA / "test_audio" / "cmu_arctic_a0009.wav"
TEXT = "He turned sharply, and faced Gregson across the table."
_LAB_MAP = {"PAU": "SIL", "AX": "AH", "X": "SIL", "AXR": "ER", "EL": "L", "EM": "M", "EN": "N", "NX": "N",
            "DX": "T", "HV": "HH"}
#: IPA (hama's output) -> ARPAbet, for the sounds of General American English
IPA = {"i": "IY", "ɪ": "IH", "eɪ": "EY", "e": "EY", "ɛ": "EH", "æ": "AE", "ɑ": "AA", "a": "AA", "ɒ": "AA",
       "ɔ": "AO", "oʊ": "OW", "o": "OW", "ʊ": "UH", "u": "UW", "ʌ": "AH", "ə": "AH", "ɐ": "AH", "ɝ": "ER",
       "ɚ": "ER", "aɪ": "AY", "aʊ": "AW", "ɔɪ": "OY", "p": "P", "b": "B", "t": "T", "d": "D", "k": "K",
       "g": "G", "ɡ": "G", "f": "F", "v": "V", "θ": "TH", "ð": "DH", "s": "S", "z": "Z", "ʃ": "SH",
       "ʒ": "ZH", "h": "HH", "t͡ʃ": "CH", "d͡ʒ": "JH", "m": "M", "n": "N", "ŋ": "NG", "l": "L", "ɫ": "L",
       "ɹ": "R", "r": "R", "ɾ": "D", "w": "W", "j": "Y", "β": "B", "pʰ": "P", "tʰ": "T", "kʰ": "K"}


def read_lab(path: Path = LAB) -> list[tuple[str, float, float]]:
    """``[(phone, start_s, end_s)]`` from HTS full-context labels (times in 100 ns; phone between - and +)."""
    out = []
    for line in path.read_text().splitlines():
        if line.strip():
            a, b, ctx = line.split()[:3]
            p = re.search(r"-([a-z]+)\+", ctx).group(1).upper()
            out.append((_LAB_MAP.get(p, p), int(a) * 1e-7, int(b) * 1e-7))
    return out


def _edit_pairs(ref: list[str], hyp: list[str]):
    n, m = len(ref), len(hyp)
    D = np.zeros((n + 1, m + 1))
    D[:, 0], D[0] = np.arange(n + 1), np.arange(m + 1)
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            D[i, j] = min(D[i - 1, j] + 1, D[i, j - 1] + 1, D[i - 1, j - 1] + (ref[i - 1] != hyp[j - 1]))
    i, j, pairs = n, m, []
    while i > 0 and j > 0:
        if D[i, j] == D[i - 1, j - 1] + (ref[i - 1] != hyp[j - 1]):
            pairs.append((i - 1, j - 1))
            i, j = i - 1, j - 1
        elif D[i, j] == D[i - 1, j] + 1:
            i -= 1
        else:
            j -= 1
    return pairs[::-1], D[n, m]


def _frames(segs, n: int) -> np.ndarray:
    lab = np.array(["SIL"] * n, object)
    for p, a, b in segs:
        lab[int(round(a * 100)):int(round(b * 100))] = p
    return lab


def score(segs, ref) -> dict:
    """Phone error rate, correct count, median onset error (ms) and 100 Hz frame accuracy of ``segs``
    (``[(phone, start_s, end_s)]``) against ``ref``."""
    hyp = [s for s in segs if s[0] != "SIL"]
    r = [x for x in ref if x[0] != "SIL"]
    pairs, dist = _edit_pairs([x[0] for x in r], [x[0] for x in hyp])
    same = [(i, j) for i, j in pairs if r[i][0] == hyp[j][0]]
    onset = [abs(r[i][1] - hyp[j][1]) * 1000 for i, j in same]
    n = int(round(ref[-1][2] * 100))
    fr, fh = _frames(ref, n), _frames(hyp, n)
    sp = fr != "SIL"
    return {"per": dist / len(r), "correct": f"{len(same)}/{len(r)}",
            "onset_ms": float(np.median(onset)) if onset else float("nan"), "frame_acc": float((fr[sp] == fh[sp]).mean())}


def posterior_segments(post: np.ndarray, fps: float = 30.0) -> list[tuple[str, float, float]]:
    """Runs of the per-frame argmax of ``[T, 40]`` posteriors as ``[(phone, start_s, end_s)]``; frame i covers
    ``[(i - 0.5) / fps, (i + 0.5) / fps)``."""
    from motion.features import PHONES
    lab = post.argmax(1)
    out, start = [], 0
    for i in range(1, len(lab) + 1):
        if i == len(lab) or lab[i] != lab[start]:
            out.append((PHONES[lab[start]], max(0.0, (start - 0.5) / fps), (i - 0.5) / fps))
            start = i
    return out


def sources(classifier: str | None):
    from motion import features as F
    from motion.phone_features import phone_posteriors

    def ps(y, tr=None):
        return [(p if p in F.PHONES else "SIL", a / 100, (b + 1) / 100) for p, a, b in F.phone_segments(y, tr)]

    def clf(y):
        f = F.extract_features(y, phones=False)
        return posterior_segments(phone_posteriors(f.relative, classifier))

    out = {"pocketsphinx all-phone": ps, "pocketsphinx forced alignment (transcript)": lambda y: ps(y, TEXT),
           "distilled classifier (default)": clf}
    try:
        from hama import ASRModel
        model = ASRModel()

        def hama(y):
            res = model.transcribe_waveform(y, 16000)
            return [(IPA.get(s.phoneme, "SIL"), s.start_ms / 1000, s.end_ms / 1000) for s in model.phoneme_spans(res)]
        out["hama 1.7.0 (CTC spans)"] = hama
    except ImportError:
        pass
    return out


def heldout_agreement(classifier: str | None) -> tuple[float, int]:
    """Mean frame agreement (30 fps argmax) of the classifier with pocketsphinx all-phone on unseen speakers."""
    from motion.audio import load_audio
    from motion.features import extract_features
    from motion.phone_features import phone_posteriors
    prepared = REPO / "runs" / "prepared"
    names = ["edtalk__pose_source2_TedLieu", "edtalk__mouth_source_Klobuchar", "grid__bbaf2n", "grid__lbax4n",
             "grid__pwij3p", "grid__swiz3n", "sadtalker__WDA_KatieHill_000", "vexpress__AOC_gt"]
    wavs = [prepared / f"{n}.wav" for n in names if (prepared / f"{n}.wav").is_file()]
    wavs += [DATA / "test_audio" / "cmu_arctic_a0007.wav", DATA / "test_audio" / "commonvoice_en_17299458.wav"]
    agree = []
    for p in wavs:
        y = load_audio(p)
        f = extract_features(y, phones="pocketsphinx")
        agree.append(float((phone_posteriors(f.relative, classifier).argmax(1) == f.phones.argmax(1)).mean()))
    return float(np.mean(agree)), len(wavs)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--classifier", default=None, help="classifier weights (default: the shipped ones)")
    a = ap.parse_args()
    from motion.audio import load_audio
    ref = read_lab()
    y = load_audio(WAV)
    long = load_audio(DATA / "beat2" / "audio_only" / "2_scott_0_6_6.wav")[:60 * 16000]  # continuous speech
    print(f"CMU ARCTIC a0009 ({len(y) / 16000:.1f} s) against its .lab; speed on {len(long) / 16000:.0f} s of speech")
    print(f"| source | PER | correct | median onset error (ms) | frame accuracy (100 Hz, speech) | x real time |")
    print("|---|---|---|---|---|---|")
    for name, fn in sources(a.classifier).items():
        fn(y[:16000])  # warm-up (decoder/model load)
        s = score(fn(y), ref)
        t = time.perf_counter()
        fn(long)
        rtf = len(long) / 16000 / (time.perf_counter() - t)
        print(f"| {name} | {s['per']:.2f} | {s['correct']} | {s['onset_ms']:.0f} | {s['frame_acc']:.2f} | {rtf:.0f} |")
    agree, n = heldout_agreement(a.classifier)
    print(f"\nclassifier vs pocketsphinx all-phone, frame agreement on {n} unseen-speaker clips: {agree:.2f}")
    print("(the classifier's x real time includes the log-mel/energy/pitch features it reads, which the model "
          "needs anyway; pocketsphinx and hama read the waveform)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
