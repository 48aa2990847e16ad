"""``chatanyone prepare``: videos, Live Link CSV, BEAT2, FACEGOOD -> training clips. The options and their
handling are :mod:`motion.prepare.cli`'s (shared with ``python -m motion.prepare``; importing it loads no
SciPy or MediaPipe)."""
from __future__ import annotations

import argparse

from motion.prepare.cli import DESCRIPTION, add_arguments  # noqa: F401  (the command's options)


def run(args: argparse.Namespace) -> int:
    """Prepare the inputs; returns 0, or 1 when an input was skipped (user errors raise ChatAnyoneError)."""
    from motion.prepare.cli import run_command
    return run_command(args)
