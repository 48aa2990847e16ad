"""Export time, peak memory and file size of every format for a long clip (default: 10 minutes at 30 fps).

    python benchmarks/export_bench.py [--minutes 10] [--fps 30] [--formats all] [--no-memory]

The clip is synthetic smooth motion (every joint and face channel moving), not model output: exporters
do not care where motion came from. Each format is written once untraced (wall time, the median of
``--repeats``) and once under ``tracemalloc`` (peak Python + NumPy allocation above the clip itself,
which is what the writer adds). One-time costs are included in the first run and reported separately:
the GLB's mesh assets are built on first use (``glb._body``/``glb._face`` are cached per process).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def synthetic_clip(num_frames: int, fps: float, seed: int = 0):
    from scipy.spatial.transform import Rotation

    from motion.clip import MotionClip
    rng = np.random.default_rng(seed)
    t = (np.arange(num_frames, dtype=np.float64) / fps)[:, None]
    aa = np.empty((num_frames, 55 * 3))
    for k, (f, ph) in enumerate(zip(rng.uniform(0.1, 2.0, 55 * 3), rng.uniform(0, 2 * np.pi, 55 * 3))):
        aa[:, k] = 0.3 * np.sin(2 * np.pi * f * t[:, 0] + ph)
    rot = Rotation.from_rotvec(aa.reshape(-1, 3)).as_quat().reshape(num_frames, 55, 4).astype(np.float32)
    face = (0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.2, 3, (1, 52)) * t + rng.uniform(0, 6, (1, 52))))
    trans = 0.05 * np.sin(2 * np.pi * t * np.array([0.5, 1.0, 0.25]))
    return MotionClip(fps, face.astype(np.float32), rot, trans.astype(np.float32), {"name": "bench"})


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--formats", default="all", help="comma list of npz,glb,vrma,bvh,csv or all")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--no-memory", action="store_true", help="skip the tracemalloc pass (halves the run time)")
    a = ap.parse_args(argv)

    import exporters
    formats = exporters.check_formats(f.strip() for f in a.formats.split(",") if f.strip())
    T = int(round(a.minutes * 60 * a.fps))
    t0 = time.perf_counter()
    clip = synthetic_clip(T, a.fps)
    print(f"clip: {T} frames at {a.fps:g} fps ({a.minutes:g} min), built in {time.perf_counter() - t0:.1f} s")

    warm = {}
    if "glb" in formats:                       # one-time mesh assets, reported apart
        from exporters import glb
        t0 = time.perf_counter()
        glb._body(), glb._face()
        warm["glb"] = time.perf_counter() - t0

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in formats:
            write, suffix = exporters.FORMATS[name]
            path = Path(tmp) / f"bench{suffix}"
            times = []
            for _ in range(max(1, a.repeats)):
                t0 = time.perf_counter()
                write(clip, path)
                times.append(time.perf_counter() - t0)
            size = path.stat().st_size
            peak = float("nan")
            if not a.no_memory:
                path.unlink()
                tracemalloc.start()
                base = tracemalloc.get_traced_memory()[0]
                write(clip, path)
                peak = (tracemalloc.get_traced_memory()[1] - base) / 2**20
                tracemalloc.stop()
            path.unlink()
            rows.append((name, statistics.median(times), peak, size / 2**20, size / T / 1024))

    import resource
    maxrss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024   # kB on Linux
    print()
    print("| format | write time (s) | peak extra memory (MiB, tracemalloc) | file (MiB) | kB / frame |")
    print("|---|---:|---:|---:|---:|")
    for name, t, peak, mb, kbf in rows:
        print(f"| {name} | {t:.2f} | {peak:.0f} | {mb:.1f} | {kbf:.2f} |")
    print()
    clip_mb = (clip.face.nbytes + clip.rotations.nbytes + clip.translation.nbytes) / 2**20
    print(f"clip arrays: {clip_mb:.0f} MiB; process max RSS: {maxrss_mb:.0f} MiB"
          + (f"; GLB mesh assets built once in {warm['glb']:.2f} s (not in the table)" if warm else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
