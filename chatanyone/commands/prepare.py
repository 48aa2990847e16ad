"""``chatanyone prepare``: videos, Live Link CSV, BEAT2, FACEGOOD -> training clips (options parsed by
:func:`motion.prepare.main`)."""
from __future__ import annotations

import argparse

from . import add_passthrough

OWN_PARSER = True


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_passthrough(parser, "prepare")


def run(args: argparse.Namespace) -> int:
    from motion import prepare
    return prepare.main(args.args)
