"""``chatanyone export``: a MotionClip .npz -> glb, vrma, bvh, csv. The options and their handling are
:mod:`exporters.cli`'s (shared with ``python -m exporters.cli``; importing it loads no torch or SciPy)."""
from __future__ import annotations

import argparse

from exporters.cli import DESCRIPTION, add_arguments  # noqa: F401  (the command's options)


def run(args: argparse.Namespace) -> int:
    """Write the asked-for files; returns 0 (user errors raise ChatAnyoneError)."""
    from exporters import cli
    return cli.run(args)
