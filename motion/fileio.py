"""Atomic file output shared by MotionClip.save and every exporter: a failure never leaves a partial file.

The writer receives a hidden temporary path in the destination folder (same file system, so the final
``os.replace`` is an atomic rename on POSIX and Windows) and writes the whole file there.

* :func:`atomic_output`: one file.
* :func:`atomic_outputs`: a set of files (e.g. every export format of one clip), each written to its own
  temporary and all renamed into place at the end, with SIGINT/SIGTERM held off during the renames: a
  failure or Ctrl-C leaves none of the set, a crash leaves at most hidden temporaries.
* :func:`interrupt_on_sigterm`: SIGTERM raises ``KeyboardInterrupt`` like SIGINT, so the cleanup above runs
  when a process is terminated (``kill``, a service manager, a container stop).

I/O errors of the writer (disk full, quota, read-only file system, permission, I/O error) become
:class:`~motion.errors.ChatAnyoneError` with the path and the system's reason, after the temporary is
removed.
"""
from __future__ import annotations

import contextlib
import errno
import os
import signal
import tempfile
import threading
from collections.abc import Iterator, Sequence
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
        _set_new_file_mode(tmp)
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        if e.errno in USER_IO_ERRNOS:
            raise ChatAnyoneError(f"cannot write {path}: {e.strerror or e}") from None
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


#: ``errno`` values of I/O failures caused by the machine's state rather than a bug: reported on one line.
USER_IO_ERRNOS = frozenset(getattr(errno, n) for n in (
    "ENOSPC", "EDQUOT", "EFBIG", "EROFS", "EACCES", "EPERM", "EIO", "ENAMETOOLONG") if hasattr(errno, n))


def _set_new_file_mode(path: Path) -> None:
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)  # after writing: some writers recreate the file with mode 0600


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM (delivered when the block ends) where the platform can (POSIX)."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


@contextlib.contextmanager
def atomic_outputs(paths: Sequence[str | os.PathLike]) -> Iterator[list[Path]]:
    """Yield one temporary path per destination; move them all into place only if the block succeeds.

    Usage::

        with atomic_outputs(["out/a.glb", "out/a.bvh"]) as (glb_tmp, bvh_tmp):
            write_glb(glb_tmp); write_bvh(bvh_tmp)

    Each temporary is hidden in its destination's folder and keeps the destination's suffix
    (``.<stem>.<random>.tmp<suffix>``), so writers that insist on a suffix accept it. Every destination is
    checked before the block runs. On success the temporaries are renamed (``os.replace``) one after the
    other with SIGINT and SIGTERM held, so an interrupt cannot split the set; only a hard kill (SIGKILL,
    power loss) in those few microseconds could, and it leaves the hidden temporaries of the rest. On any
    exception (including ``KeyboardInterrupt``) every temporary is deleted and no destination is touched.

    Raises:
        ChatAnyoneError: a destination folder is missing or unwritable, a destination is a folder, two
            destinations are the same file, or an I/O error (disk full, ...) while renaming.
    """
    finals = [Path(p) for p in paths]
    if len({os.path.abspath(p) for p in finals}) != len(finals):
        raise ChatAnyoneError(f"the same output file is named twice: {[str(p) for p in finals]}")
    for p in finals:
        _check_destination(p)
    tmps: list[Path] = []
    try:
        for p in finals:
            try:
                fd, name = tempfile.mkstemp(prefix=f".{p.stem}.", suffix=f".tmp{p.suffix}", dir=p.parent)
            except OSError as e:
                raise ChatAnyoneError(f"cannot write {p}: {e.strerror or e}") from None
            os.close(fd)
            tmps.append(Path(name))
        yield list(tmps)
        done: list[Path] = []
        with _signals_held():
            try:
                for tmp, p in zip(tmps, finals):
                    _set_new_file_mode(tmp)
                    os.replace(tmp, p)
                    done.append(p)
            except OSError as e:
                for q in done:                     # the set is all or nothing (replaced files stay lost)
                    q.unlink(missing_ok=True)
                raise ChatAnyoneError(f"cannot write {finals[len(done)]}: {e.strerror or e}") from None
    finally:
        for tmp in tmps:
            tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def interrupt_on_sigterm() -> Iterator[None]:
    """Within the block, SIGTERM raises ``KeyboardInterrupt`` (as SIGINT does), so ``finally``/``except``
    clean-ups run. Only in the main thread and only when SIGTERM has its default action (an application's
    own handler is left alone); the previous handler is restored afterwards."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return

    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
