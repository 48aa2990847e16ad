"""Live streaming under competing CPU load: frames on time with and without the degrade policy.

    python benchmarks/stream_under_load.py [--seconds 30] [--repeats 3] [--load-cores 1]

``chatanyone stream AUDIO --ws 0`` (the real model, streaming API, 30 fps WebSocket output, no client) runs
on ``--seconds`` of real speech (FACEGOOD ``audio_only`` from ../shared/data, else the repo's sample
repeated) while ``--load-cores`` busy-loop processes compete for the CPU (each started for the run and
bounded in time). Each repeat runs once without the degrade policy (``StreamOptions(adaptive=False)``: the
stream as it was before, always the full denoising steps) and once with it (the default), alternating, so
both see the same machine. A frame is *on time* when it was sent (not skipped as later than
``--max-late`` = 0.25 s) and its lateness is at most 100 ms. Prints one row per run and the medians.

The machine may be shared with other work: absolute numbers are noisy, compare the medians side by side.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

ON_TIME_MS = 100.0
BUSY = "import time\nend = time.time() + {s}\nwhile time.time() < end:\n    pass\n"


def speech(seconds: float) -> np.ndarray:
    from motion.audio import load_audio
    src = sorted((REPO.parent / "shared/data/facegood/audio_only").glob("*.wav"))
    src = src or [REPO / "chatanyone/samples/cmu_arctic_a0007.wav"]
    parts, n = [], 0
    while n < seconds * 16000:
        for p in src:
            parts.append(load_audio(p))
            n += len(parts[-1])
            if n >= seconds * 16000:
                break
    return np.concatenate(parts)[: int(seconds * 16000)]


def run_once(gen, wav: Path, adaptive: bool, load_cores: int, seconds: float) -> dict:
    from bridge.stream import StreamOptions, run_stream
    loads = [subprocess.Popen([sys.executable, "-c", BUSY.format(s=seconds + 30)]) for _ in range(load_cores)]
    logs: list[str] = []
    try:
        time.sleep(0.5)                                        # the load is running before the stream starts
        r = run_stream(StreamOptions(input=str(wav), ws=0, adaptive=adaptive), generator=gen, log=logs.append)
    finally:
        for p in loads:
            p.kill()
            p.wait()
    lat = r.lateness["ws"]
    total = lat.sent + lat.skipped
    on_time = sum(1 for x in lat.samples_ms if x <= ON_TIME_MS)
    return {"frames": total, "sent": lat.sent, "on_time": on_time, "p50": lat.percentile(50, absolute=False),
            "degraded": f"{r.degraded_steps}/{r.model_steps}", "warned": any("too slow" in m for m in logs)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=30.0, help="seconds of speech per run (default 30)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--load-cores", type=int, default=1, help="busy-loop processes (default 1)")
    ap.add_argument("--checkpoint", default=None)
    a = ap.parse_args()
    from motion.inference import MotionGenerator
    import soundfile as sf
    gen = MotionGenerator(a.checkpoint)
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "speech.wav"
        sf.write(wav, speech(a.seconds), 16000)
        rows: dict[bool, list[dict]] = {False: [], True: []}
        print(f"{'policy':>8} {'frames':>7} {'sent':>6} {'on time':>8} {'%':>6} {'p50 ms':>8} {'degraded':>10}",
              flush=True)
        for _ in range(a.repeats):
            for adaptive in (False, True):
                r = run_once(gen, wav, adaptive, a.load_cores, a.seconds)
                rows[adaptive].append(r)
                print(f"{'on' if adaptive else 'off':>8} {r['frames']:7d} {r['sent']:6d} {r['on_time']:8d} "
                      f"{100 * r['on_time'] / max(1, r['frames']):5.1f}% {r['p50']:8.1f} {r['degraded']:>10}",
                      flush=True)
    print(f"\nmedians over {a.repeats} runs, {a.load_cores} busy core(s) of competing load, {a.seconds:g} s of speech:")
    for adaptive in (False, True):
        pct = statistics.median(100 * r["on_time"] / max(1, r["frames"]) for r in rows[adaptive])
        sent = statistics.median(r["sent"] for r in rows[adaptive])
        name = "with the degrade policy" if adaptive else "before (full steps)"
        print(f"  {name:>24}: {pct:5.1f}% of frames on time (<= {ON_TIME_MS:.0f} ms), {sent:.0f} sent")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
