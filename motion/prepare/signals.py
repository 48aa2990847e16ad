"""Time-series helpers of :mod:`motion.prepare`: runs of valid frames, per-run Savitzky-Golay smoothing and
linear resampling that keeps track of which target frames are valid."""
from __future__ import annotations

import numpy as np


def _runs(v: np.ndarray) -> list[tuple[int, int]]:
    """``[start, stop)`` runs of True in a 1-D bool array."""
    v = np.asarray(v, bool).astype(np.int8)
    d = np.diff(np.concatenate([[0], v, [0]]))
    return list(zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1)))


def smooth_runs(x: np.ndarray, valid: np.ndarray, window_length: int, polyorder: int) -> np.ndarray:
    """Savitzky-Golay smoothing of ``x [T, ...]`` along time on each run of ``valid [T]`` frames."""
    from scipy.signal import savgol_filter

    out = np.array(x, np.float64, copy=True)
    for a, b in _runs(valid):
        if b - a >= window_length:
            out[a:b] = savgol_filter(out[a:b], window_length, polyorder, axis=0, mode="interp")
    return out


def resample_valid(t_src: np.ndarray, x: np.ndarray, valid: np.ndarray, t_dst: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Linear resampling of ``x [N, ...]`` from times ``t_src [N]`` to ``t_dst [M]`` (seconds).

    A target is valid when both bracketing source frames are valid (or the one it coincides with);
    invalid targets are 0. Returns ``(x [M, ...] float64, valid [M] bool)``.
    """
    t_src = np.asarray(t_src, np.float64)
    x = np.nan_to_num(np.asarray(x, np.float64))
    valid = np.asarray(valid, bool)
    N = len(t_src)
    if N == 1:
        return np.repeat(x, len(t_dst), 0), np.repeat(valid, len(t_dst))
    i1 = np.clip(np.searchsorted(t_src, t_dst, side="right"), 1, N - 1)
    i0 = i1 - 1
    w = np.clip((t_dst - t_src[i0]) / np.maximum(t_src[i1] - t_src[i0], 1e-9), 0.0, 1.0)
    v = (valid[i0] & valid[i1]) | ((w < 1e-6) & valid[i0]) | ((w > 1 - 1e-6) & valid[i1])
    wb = w.reshape(-1, *([1] * (x.ndim - 1)))
    y = (1 - wb) * x[i0] + wb * x[i1]
    y[~v] = 0.0
    return y, v
