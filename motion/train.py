"""Training of the two-stage motion diffusion model from a TOML config.

``chatanyone train configs/default.toml`` (or ``python -m motion.train configs/default.toml``) reproduces the
shipped checkpoint from ``../shared/data``: the face stage learns mouth weights from FACEGOOD (mouth
channels only, masked loss) and head motion from both BEAT2 takes; the body stage learns upper body and
fingers from BEAT2, conditioned on audio and on the face stage's *generated* mouth plus the real head
motion (so at inference it sees what it saw in training). Held-out clips (config) are never trained on.
Augmentation: left/right mirroring (joints swapped, rotations mirrored, ARKit L/R channels swapped), optional
gain/noise copies, phone dropout and random window lengths (so the same weights serve streaming).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import tomllib
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .checkpoint import StageModels, load_models, save_models
from .clip import MotionClip
from .conventions import (ARKIT_MIRROR, ARKIT_MOUTH, BODY_STAGE_JOINTS, HEAD_JOINTS, JOINT_INDEX, JOINT_MIRROR,
                          MODEL_FPS, SAMPLE_RATE)
from .datasets import TrainingClip, data_root, load_beat2, load_facegood, load_neurosync, load_prepared
from .diffusion import DiffusionConfig, diffusion_loss
from .features import FEATURE_DIM, PHONE_SLICE, PHONES, SIL_INDEX, extract_features
from .inference import (FACE_GUIDANCE, FACE_GUIDANCE_RESCALE, FACE_SMOOTH_SIGMA, FACE_STEPS, MotionGenerator,
                        sample_windows, smooth_frames)
from .model import DenoiserConfig, MotionDenoiser
from .options import checkpoint_sampling, sampling_info
from .representation import (BODY_DIM, FACE_DIM, FACE_MOUTH_DIM, body_vector, body_vector_mask,
                             face_vector, face_vector_mask)
from .rotations import mirror_quat


STYLES = ("facegood", "beat2", "neurosync", "video")
LOADERS = {"facegood": load_facegood, "beat2": load_beat2, "neurosync": load_neurosync}


@dataclass
class TrainConfig:
    """One training run (a TOML file; every field has a default)."""

    name: str = "default"
    version: str = "0.1.0"
    data_root: str | None = None
    datasets: list[str] = field(default_factory=lambda: ["facegood", "beat2"])
    #: folders written by ``chatanyone prepare``, and which source kinds of them to use
    prepared: list[str] = field(default_factory=list)
    prepared_kinds: list[str] = field(default_factory=lambda: ["video"])
    #: prepared clips left out when their name contains one of these (e.g. unclear licences)
    prepared_exclude: list[str] = field(default_factory=list)
    #: datasets that train the body stage (the others train the face stage only)
    body_datasets: list[str] = field(default_factory=lambda: ["beat2"])
    #: datasets whose neck/head rotations train the face stage (None: every dataset that has them). The
    #: tracked videos' head angles are the camera's view of a seated speaker, not a standing body's posture:
    #: trained on them (0.5.0 candidate) the generated head pitch on held-out BEAT2 speech fell from the
    #: capture's 16.5 deg to 4.5 deg (tests/motion/test_posture.py)
    head_datasets: list[str] | None = None
    #: clips never trained on (``dataset/clip``), and clips whose tail fraction is held out.
    holdout_clips: list[str] = field(default_factory=lambda: ["facegood/1114_3_16"])
    holdout_tail: dict[str, float] = field(default_factory=lambda: {"beat2/2_scott_0_3_3": 0.2})
    window: int = 120
    overlap: int = 30
    batch_size: int = 32
    face_steps: int = 3000
    body_steps: int = 3000
    lr: float = 3e-4
    weight_decay: float = 1e-4
    velocity_weight: float = 1.0
    cond_dropout: float = 0.1
    style_dropout: float = 0.5
    mirror: bool = True
    #: fraction of training windows whose phone block is replaced by all-'SIL' (the "no phones" input of
    #: streaming and of offline inference without pocketsphinx), so the model works with and without phones
    phone_dropout: float = 0.0
    #: when > 0, each batch uses one random window length in [min_window, window] frames (streaming
    #: samples short windows); 0 = always ``window``
    min_window: int = 0
    #: extra copy of every clip with its audio gain changed and background noise added (robustness, and so
    #: that a noise floor in the pauses reads as silence): gain in dB and noise level in dBFS, uniform
    noise_augment: bool = True
    gain_db: list[float] = field(default_factory=lambda: [-6.0, 6.0])
    noise_dbfs: list[float] = field(default_factory=lambda: [-60.0, -35.0])
    #: style from a reference clip: a :class:`motion.model.StyleEncoder` per stage, fed another crop of the
    #: same training clip; ``ref_dropout`` of the samples get no reference (CFG null on style together
    #: with ``style_dropout``); reference lengths are uniform in [``ref_min``, ``window``] frames
    style_reference: bool = False
    ref_dropout: float = 0.5
    ref_min: int = 30
    #: speed perturbation (Ko et al., "Audio augmentation for speech recognition", Interspeech 2015):
    #: extra copies of each clip with audio and motion played ``f`` times faster (audio resampled, so the
    #: pitch moves too, as in Kaldi's 0.9/1.1 recipe)
    speed_factors: list[float] = field(default_factory=list)
    # fit the body stage's variance compensation on the training clips after training (fit_body_gain)
    body_variance_compensation: bool = True
    #: fit the variance compensation again for a body stage reused with body_from (its stored one is kept
    #: otherwise), e.g. after fit_body_gain changed or the face stage it reads changed
    body_gain_refit: bool = False
    # reuse the face stage (weights and statistics) of this checkpoint instead of training one (face_steps unused)
    face_from: str | None = None
    #: reuse the body stage (weights, statistics, variance compensation and its feature layout) of this
    #: checkpoint instead of training one (body_steps unused)
    body_from: str | None = None
    #: start the face stage from this checkpoint's face weights (same architecture; fine-tuning), then train
    #: face_steps with this config's data and normalisation
    face_init: str | None = None
    #: start the body stage from this checkpoint's body weights and normalisation (same architecture and body
    #: feature layout; fine-tuning), then train body_steps with this config's data
    body_init: str | None = None
    #: a face channel that never moves in a clip (range < 1e-3, e.g. FACEGOOD's mouthClose/Press/Stretch/
    #: Shrug, which its rig mapping does not produce) counts as not captured there, so it is learned only
    #: from the datasets that do capture it (the MediaPipe-tracked videos)
    mask_constant_channels: bool = False
    #: datasets whose mouth scores carry a per-speaker offset at rest (MediaPipe: Obama's jawOpen reads
    #: 0.10-0.15 inside his pauses): each clip's per-channel 5th percentile is subtracted (clipped at 0)
    rest_offset_datasets: list[str] = field(default_factory=list)
    #: model-input layout of the face stage (motion.features.LAYOUTS): "fixed" (up to 0.4.0) or "running"
    #: (running-normalised log-mel/energy/pitch + the distilled classifier's phone posteriors)
    face_features: str = "fixed"
    #: where the phone block of the training features comes from (motion.features.PHONE_SOURCES); stored in
    #: the checkpoint as the default phone source of inference when face_features is "running"
    phone_source: str = "pocketsphinx"
    #: "phone_rule": the face stage denoises the residual over the phone-rule mouth read from the input's phone
    #: block (motion.lipsync.PhoneRulePrior); the checkpoint then recognises phones by default (phone_source)
    face_prior: str = "none"
    #: datasets whose capture is shifted in time to its audio before training (motion.lipsync.av_offset_frames;
    #: the Obama videos' mouths move 2-7 frames before their sound), within +-av_sync_max_frames
    av_sync_datasets: list[str] = field(default_factory=list)
    av_sync_max_frames: int = 10
    #: sampling stored in the checkpoint: the mouth channels are the face stage's first-step x0 prediction
    #: (its estimate of E[mouth | audio]; motion.diffusion.sample's mean_channels), head motion the full DDIM
    face_mouth_from_first_step: bool = False
    #: after training, fit the mouth's map to iPhone ARKit scale (motion.face_scale) on the model's output on
    #: its training audio and store it in the checkpoint (sampling.mouth_scale)
    mouth_scale: bool = False
    #: after training, fit the body stage's posture correction (motion.posture.fit_posture_correction) on its
    #: output for the BEAT2 training audio and store it in the checkpoint (sampling.posture_correction_rotvec)
    posture_correction: bool = False
    # the body data's face condition sampled as inference samples the face (steps, guidance, rescale,
    # smoothing) instead of one-pass unguided DDIM at inference_steps
    body_cond_like_inference: bool = False
    #: relative probability of drawing each dataset for a batch sample (default 1 each)
    dataset_weights: dict[str, float] = field(default_factory=dict)
    d_model: int = 128
    num_layers: int = 4
    num_heads: int = 4
    dropout: float = 0.1
    inference_steps: int = 8
    seed: int = 0
    out_dir: str = "runs/default"

    @classmethod
    def from_toml(cls, path: str | os.PathLike) -> "TrainConfig":
        with open(path, "rb") as f:
            d = tomllib.load(f)
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"{path}: unknown config keys {sorted(unknown)}")
        return cls(**d)


@dataclass
class Item:
    name: str
    dataset: str
    style: int
    cond: np.ndarray       # [T, FEATURE_DIM]
    face: np.ndarray       # [T, FACE_DIM] raw
    body: np.ndarray       # [T, BODY_DIM] raw
    face_mask: np.ndarray  # [T, FACE_DIM] bool, per frame
    body_mask: np.ndarray  # [T, BODY_DIM] bool, per frame
    licence: str = ""
    has_audio: bool = True  # False: an unconditional prior (the audio condition is always the CFG null)


def mirror_clip(clip: MotionClip) -> MotionClip:
    """Left/right mirror: swap ARKit L/R channels and L/R joints, mirror every rotation (x, -y, -z, w)."""
    rot = mirror_quat(clip.rotations[:, list(JOINT_MIRROR)])
    trans = clip.translation * np.array([-1, 1, 1], np.float32)
    return MotionClip(clip.fps, clip.face[:, list(ARKIT_MIRROR)], rot, trans, dict(clip.meta))


def load_clips(cfg: TrainConfig) -> list[TrainingClip]:
    """Every clip a config names: the ``datasets`` from the data root, then the ``prepared`` folders."""
    root = Path(cfg.data_root) if cfg.data_root else data_root()
    clips = [c for ds in cfg.datasets for c in LOADERS[ds](root)]
    for d in cfg.prepared:
        clips += [c for c in load_prepared(d) if c.dataset in cfg.prepared_kinds
                  and not any(x in c.name for x in cfg.prepared_exclude)]
    return clips


def split_holdout(clips: list[TrainingClip], cfg: TrainConfig) -> tuple[list[TrainingClip], list[TrainingClip]]:
    """Split into (train, held-out) per ``holdout_clips`` and ``holdout_tail``."""
    train, held = [], []
    for c in clips:
        if c.name in cfg.holdout_clips:
            held.append(c)
        elif c.name in cfg.holdout_tail:
            T = c.clip.num_frames
            cut = int(round(T * (1 - cfg.holdout_tail[c.name])))
            n_audio = int(round(cut / MODEL_FPS * SAMPLE_RATE))
            def part(a, b, audio, name):
                fv = None if c.face_valid is None else c.face_valid[a:b]
                jv = None if c.joint_valid is None else c.joint_valid[a:b]
                return replace(c, name=name, audio=audio, clip=c.clip.slice(a, b), face_valid=fv, joint_valid=jv)
            train.append(part(0, cut, None if c.audio is None else c.audio[:n_audio], c.name))
            held.append(part(cut, T, None if c.audio is None else c.audio[n_audio:], c.name + "@tail"))
        else:
            train.append(c)
    return train, held


def frame_masks(c: TrainingClip) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame ``[T, 52]`` face and ``[T, 55]`` joint validity of a training clip."""
    T = c.clip.num_frames
    fv = np.broadcast_to(c.face_mask, (T, len(c.face_mask))) if c.face_valid is None else c.face_valid & c.face_mask
    jv = np.broadcast_to(c.joint_mask, (T, len(c.joint_mask))) if c.joint_valid is None else c.joint_valid & c.joint_mask
    return np.asarray(fv, bool), np.asarray(jv, bool)


