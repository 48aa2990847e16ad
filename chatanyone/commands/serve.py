"""``chatanyone serve``: the browser viewer, an avatar driven by the WebSocket stream (:mod:`bridge.serve`)."""
from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from bridge.serve import build_parser
    build_parser(parser)


def _procedural_avatar() -> bytes:
    """The avatar served without ``--avatar``: the exporters' procedural VRM 1.0 (composed here, so that the
    bridge does not import the exporters; imported only when it is needed)."""
    from exporters.vrm_avatar import vrm_avatar_bytes
    return vrm_avatar_bytes()


def run(args: argparse.Namespace) -> int:
    from bridge import serve
    return serve.run(args, default_avatar=_procedural_avatar)
