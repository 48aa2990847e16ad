"""Real-time factor of ``chatanyone animate`` for 60 s of real speech, audio features included.

    python benchmarks/animate_rtf.py [--seconds 60] [--repeats 3] [--checkpoint PATH] [--steps 8,4]

Prints a table of median wall times per part (features, whole generate at each number of denoising steps,
each exporter) and the real-time factor (audio seconds / compute seconds; higher is faster). The speech is
real: FACEGOOD ``audio_only`` takes from ../shared/data, else the repo's sample repeated.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def speech(seconds: float) -> tuple[np.ndarray, str]:
    from motion.audio import load_audio
    src = sorted((REPO.parent / "shared/data/facegood/audio_only").glob("*.wav"))
    source = "facegood/audio_only" if src else "sample (repeated)"
    src = src or [REPO / "chatanyone/samples/cmu_arctic_a0007.wav"]
    parts, n = [], 0
    while n < seconds * 16000:
        for p in src:
            a = load_audio(p)
            parts.append(a)
            n += len(a)
            if n >= seconds * 16000:
                break
    return np.concatenate(parts)[: int(seconds * 16000)], source


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--steps", default="", help="comma list of denoising steps to time besides the default")
    a = ap.parse_args()
    import torch
    from exporters import bvh, glb
    from motion import inference
    from motion.features import extract_features

    audio, source = speech(a.seconds)
    gen = inference.MotionGenerator(a.checkpoint)
    gen.generate(audio[:16000 * 2])  # warm-up (numba JIT, pocketsphinx decoder)
    steps = [int(x) for x in a.steps.split(",") if x]
    times: dict[str, list[float]] = {k: [] for k in ("features", "generate (all)", "npz", "glb", "bvh")}
    times.update({f"generate, {n} steps": [] for n in steps})
    with tempfile.TemporaryDirectory() as d:
        for _ in range(a.repeats):
            t = time.perf_counter()
            extract_features(audio, num_frames=int(round(len(audio) / 16000 * 30)), phones=False)
            times["features"].append(time.perf_counter() - t)
            t = time.perf_counter()
            clip = gen.generate(audio)
            times["generate (all)"].append(time.perf_counter() - t)
            for n in steps:
                t = time.perf_counter()
                gen.generate(audio, steps=n)
                times[f"generate, {n} steps"].append(time.perf_counter() - t)
            for name, fn in (("npz", clip.save), ("glb", lambda p: glb.write(clip, p)), ("bvh", lambda p: bvh.write(clip, p))):
                t = time.perf_counter()
                fn(Path(d) / f"x.{name}")
                times[name].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in times.items()}
    med["animate total"] = med["generate (all)"] + med["npz"] + med["glb"] + med["bvh"]
    print(f"audio: {a.seconds:.0f} s of real speech ({source}); repeats: {a.repeats}; torch threads: "
          f"{torch.get_num_threads()}; model {gen.version}; default steps face {gen.sampling.face.steps}, body {gen.sampling.body.steps}")
    print(f"{'part':<18}{'median s':>10}{'x real time':>14}")  # features: as generate() computes them (no phones)
    for k, v in med.items():
        print(f"{k:<18}{v:>10.3f}{a.seconds / v:>14.1f}")
    print("('generate (all)' includes the features; 'animate total' adds writing npz, glb and bvh)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
