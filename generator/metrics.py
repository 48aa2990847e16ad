"""Measurements of rendered video: image similarity (PSNR, SSIM) and lip sync (mouth opening vs audio).

* :func:`psnr`: peak signal-to-noise ratio in dB over all pixels and channels, peak 255.
* :func:`ssim`: structural similarity of the luma (BT.601 Y), Wang et al. 2004 with their constants
  (11x11 Gaussian window, sigma 1.5, K1 = 0.01, K2 = 0.03, L = 255), mean over the image.
* :func:`mouth_opening`: per frame, the inner-lip gap (landmarks 13-14) divided by the outer eye-corner
  distance (33-263), measured by MediaPipe's FaceLandmarker (VIDEO mode) on the frames; NaN where no face.
* :func:`lip_sync_r`: Pearson r between that opening and the audio's log RMS energy per frame
  (:func:`motion.evaluate.log_energy`), at lag 0 and the best lag within +-``max_lag`` frames
  (:func:`motion.evaluate.pearson_best_lag`); frames without a face take the median opening.
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from motion.conventions import MODEL_FPS

from .face_keypoints import EYE_CORNERS, MOUTH_CENTRE, create_face_landmarker


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR (dB) of two uint8 images ``[H, W, 3]``; ``inf`` when identical."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0 ** 2 / mse)


def _luma(img: np.ndarray) -> np.ndarray:
    x = img.astype(np.float64)
    return 0.299 * x[..., 0] + 0.587 * x[..., 1] + 0.114 * x[..., 2] if x.ndim == 3 else x


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM of the luma of two uint8 images (module docstring)."""
    import cv2

    x, y = _luma(a), _luma(b)
    C1, C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    g = lambda z: cv2.GaussianBlur(z, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)  # noqa: E731
    mx, my = g(x), g(y)
    sxx, syy, sxy = g(x * x) - mx * mx, g(y * y) - my * my, g(x * y) - mx * my
    m = ((2 * mx * my + C1) * (2 * sxy + C2)) / ((mx * mx + my * my + C1) * (sxx + syy + C2))
    return float(m.mean())


def mouth_opening(frames: Iterable[np.ndarray], fps: float = MODEL_FPS) -> np.ndarray:
    """Inner-lip gap / eye-corner distance per frame ``[T]`` float64 (NaN where no face is found)."""
    import mediapipe as mp

    out = []
    lmk = create_face_landmarker("video")
    try:
        for k, img in enumerate(frames):
            r = lmk.detect_for_video(mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(img)),
                                     int(round(k * 1000 / fps)))
            if not r.face_landmarks:
                out.append(np.nan)
                continue
            p = r.face_landmarks[0]
            H, W = img.shape[:2]
            xy = lambda i: np.array([p[i].x * W, p[i].y * H])  # noqa: E731
            out.append(np.linalg.norm(xy(MOUTH_CENTRE[1]) - xy(MOUTH_CENTRE[0]))
                       / np.linalg.norm(xy(EYE_CORNERS[1]) - xy(EYE_CORNERS[0])))
    finally:
        lmk.close()
    return np.asarray(out, np.float64)


def lip_sync_r(opening: np.ndarray, audio: np.ndarray, fps: float = MODEL_FPS, max_lag: int = 3) -> tuple[float, float, int]:
    """``(r at lag 0, best r, best lag in frames)`` of ``opening [T]`` against the log energy of ``audio``
    (16 kHz mono float32) at ``fps``; positive lag: the mouth is late."""
    from motion.evaluate import log_energy, pearson_best_lag

    x = np.asarray(opening, np.float64).copy()
    if np.isfinite(x).any():
        x[~np.isfinite(x)] = np.nanmedian(x)
    else:
        x[:] = 0.0
    e = log_energy(audio, len(x), fps=fps)
    return pearson_best_lag(x, e, max_lag=max_lag)


__all__ = ["psnr", "ssim", "mouth_opening", "lip_sync_r"]
