"""Hierarchical motion diffusion denoisers (after ChatAnyone, arXiv 2503.21144, section 3.1).

Two stages share one denoiser design:

* **face stage**: audio features -> mouth ARKit weights (27 channels) + head motion (neck and head joint
  rotations, 6D each);
* **body stage**: audio features + the face stage's output -> upper-body joints (spine, collars, shoulders,
  elbows, wrists) and 2 x 15 finger joints, 6D each.

The denoiser is a transformer over the frames of a window. The diffusion timestep and the style
(a learned embedding per dataset / named preset) are injected with adaptive layer norm with zero-init gates
(AdaLN-Zero, Peebles & Xie, "Scalable Diffusion Models with Transformers", 2023). Audio (and, for the body,
the face motion) is frame-aligned: a small temporal convolution encodes it and its output is added to the
noisy-motion embedding (frame-aligned concatenation, projected). The network predicts the clean sample
``x0`` (diffusers ``prediction_type="sample"``), which makes masked losses and inpainting simple.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass
class DenoiserConfig:
    """Shape of one stage's denoiser.

    Attributes:
        motion_dim: channels of the motion being denoised (per frame).
        cond_dim: channels of the frame-aligned condition (audio features [+ face motion]).
        num_styles: number of style ids; id ``num_styles`` is reserved for "no style" (CFG null).
        d_model, num_layers, num_heads, ff_mult: transformer size.
        max_frames: longest window (frames) for the sinusoidal position table.
        dropout: attention/MLP dropout during training.
        style_encoder: build a :class:`StyleEncoder` so a reference motion clip can set the style
            (checkpoints before 0.3.0 have none).
    """

    motion_dim: int
    cond_dim: int
    num_styles: int = 4
    d_model: int = 128
    num_layers: int = 4
    num_heads: int = 4
    ff_mult: int = 4
    max_frames: int = 512
    dropout: float = 0.1
    style_encoder: bool = False


    def to_dict(self) -> dict:
        return asdict(self)


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of integer timesteps ``[B]`` -> ``[B, dim]`` (Ho et al. 2020 / DDPM)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def _modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale[:, None]) + shift[:, None]


class AdaLNBlock(nn.Module):
    """Transformer block with AdaLN-Zero conditioning on a vector ``c`` ``[B, d_model]``."""

    def __init__(self, d: int, heads: int, ff_mult: int, dropout: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.attn = nn.MultiheadAttention(d, heads, dropout=dropout, batch_first=True)
        self.norm2 = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(d, d * ff_mult), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(d * ff_mult, d))
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(d, 6 * d))
        nn.init.zeros_(self.ada[1].weight)
        nn.init.zeros_(self.ada[1].bias)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        s1, sc1, g1, s2, sc2, g2 = self.ada(c).chunk(6, dim=-1)
        h = _modulate(self.norm1(x), s1, sc1)
        h, _ = self.attn(h, h, h, need_weights=False)
        x = x + g1[:, None] * h
        h = _modulate(self.norm2(x), s2, sc2)
        return x + g2[:, None] * self.mlp(h)


class StyleEncoder(nn.Module):
    """Reference motion ``[B, T, D]`` (normalised, with its ``[B, T, D]`` channel mask) -> style vector
    ``[B, d_model]``.

    Two temporal convolutions over the masked motion and the mask, then the mean and standard deviation
    over the valid frames (so any reference length works and the vector describes how the motion moves,
    not where it is in time), projected to ``d_model``. The projection is zero-initialised: an untrained
    encoder leaves the denoiser unchanged. After ChatAnyone section 3.1 (style from a reference clip).
    """

    def __init__(self, motion_dim: int, d: int):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv1d(2 * motion_dim, d, 5, padding=2), nn.GELU(),
                                  nn.Conv1d(d, d, 5, padding=2), nn.GELU())
        self.proj = nn.Linear(2 * d, d)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, ref: torch.Tensor, ref_mask: torch.Tensor) -> torch.Tensor:
        m = ref_mask.float()
        h = self.conv(torch.cat([ref * m, m], dim=-1).transpose(1, 2)).transpose(1, 2)  # [B, T, d]
        w = (m.amax(dim=-1, keepdim=True) > 0).float()  # frames with any valid channel
        n = w.sum(1).clamp_min(1.0)
        mean = (h * w).sum(1) / n
        std = ((((h - mean[:, None]) ** 2) * w).sum(1) / n).clamp_min(1e-6).sqrt()
        return self.proj(torch.cat([mean, std], dim=-1))


@dataclass
class DenoiserOutput:
    """Named output of :class:`MotionDenoiser`: ``sample`` ``[B, T, motion_dim]``, the predicted clean motion."""

    sample: torch.Tensor


class MotionDenoiser(nn.Module):
    """Transformer denoiser with AdaLN(timestep, style) and frame-aligned conditioning.

    Args:
        config: :class:`DenoiserConfig`.

    Forward args:
        x_t: ``[B, T, motion_dim]`` float32 noisy (normalised) motion.
        timesteps: ``[B]`` int64 diffusion timesteps.
        cond: ``[B, T, cond_dim]`` float32 frame-aligned condition.
        style: ``[B]`` int64 style ids (``config.num_styles`` = none).
        cond_keep: optional ``[B]`` bool; False replaces the condition by a learned null (CFG).
        style_vec: optional ``[B, d_model]`` float32 from :meth:`encode_style` (zeros = no reference), added
            to the style embedding.
    Returns:
        :class:`DenoiserOutput` with the predicted clean motion ``x0``.

    Attribute ``prior``: None, or a callable ``cond [B, T, cond_dim] -> [B, T, motion_dim]`` (numpy, normalised
    units; e.g. :class:`motion.lipsync.PhoneRulePrior`, set by :func:`motion.checkpoint.load_models` from the
    checkpoint's ``face_prior``): the denoiser then models ``x - prior(cond)`` and
    :func:`motion.diffusion.sample` adds the prior back. Attribute ``mean_channels`` (int, default 0): the
    first ``mean_channels`` channels of a sample are the first denoising step's x0 prediction (set from the
    checkpoint's ``sampling``; :func:`motion.diffusion.sample`).
    """

    def __init__(self, config: DenoiserConfig):
        super().__init__()
        self.config = c = config
        self.prior = None
        self.mean_channels = 0
        d = c.d_model
        self.in_proj = nn.Linear(c.motion_dim, d)
        self.cond_enc = nn.Sequential(
            nn.Conv1d(c.cond_dim, d, kernel_size=5, padding=2), nn.GELU(),
            nn.Conv1d(d, d, kernel_size=5, padding=2), nn.GELU(),
            nn.Conv1d(d, d, kernel_size=3, padding=1))
        self.null_cond = nn.Parameter(torch.zeros(d))
        self.time_mlp = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d))
        self.style_emb = nn.Embedding(c.num_styles + 1, d)
        self.style_enc = StyleEncoder(c.motion_dim, d) if c.style_encoder else None
        self.register_buffer("pos", timestep_embedding(torch.arange(c.max_frames), d), persistent=False)
        self.blocks = nn.ModuleList(AdaLNBlock(d, c.num_heads, c.ff_mult, c.dropout) for _ in range(c.num_layers))
        self.norm_out = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.ada_out = nn.Sequential(nn.SiLU(), nn.Linear(d, 2 * d))
        nn.init.zeros_(self.ada_out[1].weight)
        nn.init.zeros_(self.ada_out[1].bias)
        self.out = nn.Linear(d, c.motion_dim)

    def encode_style(self, ref: torch.Tensor, ref_mask: torch.Tensor) -> torch.Tensor:
        """Reference motion ``[B, T, motion_dim]`` (normalised) and its bool mask -> ``[B, d_model]``.

        Raises:
            ValueError: this denoiser was built without a style encoder.
        """
        if self.style_enc is None:
            raise ValueError("this checkpoint has no style encoder (trained before 0.3.0)")
        return self.style_enc(ref, ref_mask)

    def forward(self, x_t, timesteps, cond, style, cond_keep=None, style_vec=None) -> DenoiserOutput:
        B, T, _ = x_t.shape
        if T > self.config.max_frames:
            raise ValueError(f"window of {T} frames exceeds max_frames={self.config.max_frames}")
        h_cond = self.cond_enc(cond.transpose(1, 2)).transpose(1, 2)
        if cond_keep is not None:
            h_cond = torch.where(cond_keep[:, None, None], h_cond, self.null_cond.expand_as(h_cond))
        h = self.in_proj(x_t) + h_cond + self.pos[:T][None]
        c = self.time_mlp(timestep_embedding(timesteps, self.config.d_model)) + self.style_emb(style)
        if style_vec is not None:
            c = c + style_vec
        for blk in self.blocks:
            h = blk(h, c)
        shift, scale = self.ada_out(c).chunk(2, dim=-1)
        return DenoiserOutput(self.out(_modulate(self.norm_out(h), shift, scale)))
