"""GLB (binary glTF 2.0) export: a skinned SMPL-X mannequin with an ARKit-52 face, animated by a clip.

What the file holds (glTF 2.0 specification, Khronos, sections cited as "spec 3.x"):

* **Skeleton** (spec 3.7.3 "Skins"): 55 joint nodes named after :data:`motion.conventions.SMPLX_JOINT_NAMES`
  (or Mixamo names, ``bone_names="mixamo"``) with SMPL-X's parents. Rest local rotations are identity and
  rest translations are parent-relative offsets, so a node's animated local rotation is exactly the
  clip's quaternion (relative to the T-pose rest). ``inverseBindMatrices`` undo the rest translations.
* **Body**: the ``mannequin-x`` "wooden" mannequin (Apache-2.0, ``mannequin/assets/wooden.npz``, 24,256
  vertices) skinned with its own weights, reduced to the 4 largest per vertex and renormalised
  (``JOINTS_0``/``WEIGHTS_0``, spec 3.7.3.3). The skeleton is
  :func:`motion.conventions.rest_joint_positions` (the mannequin's own joints plus jaw and eyes, standing
  on ``y = 0``), the same one the BVH exporter uses. The mannequin's ``L_Hand``/``R_Hand`` weights go to
  the wrists; its vertices are lifted by :func:`motion.conventions.floor_lift`.
* **Face**: a procedural ellipsoid head (an icosphere, 2,562 vertices) slightly larger than the
  mannequin's head, skinned rigidly to the ``head`` joint, with vertex colours for eyes, brows and lips and
  the 52 ARKit morph targets (spec 3.7.2.2 "Morph Targets"; ``POSITION`` displacements in metres, stored
  as sparse accessors, spec 3.6.2.3). Target names are in ``mesh.extras.targetNames`` (the convention
  of three.js, Blender and Babylon.js) in :data:`motion.conventions.ARKIT_NAMES` order. The face's left is
  +X (the avatar faces +Z).
* **Animation** (spec 3.11): one animation; per joint a LINEAR ``rotation`` channel (xyzw, sign-made
  continuous between frames), a ``translation`` channel on the root (rest position + ``clip.translation``)
  and a ``weights`` channel on the face node (the 52 face weights per frame). Key times are
  ``frame / clip.fps`` seconds.
* **Materials** (spec 3.9): metallic-roughness with ``metallicFactor = 0`` so that the model is lit
  without an environment map (three.js, Blender); wood for the body, skin for the face.
* Units and axes are glTF's (spec 3.4): metres, right-handed, +Y up, the avatar facing +Z.

The avatar without animation (skeleton, skin, meshes, materials) is :func:`add_avatar`, shared with the
VRM 1.0 avatar of :mod:`exporters.vrm_avatar`.
"""
from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pygltflib as g
import trimesh

from motion.clip import MotionClip
from motion.conventions import (
    ARKIT_NAMES, JOINT_INDEX, NUM_ARKIT, NUM_JOINTS, SMPLX_JOINT_NAMES, SMPLX_PARENTS,
    SMPLX_TO_MIXAMO, floor_lift, rest_joint_positions,
)
from motion.errors import ChatAnyoneError


from ._gltf import AnimationBuilder, save_glb, Builder, continuous_quats

BONE_NAME_OPTIONS = ("smplx", "mixamo")

# --------------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------------
#: wooden.npz joint index (54) -> SMPL-X joint index (55); L_Hand/R_Hand (22, 23) fold into the wrists.
_WOODEN_TO_SMPLX = np.array(list(range(22)) + [20, 21] + list(range(25, 55)))
_BODY_COLOR = (0.78, 0.60, 0.40, 1.0)     # light wood
_FACE_COLOR = (1.0, 1.0, 1.0, 1.0)        # multiplied by the face's vertex colours
_SKIN_RGB = (0.96, 0.80, 0.69)
_EYE_RGB = (0.08, 0.08, 0.10)
_BROW_RGB = (0.30, 0.20, 0.12)
_LIP_RGB = (0.75, 0.30, 0.30)
_FACE_SUBDIVISIONS = 4                    # icosphere: 2,562 vertices
_FACE_SCALE = 1.12                        # face ellipsoid radii / mannequin head half-extents

