"""Write the model card of a checkpoint from its training record and an evaluation report.

    python -m motion.model_card CHECKPOINT.safetensors EVAL_REPORT.md -o motion/checkpoints/MODEL_CARD.md

Every figure in the card comes from the checkpoint's metadata (written by :mod:`motion.train`) or from the
report written by ``chatanyone evaluate``.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from .checkpoint import load_models
from .fileio import atomic_output
from .options import checkpoint_sampling


def _face_from_training(face_from: dict | None) -> str:
    """How a reused face stage was trained (the fields train() records in ``training.face_from``), as a
    sentence for the card; empty when unknown."""
    if not face_from or "face_steps" not in face_from:
        return ""
    out = f" That face stage was trained {face_from['face_steps']} steps"
    if face_from.get("face_init"):
        out += f" from `{face_from['face_init']}`"
    if face_from.get("lr") is not None:
        out += f" (lr {face_from['lr']:g})"
    if face_from.get("speed_factors"):
        out += (", with speed-perturbed copies of every clip at "
                + ", ".join(f"{f:g}x" for f in face_from["speed_factors"]) + " (audio and motion together)")
    return out + "."


def _mouth_gains(gain: list[float]) -> list[tuple[str, float]]:
    from .conventions import ARKIT_MOUTH, ARKIT_NAMES
    return [(ARKIT_NAMES[c], float(g)) for c, g in zip(ARKIT_MOUTH, gain)]


def _mouth_scale_lines(info: dict) -> list[str]:
    ms = info.get("sampling", {}).get("mouth_scale")
    if not ms:
        return []
    gains = ", ".join(f"{n} {g:.2f}" for n, g in zip(ms["channels"], ms["gain"]) if g != 1 and not n.endswith("Right"))
    return [f"Mouth scale: the output is mapped to iPhone ARKit scale (`motion.face_scale`; `--mouth-scale native` "
            "turns it off): each mouth channel is scaled about the model's resting value by the ratio of the "
            "dynamic range (5-95 %) of seven real iPhone Live Link speaking takes to the model's own on its training "
            f"audio ({ms['stats'].get('frames', 0)} frames), at most one octave either way: {gains} (Left = Right; "
            "others 1); mouthClose keeps its fraction of jawOpen instead (its gain serves only where the jaw is "
            "shut), so sealed lips stay sealed. The lip-sync comparisons with capture below are made in the "
            "model's own scale.", ""]


def render(checkpoint: str, report: str) -> str:
    m = load_models(checkpoint)
    info = m.info
    face, body = (d := checkpoint_sampling(info)).face, d.body   # the defaults `chatanyone animate` samples with
    tr = info["training"]
    cfg = tr["config"]
    n_params = {s: sum(p.numel() for p in getattr(m, s).parameters()) for s in ("face", "body")}
    lines = [
        f"# Model card: ChatAnyone Bridge motion model {info.get('version', '')} ({cfg['name']})", "",
        "Hierarchical motion diffusion (after ChatAnyone, arXiv 2503.21144): a face stage (audio -> 27 mouth/jaw "
        "ARKit weights + neck/head rotation) and a body stage (audio + face stage output -> 11 upper-body joints "
        "and 2 x 15 finger joints), transformer denoisers with AdaLN(timestep, style), "
        f"DDIM with {face.steps} (face) and {body.steps} (body) steps (trained with a "
        f"{m.diffusion.num_train_timesteps}-step schedule), x0 prediction, {info['window']}-frame windows with "
        f"{info['overlap']}-frame overlaps sampled in two batched passes (even windows, then odd windows "
        "inpainted from both neighbours with raised-cosine cross-fades at the joins)"
        + (", a style encoder per stage that reads a reference clip (another crop of the same training clip "
           f"during training, dropped for {cfg.get('ref_dropout', 0.5):.0%} of the samples: classifier-free "
           "guidance on style)" if cfg.get("style_reference") else "") + f". Parameters: face {n_params['face']:,}, body "
        f"{n_params['body']:,} (weights stored as float16). Blinks, brows, squints and gaze come from the "
        "stochastic idle model `motion/assets/face_idle.json`, fitted to the NeuroSync Live Link capture.", "",
        "## Licence of the weights", "",
        ("**Non-commercial use only**: trained partly on BEAT2 (CC BY-NC 4.0)." if tr.get("non_commercial")
         else "Trained only on data that allows commercial use."), "",
        "## Training data", "",
        "| dataset | seconds trained on |", "|---|---|",
        *[f"| {k} | {v} |" for k, v in tr["train_seconds"].items()], "",
        "Licences of the data: " + "; ".join(tr["licences"]) + ".", "",
        "Held out (never trained on): " + ", ".join(f"`{h}`" for h in tr["held_out"]) + ".", "",
        "Augmentation: left/right mirroring" + (", a copy of every clip with random gain "
        f"({cfg['gain_db'][0]:+g} to {cfg['gain_db'][1]:+g} dB) and background noise "
        f"({cfg['noise_dbfs'][0]:g} to {cfg['noise_dbfs'][1]:g} dBFS)" if cfg.get("noise_augment") else "")
        + (f"; phone dropout {cfg['phone_dropout']:g} (the phone features of that fraction of windows are "
           "all 'SIL', so the model runs without pocketsphinx, as streaming does)" if cfg.get("phone_dropout") else "")
        + (f"; random window lengths {cfg['min_window']}-{cfg['window']} frames (streaming samples short "
           "windows)" if cfg.get("min_window") else "")
        + (f"; speed perturbation copies at {', '.join(f'{f:g}x' for f in cfg['speed_factors'])} (audio and "
           "motion together)" if cfg.get("speed_factors") else "") + ".", "",
        *([f"Face-only data without audio ({', '.join(d for d in cfg['datasets'] if d == 'neurosync')}) trains "
           "the face stage as an unconditional prior (its audio condition is always the classifier-free null); "
           f"dataset sampling weights: {cfg.get('dataset_weights')}.", ""]
          if "neurosync" in cfg.get("datasets", []) else []),
        "Streaming (`motion.streaming.MotionStream`) uses these same weights on 48-frame windows that slide "
        "6 frames (200 ms) per step, emitting frames once 3 frames (100 ms) plus 64 ms of audio after them "
        "have arrived; its rows below are marked 'streaming'.", "",
        "## Reproduce", "",
        "```bash",
        *([f"chatanyone prepare ../shared/data/videos -o {d}" for d in cfg.get("prepared", [])]),
        f"{tr['command']}",
        "```", "",
        *([f"The face stage was not trained again: it is the one of `{cfg['face_from']}` (config `face_from`"
           + (f", version {tr['face_from']['version']}" if tr.get("face_from") else "") + ")"
           + ("; this run trained the body stage on its output." if not cfg.get("body_from") else
              "; the body stage is reused too (below; the config's header has the commands of every step)."),
           ""] if cfg.get("face_from") else []),
        *([f"Body variance compensation (`motion.train.fit_body_gain`, after Toda & Tokuda's global variance): "
           f"on its training clips ({', '.join(tr['body_gain']['clips'])}; seeds {tr['body_gain']['seeds']}) the "
           f"body stage's output varies less than the capture (mean per-channel std "
           f"{tr['body_gain']['generated_std']:.2f} vs {tr['body_gain']['capture_std']:.2f}, normalised units); "
           "each body channel is scaled about its generated mean by std(capture) / std(generated), clipped to "
           f"{tr['body_gain']['gain_range']} (median gain {tr['body_gain']['gain_median']:.2f})"
           + (f"; the channels of {', '.join(tr['body_gain']['fixed_joints'])} keep gain 1 (the spine carries the "
              "posture, whose slow variation the audio does not predict)" if tr['body_gain'].get('fixed_joints')
              else "") + ". The body table has the model without it as a row.", ""] if tr.get("body_gain") else []),
        *([("Face stage: " + (f"fine-tuned from `{cfg['face_init']}` (same architecture). " if cfg.get("face_init")
            else f"`{cfg['face_from']}`'s. " if cfg.get("face_from") else "") + "It denoises the residual over a "
           "phone-rule mouth (`motion.lipsync.PhoneRulePrior`: the pocketsphinx all-phone posteriors of the input "
           "-> Oculus/MPEG-4 visemes -> ARKit weights with a Cohen-Massaro dominance blend of "
           f"{info['face_prior'].get('sigma_s', 0.03) * 1000:.0f} ms), scaled per channel by the least-squares "
           "slope of the training capture on the rule (" + ", ".join(
               f"{n} {g:.2f}" for n, g in _mouth_gains(info['face_prior'].get('gain', [])) if g > 0) + "); "
           "sampling adds the rule back. Phones are recognised by default, offline (per minute of audio) and "
           "streaming (decoded live as the audio arrives, `motion.features.LivePhoneDecoder`)."
           + _face_from_training(tr.get("face_from"))), ""] if info.get("face_prior") else []),
        *(["The mouth channels are the face stage's first denoising step's x0 prediction (its estimate of "
           "E[mouth | audio]: on the held-out speakers it followed the captured mouths more closely than the "
           "end of the stochastic trajectory); head motion keeps the full DDIM sampling.", ""]
          if info.get("sampling", {}).get("face_mean_channels") else []),
        *_mouth_scale_lines(info),
        *([f"Audio-video sync: each tracked video's capture was shifted onto its audio by the lag (within "
           f"+-{cfg.get('av_sync_max_frames', 10)} frames) at which the phone-rule jaw best matches the tracked jaw "
           "(`motion.lipsync.av_offset_frames`): " + ", ".join(
               f"{k.split('/')[-1][:24]} {v[0]:+d}" for k, v in tr['av_offsets_frames'].items()) + " frames "
           "(positive: the video's mouth moved before its sound).", ""] if tr.get("av_offsets_frames") else []),
        *([f"Body stage: reused from `{tr['body_from']['checkpoint']}` (version {tr['body_from'].get('version')}, "
           f"{tr['body_from'].get('body_steps')} steps), "
           + ("its variance compensation fitted again here (`body_gain_refit`)." if tr['body_from'].get("body_gain_refit")
              else "with its variance compensation."), ""]
          if tr.get("body_from") else []),
        (f"Wall time on the 2-core CPU training machine: {tr['wall_time_s'] / 60:.1f} min "
         f"({cfg['face_steps']} face + {cfg['body_steps']} body steps, batch {cfg['batch_size']}). "
         if not (cfg.get("face_from") and cfg.get("body_from")) else
         f"This run trained nothing ({tr['wall_time_s'] / 60:.1f} min to assemble and fit); the stages' own "
         "training is described above. ") +
        f"Final training loss (EMA, normalised units): face {tr['face_final_loss']:.4f}, body "
        f"{tr['body_final_loss']:.4f}.", "",
        "## Held-out evaluation (`chatanyone evaluate`)", "",
        f"Sampling as `chatanyone animate` does by default: {face.steps} (face) and {body.steps} (body) DDIM steps, "
        f"classifier-free guidance on audio {face.guidance:g} for the face stage (guidance rescale "
        f"{face.guidance_rescale:g}, Lin et al. 2024) and {body.guidance:g} for the "
        "body stage, seed 0.", "",
    ]
    body = Path(report).read_text().split("\n", 1)[1].lstrip("\n")
    return "\n".join(lines) + body.replace("\n## ", "\n### ")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m motion.model_card")
    ap.add_argument("checkpoint")
    ap.add_argument("report")
    ap.add_argument("-o", "--output", required=True)
    a = ap.parse_args(argv)
    text = render(a.checkpoint, a.report)
    with atomic_output(a.output) as tmp:
        tmp.write_text(text)
    print(f"wrote {a.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
