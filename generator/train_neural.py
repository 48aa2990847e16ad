"""Training of the neural engine (:mod:`generator.neural`) by self-reenactment on talking videos.

``chatanyone train-generator configs/generator.toml [--install]`` (or ``python -m generator.train_neural``).

Data (:class:`VideoFrames`): the talking videos of ``../shared/data/videos`` (the ones ``chatanyone prepare``
turned into training clips). Each video's face track (MediaPipe FaceLandmarker: 478 landmarks, ARKit
blendshapes, head rotation; the first ``max_frames`` frames, cached by :func:`generator.face_keypoints.
load_or_track` in ``track_cache``, the same cache the keypoint model's fit uses) and its frames, decoded again
with PyAV, cropped to the render framing (the largest 2:3 box around the clip's mean face centre,
:func:`generator.driving.crop_box`) and scaled to ``train_size`` (cached as ``.npz`` in ``frame_cache``). The
prepared clip of the video (``prepared_dir``, matched by its ``meta["source"]``) gives the hand joints; a hand
is drawn only in frames where the tracker saw it (``joint_valid``) -- none of these head-and-shoulders
videos shows a hand, so the hand path of the decoder is trained with empty maps only.

A sample: source frame and driving frame from the same clip's training part; the target is the driving
frame. Driving keypoints: with probability ``model_driving_prob`` as ``render`` makes them (the keypoint model
applied to the driving frame's blendshapes and head rotation relative to the source,
:class:`generator.driving.KeypointDriver`, plus the tracked 2D head translation, which a MotionClip does not
carry), otherwise the driving frame's tracked landmarks.

Held out (never trained on): whole clips named in ``holdout_clips`` and the last ``holdout_tail`` of every
clip; :func:`evaluate` reports PSNR/SSIM on held-out pairs next to the copy-the-source baseline.

Losses (no downloaded weights): multi-scale L1 + (1 - SSIM) on the frame (3 scales), the same on the face
crop (``face_weight``), L1 of the decoder's coarse RGB (``coarse_weight``), and optionally (``gan_weight`` > 0)
a hinge-loss patch discriminator trained alongside, with feature matching (``feature_matching_weight``).

Checkpoints (safetensors): ``OUT_DIR/last.safetensors`` (weights + Adam state + step: training resumes from
it) every ``checkpoint_minutes`` and at the end, and ``OUT_DIR/neural.safetensors`` (weights only, the file
render uses). ``--install`` copies the latter to ``generator/checkpoints/`` when it is under
:data:`MAX_INSTALL_BYTES`. Time cap: ``max_minutes`` (wall clock, checked every step).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from motion.errors import ChatAnyoneError

from .neural import (HybridGenerator, NeuralConfig, auto_device, count_parameters, keypoint_groups, load_checkpoint,
                     save_checkpoint)

REPO = Path(__file__).resolve().parents[1]
MAX_INSTALL_BYTES = 15 * 1024 * 1024


class TrainGeneratorError(ChatAnyoneError):
    """The generator cannot be trained with this config / data."""


@dataclass
class TrainGeneratorConfig:
    """One training run of the neural generator (a TOML file; every field has a default; ``[model]`` is a
    :class:`~generator.neural.NeuralConfig` table). Paths are relative to the repository root."""

    name: str = "neural"
    videos: list[str] = field(default_factory=lambda: ["../shared/data/videos"])
    exclude: list[str] = field(default_factory=list)
    prepared_dir: str = "runs/prepared"
    track_cache: str = "runs/face_keypoints_cache"
    frame_cache: str = "runs/neural_frames"
    max_frames: int = 400
    holdout_clips: list[str] = field(default_factory=lambda: ["WDA_KatieHill_000"])
    holdout_tail: float = 0.2
    train_size: tuple[int, int] = (256, 384)
    batch_size: int = 8
    lr: float = 2e-4
    max_steps: int = 100000
    max_minutes: float = 30.0
    model_driving_prob: float = 0.5
    l1_weight: float = 1.0
    ssim_weight: float = 1.0
    face_weight: float = 1.0
    coarse_weight: float = 0.5
    gan_weight: float = 0.0
    feature_matching_weight: float = 0.0
    checkpoint_minutes: float = 5.0
    eval_pairs: int = 48
    seed: int = 0
    device: str = "auto"
    threads: int = 0
    out_dir: str = "runs/neural"
    model: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "TrainGeneratorConfig":
        """Read a TOML config.

        Raises:
            TrainGeneratorError: missing file, TOML syntax error, unknown option or bad value.
        """
        p = Path(path)
        if not p.is_file():
            raise TrainGeneratorError(f"config {p} not found")
        try:
            with open(p, "rb") as f:
                d = tomllib.load(f)
            names = {f.name for f in cls.__dataclass_fields__.values()}
            bad = set(d) - names
            if bad:
                raise TrainGeneratorError(f"config {p}: unknown option(s) {', '.join(sorted(bad))}")
            if "train_size" in d:
                d["train_size"] = tuple(d["train_size"])
            cfg = cls(**d)
            cfg.model_config()
        except tomllib.TOMLDecodeError as e:
            raise TrainGeneratorError(f"config {p}: {e}") from None
        except (KeyError, TypeError) as e:
            raise TrainGeneratorError(f"config {p}: {e}") from None
        return cfg

    def model_config(self) -> NeuralConfig:
        return NeuralConfig.from_dict(self.model)

    def path(self, p: str) -> Path:
        q = Path(p)
        return q if q.is_absolute() else REPO / q


# --------------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------------
@dataclass
class VideoClip:
    """One video's frames in the render framing at the training size.

    Attributes:
        name: video stem. frames ``[N, H, W, 3]`` uint8. landmarks ``[N, 478, 3]`` float32 pixels of the
        frames (z scaled like x). blendshapes ``[N, 52]``. head ``[N, 3, 3]``. ok ``[N]`` bool.
        hands ``[N, 2, 21, 2]`` float32 projected hand points or None; hands_valid ``[N, 2]`` bool.
        train ``[n]`` / held ``[m]`` int frame indices (valid frames only).
    """

    name: str
    frames: np.ndarray
    landmarks: np.ndarray
    blendshapes: np.ndarray
    head: np.ndarray
    ok: np.ndarray
    hands_valid: np.ndarray
    hand_rotations: np.ndarray | None
    train: np.ndarray
    held: np.ndarray


def video_files(inputs: list[str | os.PathLike], exclude: list[str] = ()) -> list[Path]:
    """:func:`motion.tracking.video_files`, its error as a :class:`TrainGeneratorError`."""
    from motion.tracking import TrackingError
    from motion.tracking import video_files as find
    try:
        return find(inputs, exclude)
    except TrackingError as e:
        raise TrainGeneratorError(str(e)) from None


def _prepared_for(video: Path, prepared_dir: Path) -> Path | None:
    """The prepared clip whose ``meta["source"]`` is this video (``chatanyone prepare`` output)."""
    if not prepared_dir.is_dir():
        return None
    want = f"{video.parent.name}__"
    for npz in sorted(prepared_dir.glob(f"{want}*.npz")):
        try:
            with np.load(npz, allow_pickle=False) as z:
                meta = json.loads(str(z["meta"]))
        except (OSError, KeyError, ValueError):
            continue
        src = meta.get("source", "")
        if Path(src).name == video.name and Path(src).parent.name == video.parent.name:
            return npz
    return None


def _decode_crop(video: Path, frame_index: np.ndarray, box: tuple[int, int, int, int], size: tuple[int, int]
                 ) -> np.ndarray:
    import cv2

    from .face_keypoints import iter_video_frames

    want = {int(k): i for i, k in enumerate(frame_index)}
    out = np.zeros((len(frame_index), size[1], size[0], 3), np.uint8)
    x0, y0, w, h = box
    last = int(frame_index.max())
    for k, _, img in iter_video_frames(video):
        if k in want:
            crop = img[y0:y0 + h, x0:x0 + w]
            interp = cv2.INTER_AREA if w > size[0] else cv2.INTER_CUBIC
            out[want[k]] = cv2.resize(crop, size, interpolation=interp)
        if k >= last:
            break
    return out


def load_video_clip(video: Path, cfg: TrainGeneratorConfig, landmarker=None) -> VideoClip | None:
    """Track (cached), decode, crop and scale one video (module docstring); None when it has < 10 faces."""
    from motion.clip import MotionClip

    from .driving import crop_box
    from .face_keypoints import load_or_track

    W, H = cfg.train_size
    cache_dir = cfg.path(cfg.frame_cache)
    key = cache_dir / f"{video.parent.name}__{video.stem}__n{cfg.max_frames}_{W}x{H}.npz"
    tc = cfg.path(cfg.track_cache) if cfg.track_cache else None
    tr = load_or_track(video, tc, cfg.max_frames, 1)
    if tr.ok.sum() < 10:
        return None
    c = tr.landmarks[tr.ok][:, :, :2].mean((0, 1))
    box = crop_box(tr.size[0], tr.size[1], (float(c[0]), float(c[1])), W / H)
    s = W / box[2]
    if key.is_file():
        with np.load(key) as z:
            frames = z["frames"]
    else:
        from motion.fileio import atomic_output

        frames = _decode_crop(video, tr.frame_index, box, (W, H))
        cache_dir.mkdir(parents=True, exist_ok=True)
        with atomic_output(key) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, frames=frames)
    lm = tr.landmarks.copy()
    lm[..., 0] = (lm[..., 0] - box[0]) * s
    lm[..., 1] = (lm[..., 1] - box[1]) * s
    lm[..., 2] *= s
    # hands from the prepared clip (time-aligned by the video frame index and the source frame rate)
    N = len(tr.ok)
    hv = np.zeros((N, 2), bool)
    hrot = None
    pp = _prepared_for(video, cfg.path(cfg.prepared_dir))
    if pp is not None:
        from motion.conventions import JOINT_INDEX, LEFT_HAND_JOINTS, RIGHT_HAND_JOINTS

        clip = MotionClip.load(pp)
        with np.load(pp, allow_pickle=False) as z:
            jv = z["joint_valid"] if "joint_valid" in z.files else np.ones((clip.num_frames, 55), bool)
        src_fps = float(clip.meta.get("source_fps") or 30.0)
        t = np.clip(np.round(tr.frame_index / src_fps * clip.fps).astype(int), 0, clip.num_frames - 1)
        hv = np.stack([jv[t][:, list(LEFT_HAND_JOINTS) + [JOINT_INDEX["left_wrist"]]].all(1),
                       jv[t][:, list(RIGHT_HAND_JOINTS) + [JOINT_INDEX["right_wrist"]]].all(1)], 1)
        hrot = clip.rotations[t]
    ok_idx = np.flatnonzero(tr.ok)
    if video.stem in cfg.holdout_clips:
        train, held = ok_idx[:0], ok_idx
    else:
        cut = int(round(N * (1 - cfg.holdout_tail)))
        train, held = ok_idx[ok_idx < cut], ok_idx[ok_idx >= cut]
    return VideoClip(video.stem, frames, lm.astype(np.float32), tr.blendshapes, tr.head, tr.ok, hv, hrot, train, held)


class VideoFrames:
    """Self-reenactment pairs from a list of :class:`VideoClip` (module docstring).

    Args:
        clips: the clips. keypoint_model: the facial keypoint model. size: ``(W, H)`` of the frames.
        model_driving_prob: share of samples whose driving keypoints come from the keypoint model.
    """

    def __init__(self, clips: list[VideoClip], keypoint_model, size: tuple[int, int],
                 model_driving_prob: float = 0.5) -> None:
        self.clips = clips
        self.model = keypoint_model
        self.size = size
        self.p_model = model_driving_prob
        self.idx = keypoint_model.indices

    def driving_points(self, c: VideoClip, s: int, d: int, use_model: bool) -> np.ndarray:
        """Driving keypoints ``[K, 2]`` pixels of frame ``d`` for source frame ``s`` (module docstring)."""
        from .driving import KeypointDriver
        from .face_keypoints import RIGID_POINTS, FaceObservation

        if not use_model:
            return c.landmarks[d][self.idx, :2].astype(np.float32)
        obs = FaceObservation(c.landmarks[s], c.blendshapes[s], c.head[s])
        drv = KeypointDriver(self.model, obs)
        head = (c.head[d] @ c.head[s].T)[None]
        pts = drv(c.blendshapes[d][None], head).points[0]
        rig = self.model.local(RIGID_POINTS)
        shift = c.landmarks[d][list(RIGID_POINTS), :2].mean(0) - pts[rig].mean(0)
        return (pts + shift).astype(np.float32)

    def hand_maps(self, c: VideoClip, s: int, d: int) -> np.ndarray:
        """``[2, H, W]`` uint8 hand control images of frame ``d`` (camera fitted on the source frame)."""
        from .face_keypoints import FaceObservation
        from .hands import HandControl

        W, H = self.size
        if c.hand_rotations is None or not c.hands_valid[d].any():
            return np.zeros((2, H, W), np.uint8)
        hc = HandControl(FaceObservation(c.landmarks[s], c.blendshapes[s], c.head[s]), self.size)
        jv = np.ones((1, 55), bool)
        maps = hc.maps(c.hand_rotations[d][None], jv)[0]
        maps[~c.hands_valid[d]] = 0
        return maps

    def pair(self, c: VideoClip, s: int, d: int, use_model: bool) -> dict[str, np.ndarray]:
        return {"source": c.frames[s], "source_kp": c.landmarks[s][self.idx, :2].astype(np.float32),
                "driving_kp": self.driving_points(c, s, d, use_model), "hands": self.hand_maps(c, s, d),
                "target": c.frames[d]}

    def sample(self, rng: np.random.Generator, batch_size: int, split: str = "train") -> dict[str, torch.Tensor]:
        """A batch of pairs (source and driving frames of the same clip, both in ``split``)."""
        pools = [(c, getattr(c, split)) for c in self.clips if len(getattr(c, split)) >= 2]
        if not pools:
            raise TrainGeneratorError(f"no clip has two {split} frames")
        w = np.array([len(p) for _, p in pools], np.float64)
        items = []
        for _ in range(batch_size):
            c, pool = pools[rng.choice(len(pools), p=w / w.sum())]
            s, d = rng.choice(pool, 2, replace=False)
            items.append(self.pair(c, int(s), int(d), bool(rng.random() < self.p_model)))
        return collate(items)


def collate(items: list[dict[str, np.ndarray]]) -> dict[str, torch.Tensor]:
    """Stack pairs: images -> ``[B, 3, H, W]`` float in [0, 1], keypoints ``[B, K, 2]``, hands ``[B, 2, H, W]``."""
    img = lambda k: torch.from_numpy(np.stack([i[k] for i in items])).permute(0, 3, 1, 2).float() / 255.0  # noqa: E731
    return {"source": img("source"), "target": img("target"),
            "source_kp": torch.from_numpy(np.stack([i["source_kp"] for i in items])),
            "driving_kp": torch.from_numpy(np.stack([i["driving_kp"] for i in items])),
            "hands": torch.from_numpy(np.stack([i["hands"] for i in items])).float() / 255.0}


# --------------------------------------------------------------------------------------------------
# Losses
# --------------------------------------------------------------------------------------------------
def _gauss_window(device, dtype, size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, device=device, dtype=dtype) - size // 2
    g = torch.exp(-x * x / (2 * sigma * sigma))
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None]


def ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean SSIM of ``[B, C, H, W]`` images in [0, 1] (Wang et al. 2004: 11x11 Gaussian, sigma 1.5, K1 0.01,
    K2 0.03; per channel, reflect padding)."""
    C = a.shape[1]
    win = _gauss_window(a.device, a.dtype).expand(C, 1, -1, -1)
    pad = lambda x: F.pad(x, (5, 5, 5, 5), mode="reflect")  # noqa: E731
    f = lambda x: F.conv2d(pad(x), win, groups=C)  # noqa: E731
    mx, my = f(a), f(b)
    sxx, syy, sxy = f(a * a) - mx * mx, f(b * b) - my * my, f(a * b) - mx * my
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    m = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return m.mean()


