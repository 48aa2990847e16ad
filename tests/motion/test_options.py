"""SamplingOptions / StageSampling (motion.options): one options object for offline and streaming generation,
defaults read from the checkpoint's metadata. Mechanics on the tiny random-weight checkpoint (tests/conftest.py)."""
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from motion.errors import ChatAnyoneError, CheckpointError
from motion.options import (DEFAULT_BODY, DEFAULT_FACE, STYLE_GUIDANCE, Intensity, OptionError, SamplingOptions,
                            StageSampling, checkpoint_sampling, sampling_info)

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "chatanyone" / "samples" / "cmu_arctic_a0007.wav"


@pytest.fixture(scope="module")
def audio():
    from motion.audio import load_audio
    return load_audio(SAMPLE)[:16000 * 2]


def _with_sampling(src: Path, dst: Path, sampling: dict) -> Path:
    """A copy of checkpoint ``src`` whose ``info["sampling"]`` gets ``sampling`` merged in (weights unchanged)."""
    from motion.checkpoint import load_models, save_models
    models = load_models(src)
    models.info.setdefault("sampling", {}).update(sampling)
    return save_models(models, dst)


def test_checkpoint_without_stage_metadata_gets_the_module_defaults():
    d = checkpoint_sampling({"sampling": {"face_mean_channels": 27}})
    assert d.face == DEFAULT_FACE and d.body == DEFAULT_BODY and d.style_guidance == STYLE_GUIDANCE
    assert d.face.complete and d.body.complete
    assert (d.face.steps, d.body.steps, d.face.guidance, d.face.guidance_rescale) == (4, 6, 2.0, 1.0)
    assert checkpoint_sampling({"sampling": sampling_info(d)}) == d          # metadata round trip
    part = checkpoint_sampling({"sampling": {"face": {"steps": 2}, "style_guidance": 1.5}})
    assert part.face == replace(DEFAULT_FACE, steps=2) and part.body == DEFAULT_BODY and part.style_guidance == 1.5


@pytest.mark.parametrize("bad", [{"face": {"stepz": 3}}, {"face": [4]}, {"body": {"steps": 0}},
                                 {"face": {"eta": 1.5}}, {"style_guidance": 11}])
def test_invalid_checkpoint_sampling_metadata_is_refused(bad):
    with pytest.raises(OptionError):
        checkpoint_sampling({"sampling": bad})


def test_options_are_checked_and_typed_on_construction():
    o = SamplingOptions(seed="7", face=StageSampling(steps=2.0, guidance=3))
    assert o.seed == 7 and o.face.steps == 2 and isinstance(o.face.guidance, float)
    assert o.intensity == Intensity()
    for kwargs, flag in ((dict(face=StageSampling(steps=0)), "--steps"), (dict(seed=-1), "--seed"),
                         (dict(body=StageSampling(guidance=11)), "--body-guidance"),
                         (dict(face=StageSampling(eta=2)), "face_eta"),
                         (dict(body=StageSampling(smoothing_sigma=-1)), "body_smoothing_sigma"),
                         (dict(style_guidance=float("nan")), "--style-guidance")):
        with pytest.raises(OptionError, match=flag):
            SamplingOptions(**kwargs)
    with pytest.raises(ChatAnyoneError, match="intensity gesture"):
        SamplingOptions(intensity=Intensity(gesture=3))


def test_from_arguments_applies_only_what_is_given():
    base = SamplingOptions(seed=3, style="beat2", face=StageSampling(guidance=2.5))
    assert SamplingOptions.from_arguments(base) is base
    o = SamplingOptions.from_arguments(base, steps=2, body_eta=0.5)
    assert (o.seed, o.style, o.face, o.body) == (3, "beat2", StageSampling(steps=2, guidance=2.5),
                                                 StageSampling(steps=2, eta=0.5))
    with pytest.raises(TypeError):
        SamplingOptions.from_arguments(base, stepz=2)
    full = o.resolved(checkpoint_sampling({}))
    assert full.face == StageSampling(2, 2.5, DEFAULT_FACE.guidance_rescale, DEFAULT_FACE.eta,
                                      DEFAULT_FACE.smoothing_sigma)
    assert full.body == replace(DEFAULT_BODY, steps=2, eta=0.5) and full.style_guidance == STYLE_GUIDANCE