def augment_audio(audio: np.ndarray, rng: np.random.Generator, gain_db, noise_dbfs) -> np.ndarray:
    """Random gain (dB) and additive noise (dBFS RMS; white mixed with its low-passed, brown-ish version)."""
    gain = 10 ** (rng.uniform(*gain_db) / 20)
    white = rng.standard_normal(len(audio))
    brown = np.cumsum(white)
    brown -= np.convolve(brown, np.ones(400) / 400, "same")  # remove the random-walk drift
    mix = rng.uniform()
    noise = mix * white / white.std() + (1 - mix) * brown / (brown.std() + 1e-12)
    noise *= 10 ** (rng.uniform(*noise_dbfs) / 20) / (noise.std() + 1e-12)
    return np.clip(audio * gain + noise, -1, 1).astype(np.float32)


def speed_perturb(c: TrainingClip, factor: float) -> TrainingClip:
    """``c`` played ``factor`` times faster: audio resampled by soxr (pitch moves with it), motion resampled
    (slerp for rotations), per-frame validity by nearest frame. Name gets ``~speed{factor}``."""
    import soxr

    src = c.clip
    stretched = MotionClip(src.fps * factor, src.face, src.rotations, src.translation, dict(src.meta)).resample(src.fps)
    T = stretched.num_frames
    idx = np.minimum(np.round(np.arange(T) * factor).astype(int), src.num_frames - 1)
    audio = None if c.audio is None else soxr.resample(c.audio, SAMPLE_RATE * factor, SAMPLE_RATE).astype(np.float32)
    fv = None if c.face_valid is None else c.face_valid[idx]
    jv = None if c.joint_valid is None else c.joint_valid[idx]
    return replace(c, name=f"{c.name}~speed{factor:g}", audio=audio, clip=stretched, face_valid=fv, joint_valid=jv)


