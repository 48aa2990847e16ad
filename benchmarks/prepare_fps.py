"""Frames per second of ``chatanyone prepare`` on real videos (decode + MediaPipe tracking + IK + QA + write).

    nice -n 19 python benchmarks/prepare_fps.py [--repeats 1]

Two cases:

* **face only**: a GRID sentence (360x288, 25 fps, 3 s), face landmarker only (``--no-pose``).
* **full body**: there are no full-body videos in ../shared/data; the widest framing available is an Obama
  weekly-address sentence cut (1280x720, 29.97 fps, head and upper torso, hands out of frame), run with
  face + pose + hands (hands only run on frames where the pose model sees a wrist, so on this framing the
  hand model rarely runs: the number is an upper bound for real full-body footage).

Prints source frames/s of the tracking stage and of the whole prepare (per source video frame).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DATA = REPO.parent / "shared" / "data" / "videos"
CASES = [
    ("face only (GRID 360x288)", DATA / "grid" / "bbaf2n.mpg", dict(pose=False, hands=False)),
    ("face+pose+hands (Obama 1280x720, widest framing available)",
     DATA / "obama_weekly_address_sentences" / "about_the_very_real_and_very_serious_challenges_their_famili.mp4",
     dict(pose=True, hands=True)),
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=1)
    a = ap.parse_args()
    from motion.prepare import Job, prepare_one

    print(f"{'case':60s} {'frames':>6s} {'track fr/s':>10s} {'total fr/s':>10s}")
    for label, path, kw in CASES:
        if not path.is_file():
            print(f"{label:60s} missing {path}")
            continue
        best = None
        for _ in range(a.repeats):
            with tempfile.TemporaryDirectory() as d:
                t0 = time.perf_counter()
                e = prepare_one(Job("video", path, "bench"), Path(d), **kw)
                total = time.perf_counter() - t0
            n = e["qa"]["source_frames"]
            row = (n, e["qa"]["tracking_fps"], n / total)
            best = row if best is None or row[2] > best[2] else best
        print(f"{label:60s} {best[0]:6d} {best[1]:10.1f} {best[2]:10.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
