"""``chatanyone train --nproc N`` throughput: training samples/s of the face stage with 1 and 2 processes.

    python benchmarks/train_ddp.py [--nproc 1 2] [--steps 40] [--warmup 5] [--seconds 20] [--batch-size 32]
                                   [--one-thread]

Real data: the first ``--seconds`` of two FACEGOOD takes (1114_2_01, 1114_2_02; ../shared/data), their audio
features computed once here. Model and batch as ``configs/default.toml`` trains them (d_model 128, 4 layers,
window 120 frames, batch 32 global). Each run starts fresh processes: ``--nproc 1`` is the one-process path
(:func:`motion.train.train_stage` with ``distributed=None``, torch using every core, as ``train`` does);
``--nproc N`` is DDP with gloo on CPU, each rank ``B/N`` windows of every global batch and ``cores/N``
threads. Timed: ``--steps`` optimizer steps after ``--warmup`` untimed ones (model, batches, backward,
all-reduce, AdamW). Prints samples/s (global batch x steps / s), the speed-up over 1 process and the final
logged loss (EMA; the same seed and global batches in every run, so it should agree within the
diffusion noise). ``--one-thread`` adds a one-process row with one torch thread, which separates what
comes from splitting the work over processes from what torch's intra-op threads do on a loaded machine.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
TAKES = ("1114_2_01", "1114_2_02")


def build_items(seconds: float, cfg):
    import numpy as np

    from motion.datasets import load_facegood
    from motion.train import make_items

    clips = [c for c in load_facegood() if c.name.split("/")[-1] in TAKES]
    n = int(seconds * 30)
    from dataclasses import replace
    clips = [replace(c, clip=c.clip.slice(0, n), audio=c.audio[: n * 16000 // 30],
                     face_valid=None if c.face_valid is None else c.face_valid[:n],
                     joint_valid=None if c.joint_valid is None else c.joint_valid[:n]) for c in clips]
    return make_items(clips, cfg, np.random.default_rng(cfg.seed), progress=False)


def _rank(items, cfg, steps: int, warmup: int, out: str, threads: int | None = None) -> None:
    import numpy as np
    import torch

    from motion import train as T
    from motion.distributed import init_from_env
    from motion.features import FEATURE_DIM
    from motion.model import DenoiserConfig, MotionDenoiser
    from motion.representation import FACE_DIM

    world = int(os.environ["WORLD_SIZE"])
    ctx = init_from_env() if world > 1 else None
    torch.set_num_threads(threads or max(1, os.cpu_count() or 1))  # as train() does, unless threads
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    fi = [it for it in items if it.face_mask.any()]
    mean, std = T.masked_stats([i.face for i in fi], [i.face_mask for i in fi], FACE_DIM, 0.02)
    model = MotionDenoiser(DenoiserConfig(FACE_DIM, FEATURE_DIM, len(T.STYLES), cfg.d_model, cfg.num_layers,
                                          cfg.num_heads, 4, 512, cfg.dropout, cfg.style_reference))
    draw = T.batch_fn(fi, cfg, "face", "cond", "face_mask", mean, std, len(T.STYLES), rng)
    times = []

    def timed():
        times.append(time.perf_counter())
        return draw()
    log: list = []
    loss = T.train_stage(model, timed, warmup + steps, cfg, "bench", log, ctx)
    wall = time.perf_counter() - times[warmup]  # from the first timed step's batch to the end
    if ctx is None or ctx.is_main:
        curve = [(e["step"], round(e["loss"], 4)) for e in log if "loss" in e]
        Path(out).write_text(json.dumps({"wall_s": wall, "loss": loss, "threads": torch.get_num_threads(),
                                         "curve": curve}))
    if ctx is not None:
        ctx.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nproc", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--one-thread", action="store_true", help="add a 1-process row with 1 torch thread")
    a = ap.parse_args()
    from motion.distributed import launch
    from motion.train import TrainConfig

    cfg = TrainConfig.from_toml(REPO / "configs" / "default.toml")
    cfg.batch_size, cfg.face_steps = a.batch_size, a.warmup + a.steps
    t0 = time.perf_counter()
    items = build_items(a.seconds, cfg)
    print(f"{len(items)} items from {a.seconds:g} s of {', '.join(TAKES)} (features {time.perf_counter() - t0:.1f} s); "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    rows = []
    with tempfile.TemporaryDirectory() as d:
        runs = [(n, None) for n in a.nproc]
        if a.one_thread:
            runs.insert(1 if 1 in a.nproc else 0, (1, 1))
        for n, threads in runs:
            out = Path(d) / f"n{n}t{threads}.json"
            launch(n, _rank, items, cfg, a.steps, a.warmup, str(out), threads)
            rows.append((n, json.loads(out.read_text())))
    print(f"load average {os.getloadavg()[0]:.1f} at the end\n")
    print("| processes | threads each | steps | wall s | samples/s | speed-up | final loss (EMA) |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    base = rows[0][1]["wall_s"]
    for n, r in rows:
        sps = a.batch_size * a.steps / r["wall_s"]
        print(f"| {n} | {r['threads']} | {a.steps} | "
              f"{r['wall_s']:.1f} | {sps:.1f} | {base / r['wall_s']:.2f}x | {r['loss']:.4f} |")
    print("\nlogged loss (EMA, averaged over ranks) by step, warm-up steps included:")
    for n, r in rows:
        print(f"  {n} process(es) x {r['threads']} thread(s): " + ", ".join(f"{s}: {v:.4f}" for s, v in r["curve"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
