"""The neural engine (generator/neural.py, generator/hands.py, generator/train_neural.py): shapes at 512x768,
geometry helpers against known transforms, hand control images against projected joints, a few training
steps on a real video slice, safetensors round trips and training resume, and ``chatanyone render --engine
neural`` with a tiny untrained checkpoint (MP4 read back with PyAV)."""
from __future__ import annotations

import importlib.util
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import DATA, REPO, needs_data

HAS_MP = importlib.util.find_spec("mediapipe") is not None
HAS_AV = importlib.util.find_spec("av") is not None
needs_mp = pytest.mark.skipif(not HAS_MP, reason="mediapipe is not installed (pip install -e '.[render]')")
needs_av = pytest.mark.skipif(not HAS_AV, reason="PyAV (av) is not installed")

K = 188  # explicit keypoints of the shipped facial keypoint model
GRID_VIDEO = DATA / "videos" / "grid" / "bbaf2n.mpg"
PORTRAITS = DATA / "portraits" / "echomimic_flux_refs"

#: A tiny architecture for fast CPU tests (the real one is NeuralConfig()).
TINY = dict(internal_size=(32, 48), motion_size=(16, 24), face_size=24, num_keypoints=K, num_implicit=4,
            encoder_channels=(8, 16, 16, 16), motion_channels=(8, 16, 16), face_channels=(8, 16, 16))


def _groups() -> np.ndarray:
    return np.arange(K) % 9


def _face_points(W: int, H: int, B: int = 1, seed: int = 0) -> torch.Tensor:
    """A plausible face layout [B, K, 2] pixels: the keypoint model's mean shape placed in the upper third."""
    from generator.face_keypoints import FaceKeypointModel

    m = FaceKeypointModel.load()
    xy = m.mean[:, :2] * np.array([1.0, -1.0])  # ours axes -> image (y down), eye-corner distance 1
    xy = (xy - xy.mean(0)) * (0.2 * W) + np.array([0.5 * W, 0.3 * H])
    g = torch.Generator().manual_seed(seed)
    return torch.as_tensor(xy, dtype=torch.float32)[None] + torch.randn(B, K, 2, generator=g) * 2.0


# --------------------------------------------------------------------------------------------------
# Shapes and geometry
# --------------------------------------------------------------------------------------------------
def test_forward_shapes_at_512x768():
    from generator.neural import HybridGenerator, NeuralConfig, count_parameters

    torch.manual_seed(0)
    cfg = NeuralConfig()
    g = HybridGenerator(cfg, _groups()).eval()
    assert count_parameters(g) < 4_000_000  # "a few M params at most"
    img = torch.rand(1, 3, 768, 512)
    kp = _face_points(512, 768)
    hands = torch.zeros(2, 2, 768, 512)
    with torch.inference_mode():
        src = g.encode_source(img, kp)
        out = g(src, _face_points(512, 768, B=2, seed=1), hands)
    assert out.image.shape == (2, 3, 768, 512) and out.image.dtype == torch.float32
    assert float(out.image.min()) >= 0.0 and float(out.image.max()) <= 1.0
    assert out.coarse.shape == (2, 3, 192, 128)
    assert out.flow.shape == (2, 96, 64, 2) and out.occlusion.shape == (2, 1, 96, 64)
    assert out.face_grid.shape == (2, 96, 96, 2)
    assert out.implicit_source.shape == out.implicit_driving.shape == (2, cfg.num_implicit, 2)
    # the face box contains the driving keypoints
    lo, hi = out.face_grid.amin((1, 2)), out.face_grid.amax((1, 2))
    from generator.neural import to_normalized
    d = to_normalized(_face_points(512, 768, B=2, seed=1), (512, 768))
    assert bool(((d.amin(1) > lo) & (d.amax(1) < hi)).all())


