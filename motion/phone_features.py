"""Speaker-independent audio features: running mean normalisation, and a distilled frame-level phone classifier.

* :class:`RunningNorm`: removes what a different voice, microphone or loudness changes but articulation does
  not: the long-term log-mel spectrum (cepstral-mean-style, per band), the speech level (log RMS) and the
  speaker's pitch register (log F0).  The level is a running percentile of the log RMS; spectrum and
  pitch are running means over the *speech* frames seen so far (cumulative means with a prior weight of
  :data:`NORM_WARMUP_FRAMES` frames, then exponential moving averages with time constant
  :data:`NORM_TAU_FRAMES`).  Frame ``i`` depends on frames ``<= i`` only, so a stream that feeds frames in
  order gets exactly the offline numbers (:class:`motion.features.StreamingFeatures`).  This is the
  ``running`` model-input layout of :meth:`motion.features.AudioFeatures.stack` (checkpoints >= 0.5.0).

* :class:`PhoneClassifier`: a small 1-D convolutional network over the normalised 30 fps features that
  outputs posteriors over the 40 phones of :data:`motion.features.PHONES`, *distilled* from pocketsphinx
  all-phone decoding on the training audio (:func:`train_classifier`; weights in
  ``motion/checkpoints/phone_classifier.safetensors``, which also hold the running normalisation's prior
  spectrum).  Receptive field: :data:`CLASSIFIER_LEFT_FRAMES` frames before and
  :data:`CLASSIFIER_LOOKAHEAD_FRAMES` frames (100 ms) after each frame, so it is frame-exact in streaming.
  Measured: trained on three speakers (FACEGOOD, BEAT2 Scott, Obama) it agrees with pocketsphinx on only
  29 % of the frames of unseen speakers, and on ARCTIC a0009 its frame accuracy is 0.20 against
  pocketsphinx's 0.57, so pocketsphinx (268x real time on 2 cores, fast enough) is the default phone
  source; the classifier stays as ``extract_features(..., phones="classifier")``.

``python benchmarks/phone_features.py`` measures both against the ARCTIC a0009 ``.lab``.
"""
from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .conventions import MODEL_FPS, SAMPLE_RATE

__all__ = [
    "NORM_WARMUP_FRAMES", "NORM_TAU_FRAMES", "CLASSIFIER_LOOKAHEAD_FRAMES", "CLASSIFIER_LEFT_FRAMES",
    "NormState", "RunningNorm", "PhoneClassifier", "classifier_path", "load_classifier", "phone_posteriors",
    "classifier_input",
]

#: Weight (in frames at 30 fps) of the priors in the running means: they start as cumulative means of the
#: frames seen so far plus this many prior frames (small: the priors matter only for the first 0.1 s) ...
NORM_WARMUP_FRAMES = 3
#: ... and the time constant (frames at 30 fps, 3 s) of the exponential moving average after that.
NORM_TAU_FRAMES = 90
#: The running level is the 90th percentile of the log RMS over the last ``LEVEL_HISTORY_FRAMES`` frames (10 s;
#: all frames so far at the start): a percentile of every frame moves exactly with the gain, whatever the
#: pauses and noise floor.  A frame counts as speech for the running spectrum and pitch when it is no more
#: than ``SPEECH_BELOW_LEVEL`` (natural-log units, 8.7 dB) below that level.
MEL_FLOOR_FEATURES = 1e-6   # motion.features.MEL_FLOOR
MEL_FLOOR_RELATIVE = 1e-9
MEL_REL_CLIP = 12.0         # relative log-mel is clipped to +-12 (digital silence would be ~-13)
LEVEL_PERCENTILE = 90.0
LEVEL_HISTORY_FRAMES = 300
SPEECH_BELOW_LEVEL = 1.0
LEVEL_PRIOR = float(np.log(0.05))
PITCH_PRIOR = float(np.log(150.0))

