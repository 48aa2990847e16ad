"""The ``chatanyone`` subcommands, one module each (registered in :data:`chatanyone.cli.COMMANDS`).

Every command module offers the same two functions:

* ``add_arguments(parser)``: adds the command's options to an ``argparse`` (sub)parser;
* ``run(args) -> int``: runs it from the parsed options and returns the exit code. User errors raise
  :class:`motion.errors.ChatAnyoneError`; the one shared wrapper, :func:`chatanyone.cli.main`, prints them
  as one line ``chatanyone: error: ...`` and returns 2.

A module is imported only when its command runs (``chatanyone --help`` imports none), and imports its heavy
dependencies (torch, scipy, the model) inside ``run``. Where the library module has a ``python -m`` entry too
(``export``: :mod:`exporters.cli`, ``prepare``: :mod:`motion.prepare.cli`), the command module takes that
module's ``add_arguments`` and calls its ``run``, so both entries share one set of options. Commands whose
options are still parsed by the library module they wrap (``train``, ``evaluate``) set ``OWN_PARSER = True``:
``run`` gets ``args.args``, the words after the command name, and ``add_arguments`` only documents that.
"""
from __future__ import annotations

import argparse


def add_passthrough(parser: argparse.ArgumentParser, command: str) -> None:
    """``add_arguments`` of an ``OWN_PARSER`` command: its words go to the wrapped module's parser."""
    parser.add_argument("args", nargs=argparse.REMAINDER, help=f"see `chatanyone {command} --help`")
