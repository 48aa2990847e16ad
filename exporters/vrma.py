"""VRM Animation (``.vrma``) export: a clip as humanoid-bone, expression and gaze animation for any VRM 1.0
avatar (three-vrm's ``VRMAnimationLoaderPlugin``, UniVRM, VRM4U, ...).

A ``.vrma`` is a binary glTF 2.0 file with the root extension ``VRMC_vrm_animation`` (specification:
``vrm-c/vrm-specification``, ``specification/VRMC_vrm_animation-1.0/README.md``, cited "VRMA <section>")::

    "extensionsUsed": ["VRMC_vrm_animation"],
    "extensions": {"VRMC_vrm_animation": {
        "specVersion": "1.0",
        "humanoid": {"humanBones": {"hips": {"node": 0}, "spine": {"node": 3}, ...}},
        "expressions": {"custom": {"jawOpen": {"node": 55}, ...}},
        "lookAt": {"node": 54, "offsetFromHeadBone": [0.0, 0.065, 0.085]}}}

What the file holds:

* **Humanoid** (VRMA "Humanoid"): one node per SMPL-X joint that has a VRM 1.0 humanoid bone
  (:data:`motion.conventions.SMPLX_TO_VRM`: 53 of 55 joints, fingers, toes and ``jaw`` included), with
  SMPL-X's parents, named after the VRM bone. ``leftEye``/``rightEye`` may not be humanoid bones in a
  VRMA (gaze goes through LookAt), so the eye joints are not written as bones. The rest pose is the VRM
  T-pose: identity rotations, parent-relative translations from
  :func:`motion.conventions.rest_joint_positions` (metres, +Y up, facing +Z, feet on ``y = 0``, as VRM 1.0
  models), so each bone's animated local rotation is the clip's quaternion unchanged. Every bone has a
  LINEAR ``rotation`` channel (xyzw, sign-made continuous); only ``hips`` has a ``translation`` channel
  (rest position + ``clip.translation``), as the spec requires; no scale.
* **Expressions** (VRMA "Expressions"): one node per expression at the scene root; the expression's weight
  is the node's animated ``translation.x`` (``y = z = 0``), in [0, 1]. **One set per file** (the binding
  scheme, so that no morph is driven by two expressions): ``expressions="arkit"`` (default) writes the 52
  ARKit blendshapes as custom expressions named as in :data:`motion.conventions.ARKIT_NAMES` (lowerCamel
  ``jawOpen``: the "perfect sync" names; our VRM avatar binds each to its own morph target at weight 1);
  ``expressions="preset"`` writes the VRM presets from the ARKit weights through
  :data:`ARKIT_TO_VRM_EXPRESSION`, for avatars without ARKit expressions. A perfect-sync avatar binds its
  presets and its ARKit expressions to the same morphs and three-vrm adds the two (expressions.md
  "Expression update algorithm"), so writing both would over-drive them; ``"all"`` is refused.
  ``lookUp/Down/Left/Right`` are not written (the spec forbids them; gaze is LookAt). Within the preset set,
  ``blink`` = min(left, right) and ``blinkLeft``/``blinkRight`` carry the rest of each eye, so that an
  avatar binding ``blink`` and ``blinkLeft`` to the same lid never sees more than the ARKit weight.
* **LookAt** (VRMA "LookAt"): a node named ``lookAt``, child of the head bone, at the midpoint of the eyes
  (``offsetFromHeadBone``); its animated local rotation is the gaze: the normalised mean of the two eye
  joints' rotations (relative to the head, rest gaze +Z). Readers take yaw about Y and pitch about X from
  it (extrinsic ZXY); roll is ignored. Positive yaw looks to the avatar's left (+X).
* **Animation** (glTF spec 3.11): one animation, LINEAR samplers, key times ``frame / clip.fps`` seconds
  (the VRMA spec recommends 30 fps, the model's rate).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pygltflib as g

from motion.clip import MotionClip
from motion.conventions import (  # noqa: F401  (ARKIT_TO_VRM_EXPRESSION re-exported: its home is conventions)
    ARKIT_NAMES, ARKIT_TO_VRM_EXPRESSION, JOINT_INDEX, SMPLX_JOINT_NAMES, SMPLX_PARENTS,
    SMPLX_TO_VRM, rest_joint_positions, vrm_expression_matrix, vrm_expression_weights,
)
from motion.errors import ChatAnyoneError

from ._gltf import AnimationBuilder, Builder, continuous_quats, spooled_glb

EXTENSION = "VRMC_vrm_animation"
SPEC_VERSION = "1.0"
EXPRESSION_OPTIONS = ("arkit", "preset")

# --------------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------------
#: VRM 1.0 preset expression names a VRMA may animate (VRMA "Expressions": all presets but lookUp/Down/Left/Right).
VRMA_PRESETS = ("happy", "angry", "sad", "relaxed", "surprised", "aa", "ih", "ou", "ee", "oh",
                "blink", "blinkLeft", "blinkRight", "neutral")
#: SMPL-X joints written as humanoid bones (all with a VRM bone except the eyes, which VRMA forbids).
_BONE_JOINTS = tuple(j for j, n in enumerate(SMPLX_JOINT_NAMES)
                     if SMPLX_TO_VRM.get(n) and SMPLX_TO_VRM[n] not in ("leftEye", "rightEye"))
_EYES = (JOINT_INDEX["left_eye_smplhf"], JOINT_INDEX["right_eye_smplhf"])


def expression_matrix() -> tuple[list[str], np.ndarray]:
    """``(preset names, M [52, P] float64)`` with ``presets = clip(face @ M, 0, 1)``
    (:func:`motion.conventions.vrm_expression_matrix`; every name a VRMA preset)."""
    names, m = vrm_expression_matrix()
    assert all(n in VRMA_PRESETS for n in names), names
    return names, m


#: ARKit ``[T, 52]`` -> VRM preset weights (:func:`motion.conventions.vrm_expression_weights`).
preset_weights = vrm_expression_weights


def gaze_quats(rotations: np.ndarray) -> np.ndarray:
    """LookAt rotation ``[T, 4]`` float32 xyzw: the normalised mean of the eye joints of ``rotations
    [T, 55, 4]`` (the right eye's sign aligned to the left's first)."""
    left = rotations[:, _EYES[0]].astype(np.float64)
    right = rotations[:, _EYES[1]].astype(np.float64)
    right = np.where(((left * right).sum(-1) < 0)[:, None], -right, right)
    q = left + right
    n = np.linalg.norm(q, axis=-1, keepdims=True)
    q = np.where(n > 1e-9, q / np.maximum(n, 1e-12), left)      # opposite eyes: fall back to the left
    return q.astype(np.float32)


# --------------------------------------------------------------------------------------------------
# Writer
# --------------------------------------------------------------------------------------------------
def _check(clip: MotionClip, expressions: str) -> None:
    if not isinstance(clip, MotionClip):
        raise ChatAnyoneError(f"vrma.write needs a MotionClip, got {type(clip).__name__}")
    if expressions not in EXPRESSION_OPTIONS:
        raise ChatAnyoneError(f"expressions must be one of {EXPRESSION_OPTIONS} (one set: an avatar with both "
                              f"would add them and over-drive its morphs), got {expressions!r}")
    if clip.num_frames < 1:
        raise ChatAnyoneError("cannot export an empty clip (0 frames) to VRM Animation")


def _new_gltf(clip: MotionClip) -> g.GLTF2:
    gltf = g.GLTF2(asset=g.Asset(version="2.0", generator="ChatAnyone Bridge exporters.vrma"))
    gltf.extras = {"chatanyone": {"fps": clip.fps, "meta": json.loads(json.dumps(clip.meta, default=str))}}
    return gltf


def build(clip: MotionClip, *, expressions: str = "arkit") -> g.GLTF2:
    """The in-memory :class:`pygltflib.GLTF2` that :func:`write` saves (binary blob attached); for short
    clips and tests (:func:`write` does not hold the binary buffer in memory).

    Raises:
        ChatAnyoneError: ``clip`` is not a MotionClip, has no frames, or ``expressions`` is unknown.
    """
    _check(clip, expressions)
    gltf = _new_gltf(clip)
    _fill(Builder(gltf), clip, expressions)
    return gltf


def _fill(b: Builder, clip: MotionClip, expressions: str) -> None:
    """The VRMA's nodes, animation (one bone's keys at a time) and extension into ``b``."""
    gltf = b.gltf

    # Humanoid bones in the VRM T-pose: identity rotations, parent-relative offsets (VRMA "Humanoid").
    P = rest_joint_positions().astype(np.float64)
    node_of: dict[int, int] = {}
    for j in _BONE_JOINTS:
        p = SMPLX_PARENTS[j]
        t = P[j] if p < 0 else P[j] - P[p]
        node_of[j] = len(gltf.nodes)
        gltf.nodes.append(g.Node(name=SMPLX_TO_VRM[SMPLX_JOINT_NAMES[j]], translation=[float(v) for v in t]))
        if p >= 0:
            gltf.nodes[node_of[p]].children.append(node_of[j])
    hips = node_of[JOINT_INDEX["pelvis"]]
    head_j = JOINT_INDEX["head"]

    # LookAt node: child of the head, between the eyes (VRMA "LookAt").
    eye_offset = (P[list(_EYES)].mean(0) - P[head_j])
    look_node = len(gltf.nodes)
    gltf.nodes.append(g.Node(name="lookAt", translation=[float(v) for v in eye_offset]))
    gltf.nodes[node_of[head_j]].children.append(look_node)

    # Expression nodes at the scene root (VRMA "Expressions").
    weights: dict[str, dict[str, np.ndarray]] = {"preset": {}, "custom": {}}
    if expressions == "preset":
        weights["preset"] = preset_weights(clip.face)
    else:
        weights["custom"] = {n: clip.face[:, k] for k, n in enumerate(ARKIT_NAMES)}
    expr_nodes: dict[str, dict[str, int]] = {"preset": {}, "custom": {}}
    for kind in ("preset", "custom"):
        for name in weights[kind]:
            expr_nodes[kind][name] = len(gltf.nodes)
            gltf.nodes.append(g.Node(name=f"expression_{name}", translation=[0.0, 0.0, 0.0]))
    root_nodes = [hips] + [i for kind in ("preset", "custom") for i in expr_nodes[kind].values()]
    gltf.scenes = [g.Scene(name="vrma", nodes=root_nodes)]
    gltf.scene = 0

    # Animation (glTF spec 3.11).
    ab = AnimationBuilder(b, clip.num_frames, clip.fps, str(clip.meta.get("name", "motion")))
    for j in _BONE_JOINTS:
        ab.channel(node_of[j], "rotation", continuous_quats(clip.rotations[:, j]))
    ab.channel(hips, "translation", (P[0] + clip.translation.astype(np.float64)).astype(np.float32))
    ab.channel(look_node, "rotation", continuous_quats(gaze_quats(clip.rotations)))
    xyz = np.zeros((clip.num_frames, 3), np.float32)
    for kind in ("preset", "custom"):
        for name, w in weights[kind].items():
            xyz[:, 0] = w
            ab.channel(expr_nodes[kind][name], "translation", xyz)
    gltf.animations.append(ab.animation)

    ext: dict = {"specVersion": SPEC_VERSION,
                 "humanoid": {"humanBones": {SMPLX_TO_VRM[SMPLX_JOINT_NAMES[j]]: {"node": node_of[j]}
                                             for j in _BONE_JOINTS}}}
    expr_ext = {kind: {n: {"node": i} for n, i in expr_nodes[kind].items()}
                for kind in ("preset", "custom") if expr_nodes[kind]}
    if expr_ext:
        ext["expressions"] = expr_ext
    ext["lookAt"] = {"node": look_node, "offsetFromHeadBone": [float(v) for v in eye_offset]}
    gltf.extensionsUsed = [EXTENSION]
    gltf.extensions = {EXTENSION: ext}
    b.finish()


def write(clip: MotionClip, path: str | os.PathLike, *, expressions: str = "arkit") -> Path:
    """Write ``clip`` as a VRM Animation ``.vrma`` (see the module docstring for the contents).

    Args:
        clip: ``MotionClip`` with ``T >= 1`` frames: ``rotations [T, 55, 4]`` xyzw -> humanoid bone
            rotations (53 bones) and LookAt (eye joints), ``translation [T, 3]`` metres -> hips translation,
            ``face [T, 52]`` -> expression weights.
        path: destination file (``.vrma``); its folder must exist.
        expressions: ``"arkit"`` (default: the 52 ARKit names as custom expressions, for perfect-sync
            avatars such as ours) or ``"preset"`` (VRM presets from :data:`ARKIT_TO_VRM_EXPRESSION`, for
            avatars without ARKit expressions); never both (see the module docstring).
    Returns:
        The written path. About 1.4 kB per frame with ``"arkit"`` (25 MB for 10 minutes at 30 fps).
    Raises:
        ChatAnyoneError: not a MotionClip, an empty clip, unknown ``expressions``, a missing or unwritable
            folder. Written atomically: on failure nothing is left at ``path``.

    Memory: as :func:`exporters.glb.write`, the binary buffer is spooled to an unlinked temporary file in
    the destination folder and the bones are converted one at a time (``expressions="preset"`` still
    computes the preset weights of the whole clip at once, ~0.1 kB per frame); the bytes are those of
    pygltflib's ``save_to_bytes`` on :func:`build`'s glTF (tested).
    """
    _check(clip, expressions)
    with spooled_glb(_new_gltf(clip), path) as b:
        _fill(b, clip, expressions)
    return Path(path)
