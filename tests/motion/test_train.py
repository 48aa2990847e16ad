"""Training pieces: mirroring, phone dropout and random window lengths in the batches."""
import json
from dataclasses import replace

import numpy as np
import pytest

from motion.clip import MotionClip
from motion.conventions import ARKIT_INDEX, JOINT_INDEX
from motion.features import FEATURE_DIM, SIL_INDEX
from motion.rotations import axis_angle_to_quat
from motion.train import PHONE_SLICE, Item, TrainConfig, WindowSampler, mirror_clip
from tests.conftest import DATA, REPO, needs_data


def _clip(T=20, seed=0):
    rng = np.random.default_rng(seed)
    rot = axis_angle_to_quat(rng.normal(0, 0.4, (T, 55, 3))).astype(np.float32)
    return MotionClip(30.0, rng.uniform(0, 1, (T, 52)), rot, rng.normal(0, 0.1, (T, 3)))


def test_mirroring_twice_is_the_identity_and_once_swaps_sides():
    c = _clip()
    m = mirror_clip(c)
    mm = mirror_clip(m)
    np.testing.assert_allclose(mm.face, c.face, atol=1e-6)
    np.testing.assert_allclose(np.abs(np.sum(mm.rotations * c.rotations, -1)), 1.0, atol=1e-5)
    np.testing.assert_allclose(mm.translation, c.translation, atol=1e-6)
    # once: left and right swap (ARKit channels and joints), x translation flips
    np.testing.assert_allclose(m.face[:, ARKIT_INDEX["eyeBlinkLeft"]], c.face[:, ARKIT_INDEX["eyeBlinkRight"]])
    l, r = JOINT_INDEX["left_elbow"], JOINT_INDEX["right_elbow"]
    q = c.rotations[:, r] * np.array([1, -1, -1, 1], np.float32)    # mirror about the YZ plane
    np.testing.assert_allclose(np.abs(np.sum(m.rotations[:, l] * q, -1)), 1.0, atol=1e-5)
    np.testing.assert_allclose(m.translation[:, 0], -c.translation[:, 0])


def test_phone_slice_is_the_phone_block():
    assert PHONE_SLICE.stop == FEATURE_DIM and PHONE_SLICE.stop - PHONE_SLICE.start == 40
    assert SIL_INDEX == 0


def test_window_sampler_draws_the_requested_length():
    T = 200
    items = [Item("a", "beat2", 1, np.zeros((T, 4), np.float32), np.zeros((T, 2)), np.zeros((T, 2)),
                  np.ones((T, 2), bool), np.ones((T, 2), bool))]
    s = WindowSampler(items, 120, np.random.default_rng(0))
    starts = [s.draw(40)[1] for _ in range(200)]
    assert min(starts) >= 0 and max(starts) <= T - 40 and max(starts) > 120 - 40
    # the shipped config's phone-rule prior reads the phones, so none are dropped
    shipped = TrainConfig.from_toml(REPO / "configs" / "default.toml")
    assert TrainConfig().phone_dropout == 0.0 and shipped.phone_dropout == 0.0 and shipped.face_prior == "phone_rule"


def _item(name, dataset, value, T=150, has_audio=True, style=0):
    return Item(name, dataset, style, np.full((T, 4), value, np.float32), np.full((T, 3), value, np.float32),
                np.zeros((T, 2), np.float32), np.ones((T, 3), bool), np.ones((T, 2), bool),
                has_audio=has_audio)


def test_batches_give_priors_no_audio_and_references_from_the_same_clip():
    import torch
    from motion.train import batch_fn
    items = [_item("a", "facegood", 1.0), _item("b", "beat2", 2.0), _item("p", "neurosync", 3.0, has_audio=False)]
    cfg = TrainConfig(batch_size=64, window=40, min_window=20, style_reference=True, ref_min=10,
                      ref_dropout=0.5, cond_dropout=0.0, dataset_weights={"neurosync": 2.0})
    draw = batch_fn(items, cfg, "face", "cond", "face_mask", np.zeros(3, np.float32), np.ones(3, np.float32),
                    3, np.random.default_rng(0))
    for _ in range(5):
        x0, cond, style, mask, keep, (ref, ref_mask, ref_keep) = draw()
        value = x0[:, 0, 0]
        assert torch.equal(keep, value != 3.0)  # the prior never keeps audio; cond_dropout 0 keeps the rest
        assert torch.equal(ref[:, 0, 0], value)  # the reference is a crop of the sample's own clip
        assert 10 <= ref.shape[1] <= 40 and 20 <= x0.shape[1] <= 40
        assert 0 < ref_keep.float().mean() < 1
    # dataset weights: neurosync drawn about half the time (2 of 1 + 1 + 2)
    share = np.mean([(draw()[0][:, 0, 0] == 3.0).float().mean().item() for _ in range(20)])
    assert 0.4 < share < 0.6


