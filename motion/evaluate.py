"""Evaluation on held-out real data: ``chatanyone evaluate`` prints a table and writes ``report.md``.

Rows (each next to simple baselines):

* **lip sync** (face): Pearson r between generated jawOpen and the audio's log-RMS-energy envelope at 30 fps
  (and the best lag in frames within +-5), on the held-out FACEGOOD clip, the held-out BEAT2 tail and the
  shipped sample speech; the real FACEGOOD jawOpen gives the reference r. Mouth MAE against the real
  FACEGOOD weights on the held-out clip.
* **silence**: the largest jawOpen inside any silence of at least 300 ms (silence: log energy more than
  25 dB below the clip's 95th percentile, i.e. below a typical recording's
  noise floor relative to its speech), leaving out the 100 ms closing/opening transition at each edge.
* **body**: per-joint-group angular speed (rad/s) of generated vs real BEAT2 motion on the held-out tail,
  split into speech and pause frames; joint-limit violations (:data:`JOINT_LIMITS_RAD`).
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .conventions import ARKIT_INDEX, ARKIT_MOUTH, JOINT_INDEX, SMPLX_JOINT_NAMES
from .rotations import quat_to_axis_angle

#: Anatomical limits used for violation counts: the largest rotation angle (radians) of each joint away
#: from the T-pose rest. Conservative ranges from standard joint range-of-motion tables (e.g. AAOS,
#: Greene & Heckman 1994): spine segments 40 deg, neck/head 60 deg, collar 35 deg, shoulder 160 deg from
#: the T-pose (arms down is about 75 deg), elbow 150 deg, wrist 90 deg, fingers 110 deg, thumb 90 deg.
JOINT_LIMITS_RAD: dict[str, float] = {
    "spine": np.deg2rad(40), "neck": np.deg2rad(60), "head": np.deg2rad(60), "collar": np.deg2rad(35),
    "shoulder": np.deg2rad(160), "elbow": np.deg2rad(150), "wrist": np.deg2rad(90),
    "finger": np.deg2rad(110), "thumb": np.deg2rad(90),
}
GROUPS = {
    "spine": ["spine1", "spine2", "spine3"], "neck+head": ["neck", "head"],
    "collars": ["left_collar", "right_collar"], "shoulders": ["left_shoulder", "right_shoulder"],
    "elbows": ["left_elbow", "right_elbow"], "wrists": ["left_wrist", "right_wrist"],
    "fingers": [n for n in SMPLX_JOINT_NAMES[25:]],
}


def joint_limit(name: str) -> float | None:
    """The limit (radians) for a joint name, or None for joints not checked (legs, root, jaw, eyes)."""
    if name.startswith("spine"):
        return JOINT_LIMITS_RAD["spine"]
    for key in ("neck", "head", "collar", "shoulder", "elbow", "wrist", "thumb"):
        if name.endswith(key) or key in name:
            return JOINT_LIMITS_RAD[key]
    if any(f in name for f in ("index", "middle", "ring", "pinky")):
        return JOINT_LIMITS_RAD["finger"]
    return None


def log_energy(audio: np.ndarray, num_frames: int, sr: int = 16000, fps: float = 30.0) -> np.ndarray:
    """Log RMS energy (natural log) per frame ``[num_frames]``, frame i centred at i/fps seconds."""
    hop = sr / fps
    win = int(2 * hop)
    out = np.empty(num_frames)
    for i in range(num_frames):
        c = int(i * hop + hop / 2)
        seg = audio[max(0, c - win // 2): c + win // 2]
        out[i] = np.log(np.sqrt(np.mean(seg.astype(np.float64) ** 2)) + 1e-5) if len(seg) else np.log(1e-5)
    return out


def pearson_best_lag(x: np.ndarray, y: np.ndarray, max_lag: int = 5) -> tuple[float, float, int]:
    """Pearson r at lag 0, and the best r with its lag (frames; positive: ``x`` lags ``y``)."""
    def r(a, b):
        if a.std() < 1e-8 or b.std() < 1e-8:
            return 0.0
        return float(np.corrcoef(a, b)[0, 1])
    r0 = r(x, y)
    best = (r0, 0)
    for lag in range(-max_lag, max_lag + 1):
        if lag > 0:
            v = r(x[lag:], y[:-lag])
        elif lag < 0:
            v = r(x[:lag], y[-lag:])
        else:
            v = r0
        if v > best[0]:
            best = (v, lag)
    return r0, best[0], best[1]


def silences(energy: np.ndarray, fps: float = 30.0, min_s: float = 0.3, db_below: float = 25.0) -> list[tuple[int, int]]:
    """Frame ranges ``[start, stop)`` of silences at least ``min_s`` long."""
    thresh = np.percentile(energy, 95) - db_below / 20 * np.log(10)
    quiet = energy < thresh
    out, start = [], None
    for i, q in enumerate(np.append(quiet, False)):
        if q and start is None:
            start = i
        elif not q and start is not None:
            if i - start >= int(round(min_s * fps)):
                out.append((start, i))
            start = None
    return out


def max_jaw_in_silence(jaw: np.ndarray, energy: np.ndarray, fps: float = 30.0,
                       edge_s: float = 0.1) -> tuple[float, int]:
    """(largest jawOpen inside any silence >= 300 ms, number of such silences).

    The first and last ``edge_s`` seconds (100 ms) of each silence are the mouth's closing and opening
    transitions (coarticulation) and are not counted; on the real FACEGOOD captures, jawOpen stays below
    0.01 in the rest of nearly every silence.
    """
    sil = silences(energy, fps)
    if not sil:
        return 0.0, 0
    k = int(round(edge_s * fps))
    inner = [jaw[a + k:b - k] for a, b in sil if b - a > 2 * k]
    return float(max(x.max() for x in inner)), len(sil)


def angular_speed(rotations: np.ndarray, fps: float) -> np.ndarray:
    """Per-frame, per-joint angular speed ``[T-1, J]`` in rad/s from local quaternions ``[T, J, 4]``."""
    from scipy.spatial.transform import Rotation as R
    T, J, _ = rotations.shape
    a = R.from_quat(rotations[:-1].reshape(-1, 4))
    b = R.from_quat(rotations[1:].reshape(-1, 4))
    return (a.inv() * b).magnitude().reshape(T - 1, J) * fps


def limit_violations(rotations: np.ndarray) -> dict[str, int]:
    """Frames x joints beyond :data:`JOINT_LIMITS_RAD`, per joint name (only non-zero entries)."""
    ang = np.linalg.norm(quat_to_axis_angle(rotations), axis=-1)
    out = {}
    for j, n in enumerate(SMPLX_JOINT_NAMES):
        lim = joint_limit(n)
        if lim is not None:
            k = int((ang[:, j] > lim).sum())
            if k:
                out[n] = k
    return out


def group_speed(rotations: np.ndarray, fps: float, frames: np.ndarray | None = None) -> dict[str, float]:
    """Mean angular speed (rad/s) per joint group, optionally over a subset of frames (bool ``[T-1]``)."""
    sp = angular_speed(rotations, fps)
    if frames is not None:
        sp = sp[frames[: len(sp)]]
    return {g: float(sp[:, [JOINT_INDEX[n] for n in names]].mean()) if len(sp) else float("nan")
            for g, names in GROUPS.items()}


@dataclass
class LipSyncRow:
    name: str
    r: float
    best_r: float
    best_lag: int
    max_jaw_silence: float
    n_silences: int


def lip_sync_row(name: str, jaw: np.ndarray, audio: np.ndarray, fps: float = 30.0) -> LipSyncRow:
    e = log_energy(audio, len(jaw), fps=fps)
    r0, rb, lag = pearson_best_lag(jaw, e)
    mj, ns = max_jaw_in_silence(jaw, e, fps)
    return LipSyncRow(name, r0, rb, lag, mj, ns)


def _fmt_table(headers: list[str], rows: list[list]) -> str:
    def f(v):
        return f"{v:.3f}" if isinstance(v, float) else str(v)
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(f(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


def run(checkpoint: str | None = None, out: str | Path = "eval", seed: int = 0, config: str | None = None) -> str:
    """Evaluate a checkpoint on held-out clips; returns the markdown report (also written to ``out``).

    The held-out clips are those of the checkpoint's own training config, or of ``config`` (a TOML file)
    so that two checkpoints can be compared on the same clips.
    """
    from .audio import load_audio
    from .inference import MotionGenerator
    from .train import TrainConfig, load_clips, split_holdout

    gen = MotionGenerator(checkpoint)
    tcfg = TrainConfig.from_toml(config) if config else TrainConfig(**gen.models.info["training"]["config"])
    _, held = split_holdout(load_clips(tcfg), tcfg)
    jaw_i = ARKIT_INDEX["jawOpen"]
    mouth = list(ARKIT_MOUTH)
    lip_rows, mae_rows, body_rows, speed_rows = [], [], [], []
    sample = Path(__file__).resolve().parents[1] / "chatanyone" / "samples"
    wavs = sorted(sample.glob("*.wav"))
    for w in wavs:
        audio = load_audio(w)
        clip = gen.generate(audio, seed=seed)
        lip_rows.append(lip_sync_row(f"sample {w.name} (model)", clip.face[:, jaw_i], audio))
    for h in held:
        clip = gen.generate(h.audio, seed=seed)
        T = min(clip.num_frames, h.clip.num_frames)
        e = log_energy(h.audio, T)
        lip_rows.append(lip_sync_row(f"{h.name} (model)", clip.face[:T, jaw_i], h.audio[: int(T / 30 * 16000)]))
        baseline_jaw = np.clip((e - np.percentile(e, 5)) / (np.ptp(e) + 1e-8), 0, 1)
        lip_rows.append(lip_sync_row(f"{h.name} (baseline: energy jaw)", baseline_jaw, h.audio[: int(T / 30 * 16000)]))
        if h.face_mask[jaw_i]:
            lip_rows.append(lip_sync_row(f"{h.name} (real capture)", h.clip.face[:T, jaw_i], h.audio[: int(T / 30 * 16000)]))
            real = h.clip.face[:T][:, mouth]
            mae_rows.append([f"{h.name} ({h.dataset})", float(np.abs(clip.face[:T][:, mouth] - real).mean()),
                             float(np.abs(real.mean(0, keepdims=True) - real).mean()),
                             float(np.abs(real).mean())])
        if h.dataset == "beat2":  # the only held-out data with real arms and fingers
            speech = np.zeros(T - 1, bool)
            thr = np.percentile(e, 95) - 25 / 20 * np.log(10)
            speech[:] = e[:-1] > thr
            for label, rot in (("model", clip.rotations[:T]), ("real BEAT2", h.clip.rotations[:T])):
                gs = group_speed(rot, 30.0, speech)
                gp = group_speed(rot, 30.0, ~speech)
                speed_rows.append([f"{h.name} {label}"] + [f"{gs[g]:.2f} / {gp[g]:.2f}" for g in GROUPS])
                viol = limit_violations(rot)
                body_rows.append([f"{h.name} {label}", sum(viol.values()), ", ".join(f"{k}:{v}" for k, v in viol.items()) or "-"])
    report = ["# Evaluation report", "", f"checkpoint: {checkpoint or 'shipped default'}; seed {seed}; "
              f"held-out clips from {config or 'its training config'}", "",
              "## Lip sync: jawOpen vs audio log-energy (Pearson r; best r within +-5 frames)", "",
              _fmt_table(["clip", "r", "best r", "lag (frames)", "max jawOpen in silences >= 300 ms", "silences"],
                         [[r.name, r.r, r.best_r, r.best_lag, r.max_jaw_silence, r.n_silences] for r in lip_rows]),
              "", "## Mouth MAE on held-out clips (27 mouth channels; video targets are MediaPipe's blendshape scores)", "",
              _fmt_table(["clip", "model MAE", "baseline: mean face MAE", "baseline: zero face MAE"], mae_rows),
              "", "## Angular speed (rad/s), speech / pause", "",
              _fmt_table(["clip"] + list(GROUPS), speed_rows),
              "", "## Joint-limit violations (frames x joints beyond JOINT_LIMITS_RAD)", "",
              _fmt_table(["clip", "violations", "where"], body_rows), ""]
    text = "\n".join(report)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.md").write_text(text)
    return text


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="chatanyone evaluate")
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--out", default="eval")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--config", default=None, help="take the held-out clips from this training config")
    a = ap.parse_args(argv)
    print(run(a.checkpoint, a.out, a.seed, a.config))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