def make_items(clips: list[TrainingClip], cfg: TrainConfig, rng: np.random.Generator, progress: bool = True) -> list[Item]:
    """Features, stage vectors and per-frame masks of each clip, of its mirror image (``cfg.mirror``), of a
    noisy, re-gained copy (``cfg.noise_augment``) and of speed-perturbed copies (``cfg.speed_factors``).
    Clips without audio become unconditional items (``has_audio`` False)."""
    items = []
    for c in tqdm(clips, desc="audio features", disable=not progress):
        if c.dataset in cfg.av_sync_datasets and c.audio is not None:
            c = sync_capture(c, cfg.av_sync_max_frames)
        if c.dataset in cfg.rest_offset_datasets:
            c = remove_rest_offset(c)
        variants = [c] + [speed_perturb(c, f) for f in cfg.speed_factors if c.audio is not None]
        for v in variants:
            T = v.clip.num_frames
            if v.audio is None:
                feats = np.zeros((T, FEATURE_DIM), np.float32)
                feats[:, PHONE_SLICE.start + SIL_INDEX] = 1.0  # (unused: these items never see audio)
                items += _clip_items(v, feats, "", cfg.mirror, cfg.body_datasets, has_audio=False,
                                     head=cfg.head_datasets is None or v.dataset in cfg.head_datasets)
                continue
            audios = [("", v.audio)]
            if cfg.noise_augment and v is c:
                audios.append(("~noisy", augment_audio(v.audio, rng, cfg.gain_db, cfg.noise_dbfs)))
            for tag, audio in audios:
                feats = extract_features(audio, SAMPLE_RATE, MODEL_FPS, num_frames=T, phones=cfg.phone_source,
                                         relative=cfg.face_features == "running")
                items += _clip_items(v, feats.stack(cfg.face_features), tag, cfg.mirror, cfg.body_datasets,
                                     head=cfg.head_datasets is None or v.dataset in cfg.head_datasets,
                                     mask_constant=cfg.mask_constant_channels)
    return items


REST_PERCENTILE = 5.0
#: capture shifts applied by :func:`sync_capture` in this process (clip name -> (lag frames, r at lag, r at 0))
AV_OFFSETS: dict[str, tuple[int, float, float]] = {}


def shift_capture(c: TrainingClip, lag: int) -> TrainingClip:
    """``c`` with its motion moved ``lag`` frames later against its audio (earlier when negative); the frames
    left without capture repeat the edge frame and are marked invalid (``face_valid``/``joint_valid``)."""
    if lag == 0:
        return c
    T = c.clip.num_frames
    idx = np.clip(np.arange(T) - lag, 0, T - 1)
    fv, jv = frame_masks(c)
    fv, jv = fv[idx].copy(), jv[idx].copy()
    gap = np.arange(T) < lag if lag > 0 else np.arange(T) >= T + lag
    fv[gap], jv[gap] = False, False
    clip = MotionClip(c.clip.fps, c.clip.face[idx], c.clip.rotations[idx],
                      None if c.clip.translation is None else c.clip.translation[idx], dict(c.clip.meta))
    return replace(c, clip=clip, face_valid=fv, joint_valid=jv)


def sync_capture(c: TrainingClip, max_lag: int) -> TrainingClip:
    """:func:`shift_capture` by the clip's audio-video offset (:func:`motion.lipsync.av_offset_frames`)."""
    from .lipsync import av_offset_frames
    T = min(c.clip.num_frames, int(len(c.audio) / SAMPLE_RATE * MODEL_FPS))
    lag, r, r0 = av_offset_frames(c.audio[: int(round(T / MODEL_FPS * SAMPLE_RATE))], c.clip.face[:T], max_lag)
    AV_OFFSETS[c.name] = (lag, round(r, 3), round(r0, 3))
    return shift_capture(c, lag)