def test_hand_control_images_reach_the_decoder():
    """The hand maps are inputs of every decoder scale: a loss on the frame sends gradient to their weights
    (zero at initialisation, so an untrained hand path changes nothing)."""
    from generator.neural import HybridGenerator, NeuralConfig

    torch.manual_seed(0)
    g = HybridGenerator(NeuralConfig(**TINY), _groups())
    img = torch.rand(1, 3, 96, 64)
    kp = _face_points(64, 96)
    hands = torch.zeros(1, 2, 96, 64)
    hands[:, 0, 60:80, 40:50] = 1.0
    hands[:, 1, 60:80, 10:20] = 1.0
    with torch.no_grad():
        a = g(g.encode_source(img, kp), kp, hands).image
        b = g(g.encode_source(img, kp), kp, torch.zeros_like(hands)).image
    assert torch.equal(a, b)
    out = g(g.encode_source(img, kp), kp, hands)
    (out.image - img).abs().mean().backward()
    convs = [g.decoder.mid[0][0]] + [u[0] for u in g.decoder.up]
    assert all(float(c.weight.grad[:, -2:].abs().sum()) > 0 for c in convs)


def test_geometry_helpers_match_known_transforms():
    from generator.neural import HybridGenerator, apply_affine, fit_affine, pixel_grid, to_normalized, warp

    g = torch.Generator().manual_seed(0)
    src = torch.rand(2, 50, 2, generator=g) * 2 - 1
    A = torch.tensor([[[1.1, 0.2], [-0.1, 0.9], [0.05, -0.03]], [[0.8, 0.0], [0.0, 1.2], [0.1, 0.1]]])
    assert torch.allclose(fit_affine(src, apply_affine(src, A), reg=0.0), A, atol=1e-4)
    # pixel (corner origin) -> normalised: the image's corners are -1 and +1, pixel centres match pixel_grid
    assert torch.allclose(to_normalized(torch.tensor([[0.0, 0.0], [512.0, 768.0]]), (512, 768)),
                          torch.tensor([[-1.0, -1.0], [1.0, 1.0]]))
    grid = pixel_grid(4, 3)
    assert torch.allclose(grid[2, 1], to_normalized(torch.tensor([1.5, 2.5]), (3, 4)))
    # identity flow reproduces the image; a flow shifted by one pixel shifts it
    img = torch.rand(1, 3, 12, 8, generator=g)
    ident = pixel_grid(12, 8)[None]
    assert torch.allclose(warp(img, ident), img, atol=1e-5)
    shifted = ident + torch.tensor([2.0 / 8, 0.0])
    assert torch.allclose(warp(img, shifted)[..., :-1], img[..., 1:], atol=1e-5)
    # face crop + paste back: a crop-space image pasted at the box lands where the crop was taken (a linear
    # ramp sampled at the crop's grid comes back exactly, bilinear interpolation being exact on it)
    from generator.neural import NeuralConfig
    model = HybridGenerator(NeuralConfig(**TINY), _groups())
    kp = to_normalized(_face_points(64, 96), (64, 96))
    fgrid = model.face_grid(kp, 96 / 64)
    ramp = lambda xy: (xy[..., 0] + 2 * xy[..., 1])[:, None]  # noqa: E731
    back = model.paste(ramp(fgrid), fgrid, 96, 64)
    c, half = model.face_box(kp, 96 / 64)
    pix = pixel_grid(96, 64)[None]
    inside = ((pix - c[:, None, None]).abs() < 0.8 * half[:, None, None]).all(-1)[:, None]
    assert int(inside.sum()) > 100
    assert float((back - ramp(pix))[inside].abs().max()) < 1e-4
    assert float(back[..., :2, :].abs().max()) == 0.0  # nothing pasted far outside the box


# --------------------------------------------------------------------------------------------------
# Hand control images
# --------------------------------------------------------------------------------------------------
def _face_with_irises(left_px, right_px):
    from generator.face_keypoints import FaceObservation

    lm = np.zeros((478, 3), np.float32)
    lm[468, :2], lm[473, :2] = left_px, right_px
    return FaceObservation(lm, np.zeros(52, np.float32), np.eye(3))


