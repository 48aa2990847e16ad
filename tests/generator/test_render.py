"""``chatanyone render`` with the warp engine on the real portraits (../shared/data/portraits) and the repo's
sample speech: the MP4 is read back with PyAV (size, fps, frame count, audio stream), a contact sheet is
saved to tests/generator/artifacts/, and lip sync is measured back with the face tracker on the rendered
frames. Skipped without the data folder, mediapipe or PyAV (CI installs both with the ``prepare`` extra)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import DATA, REPO, needs_data

pytestmark = [
    needs_data,
    pytest.mark.skipif(importlib.util.find_spec("mediapipe") is None,
                       reason="mediapipe is not installed (pip install -e '.[render]'): no face detection"),
    pytest.mark.skipif(importlib.util.find_spec("av") is None, reason="PyAV (av) is not installed"),
]

PORTRAITS = DATA / "portraits" / "echomimic_flux_refs"
SPEECH = REPO / "chatanyone" / "samples" / "cmu_arctic_a0007.wav"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
SR = 16000
#: Lip-sync threshold on the best-lag Pearson r of the measured mouth opening vs the audio log energy.
#: The warp engine measured r = 0.79 at lag 0 (0.84 at lag 1) on the sample speech with 0047.png; a frozen
#: portrait measures ~0 (a constant opening).
MIN_LIP_SYNC_R = 0.5


def _read(path: Path):
    """Decoded frames [T, H, W, 3], video fps, and (codec, rate, duration s) of each audio stream."""
    import av

    with av.open(str(path)) as c:
        v = c.streams.video[0]
        fps = float(v.average_rate)
        audio = [(s.codec_context.name, s.rate, float(s.duration * s.time_base) if s.duration else 0.0)
                 for s in c.streams.audio]
        frames = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(v)])
    return frames, fps, audio


def _contact_sheet(frames: np.ndarray, path: Path, n: int = 8) -> None:
    from PIL import Image

    idx = np.linspace(0, len(frames) - 1, n).round().astype(int)
    sheet = np.concatenate([frames[i] for i in idx], axis=1)
    ARTIFACTS.mkdir(exist_ok=True)
    Image.fromarray(sheet).resize((sheet.shape[1] // 2, sheet.shape[0] // 2)).save(path)


@pytest.fixture(scope="module")
def sample_clip(tmp_path_factory):
    """The sample speech's motion (generated once), saved as a MotionClip .npz that names its audio."""
    from generator.render import load_motion

    clip, audio = load_motion(SPEECH, seed=0)
    d = tmp_path_factory.mktemp("clip")
    path = clip.save(d / "speech.npz")
    return path, clip, audio


@pytest.fixture(scope="module")
def short_wav(tmp_path_factory):
    """1.5 s of the sample speech (from 0.6 s), as a 16 kHz wav."""
    import soundfile as sf

    from motion.audio import load_audio

    x = load_audio(SPEECH)[int(0.6 * SR): int(2.1 * SR)]
    p = tmp_path_factory.mktemp("wav") / "short.wav"
    sf.write(p, x, SR)
    return p, x


def _check_mp4(out: Path, audio_s: float):
    frames, fps, audio = _read(out)
    assert frames.shape[1:] == (768, 512, 3)  # h x w
    assert abs(fps - 30.0) < 1e-6
    assert abs(len(frames) - audio_s * 30) <= 1, (len(frames), audio_s)
    assert len(audio) == 1 and audio[0][0] == "aac"
    assert abs(audio[0][2] - audio_s) < 0.1, audio
    return frames