def remove_rest_offset(c: TrainingClip) -> TrainingClip:
    """``c`` with each mouth channel's :data:`REST_PERCENTILE` th percentile over its valid frames subtracted
    (clipped at 0): the tracker's reading of this speaker's closed, resting mouth becomes 0, as in FACEGOOD
    and iPhone capture."""
    face = c.clip.face.copy()
    fv, _ = frame_masks(c)
    for ch in ARKIT_MOUTH:
        v = fv[:, ch]
        if v.sum() > 10:
            face[:, ch] = np.clip(face[:, ch] - np.percentile(face[v, ch], REST_PERCENTILE), 0.0, 1.0)
    clip = MotionClip(c.clip.fps, face, c.clip.rotations, c.clip.translation, dict(c.clip.meta))
    return replace(c, clip=clip)


def _clip_items(c: TrainingClip, feats: np.ndarray, tag: str, mirror: bool, body_datasets: list[str],
                has_audio: bool = True, mask_constant: bool = False, head: bool = True) -> list[Item]:
    items = []
    fv, jv = frame_masks(c)
    if mask_constant:
        fv = fv & (np.ptp(c.clip.face, axis=0) >= 1e-3)
    if c.dataset not in body_datasets:
        jv = jv.copy()
        jv[:, list(BODY_STAGE_JOINTS)] = False
    if not head:
        jv = jv.copy()
        jv[:, list(HEAD_JOINTS)] = False
    variants = [(c.clip, fv, jv, "")]
    if mirror:
        variants.append((mirror_clip(c.clip), fv[:, list(ARKIT_MIRROR)], jv[:, list(JOINT_MIRROR)], "~mirror"))
    for clip, f, j, suffix in variants:
        items.append(Item(c.name + tag + suffix, c.dataset, STYLES.index(c.dataset), feats, face_vector(clip),
                          body_vector(clip), face_vector_mask(f, j), body_vector_mask(j), c.licence, has_audio))
    return items


def masked_stats(arrays: list[np.ndarray], masks: list[np.ndarray], dim: int, floor: float):
    """Per-channel mean/std over the frames where that channel is real (masks ``[T, dim]``)."""
    s = np.zeros(dim)
    s2 = np.zeros(dim)
    n = np.zeros(dim)
    for a, m in zip(arrays, masks):
        a = a.astype(np.float64) * m
        s += a.sum(0)
        s2 += (a ** 2).sum(0)
        n += m.sum(0)
    n = np.maximum(n, 1)
    mean = s / n
    std = np.sqrt(np.maximum(s2 / n - mean ** 2, 0))
    std = np.where(n > 1, np.maximum(std, floor), 1.0)
    return mean.astype(np.float32), std.astype(np.float32)


class WindowSampler:
    """Random training windows: a dataset (uniformly, or by ``weights``), then a clip in proportion to its length, then a crop."""

    def __init__(self, items: list[Item], window: int, rng: np.random.Generator,
                 weights: dict[str, float] | None = None):
        self.items, self.window, self.rng = items, window, rng
        self.by_ds: dict[str, list[int]] = {}
        for i, it in enumerate(items):
            self.by_ds.setdefault(it.dataset, []).append(i)
        self.ds_names = sorted(self.by_ds)
        w = np.array([float((weights or {}).get(d, 1.0)) for d in self.ds_names])
        self.ds_p = w / w.sum()

    def draw(self, window: int | None = None) -> tuple[Item, int]:
        window = window or self.window
        ds = self.ds_names[self.rng.choice(len(self.ds_names), p=self.ds_p)]
        idx = self.by_ds[ds]
        lens = np.array([len(self.items[i].cond) for i in idx], float)
        it = self.items[idx[self.rng.choice(len(idx), p=lens / lens.sum())]]
        start = int(self.rng.integers(0, max(1, len(it.cond) - window + 1)))
        return it, start


def _crop(a: np.ndarray, start: int, window: int) -> np.ndarray:
    out = a[start:start + window]
    if len(out) < window:  # pad by repeating the last frame
        out = np.concatenate([out, np.repeat(out[-1:], window - len(out), 0)])
    return out


def batch_fn(items: list[Item], cfg: TrainConfig, target: str, cond: str, mask: str, mean: np.ndarray,
             std: np.ndarray, n_styles: int, rng: np.random.Generator, prior=None):
    """A function drawing one training batch ``(x0, cond, style, mask, cond_keep, style_ref)`` from
    ``items``: ``cfg.batch_size`` windows (one random length per batch when ``cfg.min_window``), the
    ``target``/``cond``/``mask`` attributes of each item cropped, the target normalised by ``mean``/``std``.
    Phone dropout, style-id dropout (id ``n_styles`` = none) and audio dropout (``cond_keep`` False; always
    for items without audio) as in ``cfg``. ``style_ref`` is None unless ``cfg.style_reference``: then
    ``(ref [B, Lr, D], ref_mask, ref_keep [B])``, another crop of each sample's own item. ``prior``: None or
    a :class:`motion.lipsync.PhoneRulePrior`; the target is then the residual ``x_n - prior(cond)``, the prior
    read from the condition after phone dropout (as sampling sees it)."""
    W, B = cfg.window, cfg.batch_size
    sampler = WindowSampler(items, W, rng, cfg.dataset_weights)

    def batch():
        L = int(rng.integers(cfg.min_window, W + 1)) if cfg.min_window > 0 else W
        draws = [sampler.draw(L) for _ in range(B)]

        def crop(attr, draws=draws, L=L):
            return np.stack([_crop(getattr(it, attr), s, L) for it, s in draws])
        c = crop(cond)
        if cfg.phone_dropout > 0:
            drop = rng.random(B) < cfg.phone_dropout
            c[drop, :, PHONE_SLICE] = 0.0
            c[drop, :, PHONE_SLICE.start + SIL_INDEX] = 1.0
        style = np.array([it.style for it, _ in draws])
        style[rng.random(B) < cfg.style_dropout] = n_styles      # "no style" (CFG null)
        keep = rng.random(B) >= cfg.cond_dropout                  # audio dropped (CFG null)
        keep &= np.array([it.has_audio for it, _ in draws])       # priors never see audio
        style_ref = None
        if cfg.style_reference:  # another crop of the same clip
            Lr = int(rng.integers(min(cfg.ref_min, W), W + 1))
            ref_draws = [(it, int(rng.integers(0, max(1, len(getattr(it, cond)) - Lr + 1)))) for it, _ in draws]
            ref = (crop(target, ref_draws, Lr) - mean) / std
            ref_mask = crop(mask, ref_draws, Lr)
            ref_keep = rng.random(B) >= cfg.ref_dropout
            style_ref = (torch.from_numpy(ref).float(), torch.from_numpy(ref_mask), torch.from_numpy(ref_keep))
        x0 = (crop(target) - mean) / std
        if prior is not None:
            x0 = x0 - prior(c)
        return (torch.from_numpy(x0).float(), torch.from_numpy(c),
                torch.from_numpy(style).long(), torch.from_numpy(crop(mask)), torch.from_numpy(keep),
                style_ref)
    return batch


