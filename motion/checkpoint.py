"""Saving and loading the two-stage model as one ``.safetensors`` file (no pickle).

Tensors: ``face.*`` / ``body.*`` (denoiser weights), ``face_mean``, ``face_std``, ``body_mean``,
``body_std`` (per-channel normalisation of the stage vectors), optionally ``body_gain`` and
``body_gain_center`` (variance compensation of the body stage, :func:`motion.train.fit_body_gain`). The safetensors metadata entry
``chatanyone`` holds a JSON dict: ``face_config``, ``body_config`` (:class:`DenoiserConfig`),
``diffusion`` (:class:`DiffusionConfig`), ``styles``, ``feature_dim``, ``window``, ``overlap`` and a
``training`` record (data, licences, command, wall time, losses).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from safetensors import safe_open

from .errors import CheckpointError
from .fileio import atomic_output

if TYPE_CHECKING:  # torch and the model are imported where used: checkpoint_info is read in milliseconds,
    import torch   # so a bad --style fails before the ~1 s torch import

    from .diffusion import DiffusionConfig
    from .model import MotionDenoiser

DEFAULT_CHECKPOINT_NAME = "default.safetensors"


def default_checkpoint_path() -> Path:
    """The checkpoint shipped inside the ``motion`` package (``motion/checkpoints/default.safetensors``)."""
    return Path(str(resources.files("motion").joinpath("checkpoints", DEFAULT_CHECKPOINT_NAME)))


@dataclass
class StageModels:
    """The loaded model: both denoisers (eval mode), normalisation stats and metadata."""

    face: MotionDenoiser
    body: MotionDenoiser
    face_mean: torch.Tensor
    face_std: torch.Tensor
    body_mean: torch.Tensor
    body_std: torch.Tensor
    diffusion: DiffusionConfig
    info: dict = field(default_factory=dict)
    #: ``[BODY_DIM]`` per-channel gain and centre (normalised units) of the body stage's variance
    #: compensation; None = none (checkpoints before 0.3.1).
    body_gain: torch.Tensor | None = None
    body_gain_center: torch.Tensor | None = None


def save_models(models: StageModels, path: str | os.PathLike, weights_dtype: torch.dtype | None = None) -> Path:
    """Write ``models`` to ``path`` atomically; denoiser weights as ``weights_dtype`` (default
    ``torch.float16``, which halves the file; they are loaded back as float32), normalisation statistics
    always float32."""
    import torch
    from safetensors.torch import save_file
    weights_dtype = torch.float16 if weights_dtype is None else weights_dtype
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {f"face.{k}": v.detach().to(weights_dtype).contiguous() for k, v in models.face.state_dict().items()}
    tensors |= {f"body.{k}": v.detach().to(weights_dtype).contiguous() for k, v in models.body.state_dict().items()}
    for k in ("face_mean", "face_std", "body_mean", "body_std", "body_gain", "body_gain_center"):
        if getattr(models, k) is not None:
            tensors[k] = getattr(models, k).detach().float().contiguous()
    info = dict(models.info)
    info["face_config"] = models.face.config.to_dict()
    info["body_config"] = models.body.config.to_dict()
    info["diffusion"] = models.diffusion.to_dict()
    with atomic_output(path) as tmp:
        save_file(tensors, str(tmp), metadata={"chatanyone": json.dumps(info)})
    return path


#: Tensors every checkpoint holds besides the ``face.*`` / ``body.*`` weights.
REQUIRED_TENSORS = ("face_mean", "face_std", "body_mean", "body_std")
#: Entries of the ``chatanyone`` metadata without which the model cannot be built.
REQUIRED_INFO = ("face_config", "body_config", "diffusion")


def checkpoint_info(path: str | os.PathLike | None = None) -> dict:
    """The checkpoint's ``chatanyone`` metadata (a dict), read without loading any tensor (milliseconds).

    Checks that the file exists, is a safetensors file, and that its metadata names the model
    (:data:`REQUIRED_INFO`, each a JSON object) and the normalisation tensors (:data:`REQUIRED_TENSORS`).

    Raises:
        CheckpointError: missing file, a folder, not a safetensors file, or incomplete metadata.
    """
    path = Path(path) if path is not None else default_checkpoint_path()
    if path.is_dir():
        raise CheckpointError(f"checkpoint {path} is a folder, not a .safetensors file")
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path} (train one with `chatanyone train`)")
    try:
        with safe_open(str(path), framework="numpy") as f:   # "numpy": reading the header needs no torch
            raw = (f.metadata() or {}).get("chatanyone")
            keys = set(f.keys())
    except Exception as e:
        raise CheckpointError(f"{path}: not a ChatAnyone checkpoint ({e.__class__.__name__}: "
                              f"{' '.join(str(e).split())[:200]})") from None
    if raw is None:
        raise CheckpointError(f"{path}: not a ChatAnyone checkpoint (no 'chatanyone' metadata)")
    try:
        info = json.loads(raw)
    except json.JSONDecodeError:
        raise CheckpointError(f"{path}: incomplete checkpoint metadata ('chatanyone' is not JSON)") from None
    if not isinstance(info, dict):
        raise CheckpointError(f"{path}: incomplete checkpoint metadata ('chatanyone' is not a JSON object)")
    missing = [k for k in REQUIRED_INFO if not isinstance(info.get(k), dict)]
    missing += [k for k in REQUIRED_TENSORS if k not in keys]
    if missing:
        raise CheckpointError(f"{path}: incomplete checkpoint metadata: missing {', '.join(missing)}")
    return info


def style_presets(info: dict) -> tuple[list[str], list[str]]:
    """``(face_styles, body_styles)``: the style presets each stage of a checkpoint was trained with
    (``info["styles"]`` that have training seconds; the body stage's also in its ``body_datasets``)."""
    styles = list(info.get("styles", []))
    tr = info.get("training", {}) if isinstance(info.get("training"), dict) else {}
    trained = set(tr.get("train_seconds", {}) or {})
    cfg = tr.get("config", {}) if isinstance(tr.get("config"), dict) else {}
    body_datasets = set(cfg.get("body_datasets", ["beat2"]))
    face = [s for s in styles if s in trained]
    return face, [s for s in face if s in body_datasets]


def load_models(path: str | os.PathLike | None = None) -> StageModels:
    """Load a checkpoint (default: the shipped one). Safe: safetensors holds tensors and JSON only.

    Raises:
        CheckpointError: the file is missing, unreadable, has incomplete metadata (:func:`checkpoint_info`)
            or does not match the model.
    """
    from .diffusion import DiffusionConfig
    from .model import DenoiserConfig, MotionDenoiser
    path = Path(path) if path is not None else default_checkpoint_path()
    info = checkpoint_info(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:
        raise CheckpointError(f"{path}: not a ChatAnyone checkpoint ({e.__class__.__name__}: {e})") from None
    stages = {}
    for stage in ("face", "body"):
        try:
            model = MotionDenoiser(DenoiserConfig(**info[f"{stage}_config"]))
        except (TypeError, ValueError, RuntimeError) as e:
            raise CheckpointError(f"{path}: {stage}_config does not describe a model ({e})") from None
        sd = {k[len(stage) + 1:]: v.float() for k, v in tensors.items() if k.startswith(stage + ".")}
        try:
            model.load_state_dict(sd)
        except RuntimeError as e:
            raise CheckpointError(f"{path}: {stage} weights do not match the model: "
                                  f"{' '.join(str(e).split())[:300]}") from None
        stages[stage] = model.eval()
    for stage in ("face", "body"):
        dim = stages[stage].config.motion_dim
        for k in (f"{stage}_mean", f"{stage}_std"):
            if tuple(tensors[k].shape) != (dim,):
                raise CheckpointError(f"{path}: {k} has shape {list(tensors[k].shape)}, the {stage} model "
                                      f"needs [{dim}]")
    try:
        diffusion = DiffusionConfig(**info["diffusion"])
    except TypeError as e:
        raise CheckpointError(f"{path}: diffusion metadata is invalid ({e})") from None
    stages["face"].mean_channels = int(info.get("sampling", {}).get("face_mean_channels", 0))
    fp = info.get("face_prior")
    if fp:
        if not isinstance(fp, dict) or fp.get("kind") != "phone_rule":
            raise CheckpointError(f"{path}: unknown face_prior {fp!r} (this version knows 'phone_rule')")
        from .features import PHONE_SLICE, PHONES
        from .lipsync import PhoneRulePrior
        stages["face"].prior = PhoneRulePrior(tensors["face_std"].numpy(), PHONE_SLICE, PHONES,
                                              sigma_s=float(fp.get("sigma_s", 0.03)), gain=fp.get("gain"),
                                              face_mean=tensors["face_mean"].numpy())
    return StageModels(stages["face"], stages["body"], tensors["face_mean"], tensors["face_std"],
                       tensors["body_mean"], tensors["body_std"], diffusion, info,
                       tensors.get("body_gain"), tensors.get("body_gain_center"))
