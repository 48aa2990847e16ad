"""GLB, VRMA and Live Link CSV writers in bounded memory (issue 15.2): the same bytes as before, chunk by chunk.

The golden hashes were computed with the writers as they were before streaming (commit 237f82a: the whole
binary buffer built in memory and saved by pygltflib; the whole CSV text built as one string) on
``data/sample_a0007_clip.npz`` (the shipped model 0.4.0 on the shipped sample speech, seed 0, with
``audio_offset_s`` 1.25 so that timecodes are offset). They change only if the file format changes on
purpose, or the packaged head asset (``exporters/assets/head_arkit.npz``) is rebuilt.
"""
import hashlib
import os
import tracemalloc
from pathlib import Path

import numpy as np
import pygltflib
import pytest

from exporters import glb, livelink_csv as llc, vrma
from motion.clip import MotionClip
from tests.exporters.test_glb import smooth_clip

FIXTURE = Path(__file__).parent / "data" / "sample_a0007_clip.npz"
GOLDEN = {
    "glb_smplx": "35fd672a25f3cba67ceb1b1fc49b603b4f2fadd449bb7e1403af7f98cd900e32",
    "glb_mixamo": "2953169c80fca9cc1caa86534c40b9236c782df4039657556435b90d3eeb69b9",
    "csv": "6073031cad86dfdf64075dd17025235d4da32a5f9142f01d628884c93dedbd5b",
    "csv_60fps": "8121ef73cb81426de885e81559efda5c500973c9f68c53a3121437b1a3630726",
    "vrma_arkit": "6a5c5a29b380cd37a036b26f423f7ecea7632557529ecc8e818cce7d3c52f013",
    "vrma_preset": "50cf1f98a8bb99005bc72225396ff1420a1d8daf5ab43c5bf4147fccf8ec0ada",
}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_sample_files_are_byte_identical_to_the_whole_clip_writers(tmp_path):
    clip = MotionClip.load(FIXTURE)
    assert clip.num_frames == 120 and clip.meta["audio_offset_s"] == 1.25
    assert sha256(glb.write(clip, tmp_path / "a.glb")) == GOLDEN["glb_smplx"]
    assert sha256(glb.write(clip, tmp_path / "b.glb", bone_names="mixamo")) == GOLDEN["glb_mixamo"]
    assert sha256(llc.write(clip, tmp_path / "a.csv")) == GOLDEN["csv"]
    assert sha256(llc.write(clip, tmp_path / "b.csv", fps=60)) == GOLDEN["csv_60fps"]
    assert sha256(vrma.write(clip, tmp_path / "a.vrma")) == GOLDEN["vrma_arkit"]
    assert sha256(vrma.write(clip, tmp_path / "b.vrma", expressions="preset")) == GOLDEN["vrma_preset"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv", "a.glb", "a.vrma", "b.csv", "b.glb",
                                                          "b.vrma"]          # no spooled buffer left behind


def test_spooled_glb_is_pygltflib_bytes(tmp_path):
    """The streamed file equals pygltflib's ``save_to_bytes`` of the in-memory glTF (``glb.build``), on a
    clip longer than the sample, and reads back with pygltflib."""
    clip = smooth_clip(T=3001, seed=4)
    for bones in ("smplx", "mixamo"):
        path = glb.write(clip, tmp_path / f"{bones}.glb", bone_names=bones)
        assert path.read_bytes() == b"".join(glb.build(clip, bone_names=bones).save_to_bytes())
    for expressions in ("arkit", "preset"):
        path_v = vrma.write(clip, tmp_path / f"{expressions}.vrma", expressions=expressions)
        assert path_v.read_bytes() == b"".join(vrma.build(clip, expressions=expressions).save_to_bytes())
    g = pygltflib.GLTF2.load(str(path))
    assert g.accessors[g.animations[0].samplers[0].input].count == 3001
    assert g.buffers[0].byteLength == len(g.binary_blob())


def test_csv_chunks_do_not_change_the_text(tmp_path, monkeypatch):
    clip = smooth_clip(T=1000, seed=2)
    clip.meta["audio_offset_s"] = 59.99                      # timecodes roll over a minute mid-file
    whole = {fps: llc.write(clip, tmp_path / f"whole{fps}.csv", fps=fps).read_bytes() for fps in (None, 60)}
    monkeypatch.setattr(llc, "CHUNK_ROWS", 7)
    for fps in (None, 60):
        assert llc.write(clip, tmp_path / f"chunked{fps}.csv", fps=fps).read_bytes() == whole[fps]
    lines = whole[None].decode().splitlines()
    assert len(lines) == 1001 and lines[1].startswith("00:00:59:29.") and lines[2].startswith("00:01:00:00.")