def train_stage(model: MotionDenoiser, batch_fn, steps: int, cfg: TrainConfig,
                desc: str, log: list, distributed=None) -> float:
    """Train one denoiser for ``steps`` AdamW steps with a cosine schedule; returns the last loss (EMA).
    ``distributed``: None (one process) or a :class:`motion.distributed.DistContext` (DDP: this rank's rows
    of each global batch, gradients and logged losses averaged over the ranks)."""
    sched = DiffusionConfig(num_inference_steps=cfg.inference_steps).scheduler()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    lr_sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / 200) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    if distributed is not None:
        model, batch_fn = distributed.stage(model, batch_fn)
    model.train()
    ema = None
    bar = tqdm(range(steps), desc=desc, disable=distributed is not None and not distributed.is_main)
    for step in bar:
        x0, cond, style, mask, keep, style_ref = batch_fn()
        out = diffusion_loss(model, sched, x0, cond, style, mask, keep, cfg.velocity_weight, style_ref)
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        lr_sched.step()
        v = out["loss"].item()
        if distributed is not None:  # the mean over the ranks
            v, out = distributed.logged(out)
        ema = v if ema is None else 0.98 * ema + 0.02 * v
        if step % 50 == 0 or step == steps - 1:
            bar.set_postfix(loss=f"{ema:.4f}")
            log.append({"stage": desc, "step": step, "loss": ema, "mse": float(out["mse"]), "vel": float(out["vel"])})
    model.eval()
    if distributed is not None:  # back to CPU; every rank's weights checked identical
        model = distributed.finish_stage(model, desc, log)
    return float(ema)


#: Bounds of the per-channel body gain (:func:`fit_body_gain`): compensation only widens, at most 2x.
BODY_GAIN_RANGE = (1.0, 2.0)
#: Joints whose channels keep gain 1 in :func:`fit_body_gain`: the spine carries the posture, and what the
#: capture's spine varies by is mostly slow posture that the audio does not predict. Scaled about the mean
#: of the output for the training audio (gains up to 2 on spine1-3 in checkpoint 0.5.1), the forward lean
#: the body stage puts on speech was doubled on voices it was not trained on: median head pitch over 22
#: held-out and test utterances of under 6 s 21.3 deg with the spine compensated, 17.4 deg without
#: (capture 14.9 deg; issue 13's posture regression of 0.5.1).
BODY_GAIN_FIXED_JOINTS = ("spine1", "spine2", "spine3")


def fit_body_gain(checkpoint: str | os.PathLike, clips: list[TrainingClip], seeds: tuple[int, ...] = (0, 1, 2),
                  progress: bool = True) -> tuple[np.ndarray, np.ndarray, dict]:
    """Fit the body stage's variance compensation on training clips (never on held-out ones).

    Few-step diffusion sampling trained on ~2 minutes of body capture under-disperses: on its own training
    audio the body stage's output varies ~25 % less than the capture (checkpoint 0.3.0: mean per-channel
    std 0.68 vs 0.90 in normalised units). As global variance compensation in statistical parametric speech
    synthesis (Toda & Tokuda, "A speech parameter generation algorithm considering global variance",
    IEICE Trans. 2007), each normalised body channel ``c`` is scaled about the generated mean:
    ``center + gain * (x - center)``, ``gain = std(capture) / std(generated)`` over the clips' valid
    frames, clipped to :data:`BODY_GAIN_RANGE`; the channels of :data:`BODY_GAIN_FIXED_JOINTS` keep gain 1.

    Args:
        checkpoint: the checkpoint to fit (its own normalisation and sampler defaults are used).
        clips: training clips; those with audio and body channels are used.
        seeds: one generation per clip and seed.
    Returns:
        ``(gain [BODY_DIM], center [BODY_DIM], stats)`` float32; stats has the mean stds and clip names.
    Raises:
        ValueError: no clip with audio and body channels.
    """
    gen = MotionGenerator(checkpoint)
    gen.variance_compensation = False
    mean, std = gen.models.body_mean.numpy(), gen.models.body_std.numpy()
    use = [c for c in clips if c.audio is not None and body_vector_mask(c.joint_mask).any()]
    if not use:
        raise ValueError("no training clip with audio and body motion to fit the body gain on")
    G, R, V = [], [], []
    for c in tqdm(use, desc="body variance compensation", disable=not progress):
        _, jv = frame_masks(c)
        T = c.clip.num_frames
        valid = body_vector_mask(jv)
        real = (body_vector(c.clip) - mean) / std
        for seed in seeds:
            _, body_n, _, _ = gen.sample_normalised(c.audio, seed=seed)
            n = min(T, len(body_n))
            G.append(body_n[:n]), R.append(real[:n]), V.append(valid[:n])
    G, R, V = np.concatenate(G), np.concatenate(R), np.concatenate(V)
    gain = np.ones(G.shape[1], np.float32)
    center = G.mean(0).astype(np.float32)
    fixed = {BODY_STAGE_JOINTS.index(JOINT_INDEX[j]) * 6 + k for j in BODY_GAIN_FIXED_JOINTS for k in range(6)}
    for ch in range(G.shape[1]):
        v = V[:, ch]
        if v.sum() > 30 and ch not in fixed:
            g_std = G[v, ch].std()
            gain[ch] = np.clip(R[v, ch].std() / max(g_std, 1e-6), *BODY_GAIN_RANGE)
            center[ch] = G[v, ch].mean()
    stats = {"clips": [c.name for c in use], "seeds": list(seeds),
             "generated_std": float(G.std(0).mean()), "capture_std": float(R[V.all(1)].std(0).mean()),
             "gain_median": float(np.median(gain)), "gain_range": list(BODY_GAIN_RANGE),
             "fixed_joints": list(BODY_GAIN_FIXED_JOINTS)}
    return gain, center, stats


