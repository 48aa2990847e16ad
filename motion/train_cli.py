"""Options of ``chatanyone train`` / ``python -m motion.train`` (light: importing this loads no torch).

:func:`add_arguments` builds them; :func:`run` hands the parsed options to :func:`motion.train.run_cli`.
"""
from __future__ import annotations

import argparse

DESCRIPTION = "Train the two-stage motion diffusion model from a TOML config (see configs/default.toml)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``train`` options."""
    parser.add_argument("config", help="TOML config (see configs/default.toml)")
    parser.add_argument("--out-dir", help="override the config's out_dir")
    parser.add_argument("--install", action="store_true",
                        help="also copy the result to motion/checkpoints/default.safetensors")
    parser.add_argument("--body-gain-only", action="store_true",
                        help="do not train: re-fit the body variance compensation of the checkpoint already in "
                             "out_dir on the config's training clips")
    parser.add_argument("--mouth-scale-only", action="store_true",
                        help="do not train: fit the iPhone ARKit mouth scale (motion.face_scale) of the checkpoint "
                             "already in out_dir on the config's training clips")
    parser.add_argument("--nproc", type=int, default=1,
                        help="train with DDP in N local processes (gloo on CPU, NCCL with one GPU each); under "
                             "torchrun leave it out (see README, Scaling out)")


def run(args: argparse.Namespace) -> int:
    """Train as ``args`` say (:func:`motion.train.run_cli`); returns 0."""
    from .train import run_cli
    return run_cli(args)
