"""Bad inputs to the command line (issue 15, items 5 and 6): each one exits 2 with exactly one
``chatanyone: error:`` line on stderr, no traceback, no output file and the input unchanged; options and
inputs are checked before the model is loaded (``load_models`` is replaced by a tripwire here).

In-process (``chatanyone.cli.main``) with pytest's capture: a ``chatanyone`` process costs seconds of
imports; one subprocess test checks what only a real process shows (native libraries' stderr lines).
"""
import errno
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from chatanyone import cli
from chatanyone.cli import main
from motion import MotionClip
from tests.conftest import DATA, REPO

SAMPLE = REPO / "chatanyone" / "samples" / "cmu_arctic_a0007.wav"
PORTRAIT = DATA / "portraits" / "echomimic_flux_refs" / "0057.png"


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "folder"


def one_error_line(capsys) -> str:
    out = capsys.readouterr()
    lines = out.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("chatanyone: error: "), out.err
    assert "Traceback" not in out.err and out.out == ""
    return lines[0]


@pytest.fixture
def no_model(monkeypatch):
    """Fail the test if anything loads the model."""
    import motion.checkpoint
    import motion.inference                             # before patching: it imports load_models by name

    def tripwire(*a, **k):
        raise AssertionError("the model was loaded before the bad input was reported")
    monkeypatch.setattr(motion.checkpoint, "load_models", tripwire)
    monkeypatch.setattr(motion.inference, "load_models", tripwire)


@pytest.fixture
def inputs(tmp_path):
    """A directory of bad inputs; returns ``(dir, dict name -> path)``."""
    d = tmp_path / "in"
    d.mkdir()
    f = {}
    (d / "text.mp3").write_text("this is a text file, not audio\n" * 40)
    f["text.mp3"] = d / "text.mp3"
    (d / "notes.wav").write_text("hello")
    f["text.wav"] = d / "notes.wav"
    (d / "empty.wav").write_bytes(b"")
    f["empty"] = d / "empty.wav"
    (d / "folder.wav").mkdir()
    f["folder"] = d / "folder.wav"
    f["missing"] = d / "missing.wav"
    sf.write(d / "short.wav", np.zeros(800, np.float32), 16000)
    f["short"] = d / "short.wav"
    (d / "plain").write_text("a file where a folder should be")
    f["plain"] = d / "plain"
    return d, f


def _npz(path: Path, **over):
    d = MotionClip.rest(20).to_npz_dict()
    d.update(over)
    np.savez(path, **{k: v for k, v in d.items() if v is not None})
    return path


@pytest.fixture
def bad_clips(tmp_path):
    d = tmp_path / "clips"
    d.mkdir()
    names = MotionClip.rest(1).to_npz_dict()
    face_names = list(names["face_names"])
    return {
        "face shape": _npz(d / "face_shape.npz", face=np.zeros((20, 51), np.float32)),
        "rotations frames": _npz(d / "rot_T.npz", rotations=np.zeros((19, 55, 4), np.float32)),
        "rotations 1-D": _npz(d / "rot_1d.npz", rotations=np.zeros(20, np.float32)),
        "translation shape": _npz(d / "trans.npz", translation=np.zeros((20, 2), np.float32)),
        "duplicate face name": _npz(d / "dup.npz", face_names=np.asarray(face_names[:-1] + face_names[:1])),
        "unknown joint name": _npz(d / "unknown.npz", joint_names=np.asarray(["hip"] * 55)),
        "fps array": _npz(d / "fps.npz", fps=np.zeros(3)),
        "fps zero": _npz(d / "fps0.npz", fps=np.asarray(0.0)),
        "face strings": _npz(d / "face_str.npz", face=np.full((20, 52), "x")),
        "meta list": _npz(d / "meta.npz", meta=np.asarray("[1, 2]")),
        "meta not json": _npz(d / "meta_bad.npz", meta=np.asarray("{oops")),
        "missing key": _npz(d / "nokey.npz", translation=None),
        "not npz": d / "text.npz",
        "folder": d / "folder.npz",
        "nan face": _npz(d / "nan.npz", face=np.full((20, 52), np.nan, np.float32)),
    }


