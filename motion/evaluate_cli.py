"""Options of ``chatanyone evaluate`` / ``python -m motion.evaluate`` (light: importing this loads no torch).

:func:`add_arguments` builds them; :func:`run` hands the parsed options to :func:`motion.evaluate.run_cli`.
"""
from __future__ import annotations

import argparse

DESCRIPTION = ("Metrics on held-out real data: lip sync against real capture of unseen speakers, body, style, "
               "speed; next to baselines.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``evaluate`` options."""
    parser.add_argument("--checkpoint", default=None, help="checkpoint to evaluate (default: the shipped one)")
    parser.add_argument("--out", default="eval", help="folder for report.md and plots (default eval)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the generated motion, 0..2^64-1 (default 0)")
    parser.add_argument("--config", default=None, help="take the held-out clips from this training config")
    parser.add_argument("--no-speed", action="store_true", help="skip the speed measurements")
    parser.add_argument("--data", action="append", default=[], metavar="PREPARED_DIR",
                        help="`chatanyone prepare` folder holding the held-out speakers' talking videos "
                             "(repeatable; default runs/prepared when it exists)")
    parser.add_argument("--baseline-checkpoint", default=None, metavar="PATH",
                        help="also score this checkpoint in the lip-sync table (e.g. runs/checkpoints/v0.4.0.safetensors)")
    parser.add_argument("--no-lipsync", action="store_true", help="skip the lip-sync-against-capture section")
    parser.add_argument("--lipsync-only", action="store_true", help="only the lip-sync-against-capture section")
    parser.add_argument("--no-streaming-lipsync", action="store_true",
                        help="skip the streaming rows of the lip-sync section (the slowest part)")


def run(args: argparse.Namespace) -> int:
    """Evaluate as ``args`` say (:func:`motion.evaluate.run_cli`); returns 0."""
    from .evaluate import run_cli
    return run_cli(args)
