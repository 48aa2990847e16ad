"""Peak memory each file writer adds on a long clip: ``exporters.export`` one format at a time, in process.

    python benchmarks/export_memory.py [--minutes 30,60] [--formats npz,glb,bvh,csv]

A random clip of N minutes at 30 fps (unit quaternions, weights in [0, 1]; the writers' memory depends on
the frame count, not the motion) is built once per length; then for each format the peak resident set
size is reset (Linux ``/proc/self/clear_refs``, value 5) and ``exporters.export`` writes it to a temporary
folder. Prints, per length and format: the peak RSS above the RSS before the call (what the writer held
beyond the clip), the seconds, and the file size. Linux only. Complements
``benchmarks/long_audio_memory.py`` (the whole ``animate`` process on real speech).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _status_mb(key: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"no {key} in /proc/self/status")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", default="30,60", help="comma list of clip lengths in minutes")
    ap.add_argument("--formats", default="npz,glb,bvh,csv", help="comma list of export formats")
    a = ap.parse_args()
    from exporters import export
    from exporters import glb
    from motion.clip import MotionClip
    glb._body(), glb._face()                          # the avatar is cached once per process: not per clip
    print(f"{'clip':>8} {'format':>6} {'peak over clip':>15} {'time':>7} {'file':>8}", flush=True)
    with tempfile.TemporaryDirectory(prefix="chatanyone-export-mem-") as tmp:
        for m in [float(x) for x in a.minutes.split(",")]:
            T = int(round(m * 60 * 30))
            rng = np.random.default_rng(0)
            q = rng.normal(size=(T, 55, 4)).astype(np.float32)
            q /= np.linalg.norm(q, axis=-1, keepdims=True)
            clip = MotionClip(30.0, rng.uniform(size=(T, 52)).astype(np.float32), q, None, {})
            del q
            for fmt in a.formats.split(","):
                before = _status_mb("VmRSS")
                with open("/proc/self/clear_refs", "w") as f:
                    f.write("5")
                t0 = time.perf_counter()
                path = export(clip, tmp, "clip", [fmt])[0]
                wall = time.perf_counter() - t0
                print(f"{m:4g} min {fmt:>6} {_status_mb('VmHWM') - before:+12.0f} MB {wall:6.1f} s "
                      f"{path.stat().st_size / 1e6:5.0f} MB", flush=True)
                path.unlink()
            del clip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
