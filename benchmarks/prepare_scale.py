"""``chatanyone prepare --ray`` throughput: the same 20 real video clips with 1, 2 and 4 Ray workers.

    python benchmarks/prepare_scale.py [--clips 20] [--workers 1 2 4] [--local] [--address ADDR]

The clips (fixed list, ../shared/data/videos): the 11 GRID sentences (3 s, 360x288, 25 fps), the 8 Obama
weekly-address sentences (2-5 s, 1280x720, 29.97 fps) and the V-Express AOC clip (4.6 s, 512x512), 64.6 s
of video, ~1760 frames; ``--clips N`` takes the first N. Each run prepares them into a fresh folder (face,
pose and hand tracking, as ``chatanyone prepare`` does by default) on a new local Ray instance with N CPUs
(``--address`` runs against a cluster instead, one row). ``--local`` adds the default path (no Ray, one
process) as a reference row.

Prints, per run: Ray start-up seconds (a new local instance; paid once per ``prepare`` call), wall seconds
for the clips after start-up, clips/s, video seconds prepared per wall second, and the speed-up over the
1-worker Ray run. Every run must prepare every clip (checked).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
VIDEOS = REPO.parent / "shared" / "data" / "videos"


def clip_list() -> list[Path]:
    grid = sorted((VIDEOS / "grid").glob("*.mpg"))
    obama = sorted((VIDEOS / "obama_weekly_address_sentences").glob("*.mp4"))
    aoc = [VIDEOS / "vexpress" / "AOC_gt.mp4"]
    return [p for p in grid + obama + aoc if p.is_file()]


def one_run(clips: list[Path], workers: int, address: str | None, use_ray: bool) -> dict:
    from motion import prepare

    with tempfile.TemporaryDirectory(prefix="prepare_scale_") as d:
        t0 = time.perf_counter()
        ex = None
        if use_ray:
            from motion.prepare_ray import RayExecutor
            ex = RayExecutor(address or "local", workers=workers)
            ex._connect()  # start-up timed on its own
        t1 = time.perf_counter()
        rep = prepare.run([str(c) for c in clips], d, workers=workers, executor=ex, progress=False, echo=None)
        t2 = time.perf_counter()
        if ex is not None:
            where = ex.describe()
            ex.shutdown()
        else:
            where = "local, no Ray"
        if len(rep.prepared) != len(clips):
            raise SystemExit(f"only {len(rep.prepared)}/{len(clips)} clips prepared: {rep.skipped}")
        import json
        man = json.loads((Path(d) / prepare.MANIFEST).read_text())
        video_s = sum(e["duration_s"] for e in man["clips"].values())
    return {"where": where, "workers": workers, "startup_s": t1 - t0, "wall_s": t2 - t1, "video_s": video_s,
            "clips": len(clips)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=20)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--local", action="store_true", help="also the default path (one process, no Ray)")
    ap.add_argument("--address", default=None, help="a running Ray cluster (one run, its own CPUs)")
    a = ap.parse_args()
    clips = clip_list()[: a.clips]
    if not clips:
        raise SystemExit(f"no clips under {VIDEOS} (needs ../shared/data)")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    print(f"{len(clips)} clips; machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start")
    rows = []
    if a.local:
        rows.append(one_run(clips, 1, None, use_ray=False))
    for w in ([1] if a.address else a.workers):
        rows.append(one_run(clips, w, a.address, use_ray=True))
    base = next((r for r in rows if r["where"] != "local, no Ray" and r["workers"] == 1), rows[0])
    print(f"load average {os.getloadavg()[0]:.1f} at the end\n")
    print(f"| run | workers | start-up s | wall s | clips/s | video s per s | speed-up |")
    print(f"|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        cps = r["clips"] / r["wall_s"]
        print(f"| {r['where']} | {r['workers']} | {r['startup_s']:.1f} | {r['wall_s']:.1f} | {cps:.3f} | "
              f"{r['video_s'] / r['wall_s']:.2f} | {base['wall_s'] / r['wall_s']:.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
