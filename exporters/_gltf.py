"""glTF 2.0 helpers shared by the GLB and VRM Animation (.vrma) writers.

Sections cited as "spec 3.x" are those of the glTF 2.0 specification (Khronos).
"""
from __future__ import annotations

import contextlib
import shutil
import struct
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pygltflib as g

from motion.fileio import atomic_output

_TYPES = {1: g.SCALAR, 2: g.VEC2, 3: g.VEC3, 4: g.VEC4, 16: g.MAT4}
_CTYPES = {np.dtype(np.float32): g.FLOAT, np.dtype(np.uint8): g.UNSIGNED_BYTE,
           np.dtype(np.uint16): g.UNSIGNED_SHORT, np.dtype(np.uint32): g.UNSIGNED_INT}
SPARSE_EPS = 1e-6                         # smaller sparse values are stored as zero


class Builder:
    """Appends arrays to one binary buffer and creates their bufferViews and accessors (spec 3.6).

    The buffer is held in memory (``blob``), or, with ``spool`` (a binary file, e.g. from
    :func:`spooled_glb`), written to that file as it is made, so that a long animation is never held whole.
    Every bufferView starts at a multiple of 4 bytes; ``size`` is the buffer's length so far.
    """

    def __init__(self, gltf: g.GLTF2, spool: BinaryIO | None = None):
        self.gltf = gltf
        self.spool = spool
        self.blob = bytearray()
        self.size = 0

    def _append(self, data) -> None:
        if self.spool is None:
            self.blob += data
        else:
            self.spool.write(data)
        self.size += len(data)

    def _view(self, data: memoryview, target: int | None) -> int:
        self._append(b"\0" * (-self.size % 4))
        self.gltf.bufferViews.append(g.BufferView(buffer=0, byteOffset=self.size,
                                                  byteLength=len(data), target=target))
        self._append(data)
        return len(self.gltf.bufferViews) - 1

    def accessor(self, arr: np.ndarray, *, target: int | None = None, minmax: bool = False,
                 ncomp: int | None = None) -> int:
        """An accessor over ``arr`` (``[count]`` or ``[count, ...]``; float32/uint8/uint16/uint32)."""
        arr = np.ascontiguousarray(arr)
        ncomp = ncomp or (1 if arr.ndim == 1 else int(np.prod(arr.shape[1:])))
        flat = arr.reshape(len(arr), ncomp)
        view = memoryview(arr.reshape(-1)).cast("B")                  # the array's bytes, not a copy
        acc = g.Accessor(bufferView=self._view(view, target), componentType=_CTYPES[arr.dtype],
                         count=len(arr), type=_TYPES[ncomp])
        if minmax:
            acc.min, acc.max = flat.min(0).tolist(), flat.max(0).tolist()
        self.gltf.accessors.append(acc)
        return len(self.gltf.accessors) - 1

    def sparse_vec3(self, values: np.ndarray) -> int:
        """A VEC3 float accessor of zeros except where ``values [N, 3]`` is non-zero (spec 3.6.2.3)."""
        values = values.astype(np.float32)
        nz = np.flatnonzero(np.abs(values).max(1) > SPARSE_EPS)
        dense = np.zeros_like(values)
        dense[nz] = values[nz]
        idx_dtype = np.uint16 if len(values) < 65536 else np.uint32
        acc = g.Accessor(byteOffset=None, componentType=g.FLOAT, count=len(values), type=g.VEC3,
                         min=dense.min(0).tolist(), max=dense.max(0).tolist())
        if len(nz):
            iv = self._view(memoryview(nz.astype(idx_dtype).tobytes()), None)
            vv = self._view(memoryview(dense[nz].tobytes()), None)
            acc.sparse = g.Sparse(count=len(nz),
                                  indices=g.AccessorSparseIndices(bufferView=iv, componentType=_CTYPES[np.dtype(idx_dtype)]),
                                  values=g.AccessorSparseValues(bufferView=vv))
        self.gltf.accessors.append(acc)
        return len(self.gltf.accessors) - 1

    def finish(self) -> None:
        """Declare the single binary buffer and, in memory, attach the blob (call once, after the last
        accessor). A spooled buffer is declared with its length padded to 4 bytes, as the GLB's BIN chunk
        stores it (the same value pygltflib writes for an in-memory blob)."""
        if self.spool is None:
            self.gltf.buffers = [g.Buffer(byteLength=len(self.blob))]
            self.gltf.set_binary_blob(bytes(self.blob))
        else:
            self.gltf.buffers = [g.Buffer(byteLength=self.size + (-self.size % 4))]


