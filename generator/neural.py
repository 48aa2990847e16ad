"""The neural engine: a small hybrid-control portrait generator (ChatAnyone §3.2-3.4), PyTorch.

Inputs per frame: the source portrait ``[3, H, W]`` (RGB in [0, 1], output size, 512 x 768), the explicit
facial keypoints of the source and of the driving frame (``[K, 2]``, the :class:`~generator.face_keypoints.
FaceKeypointModel` subset of MediaPipe's landmarks, K = 188; from :class:`~generator.driving.KeypointDriver`
at render time) and the two hand control images ``[2, H, W]`` (:mod:`generator.hands`). Output: the frame
``[3, H, W]`` in [0, 1].

Networks (one :class:`HybridGenerator`, configured by :class:`NeuralConfig`; 2.7 M parameters by default):

* **Implicit keypoints** (:class:`ImplicitKeypointDetector`): ``num_implicit`` 2D keypoints detected on the
  source (soft-argmax of heatmaps). Their driving positions = the least-squares 2D affine of the explicit
  keypoints (source -> driving) applied to them + **offsets** predicted by an MLP (:class:`ImplicitOffsets`)
  from the explicit keypoints' non-affine displacement. This is the hybrid control fusion: explicit
  keypoints say what the motion is, implicit ones are free to follow what the explicit ones miss (hair,
  shoulders, cheeks).
* **Dense motion** (:class:`DenseMotion`, at ``motion_size``, 64 x 96): backward-flow proposals (identity,
  the explicit keypoints' inverse affine, a Gaussian-RBF interpolation of the explicit keypoint
  displacements, one translation per implicit keypoint), each used to deform the downscaled source; an
  hourglass sees the deformed sources and Gaussian heatmaps of the explicit keypoints (per facial region,
  :func:`keypoint_groups`) and of the implicit keypoints, and predicts soft masks over the proposals, a
  small residual flow and an occlusion map (FOMM, Siarohin et al. 2019; LivePortrait's keypoint-driven
  warping).
* **Appearance encoder + decoder** (:class:`AppearanceEncoder`, :class:`Decoder`, at ``internal_size``,
  128 x 192): source features at four scales, warped by the flow and multiplied by the occlusion, decoded
  with skip connections; the **hand control images** (area-downsampled) are concatenated at every decoder
  scale (their input weights start at zero, so they act only once frames with visible hands trained them).
  The decoder outputs RGB and a blend mask.
* **Composition at the output size**: the flow is upsampled to the output size (it is in normalised
  coordinates) and warps the *full-resolution* source; the blend mask chooses per pixel between that sharp
  warped source and the (bilinearly upsampled) decoded RGB, which is used where the source has nothing to
  show (mouth interior, disocclusions). This is how a generator working at 128 x 192 outputs 512 x 768 at CPU
  speed; it is resolution-independent (trained at 256 x 384, rendered at 512 x 768).
* **Face refine** (:class:`FaceRefiner`, on a ``face_size`` (96 x 96) crop): a square box around the driving
  keypoints (``face_margin`` times their extent) is cropped from the composed frame, an hourglass sees the
  crop and the driving keypoints' region heatmaps in crop coordinates, conditioned (FiLM) on the implicit
  keypoint offsets, and predicts a masked RGB residual that is pasted back at the output size.

Coordinates: keypoints are pixels (x right, y down, origin at the top-left pixel's corner) at the API and
normalised to [-1, 1] inside (``F.grid_sample`` with ``align_corners=False``); distances are measured in
units of the image width (y scaled by H / W).

Checkpoints: one ``.safetensors`` file (:func:`save_checkpoint`, :func:`load_checkpoint`): the weights
(float32) and, in the metadata, the format name, version, :class:`NeuralConfig` and the MediaPipe landmark
ids of the keypoints (which must match the facial keypoint model used to drive it).
"""
from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from motion.errors import ChatAnyoneError

FORMAT = "chatanyone-neural-generator"
FORMAT_VERSION = 1


class NeuralCheckpointError(ChatAnyoneError):
    """A neural generator checkpoint is missing, unreadable or does not fit this code / keypoint model."""