def multiscale_loss(x: torch.Tensor, y: torch.Tensor, l1_w: float, ssim_w: float, scales: int = 3) -> torch.Tensor:
    loss = x.new_zeros(())
    for k in range(scales):
        if k:
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
        loss = loss + l1_w * (x - y).abs().mean() + (ssim_w * (1 - ssim(x, y)) if min(x.shape[2:]) >= 11 else 0.0)
    return loss / scales


class PatchDiscriminator(nn.Module):
    """A small PatchGAN (Isola et al. 2017) on images at half the training size; returns per-layer features."""

    def __init__(self, ch: tuple[int, ...] = (32, 64, 128)) -> None:
        super().__init__()
        layers, c = [], 3
        for i, o in enumerate(ch):
            layers.append(nn.Sequential(nn.Conv2d(c, o, 4, 2, 1), nn.LeakyReLU(0.2)))
            c = o
        self.layers = nn.ModuleList(layers)
        self.out = nn.Conv2d(c, 1, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        x = F.avg_pool2d(x * 2 - 1, 2)
        for layer in self.layers:
            x = layer(x)
            feats.append(x)
        feats.append(self.out(x))
        return feats


@dataclass
class StepLosses:
    total: float
    image: float
    face: float
    coarse: float
    gan: float = 0.0
    disc: float = 0.0


def generator_losses(model: HybridGenerator, batch: dict[str, torch.Tensor], cfg: TrainGeneratorConfig,
                     disc: PatchDiscriminator | None = None):
    """Forward one batch; returns ``(loss tensor, StepLosses, output)``."""
    src = model.encode_source(batch["source"], batch["source_kp"])
    out = model(src, batch["driving_kp"], batch["hands"])
    y = batch["target"]
    l_img = multiscale_loss(out.image, y, cfg.l1_weight, cfg.ssim_weight)
    crop = lambda t: F.grid_sample(t, out.face_grid, mode="bilinear", padding_mode="border", align_corners=False)  # noqa: E731
    l_face = multiscale_loss(crop(out.image), crop(y), cfg.l1_weight, cfg.ssim_weight, scales=2)
    yc = F.interpolate(y, size=out.coarse.shape[2:], mode="area")
    l_coarse = (out.coarse - yc).abs().mean()
    loss = l_img + cfg.face_weight * l_face + cfg.coarse_weight * l_coarse
    l_gan = torch.zeros(())
    if disc is not None and cfg.gan_weight > 0:
        fake = disc(out.image)
        l_gan = -fake[-1].mean()
        loss = loss + cfg.gan_weight * l_gan
        if cfg.feature_matching_weight > 0:
            with torch.no_grad():
                real = disc(y)
            fm = sum((f - r).abs().mean() for f, r in zip(fake[:-1], real[:-1])) / (len(fake) - 1)
            loss = loss + cfg.feature_matching_weight * fm
    f = lambda t: float(t.detach())  # noqa: E731
    return loss, StepLosses(f(loss), f(l_img), f(l_face), f(l_coarse), f(l_gan)), out


def discriminator_step(disc: PatchDiscriminator, opt: torch.optim.Optimizer, real: torch.Tensor,
                       fake: torch.Tensor) -> float:
    """One hinge-loss step of the discriminator."""
    loss = F.relu(1 - disc(real)[-1]).mean() + F.relu(1 + disc(fake.detach())[-1]).mean()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return float(loss.detach())


# --------------------------------------------------------------------------------------------------
# Training state (safetensors)
# --------------------------------------------------------------------------------------------------
def _optimizer_tensors(prefix: str, opt: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    sd = opt.state_dict()
    out = {}
    for i, st in sd["state"].items():
        for k, v in st.items():
            out[f"{prefix}.{i}.{k}"] = torch.as_tensor(v).clone()
    return out


def _load_optimizer(prefix: str, opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor]) -> None:
    sd = opt.state_dict()
    state: dict[int, dict[str, torch.Tensor]] = {}
    for k, v in tensors.items():
        if k.startswith(prefix + "."):
            _, i, name = k.split(".", 2)
            state.setdefault(int(i), {})[name] = v
    sd["state"] = state
    opt.load_state_dict(sd)


def build_model(cfg: TrainGeneratorConfig, keypoint_model) -> HybridGenerator:
    mc = cfg.model_config()
    if mc.num_keypoints != keypoint_model.num_keypoints:
        raise TrainGeneratorError(f"[model] num_keypoints = {mc.num_keypoints}, but the keypoint model has "
                                  f"{keypoint_model.num_keypoints}")
    return HybridGenerator(mc, keypoint_groups(keypoint_model.indices))


# --------------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------------
@torch.no_grad()
def evaluate(model: HybridGenerator, data: VideoFrames, pairs: int, seed: int = 1, device="cpu",
             batch_size: int = 8) -> dict[str, float]:
    """Mean PSNR (dB) / SSIM (luma, :mod:`generator.metrics`) of the generator (driving keypoints as
    ``render`` makes them + tracked translation) and of the copy-the-source baseline on ``pairs`` held-out
    source/driving pairs (``held`` frames)."""
    from .metrics import psnr, ssim as ssim_np
    from .neural import tensor_to_images

    rng = np.random.default_rng(seed)
    pools = [(c, c.held) for c in data.clips if len(c.held) >= 2]
    if not pools:
        return {}
    items = []
    for k in range(pairs):
        c, pool = pools[k % len(pools)]
        s, d = rng.choice(pool, 2, replace=False)
        items.append(data.pair(c, int(s), int(d), True))
    model.eval()
    rows = []
    for b0 in range(0, len(items), batch_size):
        batch = {k: v.to(device) for k, v in collate(items[b0:b0 + batch_size]).items()}
        out = model(model.encode_source(batch["source"], batch["source_kp"]), batch["driving_kp"], batch["hands"])
        pred = tensor_to_images(out.image)
        for it, p in zip(items[b0:b0 + batch_size], pred):
            rows.append((psnr(p, it["target"]), ssim_np(p, it["target"]), psnr(it["source"], it["target"]),
                         ssim_np(it["source"], it["target"])))
    model.train()
    a = np.array(rows)
    return {"pairs": len(rows), "psnr": float(a[:, 0].mean()), "ssim": float(a[:, 1].mean()),
            "copy_psnr": float(a[:, 2].mean()), "copy_ssim": float(a[:, 3].mean())}


# --------------------------------------------------------------------------------------------------
# Training loop
# --------------------------------------------------------------------------------------------------
def load_data(cfg: TrainGeneratorConfig, keypoint_model, progress: bool = True) -> VideoFrames:
    from tqdm.auto import tqdm

    vids = video_files([cfg.path(v) for v in cfg.videos], cfg.exclude)
    if not vids:
        raise TrainGeneratorError("no training videos found")
    clips = []
    for v in tqdm(vids, desc="videos", disable=not progress, leave=False):
        c = load_video_clip(v, cfg)
        if c is not None:
            clips.append(c)
    if not any(len(c.train) >= 2 for c in clips):
        raise TrainGeneratorError("no video has enough tracked frames to train on")
    return VideoFrames(clips, keypoint_model, cfg.train_size, cfg.model_driving_prob)


def train(cfg: TrainGeneratorConfig, *, data: VideoFrames | None = None, keypoint_model=None, resume: bool = True,
          progress: bool = True, max_minutes: float | None = None, out_dir: str | os.PathLike | None = None
          ) -> dict[str, Any]:
    """Train (or resume) and write the checkpoints (module docstring). Returns a summary dict."""
    from tqdm.auto import tqdm

    from .face_keypoints import FaceKeypointModel

    torch.manual_seed(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = auto_device(cfg.device)
    km = keypoint_model or FaceKeypointModel.load()
    data = data or load_data(cfg, km, progress)
    out = Path(out_dir) if out_dir else cfg.path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = build_model(cfg, km).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    disc = dopt = None
    if cfg.gan_weight > 0:
        disc = PatchDiscriminator().to(device)
        dopt = torch.optim.Adam(disc.parameters(), lr=cfg.lr, betas=(0.5, 0.999))
    step, minutes_before, history = 0, 0.0, []
    last = out / "last.safetensors"
    if resume and last.is_file():
        ld = load_checkpoint(last, device)
        if ld.model.config != model.config:
            raise TrainGeneratorError(f"{last} has another [model] configuration; use another out_dir")
        model.load_state_dict(ld.model.state_dict())
        _load_optimizer("opt", opt, ld.extra)
        if disc is not None and any(k.startswith("disc.") for k in ld.extra):
            disc.load_state_dict({k[5:]: v for k, v in ld.extra.items() if k.startswith("disc.")})
            _load_optimizer("dopt", dopt, ld.extra)
        step = int(ld.info.get("step", 0))
        minutes_before = float(ld.info.get("minutes", 0.0))
        history = list(ld.info.get("history", []))
    model.train()
    rng = np.random.default_rng(cfg.seed + step)
    cap = cfg.max_minutes if max_minutes is None else max_minutes
    t0 = time.perf_counter()
    last_ckpt = t0
    info_base = {"config": asdict(cfg), "clips": {c.name: {"train": len(c.train), "held": len(c.held)}
                                                   for c in data.clips},
                 "parameters": count_parameters(model), "device": str(device)}

    def save(final: bool = False) -> None:
        minutes = minutes_before + (time.perf_counter() - t0) / 60
        info = dict(info_base, step=step, minutes=round(minutes, 2), history=history[-200:])
        extra = _optimizer_tensors("opt", opt)
        if disc is not None:
            extra.update({f"disc.{k}": v for k, v in disc.state_dict().items()})
            extra.update(_optimizer_tensors("dopt", dopt))
        save_checkpoint(last, model, km.indices, info, extra)
        if final:
            save_checkpoint(out / "neural.safetensors", model, km.indices, info)

    bar = tqdm(total=cfg.max_steps, initial=step, desc="train generator", disable=not progress, unit="step")
    ema = None
    stop = "max_steps"
    while step < cfg.max_steps:
        if (time.perf_counter() - t0) / 60 >= cap:
            stop = "max_minutes"
            break
        batch = {k: v.to(device) for k, v in data.sample(rng, cfg.batch_size).items()}
        loss, parts, o = generator_losses(model, batch, cfg, disc)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if disc is not None:
            parts.disc = discriminator_step(disc, dopt, batch["target"], o.image)
        step += 1
        ema = parts.total if ema is None else 0.95 * ema + 0.05 * parts.total
        if step % 10 == 0 or step == 1:
            history.append([step, round(parts.total, 5), round(parts.image, 5), round(parts.face, 5)])
        bar.update(1)
        bar.set_postfix(loss=f"{ema:.4f}", face=f"{parts.face:.3f}")
        if (time.perf_counter() - last_ckpt) / 60 >= cfg.checkpoint_minutes:
            save()
            last_ckpt = time.perf_counter()
    bar.close()
    metrics = evaluate(model, data, cfg.eval_pairs, device=device, batch_size=cfg.batch_size) if cfg.eval_pairs else {}
    info_base["heldout"] = metrics
    info_base["stopped_by"] = stop
    save(final=True)
    return {"steps": step, "minutes": round(minutes_before + (time.perf_counter() - t0) / 60, 2),
            "loss_first": history[0][1] if history else None, "loss_ema": ema, "heldout": metrics,
            "checkpoint": str(out / "neural.safetensors"), "stopped_by": stop}


def install(checkpoint: str | os.PathLike, dest_dir: str | os.PathLike | None = None) -> Path:
    """Copy a weights-only checkpoint into ``generator/checkpoints/neural.safetensors`` (atomically).

    Raises:
        TrainGeneratorError: the file is over :data:`MAX_INSTALL_BYTES` (left where it is).
    """
    from motion.fileio import atomic_output

    from .render import NEURAL_CHECKPOINT_DIR

    src = Path(checkpoint)
    load_checkpoint(src)  # validates
    size = src.stat().st_size
    if size > MAX_INSTALL_BYTES:
        raise TrainGeneratorError(f"{src} is {size / 2**20:.1f} MiB, over the {MAX_INSTALL_BYTES / 2**20:.0f} MiB "
                                  "limit for the repository; use it with --checkpoint")
    d = Path(dest_dir) if dest_dir else NEURAL_CHECKPOINT_DIR
    d.mkdir(parents=True, exist_ok=True)
    dst = d / "neural.safetensors"
    with atomic_output(dst) as tmp:
        tmp.write_bytes(src.read_bytes())
    return dst


def add_arguments(ap: argparse.ArgumentParser) -> None:
    """Options of ``chatanyone train-generator`` / ``python -m generator.train_neural``."""
    ap.add_argument("config", help="TOML config (e.g. configs/generator.toml)")
    ap.add_argument("--out-dir", default=None, help="override the config's out_dir")
    ap.add_argument("--max-minutes", type=float, default=None, help="override the config's max_minutes")
    ap.add_argument("--no-resume", action="store_true", help="start from scratch even if OUT_DIR/last.safetensors exists")
    ap.add_argument("--install", action="store_true", help="copy the result to generator/checkpoints/ (if < 15 MiB)")
    ap.add_argument("-q", "--quiet", action="store_true", help="no progress bars")


def run(a: argparse.Namespace) -> int:
    """Train from parsed :func:`add_arguments` options (errors raise ChatAnyoneError)."""
    cfg = TrainGeneratorConfig.load(a.config)
    res = train(cfg, resume=not a.no_resume, progress=not a.quiet, max_minutes=a.max_minutes, out_dir=a.out_dir)
    print(json.dumps(res, indent=1))
    if a.install:
        print(f"installed {install(res['checkpoint'])}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="chatanyone train-generator", description=__doc__.splitlines()[0])
    add_arguments(ap)
    a = ap.parse_args(argv)
    try:
        return run(a)
    except ChatAnyoneError as e:
        print(f"train-generator: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