# --------------------------------------------------------------------------------------------------
# animate
# --------------------------------------------------------------------------------------------------
#: case -> (arguments, what the error line must say)
ANIMATE_OPTIONS = {
    "seed negative": (["--seed", "-1"], "--seed"),
    "seed 2^64": (["--seed", str(2**64)], "--seed"),
    "seed not a number": (["--seed", "one"], "--seed"),
    "steps 0": (["--steps", "0"], "--steps"),
    "steps negative": (["--steps", "-3"], "--steps"),
    "steps 1000": (["--steps", "1000"], "--steps"),
    "fps 0": (["--fps", "0"], "--fps"),
    "fps 1e5": (["--fps", "1e5"], "--fps"),
    "fps nan": (["--fps", "nan"], "--fps"),
    "expression 3": (["--expression", "3"], "--expression"),
    "head nan": (["--head", "nan"], "--head"),
    "gesture -1": (["--gesture", "-1"], "--gesture"),
    "face guidance nan": (["--face-guidance", "nan"], "--face-guidance"),
    "body guidance inf": (["--body-guidance", "inf"], "--body-guidance"),
    "style guidance -inf": (["--style-guidance", "-inf"], "--style-guidance"),
    "face guidance 100": (["--face-guidance", "100"], "--face-guidance"),
    "unknown format": (["--formats", "npz,fbx"], "fbx"),
    "unknown style": (["--style", "opera"], "opera"),
    "unknown option": (["--colour", "red"], "--colour"),
}


@pytest.mark.parametrize("case", list(ANIMATE_OPTIONS))
def test_animate_options_out_of_range(case, tmp_path, capsys, no_model):
    args, says = ANIMATE_OPTIONS[case]
    out = tmp_path / "out"
    assert main(["animate", str(SAMPLE), "-o", str(out), *args]) == 2
    assert says in one_error_line(capsys)
    assert not out.exists()


def test_option_messages_state_the_range(capsys, tmp_path, no_model):
    for args, want in ((["--steps", "0"], "1..50"), (["--fps", "1e5"], "1..240"), (["--seed", "-1"], "0..2^64-1"),
                       (["--expression", "3"], "0..2"), (["--face-guidance", "nan"], "0..10")):
        assert main(["animate", str(SAMPLE), "-o", str(tmp_path / "o"), *args]) == 2
        assert want in one_error_line(capsys)


@pytest.mark.parametrize("kind, message", [
    ("text.mp3", "is not decodable audio"), ("text.wav", "is not decodable audio"), ("empty", "empty"),
    ("folder", "directory"), ("missing", "not found"), ("short", "shorter")])
def test_animate_bad_audio(kind, message, inputs, tmp_path, capsys, no_model):
    d, f = inputs
    before = digest(f[kind]) if f[kind].exists() else None
    out = tmp_path / "out"
    assert main(["animate", str(f[kind]), "-o", str(out), "-q"]) == 2
    line = one_error_line(capsys)
    assert message in line and "does not exist" not in line
    assert not out.exists()
    assert (digest(f[kind]) if f[kind].exists() else None) == before


def test_animate_output_folder_under_a_file(inputs, capsys, no_model):
    d, f = inputs
    for out in (f["plain"] / "sub", f["plain"] / "a" / "b", f["plain"]):
        assert main(["animate", str(SAMPLE), "-o", str(out), "-q"]) == 2
        assert "not a directory" in one_error_line(capsys)
    assert f["plain"].read_text() == "a file where a folder should be"


def test_animate_read_only_output_folder(tmp_path, capsys, monkeypatch, no_model):
    """Whether a folder is writable is asked of the OS (``os.access``, which also sees read-only mounts);
    root ignores folder permissions, so the OS's answer is stood in for here."""
    import os
    ro = tmp_path / "ro"
    ro.mkdir()
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, m, *a, **k: False if Path(p) == ro else real(p, m, *a, **k))
    for out in (ro, ro / "sub"):
        assert main(["animate", str(SAMPLE), "-o", str(out), "-q"]) == 2
        assert "not writable" in one_error_line(capsys)
    assert list(ro.iterdir()) == []