def traced_peak(fn) -> int:
    """Peak bytes allocated (tracemalloc: Python objects and numpy arrays) while ``fn()`` runs."""
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_glb_writer_does_not_hold_the_animation(tmp_path):
    """20,000 frames have 22 MB of animation keys; the writer held ~104 MB of copies before streaming,
    now the avatar's arrays (cached before measuring) and one joint's keys (0.6 MB)."""
    clip = smooth_clip(T=20000, seed=1)
    glb.write(clip.slice(0, 2), tmp_path / "warm.glb")      # load and cache the avatar
    keys = clip.num_frames * (55 * 4 + 3 + 52) * 4
    peak = traced_peak(lambda: glb.write(clip, tmp_path / "long.glb"))
    assert peak < 0.25 * keys, f"{peak / 1e6:.1f} MB traced for {keys / 1e6:.1f} MB of keys"


def test_vrma_writer_does_not_hold_the_animation(tmp_path):
    clip = smooth_clip(T=20000, seed=1)
    vrma.write(clip.slice(0, 2), tmp_path / "warm.vrma")
    keys = clip.num_frames * (53 * 4 + 3 + 4 + 52 * 3) * 4                  # bones, hips, lookAt, 52 expressions
    peak = traced_peak(lambda: vrma.write(clip, tmp_path / "long.vrma"))
    assert peak < 0.25 * keys, f"{peak / 1e6:.1f} MB traced for {keys / 1e6:.1f} MB of keys"


def test_csv_writer_memory_does_not_grow_with_the_clip(tmp_path, monkeypatch):
    """With 128-row chunks, 4x the frames needs about the same peak (the whole-text writer needed 4x)."""
    monkeypatch.setattr(llc, "CHUNK_ROWS", 128)
    short, long = smooth_clip(T=512, seed=1), smooth_clip(T=2048, seed=1)
    llc.write(short.slice(0, 2), tmp_path / "warm.csv")
    p_short = traced_peak(lambda: llc.write(short, tmp_path / "short.csv"))
    p_long = traced_peak(lambda: llc.write(long, tmp_path / "long.csv"))
    text = (tmp_path / "long.csv").stat().st_size
    assert p_long < 1.3 * p_short + 200_000, (p_short, p_long)
    assert p_long < 0.5 * text, (p_long, text)


@pytest.mark.parametrize("T", [1, 2])
def test_tiny_clips(tmp_path, T):
    clip = smooth_clip(T=T, seed=0)
    assert glb.write(clip, tmp_path / "x.glb").read_bytes() == b"".join(glb.build(clip).save_to_bytes())
    assert len(llc.write(clip, tmp_path / "x.csv").read_text().splitlines()) == T + 1
    assert np.array_equal(llc.read(tmp_path / "x.csv").face.shape, (T, 52))


@pytest.mark.skipif(os.name != "posix", reason="SIGTERM/SIGKILL are POSIX")
@pytest.mark.parametrize("sig", ["SIGTERM", "SIGKILL"])
def test_signal_while_the_spooled_buffer_is_copied(tmp_path, sig):
    """Killed while the GLB's spooled buffer is copied into place: SIGTERM ends like Ctrl-C with no file at
    all; SIGKILL leaves at most hidden temporaries (the spool itself is an unlinked file: never seen)."""
    import signal
    import subprocess
    import sys

    src = smooth_clip(T=300, seed=3).save(tmp_path / "take.npz")
    out = tmp_path / "o"
    out.mkdir()
    code = ("import os, shutil, signal, sys\n"
            "def die(src, dst, length=0):\n"
            "    dst.write(src.read(1000)); dst.flush(); os.kill(os.getpid(), signal.%s)\n"
            "shutil.copyfileobj = die\n"
            "from chatanyone.cli import main; sys.exit(main(sys.argv[1:]))" % sig)
    r = subprocess.run([sys.executable, "-c", code, "export", str(src), "-f", "npz,glb,csv", "-o", str(out)],
                       capture_output=True, text=True, cwd=Path(__file__).resolve().parents[2], timeout=120)
    left = sorted(p.name for p in out.iterdir())
    if sig == "SIGTERM":
        assert r.returncode == 130 and "interrupted" in r.stderr and "Traceback" not in r.stderr, r.stderr
        assert left == []
    else:
        assert r.returncode == -signal.SIGKILL
        assert left and all(n.startswith(".") and ".tmp" in n for n in left), left
        assert not {"take.npz", "take.glb", "take.csv"} & set(left)       # no final file of the set
