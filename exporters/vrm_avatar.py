"""The default VRM 1.0 avatar (``.vrm``): the GLB exporter's mannequin with the scanned ARKit head as a VRM humanoid.

A ``.vrm`` file is a binary glTF 2.0 file with the root extension ``VRMC_vrm`` (specification:
``vrm-c/vrm-specification``, ``specification/VRMC_vrm-1.0/``; cited "VRM <file>"). Any VRM 1.0 tool can load
it (three-vrm's ``VRMLoaderPlugin``, UniVRM, VRM4U, VSeeFace ...), and a ``.vrma`` from
:mod:`exporters.vrma` plays on it. It is generated on demand, not shipped.

What the file holds:

* **Mesh and skeleton**: exactly those of :mod:`exporters.glb` (:func:`exporters.glb.add_avatar`): the
  ``mannequin-x`` wooden mannequin skinned to the 55 SMPL-X joints and the ICT-FaceKit head (MIT; see
  :mod:`exporters.build_head`) with the 52 ARKit morph targets (``mesh.extras.targetNames``, VRM README
  "targetNames"), its eyeballs skinned to the eye joints. No animation (VRM README "Unused Items").
* **Rest pose** (VRM ``tpose.md``): the VRM T-pose: standing on ``y = 0`` facing +Z, arms along ±X, the
  avatar's left on +X, palms down, thumbs between ±X and +Z; every node has identity rotation and unit
  scale (translations only), so the normalized and raw humanoid bones coincide. One deviation, from the
  mannequin's relaxed hand: the ring and little fingers fan out in the ground plane (about 16 and 33
  degrees from ±X) where the spec wants all four fingers along ±X.
* **Humanoid** (VRM ``humanoid.md``): the 55 joints through :data:`motion.conventions.SMPLX_TO_VRM`
  (``hips`` ... ``rightThumbDistal``, ``jaw``, ``leftEye``/``rightEye``); SMPL-X's parents are VRM's.
* **Meta** (VRM ``meta.md``): ``licenseUrl`` is the VRM Public License 1.0 URL (the spec requires it and
  three-vrm rejects any other); the usage flags grant everything (``avatarPermission: everyone``,
  ``commercialUsage: corporation``, redistribution and modification allowed) and ``otherLicenseUrl`` is
  Apache-2.0, the licence of the ``mannequin-x`` mesh and of this project; the head is ICT-FaceKit's (MIT),
  both named in ``thirdPartyLicenses`` and ``copyrightInformation``; both ask for attribution, hence
  ``creditNotation: required``.
* **Expressions** (VRM ``expressions.md``), all ``morphTargetBinds`` on the face node. **Binding scheme**:
  the face is the 52 ARKit names (:data:`motion.conventions.ARKIT_NAMES`, lowerCamel, "perfect sync") as
  custom expressions, each bound to its own morph target at weight 1, so driving them (our viewer, a
  ``.vrma`` from :mod:`exporters.vrma`, the default ``expressions="arkit"``) puts each ARKit weight in [0, 1]
  on exactly one morph. For apps that drive presets only there are the presets ``aa ih ou ee oh blink
  blinkLeft blinkRight happy angry sad surprised`` from :data:`motion.conventions.ARKIT_TO_VRM_EXPRESSION` (the
  table's positive coefficients divided by their largest, so that a preset at weight 1 shows the ARKit
  shape it was read from; negative coefficients bind nothing). They bind the same morphs as the ARKit
  expressions, and the VRM runtime adds expressions: **drive one set, never both** (our exporters and
  viewer never do). Within the preset set some morphs are bound by several presets (``jawOpen`` by aa, ee
  and oh; the lids by blink and blinkLeft/Right, which :func:`motion.conventions.vrm_expression_weights` splits so that
  they add up to the ARKit weight): a preset-only ``.vrma`` of the sample speech peaks at 0.82 on this
  avatar, but presets driven high together could pass 1. There are no ``look*`` presets: gaze turns the
  eyeballs (LookAt ``bone``).
* **LookAt** (VRM ``lookAt.md``): ``type: bone``: the eyeballs are meshes skinned to ``leftEye``/``rightEye``;
  ``offsetFromHeadBone`` = midpoint of the eye joints minus the head joint; every range map is the identity
  up to :data:`GAZE_LIMIT_DEG` (``inputMaxValue = outputScale``), so an eye turns by the gaze angle the
  clip gives its eye joint, as in the GLB.
* **FirstPerson** (VRM ``firstPerson.md``): the face is ``thirdPersonOnly``, the body ``auto``.
"""
from __future__ import annotations

import os
from pathlib import Path

import pygltflib as g

from motion.conventions import (
    ARKIT_INDEX, ARKIT_NAMES, JOINT_INDEX, SMPLX_JOINT_NAMES, SMPLX_TO_VRM, rest_joint_positions,
)

from . import glb
from ._gltf import Builder, save_glb
from motion.conventions import ARKIT_TO_VRM_EXPRESSION

EXTENSION = "VRMC_vrm"
SPEC_VERSION = "1.0"
#: VRM meta.md: "licenseUrl ... accepts https://vrm.dev/licenses/1.0/ in VRM1.0".
VRM_LICENSE_URL = "https://vrm.dev/licenses/1.0/"
APACHE_2_URL = "https://www.apache.org/licenses/LICENSE-2.0"