@dataclass
class NeuralConfig:
    """Architecture of :class:`HybridGenerator` (stored in every checkpoint).

    Attributes:
        internal_size: ``(width, height)`` of the appearance encoder/decoder (pixels).
        motion_size: ``(width, height)`` of the dense-motion network and keypoint detector.
        face_size: side of the square face-refine crop (pixels).
        num_keypoints: explicit keypoints K. num_groups: facial regions of their heatmaps.
        num_implicit: learned implicit keypoints.
        encoder_channels: appearance encoder widths at 1, 1/2, 1/4, 1/8 of ``internal_size``.
        motion_channels: dense-motion hourglass widths at 1, 1/2, 1/4 of ``motion_size``.
        face_channels: face-refine hourglass widths at 1, 1/2, 1/4 of the crop.
        hand_channels: hand control image channels (left, right).
        heatmap_sigma: keypoint heatmap Gaussian sigma, fraction of the image width.
        rbf_sigma: RBF interpolation sigma of the explicit flow proposal, fraction of the width.
        face_margin: face box side / the driving keypoints' extent.
        max_residual_flow: bound of the residual flow (normalised units).
    """

    internal_size: tuple[int, int] = (128, 192)
    motion_size: tuple[int, int] = (64, 96)
    face_size: int = 96
    num_keypoints: int = 188
    num_groups: int = 9
    num_implicit: int = 8
    encoder_channels: tuple[int, ...] = (32, 64, 96, 128)
    motion_channels: tuple[int, ...] = (32, 64, 128)
    face_channels: tuple[int, ...] = (32, 64, 96)
    hand_channels: int = 2
    heatmap_sigma: float = 0.012
    rbf_sigma: float = 0.03
    face_margin: float = 1.3
    max_residual_flow: float = 0.05

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "NeuralConfig":
        """From a dict (e.g. a TOML table or checkpoint metadata); unknown keys raise ``KeyError``."""
        names = {f.name for f in fields(cls)}
        bad = set(d) - names
        if bad:
            raise KeyError(f"unknown generator option(s): {', '.join(sorted(bad))}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


# --------------------------------------------------------------------------------------------------
# Keypoint regions
# --------------------------------------------------------------------------------------------------
def keypoint_groups(landmark_ids: np.ndarray) -> np.ndarray:
    """Facial region of each keypoint ``[K]`` int64 in 0..8: face oval, outer lips, inner lips, the two eyes,
    the two brows, nose, other (rigid/cheek points). Landmark sets: :mod:`generator.face_keypoints` and
    MediaPipe's ``FaceLandmarksConnections``."""
    from .face_keypoints import FACE_OVAL, INNER_LIP_LOWER, INNER_LIP_UPPER, OUTER_LIP_LOWER, OUTER_LIP_UPPER

    try:
        from mediapipe.tasks.python.vision.face_landmarker import FaceLandmarksConnections as C

        def ids(name):
            return {p for c in getattr(C, name) for p in (c.start, c.end)}
        sets = [set(FACE_OVAL), set(OUTER_LIP_UPPER + OUTER_LIP_LOWER), set(INNER_LIP_UPPER + INNER_LIP_LOWER),
                ids("FACE_LANDMARKS_LEFT_EYE"), ids("FACE_LANDMARKS_RIGHT_EYE"),
                ids("FACE_LANDMARKS_LEFT_EYEBROW"), ids("FACE_LANDMARKS_RIGHT_EYEBROW"), ids("FACE_LANDMARKS_NOSE")]
    except ImportError:  # pragma: no cover - the render extra installs mediapipe
        raise NeuralCheckpointError("keypoint regions need the 'mediapipe' package (pip install -e '.[render]')")
    out = np.full(len(landmark_ids), 8, np.int64)
    for g in range(len(sets) - 1, -1, -1):  # earlier sets win (lips over oval for shared corners)
        for k, i in enumerate(landmark_ids):
            if int(i) in sets[g]:
                out[k] = g
    return out


# --------------------------------------------------------------------------------------------------
# Geometry helpers (normalised coordinates, align_corners=False)
# --------------------------------------------------------------------------------------------------
def to_normalized(points_px: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Pixels ``[..., 2]`` (corner origin) -> [-1, 1] coordinates of an image of ``size = (W, H)``."""
    W, H = size
    s = points_px.new_tensor([2.0 / W, 2.0 / H])
    return points_px * s - 1.0


def pixel_grid(h: int, w: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """Normalised coordinates of pixel centres ``[h, w, 2]`` (x, y)."""
    ys = (torch.arange(h, device=device, dtype=dtype) * 2 + 1) / h - 1
    xs = (torch.arange(w, device=device, dtype=dtype) * 2 + 1) / w - 1
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gx, gy], -1)


def _sqdist(grid: torch.Tensor, pts: torch.Tensor, aspect: float) -> torch.Tensor:
    """Squared distances in width units (``aspect`` = H / W): ``grid [B or 1, P, 2]``, ``pts [B, K, 2]`` ->
    ``[B, K, P]``; normalised units are halved so that 1.0 = the image width."""
    sc = grid.new_tensor([0.5, 0.5 * aspect])
    d = (grid[:, None, :, :] - pts[:, :, None, :]) * sc
    return (d * d).sum(-1)


def gaussian_heatmaps(pts: torch.Tensor, grid: torch.Tensor, sigma: float, aspect: float,
                      groups: torch.Tensor | None = None, num_groups: int = 0) -> torch.Tensor:
    """Heatmaps ``[B, G, h, w]`` (max over each group's keypoints; one map per point without groups) of
    ``pts [B, K, 2]`` on ``grid [B or 1, h, w, 2]``."""
    B = pts.shape[0]
    gb, h, w = grid.shape[0], grid.shape[1], grid.shape[2]
    g = torch.exp(-_sqdist(grid.reshape(gb, h * w, 2), pts, aspect) / (2 * sigma * sigma))  # [B, K, P]
    if groups is None:
        return g.reshape(B, -1, h, w)
    maps = [g[:, groups == k].amax(1) if bool((groups == k).any()) else g.new_zeros(B, h * w)
            for k in range(num_groups)]
    return torch.stack(maps, 1).reshape(B, num_groups, h, w)


def fit_affine(src: torch.Tensor, dst: torch.Tensor, reg: float = 1e-4) -> torch.Tensor:
    """Least-squares 2D affine ``[B, 3, 2]`` with ``dst ~ [src, 1] @ A`` for ``[B, K, 2]`` point sets."""
    X = torch.cat([src, torch.ones_like(src[..., :1])], -1)
    XtX = X.transpose(1, 2) @ X + reg * torch.eye(3, device=src.device, dtype=src.dtype)
    return torch.linalg.solve(XtX, X.transpose(1, 2) @ dst)


def apply_affine(pts: torch.Tensor, A: torch.Tensor) -> torch.Tensor:
    """``pts [B, N, 2]`` (or ``[B, h, w, 2]``) through ``A [B, 3, 2]``."""
    shp = pts.shape
    p = pts.reshape(shp[0], -1, 2)
    return (torch.cat([p, torch.ones_like(p[..., :1])], -1) @ A).reshape(shp)


def resize_flow(flow: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Bilinear resize of a normalised backward flow ``[B, h0, w0, 2]`` -> ``[B, h, w, 2]``."""
    if flow.shape[1:3] == (h, w):
        return flow
    return F.interpolate(flow.permute(0, 3, 1, 2), size=(h, w), mode="bilinear",
                         align_corners=False).permute(0, 2, 3, 1)


def warp(x: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Backward warp ``x [B, C, H, W]`` with ``flow [B, h, w, 2]`` (resized to ``H x W``)."""
    f = resize_flow(flow, x.shape[2], x.shape[3])
    return F.grid_sample(x, f, mode="bilinear", padding_mode="border", align_corners=False)


def _area(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    if x.shape[2:] == (h, w):
        return x
    return F.interpolate(x, size=(h, w), mode="area") if x.shape[2] >= h else \
        F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)


# --------------------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------------------
def _norm(c: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(8, c), c)


class ConvBlock(nn.Sequential):
    """3x3 conv (optionally strided) + GroupNorm + SiLU."""

    def __init__(self, cin: int, cout: int, stride: int = 1, k: int = 3) -> None:
        super().__init__(nn.Conv2d(cin, cout, k, stride, k // 2), _norm(cout), nn.SiLU())


class ResBlock(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(c, c, 3, 1, 1), _norm(c), nn.SiLU(), nn.Conv2d(c, c, 3, 1, 1), _norm(c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.silu(x + self.body(x))


class Hourglass(nn.Module):
    """U-Net: ``cin`` -> widths ``ch`` at 1, 1/2, 1/4 ... -> ``ch[0]`` features at the input size.
    ``film``: optional ``[B, 2 * ch[-1]]`` scale/shift applied at the bottleneck."""

    def __init__(self, cin: int, ch: tuple[int, ...]) -> None:
        super().__init__()
        self.inp = ConvBlock(cin, ch[0])
        self.down = nn.ModuleList(ConvBlock(a, b, stride=2) for a, b in zip(ch[:-1], ch[1:]))
        self.mid = ResBlock(ch[-1])
        self.up = nn.ModuleList(ConvBlock(b + a, a) for a, b in zip(ch[:-1], ch[1:]))

    def forward(self, x: torch.Tensor, film: torch.Tensor | None = None) -> torch.Tensor:
        skips = [self.inp(x)]
        for d in self.down:
            skips.append(d(skips[-1]))
        y = self.mid(skips.pop())
        if film is not None:
            s, b = film.chunk(2, 1)
            y = y * (1 + s[..., None, None]) + b[..., None, None]
        for up in reversed(self.up):
            s = skips.pop()
            y = F.interpolate(y, size=s.shape[2:], mode="bilinear", align_corners=False)
            y = up(torch.cat([y, s], 1))
        return y


# --------------------------------------------------------------------------------------------------
# Networks
# --------------------------------------------------------------------------------------------------
class ImplicitKeypointDetector(nn.Module):
    """Source image at ``motion_size`` -> ``[B, N, 2]`` normalised implicit keypoints (soft-argmax)."""

    def __init__(self, cfg: NeuralConfig) -> None:
        super().__init__()
        c = cfg.motion_channels
        self.net = nn.Sequential(ConvBlock(3, c[0] // 2, stride=2), ConvBlock(c[0] // 2, c[0]),
                                 ConvBlock(c[0], c[1], stride=2), ConvBlock(c[1], c[1]))
        self.head = nn.Conv2d(c[1], cfg.num_implicit, 3, 1, 1)
        self.temperature = 0.1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hm = self.head(self.net(x))
        B, N, h, w = hm.shape
        p = torch.softmax(hm.reshape(B, N, -1) / self.temperature, -1)
        grid = pixel_grid(h, w, x.device, x.dtype).reshape(1, 1, -1, 2)
        return (p[..., None] * grid).sum(2)


class ImplicitOffsets(nn.Module):
    """Driving-frame offsets of the implicit keypoints ``[B, N, 2]`` (units of the source face size) from the
    explicit keypoints' residual after their affine fit ``[B, K, 2]`` and the source implicit keypoints."""

    def __init__(self, cfg: NeuralConfig, hidden: int = 256) -> None:
        super().__init__()
        n_in = 2 * cfg.num_keypoints + 2 * cfg.num_implicit + 6
        self.net = nn.Sequential(nn.Linear(n_in, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                                 nn.Linear(hidden, 2 * cfg.num_implicit))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, residual: torch.Tensor, implicit_rel: torch.Tensor, affine: torch.Tensor) -> torch.Tensor:
        eye = affine.new_tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
        x = torch.cat([residual.flatten(1), implicit_rel.flatten(1), (affine - eye).flatten(1)], 1)
        return 0.5 * torch.tanh(self.net(x)).reshape(len(x), -1, 2)


class DenseMotion(nn.Module):
    """Proposals + deformed sources + heatmaps -> ``(flow [B, h, w, 2], occlusion [B, 1, h, w],
    masks [B, P, h, w])`` at ``motion_size``."""

    def __init__(self, cfg: NeuralConfig) -> None:
        super().__init__()
        self.num_proposals = 3 + cfg.num_implicit
        cin = 3 * self.num_proposals + 2 * cfg.num_groups + cfg.num_implicit
        self.hourglass = Hourglass(cin, cfg.motion_channels)
        self.out = nn.Conv2d(cfg.motion_channels[0], self.num_proposals + 1 + 2, 3, 1, 1)
        self.max_residual = cfg.max_residual_flow
        with torch.no_grad():  # start from "follow the RBF proposal, nothing occluded"
            self.out.weight.mul_(0.1)
            self.out.bias.zero_()
            self.out.bias[2] = 3.0
            self.out.bias[self.num_proposals] = 3.0

    def forward(self, deformed: torch.Tensor, heatmaps: torch.Tensor, proposals: torch.Tensor):
        y = self.out(self.hourglass(torch.cat([deformed, heatmaps], 1)))
        P = self.num_proposals
        masks = torch.softmax(y[:, :P], 1)  # [B, P, h, w]
        occlusion = torch.sigmoid(y[:, P:P + 1])
        residual = self.max_residual * torch.tanh(y[:, P + 1:P + 3]).permute(0, 2, 3, 1)
        flow = (masks[..., None] * proposals).sum(1) + residual
        return flow, occlusion, masks


class AppearanceEncoder(nn.Module):
    """Source at ``internal_size`` -> features at 1, 1/2, 1/4, 1/8 scale."""

    def __init__(self, cfg: NeuralConfig) -> None:
        super().__init__()
        c = cfg.encoder_channels
        self.inp = nn.Sequential(nn.Conv2d(3, c[0], 7, 1, 3), _norm(c[0]), nn.SiLU())
        self.down = nn.ModuleList(nn.Sequential(ConvBlock(a, b, stride=2), ConvBlock(b, b)) for a, b in zip(c[:-1], c[1:]))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = [self.inp(x)]
        for d in self.down:
            feats.append(d(feats[-1]))
        return feats


class Decoder(nn.Module):
    """Warped features + hand control images -> ``[B, 4, h, w]`` (RGB logits, blend-mask logit)."""

    def __init__(self, cfg: NeuralConfig) -> None:
        super().__init__()
        c, hc = cfg.encoder_channels, cfg.hand_channels
        self.mid = nn.Sequential(ConvBlock(c[-1] + hc, c[-1]), ResBlock(c[-1]), ResBlock(c[-1]))
        self.up = nn.ModuleList(ConvBlock(c[i + 1] + c[i] + hc, c[i]) for i in range(len(c) - 1))
        self.out = nn.Conv2d(c[0], 4, 3, 1, 1)
        with torch.no_grad():  # the hand channels start with no effect (they learn only from frames with hands)
            for conv in [self.mid[0][0]] + [u[0] for u in self.up]:
                conv.weight[:, -hc:] = 0.0
            self.out.bias[3] = 3.0  # start by showing the warped source (blend mask ~0.95)

    def forward(self, feats: list[torch.Tensor], hands: torch.Tensor) -> torch.Tensor:
        def hand_at(f):
            return _area(hands, f.shape[2], f.shape[3])
        y = self.mid(torch.cat([feats[-1], hand_at(feats[-1])], 1))
        for i in range(len(feats) - 2, -1, -1):
            f = feats[i]
            y = F.interpolate(y, size=f.shape[2:], mode="bilinear", align_corners=False)
            y = self.up[i](torch.cat([y, f, hand_at(f)], 1))
        return self.out(y)


class FaceRefiner(nn.Module):
    """Face crop + driving heatmaps (crop coordinates), FiLM on implicit offsets -> RGB residual + mask."""

    def __init__(self, cfg: NeuralConfig) -> None:
        super().__init__()
        c = cfg.face_channels
        self.hourglass = Hourglass(3 + cfg.num_groups, c)
        self.film = nn.Sequential(nn.Linear(2 * cfg.num_implicit, 128), nn.SiLU(), nn.Linear(128, 2 * c[-1]))
        nn.init.zeros_(self.film[-1].weight)
        nn.init.zeros_(self.film[-1].bias)
        self.out = nn.Conv2d(c[0], 4, 3, 1, 1)
        with torch.no_grad():
            self.out.weight.mul_(0.1)
            self.out.bias.zero_()
            self.out.bias[3] = -2.0

    def forward(self, crop: torch.Tensor, heat: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        y = self.out(self.hourglass(torch.cat([crop * 2 - 1, heat], 1), self.film(offsets.flatten(1))))
        return torch.sigmoid(y[:, 3:4]) * torch.tanh(y[:, :3])  # masked residual [B, 3, s, s]


# --------------------------------------------------------------------------------------------------
# The generator
# --------------------------------------------------------------------------------------------------
@dataclass
class SourceState:
    """What the generator keeps of a source image (computed once per portrait at render time).

    Attributes: image ``[B, 3, H, W]`` (output size, [0, 1]); small ``[B, 3, h, w]`` at ``motion_size``;
    keypoints ``[B, K, 2]`` normalised; implicit ``[B, N, 2]`` normalised; features: encoder outputs;
    heatmaps ``[B, G, h, w]`` of the explicit keypoints at ``motion_size``; centre ``[B, 1, 2]`` and scale
    ``[B, 1, 1]`` (width units) of the keypoints.
    """

    image: torch.Tensor
    small: torch.Tensor
    keypoints: torch.Tensor
    implicit: torch.Tensor
    features: list[torch.Tensor]
    heatmaps: torch.Tensor
    centre: torch.Tensor
    scale: torch.Tensor

    def expand(self, B: int) -> "SourceState":
        if self.image.shape[0] == B:
            return self
        ex = lambda t: t.expand(B, *t.shape[1:])  # noqa: E731
        return SourceState(ex(self.image), ex(self.small), ex(self.keypoints), ex(self.implicit),
                           [ex(f) for f in self.features], ex(self.heatmaps), ex(self.centre), ex(self.scale))


@dataclass
class GeneratorOutput:
    """Outputs of :meth:`HybridGenerator.forward` (``B`` frames at the output size ``H x W``).

    Attributes:
        image: ``[B, 3, H, W]`` final frames in [0, 1].
        composed: ``[B, 3, H, W]`` before the face refine.
        coarse: ``[B, 3, h, w]`` decoded RGB at ``internal_size``.
        flow: ``[B, h, w, 2]`` backward flow at ``motion_size`` (normalised coordinates).
        occlusion: ``[B, 1, h, w]`` at ``motion_size``.
        face_grid: ``[B, s, s, 2]`` the face crop's sampling grid (normalised image coordinates).
        implicit_source, implicit_driving: ``[B, N, 2]`` normalised implicit keypoints.
    """

    image: torch.Tensor
    composed: torch.Tensor
    coarse: torch.Tensor
    flow: torch.Tensor
    occlusion: torch.Tensor
    face_grid: torch.Tensor
    implicit_source: torch.Tensor
    implicit_driving: torch.Tensor


class HybridGenerator(nn.Module):
    """Source portrait + explicit keypoints (source, driving) + hand control images -> frame (module docstring).

    Args:
        config: :class:`NeuralConfig`.
        groups: ``[K]`` int facial region of each explicit keypoint (:func:`keypoint_groups`).
    """

    def __init__(self, config: NeuralConfig, groups: np.ndarray | torch.Tensor) -> None:
        super().__init__()
        self.config = config
        g = torch.as_tensor(np.asarray(groups), dtype=torch.long)
        if g.shape != (config.num_keypoints,):
            raise ValueError(f"groups must have shape ({config.num_keypoints},), got {tuple(g.shape)}")
        self.register_buffer("groups", g)
        self.detector = ImplicitKeypointDetector(config)
        self.offsets = ImplicitOffsets(config)
        self.motion = DenseMotion(config)
        self.encoder = AppearanceEncoder(config)
        self.decoder = Decoder(config)
        self.face = FaceRefiner(config)

    # -- source -------------------------------------------------------------------------------------
    def encode_source(self, image: torch.Tensor, keypoints_px: torch.Tensor) -> SourceState:
        """``image [B, 3, H, W]`` in [0, 1] (output size), ``keypoints_px [B, K, 2]`` pixels -> SourceState."""
        cfg = self.config
        H, W = image.shape[2:]
        aspect = H / W
        (mw, mh), (iw, ih) = cfg.motion_size, cfg.internal_size
        small = _area(image, mh, mw)
        kp = to_normalized(keypoints_px.to(image.dtype), (W, H))
        grid = pixel_grid(mh, mw, image.device, image.dtype)[None]
        heat = gaussian_heatmaps(kp, grid, cfg.heatmap_sigma, aspect, self.groups, cfg.num_groups)
        feats = self.encoder(_area(image, ih, iw) * 2 - 1)
        implicit = self.detector(small * 2 - 1)
        centre = kp.mean(1, keepdim=True)
        d = (kp - centre) * kp.new_tensor([0.5, 0.5 * aspect])
        scale = d.norm(dim=-1).mean(1, keepdim=True)[..., None].clamp_min(1e-3)
        return SourceState(image, small, kp, implicit, feats, heat, centre, scale)

    # -- one batch of driving frames ----------------------------------------------------------------
    def forward(self, source: SourceState, driving_px: torch.Tensor, hands: torch.Tensor) -> GeneratorOutput:
        """``driving_px [B, K, 2]`` pixels, ``hands [B, 2, H, W]`` in [0, 1] -> :class:`GeneratorOutput`."""
        cfg = self.config
        B = driving_px.shape[0]
        src = source.expand(B)
        H, W = src.image.shape[2:]
        aspect = H / W
        sc = src.image.new_tensor([0.5, 0.5 * aspect])
        mw, mh = cfg.motion_size
        drv = to_normalized(driving_px.to(src.image.dtype), (W, H))
        grid = pixel_grid(mh, mw, drv.device, drv.dtype)[None]  # [1, h, w, 2]
        # implicit keypoints: affine of the explicit keypoints + learned offsets
        A_sd = fit_affine(src.keypoints, drv)
        A_ds = fit_affine(drv, src.keypoints)
        residual = (drv - apply_affine(src.keypoints, A_sd)) * sc / src.scale
        rel = (src.implicit - src.centre) * sc / src.scale
        off = self.offsets(residual, rel, A_sd)  # face-size units
        imp_drv = apply_affine(src.implicit, A_sd) + off * src.scale / sc
        # flow proposals (backward: driving pixel -> source position)
        P_id = grid.expand(B, -1, -1, -1)
        P_aff = apply_affine(P_id, A_ds)
        w = torch.exp(-_sqdist(grid.reshape(1, -1, 2), drv, aspect) / (2 * cfg.rbf_sigma ** 2))  # [B, K, P]
        num = torch.einsum("bkp,bkc->bpc", w, src.keypoints - drv)
        P_rbf = P_id + (num / (w.sum(1)[..., None] + 0.05)).reshape(B, mh, mw, 2)
        P_imp = P_id[:, None] + (src.implicit - imp_drv)[:, :, None, None, :]
        proposals = torch.cat([P_id[:, None], P_aff[:, None], P_rbf[:, None], P_imp], 1)  # [B, P, h, w, 2]
        Pn = proposals.shape[1]
        deformed = F.grid_sample(src.small.repeat_interleave(Pn, 0) * 2 - 1, proposals.reshape(B * Pn, mh, mw, 2),
                                 mode="bilinear", padding_mode="border", align_corners=False).reshape(B, Pn * 3, mh, mw)
        heat_d = gaussian_heatmaps(drv, grid, cfg.heatmap_sigma, aspect, self.groups, cfg.num_groups)
        heat_i = (gaussian_heatmaps(imp_drv, grid, 2 * cfg.heatmap_sigma, aspect)
                  - gaussian_heatmaps(src.implicit, grid, 2 * cfg.heatmap_sigma, aspect))
        flow, occ, _ = self.motion(deformed, torch.cat([heat_d, heat_d - src.heatmaps, heat_i], 1), proposals)
        # appearance: warp features, decode with the hand control images
        feats = [warp(f, flow) * _area(occ, f.shape[2], f.shape[3]) for f in src.features]
        dec = self.decoder(feats, hands.to(drv.dtype))
        coarse = torch.sigmoid(dec[:, :3])
        # compose at the output size: sharp warped source where the blend mask says so
        up = lambda t: F.interpolate(t, size=(H, W), mode="bilinear", align_corners=False)  # noqa: E731
        blend = torch.sigmoid(up(dec[:, 3:4]))
        composed = blend * warp(src.image, flow) + (1 - blend) * up(coarse)
        # face refine on a square crop around the driving keypoints
        fgrid = self.face_grid(drv, aspect)
        crop = F.grid_sample(composed, fgrid, mode="bilinear", padding_mode="border", align_corners=False)
        heat_f = gaussian_heatmaps(drv, fgrid, cfg.heatmap_sigma, aspect, self.groups, cfg.num_groups)
        delta = self.face(crop, heat_f, off)
        image = (composed + self.paste(delta, fgrid, H, W)).clamp(0, 1)
        return GeneratorOutput(image, composed, coarse, flow, occ, fgrid, src.implicit, imp_drv)

    def face_box(self, drv: torch.Tensor, aspect: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Centre ``[B, 2]`` and half extents ``[B, 2]`` (normalised) of the square face box."""
        lo, hi = drv.amin(1), drv.amax(1)
        c = (lo + hi) / 2
        ext = torch.maximum(hi[:, 0] - lo[:, 0], (hi[:, 1] - lo[:, 1]) * aspect)  # in x-normalised units
        half = 0.5 * self.config.face_margin * ext.clamp_min(0.05)
        return c, torch.stack([half, half / aspect], 1)

    def face_grid(self, drv: torch.Tensor, aspect: float) -> torch.Tensor:
        """The face crop's sampling grid ``[B, s, s, 2]`` (normalised image coordinates)."""
        s = self.config.face_size
        c, half = self.face_box(drv, aspect)
        u = pixel_grid(s, s, drv.device, drv.dtype)[None]
        return c[:, None, None] + u * half[:, None, None]

    @staticmethod
    def paste(delta: torch.Tensor, fgrid: torch.Tensor, H: int, W: int) -> torch.Tensor:
        """Crop-space ``delta [B, C, s, s]`` -> image-space ``[B, C, H, W]`` (zero outside the crop)."""
        c = (fgrid[:, 0, 0] + fgrid[:, -1, -1]) / 2
        s = delta.shape[-1]
        half = (fgrid[:, -1, -1] - fgrid[:, 0, 0]) / 2 * s / (s - 1)  # pixel-centre grid -> box half extent
        g = pixel_grid(H, W, delta.device, delta.dtype)[None]
        u = (g - c[:, None, None]) / half[:, None, None]
        return F.grid_sample(delta, u, mode="bilinear", padding_mode="zeros", align_corners=False)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# --------------------------------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------------------------------
def save_checkpoint(path: str | os.PathLike, model: HybridGenerator, landmark_ids: np.ndarray,
                    info: dict[str, Any] | None = None, extra: dict[str, torch.Tensor] | None = None) -> Path:
    """Write the weights (float32) + metadata to a ``.safetensors`` file (atomically).

    Args:
        landmark_ids: ``[K]`` MediaPipe landmark ids of the explicit keypoints, in the model's order.
        info: JSON-able training information (data, steps, losses). extra: more tensors (training state),
            stored under their own names (must not start with ``model.``).
    """
    from safetensors.torch import save_file

    from motion.fileio import atomic_output

    tensors = {f"model.{k}": v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    for k, v in (extra or {}).items():
        if k.startswith("model."):
            raise ValueError(f"extra tensor name {k!r} clashes with the model's")
        tensors[k] = v.detach().to("cpu").contiguous()
    meta = {"format": FORMAT, "version": str(FORMAT_VERSION), "config": json.dumps(asdict(model.config)),
            "landmark_ids": json.dumps([int(i) for i in landmark_ids]), "info": json.dumps(info or {})}
    p = Path(path)
    with atomic_output(p) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    return p


@dataclass
class LoadedGenerator:
    """A checkpoint's model (eval mode), landmark ids ``[K]``, training info and extra tensors."""

    model: HybridGenerator
    landmark_ids: np.ndarray
    info: dict[str, Any]
    extra: dict[str, torch.Tensor] = field(default_factory=dict)


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu") -> LoadedGenerator:
    """Load a :func:`save_checkpoint` file.

    Raises:
        NeuralCheckpointError: missing file, not a safetensors file, another format/version, or weights that
            do not match the stored configuration.
    """
    from safetensors import SafetensorError, safe_open

    p = Path(path)
    if not p.is_file():
        raise NeuralCheckpointError(f"neural generator checkpoint {p} not found")
    try:
        with safe_open(str(p), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as e:
        raise NeuralCheckpointError(f"{p} is not a readable safetensors file ({str(e)[:100]})") from None
    if meta.get("format") != FORMAT:
        raise NeuralCheckpointError(f"{p} is not a neural generator checkpoint (format {meta.get('format')!r})")
    if meta.get("version") != str(FORMAT_VERSION):
        raise NeuralCheckpointError(f"{p} has checkpoint version {meta.get('version')}, this code reads {FORMAT_VERSION}")
    try:
        cfg = NeuralConfig.from_dict(json.loads(meta["config"]))
        ids = np.asarray(json.loads(meta["landmark_ids"]), np.int64)
        info = json.loads(meta.get("info", "{}"))
        state = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
        model = HybridGenerator(cfg, state["groups"].numpy())
        model.load_state_dict(state, strict=True)
    except (KeyError, ValueError, RuntimeError, TypeError) as e:
        raise NeuralCheckpointError(f"{p} does not match this generator: {str(e).splitlines()[0][:160]}") from None
    model.to(device).eval()
    extra = {k: v for k, v in tensors.items() if not k.startswith("model.")}
    return LoadedGenerator(model, ids, info, extra)


def auto_device(device: str | None = None) -> torch.device:
    """``device`` if given, else CUDA when available, else CPU."""
    if device and device != "auto":
        if str(device).startswith("cuda") and not torch.cuda.is_available():
            raise ChatAnyoneError(f"device {device!r} requested, but CUDA is not available here (use --device cpu)")
        try:
            return torch.device(device)
        except RuntimeError:
            raise ChatAnyoneError(f"unknown device {device!r} (use auto, cpu or cuda)") from None
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


# --------------------------------------------------------------------------------------------------
# Inference wrapper
# --------------------------------------------------------------------------------------------------
def image_to_tensor(img: np.ndarray, device=None) -> torch.Tensor:
    """``[H, W, 3]`` uint8 -> ``[1, 3, H, W]`` float32 in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(img)).to(device).permute(2, 0, 1)[None].float() / 255.0


def tensor_to_images(x: torch.Tensor) -> np.ndarray:
    """``[B, 3, H, W]`` in [0, 1] -> ``[B, H, W, 3]`` uint8."""
    return (x.clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


class NeuralEngine:
    """Portrait + motion -> frames with a trained :class:`HybridGenerator` (render's ``neural`` engine).

    Args:
        portrait: :class:`generator.driving.Portrait` (output size).
        keypoint_model: the facial keypoint model; its landmark ids must equal the checkpoint's.
        checkpoint: path of a :func:`save_checkpoint` file.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``.
        batch_size: frames per forward pass.
    Raises:
        NeuralCheckpointError: unreadable checkpoint or keypoints that do not match.
    """

    def __init__(self, portrait, keypoint_model, checkpoint: str | os.PathLike, device: str | None = "auto",
                 batch_size: int = 8) -> None:
        from .driving import KeypointDriver
        from .hands import HandControl

        self.device = auto_device(device)
        loaded = load_checkpoint(checkpoint, self.device)
        if not np.array_equal(loaded.landmark_ids, keypoint_model.indices):
            raise NeuralCheckpointError(f"{checkpoint} was trained on other facial keypoints than the installed "
                                        "keypoint model's (refit mismatch); retrain the generator")
        self.model = loaded.model
        self.info = loaded.info
        self.portrait = portrait
        H, W = portrait.image.shape[:2]
        self.size = (W, H)
        self.driver = KeypointDriver(keypoint_model, portrait.face)
        self.hands = HandControl(portrait.face, self.size)
        self.batch_size = batch_size
        with torch.inference_mode():
            img = image_to_tensor(portrait.image, self.device)
            kp = torch.as_tensor(self.driver.src2, dtype=torch.float32, device=self.device)[None]
            self.source = self.model.encode_source(img, kp)

    @torch.inference_mode()
    def render_batch(self, points: np.ndarray, hands: np.ndarray) -> np.ndarray:
        """``points [B, K, 2]`` driving pixels, ``hands [B, 2, H, W]`` uint8 -> ``[B, H, W, 3]`` uint8."""
        kp = torch.as_tensor(np.asarray(points, np.float32), device=self.device)
        hm = torch.as_tensor(np.asarray(hands), device=self.device).float() / 255.0
        return tensor_to_images(self.model(self.source, kp, hm).image)

    def frames(self, face: np.ndarray, head: np.ndarray, rotations: np.ndarray | None = None) -> Iterator[np.ndarray]:
        """Frames ``[H, W, 3]`` uint8 for ``face [T, 52]``, head rotation deltas ``head [T, 3, 3]`` and
        skeleton ``rotations [T, 55, 4]`` (hands; None: no hands drawn)."""
        drive = self.driver(face, head)
        T = len(face)
        for t0 in range(0, T, self.batch_size):
            t1 = min(T, t0 + self.batch_size)
            if rotations is None:
                hm = np.zeros((t1 - t0, 2, self.size[1], self.size[0]), np.uint8)
            else:
                hm = self.hands.maps(rotations[t0:t1])
            yield from self.render_batch(drive.points[t0:t1], hm)


__all__ = ["NeuralConfig", "HybridGenerator", "GeneratorOutput", "SourceState", "NeuralEngine", "LoadedGenerator",
           "NeuralCheckpointError", "save_checkpoint", "load_checkpoint", "keypoint_groups", "auto_device",
           "count_parameters", "FORMAT", "FORMAT_VERSION"]
