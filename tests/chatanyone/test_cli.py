"""``chatanyone animate`` end to end on real speech with the shipped checkpoint, and its bad-input behaviour."""
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from chatanyone.cli import main
from motion import MotionClip
from motion.checkpoint import default_checkpoint_path
from motion.conventions import ARKIT_INDEX
from motion.evaluate import log_energy, max_jaw_in_silence, pearson_best_lag
from tests.conftest import REPO

SAMPLE = REPO / "chatanyone" / "samples" / "cmu_arctic_a0007.wav"
pytestmark = pytest.mark.skipif(not default_checkpoint_path().is_file(),
                                reason="no shipped checkpoint (train with `chatanyone train configs/default.toml --install`)")


@pytest.fixture(scope="module")
def animated(tmp_path_factory):
    out = tmp_path_factory.mktemp("anim")
    assert main(["animate", str(SAMPLE), "-o", str(out), "-q"]) == 0
    return out


def test_animate_writes_the_three_files(animated):
    assert sorted(p.name for p in animated.iterdir()) == [
        "cmu_arctic_a0007.bvh", "cmu_arctic_a0007.glb", "cmu_arctic_a0007.npz"]
    assert all(p.stat().st_size > 1000 for p in animated.iterdir())


def test_clip_is_valid_and_as_long_as_the_audio(animated):
    clip = MotionClip.load(animated / "cmu_arctic_a0007.npz")
    duration = sf.info(SAMPLE).duration
    assert abs(clip.num_frames - duration * 30) <= 1
    assert np.isfinite(clip.face).all() and np.isfinite(clip.rotations).all()
    assert clip.face.min() >= 0 and clip.face.max() <= 1
    assert np.allclose(np.linalg.norm(clip.rotations, axis=-1), 1, atol=1e-5)
    assert clip.meta["seed"] == 0 and clip.meta["audio_source"].endswith("cmu_arctic_a0007.wav")


@pytest.mark.slow
def test_lips_follow_speech_and_close_in_silence(animated):
    clip = MotionClip.load(animated / "cmu_arctic_a0007.npz")
    audio, _ = sf.read(SAMPLE, dtype="float32")
    jaw = clip.face[:, ARKIT_INDEX["jawOpen"]]
    e = log_energy(audio, clip.num_frames)
    r0, best, lag = pearson_best_lag(jaw, e)
    assert best > 0.5, (r0, best, lag)
    mj, n = max_jaw_in_silence(jaw, e)
    assert n >= 1 and mj < 0.1


@pytest.mark.slow
def test_body_and_fingers_move(animated):
    clip = MotionClip.load(animated / "cmu_arctic_a0007.npz")
    from motion.evaluate import group_speed, limit_violations
    speed = group_speed(clip.rotations, clip.fps)
    for g in ("shoulders", "elbows", "wrists", "fingers", "neck+head"):
        assert speed[g] > 0.01, (g, speed)
    assert limit_violations(clip.rotations) == {}


def test_seed_and_intensity_options(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["animate", str(SAMPLE), "-o", str(a), "-q", "--formats", "npz", "--seed", "1"]) == 0
    assert main(["animate", str(SAMPLE), "-o", str(b), "-q", "--formats", "npz", "--seed", "1",
                 "--expression", "0", "--fps", "60"]) == 0
    ca, cb = (MotionClip.load(d / "cmu_arctic_a0007.npz") for d in (a, b))
    assert cb.fps == 60 and abs(cb.num_frames - 2 * ca.num_frames) <= 1
    assert cb.face.max() == 0 and ca.face.max() > 0.2


