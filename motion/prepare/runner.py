"""Running :mod:`motion.prepare`: one input -> its files (:func:`prepare_one`), the manifest
``dataset.json`` and the run over many inputs (:func:`run`; local process pool or any
``concurrent.futures``-style executor such as :class:`motion.prepare_ray.RayExecutor`)."""
from __future__ import annotations

import concurrent.futures as cf
import json
import multiprocessing as mp_ctx
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..conventions import ARKIT_INDEX
from ..errors import ChatAnyoneError
from ..fileio import atomic_output
from .common import (FPS, LAG_WARN_FRAMES, MANIFEST, MANIFEST_VERSION, MAX_LAG_FRAMES, MIN_FACE_RATE,
                     PREPARE_VERSION, SAMPLE_RATE, Job, Prepared, PrepareError)
from ..tracking import default_models_dir
from .adapters import prepare_beat2, prepare_facegood, prepare_livelink
from .discovery import _licence, discover
from .qa import _channels_real, contact_sheet, shift_motion, sync_qa
from .video import prepare_video


def _write_clip(out_dir: Path, name: str, p: Prepared) -> dict[str, str]:
    """Write NAME.npz, NAME.wav, NAME.png all-or-nothing; returns the file names."""
    import soundfile as sf

    from ..evaluate import log_energy

    files = {"npz": f"{name}.npz", "wav": f"{name}.wav", "png": f"{name}.png"}
    d = p.clip.to_npz_dict()
    d["face_valid"] = np.asarray(p.face_valid, bool)
    d["joint_valid"] = np.asarray(p.joint_valid, bool)
    energy = log_energy(p.audio, p.clip.num_frames)
    with atomic_output(out_dir / files["npz"]) as t_npz, atomic_output(out_dir / files["wav"]) as t_wav, \
            atomic_output(out_dir / files["png"]) as t_png:
        with open(t_npz, "wb") as f:
            np.savez_compressed(f, **d)
        sf.write(str(t_wav), np.clip(p.audio, -1, 1), SAMPLE_RATE, format="WAV", subtype="PCM_16")
        with open(t_png, "wb") as f:
            contact_sheet(f, name, p, energy)
    return files


def prepare_one(job: Job, out_dir: Path, *, models_dir: Path | None = None, fix_sync: bool = False,
                pose: bool = True, hands: bool = True, min_face_rate: float = MIN_FACE_RATE,
                progress: bool = False, facegood_names: Path | None = None) -> dict[str, Any]:
    """Prepare one input and write its files; returns its manifest entry.

    Raises:
        PrepareError: the input is unusable (nothing is written then).
    """
    t0 = time.perf_counter()
    if job.kind == "video":
        p = prepare_video(job.path, Path(models_dir or default_models_dir()), pose=pose, hands=hands,
                          min_face_rate=min_face_rate, progress=progress)
    elif job.kind == "beat2":
        p = prepare_beat2(job.path)
    elif job.kind == "facegood":
        p = prepare_facegood(job.path, facegood_names)
    elif job.kind == "livelink":
        p = prepare_livelink(job.path)
    else:  # pragma: no cover
        raise PrepareError(f"unknown input kind {job.kind}")
    T = p.clip.num_frames
    if "jaw" in p.curves:
        jaw, jv = p.curves["jaw"], np.ones(T, bool)
    else:
        jaw, jv = p.clip.face[:, ARKIT_INDEX["jawOpen"]], p.face_valid[:, ARKIT_INDEX["jawOpen"]]
    sync = sync_qa(jaw, jv, p.audio) if jv.any() else {"r_lag0": None, "r_best": None, "lag_frames": None}
    warns = []
    applied = 0
    lag = sync["lag_frames"]
    if lag is not None and abs(lag) >= MAX_LAG_FRAMES:
        warns.append(f"A/V lag at the search limit ({lag:+d} frames): the true offset may be larger")
    if lag is not None and abs(lag) > LAG_WARN_FRAMES:
        if fix_sync:
            p = shift_motion(p, lag)
            applied = lag
            warns.append(f"A/V lag {lag:+d} frames corrected (--fix-sync)")
        else:
            warns.append(f"A/V lag {lag:+d} frames (|lag| > {LAG_WARN_FRAMES}); rerun with --fix-sync to shift the motion")
    group = job.path.parent.name
    meta = dict(p.clip.meta)
    meta.update({"dataset": f"prepared/{group}", "source": str(job.path), "licence": _licence(job.path),
                 "audio_source": f"{job.name}.wav", "audio_offset_s": 0.0, "root_locked": True,
                 "prepared_by": "motion.prepare", "prepare_version": PREPARE_VERSION,
                 "sync_shift_frames": applied})
    p.clip.meta = meta
    files = _write_clip(out_dir, job.name, p)
    qa = dict(p.entry.get("qa", {}))
    qa.update(sync)
    qa["sync_shift_applied_frames"] = applied
    entry = {
        "name": job.name, "kind": job.kind, "group": group, "source": str(job.path),
        "audio_source_original": p.entry.get("audio_source_original"), "licence": meta["licence"],
        "duration_s": round(T / FPS, 3), "frames": T, "fps": FPS, "files": files,
        "channels_real": _channels_real(p.face_valid, p.joint_valid),
        "smoothing": p.entry.get("smoothing"), "qa": qa, "warnings": warns,
        "seconds": round(time.perf_counter() - t0, 2),
    }
    return entry