# Landmarks on the unit sphere of the face ellipsoid, for the face's LEFT side (+X); the right side is
# the mirror image (x -> -x). The avatar looks along +Z.
_LM = {
    "eye": (0.36, 0.20, 0.91),
    "brow": (0.36, 0.42, 0.83),
    "brow_inner": (0.14, 0.40, 0.90),
    "brow_outer": (0.58, 0.38, 0.72),
    "nose": (0.0, -0.02, 1.0),
    "nostril": (0.13, -0.14, 0.98),
    "mouth": (0.0, -0.42, 0.91),
    "corner": (0.26, -0.42, 0.87),
    "upper_lip": (0.0, -0.35, 0.94),
    "lower_lip": (0.0, -0.50, 0.87),
    "chin": (0.0, -0.74, 0.67),
    "cheek": (0.55, -0.16, 0.82),
}


# --------------------------------------------------------------------------------------------------
# Assets (built once per process)
# --------------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _body() -> dict[str, np.ndarray]:
    """The wooden mannequin, remapped to the 55 SMPL-X joints and lifted onto the floor."""
    with resources.files("mannequin").joinpath("assets/wooden.npz").open("rb") as f:
        z = np.load(f)
        v = z["vertices"].astype(np.float64)
        faces = z["faces"].astype(np.int64)
        ji, jw = z["skin_joint_indices"].astype(np.int64), z["skin_weights"].astype(np.float64)
        parts = {str(n): (int(s), int(c)) for n, s, c in
                 zip(z["skin_part_names"], z["skin_part_vertex_starts"], z["skin_part_vertex_counts"])}
    joints = rest_joint_positions().astype(np.float64)   # already lifted onto the floor
    v = v + np.array([0.0, floor_lift(), 0.0])

    # Skin weights: merge into 55 joints, keep the 4 largest, renormalise (spec 3.7.3.3).
    V = len(v)
    dense = np.zeros((V, NUM_JOINTS))
    np.add.at(dense, (np.repeat(np.arange(V), ji.shape[1]), _WOODEN_TO_SMPLX[np.maximum(ji, 0)].ravel()),
              np.where(ji >= 0, jw, 0.0).ravel())
    top = np.argsort(-dense, axis=1, kind="stable")[:, :4]
    w = np.take_along_axis(dense, top, axis=1)
    w /= w.sum(axis=1, keepdims=True)
    top = np.where(w > 0, top, 0)
    w32 = w.astype(np.float32)
    w32[:, 0] += 1.0 - w32.sum(axis=1)              # exact float32 normalisation
    normals = trimesh.Trimesh(v, faces, process=False).vertex_normals
    hs, hc = parts["head"]
    return {"vertices": v.astype(np.float32), "normals": normals.astype(np.float32),
            "faces": faces.astype(np.uint16 if V < 65535 else np.uint32),
            "joints": joints, "skin_joints": top.astype(np.uint8), "skin_weights": w32,
            "head_vertices": v[hs:hs + hc]}


def _gauss(d: np.ndarray, a, sigma: float) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    a = a / np.linalg.norm(a)
    w = np.exp(-((d - a) ** 2).sum(-1) / (2 * sigma ** 2))
    return np.where(w > 0.01, w, 0.0)               # localized: exactly zero beyond ~3 sigma


def _mirror(p) -> tuple[float, float, float]:
    return (-p[0], p[1], p[2])


