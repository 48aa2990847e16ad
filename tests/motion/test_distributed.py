"""``chatanyone train CONFIG --nproc 2`` (motion.distributed): a 2-rank gloo DDP run of a few steps on a
tiny real slice (5 s of a FACEGOOD take and 5 s of a BEAT2 take; style reference, random window lengths and
phone dropout on, as in configs/default.toml) keeps bit-identical weights on both ranks in both stages and
writes one checkpoint (rank 0 only), and a batch size that does not split over the ranks is one error. Plus the sharding itself on a synthetic batch: the ranks' rows put
together are the one-process batch.

Skipped when ../shared/data is absent. ~1 minute on 2 loaded cores (two processes import torch and
compute the audio features of the slice)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from tests.conftest import DATA, needs_data

SECONDS = 5.0
FACEGOOD_TAKE = "1114_2_01"
BEAT2_TAKE = "2_scott_0_1_1"


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # inherited by the spawned ranks


def _cut_wav(src: Path, dst: Path, seconds: float) -> None:
    x, sr = sf.read(str(src), dtype="float32", always_2d=True)
    sf.write(str(dst), x[: int(seconds * sr)], sr, subtype="PCM_16")


def _tiny_data_root(root: Path) -> Path:
    """The first SECONDS of one FACEGOOD and one BEAT2 take, laid out as ../shared/data is."""
    fg, fr = DATA / "facegood", root / "facegood"
    (fr / "paired").mkdir(parents=True)
    for f in ("bs_names_116.npy", "blendshape2ARKit.xlsx"):
        os.symlink(fg / f, fr / f)
    n = int(SECONDS * 30)
    with pytest.warns(UserWarning, match="Python 2"):  # the FACEGOOD .npy header
        bs = np.load(fg / "paired" / f"{FACEGOOD_TAKE}.bs116.npy")
    np.save(fr / "paired" / f"{FACEGOOD_TAKE}.bs116.npy", bs[:n])
    _cut_wav(fg / "paired" / f"{FACEGOOD_TAKE}.wav", fr / "paired" / f"{FACEGOOD_TAKE}.wav", SECONDS)
    br = root / "beat2"
    br.mkdir()
    with np.load(DATA / "beat2" / f"{BEAT2_TAKE}.smplxflame30.npz") as z:
        d = {k: (z[k][:n] if k in ("poses", "expressions", "trans") else z[k]) for k in z.files}
    np.savez(br / f"{BEAT2_TAKE}.smplxflame30.npz", **d)
    _cut_wav(DATA / "beat2" / f"{BEAT2_TAKE}.wav", br / f"{BEAT2_TAKE}.wav", SECONDS)
    return root


def _config(tmp_path: Path, batch_size: int = 4) -> Path:
    root = _tiny_data_root(tmp_path / "data")
    cfg = tmp_path / "ddp.toml"
    cfg.write_text(f"""name = "ddp-test"
data_root = "{root}"
datasets = ["facegood", "beat2"]
holdout_clips = []
holdout_tail = {{}}
window = 60
overlap = 15
batch_size = {batch_size}
face_steps = 3
body_steps = 3
noise_augment = false
body_variance_compensation = false
d_model = 32
num_layers = 1
num_heads = 2
inference_steps = 2
style_reference = true
ref_min = 20
min_window = 30
phone_dropout = 0.5
out_dir = "{tmp_path / 'out'}"
""")
    return cfg


@pytest.mark.slow
@needs_data
def test_two_gloo_ranks_keep_identical_weights_and_write_one_checkpoint(tmp_path):
    from motion.checkpoint import load_models
    from motion.train import main

    cfg = _config(tmp_path)
    assert main([str(cfg), "--nproc", "2"]) == 0
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["model.safetensors", "train_log.json"]  # rank 0 only
    log = json.loads((out / "train_log.json").read_text())
    ddp = {e["stage"]: e["ddp"] for e in log["log"] if "ddp" in e}
    assert sorted(ddp) == ["body stage", "face stage"]
    models = load_models(out / "model.safetensors")
    for stage, model in (("face stage", models.face), ("body stage", models.body)):
        d = ddp[stage]
        assert d["world_size"] == 2 and d["backend"] == "gloo" and d["replicas_identical"] is True
        r0, r1 = d["param_sha256_by_rank"]
        assert r0 == r1 and len(r0) == 64  # both ranks hold bit-identical float32 weights
        # (the checkpoint stores them as float16, so its own hash is not comparable)
        assert sum(p.numel() for p in model.parameters()) > 0
    losses = [e for e in log["log"] if "loss" in e]
    assert losses and all(np.isfinite(e["loss"]) and e["loss"] > 0 for e in losses)


@needs_data
def test_batch_size_must_split_over_the_ranks(tmp_path):
    from motion.errors import ChatAnyoneError
    from motion.train import main

    cfg = _config(tmp_path, batch_size=5)
    with pytest.raises(ChatAnyoneError, match="batch_size 5 does not split over 2 processes"):
        main([str(cfg), "--nproc", "2"])
    assert not (tmp_path / "out").exists()


def _shard_rank(out_dir: str) -> None:
    from motion.distributed import init_from_env

    ctx = init_from_env()
    g = torch.Generator().manual_seed(0)
    batch = (torch.randn(8, 5, 3, generator=g), torch.arange(8), (torch.ones(8, 2), torch.zeros(8, dtype=torch.bool)), None)
    _, shard = ctx.stage(torch.nn.Linear(3, 3), lambda: batch)
    x, ids, (ref, keep), none = shard()
    torch.save({"x": x, "ids": ids, "ref": ref, "keep": keep, "none": none}, Path(out_dir) / f"rank{ctx.rank}.pt")
    ctx.close()


@pytest.mark.slow
def test_ranks_split_the_global_batch_into_disjoint_rows(tmp_path):
    from motion.distributed import launch

    launch(2, _shard_rank, str(tmp_path))
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    assert r0["ids"].tolist() == [0, 1, 2, 3] and r1["ids"].tolist() == [4, 5, 6, 7]
    g = torch.Generator().manual_seed(0)
    assert torch.equal(torch.cat([r0["x"], r1["x"]]), torch.randn(8, 5, 3, generator=g))
    assert r0["ref"].shape == (4, 2) and r1["keep"].shape == (4,) and r0["none"] is None
