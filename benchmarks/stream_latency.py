"""Latency of the streaming API fed like a microphone: 20 ms chunks pushed at the pace of the audio.

    python benchmarks/stream_latency.py [--seconds 20] [--hop 6] [--lookahead 3] [--context 48] [--steps N]
                                        [--torch-threads 1]

For every frame: latency = wall time when the frame came out - (stream start + the frame's time), i.e. how
long after its sound was spoken a frame is ready (lookahead + waiting for the step + compute). Prints a
table: the schedule's lookahead, per-step compute (median / p95), frame latency (median / p99 / max) and
whether the stream kept up with real time. The speech is real (FACEGOOD audio_only takes, else the sample).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--hop", type=int, default=6)
    ap.add_argument("--lookahead", type=int, default=3)
    ap.add_argument("--context", type=int, default=48)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--torch-threads", type=int, default=1,
                    help="torch threads during a step (StreamConfig.torch_threads; 0: as MotionGenerator set them)")
    a = ap.parse_args()
    from animate_rtf import speech
    from motion.inference import MotionGenerator
    from motion.streaming import MotionStream, StreamConfig

    audio, source = speech(a.seconds)
    gen = MotionGenerator(a.checkpoint)
    cfg = StreamConfig(a.context, a.hop, a.lookahead, a.steps, a.torch_threads or None)
    stream = MotionStream(gen, config=cfg)
    chunk = 320
    lat = []
    t0 = time.perf_counter()
    for i in range(0, len(audio), chunk):
        # wait until this chunk "has been spoken"
        due = t0 + (i + chunk) / 16000
        now = time.perf_counter()
        if due > now:
            time.sleep(due - now)
        for f in stream.push(audio[i:i + chunk]):
            lat.append(time.perf_counter() - (t0 + f.time_s))
    lat = np.asarray(lat) * 1000
    cs = np.asarray(stream.stats.compute_s) * 1000
    behind = lat[-30:].mean() - lat[:30].mean() if len(lat) > 60 else 0.0
    rows = [
        ("speech", f"{a.seconds:g} s of {source}"),
        ("schedule", f"window {cfg.context_frames} frames, hop {cfg.hop_frames}, lookahead {cfg.lookahead_frames}, "
                     f"{stream.steps} DDIM steps, torch threads per step {cfg.torch_threads or 'unchanged'}"),
        ("lookahead (audio after a frame's time)", f"{stream.lookahead_s * 1000:.0f} ms"),
        ("compute per step, median / p95", f"{np.median(cs):.0f} / {np.percentile(cs, 95):.0f} ms "
                                           f"(budget {cfg.hop_frames / 30 * 1000:.0f} ms of audio per step)"),
        ("frame latency, median / p99 / max", f"{np.median(lat):.0f} / {np.percentile(lat, 99):.0f} / {lat.max():.0f} ms"),
        ("latency drift, last s vs first s", f"{behind:+.0f} ms ({'falls behind' if behind > 100 else 'keeps up'})"),
    ]
    w = max(len(r[0]) for r in rows)
    for k, v in rows:
        print(f"{k:<{w}}  {v}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
