"""Live Link CSV round trips (issue 15, item 8): a turned neck AND head survive CSV -> rotations -> CSV to
1e-3 rad, and our own 30 fps CSV reads back at 30 fps (not the 60 the training reader used to assume)."""
import numpy as np
from scipy.spatial.transform import Rotation as R

from exporters import livelink_csv as llc
from motion import MotionClip
from motion.conventions import JOINT_INDEX, apply_livelink_head_eyes
from motion.livelink import parse_livelink_csv, read_livelink_csv

NECK, HEAD = JOINT_INDEX["neck"], JOINT_INDEX["head"]


def turned_clip(T=90, fps=30.0, seed=0) -> MotionClip:
    """Neck and head each turned independently, up to +-20 degrees about every axis."""
    rng = np.random.default_rng(seed)
    clip = MotionClip.rest(T, fps)
    t = np.arange(T)[:, None] / fps
    for j in (NECK, HEAD):
        ang = np.radians(20) * np.sin(2 * np.pi * rng.uniform(0.3, 1.0, (1, 3)) * t + rng.uniform(0, 6, (1, 3)))
        clip.rotations[:, j] = R.from_euler("YXZ", ang).as_quat()
    clip.face[:] = rng.uniform(0, 1, (T, 52))
    return MotionClip(fps, clip.face, clip.rotations)


def test_turned_neck_and_head_round_trip_exactly(tmp_path):
    clip = turned_clip()
    first = llc.read(llc.write(clip, tmp_path / "a.csv"))
    rot = MotionClip.rest(clip.num_frames).rotations
    apply_livelink_head_eyes(rot, first.head, first.eyes)             # CSV -> rotations (the reader's split)
    again = llc.read(llc.write(MotionClip(first.fps, first.face, rot), tmp_path / "b.csv"))
    assert np.abs(again.head - first.head).max() < 1e-3               # radians
    composed = lambda r: R.from_quat(r[:, NECK]) * R.from_quat(r[:, HEAD])  # noqa: E731
    assert (composed(clip.rotations).inv() * composed(rot)).magnitude().max() < 1e-3
    # the split is not a copy of the original joints: the neck takes 40 % of the composed turn
    assert np.allclose(R.from_quat(rot[:, NECK]).magnitude(), 0.4 * composed(rot).magnitude(), atol=1e-5)


def test_our_30_fps_csv_reads_at_30_fps(tmp_path):
    clip = turned_clip(T=75, fps=30.0)
    path = llc.write(clip, tmp_path / "take.csv")                     # no "fps" in the name
    assert read_livelink_csv(path)[3] == 30.0 and llc.read(path).fps == 30.0
    path60 = llc.write(clip, tmp_path / "take60.csv", fps=60)
    assert read_livelink_csv(path60)[3] == 60.0


def test_rate_from_sub_frames_when_the_nominal_rate_is_half(tmp_path):
    """A 60 fps take stamped at nominal 30 with .500 sub-frames reads 60 fps."""
    clip = turned_clip(T=80, fps=60.0)
    path = llc.write(clip, tmp_path / "t.csv")
    lines = path.read_text().splitlines()
    stamps = [f"00:00:{(k // 60):02d}:{(k % 60) // 2:02d}.{500 * (k % 2):03d}" for k in range(len(lines) - 1)]
    path.write_text("\n".join([lines[0]] + [s + r[r.index(","):] for s, r in zip(stamps, lines[1:])]) + "\n")
    assert parse_livelink_csv(path).fps == 60.0


def test_one_reader_for_exporter_and_datasets(tmp_path):
    path = llc.write(turned_clip(), tmp_path / "x.csv")
    d, take = parse_livelink_csv(path), llc.read(path)
    assert np.array_equal(d.face, take.face) and np.array_equal(d.head, take.head) and d.fps == take.fps
    assert d.present.all() and d.timecodes == take.timecodes
