"""``chatanyone export``: a MotionClip .npz -> glb, vrma, bvh, csv (options parsed by :mod:`exporters.cli`)."""
from __future__ import annotations

import argparse

from . import add_passthrough

OWN_PARSER = True


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_passthrough(parser, "export")


def run(args: argparse.Namespace) -> int:
    from exporters import cli
    return cli.main(args.args)
