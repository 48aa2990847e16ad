"""``chatanyone serve``: the browser viewer, an avatar driven by the WebSocket stream (:mod:`bridge.serve`)."""
from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from bridge.serve import build_parser
    build_parser(parser)


def run(args: argparse.Namespace) -> int:
    from bridge import serve
    return serve.run(args)