def test_hand_maps_put_pixels_on_the_projected_finger_joints():
    from scipy.spatial.transform import Rotation

    from generator.hands import HAND_BONES, HAND_POINTS, HandControl, fit_camera
    from motion.conventions import JOINT_INDEX

    W, H = 512, 768
    face = _face_with_irises((246.0, 200.0), (266.0, 200.0))  # 20 px apart -> ~323 px/m
    cam = fit_camera(face)
    assert abs(cam.scale - 20.0 / 0.062) < 1.0
    assert np.allclose(cam.project(cam.ref), (256.0, 200.0))
    # arms lowered 60 degrees from the T-pose so the hands are inside the image, fingers flexed a bit
    q = np.tile([0.0, 0.0, 0.0, 1.0], (1, 55, 1))
    q[0, JOINT_INDEX["left_shoulder"]] = Rotation.from_euler("z", -60, degrees=True).as_quat()
    q[0, JOINT_INDEX["right_shoulder"]] = Rotation.from_euler("z", 60, degrees=True).as_quat()
    q[0, JOINT_INDEX["left_index2"]] = Rotation.from_euler("z", -40, degrees=True).as_quat()
    hc = HandControl(face, (W, H))
    pts = hc.points(q)[0]  # [2, 21, 2]
    assert pts.shape == (2, 21, 2) and len(HAND_BONES) == 20 and len(HAND_POINTS["left"]) == 21
    assert (pts[0, :, 0] > W / 2).all() and (pts[1, :, 0] < W / 2).all()  # subject's left hand on image right
    assert ((pts > 0) & (pts < [W, H])).all()
    maps = hc.maps(q)
    assert maps.shape == (1, 2, H, W) and maps.dtype == np.uint8
    for s in range(2):
        ij = np.round(pts[s]).astype(int)
        assert (maps[0, s, ij[:, 1], ij[:, 0]] > 100).all()  # every joint is drawn ...
        other = 1 - s
        assert (maps[0, other, ij[:, 1], ij[:, 0]] == 0).all()  # ... in its own channel only
        # ... and nothing is drawn far from the hand
        lo, hi = pts[s].min(0) - 10, pts[s].max(0) + 10
        yy, xx = np.nonzero(maps[0, s])
        assert ((xx >= lo[0]) & (xx <= hi[0]) & (yy >= lo[1]) & (yy <= hi[1])).all()
    # a hand whose joints are not valid is not drawn
    jv = np.ones((1, 55), bool)
    jv[0, JOINT_INDEX["right_index1"]] = False
    m2 = hc.maps(q, jv)
    assert m2[0, 1].max() == 0 and np.array_equal(m2[0, 0], maps[0, 0])


@needs_data
def test_hand_maps_follow_real_finger_motion():
    """BEAT2 mocap fingers (prepared clip or the raw take): the drawn pixels sit on the projected joints and
    move when the fingers move."""
    from generator.hands import HandControl
    from motion.datasets import beat2_rotations

    z = np.load(DATA / "beat2" / "2_scott_0_1_1.smplxflame30.npz")
    rot = beat2_rotations(z["poses"][:600:60])  # root locked, as in every MotionClip
    hc = HandControl(_face_with_irises((236.0, 180.0), (276.0, 180.0)), (512, 768))
    pts = hc.points(rot)
    maps = hc.maps(rot)
    hits = 0
    for t in range(len(rot)):
        for s in range(2):
            ij = np.round(pts[t, s]).astype(int)
            inside = (ij[:, 0] >= 0) & (ij[:, 0] < 512) & (ij[:, 1] >= 0) & (ij[:, 1] < 768)
            hits += int(inside.sum())
            assert (maps[t, s, ij[inside, 1], ij[inside, 0]] > 100).all()
    assert hits > 100  # the hands are in the picture at this camera
    assert np.abs(maps[1:].astype(int) - maps[:1]).max() > 0


# --------------------------------------------------------------------------------------------------
# Training on a tiny real slice
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    """12 frames of a real GRID video, tracked, cropped to the render framing at 64x96."""
    if not (DATA.is_dir() and HAS_MP and HAS_AV):
        pytest.skip("needs ../shared/data, mediapipe and PyAV")
    from generator.face_keypoints import FaceKeypointModel
    from generator.train_neural import TrainGeneratorConfig, load_data

    d = tmp_path_factory.mktemp("neural")
    cfg = TrainGeneratorConfig(videos=[str(GRID_VIDEO)], track_cache=str(d / "tracks"), frame_cache=str(d / "frames"),
                               prepared_dir=str(d / "none"), max_frames=12, holdout_tail=0.25, train_size=(64, 96),
                               batch_size=4, lr=2e-3, max_steps=2, eval_pairs=4, checkpoint_minutes=100,
                               model=dict(TINY), out_dir=str(d / "run"), threads=0)
    km = FaceKeypointModel.load()
    data = load_data(cfg, km, progress=False)
    return cfg, km, data