def train(cfg: TrainConfig, progress: bool = True, distributed=None) -> Path:
    """Run the whole training; writes ``out_dir/model.safetensors`` and ``out_dir/train_log.json``.
    ``distributed``: a :class:`motion.distributed.DistContext` to train with DDP (only rank 0 writes)."""
    progress = progress and (distributed is None or distributed.is_main)
    t0 = time.time()
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    # OMP_NUM_THREADS when set (a shared machine), else every core
    torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS") or os.cpu_count() or 1)))
    clips = load_clips(cfg)
    train_clips, held = split_holdout(clips, cfg)
    items = make_items(train_clips, cfg, rng, progress)

    face_items = [it for it in items if it.face_mask.any()]
    body_items = [it for it in items if it.body_mask.any()]
    face_mean, face_std = masked_stats([i.face for i in face_items], [i.face_mask for i in face_items], FACE_DIM, 0.02)
    body_mean, body_std = masked_stats([i.body for i in body_items], [i.body_mask for i in body_items], BODY_DIM, 0.02)
    face_mean[~np.any([i.face_mask.any(0) for i in face_items], 0)] = 0
    W = cfg.window
    n_styles = len(STYLES)
    log: list[dict] = []
    if cfg.body_from and not cfg.face_from:
        # the reused body stage reads the face stage's output in the units it was trained with
        prev_body = load_models(cfg.body_from)
        face_mean, face_std = prev_body.face_mean.numpy().copy(), prev_body.face_std.numpy().copy()
        log.append({"stage": "face stage", "normalisation_from": str(cfg.body_from)})

    def dcfg(motion_dim, cond_dim):
        return DenoiserConfig(motion_dim, cond_dim, n_styles, cfg.d_model, cfg.num_layers, cfg.num_heads,
                              4, 512, cfg.dropout, cfg.style_reference)

    # ---- face stage ------------------------------------------------------------------------------
    if cfg.face_from:
        prev = load_models(cfg.face_from)
        face_model, face_loss = prev.face, float(prev.info["training"]["face_final_loss"])
        face_mean, face_std = prev.face_mean.numpy(), prev.face_std.numpy()
        prev_cfg = prev.info.get("training", {}).get("config", {})
        face_from_info = {"checkpoint": str(cfg.face_from), "version": prev.info.get("version"),
                          # how that face stage was trained, for the model card
                          **{k: prev_cfg[k] for k in ("face_steps", "lr", "face_init", "speed_factors",
                                                       "noise_augment") if k in prev_cfg}}
        log.append({"stage": "face stage", "reused_from": str(cfg.face_from)})
    else:
        face_model = MotionDenoiser(dcfg(FACE_DIM, FEATURE_DIM))
        if cfg.face_init:
            face_model.load_state_dict(load_models(cfg.face_init).face.state_dict())
            log.append({"stage": "face stage", "initialised_from": str(cfg.face_init)})
        if cfg.face_prior == "phone_rule":
            from .lipsync import PhoneRulePrior, fit_prior_gain
            rule = PhoneRulePrior(face_std, PHONE_SLICE, PHONES)
            M = rule.mouth.size
            audible = [it for it in face_items if it.has_audio]
            rule.gain = fit_prior_gain([rule.mouth_weights(it.cond) for it in audible],
                                       [it.face[:, :M] for it in audible], [it.face_mask[:, :M] for it in audible])
            log.append({"stage": "face stage", "prior_gain": rule.info()["gain"]})
            face_model.prior = rule
        elif cfg.face_prior != "none":
            raise ValueError(f"face_prior {cfg.face_prior!r}: use 'none' or 'phone_rule'")
        face_batch = batch_fn(face_items, cfg, "face", "cond", "face_mask", face_mean, face_std, n_styles, rng,
                              face_model.prior)
        face_loss = train_stage(face_model, face_batch, cfg.face_steps, cfg, "face stage", log, distributed)

    face_model.mean_channels = FACE_MOUTH_DIM if cfg.face_mouth_from_first_step else 0
    # ---- body stage: condition on generated mouth + real head motion ----------------------------------
    features = {"face": cfg.face_features, "body": cfg.face_features,
                "phones": cfg.phone_source if (cfg.face_features == "running" or face_model.prior is not None) else "none"}
    if cfg.body_from:
        prev = load_models(cfg.body_from)
        body_model, body_loss = prev.body, float(prev.info["training"]["body_final_loss"])
        body_mean, body_std = prev.body_mean.numpy(), prev.body_std.numpy()
        # checkpoints before 0.5.0 ran their body stage on the fixed layout without phones by default
        features["body"] = prev.info.get("features", {}).get("body", "fixed-sil")
        log.append({"stage": "body stage", "reused_from": str(cfg.body_from)})
        body_items = []
    sched = DiffusionConfig(num_inference_steps=cfg.inference_steps).scheduler()
    gen = torch.Generator().manual_seed(cfg.seed)
    face_cond_cache: dict[str, np.ndarray] = {}
    for it in tqdm(body_items, desc="face stage on body data", disable=not progress):
        key = it.name.replace("~mirror", "")  # "~noisy" items keep their own (noisy) features
        if key not in face_cond_cache and cfg.body_cond_like_inference:
            face_cond_cache[key] = smooth_frames(sample_windows(
                face_model, sched, it.cond, n_styles, FACE_STEPS, W, cfg.overlap, gen, FACE_GUIDANCE,
                guidance_rescale=FACE_GUIDANCE_RESCALE), FACE_SMOOTH_SIGMA)
        elif key not in face_cond_cache:
            face_cond_cache[key] = sample_windows(face_model, sched, it.cond, n_styles, cfg.inference_steps,
                                                  W, cfg.overlap, gen)
        fn = face_cond_cache[key].copy()
        if it.name.endswith("~mirror"):  # mirror the generated mouth too
            mouth = fn[:, :FACE_MOUTH_DIM] * face_std[:FACE_MOUTH_DIM] + face_mean[:FACE_MOUTH_DIM]
            full = np.zeros((len(mouth), 52), np.float32)
            full[:, list(ARKIT_MOUTH)] = mouth
            mouth = full[:, list(ARKIT_MIRROR)][:, list(ARKIT_MOUTH)]
            fn[:, :FACE_MOUTH_DIM] = (mouth - face_mean[:FACE_MOUTH_DIM]) / face_std[:FACE_MOUTH_DIM]
        real = (it.face - face_mean) / face_std
        fn = np.where(it.face_mask, real, fn)
        it.body_cond = np.concatenate([it.cond, fn], axis=1).astype(np.float32)  # type: ignore[attr-defined]

    if not cfg.body_from:
        body_model = MotionDenoiser(dcfg(BODY_DIM, FEATURE_DIM + FACE_DIM))
        if cfg.body_init:
            init = load_models(cfg.body_init)
            body_model.load_state_dict(init.body.state_dict())
            body_mean, body_std = init.body_mean.numpy(), init.body_std.numpy()
            log.append({"stage": "body stage", "initialised_from": str(cfg.body_init)})
        body_batch = batch_fn(body_items, cfg, "body", "body_cond", "body_mask", body_mean, body_std, n_styles, rng)
        body_loss = train_stage(body_model, body_batch, cfg.body_steps, cfg, "body stage", log, distributed)

    wall = time.time() - t0
    licences = sorted({c.licence for c in train_clips})  # what the weights were trained on (not the held-out clips)
    info = {
        "version": cfg.version, "styles": list(STYLES), "feature_dim": FEATURE_DIM, "features": features,
        "window": W,
        "overlap": cfg.overlap,
        **({"face_prior": face_model.prior.info()} if face_model.prior is not None else {}),
        # the sampling `chatanyone animate` uses by default, stored with the weights (motion.options)
        "sampling": {**sampling_info(checkpoint_sampling({})),
                     **({"face_mean_channels": FACE_MOUTH_DIM} if cfg.face_mouth_from_first_step else {})},
        "training": {
            "config": asdict(cfg), "command": "chatanyone train " + " ".join(sys.argv[2:] if sys.argv[1:2] == ["train"] else sys.argv[1:]),
            "wall_time_s": round(wall, 1), "face_final_loss": face_loss, "body_final_loss": body_loss,
            "train_clips": sorted({c.name for c in train_clips}), "held_out": sorted(c.name for c in held),
            **({"av_offsets_frames": {k: v for k, v in AV_OFFSETS.items()}} if AV_OFFSETS else {}),
            "train_seconds": {ds: round(sum(c.clip.duration for c in train_clips if c.dataset == ds), 1)
                              for ds in sorted({c.dataset for c in train_clips})},
            "licences": licences,
            "non_commercial": any("NC" in lic for lic in licences),
        },
    }
    models = StageModels(face_model, body_model, torch.from_numpy(face_mean), torch.from_numpy(face_std),
                         torch.from_numpy(body_mean), torch.from_numpy(body_std),
                         DiffusionConfig(num_inference_steps=cfg.inference_steps), info)
    if cfg.face_from:
        info["training"]["face_from"] = face_from_info
    if cfg.body_from:  # the reused body stage keeps its variance compensation and its training record
        models.body_gain, models.body_gain_center = prev.body_gain, prev.body_gain_center
        prev_tr = prev.info.get("training", {})
        info["training"]["body_from"] = {"checkpoint": str(cfg.body_from), "version": prev.info.get("version"),
                                         "body_steps": prev_tr.get("config", {}).get("body_steps"),
                                         "train_seconds": prev_tr.get("train_seconds")}
        if prev_tr.get("body_gain"):
            info["training"]["body_gain"] = prev_tr["body_gain"]
        info["training"]["body_from"]["body_gain_refit"] = bool(cfg.body_variance_compensation and cfg.body_gain_refit)
    if cfg.face_features == "running" and cfg.phone_source == "classifier":
        from .phone_features import load_classifier
        info["phone_classifier"] = {k: v for k, v in load_classifier()[2].items() if k != "train_audio"}
    out = Path(cfg.out_dir)
    if distributed is not None and not distributed.is_main:
        return out / "model.safetensors"  # rank 0 writes the checkpoint and the log
    out.mkdir(parents=True, exist_ok=True)
    path = save_models(models, out / "model.safetensors")
    if cfg.body_variance_compensation and (not cfg.body_from or cfg.body_gain_refit):
        path = add_body_gain(path, train_clips, progress)
    if cfg.mouth_scale:
        path = add_mouth_scale(path, train_clips, progress)
    if cfg.posture_correction:
        path = add_posture_correction(path, train_clips, progress)
    (out / "train_log.json").write_text(json.dumps({"info": load_models(path).info, "log": log}, indent=1))
    return path


