"""The exporter registry (``exporters.FORMATS``/``exporters.export``) and ``chatanyone export``'s CLI module."""
import errno
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import exporters
from exporters import bvh, cli, livelink_csv
from motion import MotionClip
from motion.errors import ChatAnyoneError
from tests.exporters.test_glb import smooth_clip


@pytest.fixture(scope="module")
def clip():
    return smooth_clip(T=12, seed=7)


def test_registry_lists_every_format():
    assert set(exporters.FORMATS) == {"npz", "glb", "vrma", "bvh", "csv"}
    for name, (write, suffix) in exporters.FORMATS.items():
        assert callable(write) and suffix.startswith(".")
    assert exporters.check_formats(["all"]) == list(exporters.FORMATS)
    assert exporters.check_formats(["bvh", "glb", "bvh"]) == ["bvh", "glb"]


def test_export_writes_all_formats(tmp_path, clip):
    paths = exporters.export(clip, tmp_path, "take", ["all"])
    assert [p.name for p in paths] == ["take.npz", "take.glb", "take.vrma", "take.bvh", "take.csv"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths)   # no temporaries
    assert all(p.stat().st_size > 0 for p in paths)
    back = MotionClip.load(tmp_path / "take.npz")
    assert np.array_equal(back.face, clip.face)
    assert tmp_path.joinpath("take.glb").read_bytes()[:4] == b"glTF" == tmp_path.joinpath("take.vrma").read_bytes()[:4]
    assert tmp_path.joinpath("take.bvh").read_text().startswith("HIERARCHY")
    assert np.abs(livelink_csv.read(tmp_path / "take.csv").face - clip.face).max() < 1e-4


def test_unknown_format_writes_nothing(tmp_path, clip):
    with pytest.raises(ChatAnyoneError, match="unknown export format 'fbx'"):
        exporters.export(clip, tmp_path, "take", ["npz", "fbx"])
    with pytest.raises(ChatAnyoneError, match="no export format"):
        exporters.export(clip, tmp_path, "take", [])
    assert list(tmp_path.iterdir()) == []


def test_a_failing_writer_leaves_no_files(tmp_path, clip, monkeypatch):
    def boom(clip, path, **options):           # fails after npz, glb and vrma were written
        raise RuntimeError("disk on fire")

    monkeypatch.setitem(exporters.FORMATS, "bvh", (boom, ".bvh"))
    with pytest.raises(RuntimeError, match="disk on fire"):
        exporters.export(clip, tmp_path, "take", ["npz", "glb", "vrma", "bvh", "csv"])
    assert list(tmp_path.iterdir()) == []


