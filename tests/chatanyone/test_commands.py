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
        p = argparse.ArgumentParser(prog=f"chatanyone {name}", add_help=not getattr(module, "OWN_PARSER", False))
        module.add_arguments(p)
    full = cli.build_parser()    # every command with its options, as `chatanyone CMD --help` shows them
    assert full.parse_args(["animate", "a.wav", "--seed", "3"]).seed == 3
    assert full.parse_args(["stream", "c.npz", "--ws", "0"]).ws == 0


def test_evaluate_gets_every_word_after_its_name(monkeypatch):
    from motion import evaluate
    seen = []
    monkeypatch.setattr(evaluate, "main", lambda argv: seen.append(argv) or 0)
    assert cli.main(["evaluate", "--seed", "7", "--lipsync-only", "--out", "x"]) == 0
    assert seen == [["--seed", "7", "--lipsync-only", "--out", "x"]]
