"""The CLI's layout: one module per subcommand with ``add_arguments``/``run``, and start-up that imports only
what a command needs (``--help`` and ``motion.errors`` load no torch, scipy or diffusers)."""
import json
import subprocess
import sys

import pytest

from chatanyone import cli
from tests.conftest import REPO

HEAVY = ("torch", "scipy", "diffusers", "librosa", "numba", "trimesh")


def loaded_after(code: str) -> dict:
    """Run ``code`` in a fresh interpreter; which of :data:`HEAVY` it imported."""
    probe = (f"import sys, io, contextlib\nbuf = io.StringIO()\nwith contextlib.redirect_stdout(buf):\n"
             f"    try:\n        {code}\n    except SystemExit:\n        pass\n"
             f"print({{m: m in sys.modules for m in {HEAVY!r}}})")
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1].replace("'", '"').replace("True", "true")
                      .replace("False", "false"))


@pytest.mark.parametrize("code", [
    "import motion.errors",
    "import motion",
    "from chatanyone.cli import main; main(['--help'])",
    "from chatanyone.cli import main; main(['animate', '--help'])",
    "from chatanyone.cli import main; main(['stream', '--help'])",
    "from chatanyone.cli import main; main(['serve', '--help'])",
    "from chatanyone.cli import main; main(['render', '--help'])",
    "from chatanyone.cli import main; main(['export', '--help'])",
    "from chatanyone.cli import main; main(['prepare', '--help'])",
    "from chatanyone.cli import main; main(['train', '--help'])",
    "from chatanyone.cli import main; main(['evaluate', '--help'])",
    "from chatanyone.cli import main; main(['animate', '/no/such.wav'])",
])
def test_light_paths_import_no_torch_scipy_or_diffusers(code):
    loaded = loaded_after(code)
    assert not any(loaded.values()), {m for m, v in loaded.items() if v}


def test_every_command_module_offers_add_arguments_and_run():
    import argparse
    for name in cli.COMMANDS:
        module = cli.command_module(name)
        assert callable(module.add_arguments) and callable(module.run), name
        p = argparse.ArgumentParser(prog=f"chatanyone {name}")
        module.add_arguments(p)
    full = cli.build_parser()    # every command with its options, as `chatanyone CMD --help` shows them
    assert full.parse_args(["animate", "a.wav", "--seed", "3"]).seed == 3
    assert full.parse_args(["stream", "c.npz", "--ws", "0"]).ws == 0


def test_prepare_and_export_share_their_modules_options(tmp_path, capsys):
    """``prepare`` and ``export`` take ``add_arguments``/``run`` from the modules ``python -m`` runs
    (no argv rebuilt); their user errors are one ``chatanyone: error:`` line, exit 2, nothing written."""
    from exporters import cli as export_cli
    from motion.prepare import cli as prepare_cli
    assert cli.command_module("prepare").add_arguments is prepare_cli.add_arguments
    assert cli.command_module("export").add_arguments is export_cli.add_arguments
    from motion import evaluate_cli, train_cli
    assert cli.command_module("train").add_arguments is train_cli.add_arguments
    assert cli.command_module("evaluate").add_arguments is evaluate_cli.add_arguments
    e = cli.build_parser(["evaluate"]).parse_args(["evaluate", "--seed", "7", "--lipsync-only"])
    assert (e.seed, e.lipsync_only, e.run) == (7, True, evaluate_cli.run)   # evaluate keeps --seed
    t = cli.build_parser(["train"]).parse_args(["train", "c.toml", "--nproc", "2"])
    assert (t.config, t.nproc, t.run) == ("c.toml", 2, train_cli.run)
    a = cli.build_parser(["prepare"]).parse_args(["prepare", "--ray", "clips/", "-o", "out", "--fix-sync"])
    assert (a.ray, a.ray_inputs, a.inputs, a.fix_sync) == ("local", ["clips/"], [], True)
    out = tmp_path / "out"
    for argv in (["prepare", "-o", str(out)], ["prepare", "x.mp4", "-o", str(out), "--workers", "0"],
                 ["prepare", "x.mp4"], ["export", str(tmp_path / "x.npz"), "-f", "nope", "-o", str(out)],
                 ["train", "c.toml", "--nproc", "0"], ["train", str(tmp_path / "none.toml")],
                 ["evaluate", "--seed", "-1"]):
        assert cli.main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("chatanyone: error: ") and err.count("\n") == 1, err
    assert not out.exists()


def test_evaluate_gets_every_option_seed_included(monkeypatch):
    """``chatanyone evaluate`` hands every parsed option to :func:`motion.evaluate.run` (``--seed`` kept)."""
    from motion import evaluate
    seen = []
    monkeypatch.setattr(evaluate, "run", lambda *a, **k: seen.append((a, k)) or "report")
    assert cli.main(["evaluate", "--seed", "7", "--lipsync-only", "--out", "x", "--no-speed"]) == 0
    (args, kw), = seen
    assert args == (None, "x", 7, None) and kw["lipsync_only"] and not kw["speed"]


def test_console_script_exit_keeps_output_and_codes(tmp_path):
    """``console_main`` ends ``export``/``animate`` with ``os._exit``: what they printed (to a pipe) and wrote
    is complete, and the exit codes are main's (0; 2 with one error line)."""
    from tests.bridge.helpers import synthetic_clip
    clip = synthetic_clip(30).save(tmp_path / "clip.npz")

    def console(*args):
        code = f"import sys; sys.argv = ['chatanyone', *{list(args)!r}]; from chatanyone.cli import console_main; console_main()"
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)

    r = console("export", str(clip), "-f", "bvh,csv", "-o", str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["clip.bvh", "clip.csv"]
    assert r.stdout.count("wrote") == 2 and r.stdout.endswith("\n")
    assert (tmp_path / "out" / "clip.bvh").read_text().rstrip().splitlines()[-1].strip()   # complete file
    r = console("animate", str(tmp_path / "missing.wav"))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and r.stderr.startswith("chatanyone: error:")
