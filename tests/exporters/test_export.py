"""The exporter registry (``exporters.FORMATS``/``exporters.export``) and ``chatanyone export``'s CLI module."""
import os

import numpy as np
import pytest

import exporters
from exporters import cli, livelink_csv
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
    def boom(clip, path):                      # fails after npz, glb and vrma were written
        raise RuntimeError("disk on fire")

    monkeypatch.setitem(exporters.FORMATS, "bvh", (boom, ".bvh"))
    with pytest.raises(RuntimeError, match="disk on fire"):
        exporters.export(clip, tmp_path, "take", ["npz", "glb", "vrma", "bvh", "csv"])
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