#: Frames (30 fps) after a frame that the classifier reads: its added lookahead (100 ms).
CLASSIFIER_LOOKAHEAD_FRAMES = 3
#: Frames before a frame that the classifier reads.
CLASSIFIER_LEFT_FRAMES = 13
#: (left, right) zero padding of the classifier's four kernel-5 convolutions
_PADS = ((3, 1), (3, 1), (3, 1), (4, 0))
CLASSIFIER_INPUT_DIM = 83  # normalised mel (80), level-relative energy, register-relative pitch, voiced
CLASSIFIER_FILE = "phone_classifier.safetensors"


# ------------------------------------------------------------------------------------ normalisation

@dataclass
class NormState:
    """State of :class:`RunningNorm` after some frames: running means, their speech-frame counts, and the log
    RMS of the last :data:`LEVEL_HISTORY_FRAMES` frames."""

    mel_mean: np.ndarray          # [80] float64, log-mel (natural log of power)
    level: float = LEVEL_PRIOR    # log RMS
    pitch: float = PITCH_PRIOR    # log F0 (Hz)
    n_speech: int = 0
    n_voiced: int = 0
    history: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def copy(self) -> "NormState":
        return NormState(self.mel_mean.copy(), self.level, self.pitch, self.n_speech, self.n_voiced,
                         self.history.copy())


class RunningNorm:
    """Causal running normalisation of 30 fps mel / energy / pitch (see the module docstring).

    Args:
        mel_prior: ``[80]`` prior mean log-mel spectrum (default: the one stored with the classifier).

    ``normalise`` may be called repeatedly with consecutive blocks of frames; the result does not depend on
    how the frames are cut into blocks.
    """

    def __init__(self, mel_prior: np.ndarray | None = None):
        if mel_prior is None:
            mel_prior = _shipped_mel_prior()
        self.state = NormState(np.asarray(mel_prior, np.float64).copy())

    def normalise(self, mel: np.ndarray, energy: np.ndarray, pitch: np.ndarray, voiced: np.ndarray):
        """Normalise ``T`` new frames.

        Args:
            mel: ``[T, 80]`` log-mel (natural log of power); energy: ``[T]`` log RMS; pitch: ``[T]`` log F0
                (0 where unvoiced); voiced: ``[T]`` in {0, 1}.  As in :class:`motion.features.AudioFeatures`.
        Returns:
            ``(mel_rel [T, 80], energy_rel [T], pitch_rel [T])`` float32: each frame minus the running mean
            after that frame (log units; pitch_rel is 0 where unvoiced).
        """
        s = self.state
        T = len(energy)
        # re-floor the log-mel power 30 dB lower than the features' 1e-6, so that quiet bands of quiet speech
        # still move with the gain instead of sitting on the floor
        mel = np.log(np.maximum(np.exp(np.asarray(mel, np.float64)) - MEL_FLOOR_FEATURES, 0.0) + MEL_FLOOR_RELATIVE)
        mel_rel = np.empty((T, mel.shape[1]), np.float32)
        e_rel = np.empty(T, np.float32)
        p_rel = np.zeros(T, np.float32)
        m = s.mel_mean
        level, pm, ns, nv = s.level, s.pitch, s.n_speech, s.n_voiced
        hist = np.concatenate([s.history, np.asarray(energy, np.float64)])
        h0 = len(s.history)
        for i in range(T):
            e = float(energy[i])
            level = float(np.percentile(hist[max(0, h0 + i + 1 - LEVEL_HISTORY_FRAMES):h0 + i + 1], LEVEL_PERCENTILE))
            if e > level - SPEECH_BELOW_LEVEL:
                ns += 1
                a = max(1.0 / (NORM_WARMUP_FRAMES + ns), 1.0 / NORM_TAU_FRAMES)
                m = m + a * (mel[i] - m)
                if voiced[i] > 0:
                    nv += 1
                    b = max(1.0 / (NORM_WARMUP_FRAMES + nv), 1.0 / NORM_TAU_FRAMES)
                    pm += b * (float(pitch[i]) - pm)
            mel_rel[i] = np.clip(mel[i] - m, -MEL_REL_CLIP, MEL_REL_CLIP)
            e_rel[i] = e - level
            if voiced[i] > 0:
                p_rel[i] = float(pitch[i]) - pm
        self.state = NormState(m, level, pm, ns, nv, hist[-LEVEL_HISTORY_FRAMES:].copy())
        return mel_rel, e_rel, p_rel