def test_data_slice_is_the_render_framing(tiny_data):
    cfg, km, data = tiny_data
    (c,) = data.clips
    assert c.frames.shape == (12, 96, 64, 3) and c.frames.dtype == np.uint8
    assert list(c.train) == list(range(9)) and list(c.held) == [9, 10, 11]  # tail held out
    # landmarks were mapped into the crop: the face is inside the frame, the eyes above the mouth
    lm = c.landmarks[c.ok]
    assert ((lm[:, :, 0] > 0) & (lm[:, :, 0] < 64) & (lm[:, :, 1] > 0) & (lm[:, :, 1] < 96)).mean() > 0.95
    assert (lm[:, 33, 1] < lm[:, 13, 1]).all()
    b = data.sample(np.random.default_rng(0), 3)
    assert b["source"].shape == b["target"].shape == (3, 3, 96, 64) and b["hands"].shape == (3, 2, 96, 64)
    assert b["driving_kp"].shape == (3, K, 2) and float(b["hands"].max()) == 0.0  # GRID shows no hands
    # model-made driving keypoints (as render) land near the tracked ones (same frame: translation matched)
    s, d = int(c.train[0]), int(c.train[5])
    err = np.linalg.norm(data.driving_points(c, s, d, True) - data.driving_points(c, s, d, False), axis=-1).mean()
    eye = np.linalg.norm(c.landmarks[d][33, :2] - c.landmarks[d][263, :2])
    assert err < 0.25 * eye, (err, eye)


def test_a_few_training_steps_reduce_the_loss(tiny_data):
    from generator.train_neural import build_model, generator_losses

    cfg, km, data = tiny_data
    torch.manual_seed(0)
    model = build_model(cfg, km)
    batch = data.sample(np.random.default_rng(1), 4)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    with torch.no_grad():
        before = float(generator_losses(model, batch, cfg)[0])
    for _ in range(25):
        loss, parts, _ = generator_losses(model, batch, cfg)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        after = float(generator_losses(model, batch, cfg)[0])
    assert np.isfinite(before) and after < 0.8 * before, (before, after)


def test_gan_losses_train_the_discriminator(tiny_data):
    from generator.train_neural import PatchDiscriminator, build_model, discriminator_step, generator_losses

    cfg, km, data = tiny_data
    cfg = replace(cfg, gan_weight=0.1, feature_matching_weight=1.0)
    torch.manual_seed(0)
    model, disc = build_model(cfg, km), PatchDiscriminator()
    dopt = torch.optim.Adam(disc.parameters(), lr=1e-3)
    batch = data.sample(np.random.default_rng(2), 2)
    w0 = disc.out.weight.detach().clone()
    loss, parts, out = generator_losses(model, batch, cfg, disc)
    loss.backward()
    assert np.isfinite(parts.gan) and model.decoder.out.weight.grad is not None
    # the discriminator learns to tell real frames from generated ones (here the decoder's blurry coarse RGB,
    # upsampled: an untrained generator's composed frame is nearly the warped source itself)
    fake = torch.nn.functional.interpolate(out.coarse.detach(), size=batch["target"].shape[2:], mode="bilinear")
    d_losses = [discriminator_step(disc, dopt, batch["target"], fake) for _ in range(15)]
    assert not torch.equal(disc.out.weight, w0) and d_losses[-1] < 0.9 * d_losses[0], d_losses