def add_body_gain(path: str | os.PathLike, train_clips: list[TrainingClip], progress: bool = True,
                  version: str | None = None) -> Path:
    """Fit :func:`fit_body_gain` for the checkpoint at ``path`` and rewrite it with the gain (atomically);
    ``version``: a new version string for the rewritten checkpoint."""
    gain, center, stats = fit_body_gain(path, train_clips, progress=progress)
    models = load_models(path)
    if version:
        models.info["version"] = version
        models.info.get("training", {}).get("config", {})["version"] = version
    models.body_gain, models.body_gain_center = torch.from_numpy(gain), torch.from_numpy(center)
    models.info.setdefault("training", {})["body_gain"] = stats
    return save_models(models, path)


def add_posture_correction(path: str | os.PathLike, train_clips: list[TrainingClip], progress: bool = True,
                           seeds: tuple[int, ...] = (0, 1)) -> Path:
    """Fit :func:`motion.posture.fit_posture_correction` for the checkpoint at ``path``: its root-locked
    output (seeds ``seeds``) for the BEAT2 training clips' audio against their root-locked capture; rewrite
    the checkpoint with ``sampling.posture_correction_rotvec`` (atomically).

    Raises:
        ValueError: no BEAT2 training clip with audio.
    """
    from .posture import fit_posture_correction, without_pelvis_orientation
    use = [c for c in train_clips if c.dataset == "beat2" and c.audio is not None]
    if not use:
        raise ValueError("no BEAT2 training clip with audio to fit the posture correction on")
    gen = MotionGenerator(path)
    gen_rot, cap_rot = [], []
    for c in tqdm(use, desc="posture correction", disable=not progress):
        for seed in seeds:
            rot = gen.generate(c.audio, seed=seed).rotations
            T = min(len(rot), c.clip.num_frames)
            gen_rot.append(without_pelvis_orientation(rot[:T]))
            cap_rot.append(c.clip.rotations[:T])
    correction = fit_posture_correction(np.concatenate(gen_rot), np.concatenate(cap_rot))
    models = load_models(path)
    models.info.setdefault("sampling", {})["posture_correction_rotvec"] = [round(float(v), 6) for v in correction]
    return save_models(models, path)


