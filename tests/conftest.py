"""Shared test fixtures: where the real data lives, and a skip marker when it is absent."""
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"real data folder {DATA} is absent (a user's clone has no ../shared)")


#: Denoiser size of the tiny checkpoint (the shipped one: d_model 128, 4 layers, 4 heads, ff_mult 4).
TINY_DENOISER = {"d_model": 16, "num_layers": 1, "num_heads": 2, "ff_mult": 2}


def make_tiny_checkpoint(path: Path, seed: int = 0) -> Path:
    """A random-weight checkpoint with the shipped one's layout, written by the real checkpoint code.

    Same metadata (feature layout, styles, window/overlap, diffusion schedule, training record), same
    normalisation statistics and body gain as ``motion/checkpoints/default.safetensors``; the two denoisers
    are :data:`TINY_DENOISER`-sized with weights drawn from ``torch.manual_seed(seed)``, so sampling, streaming
    and the bridges run their real code about 10x faster. For mechanics (shapes, chunking, bookkeeping,
    files, protocols); what the motion looks like needs the real weights (tests marked ``slow``).
    """
    import torch

    from motion.checkpoint import StageModels, default_checkpoint_path, load_models, save_models
    from motion.model import DenoiserConfig, MotionDenoiser
    real = load_models(default_checkpoint_path())
    torch.manual_seed(seed)
    stages = {}
    for stage in ("face", "body"):
        cfg = dict(getattr(real, stage).config.to_dict(), **TINY_DENOISER)
        model = MotionDenoiser(DenoiserConfig(**cfg)).eval()
        with torch.no_grad():   # the zero-initialised (adaLN-zero, style projection) layers too: every input
            for p in model.parameters():   # (timestep, audio, style, reference) changes the output
                p.add_(torch.randn_like(p) * 0.05)
        stages[stage] = model
    info = {k: v for k, v in real.info.items() if k not in ("face_config", "body_config", "diffusion")}
    info["version"] = f"{info.get('version', '0')}+tiny-random"
    models = StageModels(stages["face"], stages["body"], real.face_mean, real.face_std, real.body_mean,
                         real.body_std, real.diffusion, info, real.body_gain, real.body_gain_center)
    return save_models(models, path)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """Path of a :func:`make_tiny_checkpoint` (random weights, real layout), made once per test session."""
    return make_tiny_checkpoint(tmp_path_factory.mktemp("tiny_checkpoint") / "tiny.safetensors")


@pytest.fixture(scope="session")
def tiny_generator(tiny_checkpoint):
    """A ``MotionGenerator`` on :func:`tiny_checkpoint` (shared by the session: do not mutate it)."""
    from motion.inference import MotionGenerator
    return MotionGenerator(tiny_checkpoint)
