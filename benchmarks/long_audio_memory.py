"""Peak memory (RSS) of ``chatanyone animate`` on long audio: 10, 60 and 180 minutes of real speech.

    python benchmarks/long_audio_memory.py [--minutes 10,60,180] [--formats npz,glb,bvh,csv|all] [--steps N] [--keep DIR]

The speech is real: every FACEGOOD take (``audio_only`` and ``paired``, one speaker, 30.5 min in all) and
the BEAT2 takes from ../shared/data, concatenated in a fixed order and repeated until the length is
reached, written as a 16 kHz PCM16 wav (3 h = 346 MB). Each length runs ``chatanyone animate`` in its own
child process; its peak resident set size comes from ``os.wait4`` (the kernel's ``ru_maxrss`` of that
child alone). Prints one row per length: audio minutes, peak RSS, wall time, real-time factor and the size
of each written file. The machine this runs on may be shared: wall times are noisy, peak RSS is not.
``--steps`` passes ``animate --steps``: fewer denoising steps make a long run shorter without changing what
is held in memory (the same batches and tensors; compare the rows of one length with and without it).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared/data"
sys.path.insert(0, str(REPO))


def speech_files() -> list[Path]:
    files = sorted((DATA / "facegood/audio_only").glob("*.wav")) + sorted((DATA / "facegood/paired").glob("*.wav"))
    files += sorted((DATA / "beat2").glob("*.wav")) + sorted((DATA / "beat2/audio_only").glob("*.wav"))
    return files or [REPO / "chatanyone/samples/cmu_arctic_a0007.wav"]


def write_long_speech(path: Path, minutes: float) -> None:
    """Concatenate the real speech takes (repeating them) into ``minutes`` of 16 kHz PCM16 mono, written
    block by block (the benchmark itself stays small)."""
    import soundfile as sf
    from motion.audio import load_audio
    takes = [load_audio(p) for p in speech_files()]
    need = int(minutes * 60 * 16000)
    with sf.SoundFile(str(path), "w", samplerate=16000, channels=1, subtype="PCM_16") as f:
        n, i = 0, 0
        while n < need:
            a = takes[i % len(takes)][: need - n]
            f.write(a)
            n += len(a)
            i += 1


def run(audio: Path, out: Path, formats: str, steps: int | None = None) -> tuple[float, float, int]:
    """``chatanyone animate`` in a child process: (peak RSS in MB, wall seconds, exit status)."""
    cmd = [sys.executable, "-c", "import sys; from chatanyone.cli import main; sys.exit(main())",
           "animate", str(audio), "-o", str(out), "--formats", formats, "-q"]
    if steps:
        cmd += ["--steps", str(steps)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_maxrss / 1024.0, time.perf_counter() - t0, proc.returncode


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", default="10,60,180", help="comma list of audio lengths in minutes")
    ap.add_argument("--formats", default="npz,glb,bvh",
                    help="animate --formats: a comma list of npz, glb, vrma, bvh, csv, or all (default: animate's "
                         "default npz,glb,bvh)")
    ap.add_argument("--steps", type=int, default=None, help="animate --steps (default: the model's)")
    ap.add_argument("--keep", default=None, help="folder for the audio and outputs (default: a temporary one)")
    a = ap.parse_args()
    tmp = None
    if a.keep:
        root = Path(a.keep)
        root.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="chatanyone-long-")
        root = Path(tmp.name)
    rows = []
    print(f"animate --formats {a.formats}" + (f" --steps {a.steps}" if a.steps else ""), flush=True)
    print(f"{'audio':>8} {'peak RSS':>10} {'wall':>8} {'RTF':>6}  outputs", flush=True)
    for m in [float(x) for x in a.minutes.split(",")]:
        audio = root / f"speech_{m:g}min.wav"
        if not audio.exists():
            write_long_speech(audio, m)
        out = root / f"out_{m:g}min"
        out.mkdir(exist_ok=True)
        for p in out.iterdir():                                # only this run's files are listed
            p.unlink()
        rss, wall, rc = run(audio, out, a.formats, a.steps)
        sizes = ", ".join(f"{p.suffix[1:]} {p.stat().st_size / 1e6:.0f} MB" for p in sorted(out.iterdir()))
        status = "" if rc == 0 else f"  (exit {rc})"
        print(f"{m:6g} min {rss:7.0f} MB {wall:7.0f} s {m * 60 / wall:5.1f}x  {sizes}{status}", flush=True)
        rows.append((m, rss))
        for p in out.iterdir():
            if not a.keep:
                p.unlink()
        if not a.keep:
            audio.unlink()
    if len(rows) > 1:
        (m0, r0), (m1, r1) = rows[0], rows[-1]
        print(f"growth: {(r1 - r0) / (m1 - m0):.2f} MB per minute of audio between {m0:g} and {m1:g} min")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