def _checkpoint(path: Path, info: dict | None, tensors=("face_mean", "face_std", "body_mean", "body_std")):
    import torch
    from safetensors.torch import save_file
    meta = {} if info is None else {"chatanyone": json.dumps(info)}
    save_file({k: torch.zeros(3) for k in tensors}, str(path), metadata=meta)
    return path


def test_checkpoint_with_incomplete_metadata(tmp_path, capsys, no_model):
    cases = {
        "no metadata": (_checkpoint(tmp_path / "a.safetensors", None), "no 'chatanyone' metadata"),
        "no configs": (_checkpoint(tmp_path / "b.safetensors", {"version": "x"}), "missing face_config"),
        "no stats": (_checkpoint(tmp_path / "c.safetensors", {"face_config": {}, "body_config": {}, "diffusion": {}},
                                 tensors=("face_mean",)), "missing face_std"),
        "not safetensors": (tmp_path / "d.safetensors", "not a ChatAnyone checkpoint"),
        "folder": (tmp_path, "is a folder"),
        "missing": (tmp_path / "none.safetensors", "not found"),
    }
    (tmp_path / "d.safetensors").write_text("nope")
    out = tmp_path / "out"
    for name, (ckpt, message) in cases.items():
        assert main(["animate", str(SAMPLE), "-o", str(out), "--checkpoint", str(ckpt)]) == 2, name
        assert message in one_error_line(capsys), name
    assert not out.exists()


def test_checkpoint_whose_config_does_not_build_a_model(tmp_path):
    from motion.checkpoint import load_models
    from motion.errors import CheckpointError
    path = _checkpoint(tmp_path / "x.safetensors", {"face_config": {"bogus": 1}, "body_config": {}, "diffusion": {}})
    with pytest.raises(CheckpointError, match="face_config does not describe a model"):
        load_models(path)


# --------------------------------------------------------------------------------------------------
# MotionClip files: export, stream, render
# --------------------------------------------------------------------------------------------------
def test_clip_files_with_wrong_shapes_or_names(bad_clips, tmp_path, capsys):
    (bad_clips["not npz"]).write_text("not a zip")
    bad_clips["folder"].mkdir()
    for name, path in bad_clips.items():
        before = digest(path)
        out = tmp_path / "out"
        assert main(["export", str(path), "-o", str(out), "-q"]) == 2, name
        line = one_error_line(capsys)
        assert str(path.name) in line, (name, line)
        assert not out.exists() or list(out.iterdir()) == [], name
        assert digest(path) == before
    assert "duplicate channel names" in (main(["export", str(bad_clips["duplicate face name"])]) == 2
                                         and one_error_line(capsys))
    assert "is a folder" in (main(["export", str(bad_clips["folder"])]) == 2 and one_error_line(capsys))


def test_stream_bad_clip_and_options(bad_clips, capsys):
    for path in (bad_clips["face shape"], bad_clips["unknown joint name"]):
        assert main(["stream", str(path), "--vmc", "127.0.0.1:39539", "-q"]) == 2
        one_error_line(capsys)
    bad_clips["folder"].mkdir()
    assert main(["stream", str(bad_clips["folder"]), "--vmc", "127.0.0.1:39539", "-q"]) == 2
    assert "is a folder" in one_error_line(capsys)
    good = MotionClip.rest(10).save(bad_clips["folder"].parent / "good.npz")
    for args, flag in ((["--fps", "0"], "--fps"), (["--fps", "1e5"], "--fps"), (["--seed", "-1"], "--seed"),
                       (["--delay", "nan"], "--delay"), (["--delay", "99"], "--delay")):
        assert main(["stream", str(good), "--vmc", "127.0.0.1:39539", *args]) == 2
        assert flag in one_error_line(capsys)


@pytest.mark.skipif(not PORTRAIT.is_file(), reason=f"needs the portrait {PORTRAIT} (../shared/data)")
def test_render_of_an_empty_or_broken_clip(bad_clips, tmp_path, capsys):
    empty = MotionClip.rest(0).save(tmp_path / "empty.npz")
    out = tmp_path / "v.mp4"
    for path, message in ((empty, "no frames"), (bad_clips["rotations frames"], "rotations must have shape")):
        assert main(["render", str(PORTRAIT), str(path), "-o", str(out), "-q"]) == 2
        assert message in one_error_line(capsys)
        assert not out.exists()
    assert main(["render", str(PORTRAIT), str(empty), "-o", str(out), "--seed", "-1"]) == 2
    assert "--seed" in one_error_line(capsys)


