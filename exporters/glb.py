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
* **Head** (replacing the mannequin's own head and neck, whose vertices are dropped): the ICT-FaceKit
  scanned head (MIT, (c) 2020 USC Institute for Creative Technologies) from the packaged asset
  ``exporters/assets/head_arkit.npz`` (:mod:`exporters.build_head`, 24,591 vertices: face, back of the head
  and neck, mouth socket, teeth, gums, tongue, eyeballs), placed with its eyeball centres on the eye joints
  (its scale, centimetres x 0.01, gives an interpupillary distance of 61.9 mm against the skeleton's 62 mm).
  Skin (spec 3.7.3.3): the eyeballs rigidly to ``left_eye_smplhf``/``right_eye_smplhf``; the rest to
  ``head`` above the head joint, blending into ``neck`` and ``spine3`` down the neck (smoothstep in height),
  with the jaw's share (read off the scan's ``jawOpen``) on ``jaw``. Colours are vertex colours
  (``COLOR_0``, linear) for skin, lips, brows, mouth, gums, tongue, teeth, sclera, iris and pupil.
  The 52 ARKit morph targets (spec 3.7.2.2 "Morph Targets"; ``POSITION`` displacements in metres, stored
  as sparse accessors, spec 3.6.2.3) are the scan's own shapes; target names are in
  ``mesh.extras.targetNames`` (the convention of three.js, Blender and Babylon.js) in
  :data:`motion.conventions.ARKIT_NAMES` order; ``mesh.extras`` also carries the head's licence and credit,
  and ``asset.copyright`` credits head and body. The face's left is +X (the avatar faces +Z).
* **Animation** (spec 3.11): one animation; per joint a LINEAR ``rotation`` channel (xyzw, sign-made
  continuous between frames), a ``translation`` channel on the root (rest position + ``clip.translation``)
  and a ``weights`` channel on the face node (the 52 face weights per frame). Key times are
  ``frame / clip.fps`` seconds.
* **Materials** (spec 3.9): metallic-roughness with ``metallicFactor = 0`` so that the model is lit
  without an environment map (three.js, Blender); wood for the body, white times the vertex colours for
  the head.
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


from ._gltf import AnimationBuilder, Builder, continuous_quats, spooled_glb

BONE_NAME_OPTIONS = ("smplx", "mixamo")

# --------------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------------
#: wooden.npz joint index (54) -> SMPL-X joint index (55); L_Hand/R_Hand (22, 23) fold into the wrists.
_WOODEN_TO_SMPLX = np.array(list(range(22)) + [20, 21] + list(range(25, 55)))
_BODY_COLOR = (0.78, 0.60, 0.40, 1.0)     # light wood
_FACE_COLOR = (1.0, 1.0, 1.0, 1.0)        # multiplied by the face's vertex colours
#: The head asset (exporters/build_head.py): ICT-FaceKit, MIT.
_HEAD_ASSET = "assets/head_arkit.npz"
HEAD_CREDIT = ("Head: ICT-FaceKit (c) 2020 USC Institute for Creative Technologies, MIT License "
               "(https://github.com/ICT-VGL/ICT-FaceKit). Body: mannequin-x 'wooden' mannequin, Andrea Boscolo "
               "Camiletto, Apache-2.0. Rig, tongueOut and colours: ChatAnyone Bridge, Apache-2.0.")
_EYE_PARTS = {"sclera_left": "left_eye_smplhf", "iris_left": "left_eye_smplhf",
              "sclera_right": "right_eye_smplhf", "iris_right": "right_eye_smplhf"}


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
    # The mannequin's own head and neck (its "head" part) give way to the scanned head.
    hs, hc = parts["head"]
    keep = np.ones(V, bool)
    keep[hs:hs + hc] = False
    faces = faces[keep[faces].all(1)]
    new_index = np.cumsum(keep) - 1
    faces = new_index[faces]
    V = int(keep.sum())
    return {"vertices": v[keep].astype(np.float32), "normals": normals[keep].astype(np.float32),
            "faces": faces.astype(np.uint16 if V < 65535 else np.uint32),
            "joints": joints, "skin_joints": top[keep].astype(np.uint8), "skin_weights": w32[keep]}


def _smoothstep(x, a: float, b: float) -> np.ndarray:
    t = np.clip((np.asarray(x, np.float64) - a) / (b - a), 0.0, 1.0)
    return t * t * (3 - 2 * t)


@functools.lru_cache(maxsize=1)
def head_asset() -> dict:
    """The packaged head (``exporters/assets/head_arkit.npz``, built by :mod:`exporters.build_head`), as
    stored: metres, origin between the eyeball centres; ``targets [52, V, 3]`` float32 metres (dense)."""
    with resources.files("exporters").joinpath(_HEAD_ASSET).open("rb") as f:
        z = dict(np.load(f))
    V = len(z["vertices"])
    off = z["target_offsets"]
    targets = np.zeros((NUM_ARKIT, V, 3), np.float32)
    assert [str(n) for n in z["target_names"]] == list(ARKIT_NAMES)
    for k in range(NUM_ARKIT):
        idx = z["target_indices"][off[k]:off[k + 1]].astype(np.int64)
        targets[k, idx] = z["target_deltas_mm"][off[k]:off[k + 1]].astype(np.float32) / 1000.0
    z["targets"] = targets
    z["meta"] = json.loads(str(z["meta"]))
    return z


@functools.lru_cache(maxsize=1)
def _face() -> dict[str, np.ndarray]:
    """The head placed on the rest skeleton: its eyeball centres on the eye joints, skinned to the head,
    jaw, eye, neck and upper-spine joints (metres)."""
    h = head_asset()
    P = rest_joint_positions().astype(np.float64)
    eyes = P[[JOINT_INDEX["left_eye_smplhf"], JOINT_INDEX["right_eye_smplhf"]]]
    v = h["vertices"].astype(np.float64) + eyes.mean(0)
    faces = h["triangles"].astype(np.int64)
    names = [str(n) for n in h["region_names"]]
    region = np.asarray(names)[h["region"]]

    # Skin weights: head above the head joint, blending into neck then spine3 down the neck; the jaw's share
    # (h["jaw_weight"], read off jawOpen) goes to the jaw joint; the eyeballs rigidly to their eye joints.
    y = v[:, 1]
    head_y, neck_y = P[JOINT_INDEX["head"], 1], P[JOINT_INDEX["neck"], 1]
    w_head = _smoothstep(y, neck_y + 0.3 * (head_y - neck_y), head_y)
    w_neck = (1 - w_head) * _smoothstep(y, neck_y - 0.05, neck_y)
    w_spine = 1 - w_head - w_neck
    jaw = h["jaw_weight"].astype(np.float64) / 255.0 * w_head
    cols = [("head", w_head - jaw), ("jaw", jaw), ("neck", w_neck), ("spine3", w_spine)]
    J = np.zeros((len(v), 4), np.uint8)
    W = np.zeros((len(v), 4), np.float32)
    for k, (joint, w) in enumerate(cols):
        J[:, k] = JOINT_INDEX[joint]
        W[:, k] = w
    for part, joint in _EYE_PARTS.items():
        m = region == part
        J[m] = [JOINT_INDEX[joint], 0, 0, 0]
        W[m] = [1, 0, 0, 0]
    W = np.clip(W, 0, 1)
    W /= W.sum(1, keepdims=True)
    W[:, 0] += 1.0 - W.sum(1)                        # exact float32 normalisation
    J = np.where(W > 0, J, 0).astype(np.uint8)
    normals = trimesh.Trimesh(v, faces, process=False).vertex_normals
    return {"vertices": v.astype(np.float32), "normals": normals.astype(np.float32),
            "colors": h["colors"].astype(np.float32) / 255.0, "faces": faces.astype(np.uint16),
            "targets": h["targets"], "skin_joints": J, "skin_weights": W, "region": region}


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
        face: the skinned head mesh node carrying the 52 ARKit morph targets (in ``ARKIT_NAMES`` order).
        skin: the skin shared by both meshes.
        face_mesh: the face's mesh index.
    """

    joints: tuple[int, ...]
    body: int
    face: int
    skin: int
    face_mesh: int


def add_avatar(b: Builder, names: list[str]) -> AvatarNodes:
    """Add the skinned mannequin and the ARKit head to ``b.gltf`` (nodes, skin, materials, meshes, scene 0).

    The skeleton rests in the T-pose with identity node rotations and parent-relative translations
    (metres, +Y up, facing +Z, soles on ``y = 0``); ``names`` are the 55 joint node names. Shared by the
    GLB writer and the VRM avatar (:mod:`exporters.vrm_avatar`); call on an empty ``GLTF2``.
    """
    gltf = b.gltf
    body, face = _body(), _face()
    base = len(gltf.nodes)
    gltf.asset.copyright = HEAD_CREDIT
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
            baseColorFactor=list(_FACE_COLOR), metallicFactor=0.0, roughnessFactor=0.55)),
    ]

    # Body mesh.
    attrs = g.Attributes(
        POSITION=b.accessor(body["vertices"], target=g.ARRAY_BUFFER, minmax=True),
        NORMAL=b.accessor(body["normals"], target=g.ARRAY_BUFFER),
        JOINTS_0=b.accessor(body["skin_joints"], target=g.ARRAY_BUFFER),
        WEIGHTS_0=b.accessor(body["skin_weights"], target=g.ARRAY_BUFFER))
    idx = b.accessor(body["faces"].reshape(-1), target=g.ELEMENT_ARRAY_BUFFER)
    gltf.meshes.append(g.Mesh(name="mannequin", primitives=[g.Primitive(attributes=attrs, indices=idx, material=0)]))

    # Head mesh with the 52 ARKit morph targets, skinned to head, jaw, eyes, neck and spine3.
    fj, fw = face["skin_joints"], face["skin_weights"]
    fattrs = g.Attributes(
        POSITION=b.accessor(face["vertices"], target=g.ARRAY_BUFFER, minmax=True),
        NORMAL=b.accessor(face["normals"], target=g.ARRAY_BUFFER),
        COLOR_0=b.accessor(face["colors"], target=g.ARRAY_BUFFER),
        JOINTS_0=b.accessor(fj, target=g.ARRAY_BUFFER),
        WEIGHTS_0=b.accessor(fw, target=g.ARRAY_BUFFER))
    fidx = b.accessor(face["faces"].reshape(-1), target=g.ELEMENT_ARRAY_BUFFER)
    targets = [{"POSITION": b.sparse_vec3(face["targets"][k])} for k in range(NUM_ARKIT)]
    gltf.meshes.append(g.Mesh(
        name="face_arkit52", weights=[0.0] * NUM_ARKIT,
        extras={"targetNames": list(ARKIT_NAMES), "license": "MIT", "credit": head_asset()["meta"]["credit"]},
        primitives=[g.Primitive(attributes=fattrs, indices=fidx, material=1, targets=targets)]))

    # Mesh nodes at the scene root, without transforms (spec 3.7.3: skinned meshes ignore them).
    body_node, face_node = NUM_JOINTS, NUM_JOINTS + 1
    gltf.nodes.append(g.Node(name="mannequin", mesh=0, skin=0))
    gltf.nodes.append(g.Node(name="face", mesh=1, skin=0))
    gltf.scenes = [g.Scene(name="avatar", nodes=[0, body_node, face_node])]
    gltf.scene = 0
    return AvatarNodes(joints=tuple(range(NUM_JOINTS)), body=body_node, face=face_node, skin=0, face_mesh=1)


def _check(clip: MotionClip, bone_names: str) -> list[str]:
    if not isinstance(clip, MotionClip):
        raise ChatAnyoneError(f"glb.write needs a MotionClip, got {type(clip).__name__}")
    names = _joint_names(bone_names)
    if clip.num_frames < 1:
        raise ChatAnyoneError("cannot export an empty clip (0 frames) to GLB")
    return names


def _new_gltf(clip: MotionClip, bone_names: str) -> g.GLTF2:
    gltf = g.GLTF2(asset=g.Asset(version="2.0", generator="ChatAnyone Bridge exporters.glb"))
    gltf.extras = {"chatanyone": {"fps": clip.fps, "bone_names": bone_names,
                                  "meta": json.loads(json.dumps(clip.meta, default=str))}}
    return gltf


def _fill(b: Builder, clip: MotionClip, names: list[str]) -> None:
    """The avatar and the clip's animation (spec 3.11) into ``b``, one joint's keys at a time (a joint's
    rotations are ``[T, 4]``: 5 MB for 3 h at 30 fps, against 285 MB for all 55 as float32)."""
    avatar = add_avatar(b, names)
    ab = AnimationBuilder(b, clip.num_frames, clip.fps, str(clip.meta.get("name", "motion")))
    for j in range(NUM_JOINTS):
        ab.channel(avatar.joints[j], "rotation", continuous_quats(clip.rotations[:, j]))
    root = (_body()["joints"][0] + clip.translation.astype(np.float64)).astype(np.float32)
    ab.channel(avatar.joints[0], "translation", root)
    ab.channel(avatar.face, "weights", clip.face.reshape(-1))
    b.gltf.animations.append(ab.animation)
    b.finish()


def build(clip: MotionClip, *, bone_names: str = "smplx") -> g.GLTF2:
    """The in-memory :class:`pygltflib.GLTF2` that :func:`write` saves (binary blob attached); for short
    clips and tests (:func:`write` does not hold the binary buffer in memory).

    Raises:
        ChatAnyoneError: ``clip`` is not a MotionClip, has no frames, or ``bone_names`` is unknown.
    """
    names = _check(clip, bone_names)
    gltf = _new_gltf(clip, bone_names)
    _fill(Builder(gltf), clip, names)
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
        The written path. About 6.6 MB of avatar plus ~1.1 kB per frame (8.6 MB for 60 s at 30 fps).
    Raises:
        ChatAnyoneError: unknown ``bone_names``, an empty clip, a missing or unwritable folder. The file
            is written atomically: on failure nothing is left at ``path``.

    Memory: the binary buffer goes to an unlinked temporary file in the destination folder as it is made
    (:func:`exporters._gltf.spooled_glb`) and the animation is converted one joint at a time, so the writer
    holds the avatar and one joint's keys, not the whole animation (a 60-min clip: +0.6 GB before, see the
    README). The bytes are those of ``pygltflib``'s ``save_to_bytes`` on :func:`build`'s glTF (tested).
    Needs free disk space for the file twice while it is written.
    """
    names = _check(clip, bone_names)
    with spooled_glb(_new_gltf(clip, bone_names), path) as b:
        _fill(b, clip, names)
    return Path(path)
