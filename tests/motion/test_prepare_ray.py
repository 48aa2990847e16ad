"""``chatanyone prepare --ray`` (motion.prepare_ray): three real GRID clips give the same files as the local
path (byte-identical motion arrays and audio, the same manifest entries but for timings), a corrupt clip is
reported and skipped without stopping the others, a rerun is a no-op that does not even start Ray, a dying
worker fails only its own task, and ``--ray`` without Ray installed is one error line.

Skipped when ../shared/data is absent, mediapipe/PyAV are missing (video tracking) or Ray is not installed
(``pip install -e '.[scale]'``). Each Ray test starts a private 2-CPU local instance (~5 s)."""
from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
GRID = DATA / "videos" / "grid"
CLIPS = [GRID / "bbaf2n.mpg", GRID / "brbk7n.mpg", GRID / "lbax4n.mpg"]  # 3 s each
needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                               reason="Ray is not installed (pip install -e '.[scale]'): the --ray path is unavailable")
needs_video = pytest.mark.skipif(
    not GRID.is_dir() or importlib.util.find_spec("mediapipe") is None or importlib.util.find_spec("av") is None,
    reason=f"needs the GRID videos in {GRID} (a user's clone has no ../shared) and mediapipe + PyAV for tracking")
TIMING_KEYS = {"seconds", "tracking_s", "tracking_fps"}  # wall-clock fields: the only ones allowed to differ


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # inherited by the Ray workers


def _without_timings(x):
    if isinstance(x, dict):
        return {k: _without_timings(v) for k, v in x.items() if k not in TIMING_KEYS}
    return x


@pytest.mark.slow
@needs_ray
@needs_video
def test_ray_matches_local_and_skips_a_failed_clip(tmp_path):
    from motion import prepare

    bad = tmp_path / "in" / "broken.mpg"
    bad.parent.mkdir()
    bad.write_bytes(b"\x00\x00\x01\xba" + os.urandom(4000))  # an MPEG pack header, then noise
    inputs = [str(c) for c in CLIPS] + [str(bad)]
    local, remote = tmp_path / "local", tmp_path / "ray"
    rep = prepare.run(inputs, local, progress=False, echo=None)
    assert len(rep.prepared) == 3 and [p for p, _ in rep.skipped] == [str(bad)]

    code = prepare.main([*inputs, "-o", str(remote), "--ray", "--workers", "2", "--quiet"])
    assert code == 1  # an input was skipped; the other three are prepared
    ml = json.loads((local / prepare.MANIFEST).read_text())
    mr = json.loads((remote / prepare.MANIFEST).read_text())
    assert sorted(mr["clips"]) == sorted(ml["clips"]) == ["grid__bbaf2n", "grid__brbk7n", "grid__lbax4n"]
    assert list(mr["skipped"]) == [str(bad)] and "in/broken.mpg" not in json.dumps(mr["clips"])
    for name in ml["clips"]:
        assert _without_timings(mr["clips"][name]) == _without_timings(ml["clips"][name])
        with np.load(local / f"{name}.npz") as a, np.load(remote / f"{name}.npz") as b:
            assert a.files == b.files
            for k in a.files:
                assert a[k].tobytes() == b[k].tobytes(), (name, k)
        assert (local / f"{name}.wav").read_bytes() == (remote / f"{name}.wav").read_bytes()
    assert sorted(p.name for p in remote.iterdir()) == sorted(p.name for p in local.iterdir())  # no temporaries

    # restartable: a second run finds every clip complete and never starts Ray
    import ray

    mtimes = {p.name: p.stat().st_mtime_ns for p in remote.glob("*.npz")}
    from motion.prepare_ray import run as ray_run
    rep2 = ray_run([str(c) for c in CLIPS], remote, workers=2, progress=False, echo=None)
    assert sorted(rep2.existing) == sorted(ml["clips"]) and not rep2.prepared and not ray.is_initialized()
    assert {p.name: p.stat().st_mtime_ns for p in remote.glob("*.npz")} == mtimes


@needs_ray
def test_a_dying_worker_fails_only_its_task():
    """A task whose process exits (a segfault or OOM kill looks the same to Ray) raises from its future;
    the tasks around it complete (motion.prepare.run reports it as 'worker failed' and goes on)."""
    import operator

    from motion.prepare_ray import RayExecutor

    with RayExecutor("local", workers=2, resources={"num_cpus": 1, "max_retries": 0}) as ex:
        futs = [ex.submit(operator.mul, 6, 7), ex.submit(os._exit, 3), ex.submit(operator.add, 1, 2)]
        assert futs[0].result(timeout=120) == 42 and futs[2].result(timeout=120) == 3
        with pytest.raises(Exception) as e:
            futs[1].result(timeout=120)
        assert "Worker" in type(e.value).__name__ or "died" in str(e.value) or "exit" in str(e.value).lower()
        assert "CPU" in ex.describe() and "local Ray instance" in ex.describe()
    import ray
    assert not ray.is_initialized()  # the executor stops the local instance it started


def test_ray_flag_without_ray_is_one_error_line(tmp_path, monkeypatch, capsys):
    from motion import prepare

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    out = tmp_path / "out"
    code = prepare.main([str(tmp_path), "-o", str(out), "--ray", "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "pip install -e '.[scale]'" in err[0]
    assert not out.exists()  # nothing written


@pytest.mark.parametrize("argv, ray, inputs", [
    (["--ray", "videos/", "-o", "o"], "local", ["videos/"]),          # a bare --ray before an input
    (["v", "-o", "o", "--ray"], "local", ["v"]),
    (["v", "--ray", "10.0.0.5:6379", "-o", "o"], "10.0.0.5:6379", ["v"]),
    (["v", "--ray", "ray://head:10001", "-o", "o"], "ray://head:10001", ["v"]),
    (["v", "--ray", "auto", "-o", "o"], "auto", ["v"]),
    (["v", "--ray=auto", "-o", "o"], "auto", ["v"]),
    (["--ray", "a.mp4", "b.mp4", "-o", "o"], "local", ["b.mp4", "a.mp4"]),
    (["v", "-o", "o"], None, ["v"]),
])
def test_ray_flag_address_or_input(argv, ray, inputs, monkeypatch):
    """``--ray`` with no address followed by an input: the word is an input, the address ``local``; what
    ``chatanyone prepare`` and ``python -m motion.prepare`` hand to :func:`motion.prepare.run`."""
    import argparse

    from motion import prepare_ray
    from motion.prepare import cli, runner

    p = argparse.ArgumentParser()
    cli.add_arguments(p)
    a = p.parse_args(argv)
    assert a.ray == ray
    seen = {}
    monkeypatch.setattr(runner, "run", lambda inputs, out, **kw: seen.update(inputs=inputs, **kw) or runner.Report())
    monkeypatch.setattr(prepare_ray, "RayExecutor", lambda address, workers: ("ray", address))
    assert cli.run_command(a) == 0
    assert seen["inputs"] == inputs and seen["executor"] == (None if ray is None else ("ray", ray))
