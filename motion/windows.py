"""Window sampling shared by offline generation and streaming: the window grid, the batched two-pass sampling
with overlap inpainting, raised-cosine cross-fades, temporal smoothing, and :class:`StageRun` (one stage
sampled with its style and :class:`motion.options.StageSampling`).

Offline (:meth:`motion.inference.MotionGenerator.generate`) samples long audio on the grid of
:func:`window_starts` with :class:`WindowPlan` / :func:`sample_windows`; streaming
(:class:`motion.streaming.MotionStream`) samples one short window per step through the same
:meth:`StageRun.sample`, cross-fades each step into the previous step's look-ahead with
:func:`crossfade_weights` / :func:`crossfade`, and smooths with :func:`smooth_frames` as offline does.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.ndimage import gaussian_filter1d
from tqdm.auto import tqdm

from . import diffusion
from .model import MotionDenoiser
from .options import StageSampling

__all__ = ["smooth_frames", "smooth_radius", "window_starts", "window_joins", "CROSSFADE_FRAMES",
           "MAX_BATCH_WINDOWS", "crossfade_weights", "crossfade", "sample_windows", "WindowPlan", "StageRun",
           "rng_states"]


def smooth_frames(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian low-pass of ``x [T, D]`` along time (``scipy.ndimage.gaussian_filter1d``, sigma in frames,
    truncated at 2 sigma, edges repeat the end frames); ``sigma <= 0`` returns ``x``."""
    if sigma <= 0 or len(x) < 2:
        return x
    return gaussian_filter1d(x, sigma, axis=0, mode="nearest", truncate=2.0).astype(np.float32)


def smooth_radius(sigma: float) -> int:
    """Frames on each side that :func:`smooth_frames` reads."""
    return int(2.0 * sigma + 0.5) if sigma > 0 else 0