#: Scales of the classifier/model input built from the relative features (log units -> about unit range)
MEL_REL_SCALE = 3.0
ENERGY_REL_SCALE = 1.5
PITCH_REL_SCALE = 0.3


def classifier_input(mel_rel: np.ndarray, energy_rel: np.ndarray, pitch_rel: np.ndarray,
                     voiced: np.ndarray) -> np.ndarray:
    """``[T, 83]`` float32 input of :class:`PhoneClassifier` (and the first 83 model-input columns of the
    ``running`` feature layout): relative mel / energy / pitch scaled by fixed constants, then voicing."""
    return np.concatenate([mel_rel / MEL_REL_SCALE, (energy_rel / ENERGY_REL_SCALE)[:, None],
                           (pitch_rel / PITCH_REL_SCALE)[:, None], np.asarray(voiced)[:, None]],
                          axis=1).astype(np.float32)


# ------------------------------------------------------------------------------------- classifier

class PhoneClassifier(nn.Module):
    """Frame-level phone classifier: ``[B, T, 83]`` normalised features -> ``[B, T, n_phones]`` logits.

    Four kernel-5 convolutions (per-frame LayerNorm, GELU, 128 channels) with asymmetric zero padding (see
    ``_PADS``): output frame ``t`` reads input frames ``t - 13 .. t + 3`` and nothing else.  About 0.3 M parameters.
    """

    def __init__(self, n_phones: int = 40, in_dim: int = CLASSIFIER_INPUT_DIM, width: int = 128):
        super().__init__()
        dims = [in_dim, width, width, width, width]
        self.convs = nn.ModuleList(nn.Conv1d(dims[i], dims[i + 1], 5) for i in range(4))
        self.norms = nn.ModuleList(nn.LayerNorm(width) for _ in range(4))  # per frame: no whole-sequence stats
        self.out = nn.Conv1d(width, n_phones, 1)
        self.drop = nn.Dropout(0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.transpose(1, 2)
        for conv, norm, pad in zip(self.convs, self.norms, _PADS):
            h = conv(nn.functional.pad(h, pad))
            h = self.drop(nn.functional.gelu(norm(h.transpose(1, 2)).transpose(1, 2)))
        return self.out(h).transpose(1, 2)


def classifier_path() -> Path:
    """The shipped classifier weights (``motion/checkpoints/phone_classifier.safetensors``)."""
    return Path(str(resources.files("motion").joinpath("checkpoints", CLASSIFIER_FILE)))


_CACHE: dict[str, tuple[PhoneClassifier, np.ndarray, dict]] = {}
_LOCK = threading.Lock()


def load_classifier(path: str | os.PathLike | None = None) -> tuple[PhoneClassifier, np.ndarray, dict]:
    """``(model in eval mode, mel_prior [80], info)`` from a classifier ``.safetensors`` (cached per path).

    Raises:
        FileNotFoundError: no such file.
    """
    from safetensors import safe_open

    p = str(path or classifier_path())
    with _LOCK:
        if p not in _CACHE:
            if not os.path.isfile(p):
                raise FileNotFoundError(f"phone classifier weights not found: {p}")
            with safe_open(p, "pt") as f:
                info = json.loads(f.metadata().get("chatanyone_phone_classifier", "{}"))
                tensors = {k: f.get_tensor(k) for k in f.keys()}
            model = PhoneClassifier(int(info.get("n_phones", 40)))
            model.load_state_dict({k[6:]: v.float() for k, v in tensors.items() if k.startswith("model.")})
            model.eval()
            _CACHE[p] = (model, tensors["mel_prior"].double().numpy(), info)
        return _CACHE[p]


def _shipped_mel_prior() -> np.ndarray:
    try:
        return load_classifier()[1]
    except FileNotFoundError:
        from .features import MEL_MEAN, N_MELS
        return np.full(N_MELS, MEL_MEAN, np.float64)


def phone_posteriors(x: np.ndarray, path: str | os.PathLike | None = None) -> np.ndarray:
    """Phone posteriors ``[T, 40]`` float32 (rows sum to 1) for classifier input ``x`` ``[T, 83]``
    (:func:`classifier_input`).  Frame ``t`` reads ``x[t - 13 : t + 4]`` (zeros beyond the ends)."""
    model, _, _ = load_classifier(path)
    with torch.no_grad():
        logits = model(torch.from_numpy(np.ascontiguousarray(x, np.float32))[None])[0]
    return torch.softmax(logits, -1).numpy().astype(np.float32)


# ------------------------------------------------------------------------------------ distillation

@dataclass
class DistillConfig:
    """Training of the phone classifier on pocketsphinx all-phone labels of the training audio."""

    steps: int = 3000
    batch: int = 32
    window: int = 150          # frames (5 s)
    lr: float = 2e-3
    speed_factors: list[float] = field(default_factory=lambda: [0.9, 1.1])
    gain_db: tuple[float, float] = (-12.0, 6.0)
    seed: int = 0


def _teacher(audio: np.ndarray, T: int) -> np.ndarray:
    from .features import _phone_posteriors, phone_segments
    segs = phone_segments(audio)
    n100 = int(np.ceil(len(audio) / 160)) + 1
    return _phone_posteriors(segs, n100, T, 30.0)


def distillation_items(audios: list[tuple[str, np.ndarray]], cfg: DistillConfig, progress: bool = True):
    """``[(name, x [T, 83], teacher [T, 40])]``: each audio, its speed-perturbed copies (teacher labels
    re-timed, not re-decoded) and a random gain per copy."""
    import soxr
    from tqdm.auto import tqdm

    from .features import extract_features
    rng = np.random.default_rng(cfg.seed)
    out = []
    for name, a in tqdm(audios, desc="teacher (pocketsphinx)", disable=not progress):
        T = int(round(len(a) / SAMPLE_RATE * MODEL_FPS))
        if T < 10:
            continue
        teach = _teacher(a, T)
        for f in [1.0] + list(cfg.speed_factors):
            y = a if f == 1.0 else soxr.resample(a, SAMPLE_RATE * f, SAMPLE_RATE).astype(np.float32)
            y = np.clip(y * 10 ** (rng.uniform(*cfg.gain_db) / 20), -1, 1).astype(np.float32)
            Tf = int(round(len(y) / SAMPLE_RATE * MODEL_FPS))
            feats = extract_features(y, SAMPLE_RATE, MODEL_FPS, num_frames=Tf, phones=False)
            x = classifier_input(*RunningNorm(_MEL_PRIOR_FOR_TRAINING).normalise(
                feats.mel, feats.energy, feats.pitch, feats.voiced), feats.voiced)
            idx = np.minimum(np.round(np.arange(Tf) * f).astype(int), T - 1)
            out.append((f"{name}@{f:g}", x, teach[idx]))
    return out


_MEL_PRIOR_FOR_TRAINING: np.ndarray | None = None


def train_classifier(audios: list[tuple[str, np.ndarray]], out: str | os.PathLike,
                     cfg: DistillConfig | None = None, progress: bool = True) -> dict:
    """Distil :class:`PhoneClassifier` from pocketsphinx on ``audios`` (``[(name, samples 16 kHz)]``) and write
    ``out`` (safetensors: ``model.*`` weights, ``mel_prior``; metadata ``chatanyone_phone_classifier``).

    Returns the info dict (data, steps, final loss, frame agreement with the teacher on the training data).
    """
    global _MEL_PRIOR_FOR_TRAINING
    from safetensors.torch import save_file
    from tqdm.auto import tqdm

    from .features import PHONES, extract_features
    cfg = cfg or DistillConfig()
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    # the prior: mean log-mel over the speech frames of the training audio
    acc, n = 0.0, 0
    for _, a in audios:
        f = extract_features(a, phones=False)
        sp = f.energy > LEVEL_PRIOR - SPEECH_BELOW_LEVEL
        acc = acc + f.mel[sp].sum(0)
        n += int(sp.sum())
    _MEL_PRIOR_FOR_TRAINING = np.asarray(acc / max(n, 1), np.float64)
    items = distillation_items(audios, cfg, progress)
    lens = np.array([len(x) for _, x, _ in items], float)
    model = PhoneClassifier(len(PHONES))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.lr, total_steps=cfg.steps, pct_start=0.1)
    W, ema = cfg.window, None
    model.train()
    for step in tqdm(range(cfg.steps), desc="phone classifier", disable=not progress):
        xs, ys = [], []
        for k in rng.choice(len(items), cfg.batch, p=lens / lens.sum()):
            _, x, y = items[k]
            s = int(rng.integers(0, max(1, len(x) - W + 1)))
            xw, yw = x[s:s + W], y[s:s + W]
            if len(xw) < W:
                xw = np.pad(xw, ((0, W - len(xw)), (0, 0)))
                yw = np.pad(yw, ((0, W - len(yw)), (0, 0)))
                yw[len(x) - s:, 0] = 1.0
            xs.append(xw), ys.append(yw)
        x = torch.from_numpy(np.stack(xs))
        y = torch.from_numpy(np.stack(ys))
        loss = -(y * torch.log_softmax(model(x), -1)).sum(-1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        ema = loss.item() if ema is None else 0.98 * ema + 0.02 * loss.item()
    model.eval()
    with torch.no_grad():
        agree = [float((model(torch.from_numpy(x)[None])[0].argmax(-1).numpy() == y.argmax(-1)).mean())
                 for _, x, y in items]
    info = {"n_phones": len(PHONES), "phones": list(PHONES), "teacher": "pocketsphinx all-phone (en-us)",
            "train_audio": sorted({name for name, _ in audios}),
            "train_seconds": round(sum(len(a) for _, a in audios) / SAMPLE_RATE, 1),
            "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.__dict__.items()},
            "final_loss": round(float(ema), 4), "train_frame_agreement": round(float(np.mean(agree)), 3),
            "lookahead_frames": CLASSIFIER_LOOKAHEAD_FRAMES, "left_frames": CLASSIFIER_LEFT_FRAMES}
    tensors = {f"model.{k}": v.detach().half().contiguous() for k, v in model.state_dict().items()}
    tensors["mel_prior"] = torch.from_numpy(_MEL_PRIOR_FOR_TRAINING.astype(np.float32))
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out), metadata={"chatanyone_phone_classifier": json.dumps(info)})
    with _LOCK:
        _CACHE.pop(str(out), None)
    _MEL_PRIOR_FOR_TRAINING = None
    return info


