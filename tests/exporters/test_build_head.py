"""The packaged head asset (exporters/assets/head_arkit.npz) and the script that builds it from ICT-FaceKit."""
import json
from pathlib import Path

import numpy as np
import pytest

from exporters import build_head, glb
from motion.conventions import ARKIT_NAMES
from tests.conftest import DATA

ARCHIVE = DATA / "heads" / "ict_facekit.tar.xz"


def test_packaged_asset_is_small_and_credited():
    assert build_head.ASSET.is_file() and build_head.ASSET.stat().st_size <= 8_000_000
    h = glb.head_asset()
    assert [str(n) for n in h["target_names"]] == list(ARKIT_NAMES)
    meta = h["meta"]
    assert meta["license"] == "MIT" and "USC Institute for Creative Technologies" in meta["credit"]
    assert "Permission is hereby granted" in meta["license_text"]          # the MIT text travels with it
    assert len(h["vertices"]) == build_head.KEEP and h["triangles"].max() < build_head.KEEP
    assert np.allclose(h["eye_centers"].mean(0), 0, atol=1e-6)          # origin between the eyeballs
    assert h["eye_centers"][0, 0] > 0                                     # the face's left eye on +X
    # every target moves something; tongueOut (made here) moves the tongue forward
    off = h["target_offsets"]
    assert (np.diff(off) > 0).all()
    k = ARKIT_NAMES.index("tongueOut")
    assert h["target_deltas_mm"][off[k]:off[k + 1], 2].astype(np.float32).max() > 30


def test_rebuild_from_the_kit_gives_the_packaged_asset(tmp_path):
    if not ARCHIVE.is_file():
        pytest.skip(f"ICT-FaceKit archive not found at {ARCHIVE} (../shared/data is not mounted)")
    assert build_head.main([str(ARCHIVE), "-o", str(tmp_path / "head.npz")]) == 0
    with np.load(tmp_path / "head.npz") as new, np.load(build_head.ASSET) as old:
        assert sorted(new.files) == sorted(old.files)
        for key in old.files:
            if key == "meta":
                assert json.loads(str(new[key])) == json.loads(str(old[key]))
            else:
                np.testing.assert_array_equal(new[key], old[key], err_msg=key)


def test_missing_or_wrong_archive_is_one_line(tmp_path, capsys):
    assert build_head.main([str(tmp_path / "nope.tar.xz"), "-o", str(tmp_path / "h.npz")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("chatanyone: error:") and err.count("\n") == 1 and "not found" in err
    assert not (tmp_path / "h.npz").exists()
    bad = Path(tmp_path / "bad.tar.xz")
    bad.write_bytes(b"not an archive")
    assert build_head.main([str(bad), "-o", str(tmp_path / "h.npz")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("chatanyone: error:") and err.count("\n") == 1
    assert not (tmp_path / "h.npz").exists()