def add_mouth_scale(path: str | os.PathLike, train_clips: list[TrainingClip], progress: bool = True,
                    version: str | None = None) -> Path:
    """Fit :func:`motion.face_scale.fit_mouth_scale` for the checkpoint at ``path`` on its output (its own
    scale, seed 0) for the training clips' audio, and rewrite it with ``sampling.mouth_scale`` (atomically);
    ``version``: a new version string.

    Raises:
        ValueError: no training clip has audio.
        FileNotFoundError: the iPhone captures are missing (``../shared/data``).
    """
    from .face_scale import fit_mouth_scale
    gen = MotionGenerator(path, mouth_scale=False)
    use = [c for c in train_clips if c.audio is not None]
    if not use:
        raise ValueError("no training clip with audio to fit the mouth scale on")
    faces = [gen.generate(c.audio, seed=0).face for c in tqdm(use, desc="mouth scale", disable=not progress)]
    scale = fit_mouth_scale(faces)
    models = load_models(path)
    if version:
        models.info["version"] = version
        models.info.get("training", {}).get("config", {})["version"] = version
    sampling = models.info.setdefault("sampling", {})
    for k, v in sampling_info(checkpoint_sampling(models.info)).items():   # defaults stored with the weights
        sampling.setdefault(k, v)
    sampling["mouth_scale"] = scale.to_info()
    models.info["sampling"]["mouth_scale"]["stats"]["train_clips"] = len(use)
    return save_models(models, path)


def main(argv: list[str] | None = None) -> int:
    """``python -m motion.train``: the options of :mod:`motion.train_cli`, then :func:`run_cli`."""
    from .train_cli import DESCRIPTION, add_arguments
    ap = argparse.ArgumentParser(prog="chatanyone train", description=DESCRIPTION)
    add_arguments(ap)
    return run_cli(ap.parse_args(argv))


def run_cli(a: argparse.Namespace) -> int:
    """Train (or re-fit) as the parsed ``chatanyone train`` options say; returns 0.

    Raises:
        ChatAnyoneError: a missing or invalid config, data or checkpoint; OptionError: ``--nproc`` < 1.
    """
    from . import distributed as ddp
    from .errors import ChatAnyoneError
    from .options import OptionError
    if a.nproc < 1:
        raise OptionError(f"--nproc must be >= 1, got {a.nproc}")
    try:
        cfg = TrainConfig.from_toml(a.config)
        if a.out_dir:
            cfg.out_dir = a.out_dir
        if a.body_gain_only:
            existing = Path(cfg.out_dir) / "model.safetensors"
            if not existing.is_file():
                raise FileNotFoundError(f"no checkpoint to re-fit at {existing}")
            path = add_body_gain(existing, split_holdout(load_clips(cfg), cfg)[0], version=cfg.version)
        elif a.mouth_scale_only:
            existing = Path(cfg.out_dir) / "model.safetensors"
            if not existing.is_file():
                raise FileNotFoundError(f"no checkpoint to fit at {existing}")
            path = add_mouth_scale(existing, split_holdout(load_clips(cfg), cfg)[0], version=cfg.version)
        elif a.nproc > 1 or ddp.launched_by_torchrun():
            path = ddp.train_distributed(cfg, a.nproc)
            if path is None:  # a torchrun rank other than 0: rank 0 writes and reports
                return 0
        else:
            path = train(cfg)
    except (FileNotFoundError, ValueError, TypeError, tomllib.TOMLDecodeError) as e:
        raise ChatAnyoneError(f"cannot train from {a.config}: {e}") from None
    print(f"wrote {path}")
    if a.install:
        from .checkpoint import default_checkpoint_path
        import shutil
        dst = default_checkpoint_path()
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dst)
        print(f"installed {dst}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
