"""``chatanyone train``: the motion model from a TOML config (options parsed by :func:`motion.train.main`)."""
from __future__ import annotations

import argparse

from . import add_passthrough

OWN_PARSER = True


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_passthrough(parser, "train")


def run(args: argparse.Namespace) -> int:
    from motion import train
    return train.main(args.args)
