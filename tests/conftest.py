"""Shared test fixtures: where the real data lives, and a skip marker when it is absent."""
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"real data folder {DATA} is absent (a user's clone has no ../shared)")
