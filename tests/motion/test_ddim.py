"""motion.ddim.DDIM against diffusers.DDIMScheduler (the reference it replaces on the start-up path): the same
schedule, timesteps, noising, updates and whole sampling runs, bit for bit."""
import pytest
import torch

from motion.ddim import DDIM, rescale_noise_cfg
from motion.diffusion import DiffusionConfig, sample
from motion.model import DenoiserConfig, MotionDenoiser

diffusers = pytest.importorskip("diffusers", reason="diffusers is the reference implementation (test extra)")


def reference(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2"):
    return diffusers.DDIMScheduler(num_train_timesteps=num_train_timesteps, beta_schedule=beta_schedule,
                                   prediction_type="sample", clip_sample=False, set_alpha_to_one=True,
                                   timestep_spacing="trailing")


@pytest.mark.parametrize("schedule", ["squaredcos_cap_v2", "linear"])
def test_schedule_and_timesteps_identical(schedule):
    ours, ref = DDIM(1000, schedule), reference(1000, schedule)
    assert torch.equal(ours.alphas_cumprod, ref.alphas_cumprod)
    for steps in (1, 2, 3, 4, 6, 7, 8, 13, 50, 1000):
        ours.set_timesteps(steps)
        ref.set_timesteps(steps)
        assert torch.equal(ours.timesteps, ref.timesteps), steps
    with pytest.raises(ValueError):
        DDIM(1000, "scaled_linear")
    with pytest.raises(ValueError):
        ours.set_timesteps(1001)


def test_add_noise_identical():
    ours, ref = DiffusionConfig().scheduler(), reference()
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(5, 7, 3, generator=g), torch.randn(5, 7, 3, generator=g)
    t = torch.tensor([0, 1, 499, 998, 999])
    assert torch.equal(ours.add_noise(x0, noise, t), ref.add_noise(x0, noise, t))


@pytest.mark.parametrize("eta", [0.0, 0.3, 1.0])
def test_steps_identical(eta):
    ours, ref = DDIM(), reference()
    ours.set_timesteps(6)
    ref.set_timesteps(6)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 9, 4, generator=g)
    x_ref = x.clone()
    for t in ours.timesteps:
        x0 = torch.tanh(x) * 0.7   # any x0 prediction
        x = ours.step(x0, t, x, eta=eta, generator=torch.Generator().manual_seed(int(t))).prev_sample
        x_ref = ref.step(torch.tanh(x_ref) * 0.7, t, x_ref, eta=eta,
                         generator=torch.Generator().manual_seed(int(t))).prev_sample
        assert torch.equal(x, x_ref), int(t)
    with pytest.raises(ValueError, match="set_timesteps"):
        DDIM().step(x, 999, x)


def test_rescale_identical():
    from diffusers.guiders.guider_utils import rescale_noise_cfg as ref_rescale
    g = torch.Generator().manual_seed(2)
    a, b = torch.randn(3, 10, 4, generator=g), torch.randn(3, 10, 4, generator=g) * 2
    for r in (0.0, 0.5, 0.7, 1.0):
        assert torch.equal(rescale_noise_cfg(a, b, r), ref_rescale(a, b, r))


def _tiny_setup():
    """A small random denoiser, a condition, styles, and known first 8 frames (value 0.5)."""
    torch.manual_seed(0)
    m = MotionDenoiser(DenoiserConfig(6, 5, num_styles=2, d_model=32, num_layers=2, num_heads=2,
                                      dropout=0.0)).eval()
    cond, style = torch.randn(2, 24, 5), torch.tensor([0, 1])
    known = torch.full((2, 24, 6), 0.5)
    mask = torch.zeros(2, 24, 6, dtype=torch.bool)
    mask[:, :8] = True
    return m, cond, style, known, mask


@pytest.mark.parametrize("kw", [{}, {"guidance_scale": 2.0, "guidance_rescale": 0.7},
                                {"guidance_scale": 1.5, "style_guidance": 2.0, "null_style": 2, "eta": 0.5}])
def test_whole_sampling_identical(kw):
    m, cond, style, known, mask = _tiny_setup()
    a = sample(m, DiffusionConfig().scheduler(), cond, style, 4, torch.Generator().manual_seed(3), known, mask, **kw)
    b = sample(m, reference(), cond, style, 4, torch.Generator().manual_seed(3), known, mask, **kw)
    assert torch.equal(a, b)


def test_a_prior_is_removed_from_known_frames_and_added_to_the_sample():
    """With ``model.prior`` the denoiser works on ``x - prior(cond)``: the same run without the prior, given
    ``known - prior`` as its known frames, plus the prior."""
    m, cond, style, known, mask = _tiny_setup()
    p = torch.linspace(-1, 1, 24)[None, :, None].expand(2, 24, 6).contiguous()
    m.prior = lambda c: p.numpy().copy()
    with_prior = sample(m, DiffusionConfig().scheduler(), cond, style, 4, torch.Generator().manual_seed(3), known,
                        mask, guidance_scale=2.0)
    m.prior = None
    without = sample(m, DiffusionConfig().scheduler(), cond, style, 4, torch.Generator().manual_seed(3), known - p,
                     mask, guidance_scale=2.0)
    torch.testing.assert_close(with_prior, without + p)
    torch.testing.assert_close(with_prior[:, :8], known[:, :8])   # known frames come back as given


def test_mean_channels_are_the_first_steps_prediction():
    m, cond, style, _, _ = _tiny_setup()
    one = sample(m, DiffusionConfig().scheduler(), cond, style, 1, torch.Generator().manual_seed(3), guidance_scale=2.0)
    full = sample(m, DiffusionConfig().scheduler(), cond, style, 4, torch.Generator().manual_seed(3), guidance_scale=2.0)
    m.mean_channels = 2
    mixed = sample(m, DiffusionConfig().scheduler(), cond, style, 4, torch.Generator().manual_seed(3), guidance_scale=2.0)
    torch.testing.assert_close(mixed[..., :2], one[..., :2])
    torch.testing.assert_close(mixed[..., 2:], full[..., 2:])
    assert not torch.allclose(one[..., :2], full[..., :2])
