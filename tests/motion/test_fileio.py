"""Atomic output: a failure never leaves a partial or temporary file."""
import os

import pytest

from motion import fileio
from motion.errors import ChatAnyoneError
from motion.fileio import atomic_output


def test_atomic_output_replaces_only_on_success(tmp_path):
    target = tmp_path / "f.txt"
    target.write_text("old")
    with pytest.raises(KeyboardInterrupt):
        with atomic_output(target) as tmp:
            assert tmp.parent == tmp_path and tmp.name.startswith(".")
            tmp.write_text("half")
            raise KeyboardInterrupt
    assert target.read_text() == "old" and sorted(tmp_path.iterdir()) == [target]
    with atomic_output(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new" and sorted(tmp_path.iterdir()) == [target]


def test_unwritable_directory(tmp_path, monkeypatch):
    monkeypatch.setattr(fileio.os, "access", lambda *a, **k: False)
    with pytest.raises(ChatAnyoneError, match="not writable"):
        with atomic_output(tmp_path / "x.glb"):
            pass


def test_new_file_gets_umask_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        with atomic_output(tmp_path / "p.bin") as tmp:
            tmp.write_bytes(b"x")
    finally:
        os.umask(umask)
    assert (tmp_path / "p.bin").stat().st_mode & 0o777 == 0o644


def test_folder_as_target_is_a_user_error(tmp_path):
    with pytest.raises(ChatAnyoneError, match="folder"):
        with atomic_output(tmp_path):
            pass


def test_atomic_outputs_all_or_nothing(tmp_path):
    a, b = tmp_path / "t.npz", tmp_path / "t.bvh"
    with pytest.raises(KeyboardInterrupt):
        with fileio.atomic_outputs([a, b]) as (ta, tb):
            assert ta.suffix == ".npz" and ta.name.startswith(".t.") and tb.suffix == ".bvh"
            ta.write_text("a")
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []
    with fileio.atomic_outputs([a, b]) as (ta, tb):
        ta.write_text("a")
        tb.write_text("b")
        assert not a.exists() and not b.exists()
    assert a.read_text() == "a" and b.read_text() == "b" and len(list(tmp_path.iterdir())) == 2
    with pytest.raises(ChatAnyoneError, match="named twice"):
        with fileio.atomic_outputs([a, tmp_path / "." / "t.npz"]):
            pass


def test_disk_full_becomes_a_user_error(tmp_path):
    import errno
    with pytest.raises(ChatAnyoneError, match=r"cannot write .*x\.bin: No space left on device"):
        with atomic_output(tmp_path / "x.bin") as tmp:
            tmp.write_bytes(b"partial")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(OSError, match="not a user error"):       # other OS errors keep their traceback
        with atomic_output(tmp_path / "x.bin"):
            raise OSError(errno.EBADF, "not a user error")