# --------------------------------------------------------------------------------------------------
# a full disk, while writing
# --------------------------------------------------------------------------------------------------
def _disk_full(*a, **k):
    raise OSError(errno.ENOSPC, "No space left on device", "/the/output")


def test_animate_on_a_full_disk_and_the_phase_bar(tmp_path, capsys, monkeypatch):
    """One real generation (1.5 s of speech, 1 step): the phase bar names its phases (the threshold is
    lowered from 20 s to 1 s), then the writer hits ENOSPC: one line, exit 2, no files."""
    from motion.checkpoint import default_checkpoint_path
    if not default_checkpoint_path().is_file():
        pytest.skip("no shipped checkpoint")
    audio, rate = sf.read(SAMPLE, dtype="float32")
    sf.write(tmp_path / "speech.wav", audio[: int(1.5 * rate)], rate)
    import exporters
    from chatanyone.commands import animate
    monkeypatch.setattr(animate, "PROGRESS_MIN_AUDIO_S", 1.0)
    monkeypatch.setattr(exporters, "export", _disk_full)
    out = tmp_path / "out"
    assert main(["animate", str(tmp_path / "speech.wav"), "-o", str(out), "--steps", "1", "--formats", "npz"]) == 2
    cap = capsys.readouterr()
    errors = [ln for ln in cap.err.splitlines() if "chatanyone: error:" in ln]
    assert len(errors) == 1 and errors[0].endswith("chatanyone: error: No space left on device: /the/output")
    assert "Traceback" not in cap.err
    for phase in ("animate: loading model", "animate: generating motion", "animate: writing files"):
        assert phase in cap.err
    assert not out.exists() or list(out.iterdir()) == []


@pytest.mark.skipif(not PORTRAIT.is_file(), reason=f"needs the portrait {PORTRAIT} (../shared/data)")
def test_render_on_a_full_disk(tmp_path, capsys, monkeypatch):
    import generator.render as render
    monkeypatch.setattr(render, "encode_mp4", _disk_full)
    clip = MotionClip.rest(10).save(tmp_path / "c.npz")
    out = tmp_path / "v.mp4"
    assert main(["render", str(PORTRAIT), str(clip), "-o", str(out), "-q"]) == 2
    assert "No space left on device" in one_error_line(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.npz"]      # no video, no temporary


# --------------------------------------------------------------------------------------------------
# a real process: what native libraries print is not shown
# --------------------------------------------------------------------------------------------------
@pytest.mark.skipif(not PORTRAIT.is_file(), reason=f"needs the portrait {PORTRAIT} (../shared/data)")
def test_a_real_render_process_prints_no_mediapipe_lines(tmp_path):
    """MediaPipe's absl/TFLite lines ("WARNING: Logging before InitGoogle()", "INFO: Created TensorFlow Lite
    XNNPACK delegate", "W0000 ... inference_feedback_manager") came before our error line."""
    from PIL import Image
    Image.fromarray(np.full((600, 400, 3), 128, np.uint8)).save(tmp_path / "blank.png")
    MotionClip.rest(5).save(tmp_path / "c.npz")
    r = subprocess.run([sys.executable, "-m", "chatanyone.cli", "render", str(tmp_path / "blank.png"),
                        str(tmp_path / "c.npz"), "-o", str(tmp_path / "v.mp4")], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2 and r.stderr.splitlines() == [f"chatanyone: error: no face detected in "
                                                           f"{tmp_path / 'blank.png'}"], r.stderr


def test_a_real_process_prints_only_the_error_line(inputs):
    d, f = inputs
    r = subprocess.run([sys.executable, "-m", "chatanyone.cli", "animate", str(f["text.mp3"]), "-o", str(d / "o")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.splitlines() == [f"chatanyone: error: Audio file {f['text.mp3']} is not decodable audio "
                                     "(wav/flac/ogg/mp3 expected)"], r.stderr       # no libmpg123 "Note:" lines
