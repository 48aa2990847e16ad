"""Whole-process wall time of ``chatanyone`` commands, start-up included: what a user waits for.

    python benchmarks/startup.py [--repeats 5] [--seconds 1,4,60] [--formats npz,glb,bvh]

Rows: ``python -c pass`` and ``python -c "import torch"`` (the floors: the interpreter, and the least any
command that runs the model pays), ``python -c "import motion.errors"``, ``chatanyone --help``, and
``chatanyone animate AUDIO -q`` for each length in ``--seconds`` (default formats npz, glb, bvh). The audio is
real speech: the ``chatanyone/samples/*.wav`` files cut or tiled to length in a temporary folder. Each row is
the median (and min/max) of ``--repeats`` fresh processes, run one after another, round-robin over the rows,
so a change in machine load hits every row alike; next to the wall time, the median CPU time (user + system)
of the process, which a loaded machine barely changes. Then one in-process breakdown of ``animate`` for each
length (medians): imports, model load, generate (features + sampling), export.

Ratios within one run are comparable; absolute seconds depend on the machine and its load (say which).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SAMPLES = sorted((REPO / "chatanyone" / "samples").glob("*.wav"))

# One in-process run of what ``chatanyone animate`` does, timed per phase (printed as JSON on stdout).
PHASES = r"""
import json, sys, time
t0, c0 = time.perf_counter(), time.process_time(); laps = {}
def lap(name):
    global t0, c0
    t, c = time.perf_counter(), time.process_time(); laps[name] = (t - t0, c - c0); t0, c0 = t, c
import torch; lap("import torch")
from motion.inference import MotionGenerator; lap("import motion.inference")
from exporters import export; import librosa.feature, librosa.onset; lap("import librosa, exporters")
gen = MotionGenerator(None); lap("load model")
clip = gen.animate_file(sys.argv[1], seed=0); lap("generate (features + sampling)")
from pathlib import Path
export(clip, Path(sys.argv[2]), "bench", sys.argv[3].split(",")); lap("export (imports included)")
print(json.dumps(laps))
"""


def make_audio(seconds: float, folder: Path) -> Path:
    """Real speech of exactly ``seconds``: the sample files concatenated (repeated as needed), then cut."""
    import soundfile as sf
    from motion.audio import load_audio
    parts, n, need = [], 0, int(round(seconds * 16000))
    while n < need:
        for p in SAMPLES:
            a = load_audio(p)
            parts.append(a)
            n += len(a)
    path = folder / f"speech_{seconds:g}s.wav"
    sf.write(path, np.concatenate(parts)[:need], 16000, subtype="PCM_16")
    return path


def wall(cmd: list[str], env: dict, cwd: Path = REPO) -> tuple[float, float]:
    """``(wall seconds, CPU seconds user + system)`` of one run of ``cmd`` (the CPU time barely moves with
    the machine's load; the wall time is what the user waits)."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=cwd)
    t = time.perf_counter() - t
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return t, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=5, help="fresh processes per row (default 5)")
    ap.add_argument("--seconds", default="1,4,60", help="audio lengths for animate (default 1,4,60)")
    ap.add_argument("--formats", default="npz,glb,bvh", help="animate's --formats (default npz,glb,bvh)")
    ap.add_argument("--no-breakdown", action="store_true", help="skip the in-process phase breakdown")
    ap.add_argument("--baseline", metavar="DIR", default=None,
                    help="also time the project's rows with the code in DIR (e.g. an older commit, `git archive "
                         "COMMIT | tar -x -C DIR`), put first on PYTHONPATH; rows marked [baseline]")
    a = ap.parse_args()
    exe = Path(sys.executable)
    cli = exe.parent / "chatanyone"
    cli_cmd = [str(cli)] if cli.exists() else [str(exe), "-m", "chatanyone.cli"]
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault("MKL_NUM_THREADS", "1")
    lengths = [float(s) for s in a.seconds.split(",") if s]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ours: dict[str, list[str]] = {
            "python -c 'import motion.errors'": ["-c", "import motion.errors"],
            "python -c 'import motion.inference'": ["-c", "import motion.inference"],
            "chatanyone --help": ["--help"],
        }
        for s in lengths:
            audio = make_audio(s, tmp)
            ours[f"chatanyone animate ({s:g} s audio)"] = [
                "animate", str(audio), "-o", str(tmp / "out"), "-q", "--formats", a.formats]
        rows: dict[str, tuple[list[str], dict, Path]] = {
            "python -c pass": ([str(exe), "-c", "pass"], env, REPO),
            "python -c 'import torch'": ([str(exe), "-c", "import torch"], env, REPO)}
        for name, args in ours.items():
            rows[name] = ([str(exe)] + args if args[0] == "-c" else cli_cmd + args), env, REPO
            if a.baseline:   # run from the baseline folder: `-c`/`-m` put the working folder first on sys.path
                base = Path(a.baseline).resolve()
                benv = dict(env, PYTHONPATH=os.pathsep.join(
                    [str(base)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])))
                rows[name + " [baseline]"] = ([str(exe)] + (args if args[0] == "-c" else ["-m", "chatanyone.cli"] + args),
                                              benv, base)
        times: dict[str, list[tuple[float, float]]] = {k: [] for k in rows}
        print(f"load average (1/5/15 min) at the start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on "
              f"{os.cpu_count()} CPUs")
        for _ in range(a.repeats):
            for name, (cmd, row_env, cwd) in rows.items():
                times[name].append(wall(cmd, row_env, cwd))
        print(f"whole-process times, {a.repeats} fresh processes per row (OMP_NUM_THREADS={env['OMP_NUM_THREADS']})")
        print(f"{'command':53s} {'wall median s':>13s} {'min s':>6s} {'max s':>6s} {'CPU median s':>12s}")
        for name, ts in times.items():
            w = [x[0] for x in ts]
            print(f"{name:53s} {statistics.median(w):13.2f} {min(w):6.2f} {max(w):6.2f} "
                  f"{statistics.median(x[1] for x in ts):12.2f}")
        if not a.no_breakdown:
            print(f"\nin-process breakdown of animate (median of {a.repeats}; wall s / CPU s)")
            for s in lengths:
                audio = tmp / f"speech_{s:g}s.wav"
                runs = []
                for _ in range(a.repeats):
                    out = subprocess.run([str(exe), "-c", PHASES, str(audio), str(tmp / "out"), a.formats], env=env,
                                         check=True, capture_output=True, text=True, cwd=REPO).stdout
                    runs.append(json.loads(out.strip().splitlines()[-1]))
                print(f"  {s:g} s audio: " + ", ".join(
                    f"{k} {statistics.median(r[k][0] for r in runs):.2f}/{statistics.median(r[k][1] for r in runs):.2f}"
                    for k in runs[0]))
    print(f"\nload average (1/5/15 min) at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on "
          f"{os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
