"""Diffusion training loss and few-step sampling with DDIM (:class:`motion.ddim.DDIM`, bit-identical to
``diffusers.DDIMScheduler`` with this configuration, without diffusers' ~2 s import).

The denoisers predict the clean sample (``prediction_type="sample"``); DDIM (Song et al., "Denoising
Diffusion Implicit Models", ICLR 2021) with ``eta=0`` samples in a handful of steps. Inpainting (for
window overlaps, and streaming) replaces the known frames of each step's predicted ``x0`` before the
scheduler step, so the next noisy state is consistent with them.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from .ddim import DDIM, rescale_noise_cfg

from .model import MotionDenoiser


@dataclass
class DiffusionConfig:
    """Noise schedule (``num_train_timesteps``, ``beta_schedule``) and ``num_inference_steps``.

    ``num_inference_steps`` is the training-time value (``TrainConfig.inference_steps``: the DDIM steps of the
    sampling done while training, e.g. the body stage's face condition), stored for the record; generation
    takes its steps from :class:`motion.options.SamplingOptions` (the checkpoint's ``sampling`` metadata, else
    :data:`motion.options.FACE_STEPS` / :data:`motion.options.BODY_STEPS`), and :func:`sample` from its
    ``num_inference_steps`` argument.
    """

    num_train_timesteps: int = 1000
    beta_schedule: str = "squaredcos_cap_v2"
    num_inference_steps: int = 8

    def scheduler(self) -> DDIM:
        """DDIM with ``prediction_type="sample"``, no clipping, ``set_alpha_to_one`` and "trailing" spacing
        (the ``diffusers.DDIMScheduler`` settings the checkpoints were trained with)."""
        return DDIM(num_train_timesteps=self.num_train_timesteps, beta_schedule=self.beta_schedule)

    def to_dict(self) -> dict:
        return asdict(self)


def diffusion_loss(model: MotionDenoiser, scheduler: DDIM, x0: torch.Tensor, cond: torch.Tensor,
                   style: torch.Tensor, mask: torch.Tensor, cond_keep: torch.Tensor | None = None,
                   velocity_weight: float = 1.0,
                   style_ref: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """Masked x0-prediction loss for one batch.

    Args:
        x0: ``[B, T, D]`` clean normalised motion; cond ``[B, T, C]``; style ``[B]`` int64.
        mask: ``[B, D]`` or ``[B, T, D]`` bool/float: 1 where the channel is real in the sample's dataset.
            Masked channels get no gradient.
        style_ref: optional ``(ref [B, Tr, D], ref_mask [B, Tr, D] bool, ref_keep [B] bool)``: reference
            motion for the style encoder; samples with ``ref_keep`` False get no reference (CFG null).
    Returns:
        dict with ``loss`` (to minimise), ``mse`` and ``vel`` (detached parts).
    """
    B = x0.shape[0]
    t = torch.randint(0, scheduler.config.num_train_timesteps, (B,), device=x0.device)
    noise = torch.randn_like(x0)
    x_t = scheduler.add_noise(x0, noise, t)
    style_vec = None
    if style_ref is not None:
        ref, ref_mask, ref_keep = style_ref
        style_vec = model.encode_style(ref, ref_mask) * ref_keep[:, None].float()
    pred = model(x_t, t, cond, style, cond_keep, style_vec).sample
    m = mask.float()
    if m.dim() == 2:
        m = m[:, None, :].expand_as(x0)
    denom = m.sum().clamp_min(1.0)
    mse = ((pred - x0) ** 2 * m).sum() / denom
    mv = m[:, 1:] * m[:, :-1]
    vel = (((pred[:, 1:] - pred[:, :-1]) - (x0[:, 1:] - x0[:, :-1])) ** 2 * mv).sum() / mv.sum().clamp_min(1.0)
    return {"loss": mse + velocity_weight * vel, "mse": mse.detach(), "vel": vel.detach()}


@torch.no_grad()
def sample(model: MotionDenoiser, scheduler: DDIM, cond: torch.Tensor, style: torch.Tensor,
           num_inference_steps: int, generator: torch.Generator | None = None,
           known: torch.Tensor | None = None, known_mask: torch.Tensor | None = None,
           guidance_scale: float = 1.0, noise: torch.Tensor | None = None,
           style_vec: torch.Tensor | None = None, style_guidance: float = 1.0,
           null_style: int | None = None, eta: float = 0.0, guidance_rescale: float = 0.0) -> torch.Tensor:
    """DDIM sampling of ``[B, T, D]`` normalised motion.

    Args:
        cond: ``[B, T, C]`` condition; style: ``[B]`` ids.
        known, known_mask: optional ``[B, T, D]`` values and bool mask of frames/channels to keep
            (inpainting, e.g. the overlap with the previous window).
        guidance_scale: classifier-free guidance on the condition (1 = off; >1 costs a second pass).
        noise: optional initial noise ``[B, T, D]`` (else drawn from ``generator``).
        style_vec: optional ``[B, d_model]`` reference style (:meth:`MotionDenoiser.encode_style`).
        style_guidance: classifier-free guidance on the style (1 = off). Otherwise three passes, as in
            InstructPix2Pix (Brooks et al. 2023, eq. 3) with audio for the image and style for the text:
            ``x0 = u + g_a (a - u) + g_s (s - a)``, where ``u`` has neither audio nor style, ``a`` audio
            only, ``s`` audio and style. Needs ``null_style`` (the "no style" id).
        guidance_rescale: 0..1; blends the guided prediction with itself rescaled to the per-sample std
            of the conditional one (Lin et al., "Common Diffusion Noise Schedules and Sample Steps are
            Flawed", WACV 2024, eq. 15-16; diffusers' ``rescale_noise_cfg``): guidance's timing without its
            amplitude inflation. 0 = off.
        eta: DDIM stochasticity (Song et al. 2021, eq. 16: 0 = deterministic DDIM, 1 = DDPM-like
            posterior noise at every step), drawn from ``generator``.
        When ``model.prior`` is set (:class:`motion.model.MotionDenoiser`), the model denoises the residual
        ``x - prior(cond)``: ``known`` (full values) is turned into residuals and the prior is added to the
        result. When ``model.mean_channels`` is ``k > 0``, the first ``k`` channels of the result are the
        first step's x0 prediction (from pure noise: the model's estimate of ``E[x0 | cond]``, the
        least-squares answer) and the others the full DDIM trajectory, at no extra cost.
    Returns:
        ``[B, T, D]`` the final predicted clean sample.
    """
    B, T = cond.shape[:2]
    D = model.config.motion_dim
    prior = getattr(model, "prior", None)
    if prior is not None:
        prior = torch.from_numpy(prior(cond.detach().cpu().numpy())).to(cond.dtype)
        if known is not None:
            known = known - prior
    scheduler.set_timesteps(num_inference_steps)
    x = noise if noise is not None else torch.randn((B, T, D), generator=generator)
    x = x * scheduler.init_noise_sigma
    x0 = x
    styled = style_guidance != 1.0
    if styled and null_style is None:
        raise ValueError("style guidance needs null_style")
    sv = style_vec
    zero_sv = None if sv is None else torch.zeros_like(sv)
    nulls = torch.full_like(style, null_style) if styled else None
    ones, zeros = torch.ones(B, dtype=torch.bool), torch.zeros(B, dtype=torch.bool)
    if styled:  # [audio+style, audio only, neither]
        keep = torch.cat([ones, ones, zeros])
        cond2, style2 = torch.cat([cond, cond, cond]), torch.cat([style, nulls, nulls])
        sv2 = None if sv is None else torch.cat([sv, zero_sv, zero_sv])
        n_pass = 3
    elif guidance_scale != 1.0:  # [audio, no audio], same style
        keep = torch.cat([ones, zeros])
        cond2, style2 = torch.cat([cond, cond]), torch.cat([style, style])
        sv2 = None if sv is None else torch.cat([sv, sv])
        n_pass = 2
    else:
        keep, cond2, style2, sv2, n_pass = ones, cond, style, sv, 1
    k_mean = int(getattr(model, "mean_channels", 0) or 0)
    first = None
    for t in scheduler.timesteps:
        tt = torch.full((len(keep),), int(t), dtype=torch.long)
        out = model(torch.cat([x] * n_pass), tt, cond2, style2, keep, sv2).sample
        if n_pass == 3:
            x0_s, x0_a, x0_u = out.chunk(3)
            x0 = x0_u + guidance_scale * (x0_a - x0_u) + style_guidance * (x0_s - x0_a)
            if guidance_rescale > 0:
                x0 = rescale_noise_cfg(x0, x0_s, guidance_rescale)
        elif n_pass == 2:
            x0_c, x0_u = out.chunk(2)
            x0 = x0_u + guidance_scale * (x0_c - x0_u)
            if guidance_rescale > 0:
                x0 = rescale_noise_cfg(x0, x0_c, guidance_rescale)
        else:
            x0 = out
        if known is not None:
            x0 = torch.where(known_mask, known, x0)
        if k_mean and first is None:
            first = x0[..., :k_mean].clone()
        if isinstance(scheduler, DDIM) or type(scheduler).__name__ == "DDIMScheduler":  # or diffusers' own
            x = scheduler.step(x0, t, x, eta=float(eta), generator=generator).prev_sample
        else:
            x = scheduler.step(x0, t, x, generator=generator).prev_sample
    if first is not None:
        x0 = torch.cat([first, x0[..., k_mean:]], dim=-1)
    if prior is None:
        return x0
    x0 = x0 + prior
    pr = model.prior
    if getattr(pr, "face_mean", None) is not None:   # a phone-rule prior that knows the stage's mean: lip seal
        x0 = torch.from_numpy(pr.seal(x0.numpy(), cond.detach().cpu().numpy())).to(x0.dtype)
        if known is not None:   # known frames stay exactly as given
            x0 = torch.where(known_mask, known + prior, x0)
    return x0
