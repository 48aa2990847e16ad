"""File exporters: one module per format, each with ``write(clip, path, ...)``; a registry over them.

:data:`FORMATS` maps a format name to ``(write(clip, path) -> Path, file suffix)``:

========  ==========  ==================================================================
name      suffix      writer
========  ==========  ==================================================================
``npz``   ``.npz``    :meth:`motion.clip.MotionClip.save` (the project's public clip format)
``glb``   ``.glb``    :func:`exporters.glb.write` (skinned mannequin, ARKit morphs, animation)
``vrma``  ``.vrma``   :func:`exporters.vrma.write` (VRM Animation 1.0)
``bvh``   ``.bvh``    :func:`exporters.bvh.write` (SMPL-X skeleton, no face)
``csv``   ``.csv``    :func:`exporters.livelink_csv.write` (Live Link Face CSV, face + head + eyes)
========  ==========  ==================================================================

Writer modules are imported when a format is written, so ``import exporters`` stays light.
"""
from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Iterable
from pathlib import Path

from motion.errors import ChatAnyoneError

__all__ = ["FORMATS", "export", "check_formats"]


def _npz(clip, path):
    return clip.save(path)


def _module_writer(module: str) -> Callable:
    def write(clip, path):
        return importlib.import_module(f"exporters.{module}").write(clip, path)
    write.__name__ = f"{module}.write"
    write.__qualname__ = write.__name__
    return write


#: Format name -> ``(write(clip, path) -> Path, file suffix)``.
FORMATS: dict[str, tuple[Callable, str]] = {
    "npz": (_npz, ".npz"),
    "glb": (_module_writer("glb"), ".glb"),
    "vrma": (_module_writer("vrma"), ".vrma"),
    "bvh": (_module_writer("bvh"), ".bvh"),
    "csv": (_module_writer("livelink_csv"), ".csv"),
}


def check_formats(formats: Iterable[str]) -> list[str]:
    """Validate format names (``"all"`` expands to every format); returns them in order, without repeats.

    Raises:
        ChatAnyoneError: no format, or a name not in :data:`FORMATS`.
    """
    out: list[str] = []
    for f in formats:
        for name in (FORMATS if f == "all" else [f]):
            if name not in FORMATS:
                raise ChatAnyoneError(f"unknown export format {name!r}; choose from {', '.join(FORMATS)} or all")
            if name not in out:
                out.append(name)
    if not out:
        raise ChatAnyoneError(f"no export format given; choose from {', '.join(FORMATS)} or all")
    return out


def export(clip, out_dir: str | os.PathLike, stem: str, formats: Iterable[str]) -> list[Path]:
    """Write ``clip`` to ``out_dir/stem<suffix>`` in each format (see :data:`FORMATS`), all or nothing.

    Args:
        clip: a :class:`motion.clip.MotionClip`.
        out_dir: an existing, writable folder.
        stem: file name without suffix (e.g. the audio file's stem).
        formats: format names (``"all"`` allowed); checked before anything is written.
    Returns:
        The written paths, in the order of ``formats``.
    Raises:
        ChatAnyoneError: an unknown format, or a writer's user error (missing/unwritable folder, empty clip).
        Any exception of a writer is re-raised after the files already written by this call are deleted
        (each writer is atomic, so the failing one leaves nothing either). Files that existed before the
        call and were replaced by it are gone as well.
    """
    names = check_formats(formats)
    out_dir = Path(out_dir)
    written: list[Path] = []
    try:
        for name in names:
            write, suffix = FORMATS[name]
            written.append(Path(write(clip, out_dir / f"{stem}{suffix}")))
    except BaseException:
        for p in written:
            p.unlink(missing_ok=True)
        raise
    return written