def test_formats_appear_together_and_old_files_survive_a_failure(tmp_path, clip, monkeypatch):
    old = tmp_path / "take.npz"
    old.write_bytes(b"previous take")
    seen = []
    real_csv = exporters.FORMATS["csv"][0]

    def csv_last(clip, path, **options):       # while the last format is written, no final file is new
        seen.append(sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")))
        return real_csv(clip, path, **options)

    monkeypatch.setitem(exporters.FORMATS, "csv", (csv_last, ".csv"))
    exporters.export(clip, tmp_path, "take", ["npz", "bvh", "csv"])
    assert seen == [["take.npz"]] and old.read_bytes() != b"previous take"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["take.bvh", "take.csv", "take.npz"]

    def boom(clip, path, **options):
        raise OSError(errno.ENOSPC, "No space left on device")

    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    monkeypatch.setitem(exporters.FORMATS, "csv", (boom, ".csv"))
    with pytest.raises(OSError):
        exporters.export(clip, tmp_path, "take", ["npz", "bvh", "csv"])
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before   # old set intact, no temporaries


def test_disk_full_in_a_writer_is_a_one_line_error(tmp_path, clip, monkeypatch):
    def full(f, values):
        f.write("1 2 3\n")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(bvh, "_write_frames", full)
    with pytest.raises(ChatAnyoneError, match=r"cannot write .*take\.bvh.*: No space left on device"):
        exporters.export(clip, tmp_path, "take", ["npz", "bvh", "csv"])
    assert list(tmp_path.iterdir()) == []


def test_cli_exports_an_npz(tmp_path, clip, capsys):
    src = clip.save(tmp_path / "speech.npz")
    out = tmp_path / "out" / "nested"
    assert cli.main([str(src), "--format", "all", "-o", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(f"speech{s}" for _, s in exporters.FORMATS.values())
    assert capsys.readouterr().out.count("wrote ") == 5
    assert cli.main([str(src), "--format", "vrma,csv", "-o", str(tmp_path / "two"), "-q"]) == 0
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == ["speech.csv", "speech.vrma"]


def test_cli_unknown_format(tmp_path, clip):
    src = clip.save(tmp_path / "speech.npz")
    with pytest.raises(ChatAnyoneError, match="unknown export format 'fbx'"):
        cli.main([str(src), "--format", "fbx", "-o", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()


def test_cli_nan_clip_is_a_clear_error(tmp_path, clip):
    d = clip.to_npz_dict()
    d["rotations"] = d["rotations"].copy()
    d["rotations"][3, 5, 0] = np.nan
    bad = tmp_path / "nan.npz"
    np.savez(bad, **d)
    with pytest.raises(ChatAnyoneError, match="NaN"):
        cli.main([str(bad), "-o", str(tmp_path / "out")])
    with pytest.raises(ChatAnyoneError, match="no such file"):
        cli.main([str(tmp_path / "missing.npz"), "-o", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()


def test_unwritable_folder_is_a_clear_error(tmp_path, clip, monkeypatch):
    src = clip.save(tmp_path / "speech.npz")
    out = tmp_path / "locked"
    out.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if str(p) == str(out) else real_access(p, mode, **kw))
    with pytest.raises(ChatAnyoneError, match="not writable"):
        cli.main([str(src), "-o", str(out)])
    assert list(out.iterdir()) == []
    monkeypatch.undo()
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(ChatAnyoneError, match="not a folder"):
        cli.main([str(src), "-o", str(afile)])


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores folder permissions")
def test_read_only_folder_for_real(tmp_path, clip):
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o555)
    try:
        with pytest.raises(ChatAnyoneError, match="not writable"):
            exporters.export(clip, out, "take", ["all"])
        assert list(out.iterdir()) == []
    finally:
        out.chmod(0o755)


# --------------------------------------------------------------------------------------------------
# The command line as a user runs it: `chatanyone export ...` (exit 2, one error line, nothing written)
# --------------------------------------------------------------------------------------------------
def run_chatanyone(argv, capsys):
    from chatanyone.cli import main
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_error_line(code, err, pattern=""):
    import re
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("chatanyone: error: "), err
    assert "Traceback" not in err and re.search(pattern, lines[0]), lines[0]


def snapshot(folder: Path) -> dict:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.mark.parametrize("args, pattern", [
    (["--fps", "0"], r"--fps must be a number in 1\.\.240"),
    (["--fps", "1e5"], r"--fps must be a number in 1\.\.240"),
    (["--fps", "nan"], r"--fps must be a number in"),
    (["--fps", "sixty"], r"invalid float value"),
    (["--bone-names", "unreal"], r"invalid choice: 'unreal'"),
    (["-f", "csv", "--bone-names", "mixamo"], r"--bone-names applies to glb and bvh only"),
    (["-f", "fbx"], r"unknown export format 'fbx'"),
    (["--frobnicate"], r"unrecognized arguments"),
])
def test_bad_options_exit_2_with_one_line_and_write_nothing(tmp_path, clip, capsys, args, pattern):
    src = clip.save(tmp_path / "speech.npz")
    before = snapshot(tmp_path)
    code, out, err = run_chatanyone(["export", str(src), "-o", str(tmp_path / "out"), *args], capsys)
    assert_one_error_line(code, err, pattern)
    assert not (tmp_path / "out").exists() and snapshot(tmp_path) == before


def test_a_folder_as_input_says_it_is_a_folder(tmp_path, capsys):
    code, _, err = run_chatanyone(["export", str(tmp_path), "-o", str(tmp_path / "out")], capsys)
    assert_one_error_line(code, err, r"is a folder; give a clip \.npz file")
    assert list(tmp_path.iterdir()) == []


def test_export_never_overwrites_its_input(tmp_path, clip, capsys):
    src = clip.save(tmp_path / "speech.npz")
    before = snapshot(tmp_path)
    for out_dir in (tmp_path, Path(os.path.relpath(tmp_path)), tmp_path / "." / "sub" / ".."):
        code, _, err = run_chatanyone(["export", str(src), "-f", "npz", "-o", str(out_dir)], capsys)
        assert_one_error_line(code, err, r"would overwrite the input clip")
        code, _, err = run_chatanyone(["export", str(src), "-f", "npz,bvh", "-o", str(out_dir)], capsys)
        assert_one_error_line(code, err, r"would overwrite the input clip")
        assert snapshot(tmp_path) == before
    # `-f all` next to the input: everything but the npz, which is the input itself
    code, out, err = run_chatanyone(["export", str(src), "-f", "all", "-o", str(tmp_path)], capsys)
    assert code == 0 and err == "" and "skipped" in out and out.count("wrote ") == 4
    assert snapshot(tmp_path)["speech.npz"] == before["speech.npz"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"speech{s}" for _, s in exporters.FORMATS.values())


def test_fps_60_live_link_csv(tmp_path, capsys):
    from tests.exporters.test_glb import smooth_clip
    src = smooth_clip(T=45, fps=30.0, seed=3).save(tmp_path / "take.npz")        # 1.5 s at 30 fps
    code, out, err = run_chatanyone(["export", str(src), "-f", "csv,bvh", "--fps", "60", "-o", str(tmp_path / "o")],
                                    capsys)
    assert code == 0, err
    take = livelink_csv.read(tmp_path / "o" / "take.csv")
    assert take.fps == 60 and len(take.timecodes) == 90
    frames = [int(tc.split(":")[3].split(".")[0]) for tc in take.timecodes]
    assert frames[:61] == list(range(60)) + [0] and max(frames) == 59       # FF counts 0..59 at 60 fps
    assert [livelink_csv.timecode_seconds(tc, 60) for tc in take.timecodes[:3]] == pytest.approx([0, 1 / 60, 2 / 60])
    assert bvh.read(tmp_path / "o" / "take.bvh").fps == 60


def test_bone_names_mixamo_through_the_cli(tmp_path, clip, capsys):
    src = clip.save(tmp_path / "take.npz")
    code, _, err = run_chatanyone(["export", str(src), "-f", "bvh", "--bone-names", "mixamo", "-o",
                                   str(tmp_path / "o"), "-q"], capsys)
    assert code == 0, err
    data = bvh.read(tmp_path / "o" / "take.bvh")
    assert data.joint_names[0] == "mixamorig:Hips" and "mixamorig:LeftHandIndex1" in data.joint_names
    dot = np.abs((bvh.to_clip(data).rotations.astype(np.float64) * clip.rotations).sum(-1))
    assert np.degrees(2 * np.arccos(np.clip(dot, 0, 1))).max() < 0.1           # same motion, by name


def test_disk_full_for_real_exits_2_and_leaves_nothing(tmp_path, clip):
    """A real I/O failure: the file-size limit (RLIMIT_FSIZE, with SIGXFSZ ignored) makes write() fail with
    EFBIG part-way through the GLB, as a full disk fails with ENOSPC."""
    resource = pytest.importorskip("resource")
    src = clip.save(tmp_path / "take.npz")
    out = tmp_path / "o"
    out.mkdir()
    code = ("import resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
            "resource.setrlimit(resource.RLIMIT_FSIZE, (60000, 60000)); "
            "from chatanyone.cli import main; sys.exit(main(sys.argv[1:]))")
    r = subprocess.run([sys.executable, "-c", code, "export", str(src), "-f", "all", "-o", str(out)],
                       capture_output=True, text=True, cwd=Path(__file__).resolve().parents[2], timeout=120)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1, r.stderr
    assert lines[0].startswith("chatanyone: error: cannot write ") and "File too large" in lines[0]
    assert list(out.iterdir()) == [] and r.stdout == ""


@pytest.mark.skipif(os.name != "posix", reason="SIGTERM is POSIX")
def test_sigterm_while_writing_leaves_no_temporaries(tmp_path, clip):
    """SIGTERM arrives while the BVH is half written: the run ends like Ctrl-C, without any file."""
    src = clip.save(tmp_path / "take.npz")
    out = tmp_path / "o"
    out.mkdir()
    code = ("import os, signal, sys; from exporters import bvh; real = bvh._write_frames\n"
            "def slow(f, values):\n    f.write('0 ' * 1000); f.flush(); os.kill(os.getpid(), signal.SIGTERM)\n"
            "    real(f, values)\n"
            "bvh._write_frames = slow\n"
            "from chatanyone.cli import main; sys.exit(main(sys.argv[1:]))")
    r = subprocess.run([sys.executable, "-c", code, "export", str(src), "-f", "all", "-o", str(out)],
                       capture_output=True, text=True, cwd=Path(__file__).resolve().parents[2], timeout=120)
    assert r.returncode == 130 and "interrupted" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert list(out.iterdir()) == []
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL      # (this process untouched)


def test_glb_bone_names_mixamo(tmp_path, clip):
    import pygltflib
    (path,) = exporters.export(clip, tmp_path, "take", ["glb"], bone_names="mixamo")
    names = {n.name for n in pygltflib.GLTF2().load(str(path)).nodes}
    assert {"mixamorig:Hips", "mixamorig:Spine2", "mixamorig:LeftHandIndex1"} <= names and "pelvis" not in names
    with pytest.raises(ChatAnyoneError, match="unknown bone names 'unreal'"):
        exporters.export(clip, tmp_path / "x", "take", ["glb"], bone_names="unreal")


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL is POSIX")
def test_sigkill_mid_export_leaves_no_partial_set(tmp_path, clip):
    """Killed outright while the 4th of 5 formats is written: hidden temporaries may stay, final files don't."""
    src = clip.save(tmp_path / "take.npz")
    out = tmp_path / "o"
    out.mkdir()
    code = ("import os, signal, sys; from exporters import bvh\n"
            "def die(f, values):\n    f.write('0 ' * 1000); f.flush(); os.kill(os.getpid(), signal.SIGKILL)\n"
            "bvh._write_frames = die\n"
            "from chatanyone.cli import main; sys.exit(main(sys.argv[1:]))")
    r = subprocess.run([sys.executable, "-c", code, "export", str(src), "-f", "all", "-o", str(out)],
                       capture_output=True, text=True, cwd=Path(__file__).resolve().parents[2], timeout=120)
    assert r.returncode == -signal.SIGKILL
    left = sorted(p.name for p in out.iterdir())
    assert left and all(n.startswith(".") and ".tmp" in n for n in left), left        # hidden temporaries only