def read_manifest(out_dir: Path) -> dict[str, Any]:
    """``dataset.json`` of a prepared folder (an empty manifest when there is none yet).

    Raises:
        PrepareError: the file exists but is not valid JSON.
    """
    m = Path(out_dir) / MANIFEST
    if not m.is_file():
        return {"format": "chatanyone-prepared", "version": MANIFEST_VERSION, "fps": FPS, "clips": {}, "skipped": {}}
    try:
        return json.loads(m.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise PrepareError(f"{m} is not valid JSON; move it away to start over") from None


def _write_manifest(out_dir: Path, man: dict[str, Any]) -> None:
    with atomic_output(Path(out_dir) / MANIFEST) as tmp:
        tmp.write_text(json.dumps(man, indent=1, sort_keys=False))


def is_complete(out_dir: Path, man: dict[str, Any], job: Job) -> bool:
    """A clip is complete when the manifest lists it for the same source and its three files exist."""
    e = man.get("clips", {}).get(job.name)
    if not e or e.get("source") != str(job.path):
        return False
    return all((Path(out_dir) / f).is_file() for f in e.get("files", {}).values()) and len(e.get("files", {})) == 3


def _worker(job: Job, out_dir: str, opts: dict) -> tuple[str, Any]:
    try:
        return "ok", prepare_one(job, Path(out_dir), **opts)
    except ChatAnyoneError as e:
        return "error", str(e)
    except Exception as e:  # an unexpected failure in one file must not stop the others
        return "error", f"unexpected {e.__class__.__name__}: {str(e)[:200]}"


@dataclass
class Report:
    """Result of :func:`run`: ``prepared``/``existing`` clip names, ``skipped`` (path, reason) and the
    printed ``lines``."""

    prepared: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)


def _summary(e: dict) -> str:
    q = e["qa"]
    lag = q.get("lag_frames")
    s = f"prepared {e['name']}: {e['duration_s']:.1f} s, {e['frames']} frames, tracked {100 * q.get('tracking_rate', 0):.0f}%"
    if lag is not None:
        s += f", lag {lag:+d} fr (r={q['r_best']:.2f})"
    return s


def run(inputs: list[str | os.PathLike], out_dir: str | os.PathLike, *, models_dir=None, workers: int = 1,
        fix_sync: bool = False, force: bool = False, pose: bool = True, hands: bool = True,
        min_face_rate: float = MIN_FACE_RATE, progress: bool = True, facegood_names=None,
        echo=print, executor: cf.Executor | None = None) -> Report:
    """Prepare every input into ``out_dir`` (created if missing); see :mod:`motion.prepare`.

    ``executor``: runs the clips instead of the local process pool (``submit``/``shutdown``/``with``, as
    :class:`concurrent.futures.Executor`); :class:`motion.prepare_ray.RayExecutor` runs each as a Ray task.

    Returns:
        :class:`Report`. Bad inputs are skipped with a line; they never stop the others.
    Raises:
        PrepareError: ``out_dir`` cannot be created or its manifest is unreadable.
    """
    from tqdm import tqdm

    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise PrepareError(f"cannot create {out}: {e.strerror or e}") from None
    man = read_manifest(out)
    man.setdefault("clips", {})
    man.setdefault("skipped", {})
    rep = Report()

    def say(line: str) -> None:
        rep.lines.append(line)
        if echo is not None:
            if progress:
                tqdm.write(line)
            else:
                echo(line)

    jobs, rejected = discover(inputs)
    for path, reason in rejected:
        rep.skipped.append((path, reason))
        say(f"skipped {path}: {reason}")
    todo = []
    for j in jobs:
        if not force and is_complete(out, man, j):
            rep.existing.append(j.name)
            say(f"exists {j.name} (already prepared, skipped)")
        else:
            todo.append(j)
    opts = dict(models_dir=str(models_dir) if models_dir else None, fix_sync=fix_sync, pose=pose, hands=hands,
                min_face_rate=min_face_rate, facegood_names=facegood_names)

    def record(job: Job, status: str, value: Any) -> None:
        if status == "ok":
            man["clips"][job.name] = value
            man["skipped"].pop(str(job.path), None)
            rep.prepared.append(job.name)
            say(_summary(value))
            for w in value["warnings"]:
                rep.warnings.append(f"{job.name}: {w}")
                say(f"warning {job.name}: {w}")
        else:
            man["clips"].pop(job.name, None)
            man["skipped"][str(job.path)] = value
            rep.skipped.append((str(job.path), value))
            say(f"skipped {job.path}: {value}")
        _write_manifest(out, man)

    bar = tqdm(total=len(todo), desc="prepare", unit="clip", disable=not progress, position=0)
    if workers <= 1 and executor is None:
        for j in todo:
            status, value = _worker(j, str(out), dict(opts, progress=progress))
            record(j, status, value)
            bar.update(1)
    else:
        with executor or cf.ProcessPoolExecutor(max_workers=workers, mp_context=mp_ctx.get_context("spawn")) as ex:
            futs = {ex.submit(_worker, j, str(out), dict(opts, progress=False)): j for j in todo}
            for fu in cf.as_completed(futs):
                j = futs[fu]
                try:
                    status, value = fu.result()
                except Exception as e:  # worker crashed
                    status, value = "error", f"worker failed ({e.__class__.__name__})"
                record(j, status, value)
                bar.update(1)
    bar.close()
    if not todo and not rejected:
        _write_manifest(out, man)
    say(f"done: {len(rep.prepared)} prepared, {len(rep.existing)} already there, {len(rep.skipped)} skipped "
        f"-> {out / MANIFEST}")
    return rep
