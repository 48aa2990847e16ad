"""Evaluation on held-out real data: ``chatanyone evaluate`` prints a table and writes ``report.md``.

Rows (each next to simple baselines):

* **lip sync against real capture** (:func:`lipsync_section`, metrics in :mod:`motion.lipsync`): per
  held-out speaker's clip (``holdout_clips`` of the config: tracked talking videos from a ``chatanyone
  prepare`` folder, and the held-out FACEGOOD take), best-lag r of jawOpen and of every moving mouth channel,
  lip error raw and calibrated on training speakers, articulation at force-aligned phones; the checkpoint
  offline and streaming (and optionally a baseline checkpoint) next to the phone-rule, energy and mean faces.
* **diagnostic only**: Pearson r between generated jawOpen and the audio's log-RMS-energy envelope at 30 fps
  (and the best lag in frames within +-5), on the held-out FACEGOOD clip, the held-out BEAT2 tail and the
  shipped sample speech; it chooses nothing. Mouth MAE against the real FACEGOOD weights on the held-out clip.
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

from .conventions import ARKIT_INDEX, ARKIT_MOUTH, JOINT_INDEX, MODEL_FPS, SAMPLE_RATE, SMPLX_JOINT_NAMES
from .lipsync import pearson_best_lag  # noqa: F401  (re-exported: prepare and tests import it from here)
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


def log_energy(audio: np.ndarray, num_frames: int, sr: int = SAMPLE_RATE, fps: float = MODEL_FPS) -> np.ndarray:
    """Log RMS energy (natural log) per frame ``[num_frames]``, frame i centred at i/fps seconds."""
    hop = sr / fps
    win = int(2 * hop)
    out = np.empty(num_frames)
    for i in range(num_frames):
        c = int(i * hop + hop / 2)
        seg = audio[max(0, c - win // 2): c + win // 2]
        out[i] = np.log(np.sqrt(np.mean(seg.astype(np.float64) ** 2)) + 1e-5) if len(seg) else np.log(1e-5)
    return out


def silences(energy: np.ndarray, fps: float = MODEL_FPS, min_s: float = 0.3, db_below: float = 25.0) -> list[tuple[int, int]]:
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


def max_jaw_in_silence(jaw: np.ndarray, energy: np.ndarray, fps: float = MODEL_FPS,
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


def lip_sync_row(name: str, jaw: np.ndarray, audio: np.ndarray, fps: float = MODEL_FPS) -> LipSyncRow:
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


def _head_angles(rot: np.ndarray) -> np.ndarray:
    """``[T, 2, 3]`` axis-angle (radians) of neck and head."""
    from .conventions import HEAD_JOINTS
    return quat_to_axis_angle(rot[:, list(HEAD_JOINTS)])


def _body_row(name: str, rot: np.ndarray, audio: np.ndarray, real_hist: np.ndarray | None,
              speech: np.ndarray) -> list:
    from . import metrics as M
    from .conventions import BODY_STAGE_JOINTS
    pos = M.joint_positions(rot)
    bc = M.beat_consistency(M.audio_onsets(audio), M.motion_beats(pos, MODEL_FPS))
    sp = angular_speed(rot, MODEL_FPS)[:, list(BODY_STAGE_JOINTS)]
    hist = M.speed_histogram(sp)
    hel = M.hellinger(hist, real_hist) if real_hist is not None else 0.0
    gs, gp = group_speed(rot, MODEL_FPS, speech), group_speed(rot, MODEL_FPS, ~speech)
    return [name, bc, M.l1_diversity(pos), float(M.jerk(pos, MODEL_FPS).mean()), hel,
            sum(limit_violations(rot).values()), f"{gs['elbows']:.2f} / {gp['elbows']:.2f}"], hist


def _plots(out: Path, jaw_series: dict, hists: dict, intensity: dict) -> list[str]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from .metrics import SPEED_BINS
    files = []
    if jaw_series:
        fig, axes = plt.subplots(len(jaw_series), 1, figsize=(10, 2.4 * len(jaw_series)), squeeze=False)
        for ax, (name, (t, e, curves)) in zip(axes[:, 0], jaw_series.items()):
            ax2 = ax.twinx()
            ax2.fill_between(t, e.min(), e, color="0.85", label="log energy")
            ax2.set_yticks([])
            for label, y in curves.items():
                ax.plot(t, y, label=label, lw=1.2)
            ax.set_zorder(ax2.get_zorder() + 1)
            ax.patch.set_visible(False)
            ax.set_ylabel("jawOpen")
            ax.set_title(name, fontsize=9)
            ax.legend(loc="upper right", fontsize=7)
        axes[-1, 0].set_xlabel("time (s)")
        fig.tight_layout()
        fig.savefig(out / "lip_sync.png", dpi=110)
        plt.close(fig)
        files.append("lip_sync.png")
    if hists:
        fig, ax = plt.subplots(figsize=(7, 3.5))
        centres = 0.5 * (SPEED_BINS[1:] + SPEED_BINS[:-1])
        for label, h in hists.items():
            ax.plot(centres, h, label=label, lw=1.5 if "model" in label else 1.0)
        ax.set_xlabel("joint angular speed (rad/s), upper body + fingers")
        ax.set_ylabel("fraction of frames x joints")
        ax.set_yscale("log")
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out / "body_speed_hist.png", dpi=110)
        plt.close(fig)
        files.append("body_speed_hist.png")
    if intensity:
        fig, ax = plt.subplots(figsize=(5, 3.2))
        for label, (xs, ys) in intensity.items():
            ax.plot(xs, np.asarray(ys) / ys[list(xs).index(1.0)], "o-", label=label)
        ax.set_xlabel("intensity factor")
        ax.set_ylabel("amplitude / amplitude at 1.0")
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out / "intensity.png", dpi=110)
        plt.close(fig)
        files.append("intensity.png")
    return files


def run(checkpoint: str | None = None, out: str | Path = "eval", seed: int = 0, config: str | None = None,
        speed: bool = True, data: list[str] | None = None, baseline_checkpoint: str | None = None,
        lipsync: bool = True, streaming: bool = True, lipsync_only: bool = False) -> str:
    """Evaluate a checkpoint on held-out clips; returns the markdown report (also written to ``out``).

    Lip sync against real capture (:func:`lipsync_section`): the held-out clips of ``config`` (default the
    repository's ``configs/default.toml``), talking videos read from the ``chatanyone prepare`` folders in
    ``data`` (default ``runs/prepared`` when present), next to ``baseline_checkpoint`` when given.
    The other sections use the held-out clips (not prepared videos) of the checkpoint's own training config,
    or of ``config``, so that two checkpoints can be compared on the same clips.
    ``lipsync_only``: skip every other section (a quick check while training).
    Writes ``report.md`` and PNG plots.
    """
    import time
    from . import metrics as M
    from .audio import load_audio
    from .inference import Intensity, MotionGenerator, window_joins
    from .streaming import MotionStream, stream_clip
    from .train import TrainConfig, load_clips, split_holdout

    gen = MotionGenerator(checkpoint)
    # every comparison with capture is made in the model's own scale (that of its training capture; the
    # calibrated lip error and r do not depend on a per-channel gain); the iPhone scale has its own section
    iphone_scale, gen.mouth_scale = gen.mouth_scale, None
    tcfg = TrainConfig.from_toml(config) if config else TrainConfig(**gen.models.info["training"]["config"])
    train_clips, held = ([], []) if lipsync_only else split_holdout(load_clips(tcfg), tcfg)
    rng = np.random.default_rng(seed)
    jaw_i = ARKIT_INDEX["jawOpen"]
    mouth = list(ARKIT_MOUTH)
    lip_rows, mae_rows, body_rows, style_rows, seam_rows, speed_rows = [], [], [], [], [], []
    jaw_series, hists, intensity_curves = {}, {}, {}
    sample = Path(__file__).resolve().parents[1] / "chatanyone" / "samples"
    items = [(f"sample {w.name}", load_audio(w), None) for w in sorted(sample.glob("*.wav"))]
    # (a face-only prior has no audio; held-out prepared videos are judged in the lip-sync section)
    items += [(h.name, h.audio, h) for h in held if h.audio is not None and not h.name.startswith("prepared/")]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ls_lines, ls_pngs = (lipsync_section(gen, out, config=config, data=data, baseline_checkpoint=baseline_checkpoint,
                                         seed=seed, streaming=streaming) if lipsync else ([], []))
    ls_lines += mouth_scale_section(gen, iphone_scale, items, seed)
    if lipsync_only:
        text = "\n".join(["# Evaluation report (lip sync only)", "", f"checkpoint: {checkpoint or 'shipped default'} "
                          f"(version {gen.version}); seed {seed}", "", *ls_lines]
                         + [f"![{p}]({p})" for p in ls_pngs] + [""])
        (out / "report.md").write_text(text)
        return text
    for name, audio, h in items:
        clip = gen.generate(audio, seed=seed)
        st = stream_clip(gen, audio, seed=seed)
        T = clip.num_frames if h is None else min(clip.num_frames, h.clip.num_frames)
        a = audio[: int(T / MODEL_FPS * SAMPLE_RATE)]
        e = log_energy(a, T)
        lip_rows.append(lip_sync_row(f"{name} (model, offline)", clip.face[:T, jaw_i], a))
        lip_rows.append(lip_sync_row(f"{name} (model, streaming)", st.face[:T, jaw_i], a))
        baseline_jaw = np.clip((e - np.percentile(e, 5)) / (np.ptp(e) + 1e-8), 0, 1)
        lip_rows.append(lip_sync_row(f"{name} (baseline: energy jaw)", baseline_jaw, a))
        curves = {"model": clip.face[:T, jaw_i], "streaming": st.face[:T, jaw_i]}
        if h is not None and h.face_mask[jaw_i]:
            lip_rows.append(lip_sync_row(f"{name} (real capture)", h.clip.face[:T, jaw_i], a))
            curves["real"] = h.clip.face[:T, jaw_i]
            real = h.clip.face[:T][:, mouth]
            anim = np.ptp(real, axis=0) >= 1e-3   # the channels this capture animates at all
            mae_rows.append([f"{name} ({h.dataset})", float(np.abs(clip.face[:T][:, mouth] - real).mean()),
                             float(np.abs(st.face[:T][:, mouth] - real).mean()),
                             f"{np.abs(clip.face[:T][:, mouth][:, anim] - real[:, anim]).mean():.4f} ({int(anim.sum())})",
                             float(np.abs(real.mean(0, keepdims=True) - real).mean()),
                             float(np.abs(baseline_jaw - real[:, mouth.index(jaw_i)]).mean()),
                             float(np.abs(real).mean())])
            style_rows += _style_rows(gen, name, audio, h, seed, "mouth MAE")
        jaw_series[name] = (np.arange(T) / MODEL_FPS, e, curves)
        # seams: offline window joins (where inpainted overlap ends), streaming hop joins
        joins = window_joins(T, gen.window, gen.overlap)
        hop = MotionStream(gen).config.hop_frames
        pos_o, pos_s = M.joint_positions(clip.rotations[:T]), M.joint_positions(st.rotations[:T])
        seam_rows.append([name, M.seam_ratio(pos_o, MODEL_FPS, joins), M.seam_ratio(clip.face[:T, mouth][:, :, None], MODEL_FPS, joins),
                          M.seam_ratio(pos_s, MODEL_FPS, list(range(hop, T, hop)), radius=0),
                          M.seam_ratio(st.face[:T, mouth][:, :, None], MODEL_FPS, list(range(hop, T, hop)), radius=0),
                          float(M.jerk_phase_profile(pos_s, MODEL_FPS, hop).max())])
        if h is None or h.dataset != "beat2":
            continue
        # ---- body, on held-out BEAT2 speech ----
        speech = e[:-1] > np.percentile(e, 95) - 25 / 20 * np.log(10)
        real_rot = h.clip.rotations[:T]
        from .conventions import BODY_STAGE_JOINTS
        real_hist = M.speed_histogram(angular_speed(real_rot, MODEL_FPS)[:, list(BODY_STAGE_JOINTS)])
        nolink = gen.generate(audio, seed=seed, face_to_body=False)
        raw = None
        if gen.models.body_gain is not None:  # ablation: the sampler's output without variance compensation
            gen.variance_compensation = False
            raw = gen.generate(audio, seed=seed)
            gen.variance_compensation = True
        mean_pose = np.repeat(real_rot.mean(0, keepdims=True), T, 0)
        mean_pose /= np.linalg.norm(mean_pose, axis=-1, keepdims=True)
        pool = [c for c in train_clips if c.dataset == "beat2" and c.clip.num_frames > T]
        src = pool[int(rng.integers(len(pool)))]
        s0 = int(rng.integers(0, src.clip.num_frames - T))
        candidates = [("model", clip.rotations[:T]), ("model, streaming", st.rotations[:T]),
                      ("model without the face->body link", nolink.rotations[:T]),
                      *([("model without body variance compensation", raw.rotations[:T])] if raw is not None else []),
                      ("baseline: mean pose", mean_pose),
                      (f"baseline: random real segment ({src.name} @ {s0 / 30:.1f} s)", src.clip.rotations[s0:s0 + T]),
                      ("real capture (reference)", real_rot)]
        for label, rot in candidates:
            row, hist = _body_row(label, rot, a, real_hist, speech)
            body_rows.append(row)
            if "mean pose" not in label:
                hists[label.split(" (")[0]] = hist
        style_rows += _style_rows(gen, name, audio, h, seed, "neck/head angle MAE (rad)")
        # ---- intensity ----
        levels = (0.0, 0.5, 1.0, 1.5)
        amp = {"expression: mean mouth weight": [], "head: mean neck/head angle (rad)": [],
               "gesture: L1div (m)": []}
        for k in levels:
            c = gen.generate(audio, seed=seed, intensity=Intensity(k, k, k))
            amp["expression: mean mouth weight"].append(float(c.face[:, mouth].mean()))
            amp["head: mean neck/head angle (rad)"].append(float(np.linalg.norm(_head_angles(c.rotations), axis=-1).mean()))
            amp["gesture: L1div (m)"].append(M.l1_diversity(M.joint_positions(c.rotations)))
        intensity_curves = {k: (levels, v) for k, v in amp.items()}
    # ---- speed ----
    if speed:
        long_audio = max((x[1] for x in items), key=len)
        default = gen.phone_source(None)
        for label, kw in ((f"offline, no phones{' (the default)' if default == 'none' else ''}", {"phones": False}),
                          (f"offline, pocketsphinx phones{' (the default)' if default != 'none' else ''}",
                           {"phones": True})):
            t0 = time.perf_counter()
            gen.generate(long_audio, seed=seed, **kw)
            dt = time.perf_counter() - t0
            speed_rows.append([label, f"{len(long_audio) / SAMPLE_RATE:.1f} s", f"{dt:.2f} s", f"{len(long_audio) / SAMPLE_RATE / dt:.1f}x"])
        stream = MotionStream(gen, seed=seed)
        chunk = 320
        first = None
        t_start = time.perf_counter()
        for i in range(0, min(len(long_audio), SAMPLE_RATE * 20), chunk):
            fr = stream.push(long_audio[i:i + chunk])
            if fr and first is None:
                audio_t = (i + chunk) / SAMPLE_RATE  # the audio time at which the first frame could be computed
                first = (audio_t - fr[0].time_s, stream.stats.compute_s[0])
        cs = np.asarray(stream.stats.compute_s) * 1000
        wall = time.perf_counter() - t_start
        speed_rows.append(["streaming: lookahead (audio after a frame's time)", "", f"{stream.lookahead_s * 1000:.0f} ms", ""])
        speed_rows.append(["streaming: longest wait for audio + step, compute excluded", "", f"{stream.max_wait_s * 1000:.0f} ms", ""])
        if first:
            speed_rows.append(["streaming: first frame: audio wait / compute", "",
                               f"{first[0] * 1000:.0f} ms / {first[1] * 1000:.0f} ms", ""])
        speed_rows.append([f"streaming: compute per step ({stream.config.hop_frames} frames = "
                           f"{stream.config.hop_frames / MODEL_FPS * 1000:.0f} ms of audio), median / p95", "",
                           f"{np.median(cs):.0f} ms / {np.percentile(cs, 95):.0f} ms",
                           f"{stream.stats.frames / 30 / wall:.1f}x"])
    pngs = ls_pngs + _plots(out, jaw_series, hists, intensity_curves)
    report = ["# Evaluation report", "", f"checkpoint: {checkpoint or 'shipped default'} (version {gen.version}); "
              f"seed {seed}; held-out clips from {config or 'its training config'}: "
              f"{', '.join(h.name for h in held)}", "", *ls_lines,
              "## Diagnostic only: jawOpen vs audio log-energy (Pearson r; best r within +-5 frames)", "",
              "A jaw that follows loudness scores high here (the energy jaw by construction); this chooses nothing.", "",
              _fmt_table(["clip", "r", "best r", "lag (frames)", "max jawOpen in silences >= 300 ms", "silences"],
                         [[r.name, r.r, r.best_r, r.best_lag, r.max_jaw_silence, r.n_silences] for r in lip_rows]),
              "", "## Mouth MAE on held-out clips (27 mouth channels)", "",
              "FACEGOOD's rig mapping never moves some mouth channels (mouthClose, Press, Pucker, Stretch, ...); a "
              "face that articulates them is charged for it in the 27-channel MAE, so the MAE over the channels "
              "the capture animates (range >= 0.001; their number in brackets) is given too.", "",
              _fmt_table(["clip", "model MAE (offline)", "model MAE (streaming)",
                          "model MAE, animated channels (offline)", "baseline: mean face",
                          "baseline: energy jaw (jawOpen only)", "baseline: zero face"], mae_rows),
              "", "## Body on held-out BEAT2 speech (upper body + fingers)", "",
              f"BC: beat consistency (sigma {M.BC_SIGMA_S} s, EMAGE); L1div: EMAGE diversity (m); jerk (m/s^3); "
              "Hellinger: angular-speed histogram distance to the real capture (0 = same); violations: "
              "frames x joints beyond JOINT_LIMITS_RAD; elbows: mean angular speed in speech / pauses (rad/s).", "",
              _fmt_table(["motion", "BC", "L1div", "jerk", "Hellinger", "violations", "elbows speech / pause"], body_rows),
              "", "## Style (ChatAnyone Table 4 protocol): error to the capture on the last "
              f"{100 - 100 * REFERENCE_SHARE:.0f} % of each held-out clip, styled by its first "
              f"{100 * REFERENCE_SHARE:.0f} % (reference clip), by the dataset's preset, by both, or not styled "
              f"(style guidance {gen_style_guidance():g})", "",
              _fmt_table(["clip", "reference clip", "preset", "reference + preset", "no style"], style_rows),
              "", "## Intensity (the same seed at factors " + ", ".join(f"{x:g}" for x in (0.0, 0.5, 1.0, 1.5)) + ")", "",
              _fmt_table(["control"] + [f"{x:g}" for x in (0.0, 0.5, 1.0, 1.5)],
                         [[k] + [float(v) for v in ys] for k, (_, ys) in intensity_curves.items()]),
              "", "## Seams: jerk near a join / jerk elsewhere (1 = invisible)", "",
              "Near: the jerk values a switch between two frames reaches, widened by 2 frames each side for "
              "the offline window joins and by none for the streaming hop joins (every 6 frames: wider would "
              "leave nothing to compare with). Last column: the largest mean body jerk at one phase of the "
              "6-frame hop / the mean (1 = no periodic artifact).", "",
              _fmt_table(["clip", "offline window joins: body", "offline: mouth", "streaming hop joins: body",
                          "streaming: mouth", "streaming: worst hop phase, body"], seam_rows)]
    if speed_rows:
        import os
        report += ["", f"## Speed on this machine ({os.cpu_count()} CPU threads, torch {torch_threads()} threads)", "",
                   _fmt_table(["what", "audio", "time", "real-time factor"], speed_rows)]
    report += [""] + [f"![{p}]({p})" for p in pngs] + [""]
    text = "\n".join(report)
    (out / "report.md").write_text(text)
    return text


def mouth_scale_section(gen, scale, items: list, seed: int) -> list[str]:
    """Markdown lines: the mouth's scale against real iPhone capture (:mod:`motion.face_scale`).

    For the held-out speech ``items`` (``(name, audio, held-out clip or None)``), the model's own scale and
    its iPhone scale (``scale``, the checkpoint's :class:`~motion.face_scale.MouthScale`; ``None``: the
    checkpoint has none) are compared with the dynamic range (5-95 %) of the iPhone speaking takes per channel
    (log2 ratio: 0 = the iPhone's, +1 = twice as wide), and the largest jawOpen in pauses is given in both
    scales. The iPhone takes have no audio: this compares distributions, not frames. Empty when the iPhone
    captures are not in the data folder.
    """
    from .face_scale import LATERAL, iphone_ranges, scale_error
    try:
        iphone_ranges()
    except (FileNotFoundError, ValueError):
        return []
    jaw_i = ARKIT_INDEX["jawOpen"]
    mouth = list(ARKIT_MOUTH)
    native, scaled, pauses_n, pauses_s = [], [], [], []
    for _name, audio, _h in items:
        f = gen.generate(audio, seed=seed).face
        e = log_energy(audio, len(f))
        native.append(f)
        pauses_n.append(max_jaw_in_silence(f[:, jaw_i], e)[0])
        if scale is not None:
            g = f.copy()
            g[:, mouth] = scale.apply(f[:, mouth])
            scaled.append(g)
            pauses_s.append(max_jaw_in_silence(g[:, jaw_i], e)[0])
    rows = [("model, its own scale (--mouth-scale native)", scale_error(native), pauses_n)]
    if scale is not None:
        rows.append(("model, iPhone scale (the default)", scale_error(scaled), pauses_s))
    chans = [k for k in rows[0][1] if k != "median_octaves"]
    table = [[label, *[err[k] for k in chans], err["median_octaves"],
              ", ".join(f"{p:.3f}" for p in pz)] for label, err, pz in rows]
    return ["## Mouth scale against real iPhone capture (distributions; the takes have no audio)", "",
            f"Per channel: log2 of the model's 5-95 % range on held-out speech ({', '.join(n for n, _, _ in items)}) "
            "over the median range of the seven iPhone Live Link speaking takes (motion.face_scale: 0 = the "
            f"iPhone's, +1 = twice as wide; lateral channels {', '.join(LATERAL)} and channels the iPhone barely "
            "moves left out; left/right averaged). The map moves each channel at most one octave.", "",
            _fmt_table(["face", *chans, "median |octaves|", "largest jawOpen in pauses (per clip)"], table), ""]


#: Table 4 protocol split: the first REFERENCE_SHARE of a held-out clip is the style reference, the rest
#: is generated from its audio and compared with the capture.
REFERENCE_SHARE = 0.4


def _style_rows(gen, name: str, audio: np.ndarray, h, seed: int, what: str) -> list[list]:
    """ChatAnyone Table 4 protocol on a held-out clip: error of the generated motion to the capture on the
    last 60 %, generated with the first 40 % of the clip as a style reference, with the dataset's preset,
    and with no style. ``what``: "mouth MAE" (27 mouth weights) or "neck/head angle MAE (rad)"."""
    T = h.clip.num_frames
    cut = int(round(T * REFERENCE_SHARE))
    test_audio = audio[int(round(cut / MODEL_FPS * SAMPLE_RATE)):int(round(T / MODEL_FPS * SAMPLE_RATE))]
    real = h.clip.slice(cut, T)

    def err(c):
        n = min(c.num_frames, real.num_frames)
        if what == "mouth MAE":
            m = list(ARKIT_MOUTH)
            return float(np.abs(c.face[:n][:, m] - real.face[:n][:, m]).mean())
        return float(np.abs(_head_angles(c.rotations[:n]) - _head_angles(real.rotations[:n])).mean())
    none = err(gen.generate(test_audio, seed=seed))
    preset = err(gen.generate(test_audio, seed=seed, style=h.dataset)) if h.dataset in gen.face_styles else float("nan")
    has_enc = gen.models.face.style_enc is not None
    ref = err(gen.generate(test_audio, seed=seed, style_reference=h.clip.slice(0, cut))) if has_enc else float("nan")
    both = (err(gen.generate(test_audio, seed=seed, style=h.dataset, style_reference=h.clip.slice(0, cut)))
            if has_enc and h.dataset in gen.face_styles else float("nan"))
    return [[f"{name}: {what}", ref, preset, both, none]]


def gen_style_guidance() -> float:
    from .inference import STYLE_GUIDANCE
    return STYLE_GUIDANCE


def torch_threads() -> int:
    import torch
    return torch.get_num_threads()


def main(argv: list[str] | None = None) -> int:
    """``python -m motion.evaluate``: the options of :mod:`motion.evaluate_cli`, then :func:`run_cli`."""
    from .evaluate_cli import DESCRIPTION, add_arguments
    ap = argparse.ArgumentParser(prog="chatanyone evaluate", description=DESCRIPTION)
    add_arguments(ap)
    return run_cli(ap.parse_args(argv))


def run_cli(a: argparse.Namespace) -> int:
    """Evaluate as the parsed ``chatanyone evaluate`` options say, print the report; returns 0.

    Raises:
        ChatAnyoneError: missing data or checkpoint, or an invalid config.
    """
    from .errors import ChatAnyoneError
    try:
        text = run(a.checkpoint, a.out, a.seed, a.config, speed=not a.no_speed, data=a.data,
                   baseline_checkpoint=a.baseline_checkpoint, lipsync=not a.no_lipsync,
                   streaming=not a.no_streaming_lipsync, lipsync_only=a.lipsync_only)
    except (FileNotFoundError, ValueError) as e:
        raise ChatAnyoneError(f"cannot evaluate: {e}") from None
    print(text)
    return 0



# ------------------------------------------------------------------------ lip sync against real capture

#: Per group, the training clips whose capture fits the per-channel calibration: at most this many seconds
#: of each clip and in all (offline model output on them; the streaming rows use the same fit).
CALIBRATION_CLIP_S = 60.0
CALIBRATION_TOTAL_S = 150.0
REPO = Path(__file__).resolve().parents[1]
#: where ``chatanyone prepare`` output is looked for when ``--data`` is not given
DEFAULT_PREPARED = REPO / "runs" / "prepared"


def _holdout_names(config: str | None) -> list[str]:
    """``holdout_clips`` of ``config`` (a TOML path), else of the repository's configs/default.toml."""
    import tomllib
    path = Path(config) if config else REPO / "configs" / "default.toml"
    with open(path, "rb") as f:
        return list(tomllib.load(f).get("holdout_clips", []))


def _count(n: int, what: str) -> str:
    """``"1 clip"``, ``"3 clips"``."""
    return f"{n} {what}{'' if n == 1 else 's'}"


def _calibration_set(clips) -> list:
    out, total = [], 0.0
    for c in sorted(clips, key=lambda c: c.name):
        if c.audio is None or total >= CALIBRATION_TOTAL_S:
            continue
        T = min(c.clip.num_frames, int(CALIBRATION_CLIP_S * MODEL_FPS))
        out.append((c, T))
        total += T / 30
    return out


def lipsync_section(gen, out: Path, *, config: str | None = None, data: list[str] | None = None,
                    baseline_checkpoint: str | None = None, seed: int = 0, streaming: bool = True,
                    progress=print) -> tuple[list[str], list[str]]:
    """Lip sync against the real capture of held-out speakers (:mod:`motion.lipsync`); returns the report's
    markdown lines and the PNG files written to ``out``.

    Held-out clips: ``holdout_clips`` of ``config`` (default: the repository's ``configs/default.toml``):
    FACEGOOD takes (``facegood/...``, from the data root) and prepared talking videos (``prepared/...``, read
    from each folder in ``data``, default ``runs/prepared`` when it exists; absent: those rows are skipped and
    the report says so). Calibration and the mean face come from the same group's other clips (training
    speakers only). Systems: the checkpoint offline and streaming, optionally a baseline checkpoint, the
    phone-rule lip sync (pocketsphinx all-phone decoding: audio only, as the model; forced alignment where the
    transcript is known only locates the phones of the articulation table),
    the energy face (fitted on each clip) and the training mean face.
    """
    from . import lipsync as L
    from .alignment import AlignmentError, force_align, recognise_phones
    from .datasets import load_facegood, load_prepared
    from .inference import MotionGenerator
    from .streaming import stream_clip

    holdout = set(_holdout_names(config))
    notes = []
    groups: dict[str, tuple[list, list]] = {}   # group -> (held-out clips, training clips)
    try:
        fg = load_facegood()
        groups["FACEGOOD (artist-animated rig, ARKit-mapped)"] = ([c for c in fg if c.name in holdout],
                                                                  [c for c in fg if c.name not in holdout])
    except FileNotFoundError as e:
        notes.append(f"FACEGOOD rows skipped: {e}")
    dirs = list(data) if data else ([str(DEFAULT_PREPARED)] if (DEFAULT_PREPARED / "dataset.json").is_file() else [])
    if not dirs:
        notes.append(f"No prepared talking videos ({DEFAULT_PREPARED}/dataset.json absent; make them with `chatanyone "
                     "prepare ../shared/data/videos -o runs/prepared` or pass --data DIR): the held-out-speaker "
                     "video rows are skipped.")
    for d in dirs:
        vids = [c for c in load_prepared(d) if c.dataset == "video" and c.audio is not None]
        held = [c for c in vids if c.name in holdout]
        missing = sorted(n for n in holdout if n.startswith("prepared/") and n not in {c.name for c in vids})
        if missing:
            notes.append(f"{d}: held-out clips not found: {', '.join(missing)}")
        train = [c for c in vids if c.name not in holdout]
        held_speakers = {L.speaker_of(c.name) for c in held}
        train_speakers = {L.speaker_of(c.name) for c in train}
        notes.append(f"{d}: {_count(len(held), 'held-out clip')} of {_count(len(held_speakers), 'speaker')} "
                     f"({', '.join(sorted(held_speakers))}); {_count(len(train), 'training clip')} of "
                     f"{_count(len(train_speakers), 'speaker')} ({', '.join(sorted(train_speakers))}); "
                     "speakers by `motion.lipsync.speaker_of`")
        if held_speakers & train_speakers:
            notes.append("WARNING: held-out speakers also in training clips: "
                         + ", ".join(sorted(held_speakers & train_speakers)))
        groups[f"talking videos, held-out speakers (MediaPipe, {d})"] = (held, train)
    trained = set(gen.models.info.get("training", {}).get("train_clips", []))

    gens = [(f"model {gen.version}", gen)]
    if baseline_checkpoint:
        bg = MotionGenerator(baseline_checkpoint)
        label = f"model {bg.version}" if bg.version != gen.version else f"model {Path(baseline_checkpoint).name}"
        gens.append((label, bg))
        trained |= set(bg.models.info.get("training", {}).get("train_clips", []))
    leaked = sorted(n for g in groups.values() for n in (c.name for c in g[0]) if n in trained)
    if leaked:
        notes.append(f"WARNING: the checkpoint was trained on held-out clips {', '.join(leaked)}")

    jaw = ARKIT_INDEX["jawOpen"]
    phones_cache: dict[str, tuple[list, str]] = {}

    def phones_of(c, T):
        if c.name not in phones_cache:
            tr = L.known_transcript(c.name)
            a = c.audio[: int(round(T / MODEL_FPS * SAMPLE_RATE))]
            if tr:
                try:
                    phones_cache[c.name] = (force_align(a, tr), "aligned")
                except AlignmentError:
                    phones_cache[c.name] = (recognise_phones(a), "recognised (alignment failed)")
            else:
                phones_cache[c.name] = (recognise_phones(a), "recognised")
        return phones_cache[c.name][0]

    heard_cache: dict[str, list] = {}

    def heard_phones(c, T):
        """What a lip-sync tool hears without a transcript (as the model, which gets audio only): all-phone
        decoding of the clip's audio."""
        if c.name not in heard_cache:
            heard_cache[c.name] = recognise_phones(c.audio[: int(round(T / MODEL_FPS * SAMPLE_RATE))])
        return heard_cache[c.name]

    lines, pngs = ["## Lip sync against real capture of held-out speakers", ""], []
    lines += [f"- {n}" for n in notes] + ([""] if notes else [])
    lines += [
        f"Per clip: Pearson r at the best lag within +-{L.MAX_LAG} frames for jawOpen and for each mouth channel "
        f"moving in the capture (std > {L.MOVING_STD}), their mean = mouth r; lip error = mean over frames of the "
        "largest |error| over those channels (LVE on weights), raw and after a per-channel linear calibration "
        "(capture ~ a * output + b) fitted on training speakers' clips of the same group (offline output; "
        "streaming uses the offline fit); jawOpen-energy r is a diagnostic only. Baselines: phone rule "
        "(pocketsphinx phones -> visemes -> ARKit, dominance blend; `motion.lipsync.phone_rule_face`), energy "
        "face (each channel a line in log energy fitted on the clip itself: optimistic), mean face (training "
        "capture mean). Every system hears the audio only (no transcript): the phone rule gets pocketsphinx "
        "all-phone decoding, as the model does; forced alignment (transcript known) only locates the phones "
        "the articulation table judges.", ""]
    summary_rows, clip_rows, art = [], [], {}
    plot = None
    for gname, (held, train) in groups.items():
        if not held:
            lines += [f"{gname}: no held-out clips.", ""]
            continue
        cal_set = _calibration_set(train)
        progress(f"lip sync: {gname}: {len(held)} held-out clips, calibration on {len(cal_set)} training clips")
        caps = [c.clip.face[:T] for c, T in cal_set]
        valids = [c.face_mask for c, _ in cal_set]
        mean_face = np.concatenate([c.clip.face for c in train], 0).mean(0)

        def phone_rule(c, T):
            return L.phone_rule_face(heard_phones(c, T), T)

        systems = []  # (label, fn(c, T) -> [T, 52], calibration or None)
        for label, g in gens:
            cal = L.Calibration.fit([g.generate(c.audio[: int(round(T / MODEL_FPS * SAMPLE_RATE))], seed=seed).face[:T]
                                     for c, T in cal_set], caps, valids)
            systems.append((f"{label} (offline)", lambda c, T, g=g: g.generate(c.audio, seed=seed).face[:T], cal))
            if streaming:
                systems.append((f"{label} (streaming)", lambda c, T, g=g: stream_clip(g, c.audio, seed=seed).face[:T], cal))
        cal_pr = L.Calibration.fit([phone_rule(c, T) for c, T in cal_set], caps, valids)
        systems.append(("baseline: phone rule", phone_rule, cal_pr))
        systems.append(("baseline: energy face (fit on the clip)", None, None))
        systems.append(("baseline: mean face", lambda c, T: np.repeat(mean_face[None], T, 0).astype(np.float32), None))
        per = {s[0]: [] for s in systems}
        n_known = 0
        tr_faces, tr_phones, tr_caps = {s[0]: [] for s in systems}, [], []
        for c in held:
            T = min(c.clip.num_frames, int(len(c.audio) / SAMPLE_RATE * MODEL_FPS))
            capture = c.clip.face[:T]
            chans = L.moving_channels(capture, c.face_mask)
            e = log_energy(c.audio[: int(round(T / MODEL_FPS * SAMPLE_RATE))], T)
            row = [c.name.split("/", 1)[-1], f"{T / 30:.1f}", len(chans)]
            faces = {}
            for label, fn, cal in systems:
                face = L.energy_face(e, capture, sorted(set(chans) | {jaw})) if fn is None else fn(c, T)
                faces[label] = face
                s = L.score_clip(face, capture, chans, cal)
                s.energy_r = pearson_best_lag(face[:, jaw], e)[1]
                per[label].append(s)
                row.append(f"{s.jaw_r:.2f} / {s.mouth_r:.2f} / {s.lip_error_cal:.3f}")
            clip_rows.append(row)
            if plot is None or (T > plot[1] and "video" in gname):
                plot = (c.name, T, capture[:, jaw], {k: faces[k][:, jaw] for k in faces if "energy" not in k and "mean" not in k})
            if L.known_transcript(c.name):
                ph = phones_of(c, T)
                n_known += 1
                if phones_cache[c.name][1] != "aligned":
                    continue  # articulation only on force-aligned phones
                tr_phones.append(ph)
                tr_caps.append(capture)
                for label in faces:
                    tr_faces[label].append(faces[label])
        cap_e = [pearson_best_lag(c.clip.face[:min(c.clip.num_frames, int(len(c.audio) / SAMPLE_RATE * MODEL_FPS)), jaw],
                                  log_energy(c.audio, min(c.clip.num_frames, int(len(c.audio) / SAMPLE_RATE * MODEL_FPS))))[1] for c in held]
        summary_rows.append([gname, "real capture (reference)", "1", "1", "0", "0", f"{np.mean(cap_e):.2f}"])
        for label, _, _ in systems:
            ss = per[label]
            summary_rows.append([gname, label, f"{np.median([s.jaw_r for s in ss]):.2f}",
                                 f"{np.mean([s.mouth_r for s in ss]):.2f}", f"{np.mean([s.lip_error for s in ss]):.3f}",
                                 f"{np.mean([s.lip_error_cal for s in ss]):.3f}",
                                 f"{np.mean([s.energy_r for s in ss]):.2f}"])
        if tr_phones:
            art[gname] = [("real capture", L.articulation(tr_caps, tr_phones))]
            art[gname] += [(label, L.articulation(tr_faces[label], tr_phones)) for label, _, _ in systems
                           if "energy" not in label]
            art[gname + " n"] = (n_known, len(tr_phones))
        sys_labels = [s[0] for s in systems]
    if summary_rows:
        lines += ["### Summary (median jawOpen r; mean over clips of the others)", "",
                  _fmt_table(["held-out group", "face", "jawOpen r", "mouth r", "lip error", "lip error, calibrated",
                              "jawOpen-energy r (diagnostic)"], summary_rows), "",
                  "### Per clip: jawOpen r / mouth r / calibrated lip error", "",
                  _fmt_table(["clip", "s", "moving channels"] + sys_labels, clip_rows), ""]
    for gname, rows in art.items():
        if gname.endswith(" n"):
            continue
        n, n_al = art[gname + " n"]
        lines += [f"### Articulation at phones: {gname}: {n} clips with a known transcript, {n_al} force-aligned "
                  "by pocketsphinx (the others are left out here)", "",
                  "Closure: the lip opening (jawOpen - mouthClose + lowerDown + upperUp) drops by half its height "
                  "above rest at the phone's middle frame (`motion.lipsync.closures`); control: the same test at open vowels. "
                  "Rounding: funnel + pucker at /uw ow w uh/ vs /iy ih eh ae/; jaw: jawOpen at /aa ae ao aw ay/ vs "
                  "/iy ih uw uh/; raw means and the contrast in std units of the clip's speech frames.", "",
                  _fmt_table(["face", "closure at /p b m/", "closure at open vowels (control)",
                              "rounding: rounded / spread", "rounding contrast (std)", "jawOpen: open / closed",
                              "jaw contrast (std)"],
                             [[label, f"{a.closure_bilabial:.2f} (n={a.n_bilabial})", f"{a.closure_open_vowel:.2f}",
                               f"{a.rounding_raw[0]:.3f} / {a.rounding_raw[1]:.3f}", f"{a.rounding_d:.2f}",
                               f"{a.jaw_raw[0]:.3f} / {a.jaw_raw[1]:.3f}", f"{a.jaw_d:.2f}"] for label, a in rows]), ""]
    if plot is not None:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        name, T, cap, curves = plot
        t = np.arange(T) / MODEL_FPS
        n = min(T, int(20 * MODEL_FPS))
        fig, ax = plt.subplots(figsize=(11, 3.2))
        ax.plot(t[:n], cap[:n], "k", lw=1.8, label="real capture")
        for k, y in curves.items():
            ax.plot(t[:n], y[:n], lw=1.0, label=k)
        ax.set_xlabel("time (s)")
        ax.set_ylabel("jawOpen")
        ax.set_title(f"held-out {name}: captured vs generated jawOpen (raw, first {n / 30:.0f} s)", fontsize=9)
        ax.legend(fontsize=7, loc="upper right")
        fig.tight_layout()
        fig.savefig(out / "lipsync_capture.png", dpi=110)
        plt.close(fig)
        pngs.append("lipsync_capture.png")
    return lines, pngs


if __name__ == "__main__":
    raise SystemExit(main())