META = {
    "name": "ChatAnyone mannequin",
    "version": "1.0",
    "authors": ["ChatAnyone Bridge"],
    "copyrightInformation": "Head: ICT-FaceKit, (c) 2020 USC Institute for Creative Technologies (MIT). "
                            "Body mesh: mannequin-x wooden mannequin, Andrea Boscolo Camiletto (Apache-2.0). "
                            "Rig, tongueOut and colours: ChatAnyone Bridge (Apache-2.0).",
    "references": ["https://github.com/ICT-VGL/ICT-FaceKit", "https://pypi.org/project/mannequin-x/"],
    "thirdPartyLicenses": "Head mesh and ARKit shapes: ICT-FaceKit FaceXModel, (c) 2020 USC Institute for Creative "
                          "Technologies, MIT License, https://github.com/ICT-VGL/ICT-FaceKit/blob/master/LICENSE. "
                          "Body mesh and skin weights: mannequin-x 0.3 'wooden' mannequin "
                          "(assets/wooden.npz), Apache License 2.0, " + APACHE_2_URL,
    "licenseUrl": VRM_LICENSE_URL,
    "avatarPermission": "everyone",
    "allowExcessivelyViolentUsage": True,
    "allowExcessivelySexualUsage": True,
    "commercialUsage": "corporation",
    "allowPoliticalOrReligiousUsage": True,
    "allowAntisocialOrHateUsage": True,
    "creditNotation": "required",
    "allowRedistribution": True,
    "modification": "allowModificationRedistribution",
    "otherLicenseUrl": APACHE_2_URL,
}

#: Largest gaze angle (degrees) the eyes follow; the range maps are the identity up to it.
GAZE_LIMIT_DEG = 40.0


def preset_binds() -> dict[str, dict[str, float]]:
    """Preset expression -> ``{ARKit name: morph weight in (0, 1]}`` (see the module docstring)."""
    out: dict[str, dict[str, float]] = {}
    for name, mix in ARKIT_TO_VRM_EXPRESSION.items():
        top = max(c for c in mix.values() if c > 0)
        out[name] = {k: round(c / top, 6) for k, c in mix.items() if c > 0}
    return out


def _expression(face_node: int, binds: dict[str, float]) -> dict:
    return {"morphTargetBinds": [{"node": face_node, "index": ARKIT_INDEX[k], "weight": float(w)}
                                 for k, w in binds.items()],
            "isBinary": False, "overrideBlink": "none", "overrideLookAt": "none", "overrideMouth": "none"}


def _range_map() -> dict:
    return {"inputMaxValue": GAZE_LIMIT_DEG, "outputScale": GAZE_LIMIT_DEG}


def build() -> g.GLTF2:
    """The in-memory VRM 1.0 avatar (:class:`pygltflib.GLTF2`, binary blob attached)."""
    gltf = g.GLTF2(asset=g.Asset(version="2.0", generator="ChatAnyone Bridge exporters.vrm_avatar"))
    b = Builder(gltf)
    avatar = glb.add_avatar(b, list(SMPLX_JOINT_NAMES))
    b.finish()

    P = rest_joint_positions()
    eyes = P[[JOINT_INDEX["left_eye_smplhf"], JOINT_INDEX["right_eye_smplhf"]]].mean(0)
    offset = [round(float(v), 6) for v in eyes - P[JOINT_INDEX["head"]]]
    face = avatar.face
    ext = {
        "specVersion": SPEC_VERSION,
        "meta": dict(META),
        "humanoid": {"humanBones": {SMPLX_TO_VRM[n]: {"node": avatar.joints[j]}
                                    for j, n in enumerate(SMPLX_JOINT_NAMES)}},
        "firstPerson": {"meshAnnotations": [{"node": avatar.body, "type": "auto"},
                                            {"node": face, "type": "thirdPersonOnly"}]},
        "lookAt": {
            "type": "bone",
            "offsetFromHeadBone": offset,
            "rangeMapHorizontalInner": _range_map(),
            "rangeMapHorizontalOuter": _range_map(),
            "rangeMapVerticalDown": _range_map(),
            "rangeMapVerticalUp": _range_map(),
        },
        "expressions": {
            "preset": {name: _expression(face, binds) for name, binds in preset_binds().items()},
            "custom": {name: _expression(face, {name: 1.0}) for name in ARKIT_NAMES},
        },
    }
    gltf.extensionsUsed = [EXTENSION]
    gltf.extensions = {EXTENSION: ext}
    return gltf


def vrm_avatar_bytes() -> bytes:
    """The avatar as ``.vrm`` file bytes (about 6.6 MB), e.g. to serve it over HTTP."""
    return b"".join(build().save_to_bytes())


def write_vrm_avatar(path: str | os.PathLike) -> Path:
    """Write the default VRM 1.0 avatar (see the module docstring) to ``path`` (``.vrm``).

    Returns:
        The written path.
    Raises:
        ChatAnyoneError: the folder is missing or not writable, or ``path`` is a folder. Written atomically
            (:func:`motion.fileio.atomic_output`): on failure nothing is left at ``path``.
    """
    return save_glb(build(), path)
