"""Inputs -> :class:`~motion.prepare.common.Job` s: which files are inputs, of which kind, under which clip name,
and under which licence (by source folder)."""
from __future__ import annotations

import os
import re
from pathlib import Path

from ..tracking import VIDEO_EXTS
from .common import LICENCES, Job


def _sanitize(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", s).strip("_") or "clip"


def _job_for(path: Path) -> Job | None:
    n = path.name
    low = n.lower()
    if low.endswith(VIDEO_EXTS):
        kind, stem = "video", path.stem
    elif low.endswith(".smplxflame30.npz"):
        kind, stem = "beat2", n[: -len(".smplxflame30.npz")]
    elif low.endswith(".bs116.npy"):
        kind, stem = "facegood", n[: -len(".bs116.npy")]
    elif low.endswith(".csv"):
        kind, stem = "livelink", path.stem
    else:
        return None
    return Job(kind, path, _sanitize(f"{path.parent.name}__{stem}"))


def discover(inputs: list[str | os.PathLike]) -> tuple[list[Job], list[tuple[str, str]]]:
    """Expand files and folders into jobs.

    Returns:
        ``(jobs, rejected)``: jobs sorted by name (duplicate names get a ``_2`` suffix), and
        ``(path, reason)`` for explicitly named inputs that are missing or of an unsupported type. Files
        found inside folders that are not inputs (wavs, xlsx, ...) are ignored silently.
    """
    jobs: list[Job] = []
    rejected: list[tuple[str, str]] = []
    for inp in inputs:
        p = Path(inp)
        if p.is_dir():
            for f in sorted(p.rglob("*")):
                if f.is_file() and not f.name.startswith("."):
                    j = _job_for(f)
                    if j is not None:
                        jobs.append(j)
        elif p.is_file():
            j = _job_for(p)
            if j is None:
                rejected.append((str(p), "unsupported file type (expected a video, Live Link CSV, "
                                          "BEAT2 .smplxflame30.npz or FACEGOOD .bs116.npy)"))
            else:
                jobs.append(j)
        else:
            rejected.append((str(p), "no such file or folder"))
    seen: dict[str, int] = {}
    uniq = []
    for j in sorted(jobs, key=lambda j: (j.name, str(j.path))):
        if any(str(u.path.resolve()) == str(j.path.resolve()) for u in uniq):
            continue
        k = seen.get(j.name, 0) + 1
        seen[j.name] = k
        if k > 1:
            j = Job(j.kind, j.path, f"{j.name}_{k}")
        uniq.append(j)
    return uniq, rejected


def _licence(path: Path) -> str:
    for part in reversed(path.resolve().parts[:-1]):
        if part in LICENCES:
            return LICENCES[part]
    prov = path.parent / "PROVENANCE.txt"
    return f"unknown: see {prov}" if prov.is_file() else "unknown (no PROVENANCE.txt beside the input)"
