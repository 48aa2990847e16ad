"""DDIM noise schedule and update step, without importing ``diffusers`` (which costs ~2 s of start-up: its
package ``__init__`` pulls in ``torch._dynamo``).

:class:`DDIM` reproduces, operation for operation, the part of ``diffusers.DDIMScheduler`` (0.35-0.42) that
:mod:`motion.diffusion` uses: ``beta_schedule`` "squaredcos_cap_v2" (Nichol & Dhariwal 2021, "Improved
DDPM", eq. 17; max beta 0.999) or "linear", ``prediction_type="sample"``, ``clip_sample=False``,
``set_alpha_to_one=True``, ``timestep_spacing="trailing"`` (Lin et al. 2024, table 2), ``add_noise`` and
``step`` (Song et al., "Denoising Diffusion Implicit Models", ICLR 2021, eq. 12 and 16). The results are
bit-identical to diffusers' (``tests/motion/test_ddim.py`` checks it), so checkpoints trained with either
sample the same motion.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import torch


def squaredcos_cap_v2_betas(num_train_timesteps: int, max_beta: float = 0.999) -> torch.Tensor:
    """``[num_train_timesteps]`` float32 betas of the cosine schedule: ``beta_i = min(1 - abar((i+1)/N) /
    abar(i/N), max_beta)`` with ``abar(t) = cos((t + 0.008) / 1.008 * pi / 2) ** 2`` (in Python floats, as
    diffusers' ``betas_for_alpha_bar``)."""
    def abar(t: float) -> float:
        return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2
    n = num_train_timesteps
    return torch.tensor([min(1 - abar((i + 1) / n) / abar(i / n), max_beta) for i in range(n)], dtype=torch.float32)


@dataclass
class DDIMStepOutput:
    """``prev_sample``: ``x_{t-1}``, same shape/dtype as the sample; ``pred_original_sample``: the ``x0`` used."""

    prev_sample: torch.Tensor
    pred_original_sample: torch.Tensor


class DDIM:
    """DDIM for a denoiser that predicts the clean sample ``x0``.

    Attributes:
        config: ``num_train_timesteps``, ``beta_schedule`` (attribute access, as diffusers' ``config``).
        alphas_cumprod: ``[num_train_timesteps]`` float32, ``prod_{s<=t} (1 - beta_s)``.
        timesteps: ``[num_inference_steps]`` int64, descending, after :meth:`set_timesteps`.
        init_noise_sigma: 1.0 (std of the initial noise).
    Raises:
        ValueError: an unknown ``beta_schedule``.
    """

    init_noise_sigma = 1.0

    def __init__(self, num_train_timesteps: int = 1000, beta_schedule: str = "squaredcos_cap_v2",
                 beta_start: float = 0.0001, beta_end: float = 0.02):
        if beta_schedule == "squaredcos_cap_v2":
            betas = squaredcos_cap_v2_betas(num_train_timesteps)
        elif beta_schedule == "linear":
            betas = torch.linspace(beta_start, beta_end, num_train_timesteps, dtype=torch.float32)
        else:
            raise ValueError(f"unknown beta_schedule {beta_schedule!r} (squaredcos_cap_v2 or linear)")
        self.config = SimpleNamespace(num_train_timesteps=num_train_timesteps, beta_schedule=beta_schedule)
        self.betas = betas
        self.alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)
        self.final_alpha_cumprod = torch.tensor(1.0)
        self.num_inference_steps: int | None = None
        self.timesteps = torch.from_numpy(np.arange(0, num_train_timesteps)[::-1].copy().astype(np.int64))

    def set_timesteps(self, num_inference_steps: int) -> None:
        """"Trailing" spacing: ``round(arange(N, 0, -N / steps)) - 1`` (always starts at ``t = N - 1``).

        Raises:
            ValueError: more steps than training timesteps.
        """
        n = self.config.num_train_timesteps
        if num_inference_steps > n:
            raise ValueError(f"num_inference_steps {num_inference_steps} > num_train_timesteps {n}")
        self.num_inference_steps = num_inference_steps
        timesteps = np.round(np.arange(n, 0, -n / num_inference_steps)).astype(np.int64)
        timesteps -= 1
        self.timesteps = torch.from_numpy(timesteps)

    def add_noise(self, original_samples: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """Forward process ``sqrt(abar_t) x0 + sqrt(1 - abar_t) noise`` for ``[B, ...]`` samples and ``[B]`` int
        timesteps."""
        self.alphas_cumprod = self.alphas_cumprod.to(device=original_samples.device)
        alphas_cumprod = self.alphas_cumprod.to(dtype=original_samples.dtype)
        timesteps = timesteps.to(original_samples.device)
        sqrt_alpha_prod = (alphas_cumprod[timesteps] ** 0.5).flatten()
        sqrt_one_minus = ((1 - alphas_cumprod[timesteps]) ** 0.5).flatten()
        while sqrt_alpha_prod.dim() < original_samples.dim():
            sqrt_alpha_prod = sqrt_alpha_prod.unsqueeze(-1)
            sqrt_one_minus = sqrt_one_minus.unsqueeze(-1)
        return sqrt_alpha_prod * original_samples + sqrt_one_minus * noise

    def step(self, model_output: torch.Tensor, timestep: int | torch.Tensor, sample: torch.Tensor,
             eta: float = 0.0, generator: torch.Generator | None = None) -> DDIMStepOutput:
        """One DDIM update from ``x_t`` (``sample``) given the predicted ``x0`` (``model_output``).

        ``eta`` > 0 adds ``eta * sigma_t`` times standard normal noise drawn from ``generator`` (Song et al.
        2021, eq. 16).

        Raises:
            ValueError: :meth:`set_timesteps` was not called.
        """
        if self.num_inference_steps is None:
            raise ValueError("call set_timesteps before step")
        prev_timestep = timestep - self.config.num_train_timesteps // self.num_inference_steps
        alpha_prod_t = self.alphas_cumprod[timestep]
        alpha_prod_t_prev = self.alphas_cumprod[prev_timestep] if prev_timestep >= 0 else self.final_alpha_cumprod
        beta_prod_t = 1 - alpha_prod_t
        pred_original_sample = model_output
        pred_epsilon = (sample - alpha_prod_t ** (0.5) * pred_original_sample) / beta_prod_t ** (0.5)
        beta_prod_t_prev = 1 - alpha_prod_t_prev
        variance = (beta_prod_t_prev / beta_prod_t) * (1 - alpha_prod_t / alpha_prod_t_prev)
        std_dev_t = eta * variance ** (0.5)
        pred_sample_direction = (1 - alpha_prod_t_prev - std_dev_t ** 2) ** (0.5) * pred_epsilon
        prev_sample = alpha_prod_t_prev ** (0.5) * pred_original_sample + pred_sample_direction
        if eta > 0:
            noise = torch.randn(model_output.shape, generator=generator, device=model_output.device,
                                dtype=model_output.dtype)
            prev_sample = prev_sample + std_dev_t * noise
        return DDIMStepOutput(prev_sample=prev_sample, pred_original_sample=pred_original_sample)


def rescale_noise_cfg(noise_cfg: torch.Tensor, noise_pred_text: torch.Tensor, guidance_rescale: float = 0.0) -> torch.Tensor:
    """Guidance rescale (Lin et al., "Common Diffusion Noise Schedules and Sample Steps are Flawed", WACV 2024,
    eq. 15-16): ``noise_cfg`` rescaled to the per-sample std (over all but the batch dimension) of
    ``noise_pred_text``, blended with itself by ``guidance_rescale`` (0..1). Same operations as diffusers'
    ``rescale_noise_cfg``."""
    std_text = noise_pred_text.std(dim=list(range(1, noise_pred_text.ndim)), keepdim=True)
    std_cfg = noise_cfg.std(dim=list(range(1, noise_cfg.ndim)), keepdim=True)
    noise_pred_rescaled = noise_cfg * (std_text / std_cfg)
    return guidance_rescale * noise_pred_rescaled + (1 - guidance_rescale) * noise_cfg
