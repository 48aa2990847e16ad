"""``chatanyone evaluate``: metrics on held-out real data. The options (``--seed`` included) are
:mod:`motion.evaluate_cli`'s (shared with ``python -m motion.evaluate``; importing it loads no torch)."""
from __future__ import annotations

from motion.evaluate_cli import DESCRIPTION, add_arguments, run  # noqa: F401  (the command's options and run)