def test_checkpoint_round_trip_and_resume(tiny_data, tmp_path):
    from generator.neural import NeuralCheckpointError, load_checkpoint, save_checkpoint
    from generator.train_neural import build_model, train

    cfg, km, data = tiny_data
    torch.manual_seed(0)
    model = build_model(cfg, km).eval()
    batch = data.sample(np.random.default_rng(3), 2)
    with torch.no_grad():
        ref = model(model.encode_source(batch["source"], batch["source_kp"]), batch["driving_kp"], batch["hands"]).image
    path = save_checkpoint(tmp_path / "g.safetensors", model, km.indices, {"note": "test"})
    ld = load_checkpoint(path)
    assert np.array_equal(ld.landmark_ids, km.indices) and ld.info == {"note": "test"}
    assert ld.model.config == model.config
    with torch.no_grad():
        again = ld.model(ld.model.encode_source(batch["source"], batch["source_kp"]), batch["driving_kp"],
                         batch["hands"]).image
    assert torch.equal(ref, again)
    assert [p.name for p in tmp_path.iterdir()] == ["g.safetensors"]  # atomic write, no temp file left
    # clear errors for what is not a generator checkpoint
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file at all")
    from safetensors.torch import save_file
    save_file({"x": torch.zeros(2)}, str(tmp_path / "other.safetensors"), metadata={"format": "something-else"})
    for name, msg in [("missing.safetensors", "not found"), ("junk.safetensors", "not a readable safetensors"),
                      ("other.safetensors", "not a neural generator checkpoint")]:
        with pytest.raises(NeuralCheckpointError, match=msg):
            load_checkpoint(tmp_path / name)
    # training writes resumable state: 2 steps, then 2 more resume from step 2 with the optimizer state
    run = tmp_path / "run"
    r1 = train(cfg, data=data, keypoint_model=km, progress=False, out_dir=run)
    assert r1["steps"] == 2 and (run / "last.safetensors").is_file() and (run / "neural.safetensors").is_file()
    assert set(r1["heldout"]) >= {"psnr", "ssim", "copy_psnr", "copy_ssim"}
    st = load_checkpoint(run / "last.safetensors")
    assert st.info["step"] == 2 and any(k.startswith("opt.") for k in st.extra)
    r2 = train(replace(cfg, max_steps=4), data=data, keypoint_model=km, progress=False, out_dir=run)
    assert r2["steps"] == 4
    st2 = load_checkpoint(run / "last.safetensors")
    assert float(st2.extra["opt.0.step"]) == 4.0 and not torch.equal(st2.extra["opt.0.exp_avg"], st.extra["opt.0.exp_avg"])
    assert len(load_checkpoint(run / "neural.safetensors").extra) == 0  # the render checkpoint: weights only


def test_config_file_loads_and_bad_options_are_clear(tmp_path):
    from generator.neural import NeuralConfig
    from generator.train_neural import TrainGeneratorConfig, TrainGeneratorError

    cfg = TrainGeneratorConfig.load(REPO / "configs" / "generator.toml")
    assert cfg.model_config() == NeuralConfig() and cfg.train_size == (256, 384) and cfg.max_minutes > 0
    assert "WDA_KatieHill_000" in cfg.holdout_clips
    bad = tmp_path / "bad.toml"
    bad.write_text('batch_sise = 4\n')
    with pytest.raises(TrainGeneratorError, match="unknown option"):
        TrainGeneratorConfig.load(bad)
    bad.write_text('[model]\nchannels = 3\n')
    with pytest.raises(TrainGeneratorError, match="unknown generator option"):
        TrainGeneratorConfig.load(bad)
    with pytest.raises(TrainGeneratorError, match="not found"):
        TrainGeneratorConfig.load(tmp_path / "missing.toml")


# --------------------------------------------------------------------------------------------------
# chatanyone render --engine neural
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    """An untrained tiny generator with the real keypoint ids and regions, as a checkpoint file."""
    if not HAS_MP:
        pytest.skip("mediapipe is not installed")
    from generator.face_keypoints import FaceKeypointModel
    from generator.neural import HybridGenerator, NeuralConfig, keypoint_groups, save_checkpoint

    km = FaceKeypointModel.load()
    torch.manual_seed(0)
    g = HybridGenerator(NeuralConfig(**TINY), keypoint_groups(km.indices))
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.safetensors", g, km.indices)