def save_glb(gltf: g.GLTF2, path) -> Path:
    """Write ``gltf`` as a binary glTF (``.glb``) atomically (:func:`motion.fileio.atomic_output`)."""
    path = Path(path)
    data = b"".join(gltf.save_to_bytes())
    with atomic_output(path) as tmp:
        tmp.write_bytes(data)
    return path


@contextlib.contextmanager
def spooled_glb(gltf: g.GLTF2, path) -> Iterator[Builder]:
    """Write a binary glTF (``.glb``) atomically without holding its binary buffer in memory.

    Usage::

        with spooled_glb(g.GLTF2(asset=...), "out/clip.glb") as b:     # b: a Builder over that glTF
            b.gltf.nodes.append(...); b.accessor(...)
            b.finish()

    The block fills ``gltf`` (``b.gltf``) and ``b``'s buffer, which goes to an unlinked temporary file in the
    destination folder as it is made; at the end the GLB (12-byte header, JSON chunk padded with spaces,
    BIN chunk padded with zeros; glTF 2.0 spec 4.4 "GLB File Format Specification") is assembled from the
    JSON and that file, copied 1 MiB at a time, into the temporary of :func:`motion.fileio.atomic_output`.
    The bytes are those of :func:`save_glb` for the same glTF (pygltflib's layout, tested); memory beyond
    the glTF's JSON is what the block itself holds. A failure (or Ctrl-C) leaves nothing at ``path``.

    Raises:
        ChatAnyoneError: as :func:`motion.fileio.atomic_output` (missing/unwritable folder, a full disk).
    """
    path = Path(path)
    with atomic_output(path) as tmp, tempfile.TemporaryFile(dir=tmp.parent) as spool:
        b = Builder(gltf, spool)
        yield b
        _assemble_glb(b, spool, tmp)


def _assemble_glb(b: Builder, spool: BinaryIO, out: Path) -> None:
    gltf = b.gltf
    align = gltf.required_alignment()
    if align != 4:
        raise ValueError(f"spooled GLB supports 4-byte alignment only, not {align}")
    if len(gltf.buffers) != 1 or gltf.buffers[0].byteLength != b.size + (-b.size % 4):
        raise ValueError("call Builder.finish() before the end of spooled_glb")
    bin_len = gltf.buffers[0].byteLength
    js = gltf.gltf_to_json(separators=(",", ":"), indent=None).encode("utf-8")
    js += b" " * (-(12 + len(js)) % align)
    total = 12 + 8 + len(js) + 8 + bin_len
    with open(out, "wb") as f:
        f.write(g.MAGIC + struct.pack("<II", g.GLTF_VERSION, total))
        f.write(struct.pack("<I", len(js)) + g.JSON.encode("utf-8") + js)
        f.write(struct.pack("<I", bin_len) + g.BIN.encode("utf-8"))
        spool.flush()
        spool.seek(0)
        shutil.copyfileobj(spool, f, 1 << 20)
        f.write(b"\0" * (bin_len - b.size))


class AnimationBuilder:
    """One glTF animation (spec 3.11) sampled at a clip's frames: LINEAR samplers sharing one time accessor.

    ``channel(node, path, values)`` adds a sampler for ``values`` (``[T, 4]`` rotations, ``[T, 3]``
    translations, or ``[T * n]`` morph weights) and its channel; ``animation`` is the ``pygltflib.Animation``.
    """

    def __init__(self, builder: Builder, num_frames: int, fps: float, name: str = "motion"):
        self.builder = builder
        times = (np.arange(num_frames, dtype=np.float64) / fps).astype(np.float32)
        self.time_accessor = builder.accessor(times, minmax=True)
        self.animation = g.Animation(name=name)

    def channel(self, node: int, path: str, values: np.ndarray) -> None:
        anim = self.animation
        output = self.builder.accessor(np.ascontiguousarray(values, dtype=np.float32))
        anim.samplers.append(g.AnimationSampler(input=self.time_accessor, output=output, interpolation="LINEAR"))
        anim.channels.append(g.AnimationChannel(sampler=len(anim.samplers) - 1,
                                                target=g.AnimationChannelTarget(node=node, path=path)))


def continuous_quats(q: np.ndarray) -> np.ndarray:
    """Flip signs along time (axis 0 of ``[T, ..., 4]``) so consecutive keys are in the same hemisphere,
    as LINEAR quaternion interpolation expects (spec 3.11.2, "Interpolation"); returns unit float32."""
    q = np.array(q, dtype=np.float64)
    if len(q) > 1:
        step = np.where((q[1:] * q[:-1]).sum(-1) < 0, -1.0, 1.0)   # flip of t relative to t-1
        q[1:] *= np.cumprod(step, axis=0)[..., None]
    q /= np.linalg.norm(q, axis=-1, keepdims=True)
    return q.astype(np.float32)