def test_speed_perturbation_shortens_audio_and_motion_together():
    from motion.datasets import TrainingClip
    from motion.train import speed_perturb
    T = 90
    c = _clip(T)
    audio = np.sin(2 * np.pi * 200 * np.arange(48000) / 16000).astype(np.float32)
    tc = TrainingClip("x/y", "beat2", audio, c, np.ones(52, bool), np.ones(55, bool), "lic",
                      joint_valid=np.arange(T)[:, None].repeat(55, 1) < 45)
    fast = speed_perturb(tc, 1.5)
    assert fast.name == "x/y~speed1.5" and fast.clip.fps == 30.0
    assert fast.clip.num_frames == 60 and abs(len(fast.audio) - 32000) <= 2
    np.testing.assert_allclose(fast.clip.face[20], c.face[30], atol=1e-5)  # frame 20 at 1.5x = frame 30
    assert fast.joint_valid[:29].all() and not fast.joint_valid[31:].any()
    # 200 Hz becomes 300 Hz (pitch moves with the speed, as in Kaldi's speed perturbation)
    spec = np.abs(np.fft.rfft(fast.audio))
    assert abs(np.argmax(spec) * 16000 / len(fast.audio) - 300) < 2


@needs_data
def test_body_gain_is_fitted_on_real_training_audio_and_widens_the_motion(tmp_path):
    """The shipped weights under-disperse the body on their own training audio: the fitted gain is > 1
    on most channels, bounded, and applying it brings the generated std closer to the capture's."""
    from motion.checkpoint import default_checkpoint_path, load_models, save_models
    from motion.datasets import load_beat2
    from motion.conventions import BODY_STAGE_JOINTS
    from motion.inference import Intensity, MotionGenerator
    from motion.representation import BODY_DIM
    from motion.train import BODY_GAIN_RANGE, add_body_gain, fit_body_gain

    clip = next(c for c in load_beat2(DATA) if c.name == "beat2/2_scott_0_1_1")
    n = 30 * 12  # 12 s
    part = replace(clip, clip=clip.clip.slice(0, n), audio=clip.audio[: n * 16000 // 30])
    gain, center, stats = fit_body_gain(default_checkpoint_path(), [part], seeds=(0,), progress=False)
    assert gain.shape == center.shape == (BODY_DIM,) and gain.dtype == np.float32
    assert BODY_GAIN_RANGE[0] <= gain.min() and gain.max() <= BODY_GAIN_RANGE[1]
    # the spine (posture) is not widened
    from motion.conventions import JOINT_INDEX
    from motion.train import BODY_GAIN_FIXED_JOINTS
    for j in BODY_GAIN_FIXED_JOINTS:
        k = BODY_STAGE_JOINTS.index(JOINT_INDEX[j]) * 6
        assert (gain[k:k + 6] == 1.0).all(), j
    # the body stage under-disperses on its training audio (0.5.1's on this clip: median gain 1.08; 0.4.0's 1.2)
    assert np.median(gain) > 1.02 and stats["capture_std"] > stats["generated_std"]
    # written into a checkpoint copy, loaded back, and applied by finish() (offline and streaming path)
    ck = tmp_path / "m.safetensors"
    models = load_models()
    models.body_gain = models.body_gain_center = None
    save_models(models, ck)
    assert load_models(ck).body_gain is None
    add_body_gain(ck, [part], progress=False, version="9.9.9")
    m2 = load_models(ck)
    assert m2.info["version"] == "9.9.9" and m2.body_gain is not None
    gen = MotionGenerator(ck)
    audio = part.audio[: 16000 * 4]
    face_n, body_n, _, _ = gen.sample_normalised(audio, seed=0)
    on = gen.generate(audio, seed=0)
    gen.variance_compensation = False
    off = gen.generate(audio, seed=0)
    c, g = m2.body_gain_center.numpy(), m2.body_gain.numpy()
    idle = gen.idle.sample(len(body_n), 30.0, seed=0, energy=None)
    _, want = gen.finish(face_n, c + g * (body_n - c), idle.face, idle.eye_rotations, Intensity())
    body = list(BODY_STAGE_JOINTS)
    np.testing.assert_allclose(np.abs(np.sum(on.rotations[:, body] * want[:, body], -1)), 1.0, atol=1e-4)
    from motion.representation import body_vector
    mean, std = m2.body_mean.numpy(), m2.body_std.numpy()
    v_on, v_off = (body_vector(on) - mean) / std, (body_vector(off) - mean) / std
    assert v_on.std(0).mean() > 1.1 * v_off.std(0).mean()


def test_constant_channels_are_not_captured_when_asked():
    """mask_constant_channels: a face channel that never moves in a clip (FACEGOOD's mouthClose) is masked out
    of the loss, so only datasets that capture it teach it."""
    from motion.datasets import TrainingClip
    from motion.representation import FACE_MOUTH_DIM
    from motion.conventions import ARKIT_MOUTH
    from motion.train import _clip_items
    clip = _clip(T=30)
    clip.face[:, ARKIT_INDEX["mouthClose"]] = 0.0
    tc = TrainingClip("x/a", "facegood", None, clip, np.ones(52, bool), np.zeros(55, bool), "MIT")
    feats = np.zeros((30, FEATURE_DIM), np.float32)
    col = list(ARKIT_MOUTH).index(ARKIT_INDEX["mouthClose"])
    kept = _clip_items(tc, feats, "", False, [], mask_constant=False)[0]
    masked = _clip_items(tc, feats, "", False, [], mask_constant=True)[0]
    assert kept.face_mask[:, col].all() and not masked.face_mask[:, col].any()
    assert masked.face_mask[:, :FACE_MOUTH_DIM].sum() == kept.face_mask[:, :FACE_MOUTH_DIM].sum() - 30


def test_phones_videos_config_holds_out_the_default_speakers():
    """The experiment (0.5.0's held-out speakers) never trained on a speaker the shipped config holds out."""
    cfg = TrainConfig.from_toml(REPO / "configs" / "experiments" / "phones_videos.toml")
    default = TrainConfig.from_toml(REPO / "configs" / "default.toml")
    assert set(default.holdout_clips) <= set(cfg.holdout_clips) and cfg.holdout_tail == default.holdout_tail
    assert cfg.face_features == "running" and cfg.body_from and cfg.mask_constant_channels


def test_shipped_config_chain_holds_out_the_same_clips():
    """configs/default.toml (0.5.2) combines the face stage of default_face.toml with the body stage of
    default_body.toml: all three hold out the same clips."""
    default = TrainConfig.from_toml(REPO / "configs" / "default.toml")
    face = TrainConfig.from_toml(REPO / "configs" / "default_face.toml")
    body = TrainConfig.from_toml(REPO / "configs" / "default_body.toml")
    for step in (face, body):
        assert step.holdout_clips == default.holdout_clips and step.holdout_tail == default.holdout_tail
    assert default.face_from == face.out_dir + "/model.safetensors"
    assert default.body_from == body.out_dir + "/model.safetensors" and default.mouth_scale
    # the body stage was trained on the face stage the shipped one is fine-tuned from (0.5.0's); its variance
    # compensation is fitted again on the shipped face stage's output
    assert body.face_from == face.face_init and default.body_gain_refit and face.speed_factors
    # held out by speaker: tests/motion/test_lipsync.py::test_shipped_config_holds_out_whole_speakers_never_trained_on


def test_rest_offset_moves_the_resting_mouth_to_zero():
    from motion.conventions import ARKIT_MOUTH
    from motion.datasets import TrainingClip
    from motion.train import remove_rest_offset
    clip = _clip(T=200)
    jaw = ARKIT_INDEX["jawOpen"]
    clip.face[:, jaw] = 0.12 + 0.3 * (np.arange(200) % 20 > 10)   # rests at 0.12, opens to 0.42
    tc = TrainingClip("prepared/x", "video", None, clip, np.ones(52, bool), np.zeros(55, bool), "PD")
    out = remove_rest_offset(tc).clip.face
    np.testing.assert_allclose(out[:, jaw].min(), 0.0, atol=1e-6)
    np.testing.assert_allclose(np.ptp(out[:, jaw]), 0.3, atol=1e-5)
    assert (out[:, list(ARKIT_MOUTH)] >= 0).all()
    np.testing.assert_array_equal(out[:, ARKIT_INDEX["eyeBlinkLeft"]], clip.face[:, ARKIT_INDEX["eyeBlinkLeft"]])


def test_shift_capture_moves_motion_against_audio_and_marks_the_gap():
    from motion.datasets import TrainingClip
    from motion.train import shift_capture
    clip = _clip(T=30)
    tc = TrainingClip("prepared/x", "video", np.zeros(16000, np.float32), clip, np.ones(52, bool),
                      np.ones(55, bool), "PD")
    later = shift_capture(tc, 3)
    np.testing.assert_array_equal(later.clip.face[3:], clip.face[:-3])
    np.testing.assert_array_equal(later.clip.rotations[5], clip.rotations[2])
    assert not later.face_valid[:3].any() and later.face_valid[3:].all() and not later.joint_valid[:3].any()
    earlier = shift_capture(tc, -2)
    np.testing.assert_array_equal(earlier.clip.face[:-2], clip.face[2:])
    assert not earlier.face_valid[-2:].any() and earlier.face_valid[:-2].all()
    assert shift_capture(tc, 0) is tc


def test_phone_rule_prior_batches_are_residuals_over_the_rule():
    from motion.lipsync import PhoneRulePrior
    from motion.train import batch_fn
    from motion.features import PHONES
    from motion.representation import FACE_DIM, FACE_MOUTH_DIM
    T = 150
    cond = np.zeros((T, FEATURE_DIM), np.float32)
    cond[:, PHONE_SLICE.start + PHONES.index("AA")] = 1.0     # an open vowel throughout: jaw prior 0.5
    face = np.full((T, FACE_DIM), 0.5, np.float32)
    it = Item("a", "facegood", 0, cond, face, np.zeros((T, 6), np.float32), np.ones((T, FACE_DIM), bool),
              np.ones((T, 6), bool))
    std = np.full(FACE_DIM, 0.25, np.float32)
    prior = PhoneRulePrior(std, PHONE_SLICE, PHONES)
    cfg = replace(TrainConfig(), batch_size=4, window=40, min_window=0, phone_dropout=0.0, style_reference=False)
    x0 = batch_fn([it], cfg, "face", "cond", "face_mask", np.zeros(FACE_DIM, np.float32), std, 2,
                  np.random.default_rng(0), prior)()[0].numpy()
    from motion.conventions import ARKIT_MOUTH
    jaw = list(ARKIT_MOUTH).index(ARKIT_INDEX["jawOpen"])
    # away from the window edges the jaw residual is (0.5 - 0.5) / 0.25 = 0; a channel the rule leaves at 0 keeps 0.5/0.25
    np.testing.assert_allclose(x0[:, 5:-5, jaw], 0.0, atol=1e-5)
    np.testing.assert_allclose(x0[:, :, FACE_MOUTH_DIM:], 2.0, atol=1e-6)


@pytest.mark.slow
@needs_data
def test_body_init_fine_tunes_the_body_stage_from_a_checkpoint(tmp_path):
    """body_init starts the body stage from a checkpoint's body weights and keeps its normalisation: with a
    vanishing learning rate the trained body stage is that checkpoint's (tiny real data, 5 s per take)."""
    from tests.motion.test_distributed import _config
    from motion.checkpoint import load_models
    from motion.train import main

    cfg = _config(tmp_path)
    assert main([str(cfg)]) == 0
    first = tmp_path / "out" / "model.safetensors"
    text = cfg.read_text().replace(f'out_dir = "{tmp_path / "out"}"', f'out_dir = "{tmp_path / "out2"}"')
    cfg2 = tmp_path / "init.toml"
    cfg2.write_text(text + f'face_from = "{first}"\nbody_init = "{first}"\nlr = 1e-12\n')
    assert main([str(cfg2)]) == 0
    a, b = load_models(first), load_models(tmp_path / "out2" / "model.safetensors")
    np.testing.assert_array_equal(a.body_mean.numpy(), b.body_mean.numpy())
    np.testing.assert_array_equal(a.body_std.numpy(), b.body_std.numpy())
    for (name, p), q in zip(a.body.state_dict().items(), b.body.state_dict().values()):
        np.testing.assert_allclose(p.float().numpy(), q.float().numpy(), atol=1e-3, err_msg=name)
    log = json.loads((tmp_path / "out2" / "train_log.json").read_text())["log"]
    assert {"stage": "body stage", "initialised_from": str(first)} in log
