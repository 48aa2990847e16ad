"""The ``chatanyone`` subcommands, one module each (registered in :data:`chatanyone.cli.COMMANDS`).

Every command module offers the same two functions:

* ``add_arguments(parser)``: adds the command's options to an ``argparse`` (sub)parser;
* ``run(args) -> int``: runs it from the parsed options and returns the exit code. User errors raise
  :class:`motion.errors.ChatAnyoneError`; the one shared wrapper, :func:`chatanyone.cli.main`, prints them
  as one line ``chatanyone: error: ...`` and returns 2.

A module is imported only when its command runs (``chatanyone --help`` imports none), and imports its heavy
dependencies (torch, scipy, the model) inside ``run``. Where the library has a ``python -m`` entry too
(``export``: :mod:`exporters.cli`, ``prepare``: :mod:`motion.prepare.cli`, ``train``: :mod:`motion.train_cli`,
``evaluate``: :mod:`motion.evaluate_cli`), the command module takes that module's ``add_arguments`` and
``run``, so both entries share one set of options.
"""
from __future__ import annotations
