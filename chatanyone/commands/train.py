"""``chatanyone train``: the motion model from a TOML config. The options are :mod:`motion.train_cli`'s
(shared with ``python -m motion.train``; importing it loads no torch)."""
from __future__ import annotations

from motion.train_cli import DESCRIPTION, add_arguments, run  # noqa: F401  (the command's options and run)
