"""Denoiser, diffusion loss, sampling with inpainting, checkpoint round trip."""
import numpy as np
import pytest
import torch

from motion.checkpoint import StageModels, load_models, save_models
from motion.diffusion import DiffusionConfig, diffusion_loss, sample
from motion.errors import CheckpointError
from motion.inference import sample_windows, window_starts
from motion.model import DenoiserConfig, MotionDenoiser
from tests.conftest import needs_data


def tiny(motion_dim=6, cond_dim=5, **kw):
    torch.manual_seed(0)
    return MotionDenoiser(DenoiserConfig(motion_dim, cond_dim, num_styles=2, d_model=32, num_layers=2,
                                         num_heads=2, dropout=0.0, **kw))


def test_output_shape_and_named_output():
    m = tiny()
    out = m(torch.randn(3, 20, 6), torch.tensor([0, 500, 999]), torch.randn(3, 20, 5), torch.tensor([0, 1, 2]))
    assert out.sample.shape == (3, 20, 6)
    with pytest.raises(ValueError, match="max_frames"):
        m(torch.randn(1, 600, 6), torch.tensor([0]), torch.randn(1, 600, 5), torch.tensor([0]))


def test_masked_channels_get_no_gradient():
    m = tiny()
    sched = DiffusionConfig().scheduler()
    x0 = torch.randn(2, 16, 6)
    cond, style = torch.randn(2, 16, 5), torch.tensor([0, 1])
    mask = torch.tensor([[True] * 3 + [False] * 3] * 2)
    torch.manual_seed(1)
    a = diffusion_loss(m, sched, x0, cond, style, mask)["loss"]
    with torch.no_grad():
        m.out.bias[3:] += 5.0  # predictions of masked channels change: the loss must not
    torch.manual_seed(1)
    b = diffusion_loss(m, sched, x0, cond, style, mask)["loss"]
    assert torch.allclose(a, b)
    a.backward()
    assert m.out.weight.grad[3:].abs().max() == 0 and m.out.weight.grad[:3].abs().max() > 0


def test_sampling_inpaints_known_frames_and_is_seeded():
    m = tiny().eval()
    sched = DiffusionConfig(num_inference_steps=4).scheduler()
    cond, style = torch.randn(1, 24, 5), torch.tensor([2])
    known = torch.full((1, 24, 6), 0.5)
    mask = torch.zeros(1, 24, 6, dtype=torch.bool)
    mask[:, :8] = True
    a = sample(m, sched, cond, style, 4, torch.Generator().manual_seed(3), known, mask)
    b = sample(m, sched, cond, style, 4, torch.Generator().manual_seed(3), known, mask)
    assert torch.equal(a, b)
    assert torch.allclose(a[:, :8], known[:, :8]) and not torch.allclose(a[:, 8:], known[:, 8:])


def test_windows_cover_long_input_and_continue_previous_window():
    m = tiny().eval()
    sched = DiffusionConfig(num_inference_steps=3).scheduler()
    cond = np.random.default_rng(0).normal(size=(250, 5)).astype(np.float32)
    out = sample_windows(m, sched, cond, 2, 3, window=60, overlap=15, generator=torch.Generator().manual_seed(0))
    assert out.shape == (250, 6) and np.isfinite(out).all()
    assert np.abs(out).sum(1).min() > 0  # every frame generated


def test_checkpoint_round_trip(tmp_path):
    face, body = tiny(), tiny(8, 11)
    z = torch.zeros
    models = StageModels(face, body, z(6), torch.ones(6), z(8), torch.ones(8), DiffusionConfig(), {"version": "t"})
    args = (torch.randn(1, 10, 6), torch.tensor([10]), torch.randn(1, 10, 5), torch.tensor([0]))
    exact = load_models(save_models(models, tmp_path / "m32.safetensors", weights_dtype=torch.float32))
    assert torch.equal(face.eval()(*args).sample, exact.face(*args).sample)
    back = load_models(save_models(models, tmp_path / "m.safetensors"))  # default: float16 weights
    assert torch.allclose(face.eval()(*args).sample, back.face(*args).sample, atol=2e-2)
    assert back.face.out.weight.dtype == torch.float32 and back.info["version"] == "t"
    assert (tmp_path / "m.safetensors").stat().st_size < 0.6 * (tmp_path / "m32.safetensors").stat().st_size
    (tmp_path / "bad.safetensors").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        load_models(tmp_path / "bad.safetensors")
    with pytest.raises(CheckpointError, match="not found"):
        load_models(tmp_path / "missing.safetensors")


