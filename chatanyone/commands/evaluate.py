"""``chatanyone evaluate``: metrics on held-out real data (options, ``--seed`` included, parsed by
:func:`motion.evaluate.main`)."""
from __future__ import annotations

import argparse

from . import add_passthrough

OWN_PARSER = True


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_passthrough(parser, "evaluate")


def run(args: argparse.Namespace) -> int:
    from motion import evaluate
    return evaluate.main(args.args)