def test_generate_takes_an_options_object_or_the_keyword_arguments(tiny_generator, audio):
    gen = tiny_generator
    opts = SamplingOptions(seed=5, style="facegood", intensity=Intensity(0.5, 1.5, 0.8),
                           face=StageSampling(steps=2, guidance=2.5), body=StageSampling(steps=2, eta=0.3))
    a = gen.generate(audio, opts)
    b = gen.generate(audio, seed=5, style="facegood", intensity=Intensity(0.5, 1.5, 0.8), steps=2,
                     face_guidance=2.5, body_eta=0.3)
    assert np.array_equal(a.face, b.face) and np.array_equal(a.rotations, b.rotations) and a.meta == b.meta
    assert a.meta["steps"] == {"face": 2, "body": 2} and a.meta["guidance"]["face"] == 2.5
    c = gen.generate(audio, opts, seed=6)            # a keyword argument over an options object
    assert c.meta["seed"] == 6 and np.abs(c.face - a.face).max() > 1e-4


def test_stream_takes_the_same_options_object(tiny_generator, audio):
    from motion.streaming import MotionStream, StreamConfig, stream_clip
    gen = tiny_generator
    opts = SamplingOptions(seed=2, style="facegood", face=StageSampling(steps=2, guidance=1.5),
                           body=StageSampling(steps=3))
    a = stream_clip(gen, audio, opts)
    b = stream_clip(gen, audio, seed=2, style="facegood", face_guidance=1.5, config=StreamConfig(steps=None),
                    options=SamplingOptions(face=StageSampling(steps=2), body=StageSampling(steps=3)))
    assert np.array_equal(a.face, b.face) and np.array_equal(a.rotations, b.rotations)
    assert a.meta["streaming"]["steps"] == {"face": 2, "body": 3}
    s = MotionStream(gen, opts, config=StreamConfig(steps=1), warm_up=False)   # the config's steps win
    assert s.steps == (1, 1) and s.options.face.guidance == 1.5 and s.options.body.guidance == DEFAULT_BODY.guidance
    with pytest.raises(ChatAnyoneError, match="transcript"):
        MotionStream(gen, SamplingOptions(transcript="hello"), warm_up=False)


def test_checkpoint_sampling_metadata_sets_the_defaults(tiny_checkpoint, tiny_generator, audio, tmp_path):
    """A checkpoint that names its own sampling samples with it: its default output is the plain checkpoint's
    output with those values given explicitly, offline and streaming."""
    from motion.inference import MotionGenerator
    from motion.streaming import stream_clip
    path = _with_sampling(tiny_checkpoint, tmp_path / "own.safetensors",
                          {"face": {"steps": 2, "guidance": 3.0, "smoothing_sigma": 1.0},
                           "body": {"steps": 3, "guidance_rescale": 0.5}})
    own = MotionGenerator(path)
    assert own.sampling.face == StageSampling(2, 3.0, DEFAULT_FACE.guidance_rescale, DEFAULT_FACE.eta, 1.0)
    assert own.sampling.body == replace(DEFAULT_BODY, steps=3, guidance_rescale=0.5)
    explicit = SamplingOptions(seed=1, face=StageSampling(steps=2, guidance=3.0, smoothing_sigma=1.0),
                               body=StageSampling(steps=3, guidance_rescale=0.5))
    a, b = own.generate(audio, seed=1), tiny_generator.generate(audio, explicit)
    assert np.array_equal(a.face, b.face) and np.array_equal(a.rotations, b.rotations)
    assert a.meta["steps"] == {"face": 2, "body": 3}
    assert not np.array_equal(a.face, tiny_generator.generate(audio, seed=1).face)
    s, t = stream_clip(own, audio, seed=1), stream_clip(tiny_generator, audio, explicit)
    assert np.array_equal(s.face, t.face) and np.array_equal(s.rotations, t.rotations)
    bad = _with_sampling(tiny_checkpoint, tmp_path / "bad.safetensors", {"face": {"steps": 99}})
    with pytest.raises(CheckpointError, match="sampling metadata is invalid"):
        MotionGenerator(bad)


def test_importing_the_options_imports_no_torch():
    code = "import sys, motion.options; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