def window_starts(num_frames: int, window: int, overlap: int) -> list[int]:
    """First frames of the sampling windows: a regular grid ``k * (window - overlap)``, ``k = 0 .. n - 1``,
    with the fewest windows that reach ``num_frames``. The last window may run past the end: the
    condition is padded (:func:`sample_windows`). A clip no longer than ``window`` is one window."""
    if num_frames <= window:
        return [0]
    hop = window - overlap
    n = 1 + -(-(num_frames - window) // hop)
    return [k * hop for k in range(n)]


def window_joins(num_frames: int, window: int, overlap: int, crossfade: int | None = None) -> list[int]:
    """Frames where :func:`sample_windows` switches source: both ends of every cross-fade (the edges of
    the inpainted frames and of the freshly generated ones), for seam measurements."""
    cf = max(0, min(CROSSFADE_FRAMES if crossfade is None else int(crossfade), overlap - 1))
    starts = window_starts(num_frames, window, overlap)
    joins = []
    for k in range(1, len(starts), 2):
        s = starts[k]
        joins += [s + overlap - cf, s + overlap]
        if k + 1 < len(starts):
            joins += [s + window - overlap, s + window - overlap + cf]
    return sorted(j for j in set(joins) if 0 < j < num_frames)


#: Frames at each end of the overlap between neighbouring windows that are generated afresh and cross-faded
#: (raised cosine) instead of inpainted; the rest of the overlap is inpainted. A hard switch from
#: inpainted to generated frames left a jerk spike at every join (``chatanyone evaluate``, seams).
CROSSFADE_FRAMES = 12
#: Windows per batched forward pass of :func:`sample_windows` (bounds memory on long audio).
MAX_BATCH_WINDOWS = 32


def crossfade_weights(n: int) -> np.ndarray:
    """``[n]`` weights of the new window over a cross-fade of ``n`` frames: raised cosine from 0 to 1,
    both ends excluded (``0.5 - 0.5 cos(pi (i + 1) / (n + 1))``)."""
    return (0.5 - 0.5 * np.cos(np.pi * (np.arange(n) + 1) / (n + 1))).astype(np.float32)


def crossfade(old: np.ndarray, new: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``(1 - w) * old + w * new``: frames ``[n, D]`` faded from ``old`` into ``new`` with weights ``w``
    ``[n, 1]`` (:func:`crossfade_weights`). Used at the joins of the offline windows and at the streaming
    hop joins."""
    return (1 - w) * old + w * new


def sample_windows(model: MotionDenoiser, scheduler, cond: np.ndarray, style: int, steps: int,
                   window: int, overlap: int, generator: torch.Generator, guidance_scale: float = 1.0,
                   progress: bool = False, desc: str = "", style_vec: torch.Tensor | None = None,
                   style_guidance: float = 1.0, crossfade: int | None = None, eta: float = 0.0,
                   guidance_rescale: float = 0.0, batch_windows: int | None = None) -> np.ndarray:
    """Sample ``[T, D]`` normalised motion for a ``[T, C]`` condition in overlapping windows, two passes.

    The windows sit on the grid of :func:`window_starts` (the condition is padded at the end by repeating
    its last frame, and the result trimmed). Pass 1 samples the even windows, which do not overlap each
    other, as one batch. Pass 2 samples the odd windows as one batch, each inpainting the frames it shares
    with its neighbours on both sides (ChatAnyone's overlap inpainting, from the previous and the next
    window), except the ``crossfade`` frames (default :data:`CROSSFADE_FRAMES`) nearest its own interior,
    which it generates and cross-fades with the neighbour (:func:`crossfade_weights`). Every window is
    a full ``window`` frames long, as in training, and the two passes batch all windows of a clip (up to
    ``batch_windows``, default :data:`MAX_BATCH_WINDOWS`, per forward): long audio costs two sequential
    samplings, not one per window.

    ``style_vec`` ``[1, d_model]``/``style_guidance``: reference style; ``eta``: DDIM stochasticity;
    ``guidance_rescale``: see :func:`motion.diffusion.sample`. :class:`WindowPlan` runs the same batches in
    another order (bounded memory on long audio, :meth:`motion.inference.MotionGenerator.generate`).
    """
    T = cond.shape[0]
    plan = WindowPlan(T, window, overlap, model.config.motion_dim, crossfade, batch_windows)
    out = _Rows(plan.D)
    rows = (lambda a, b: cond[np.minimum(np.arange(a, b), T - 1)])
    for p, g in tqdm(plan.order(), desc=desc, disable=not progress or plan.num_groups < 2, unit="batch",
                     leave=False):
        plan.sample_group(p, g, out, rows, model, scheduler, style, steps, generator, guidance_scale,
                          style_vec, style_guidance, eta, guidance_rescale)
    return out.get(0, T)


class _Rows:
    """Frames ``[base, base + len)`` of a ``[T, D]`` float32 sequence, grown at the end and trimmed at the
    start (the part of a long sequence that is still read)."""

    def __init__(self, D: int):
        self.a = np.zeros((0, D), np.float32)
        self.base = 0

    @property
    def end(self) -> int:
        return self.base + len(self.a)

    def get(self, a: int, b: int) -> np.ndarray:
        """Rows ``[a, b)`` (a view); rows past the written end read as zeros."""
        if a < self.base:
            raise IndexError(f"rows [{a}, {b}) start before the kept [{self.base}, {self.end})")
        if b > self.end:
            self.put(self.end, np.zeros((b - self.end, self.a.shape[1]), np.float32))
        return self.a[a - self.base:b - self.base]

    def put(self, a: int, x: np.ndarray) -> None:
        b = a + len(x)
        if b > self.end:
            grow = max(b - self.end, len(self.a))       # amortised doubling
            self.a = np.concatenate([self.a, np.zeros((grow, self.a.shape[1]), np.float32)])
        self.a[a - self.base:b - self.base] = x

    def trim(self, before: int) -> None:
        """Forget the rows before ``before`` (copies the rest when that frees at least half)."""
        k = min(max(0, before - self.base), len(self.a))
        if k and 2 * k >= len(self.a):
            self.a = self.a[k:].copy()
            self.base += k


class WindowPlan:
    """The windows and batches of :func:`sample_windows` for ``num_frames`` frames of one stage.

    ``groups[p][g]``: the first frames of the windows of pass ``p`` (0: even windows, 1: odd windows)
    sampled together as batch ``g`` (at most ``batch_windows`` windows). Batch ``(1, g)`` reads the
    results of the even windows on both sides of its windows (:meth:`needs_even`), so batches may run in
    any order that respects that; the results do not depend on the order when each batch starts from the
    random state it would have had in :meth:`order` (:func:`rng_states`).
    """

    def __init__(self, num_frames: int, window: int, overlap: int, motion_dim: int,
                 crossfade: int | None = None, batch_windows: int | None = None):
        self.T, self.window, self.overlap, self.D = int(num_frames), int(window), int(overlap), int(motion_dim)
        self.cf = max(0, min(CROSSFADE_FRAMES if crossfade is None else int(crossfade), overlap - 1))
        self.batch = int(batch_windows or MAX_BATCH_WINDOWS)
        starts = window_starts(self.T, window, overlap)
        self.W = min(window, self.T)
        self.Tp = starts[-1] + self.W
        passes = [starts[0::2], starts[1::2]]
        self.groups = [[p[i:i + self.batch] for i in range(0, len(p), self.batch)] for p in passes]
        self.num_groups = len(self.groups[0]) + len(self.groups[1])

    def order(self) -> list[tuple[int, int]]:
        """``(pass, batch)`` in the order of :func:`sample_windows` (all of pass 0, then pass 1)."""
        return [(p, g) for p in (0, 1) for g in range(len(self.groups[p]))]

    def needs_even(self, g: int) -> int:
        """Pass-0 batches that must be done before pass-1 batch ``g`` (a count from batch 0)."""
        last_odd = g * self.batch + len(self.groups[1][g]) - 1      # index among the odd windows
        next_even = min(last_odd + 1, sum(len(x) for x in self.groups[0]) - 1)
        return next_even // self.batch + 1

    def frontier(self, done0: int, done1: int) -> int:
        """First frame that a batch still to run may change, after ``done0`` pass-0 and ``done1`` pass-1
        batches (in order); ``Tp`` when all ran. Frames before it are final."""
        out = [self.Tp]
        if done0 < len(self.groups[0]):
            out.append(self.groups[0][done0][0])
        if done1 < len(self.groups[1]):
            out.append(self.groups[1][done1][0])
        return min(out)

    def sample_group(self, p: int, g: int, out: _Rows, rows, model: MotionDenoiser, scheduler, style: int,
                     steps: int, generator: torch.Generator, guidance_scale: float = 1.0,
                     style_vec: torch.Tensor | None = None, style_guidance: float = 1.0, eta: float = 0.0,
                     guidance_rescale: float = 0.0) -> None:
        """Sample batch ``(p, g)`` and write its windows into ``out``; ``rows(a, b)`` gives the condition
        ``[b - a, C]`` of frames ``[a, b)`` (frames past the end repeat the last one)."""
        group, W, D, overlap, cf, Tp = self.groups[p][g], self.W, self.D, self.overlap, self.cf, self.Tp
        c = torch.from_numpy(np.stack([rows(s, s + W) for s in group]))
        known = mask = None
        if p:
            known = torch.from_numpy(np.stack([out.get(s, s + W) for s in group]))
            mask = torch.zeros((len(group), W, D), dtype=torch.bool)
            for i, s in enumerate(group):
                mask[i, :overlap - cf] = True
                if s + W < Tp:  # a next window exists
                    mask[i, W - overlap + cf:] = True
        sv = None if style_vec is None else style_vec.expand(len(group), -1)
        x0 = diffusion.sample(model, scheduler, c, torch.full((len(group),), style), steps, generator, known,
                              mask, guidance_scale, style_vec=sv, style_guidance=style_guidance,
                              null_style=model.config.num_styles, eta=eta,
                              guidance_rescale=guidance_rescale).numpy()
        w = crossfade_weights(cf)[:, None]
        for i, s in enumerate(group):
            if p and cf:
                a, b = overlap - cf, W - overlap
                prev = out.get(s, s + W)
                x0[i, a:overlap] = crossfade(prev[a:overlap], x0[i, a:overlap], w)      # into this window
                if s + W < Tp:
                    x0[i, b:b + cf] = crossfade(x0[i, b:b + cf], prev[b:b + cf], w)     # out to the next one
            out.put(s, x0[i])


@dataclass(frozen=True)
class StageRun:
    """One stage as sampled for a set of options (:meth:`motion.inference.MotionGenerator.stage_runs`): the denoiser, its
    style id and reference style vector (``[1, d_model]`` or ``None``), the style guidance it applies (1 =
    off), and its :class:`StageSampling` (every field set). Offline (:func:`sample_windows`,
    :class:`WindowPlan`) and streaming (:class:`motion.streaming.MotionStream`) sample through it."""

    model: MotionDenoiser
    style: int
    style_vec: torch.Tensor | None
    style_guidance: float
    sampling: StageSampling

    def sample(self, scheduler, cond: torch.Tensor, generator: torch.Generator, known: torch.Tensor | None = None,
               known_mask: torch.Tensor | None = None, steps: int | None = None) -> torch.Tensor:
        """:func:`motion.diffusion.sample` of ``[B, T, D]`` for a ``[B, T, C]`` condition with this stage's
        style and sampling (``steps``: instead of ``sampling.steps``, e.g. a degraded stream)."""
        s = self.sampling
        sv = None if self.style_vec is None else self.style_vec.expand(cond.shape[0], -1)
        return diffusion.sample(self.model, scheduler, cond, torch.full((cond.shape[0],), self.style),
                                s.steps if steps is None else steps, generator, known, known_mask, s.guidance,
                                style_vec=sv, style_guidance=self.style_guidance,
                                null_style=self.model.config.num_styles, eta=s.eta,
                                guidance_rescale=s.guidance_rescale)

    def sample_windows(self, scheduler, cond: np.ndarray, window: int, overlap: int, generator: torch.Generator,
                       progress: bool = False, desc: str = "", batch_windows: int | None = None) -> np.ndarray:
        """:func:`sample_windows` with this stage's style and sampling (no smoothing)."""
        s = self.sampling
        return sample_windows(self.model, scheduler, cond, self.style, s.steps, window, overlap, generator,
                              s.guidance, progress, desc, self.style_vec, self.style_guidance, eta=s.eta,
                              guidance_rescale=s.guidance_rescale, batch_windows=batch_windows)

    def sample_group(self, plan: "WindowPlan", p: int, g: int, out: "_Rows", rows, scheduler,
                     generator: torch.Generator) -> None:
        """:meth:`WindowPlan.sample_group` with this stage's style and sampling."""
        s = self.sampling
        plan.sample_group(p, g, out, rows, self.model, scheduler, self.style, s.steps, generator, s.guidance,
                          self.style_vec, self.style_guidance, s.eta, s.guidance_rescale)


def rng_states(generator: torch.Generator, stages: list[tuple[WindowPlan, int, float]]) -> list[list[list[torch.Tensor]]]:
    """The state of ``generator`` at the start of every batch when the stages run one after another, each
    in :meth:`WindowPlan.order` (what :func:`sample_windows` does), without sampling: each batch draws its
    initial noise ``[n, W, D]`` and, with ``eta > 0``, one more such draw per DDIM step
    (:func:`motion.diffusion.sample`). ``stages``: ``(plan, steps, eta)`` each; returns
    ``states[stage][pass][batch]`` and leaves ``generator`` where the last stage would."""
    out = []
    for plan, steps, eta in stages:
        st: list[list[torch.Tensor]] = [[], []]
        for p, g in plan.order():
            st[p].append(generator.get_state())
            shape = (len(plan.groups[p][g]), plan.W, plan.D)
            for _ in range(1 + (int(steps) if eta > 0 else 0)):
                torch.randn(shape, generator=generator)
        out.append(st)
    return out
