"""Atomic file output shared by MotionClip.save and every exporter: a failure never leaves a partial file.

The writer receives a hidden temporary path in the destination folder (same file system, so the final
``os.replace`` is an atomic rename on POSIX and Windows) and writes the whole file there.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import ChatAnyoneError


def _check_destination(path: Path) -> None:
    parent = path.parent
    if not parent.is_dir():
        raise ChatAnyoneError(f"cannot write {path}: the folder {parent} does not exist")
    if path.is_dir():
        raise ChatAnyoneError(f"cannot write {path}: it is a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ChatAnyoneError(f"cannot write {path}: the folder {parent} is not writable")


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; move it into place only if the block succeeds.

    Usage::

        with atomic_output("out/clip.glb") as tmp:
            tmp.write_bytes(data)

    The temporary file is hidden (``.<name>.<random>.tmp``) in the same folder and gets the usual
    permissions of a new file (``0o666`` minus the umask). On success it replaces ``path`` with
    ``os.replace``; on any exception (including ``KeyboardInterrupt``) it is deleted and the exception
    re-raised, so neither a partial ``path`` nor a stray temporary file remains.

    Raises:
        ChatAnyoneError: the destination folder does not exist or is not writable, or ``path`` is a
            folder.
    """
    path = Path(path)
    _check_destination(path)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise ChatAnyoneError(f"cannot write {path}: {e.strerror or e}") from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # after writing: some writers recreate the file with mode 0600
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
