"""Build the default avatar's head asset (``exporters/assets/head_arkit.npz``) from ICT-FaceKit.

    python -m exporters.build_head ../shared/data/heads/ict_facekit.tar.xz [-o exporters/assets/head_arkit.npz]

Source: ICT-FaceKit ``FaceXModel`` (MIT, (c) 2020 USC Institute for Creative Technologies; ICT-VGL/ICT-FaceKit
@da5f95a6): ``generic_neutral_mesh.obj`` (26,719 vertices, quads, centimetres, +Y up, facing +Z) and its
expression shapes as full meshes in the same vertex order. The run needs the archive; the asset it writes
does not (the exporters read only the ``.npz``).

What the script does (each step is deterministic; rerunning gives the same bytes):

* **Parts kept** (vertex ranges of the FaceKit README): face, back of the head and neck, mouth socket, both eye
  sockets, gums and tongue, teeth, both eyeballs (sclera and iris): vertices ``0 .. 24590``. Dropped: the
  lacrimal-fluid, eye-blend and eye-occlusion cards (transparent overlays that need alpha blending) and the
  eyelash cards. No decimation: all 24,591 kept vertices stay (the asset is ~3 MB; sparse deltas below).
* **Frame and units**: metres (x 0.01), origin at the midpoint of the two eyeball centres (so that the avatar
  can put it on its eye joints), +Y up, facing +Z, the face's left on +X (ICT ``_L`` is the face's own left,
  as ARKit's ``Left``: checked from the displacement centroids).
* **The 52 ARKit morph targets** (:data:`motion.conventions.ARKIT_NAMES`), as displacements from the neutral:
  ``fooLeft``/``fooRight`` = ICT ``foo_L``/``foo_R``; ``browInnerUp`` = ``browInnerUp_L + browInnerUp_R`` and
  ``cheekPuff`` = ``cheekPuff_L + cheekPuff_R`` (the halves are split by a smooth left/right mask that sums
  to the whole shape: across the midline one ramps down as the other ramps up); ``tongueOut``, which the
  FaceKit lacks, is made here: :data:`TONGUE_JAW` x ``jawOpen`` (the jaw drops a little) plus the tongue's vertices moved
  forward by up to :data:`TONGUE_OUT_CM` and up by up to :data:`TONGUE_UP_CM` (over the lower teeth), each vertex by
  ``s ** 1.5`` with ``s`` its position from the tongue's back (0) to its tip (1), so the root stays and the
  tip leaves the mouth. ``cheekRaiser_*`` and ``PupilDilate_*`` (not ARKit) are not used. ``eyeLook*``
  move the lids only (the FaceKit's eyeballs do not move in any shape): the eyeballs are rigid and follow
  the eye joints.
* **Compact deltas**: per target the indices of the vertices that move more than :data:`DELTA_EPS_MM`
  (``uint16``) and their displacements in millimetres (``float16``, ~0.02 mm resolution at 40 mm).
* **Colours** (linear RGB, ``uint8``, glTF ``COLOR_0``): skin, lips (the vermilion found from the
  ``mouthRollUpper``/``mouthRollLower`` displacements: the part of the face those shapes roll in), darker
  brows (the region ``browDown`` moves most, above the eyes), mouth interior, gums, tongue, teeth, sclera,
  iris and pupil (by distance from each eye's optical axis).
* **Landmarks**: ``landmarks_ibug68``, the FaceKit's 68 facial-landmark vertices in the iBUG-300W order
  (36-41 the face's right eye, 42-47 its left, 48-59 outer lips, 60-67 inner lips), for tests and tools.
* **Jaw weights** (``jaw_weight``, 0..1): how far each vertex follows the jaw, read off ``jawOpen``: its
  displacement divided by the lower incisors' (which move rigidly with the jaw), for vertices below the
  mouth corners; used to skin the lower face, lower teeth, gums and tongue to the ``jaw`` joint.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
import tarfile
from pathlib import Path

import numpy as np

from motion.conventions import ARKIT_NAMES
from motion.errors import ChatAnyoneError

#: Default output path (inside the package, shipped as package data).
ASSET = Path(__file__).with_name("assets") / "head_arkit.npz"
KEEP = 24591                     # vertices 0 .. 24590: everything up to and including the right eyeball
#: FaceKit README "Face Model Topology": part name -> [first, last + 1) vertex index.
PARTS = {
    "face": (0, 9409), "head_neck": (9409, 11248), "mouth_socket": (11248, 13294),
    "eye_socket_left": (13294, 13678), "eye_socket_right": (13678, 14062), "gums_tongue": (14062, 17039),
    "teeth": (17039, 21451), "sclera_left": (21451, 22221), "iris_left": (22221, 23021),
    "sclera_right": (23021, 23791), "iris_right": (23791, 24591),
}
LOWER_INCISORS = (20169, 20529)  # lateral + central incisors, lower left and right (FaceKit README)
LOWER_TEETH = (19247, 21451)     # teeth #16 .. #31 (FaceKit README)
DELTA_EPS_MM = 0.05
TONGUE_OUT_CM = 5.0
TONGUE_TIP_Z_CM = 8.0        # the tongue's front edge (behind the lower incisors' gum), FaceKit frame
TONGUE_UP_CM = 2.2
TONGUE_JAW = 0.35            # jawOpen share of tongueOut
IRIS_RADIUS_CM = 0.60
PUPIL_RADIUS_CM = 0.24
#: sRGB colours (0..1) of the regions; converted to linear for glTF's COLOR_0.
SRGB = {
    "skin": (0.86, 0.66, 0.56), "lips": (0.74, 0.42, 0.42), "brow": (0.42, 0.30, 0.24),
    "mouth": (0.45, 0.17, 0.18), "gums": (0.82, 0.46, 0.47), "tongue": (0.78, 0.36, 0.38),
    "teeth": (0.94, 0.91, 0.84), "eye_socket": (0.70, 0.42, 0.40), "sclera": (0.95, 0.94, 0.92),
    "iris": (0.33, 0.21, 0.12), "pupil": (0.02, 0.02, 0.02),
}
LICENSE = "MIT"
CREDIT = ("Head: ICT-FaceKit FaceXModel, (c) 2020 USC Institute for Creative Technologies, MIT License "
          "(https://github.com/ICT-VGL/ICT-FaceKit); parts, tongueOut and colours by ChatAnyone Bridge "
          "(exporters/build_head.py)")


def _srgb_to_linear(c) -> np.ndarray:
    c = np.asarray(c, np.float64)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def _smoothstep(x, a, b):
    t = np.clip((np.asarray(x, np.float64) - a) / (b - a), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def _obj_vertices(text: str) -> np.ndarray:
    lines = [ln[2:] for ln in text.splitlines() if ln.startswith("v ")]
    return np.array(" ".join(lines).split(), dtype=np.float64).reshape(-1, 3)


def _obj_faces(text: str) -> list[list[int]]:
    return [[int(tok.split("/")[0]) - 1 for tok in ln.split()[1:]] for ln in text.splitlines() if ln.startswith("f ")]


def read_facekit(archive: Path) -> tuple:
    """``(neutral [26719, 3] cm, polygons, {shape: displacement [26719, 3] cm}, {file: sha256}, licence text,
    68 landmark vertex indices [68] (iBUG-68 order, ``vertex_indices.json`` "idx_to_landmark_verts"))``."""
    if not archive.is_file():
        raise ChatAnyoneError(f"ICT-FaceKit archive not found: {archive}")
    shapes, neutral, faces, lic, landmarks = {}, None, None, "", None
    digests = {}
    try:
        tar = tarfile.open(archive, "r:xz")
    except (tarfile.TarError, OSError) as e:
        raise ChatAnyoneError(f"{archive} is not a readable .tar.xz archive ({e})") from None
    with tar:
        for m in tar.getmembers():
            if not m.isfile():
                continue
            name = Path(m.name).name
            if not (name.endswith(".obj") or name in ("LICENSE", "vertex_indices.json")):
                continue
            data = tar.extractfile(m).read()
            digests[name] = hashlib.sha256(data).hexdigest()
            text = data.decode("utf-8")
            if name == "LICENSE":
                lic = text
            elif name == "vertex_indices.json":
                landmarks = np.asarray(json.loads(text)["idx_to_landmark_verts"], np.int64)
            elif name == "generic_neutral_mesh.obj":
                neutral, faces = _obj_vertices(text), _obj_faces(text)
            else:
                shapes[name[:-4]] = _obj_vertices(text)
    if neutral is None:
        raise ChatAnyoneError(f"{archive} has no FaceXModel/generic_neutral_mesh.obj: not the ICT-FaceKit archive")
    if landmarks is None or len(landmarks) != 68:
        raise ChatAnyoneError(f"{archive} has no FaceXModel/vertex_indices.json with 68 landmarks")
    return neutral, faces, {k: v - neutral for k, v in shapes.items()}, digests, lic, landmarks


def arkit_targets(neutral: np.ndarray, shapes: dict[str, np.ndarray], tongue: np.ndarray,
                  tongue_weight: np.ndarray) -> np.ndarray:
    """The 52 ARKit displacements ``[52, V, 3]`` (cm) from the FaceKit shapes (see the module docstring);
    ``tongue`` are the tongue's vertex indices, ``tongue_weight`` how much each belongs to it (0..1)."""
    out = []
    for name in ARKIT_NAMES:
        if name in ("browInnerUp", "cheekPuff"):
            d = shapes[name + "_L"] + shapes[name + "_R"]
        elif name == "tongueOut":
            d = TONGUE_JAW * shapes["jawOpen"]
            z = neutral[tongue, 2]
            s = np.clip((z - z.min()) / (TONGUE_TIP_Z_CM - z.min()), 0, 1) ** 1.5 * tongue_weight
            d[tongue, 2] += TONGUE_OUT_CM * s
            d[tongue, 1] += TONGUE_UP_CM * s
        elif name in shapes:                       # jawLeft, mouthRight, ...: one shape in both sets
            d = shapes[name]
        elif name.endswith("Left"):
            d = shapes[name[:-4] + "_L"]
        elif name.endswith("Right"):
            d = shapes[name[:-5] + "_R"]
        else:
            d = shapes[name]
        out.append(d)
    return np.stack(out)