def _face_targets(d: np.ndarray, p: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """ARKit-52 displacements ``[52, N, 3]`` (metres) of face vertices with unit directions ``d [N, 3]``,
    ellipsoid-centred positions ``p [N, 3]`` and ellipsoid radii ``[3]`` (metres).
    Left = +X, up = +Y, forward = +Z."""
    N = len(d)
    x, y = d[:, 0], d[:, 1]
    lm_y = {k: v[1] / np.linalg.norm(v) for k, v in _LM.items()}
    # Rest heights (metres, ellipsoid-centred) of the eye and mouth centres, for "close"/"press" moves.
    eye_y, mouth_y = lm_y["eye"] * radii[1], lm_y["mouth"] * radii[1]
    front = np.clip((d[:, 2] + 0.2) / 0.6, 0, 1)
    jaw = 1 / (1 + np.exp(-((lm_y["mouth"] - 0.03) - y) / 0.05)) * front
    jaw = np.where(jaw > 0.01, jaw, 0.0)
    mouth = _gauss(d, _LM["mouth"], 0.16)
    lips_up, lips_lo = _gauss(d, _LM["upper_lip"], 0.09), _gauss(d, _LM["lower_lip"], 0.09)
    lips = np.maximum(lips_up, lips_lo)
    left_half = 1 / (1 + np.exp(-x / 0.04))
    normal = p / np.linalg.norm(p, axis=1, keepdims=True)

    def vec(w, dx=0.0, dy=0.0, dz=0.0):
        return w[:, None] * np.array([dx, dy, dz])

    t: dict[str, np.ndarray] = {}
    for side, sx in (("Left", 1.0), ("Right", -1.0)):
        lm = {k: (v if sx > 0 else _mirror(v)) for k, v in _LM.items()}
        eye = _gauss(d, lm["eye"], 0.12)
        half = left_half if sx > 0 else 1 - left_half
        lower_lid = eye * (p[:, 1] < eye_y)
        t[f"eyeBlink{side}"] = vec(eye, dz=-0.002) + np.stack(
            [0 * x, -(p[:, 1] - eye_y) * 0.9 * eye - 0.003 * eye, 0 * x], -1)
        t[f"eyeLookDown{side}"] = vec(eye, dy=-0.006)
        t[f"eyeLookIn{side}"] = vec(eye, dx=-sx * 0.006)      # toward the nose
        t[f"eyeLookOut{side}"] = vec(eye, dx=sx * 0.006)
        t[f"eyeLookUp{side}"] = vec(eye, dy=0.006)
        t[f"eyeSquint{side}"] = np.stack([0 * x, -(p[:, 1] - eye_y) * 0.5 * lower_lid, 0 * x], -1) \
            + vec(_gauss(d, lm["cheek"], 0.12), dy=0.002)
        t[f"eyeWide{side}"] = np.stack([0 * x, (p[:, 1] - eye_y) * 0.4 * eye, 0 * x], -1) + vec(eye, dz=0.001)
        corner = _gauss(d, lm["corner"], 0.09)
        t[f"mouthSmile{side}"] = vec(corner, dx=sx * 0.006, dy=0.008, dz=-0.002)
        t[f"mouthFrown{side}"] = vec(corner, dx=sx * 0.001, dy=-0.008)
        t[f"mouthDimple{side}"] = vec(corner, dx=sx * 0.004, dz=-0.006)
        t[f"mouthStretch{side}"] = vec(corner, dx=sx * 0.010, dy=-0.003, dz=-0.002)
        t[f"mouthPress{side}"] = np.stack([0 * x, -(p[:, 1] - mouth_y) * 0.5 * lips * half, 0 * x], -1) \
            + vec(lips * half, dz=-0.001)
        t[f"mouthLowerDown{side}"] = vec(lips_lo * half, dy=-0.008)
        t[f"mouthUpperUp{side}"] = vec(lips_up * half, dy=0.008)
        t[f"browDown{side}"] = vec(_gauss(d, lm["brow"], 0.13), dx=-sx * 0.002, dy=-0.008)
        t[f"browOuterUp{side}"] = vec(_gauss(d, lm["brow_outer"], 0.11), dy=0.010)
        t[f"cheekSquint{side}"] = vec(_gauss(d, lm["cheek"], 0.13), dy=0.007, dz=0.002)
        t[f"noseSneer{side}"] = vec(_gauss(d, lm["nostril"], 0.08), dx=sx * 0.001, dy=0.006, dz=0.002)
    t["jawForward"] = vec(jaw, dz=0.010)
    t["jawLeft"] = vec(jaw, dx=0.012)
    t["jawRight"] = vec(jaw, dx=-0.012)
    t["jawOpen"] = vec(jaw, dy=-0.025, dz=-0.004)
    t["mouthClose"] = vec(lips_lo, dy=0.008) + vec(lips_up, dy=-0.003)
    t["mouthFunnel"] = np.stack([p[:, 0] * 0.3 * mouth, (p[:, 1] - mouth_y) * 0.3 * mouth, 0 * x], -1) \
        + vec(mouth, dz=0.008)
    t["mouthPucker"] = np.stack([-p[:, 0] * 0.4 * mouth, 0 * x, 0 * x], -1) + vec(mouth, dz=0.012)
    t["mouthLeft"] = vec(mouth, dx=0.010)
    t["mouthRight"] = vec(mouth, dx=-0.010)
    t["mouthRollLower"] = vec(lips_lo, dy=0.002, dz=-0.007)
    t["mouthRollUpper"] = vec(lips_up, dy=-0.002, dz=-0.007)
    t["mouthShrugLower"] = vec(np.maximum(lips_lo, _gauss(d, _LM["chin"], 0.15)), dy=0.007, dz=0.003)
    t["mouthShrugUpper"] = vec(lips_up, dy=0.006, dz=0.002)
    t["browInnerUp"] = vec(_gauss(d, _LM["brow_inner"], 0.09) + _gauss(d, _mirror(_LM["brow_inner"]), 0.09),
                           dy=0.010)
    cheeks = _gauss(d, _LM["cheek"], 0.16) + _gauss(d, _mirror(_LM["cheek"]), 0.16)
    t["cheekPuff"] = cheeks[:, None] * normal * 0.012
    t["tongueOut"] = vec(_gauss(d, _LM["mouth"], 0.07), dy=-0.003, dz=0.020)
    out = np.stack([t[n] for n in ARKIT_NAMES])
    assert out.shape == (NUM_ARKIT, N, 3)
    return out


@functools.lru_cache(maxsize=1)
def _face() -> dict[str, np.ndarray]:
    """Procedural face ellipsoid around the mannequin's head, with 52 ARKit targets (metres)."""
    body = _body()
    hv = body["head_vertices"]
    hv = hv[hv[:, 1] > body["joints"][JOINT_INDEX["head"], 1] - 0.03]   # skull, not the neck
    lo, hi = hv.min(0), hv.max(0)
    center, radii = (lo + hi) / 2, (hi - lo) / 2 * _FACE_SCALE
    sphere = trimesh.creation.icosphere(subdivisions=_FACE_SUBDIVISIONS, radius=1.0)
    d = np.asarray(sphere.vertices, dtype=np.float64)
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    p = d * radii
    # A small nose so the front is recognisable.
    p = p + _gauss(d, _LM["nose"], 0.10)[:, None] * np.array([0.0, 0.0, 0.014])
    normals = trimesh.Trimesh(p, sphere.faces, process=False).vertex_normals
    color = np.tile(np.asarray(_SKIN_RGB), (len(d), 1))
    for key, rgb, sigma in (("eye", _EYE_RGB, 0.07), ("brow", _BROW_RGB, 0.07)):
        for a in (_LM[key], _mirror(_LM[key])):
            w = np.clip(_gauss(d, a, sigma) * 1.5, 0, 1)[:, None]
            color = color * (1 - w) + np.asarray(rgb) * w
    w = np.clip((_gauss(d, _LM["upper_lip"], 0.07) + _gauss(d, _LM["lower_lip"], 0.07)) * 1.3, 0, 1)[:, None]
    color = color * (1 - w) + np.asarray(_LIP_RGB) * w
    targets = _face_targets(d, p, radii)
    return {"vertices": (p + center).astype(np.float32), "normals": normals.astype(np.float32),
            "colors": color.astype(np.float32), "faces": np.asarray(sphere.faces, dtype=np.uint16),
            "targets": targets.astype(np.float32)}


# --------------------------------------------------------------------------------------------------
# Writer
# --------------------------------------------------------------------------------------------------
def _joint_names(bone_names: str) -> list[str]:
    if bone_names == "smplx":
        return list(SMPLX_JOINT_NAMES)
    if bone_names == "mixamo":
        return [SMPLX_TO_MIXAMO[n] or n for n in SMPLX_JOINT_NAMES]
    raise ChatAnyoneError(f"bone_names must be one of {BONE_NAME_OPTIONS}, got {bone_names!r}")


@dataclass(frozen=True)
class AvatarNodes:
    """Node indices of the avatar that :func:`add_avatar` adds to a glTF.

    Attributes:
        joints: 55 node indices, one per SMPL-X joint (:data:`motion.conventions.SMPLX_JOINT_NAMES` order).
        body: the skinned mannequin mesh node.
        face: the skinned face mesh node carrying the 52 ARKit morph targets (in ``ARKIT_NAMES`` order).
        skin: the skin shared by both meshes.
        face_mesh: the face's mesh index.
    """

    joints: tuple[int, ...]
    body: int
    face: int
    skin: int
    face_mesh: int


def add_avatar(b: Builder, names: list[str]) -> AvatarNodes:
    """Add the skinned mannequin and the ARKit face to ``b.gltf`` (nodes, skin, materials, meshes, scene 0).

    The skeleton rests in the T-pose with identity node rotations and parent-relative translations
    (metres, +Y up, facing +Z, soles on ``y = 0``); ``names`` are the 55 joint node names. Shared by the
    GLB writer and the VRM avatar (:mod:`exporters.vrm_avatar`); call on an empty ``GLTF2``.
    """
    gltf = b.gltf
    body, face = _body(), _face()
    base = len(gltf.nodes)
    assert base == 0 and len(names) == NUM_JOINTS

    # Skeleton nodes 0..54 (spec 3.5): identity rest rotations, parent-relative translations.
    P = body["joints"]
    parents = np.asarray(SMPLX_PARENTS)
    for j in range(NUM_JOINTS):
        t = P[j] if parents[j] < 0 else P[j] - P[parents[j]]
        gltf.nodes.append(g.Node(name=names[j], translation=[float(v) for v in t]))
    for j in range(1, NUM_JOINTS):
        gltf.nodes[parents[j]].children.append(j)
    ibm = np.tile(np.eye(4, dtype=np.float32), (NUM_JOINTS, 1, 1))
    ibm[:, :3, 3] = -P
    ibm_acc = b.accessor(np.ascontiguousarray(ibm.transpose(0, 2, 1)).reshape(NUM_JOINTS, 16))  # column-major
    gltf.skins.append(g.Skin(name="smplx_skeleton", inverseBindMatrices=ibm_acc, skeleton=0,
                             joints=list(range(NUM_JOINTS))))

    gltf.materials = [
        g.Material(name="wood", pbrMetallicRoughness=g.PbrMetallicRoughness(
            baseColorFactor=list(_BODY_COLOR), metallicFactor=0.0, roughnessFactor=0.8)),
        g.Material(name="face", pbrMetallicRoughness=g.PbrMetallicRoughness(
            baseColorFactor=list(_FACE_COLOR), metallicFactor=0.0, roughnessFactor=0.6)),
    ]

    # Body mesh.
    attrs = g.Attributes(
        POSITION=b.accessor(body["vertices"], target=g.ARRAY_BUFFER, minmax=True),
        NORMAL=b.accessor(body["normals"], target=g.ARRAY_BUFFER),
        JOINTS_0=b.accessor(body["skin_joints"], target=g.ARRAY_BUFFER),
        WEIGHTS_0=b.accessor(body["skin_weights"], target=g.ARRAY_BUFFER))
    idx = b.accessor(body["faces"].reshape(-1), target=g.ELEMENT_ARRAY_BUFFER)
    gltf.meshes.append(g.Mesh(name="mannequin", primitives=[g.Primitive(attributes=attrs, indices=idx, material=0)]))

    # Face mesh with the 52 ARKit morph targets, rigidly skinned to the head.
    nf = len(face["vertices"])
    fj = np.zeros((nf, 4), np.uint8)
    fj[:, 0] = JOINT_INDEX["head"]
    fw = np.zeros((nf, 4), np.float32)
    fw[:, 0] = 1
    fattrs = g.Attributes(
        POSITION=b.accessor(face["vertices"], target=g.ARRAY_BUFFER, minmax=True),
        NORMAL=b.accessor(face["normals"], target=g.ARRAY_BUFFER),
        COLOR_0=b.accessor(face["colors"], target=g.ARRAY_BUFFER),
        JOINTS_0=b.accessor(fj, target=g.ARRAY_BUFFER),
        WEIGHTS_0=b.accessor(fw, target=g.ARRAY_BUFFER))
    fidx = b.accessor(face["faces"].reshape(-1), target=g.ELEMENT_ARRAY_BUFFER)
    targets = [{"POSITION": b.sparse_vec3(face["targets"][k])} for k in range(NUM_ARKIT)]
    gltf.meshes.append(g.Mesh(
        name="face_arkit52", weights=[0.0] * NUM_ARKIT, extras={"targetNames": list(ARKIT_NAMES)},
        primitives=[g.Primitive(attributes=fattrs, indices=fidx, material=1, targets=targets)]))

    # Mesh nodes at the scene root, without transforms (spec 3.7.3: skinned meshes ignore them).
    body_node, face_node = NUM_JOINTS, NUM_JOINTS + 1
    gltf.nodes.append(g.Node(name="mannequin", mesh=0, skin=0))
    gltf.nodes.append(g.Node(name="face", mesh=1, skin=0))
    gltf.scenes = [g.Scene(name="avatar", nodes=[0, body_node, face_node])]
    gltf.scene = 0
    return AvatarNodes(joints=tuple(range(NUM_JOINTS)), body=body_node, face=face_node, skin=0, face_mesh=1)


def build(clip: MotionClip, *, bone_names: str = "smplx") -> g.GLTF2:
    """The in-memory :class:`pygltflib.GLTF2` that :func:`write` saves (binary blob attached).

    Raises:
        ChatAnyoneError: ``clip`` is not a MotionClip, has no frames, or ``bone_names`` is unknown.
    """
    if not isinstance(clip, MotionClip):
        raise ChatAnyoneError(f"glb.write needs a MotionClip, got {type(clip).__name__}")
    names = _joint_names(bone_names)
    if clip.num_frames < 1:
        raise ChatAnyoneError("cannot export an empty clip (0 frames) to GLB")
    gltf = g.GLTF2(asset=g.Asset(version="2.0", generator="ChatAnyone Bridge exporters.glb"))
    gltf.extras = {"chatanyone": {"fps": clip.fps, "bone_names": bone_names,
                                  "meta": json.loads(json.dumps(clip.meta, default=str))}}
    b = Builder(gltf)
    avatar = add_avatar(b, names)

    # Animation (spec 3.11).
    ab = AnimationBuilder(b, clip.num_frames, clip.fps, str(clip.meta.get("name", "motion")))
    q = continuous_quats(clip.rotations)
    for j in range(NUM_JOINTS):
        ab.channel(avatar.joints[j], "rotation", q[:, j])
    root = (_body()["joints"][0] + clip.translation.astype(np.float64)).astype(np.float32)
    ab.channel(avatar.joints[0], "translation", root)
    ab.channel(avatar.face, "weights", clip.face.reshape(-1))
    gltf.animations.append(ab.animation)

    b.finish()
    return gltf


def write(clip: MotionClip, path: str | os.PathLike, *, bone_names: str = "smplx") -> Path:
    """Write ``clip`` as a self-contained ``.glb`` (see the module docstring for the contents).

    Args:
        clip: ``MotionClip`` with ``T >= 1`` frames: ``face [T, 52]`` -> morph weights, ``rotations
            [T, 55, 4]`` xyzw -> joint rotations, ``translation [T, 3]`` metres -> root translation.
        path: destination file; its folder must exist.
        bone_names: ``"smplx"`` (SMPL-X joint names) or ``"mixamo"`` (``mixamorig:Hips`` ...; joints
            without a Mixamo bone, i.e. ``jaw``, keep their SMPL-X name).
    Returns:
        The written path. About 1.6 MB of mesh plus ~1.1 kB per frame (3.6 MB for 60 s at 30 fps).
    Raises:
        ChatAnyoneError: unknown ``bone_names``, an empty clip, a missing or unwritable folder. The file
            is written atomically: on failure nothing is left at ``path``.
    """
    return save_glb(build(clip, bone_names=bone_names), path)
