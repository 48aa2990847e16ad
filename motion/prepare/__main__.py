"""``python -m motion.prepare INPUT... -o DATASET_DIR`` (:func:`motion.prepare.cli.main`)."""
from .cli import main

if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