def build(archive: Path) -> dict[str, np.ndarray]:
    neutral, polys, shapes, digests, lic, landmarks = read_facekit(archive)
    missing = [n for n in ("jawOpen", "eyeBlink_L", "browInnerUp_L", "cheekPuff_R") if n not in shapes]
    if missing:
        raise ChatAnyoneError(f"{archive} lacks expression shapes {missing}")
    tris = []
    for p in polys:
        if max(p) >= KEEP:
            continue
        tris += [[p[0], p[k], p[k + 1]] for k in range(1, len(p) - 1)]
    tris = np.asarray(tris, np.int64)
    V = neutral[:KEEP]
    shapes = {k: v[:KEEP] for k, v in shapes.items()}

    region = np.zeros(KEEP, np.uint8)
    names = list(PARTS)
    for i, (a, b) in enumerate(PARTS.values()):
        region[a:b] = i

    # tongue: the part of the gums-and-tongue mesh that moves with the jaw (jawOpen) and lies inside the lower
    # dental arch, behind the lower incisors' gum: |x| < ~2 cm, z < ~8 cm (soft edges, so that nothing tears).
    a, b = PARTS["gums_tongue"]
    part = np.arange(a, b)
    moves = np.linalg.norm(shapes["jawOpen"][part], axis=1) > 0.3
    soft = moves * _smoothstep(-np.abs(V[part, 0]), -2.3, -1.5) * _smoothstep(-V[part, 2], -TONGUE_TIP_Z_CM - 0.6,
                                                                               -TONGUE_TIP_Z_CM + 0.4)
    tongue = part[soft > 0]
    targets = arkit_targets(V, shapes, tongue, soft[soft > 0])

    # eyes
    eyes = np.stack([(V[PARTS["sclera_left"][0]:PARTS["iris_left"][1]].min(0)
                      + V[PARTS["sclera_left"][0]:PARTS["iris_left"][1]].max(0)) / 2,
                     (V[PARTS["sclera_right"][0]:PARTS["iris_right"][1]].min(0)
                      + V[PARTS["sclera_right"][0]:PARTS["iris_right"][1]].max(0)) / 2])
    origin = eyes.mean(0)

    # colours
    col = np.tile(_srgb_to_linear(SRGB["skin"]), (KEEP, 1))

    def paint(mask_or_w, key):
        w = np.asarray(mask_or_w, np.float64)
        w = w[:, None] if w.ndim == 1 else w
        col[:] = col * (1 - w) + _srgb_to_linear(SRGB[key]) * w

    face = region == names.index("face")
    roll = np.linalg.norm(shapes["mouthRollUpper"], axis=1) + np.linalg.norm(shapes["mouthRollLower"], axis=1)
    mouth_c = V[np.argmax(np.where(face, roll, 0))]
    near_mouth = _smoothstep(-np.linalg.norm((V - mouth_c) * [0.55, 1.0, 1.0], axis=1), -3.2, -2.4)
    lips = _smoothstep(roll / roll[face].max(), 0.45, 0.7) * near_mouth * face
    paint(lips, "lips")
    brow = np.linalg.norm(shapes["browDown_L"] + shapes["browDown_R"], axis=1)
    eye_y = eyes[:, 1].mean()
    brows = _smoothstep(brow / brow[face].max(), 0.70, 0.92) * face * _smoothstep(V[:, 1], eye_y + 1.3, eye_y + 1.8)
    paint(brows * 0.4, "brow")
    for key, part in (("mouth", "mouth_socket"), ("gums", "gums_tongue"), ("teeth", "teeth"),
                      ("eye_socket", "eye_socket_left"), ("eye_socket", "eye_socket_right"),
                      ("sclera", "sclera_left"), ("sclera", "sclera_right")):
        paint(region == names.index(part), key)
    paint(np.isin(np.arange(KEEP), tongue), "tongue")
    # The sclera mesh is the eye's outer surface (its front is the cornea, in front of the iris mesh):
    # paint iris and pupil on it by the distance from the eye's optical axis (+Z), front half only.
    for side, parts in ((0, ("sclera_left", "iris_left")), (1, ("sclera_right", "iris_right"))):
        m = np.isin(region, [names.index(p) for p in parts]) & (V[:, 2] > eyes[side, 2])
        r = np.linalg.norm((V[:, :2] - eyes[side, :2]), axis=1)
        paint(m * _smoothstep(-r, -IRIS_RADIUS_CM - 0.04, -IRIS_RADIUS_CM + 0.04), "iris")
        paint(m * _smoothstep(-r, -PUPIL_RADIUS_CM - 0.03, -PUPIL_RADIUS_CM + 0.03), "pupil")

    # jaw weights from jawOpen
    jaw = np.linalg.norm(shapes["jawOpen"], axis=1)
    ref = np.median(jaw[LOWER_INCISORS[0]:LOWER_INCISORS[1]])
    corner_y = V[np.argmax(np.where(face, np.linalg.norm(shapes["mouthSmile_L"], axis=1), 0)), 1]
    jaw_w = np.clip(jaw / ref, 0, 1) * _smoothstep(-V[:, 1], -corner_y - 0.3, -corner_y + 0.5)
    jaw_w[(region == names.index("sclera_left")) | (region == names.index("sclera_right"))
          | (region == names.index("iris_left")) | (region == names.index("iris_right"))] = 0

    # compact deltas (mm)
    idx, val, offsets = [], [], [0]
    for d in targets:
        mm = d * 10.0
        nz = np.flatnonzero(np.linalg.norm(mm, axis=1) > DELTA_EPS_MM)
        idx.append(nz.astype(np.uint16))
        val.append(mm[nz].astype(np.float16))
        offsets.append(offsets[-1] + len(nz))
    meta = {
        "source": "ICT-FaceKit FaceXModel (ICT-VGL/ICT-FaceKit @da5f95a6), archive ict_facekit.tar.xz",
        "license": LICENSE, "credit": CREDIT, "license_text": lic,
        "built_by": "python -m exporters.build_head", "units": "metres; deltas in millimetres",
        "frame": "origin at the midpoint of the eyeball centres, +Y up, facing +Z, the face's left on +X",
        "parts_kept": names, "dropped": ["lacrimal fluid", "eye blend", "eye occlusion", "eyelashes"],
        "decimation": "none (all 24,591 vertices of the kept parts)",
        "tongueOut": f"{TONGUE_JAW} x jawOpen + tongue vertices forward up to {TONGUE_OUT_CM} cm and up to "
                     f"{TONGUE_UP_CM} cm (up), weighted s**1.5 from the tongue's back to its tip",
        "merged": {"browInnerUp": ["browInnerUp_L", "browInnerUp_R"], "cheekPuff": ["cheekPuff_L", "cheekPuff_R"]},
        "source_sha256": {k: digests[k] for k in sorted(digests)},
    }
    return {
        "vertices": ((V - origin) * 0.01).astype(np.float32),
        "triangles": tris.astype(np.uint16),
        "colors": np.round(np.clip(col, 0, 1) * 255).astype(np.uint8),
        "region": region, "region_names": np.array(names),
        "jaw_weight": np.round(jaw_w * 255).astype(np.uint8),
        "eye_centers": ((eyes - origin) * 0.01).astype(np.float32),
        "landmarks_ibug68": landmarks.astype(np.uint16),
        "target_names": np.array(ARKIT_NAMES),
        "target_offsets": np.asarray(offsets, np.int64),
        "target_indices": np.concatenate(idx),
        "target_deltas_mm": np.concatenate(val),
        "meta": np.array(json.dumps(meta, sort_keys=True)),
    }


def save(arrays: dict[str, np.ndarray], path: Path) -> Path:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue())
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m exporters.build_head", description=__doc__.splitlines()[0])
    ap.add_argument("archive", type=Path, help="ict_facekit.tar.xz (../shared/data/heads/)")
    ap.add_argument("-o", "--output", type=Path, default=ASSET)
    args = ap.parse_args(argv)
    try:
        arrays = build(args.archive)
    except ChatAnyoneError as e:
        print(f"chatanyone: error: {e}", file=sys.stderr)
        return 2
    path = save(arrays, args.output)
    n = int(arrays["target_offsets"][-1])
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB): {len(arrays['vertices'])} vertices, "
          f"{len(arrays['triangles'])} triangles, 52 targets, {n} moving vertex entries")
    return 0


if __name__ == "__main__":
    sys.exit(main())