@needs_data
@needs_mp
@needs_av
def test_render_neural_with_a_tiny_checkpoint(tiny_checkpoint, tmp_path):
    from chatanyone.cli import main
    from tests.generator.test_render import SPEECH, _check_mp4, _contact_sheet, ARTIFACTS
    import soundfile as sf

    from motion.audio import load_audio

    x = load_audio(SPEECH)[int(0.6 * 16000): int(1.6 * 16000)]  # 1 s of speech
    wav = tmp_path / "short.wav"
    sf.write(wav, x, 16000)
    out = tmp_path / "neural.mp4"
    assert main(["render", str(PORTRAITS / "0035.png"), str(wav), "-o", str(out), "--engine", "neural",
                 "--checkpoint", str(tiny_checkpoint), "--device", "cpu", "-q"]) == 0
    frames = _check_mp4(out, len(x) / 16000)
    _contact_sheet(frames, ARTIFACTS / "render_0035_neural_untrained.png", n=6)
    assert frames.std() > 5  # an image, not a flat colour
    assert sorted(p.name for p in tmp_path.iterdir()) == ["neural.mp4", "short.wav"]


@needs_data
@needs_mp
def test_render_neural_errors_are_clear(tiny_checkpoint, tmp_path, capsys, monkeypatch):
    import generator.render as render_mod
    from chatanyone.cli import main
    from tests.generator.test_render import SPEECH

    empty = tmp_path / "no_checkpoints"
    empty.mkdir()
    monkeypatch.setattr(render_mod, "NEURAL_CHECKPOINT_DIR", empty)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 64)
    out = tmp_path / "out.mp4"
    portrait = str(PORTRAITS / "0035.png")
    cases = [
        ([], "no neural generator checkpoint is installed; use --engine warp"),
        (["--checkpoint", str(tmp_path / "missing.safetensors")], "not found"),
        (["--checkpoint", str(junk)], "is not a readable safetensors file"),
    ]
    for extra, msg in cases:
        assert main(["render", portrait, str(SPEECH), "-o", str(out), "--engine", "neural", "-q"] + extra) == 2
        err = capsys.readouterr().err
        assert err.startswith("chatanyone: error: ") and msg in err, (extra, err)
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk.safetensors", "no_checkpoints"]
    # the installed-checkpoint lookup finds a file put in the folder
    (empty / "neural.safetensors").write_bytes(Path(tiny_checkpoint).read_bytes())
    assert render_mod.check_engine("neural") == empty / "neural.safetensors"
    assert render_mod.check_engine("warp") is None


@pytest.mark.slow
@needs_data
@needs_mp
@needs_av
@pytest.mark.skipif(not any((REPO / "generator" / "checkpoints").glob("*.safetensors")),
                    reason="no neural generator checkpoint is installed in generator/checkpoints/")
def test_installed_checkpoint_renders_a_lip_synced_portrait(tmp_path):
    """The shipped checkpoint through ``chatanyone render --engine neural``: a 768x512 30 fps MP4 with audio,
    a contact sheet, and the mouth opening measured back with the face tracker follows the speech."""
    from chatanyone.cli import main
    from generator.metrics import lip_sync_r, mouth_opening
    from motion.audio import load_audio
    from tests.generator.test_render import ARTIFACTS, MIN_LIP_SYNC_R, SPEECH, _check_mp4, _contact_sheet

    out = tmp_path / "neural.mp4"
    assert main(["render", str(PORTRAITS / "0047.png"), str(SPEECH), "-o", str(out), "--engine", "neural",
                 "--device", "cpu", "-q"]) == 0
    audio = load_audio(SPEECH)
    frames = _check_mp4(out, len(audio) / 16000)
    _contact_sheet(frames, ARTIFACTS / "render_0047_neural.png", n=8)
    opening = mouth_opening(frames)
    assert np.isfinite(opening).mean() > 0.95  # the tracker finds the generated face
    r0, r, lag = lip_sync_r(opening, audio)
    print(f"neural lip sync: r(lag 0) = {r0:.3f}, best r = {r:.3f} at lag {lag} frames")
    assert r > MIN_LIP_SYNC_R
