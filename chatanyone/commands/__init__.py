"""The ``chatanyone`` subcommands, one module each (registered in :data:`chatanyone.cli.COMMANDS`).

Every command module offers the same two functions:

* ``add_arguments(parser)``: adds the command's options to an ``argparse`` (sub)parser;
* ``run(args) -> int``: runs it from the parsed options and returns the exit code. User errors raise
  :class:`motion.errors.ChatAnyoneError`; the one shared wrapper, :func:`chatanyone.cli.main`, prints them
  as one line ``chatanyone: error: ...`` and returns 2.

A module is imported only when its command runs (``chatanyone --help`` imports none), and imports its heavy
dependencies (torch, scipy, the model) inside ``run``. Commands whose options are parsed by the library
module they wrap (``export``, ``prepare``, ``train``, ``evaluate``: that parser is the one documented by
``python -m ...`` too) set ``OWN_PARSER = True``: ``run`` gets ``args.args``, the words after the command name,
and ``add_arguments`` only documents that.
"""
from __future__ import annotations

import argparse


def add_passthrough(parser: argparse.ArgumentParser, command: str) -> None:
    """``add_arguments`` of an ``OWN_PARSER`` command: its words go to the wrapped module's parser."""
    parser.add_argument("args", nargs=argparse.REMAINDER, help=f"see `chatanyone {command} --help`")
