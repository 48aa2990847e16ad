"""Peak memory (RSS) and time of generation with a transcript (forced-aligned phones) on long audio.

    python benchmarks/transcript_memory.py [--minutes 1,2,3] [--steps 1] [--keep DIR]

A transcript makes generation take the whole-clip path (:meth:`motion.inference.MotionGenerator.generate`:
pocketsphinx aligns the whole utterance at once, and the features, both sampling stages and the result are
held for the whole clip), unlike audio without one (``benchmarks/long_audio_memory.py``); the alignment's
memory grows with the square of the length. ``chatanyone animate --transcript`` therefore refuses audio
longer than :data:`motion.options.TRANSCRIPT_MAX_S`; this benchmark calls the library (``animate_file`` with
``transcript=``, then ``MotionClip.save``), which has no such limit, to measure the growth. The speech is
real and its transcript known: the BEAT2 take ``2_scott_0_1_1`` (64 s; its words from the take's TextGrid,
../shared/data/beat2) repeated whole until the length is reached, with the words repeated as often. Each
length runs in its own child process; its peak resident set size comes from ``os.wait4``. Prints one row per
length: audio minutes, words, peak RSS, wall time, and the clip's phone source (``aligned`` when
pocketsphinx aligned the transcript; an alignment that fails falls back silently). The machine may be
shared: wall times are noisy, peak RSS is not. Lengths past ~4 minutes need many GB (see the README).
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
TAKE = REPO.parent / "shared/data/beat2/2_scott_0_1_1"
sys.path.insert(0, str(REPO))


def take_words(textgrid: Path) -> list[str]:
    """The ``words`` tier's non-empty intervals of a Praat TextGrid (long text format), in order."""
    text = textgrid.read_text(encoding="utf-8")
    tier = text.split('name = "words"', 1)[1].split("item [", 1)[0]
    return [w for w in re.findall(r'text = "([^"]*)"', tier) if w.strip()]


def write_speech(path: Path, minutes: float) -> tuple[str, float]:
    """The take repeated whole ``ceil(minutes / take)`` times (16 kHz PCM16) and its transcript repeated as
    often; returns (transcript, seconds)."""
    import soundfile as sf
    from motion.audio import load_audio
    audio = load_audio(TAKE.with_suffix(".wav"))
    words = take_words(TAKE.with_suffix(".TextGrid"))
    k = max(1, int(np.ceil(minutes * 60 * 16000 / len(audio))))
    with sf.SoundFile(str(path), "w", samplerate=16000, channels=1, subtype="PCM_16") as f:
        for _ in range(k):
            f.write(audio)
    return " ".join(words * k), k * len(audio) / 16000


CHILD = ("import sys; from pathlib import Path; from motion.inference import MotionGenerator; "
         "clip = MotionGenerator().animate_file(sys.argv[1], transcript=Path(sys.argv[2]).read_text(), "
         "steps=int(sys.argv[3]) or None); clip.save(sys.argv[4])")


def run(audio: Path, out: Path, transcript: str, steps: int | None) -> tuple[float, float, int]:
    """Generation with ``transcript`` in a child process: (peak RSS in MB, wall seconds, exit status)."""
    text = out / "transcript.txt"
    text.write_text(transcript)
    cmd = [sys.executable, "-c", CHILD, str(audio), str(text), str(steps or 0), str(out / f"{audio.stem}.npz")]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO)
    _, status, usage = os.wait4(proc.pid, 0)
    return usage.ru_maxrss / 1024.0, time.perf_counter() - t0, os.waitstatus_to_exitcode(status)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", default="1,2,3", help="comma list of audio lengths in minutes (rounded up "
                                                         "to whole repeats of the 64 s take)")
    ap.add_argument("--steps", type=int, default=1, help="animate --steps (default 1: memory does not depend on it)")
    ap.add_argument("--keep", default=None, help="folder for the audio and outputs (default: a temporary one)")
    a = ap.parse_args()
    if not TAKE.with_suffix(".wav").exists():
        print(f"needs {TAKE}.wav and .TextGrid (../shared/data)", file=sys.stderr)
        return 2
    tmp = None if a.keep else tempfile.TemporaryDirectory(prefix="chatanyone-transcript-")
    root = Path(a.keep or tmp.name)
    root.mkdir(parents=True, exist_ok=True)
    print(f"MotionGenerator.animate_file(transcript=TEXT, steps={a.steps})", flush=True)
    print(f"{'audio':>9} {'words':>6} {'peak RSS':>10} {'wall':>8}  phones", flush=True)
    for m in [float(x) for x in a.minutes.split(",")]:
        audio = root / f"speech_{m:g}min.wav"
        transcript, seconds = write_speech(audio, m)
        out = root / f"out_{m:g}min"
        out.mkdir(exist_ok=True)
        rss, wall, rc = run(audio, out, transcript, a.steps)
        phones = "-"
        if rc == 0:
            from motion.clip import MotionClip
            phones = MotionClip.load(out / f"{audio.stem}.npz").meta.get("phones")
        status = "" if rc == 0 else f"  (exit {rc})"
        print(f"{seconds / 60:7.2f} min {len(transcript.split()):6d} {rss:7.0f} MB {wall:7.0f} s  {phones}{status}",
              flush=True)
        if not a.keep:
            for p in out.iterdir():
                p.unlink()
            audio.unlink()
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