@pytest.mark.parametrize("name,kind", [("0035.png", "npz"), ("0163.png", "wav")])
def test_render_portrait_mp4(name, kind, sample_clip, short_wav, tmp_path):
    """A short render (1.5 s) per portrait: once from a clip .npz (audio from its meta), once from audio."""
    from generator.render import render

    if kind == "npz":
        path, clip, _ = sample_clip
        short = clip.slice(18, 18 + 45)  # 1.5 s; slice advances meta["audio_offset_s"] to its audio
        assert abs(short.meta["audio_offset_s"] - 0.6) < 1e-6
        motion = short.save(tmp_path / "short.npz")
        audio_s = 45 / 30
    else:
        motion, x = short_wav
        audio_s = len(x) / SR
    out = tmp_path / f"{Path(name).stem}.mp4"
    res = render(PORTRAITS / name, motion, out)
    assert res.path == out and out.is_file()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp file left
    frames = _check_mp4(out, audio_s)
    _contact_sheet(frames, ARTIFACTS / f"render_{Path(name).stem}_{kind}.png")
    f = frames.astype(np.int16)
    # the face moves ...
    assert np.abs(f - f[:1]).max(axis=(1, 2, 3)).max() > 40
    # ... and the background far from the face stays put (codec noise only): bottom rows, image corners
    assert np.abs(f[:, -60:] - f[:1, -60:]).mean() < 1.5
    assert np.abs(f[:, :40, :40] - f[:1, :40, :40]).mean() < 1.5


@pytest.mark.slow
def test_cli_render_lip_sync(sample_clip, tmp_path, capsys):
    """``chatanyone render PORTRAIT CLIP.npz``: the mouth opening measured back on the rendered frames
    follows the speech energy; the same measurement on a frozen portrait does not."""
    from chatanyone.cli import main
    from generator.driving import load_portrait
    from generator.metrics import lip_sync_r, mouth_opening

    path, clip, audio = sample_clip
    out = tmp_path / "lipsync.mp4"
    assert main(["render", str(PORTRAITS / "0047.png"), str(path), "-o", str(out), "-q"]) == 0
    frames = _check_mp4(out, clip.num_frames / 30)
    _contact_sheet(frames, ARTIFACTS / "render_0047_lipsync.png", n=12)
    opening = mouth_opening(frames)
    assert np.isfinite(opening).mean() > 0.95  # the tracker finds the rendered face
    r0, r, lag = lip_sync_r(opening, audio)
    print(f"lip sync: r(lag 0) = {r0:.3f}, best r = {r:.3f} at lag {lag} frames")
    # the rendered mouth opens by a visible amount, and in time with the speech
    assert np.nanpercentile(opening, 95) - np.nanpercentile(opening, 5) > 0.05
    assert r > MIN_LIP_SYNC_R
    # a frozen portrait (the same source image every frame) fails the same measurement
    still = load_portrait(PORTRAITS / "0047.png").image
    frozen = mouth_opening([still] * clip.num_frames)
    r_frozen = lip_sync_r(frozen, audio)[1]
    print(f"frozen portrait: best r = {r_frozen:.3f}")
    assert r_frozen < MIN_LIP_SYNC_R


def test_no_face_is_a_clear_error_and_writes_nothing(tmp_path, capsys):
    from PIL import Image

    from chatanyone.cli import main

    # a real photo region with no face: the wall and poster above the subject's head in 0035.png
    img = np.asarray(Image.open(PORTRAITS / "0035.png").convert("RGB"))[:200, 650:1024]
    noface = tmp_path / "wall.png"
    Image.fromarray(img).save(noface)
    out = tmp_path / "out.mp4"
    assert main(["render", str(noface), str(SPEECH), "-o", str(out), "-q"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("chatanyone: error: no face detected in ") and str(noface) in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wall.png"]


def test_bad_inputs_are_clear_errors(tmp_path, capsys):
    from chatanyone.cli import main

    out = tmp_path / "out.mp4"
    portrait = str(PORTRAITS / "0035.png")
    cases = [  # (--engine neural without a checkpoint: tests/generator/test_neural.py)
        (["render", str(tmp_path / "missing.png"), str(SPEECH), "-o", str(out)], "no such file"),
        (["render", str(SPEECH), str(SPEECH), "-o", str(out)], "not a readable image"),
        (["render", portrait, str(SPEECH), "-o", str(tmp_path / "nope" / "out.mp4")], "does not exist"),
        (["render", portrait, str(tmp_path / "missing.wav"), "-o", str(out)], "not found"),
    ]
    for argv, msg in cases:
        assert main(argv + ["-q"]) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("chatanyone: error: ") and msg in err, (argv, err)
    assert list(tmp_path.iterdir()) == []