def _bad_inputs(tmp_path):
    rate = 16000
    files = {}
    files["missing"] = tmp_path / "missing.wav"
    (tmp_path / "empty.wav").write_bytes(b"")
    files["empty"] = tmp_path / "empty.wav"
    (tmp_path / "text.wav").write_text("this is not audio\n" * 50)
    files["text"] = tmp_path / "text.wav"
    nan = np.full(rate, np.nan, np.float32)
    sf.write(tmp_path / "nan.wav", nan, rate, subtype="FLOAT")
    files["nan"] = tmp_path / "nan.wav"
    sf.write(tmp_path / "short.wav", np.zeros(rate // 10, np.float32), rate)
    files["short"] = tmp_path / "short.wav"
    return files


@pytest.mark.parametrize("kind", ["missing", "empty", "text", "nan", "short"])
def test_bad_audio_gives_one_line_error_and_no_output(tmp_path, capsys, kind):
    path = _bad_inputs(tmp_path)[kind]
    out = tmp_path / "out"
    assert main(["animate", str(path), "-o", str(out), "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("chatanyone: error:") and "\n" not in err and "Traceback" not in err
    assert not out.exists() or list(out.iterdir()) == []


@pytest.mark.slow
def test_silence_gives_a_still_but_alive_avatar(tmp_path):
    sf.write(tmp_path / "silence.wav", np.zeros(16000 * 3, np.float32), 16000)
    assert main(["animate", str(tmp_path / "silence.wav"), "-o", str(tmp_path), "-q", "--formats", "npz"]) == 0
    clip = MotionClip.load(tmp_path / "silence.npz")
    assert clip.face[:, ARKIT_INDEX["jawOpen"]].max() < 0.1
    blink = clip.face[:, ARKIT_INDEX["eyeBlinkLeft"]]
    assert blink.max() - blink.min() > 0.2  # still blinks


def test_bad_options(tmp_path, capsys):
    assert main(["animate", str(SAMPLE), "-o", str(tmp_path), "--formats", "fbx"]) == 2
    assert main(["animate", str(SAMPLE), "-o", str(tmp_path), "--gesture", "5"]) == 2
    assert main(["animate", str(SAMPLE), "-o", str(tmp_path), "--style", "nope"]) == 2
    assert list(tmp_path.iterdir()) == []


def test_failing_writer_leaves_no_outputs(tmp_path, monkeypatch):
    from exporters import bvh
    def boom(*a, **k):
        raise OSError("disk full")
    monkeypatch.setattr(bvh, "write", boom)
    with pytest.raises(OSError):
        main(["animate", str(SAMPLE), "-o", str(tmp_path), "-q"])
    assert list(tmp_path.iterdir()) == []


def test_console_script_runs():
    r = subprocess.run([sys.executable, "-m", "chatanyone.cli", "animate", "/nonexistent.wav"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "nonexistent.wav" in r.stderr


def test_export_subcommand_converts_a_clip(animated, tmp_path, capsys):
    assert main(["export", str(animated / "cmu_arctic_a0007.npz"), "-f", "csv,vrma", "-o", str(tmp_path), "-q"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cmu_arctic_a0007.csv", "cmu_arctic_a0007.vrma"]
    assert main(["export", str(tmp_path / "missing.npz")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_train_with_a_bad_config_is_a_one_line_error(tmp_path, capsys):
    assert main(["train", str(tmp_path / "missing.toml")]) == 2
    (tmp_path / "bad.toml").write_text("bogus_key = 1\n")
    assert main(["train", str(tmp_path / "bad.toml")]) == 2
    err = capsys.readouterr().err
    assert "unknown config keys" in err and "Traceback" not in err


def test_style_presets_are_the_trained_ones(tmp_path, capsys):
    from motion.inference import MotionGenerator
    gen = MotionGenerator()
    # 0.5.0's face stage also trained on the tracked talking videos ("video"); its body stage (0.4.0's) on BEAT2
    assert gen.face_styles == ["facegood", "beat2", "video"] and gen.body_styles == ["beat2"]
    none = gen.models.face.config.num_styles
    assert gen.style_id("facegood", "body") == none and gen.style_id("beat2", "body") == 1
    assert main(["animate", str(SAMPLE), "-o", str(tmp_path), "-q", "--style", "neurosync"]) == 2
    assert "choose one of ['facegood', 'beat2', 'video']" in capsys.readouterr().err
    assert main(["animate", str(SAMPLE), "-o", str(tmp_path), "-q", "--formats", "npz", "--style", "facegood"]) == 0
    assert MotionClip.load(tmp_path / "cmu_arctic_a0007.npz").meta["style"] == "facegood"


def test_style_reference_from_a_clip_or_a_live_link_capture(animated, tmp_path, capsys):
    from motion.inference import MotionGenerator, load_style_reference
    from motion.errors import ChatAnyoneError
    from motion.audio import load_audio
    gen = MotionGenerator()
    ref = MotionClip.load(animated / "cmu_arctic_a0007.npz")  # a generated clip as the reference
    fv, bv = gen.style_vectors(ref)
    assert fv.shape == (1, gen.models.face.config.d_model) and bv.shape == (1, gen.models.body.config.d_model)
    # a face-only reference (no body motion) gives the body stage no reference
    still_body = MotionClip(ref.fps, ref.face, np.repeat(ref.rotations[:1], ref.num_frames, 0))
    assert gen.style_vectors(still_body)[1] is None and gen.style_vectors(still_body)[0] is not None
    audio = load_audio(SAMPLE)[:16000 * 2]
    plain = gen.generate(audio, seed=1)
    styled = gen.generate(audio, seed=1, style_reference=ref)
    assert styled.meta["style_reference"] is not None
    assert not np.allclose(styled.rotations, plain.rotations, atol=1e-4)
    with pytest.raises(ChatAnyoneError, match="too short"):
        gen.style_vectors(ref.slice(0, 5))
    # the CLI: .npz reference works; a missing or unreadable one is a one-line error and writes nothing
    out = tmp_path / "o"
    assert main(["animate", str(SAMPLE), "-o", str(out), "-q", "--formats", "npz",
                 "--style-reference", str(animated / "cmu_arctic_a0007.npz")]) == 0
    assert (out / "cmu_arctic_a0007.npz").is_file()
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    for path in (tmp_path / "missing.npz", bad, SAMPLE):
        capsys.readouterr()
        assert main(["animate", str(SAMPLE), "-o", str(tmp_path / "x"), "-q", "--style-reference", str(path)]) == 2
        err = capsys.readouterr().err
        assert "style reference" in err and "Traceback" not in err
        assert not (tmp_path / "x").exists()


@pytest.mark.skipif(not (REPO.parent / "shared/data/neurosync_face_only").is_dir(), reason="needs ../shared/data")
def test_live_link_csv_is_a_style_reference():
    from motion.inference import load_style_reference
    path = next((REPO.parent / "shared/data/neurosync_face_only").glob("*.csv"))
    clip = load_style_reference(path)
    assert clip.num_frames > 1000 and clip.fps == 60.0 and clip.face.max() > 0.3


def test_evaluate_options_reach_the_evaluation(monkeypatch, capsys):
    """`chatanyone evaluate` hands every option to motion.evaluate's own parser (--seed was dropped before)."""
    from chatanyone.cli import main
    from motion import evaluate
    seen = {}

    def fake_run(checkpoint, out, seed, config, **kw):
        seen.update(checkpoint=checkpoint, out=out, seed=seed, config=config, **kw)
        return "report"

    monkeypatch.setattr(evaluate, "run", fake_run)
    assert main(["evaluate", "--checkpoint", "c.safetensors", "--seed", "7", "--out", "o", "--lipsync-only",
                 "--baseline-checkpoint", "b.safetensors", "--data", "d1", "--data", "d2", "--no-speed"]) == 0
    assert seen == dict(checkpoint="c.safetensors", out="o", seed=7, config=None, speed=False, data=["d1", "d2"],
                        baseline_checkpoint="b.safetensors", lipsync=True, streaming=True, lipsync_only=True)
    assert capsys.readouterr().out.strip() == "report"