@needs_data
def test_face_stage_learns_on_a_real_slice():
    """A few steps on 20 s of real FACEGOOD data: the (fixed-noise) loss falls."""
    from motion.datasets import load_facegood
    from motion.features import FEATURE_DIM, extract_features
    from motion.representation import FACE_DIM, face_vector, face_vector_mask
    c = load_facegood()[0]
    T = 600
    feats = extract_features(c.audio[: T * 16000 // 30], num_frames=T, phones=False).stack()
    x = face_vector(c.clip.slice(0, T))
    mask = face_vector_mask(c.face_mask, c.joint_mask)
    x = (x - x.mean(0)) / (x.std(0) + 0.05)
    x0 = torch.from_numpy(np.stack([x[i:i + 60] for i in range(0, 480, 60)])).float()
    cond = torch.from_numpy(np.stack([feats[i:i + 60] for i in range(0, 480, 60)])).float()
    style, m_ = torch.zeros(8, dtype=torch.long), torch.from_numpy(np.tile(mask, (8, 1)))
    torch.manual_seed(0)
    model = MotionDenoiser(DenoiserConfig(FACE_DIM, FEATURE_DIM, d_model=64, num_layers=2, dropout=0.0))
    sched = DiffusionConfig().scheduler()

    def fixed_loss():
        torch.manual_seed(123)
        with torch.no_grad():
            return float(diffusion_loss(model, sched, x0, cond, style, m_)["loss"])
    before = fixed_loss()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for _ in range(40):
        loss = diffusion_loss(model, sched, x0, cond, style, m_)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = fixed_loss()
    assert after < 0.7 * before, (before, after)


@pytest.mark.parametrize("T", [1, 59, 60, 61, 105, 106, 250, 1000])
def test_window_starts_are_a_grid_whose_even_windows_do_not_overlap(T):
    W, O = 60, 15
    starts = window_starts(T, W, O)
    covered = np.zeros(max(T, starts[-1] + W), bool)
    for s in starts:
        covered[s:s + W] = True
    assert covered[:T].all() and starts[0] == 0
    assert all(b - a == W - O for a, b in zip(starts, starts[1:]))
    assert len(starts) == 1 or starts[-2] + W < T  # the fewest windows
    even = starts[0::2]
    assert all(b >= a + W for a, b in zip(even, even[1:]))  # pass 1 windows are independent


def test_crossfade_joins_windows_smoothly_from_the_previous_one():
    from motion.inference import crossfade_weights
    w = crossfade_weights(6)
    assert w.shape == (6,) and 0 < w[0] < w[-1] < 1 and np.all(np.diff(w) > 0)
    np.testing.assert_allclose(w + w[::-1], 1.0, atol=1e-6)  # symmetric raised cosine
    m = tiny().eval()
    sched = DiffusionConfig(num_inference_steps=3).scheduler()
    cond = np.random.default_rng(0).normal(size=(100, 5)).astype(np.float32)
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    first = sample_windows(m, sched, cond[:60], 2, 3, 60, 20, g())
    both = sample_windows(m, sched, cond, 2, 3, 60, 20, g(), crossfade=8)
    # the second window starts at 40: frames 40..52 inpainted (equal to the first window), 52..60 faded
    np.testing.assert_allclose(both[:52], first[:52], atol=1e-6)
    assert not np.allclose(both[52:60], first[52:60])
    # a middle window is inpainted from both neighbours: windows at 0, 40, 80 over 140 frames
    cond = np.random.default_rng(1).normal(size=(140, 5)).astype(np.float32)
    three = sample_windows(m, sched, cond, 2, 3, 60, 20, g(), crossfade=8)
    changed = cond.copy()
    changed[60:80] += 3.0  # audio only the middle window sees
    other = sample_windows(m, sched, changed, 2, 3, 60, 20, g(), crossfade=8)
    np.testing.assert_allclose(other[:52], three[:52], atol=1e-6)   # window 0, and the middle's inpainted start
    np.testing.assert_allclose(other[88:], three[88:], atol=1e-6)   # window 2, and the middle's inpainted end
    assert not np.allclose(other[52:88], three[52:88], atol=1e-3)


def test_style_encoder_pools_over_valid_frames_and_starts_neutral():
    m = tiny(style_encoder=True).eval()
    torch.nn.init.normal_(m.style_enc.proj.weight)
    ref = torch.randn(1, 30, 6)
    mask = torch.ones(1, 30, 6, dtype=torch.bool)
    v = m.encode_style(ref, mask)
    assert v.shape == (1, 32)
    # frames whose mask is all False do not count, whatever their values
    padded = torch.cat([ref, torch.full((1, 20, 6), 9.0)], 1)
    pmask = torch.cat([mask, torch.zeros(1, 20, 6, dtype=torch.bool)], 1)
    assert not torch.allclose(m.encode_style(padded, torch.ones_like(pmask)), v, atol=1e-3)
    # (convolutions see the padded edge, so only approximately equal)
    assert torch.allclose(m.encode_style(padded, pmask)[0], v[0], atol=0.35 * v.abs().max().item())
    # a fresh encoder's projection is zero: the denoiser's output is as without a reference
    fresh = tiny(style_encoder=True).eval()
    x, t, c, s = torch.randn(1, 20, 6), torch.tensor([10]), torch.randn(1, 20, 5), torch.tensor([2])
    sv = fresh.encode_style(ref, mask)
    assert torch.equal(fresh(x, t, c, s, None, sv).sample, fresh(x, t, c, s).sample)
    with pytest.raises(ValueError, match="style encoder"):
        tiny().encode_style(ref, mask)


def test_style_guidance_pushes_away_from_the_unstyled_sample():
    m = tiny(style_encoder=True).eval()
    torch.nn.init.normal_(m.style_enc.proj.weight, std=0.5)
    sched = DiffusionConfig(num_inference_steps=3).scheduler()
    cond, style = torch.randn(1, 24, 5), torch.tensor([2])  # id 2 = "no style" for num_styles=2
    sv = m.encode_style(torch.randn(1, 30, 6), torch.ones(1, 30, 6, dtype=torch.bool))
    run = lambda **kw: sample(m, sched, cond, style, 3, torch.Generator().manual_seed(0), **kw)  # noqa: E731
    plain, styled = run(), run(style_vec=sv)
    # style guidance 1 with audio guidance 1 is the plain one-pass sample
    assert torch.equal(run(style_vec=sv, style_guidance=1.0), styled)
    strong = run(style_vec=sv, style_guidance=2.0, null_style=2)
    assert (strong - plain).abs().mean() > (styled - plain).abs().mean()
    with pytest.raises(ValueError, match="null_style"):
        run(style_vec=sv, style_guidance=2.0)


def test_guidance_rescale_matches_the_conditional_std_and_keeps_the_guided_direction():
    m = tiny().eval()
    sched = DiffusionConfig().scheduler()
    cond, style = torch.randn(2, 24, 5), torch.tensor([0, 1])
    noise = torch.randn(2, 24, 6, generator=torch.Generator().manual_seed(1))
    run = lambda **kw: sample(m, sched, cond, style, 1, noise=noise, **kw)  # noqa: E731
    cond_only, guided = run(), run(guidance_scale=3.0)
    rescaled = run(guidance_scale=3.0, guidance_rescale=1.0)
    half = run(guidance_scale=3.0, guidance_rescale=0.5)
    for b in range(2):  # per sample: the conditional prediction's std, the guided prediction's shape
        assert torch.isclose(rescaled[b].std(), cond_only[b].std(), rtol=1e-4)
        assert torch.allclose(rescaled[b] * guided[b].std() / rescaled[b].std(), guided[b], atol=1e-5)
    torch.testing.assert_close(half, 0.5 * (guided + rescaled))
    assert not torch.allclose(guided, rescaled, atol=1e-3)


def test_eta_adds_seeded_noise_and_zero_eta_is_deterministic_ddim():
    m = tiny().eval()
    sched = DiffusionConfig().scheduler()
    cond, style = torch.randn(1, 24, 5), torch.tensor([0])
    noise = torch.randn(1, 24, 6, generator=torch.Generator().manual_seed(1))
    run = lambda seed, **kw: sample(m, sched, cond, style, 4, torch.Generator().manual_seed(seed), noise=noise, **kw)  # noqa: E731
    assert torch.equal(run(0), run(5))                      # eta 0: the generator only draws the start noise
    assert torch.equal(run(0, eta=1.0), run(0, eta=1.0))
    assert not torch.allclose(run(0, eta=1.0), run(5, eta=1.0))
