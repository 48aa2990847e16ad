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

Options that some formats take (:data:`FORMAT_OPTIONS`): ``bone_names`` (``"smplx"`` or ``"mixamo"``) for
GLB and BVH.
"""
from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Iterable
from pathlib import Path

from motion.errors import ChatAnyoneError
from motion.fileio import atomic_outputs, interrupt_on_sigterm

__all__ = ["FORMATS", "FORMAT_OPTIONS", "BONE_NAME_OPTIONS", "export", "check_formats", "check_bone_names"]

#: Bone naming schemes of the skeleton formats: SMPL-X joint names, or Mixamo's (``mixamorig:Hips``, ...;
#: :data:`motion.conventions.SMPLX_TO_MIXAMO`).
BONE_NAME_OPTIONS = ("smplx", "mixamo")


def _npz(clip, path):
    return clip.save(path)


def _module_writer(module: str) -> Callable:
    def write(clip, path, **options):
        return importlib.import_module(f"exporters.{module}").write(clip, path, **options)
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
#: Format name -> the keyword options its writer takes (passed by :func:`export`).
FORMAT_OPTIONS: dict[str, tuple[str, ...]] = {"glb": ("bone_names",), "bvh": ("bone_names",)}


def check_bone_names(bone_names: str) -> str:
    """Validate a bone naming scheme (:data:`BONE_NAME_OPTIONS`); returns it.

    Raises:
        ChatAnyoneError: an unknown scheme.
    """
    if bone_names not in BONE_NAME_OPTIONS:
        raise ChatAnyoneError(f"unknown bone names {bone_names!r}; choose from {', '.join(BONE_NAME_OPTIONS)}")
    return bone_names


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


def export(clip, out_dir: str | os.PathLike, stem: str, formats: Iterable[str], *,
           bone_names: str = "smplx") -> list[Path]:
    """Write ``clip`` to ``out_dir/stem<suffix>`` in each format (see :data:`FORMATS`), all or nothing.

    Every format is first written to a hidden temporary file in ``out_dir``; only when all of them are
    complete are they renamed into place together (:func:`motion.fileio.atomic_outputs`), with SIGINT and
    SIGTERM held off during the renames. SIGTERM is turned into ``KeyboardInterrupt`` while writing
    (:func:`motion.fileio.interrupt_on_sigterm`), so a terminated run removes its temporaries too. A hard
    kill (SIGKILL) can leave hidden ``.<stem>.*.tmp<suffix>`` files, never a partial set of final files.

    Args:
        clip: a :class:`motion.clip.MotionClip` (written at its own fps; resample it first for another).
        out_dir: an existing, writable folder.
        stem: file name without suffix (e.g. the audio file's stem).
        formats: format names (``"all"`` allowed); checked before anything is written.
        bone_names: joint names of the GLB and BVH skeletons, ``"smplx"`` or ``"mixamo"``.
    Returns:
        The written paths, in the order of ``formats``.
    Raises:
        ChatAnyoneError: an unknown format or bone naming, a missing/unwritable folder, a destination that is
            a folder, an I/O error such as a full disk (the message names the file and the reason), or a
            writer's user error (e.g. an empty clip). Nothing is written then, and files that existed before
            the call are unchanged. Any other exception of a writer is re-raised, equally with nothing written.
    """
    names = check_formats(formats)
    options = {"bone_names": check_bone_names(bone_names)}
    out_dir = Path(out_dir)
    finals = [out_dir / f"{stem}{FORMATS[name][1]}" for name in names]
    with interrupt_on_sigterm(), atomic_outputs(finals) as tmps:
        for name, tmp, final in zip(names, tmps, finals):
            write = FORMATS[name][0]
            try:
                write(clip, tmp, **{k: options[k] for k in FORMAT_OPTIONS.get(name, ())})
            except ChatAnyoneError as e:           # name the file the user asked for, not our temporary
                raise ChatAnyoneError(str(e).replace(str(tmp), str(final))) from None
    return finals