def training_audio(config: str | os.PathLike) -> list[tuple[str, np.ndarray]]:
    """The audio of every training clip of a :mod:`motion.train` config (held-out clips and tails excluded)
    plus the English audio-only takes of the same speakers (BEAT2 ``audio_only``; FACEGOOD's audio-only
    takes are Mandarin, like its paired clips, and were left out to halve the teacher's time)."""
    from .audio import load_audio
    from .datasets import data_root
    from .train import TrainConfig, load_clips, split_holdout
    cfg = TrainConfig.from_toml(config)
    train, _ = split_holdout(load_clips(cfg), cfg)
    out = [(c.name, c.audio) for c in train if c.audio is not None]
    root = Path(cfg.data_root) if cfg.data_root else data_root()
    for sub in ("beat2/audio_only",):
        for p in sorted((root / sub).glob("*.wav")):
            out.append((f"{sub}/{p.stem}", load_audio(p)))
    return out


def main(argv: list[str] | None = None) -> int:
    import argparse
    ap = argparse.ArgumentParser(prog="python -m motion.phone_features",
                                 description="Distil the frame-level phone classifier from pocketsphinx.")
    ap.add_argument("config", help="training config whose training clips give the audio (configs/default.toml)")
    ap.add_argument("-o", "--out", default=str(classifier_path()))
    ap.add_argument("--steps", type=int, default=DistillConfig.steps)
    a = ap.parse_args(argv)
    info = train_classifier(training_audio(a.config), a.out, DistillConfig(steps=a.steps))
    print(json.dumps({k: v for k, v in info.items() if k != "train_audio"}, indent=1))
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
