"""Rig conventions: every name table, bone map and axis flip of the project lives here, once.

Sources
-------
* ARKit blendshapes: Apple ``ARFaceAnchor.BlendShapeLocation``, in the order Live Link Face sends them
  (the order of FACEGOOD's ``blendshape2ARKit.xlsx`` too). Names are lowerCamel; weights in [0, 1].
* SMPL-X joints and parents: ``smplx`` package (``smplx.joint_names.JOINT_NAMES[:55]``) and the SMPL-X
  kinematic tree (``kintree_table`` of SMPLX_NEUTRAL; Pavlakos et al. 2019).
* Rest pose: the skeleton of ``mannequin-x``'s skinned wooden mannequin (Apache-2.0, SMPL-X proportions);
  it omits jaw and eyes, whose offsets below are approximations.
* Unity ``HumanBodyBones`` (Unity scripting reference), VRM 1.0 humanoid bones
  (``VRMC_vrm-1.0/humanoid.md``), Mixamo rig names (``mixamorig:`` prefix).
* Axes: ours are right-handed, +Y up, avatar facing +Z, metres (SMPL-X and glTF). Unity is left-handed
  (+Y up, +Z forward): rotation ``(x, -y, -z, w)``, position ``(-x, y, z)``. Unreal (from Unity) is
  left-handed Z-up in centimetres: rotation ``(-x, z, y, w)``, position ``(-x, z, y) * 100``.
"""
from __future__ import annotations

import functools
from importlib import resources

import numpy as np

# --------------------------------------------------------------------------------------------------
# Rates
# --------------------------------------------------------------------------------------------------
#: The model's frame rate (frames per second): every stage runs at it and every dataset adapter and
#: ``prepare`` resample to it; senders and exporters may resample its output (DESIGN.md, "Frame rate").
MODEL_FPS = 30.0
#: Audio sample rate (Hz) of the model's input, the datasets' and ``prepare``'s audio and the bridge's PCM16
#: chunks: mono float32 (or int16 on the wire) at 16 kHz.
SAMPLE_RATE = 16000

# --------------------------------------------------------------------------------------------------
# Face: ARKit-52, Live Link order
# --------------------------------------------------------------------------------------------------
ARKIT_NAMES: tuple[str, ...] = (
    "eyeBlinkLeft", "eyeLookDownLeft", "eyeLookInLeft", "eyeLookOutLeft", "eyeLookUpLeft",
    "eyeSquintLeft", "eyeWideLeft",
    "eyeBlinkRight", "eyeLookDownRight", "eyeLookInRight", "eyeLookOutRight", "eyeLookUpRight",
    "eyeSquintRight", "eyeWideRight",
    "jawForward", "jawLeft", "jawRight", "jawOpen",
    "mouthClose", "mouthFunnel", "mouthPucker", "mouthLeft", "mouthRight",
    "mouthSmileLeft", "mouthSmileRight", "mouthFrownLeft", "mouthFrownRight",
    "mouthDimpleLeft", "mouthDimpleRight", "mouthStretchLeft", "mouthStretchRight",
    "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper",
    "mouthPressLeft", "mouthPressRight", "mouthLowerDownLeft", "mouthLowerDownRight",
    "mouthUpperUpLeft", "mouthUpperUpRight",
    "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight",
    "cheekPuff", "cheekSquintLeft", "cheekSquintRight", "noseSneerLeft", "noseSneerRight",
    "tongueOut",
)
ARKIT_INDEX: dict[str, int] = {n: i for i, n in enumerate(ARKIT_NAMES)}
NUM_ARKIT = 52

#: Channel groups (indices into ARKIT_NAMES).
ARKIT_MOUTH = tuple(range(14, 41))          # jawForward .. mouthUpperUpRight (27 channels)
ARKIT_EYES = tuple(range(0, 14))            # blink, look, squint, wide
ARKIT_BROWS = tuple(range(41, 46))
ARKIT_EYE_LOOK = tuple(i for i, n in enumerate(ARKIT_NAMES) if n.startswith("eyeLook"))

#: ARKit-52 -> VRM 1.0 preset expressions: ``weight(preset) = clip(sum(coef * face[arkit]), 0, 1)`` (the
#: blinks split as in :func:`vrm_expression_weights`). VRM visemes are the Japanese vowels: aa = あ (open,
#: unrounded), ih = い (spread, nearly closed), ou = う (rounded, small), ee = え (spread, half open), oh = お
#: (rounded, open). Negative coefficients keep the open vowel from firing on rounded shapes. ``relaxed`` and
#: ``neutral`` have no ARKit evidence and are not written; ``lookUp/Down/Left/Right`` are forbidden in VRMA
#: (gaze is LookAt). One home for the VRMA exporter, the VRM avatar, the VMC sender (VRM 0.x names via the
#: VMC spec's VRM0/VRM1 table) and the viewer.
ARKIT_TO_VRM_EXPRESSION: dict[str, dict[str, float]] = {
    "aa": {"jawOpen": 1.0, "mouthFunnel": -0.5, "mouthPucker": -0.5},
    "ih": {"mouthStretchLeft": 0.5, "mouthStretchRight": 0.5, "mouthSmileLeft": 0.25, "mouthSmileRight": 0.25},
    "ou": {"mouthPucker": 1.0, "mouthFunnel": 0.3},
    "ee": {"mouthSmileLeft": 0.35, "mouthSmileRight": 0.35, "mouthStretchLeft": 0.25, "mouthStretchRight": 0.25,
           "jawOpen": 0.3},
    "oh": {"mouthFunnel": 0.6, "jawOpen": 0.4},
    "blink": {"eyeBlinkLeft": 0.5, "eyeBlinkRight": 0.5},
    "blinkLeft": {"eyeBlinkLeft": 1.0},           # both: the face's own left, as ARKit
    "blinkRight": {"eyeBlinkRight": 1.0},
    "happy": {"mouthSmileLeft": 0.5, "mouthSmileRight": 0.5},
    "angry": {"browDownLeft": 0.4, "browDownRight": 0.4, "noseSneerLeft": 0.1, "noseSneerRight": 0.1},
    "sad": {"mouthFrownLeft": 0.3, "mouthFrownRight": 0.3, "browInnerUp": 0.4},
    "surprised": {"eyeWideLeft": 0.25, "eyeWideRight": 0.25, "browOuterUpLeft": 0.25, "browOuterUpRight": 0.25},
}


def arkit_mix_matrix(table: dict[str, dict[str, float]]) -> tuple[list[str], np.ndarray]:
    """``(names, M [52, P] float64)`` of a table ``{name: {arkit name: coefficient}}``: the weights are
    ``clip(face @ M, 0, 1)``.

    Raises:
        KeyError: a name that is not an ARKit blendshape."""
    names = list(table)
    m = np.zeros((NUM_ARKIT, len(names)))
    for p, mix in enumerate(table.values()):
        for arkit, coef in mix.items():
            m[ARKIT_INDEX[arkit], p] = coef
    return names, m


def vrm_expression_matrix() -> tuple[list[str], np.ndarray]:
    """``(preset names, M [52, P] float64)`` of :data:`ARKIT_TO_VRM_EXPRESSION`: ``clip(face @ M, 0, 1)``."""
    return arkit_mix_matrix(ARKIT_TO_VRM_EXPRESSION)


def split_blinks(face: np.ndarray, weights: np.ndarray, names: list[str],
                 keys: tuple[str, str, str] = ("blink", "blinkLeft", "blinkRight")) -> None:
    """Overwrite the blink presets of ``weights [..., P]`` (columns ``names``) in place from ARKit ``face
    [..., 52]``: ``keys[0]`` (both lids) = ``min(eyeBlinkLeft, eyeBlinkRight)``, ``keys[1]``/``keys[2]`` the rest
    of each lid (``eyeBlinkLeft - both``), all clipped to [0, 1]. Avatars often bind the both-lids preset and a
    one-lid preset to the same lid, and the runtime adds them: this keeps each lid's total at its ARKit weight
    (a half blink of both eyes is ``blink 0.5`` alone, not ``blink 0.5 + blinkLeft 0.5``). VRM 1.0 keys are the
    default; VRM 0.x sends ``("Blink", "Blink_L", "Blink_R")``."""
    left, right = face[..., ARKIT_INDEX["eyeBlinkLeft"]], face[..., ARKIT_INDEX["eyeBlinkRight"]]
    both = np.clip(np.minimum(left, right), 0, 1)
    weights[..., names.index(keys[0])] = both
    weights[..., names.index(keys[1])] = np.clip(left - both, 0, 1)
    weights[..., names.index(keys[2])] = np.clip(right - both, 0, 1)


def vrm_expression_weights(face: np.ndarray) -> dict[str, np.ndarray]:
    """ARKit weights ``[T, 52]`` -> ``{VRM 1.0 preset: [T] float32 weight in [0, 1]}``: the table, except the
    blinks (:func:`split_blinks`): ``blink = min(eyeBlinkLeft, eyeBlinkRight)``, ``blinkLeft = eyeBlinkLeft -
    blink``, ``blinkRight = eyeBlinkRight - blink``."""
    names, m = vrm_expression_matrix()
    face = np.asarray(face, np.float64)
    w = np.clip(face @ m, 0.0, 1.0)
    split_blinks(face, w, names)
    return {n: w[:, k].astype(np.float32) for k, n in enumerate(names)}


#: VRM 0.x preset -> VRM 1.0 preset (VMC spec, "VRM0 / VRM1" table), for presets with an ARKit mapping.
#: ``Fun`` (VRM1 ``relaxed``) and ``Neutral`` have no ARKit evidence and are not listed.
VRM0_FROM_VRM1: dict[str, str] = {
    "A": "aa", "I": "ih", "U": "ou", "E": "ee", "O": "oh",
    "Blink": "blink", "Blink_L": "blinkLeft", "Blink_R": "blinkRight",
    "Joy": "happy", "Angry": "angry", "Sorrow": "sad",
}
#: VRM 0.x gaze presets from ARKit (the avatar's own left/right, as UniVRM's ``VRMLookAtBlendShapeApplyer``:
#: yaw < 0 = ``LookLeft``; ARKit's "In"/"Out" are per eye), for avatars whose LookAt is of blendshape type.
VRM0_LOOK_FROM_ARKIT: dict[str, dict[str, float]] = {
    "LookUp": {"eyeLookUpLeft": 0.5, "eyeLookUpRight": 0.5},
    "LookDown": {"eyeLookDownLeft": 0.5, "eyeLookDownRight": 0.5},
    "LookLeft": {"eyeLookOutLeft": 0.5, "eyeLookInRight": 0.5},
    "LookRight": {"eyeLookInLeft": 0.5, "eyeLookOutRight": 0.5},
}
#: VRM 0.x preset -> ARKit mix: ``weight = clip(sum(coef * face[arkit]), 0, 1)`` (blinks: :func:`split_blinks`
#: with ``("Blink", "Blink_L", "Blink_R")``): the VRM 1.0 table through :data:`VRM0_FROM_VRM1`, so a VRM0
#: avatar fed by VMC and a VRM1 avatar playing our ``.vrma`` make the same faces, plus the gaze presets.
VRM0_PRESETS: dict[str, dict[str, float]] = {
    **{v0: ARKIT_TO_VRM_EXPRESSION[v1] for v0, v1 in VRM0_FROM_VRM1.items()},
    **VRM0_LOOK_FROM_ARKIT,
}


def vrm0_preset_matrix() -> tuple[list[str], np.ndarray]:
    """``(VRM 0.x preset names, M [52, P] float64)`` of :data:`VRM0_PRESETS`: ``clip(face @ M, 0, 1)``."""
    return arkit_mix_matrix(VRM0_PRESETS)


def _lr_swap_name(name: str) -> str:
    for a, b in (("Left", "Right"), ("Right", "Left")):
        if name.endswith(a):
            return name[: -len(a)] + b
    return name


def _arkit_mirror_perm() -> tuple[int, ...]:
    perm = []
    for n in ARKIT_NAMES:
        # jawLeft/mouthLeft name a direction on the face's own left: a mirror swaps them too.
        perm.append(ARKIT_INDEX[_lr_swap_name(n)])
    return tuple(perm)


#: ``face[:, ARKIT_MIRROR]`` is the face seen in a mirror (left/right channels swapped).
ARKIT_MIRROR: tuple[int, ...] = _arkit_mirror_perm()


def arkit_upper_camel(name: str) -> str:
    """``jawOpen`` -> ``JawOpen`` (VMC "perfect sync" and Live Link CSV headers)."""
    return name[0].upper() + name[1:]


# --------------------------------------------------------------------------------------------------
# Skeleton: SMPL-X 55 joints
# --------------------------------------------------------------------------------------------------
_FINGERS = ("index", "middle", "pinky", "ring", "thumb")  # MANO order
SMPLX_JOINT_NAMES: tuple[str, ...] = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
    "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck",
    "left_collar", "right_collar", "head", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "jaw",
    "left_eye_smplhf", "right_eye_smplhf",
) + tuple(f"{side}_{f}{k}" for side in ("left", "right") for f in _FINGERS for k in (1, 2, 3))
NUM_JOINTS = 55
JOINT_INDEX: dict[str, int] = {n: i for i, n in enumerate(SMPLX_JOINT_NAMES)}

SMPLX_PARENTS: tuple[int, ...] = (
    -1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 15, 15, 15,
    20, 25, 26, 20, 28, 29, 20, 31, 32, 20, 34, 35, 20, 37, 38,
    21, 40, 41, 21, 43, 44, 21, 46, 47, 21, 49, 50, 21, 52, 53,
)

def children_of(parents) -> list[list[int]]:
    """Child indices of each joint, from a parents array (``-1`` for the root)."""
    kids: list[list[int]] = [[] for _ in parents]
    for j, p in enumerate(parents):
        if p >= 0:
            kids[p].append(j)
    return kids


LEFT_HAND_JOINTS = tuple(range(25, 40))
RIGHT_HAND_JOINTS = tuple(range(40, 55))
HAND_JOINTS = LEFT_HAND_JOINTS + RIGHT_HAND_JOINTS
#: Upper-body joints driven by the body stage (spine, collars, shoulders, elbows, wrists).
UPPER_BODY_JOINTS = tuple(JOINT_INDEX[n] for n in (
    "spine1", "spine2", "spine3", "left_collar", "right_collar", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist"))
#: Joints driven by the face stage (head motion).
HEAD_JOINTS = (JOINT_INDEX["neck"], JOINT_INDEX["head"])
EYE_JOINTS = (JOINT_INDEX["left_eye_smplhf"], JOINT_INDEX["right_eye_smplhf"])
#: Every joint the body stage writes.
BODY_STAGE_JOINTS = UPPER_BODY_JOINTS + HAND_JOINTS


def _joint_mirror_perm() -> tuple[int, ...]:
    out = []
    for n in SMPLX_JOINT_NAMES:
        m = n.replace("left", "#").replace("right", "left").replace("#", "right")
        out.append(JOINT_INDEX[m])
    return tuple(out)


#: Joint index of each joint's mirror twin (left <-> right).
JOINT_MIRROR: tuple[int, ...] = _joint_mirror_perm()

# Approximate parent-relative offsets (metres) of joints mannequin-x omits: the jaw sits below and in
# front of the head joint, the eyes in front of and above it.
_EXTRA_OFFSETS = {
    "jaw": (0.0, -0.015, 0.045),
    "left_eye_smplhf": (0.031, 0.065, 0.085),
    "right_eye_smplhf": (-0.031, 0.065, 0.085),
}


@functools.lru_cache(maxsize=1)
def _wooden_skeleton() -> tuple[np.ndarray, float]:
    with resources.files("mannequin").joinpath("assets/wooden.npz").open("rb") as f:
        z = np.load(f)
        joints = z["skin_source_joint_positions"].astype(np.float64)
        floor = float(z["vertices"][:, 1].min())
    return joints, floor


def floor_lift() -> float:
    """Metres added to the mannequin's Y so that its soles touch ``y = 0`` (the rest pose stands on the floor)."""
    return -_wooden_skeleton()[1]


@functools.lru_cache(maxsize=1)
def rest_joint_positions() -> np.ndarray:
    """Rest pose (T-pose, flat hands) joint positions of our reference body, standing on ``y = 0``.

    Returns:
        ``[55, 3]`` float32, metres, +Y up, facing +Z, in :data:`SMPLX_JOINT_NAMES` order.
    Source: the skeleton the ``mannequin-x`` wooden mannequin is skinned to (``assets/wooden.npz``,
    ``skin_source_joint_positions``, Apache-2.0): SMPL-X proportions, left/right symmetric, 1.73 m tall.
    Its 54 rows are SMPL-X without jaw and eyes plus zero-length ``L_Hand``/``R_Hand`` after the wrists;
    jaw and eyes come from ``_EXTRA_OFFSETS``. The GLB mesh, the BVH offsets and forward kinematics all use
    this one skeleton.
    """
    src, _ = _wooden_skeleton()
    out = np.zeros((NUM_JOINTS, 3))
    out[:22] = src[:22]           # pelvis .. right_wrist
    out[25:] = src[24:54]         # L_Index1 .. R_Thumb3 (after L_Hand, R_Hand)
    head = out[JOINT_INDEX["head"]]
    for name, off in _EXTRA_OFFSETS.items():
        out[JOINT_INDEX[name]] = head + np.asarray(off)
    out[:, 1] += floor_lift()
    return out.astype(np.float32)


def rest_offsets() -> np.ndarray:
    """Parent-relative rest offsets ``[55, 3]`` float32 (metres); the root's is its position."""
    pos = rest_joint_positions()
    par = np.asarray(SMPLX_PARENTS)
    off = pos.copy()
    off[1:] = pos[1:] - pos[par[1:]]
    return off


# --------------------------------------------------------------------------------------------------
# Bone maps (None: the target rig has no such bone)
# --------------------------------------------------------------------------------------------------
_UNITY_FINGER = {"index": "Index", "middle": "Middle", "pinky": "Little", "ring": "Ring", "thumb": "Thumb"}
_UNITY_SEG = ("Proximal", "Intermediate", "Distal")
_VRM_THUMB_SEG = ("Metacarpal", "Proximal", "Distal")  # VRM 1.0 renamed the thumb segments
_MIXAMO_FINGER = {"index": "Index", "middle": "Middle", "pinky": "Pinky", "ring": "Ring", "thumb": "Thumb"}

_BODY_UNITY = {
    "pelvis": "Hips", "left_hip": "LeftUpperLeg", "right_hip": "RightUpperLeg", "spine1": "Spine",
    "left_knee": "LeftLowerLeg", "right_knee": "RightLowerLeg", "spine2": "Chest",
    "left_ankle": "LeftFoot", "right_ankle": "RightFoot", "spine3": "UpperChest",
    "left_foot": "LeftToes", "right_foot": "RightToes", "neck": "Neck",
    "left_collar": "LeftShoulder", "right_collar": "RightShoulder", "head": "Head",
    "left_shoulder": "LeftUpperArm", "right_shoulder": "RightUpperArm",
    "left_elbow": "LeftLowerArm", "right_elbow": "RightLowerArm",
    "left_wrist": "LeftHand", "right_wrist": "RightHand", "jaw": "Jaw",
    "left_eye_smplhf": "LeftEye", "right_eye_smplhf": "RightEye",
}
_BODY_MIXAMO = {
    "pelvis": "Hips", "left_hip": "LeftUpLeg", "right_hip": "RightUpLeg", "spine1": "Spine",
    "left_knee": "LeftLeg", "right_knee": "RightLeg", "spine2": "Spine1",
    "left_ankle": "LeftFoot", "right_ankle": "RightFoot", "spine3": "Spine2",
    "left_foot": "LeftToeBase", "right_foot": "RightToeBase", "neck": "Neck",
    "left_collar": "LeftShoulder", "right_collar": "RightShoulder", "head": "Head",
    "left_shoulder": "LeftArm", "right_shoulder": "RightArm",
    "left_elbow": "LeftForeArm", "right_elbow": "RightForeArm",
    "left_wrist": "LeftHand", "right_wrist": "RightHand", "jaw": None,
    "left_eye_smplhf": "LeftEye", "right_eye_smplhf": "RightEye",
}


def _lower_camel(s: str) -> str:
    return s[0].lower() + s[1:]


def _build_maps():
    unity, vrm, mixamo = {}, {}, {}
    for n in SMPLX_JOINT_NAMES:
        if n in _BODY_UNITY:
            unity[n] = _BODY_UNITY[n]
            vrm[n] = _lower_camel(_BODY_UNITY[n])
            m = _BODY_MIXAMO[n]
            mixamo[n] = None if m is None else "mixamorig:" + m
            continue
        side, rest = n.split("_")
        finger, k = rest[:-1], int(rest[-1])
        Side = side.capitalize()
        unity[n] = f"{Side}{_UNITY_FINGER[finger]}{_UNITY_SEG[k - 1]}"
        seg = _VRM_THUMB_SEG if finger == "thumb" else _UNITY_SEG
        vrm[n] = f"{side}{_UNITY_FINGER[finger]}{seg[k - 1]}"
        mixamo[n] = f"mixamorig:{Side}Hand{_MIXAMO_FINGER[finger]}{k}"
    return unity, vrm, mixamo


#: SMPL-X joint -> Unity ``HumanBodyBones`` name (VMC ``/VMC/Ext/Bone/Pos``).
SMPLX_TO_UNITY: dict[str, str]
#: SMPL-X joint -> VRM 1.0 humanoid bone name (three-vrm, ``.vrma``).
SMPLX_TO_VRM: dict[str, str]
#: SMPL-X joint -> Mixamo bone name (or None).
SMPLX_TO_MIXAMO: dict[str, str | None]
SMPLX_TO_UNITY, SMPLX_TO_VRM, SMPLX_TO_MIXAMO = _build_maps()


# --------------------------------------------------------------------------------------------------
# Axis conversions (the only place they exist)
# --------------------------------------------------------------------------------------------------
def quat_to_unity(q: np.ndarray) -> np.ndarray:
    """Our quaternion(s) ``[..., 4]`` (x, y, z, w) -> Unity's: ``(x, -y, -z, w)``."""
    q = np.asarray(q, dtype=np.float32)
    return q * np.array([1, -1, -1, 1], dtype=np.float32)


def position_to_unity(p: np.ndarray) -> np.ndarray:
    """Our position(s) ``[..., 3]`` metres -> Unity metres: ``(-x, y, z)``."""
    p = np.asarray(p, dtype=np.float32)
    return p * np.array([-1, 1, 1], dtype=np.float32)


def unity_quat_to_unreal(q: np.ndarray) -> np.ndarray:
    """Unity quaternion(s) ``[..., 4]`` -> Unreal: ``(-x, z, y, w)``."""
    q = np.asarray(q, dtype=np.float32)
    return np.stack([-q[..., 0], q[..., 2], q[..., 1], q[..., 3]], axis=-1)


def unity_position_to_unreal(p: np.ndarray) -> np.ndarray:
    """Unity position(s) ``[..., 3]`` metres -> Unreal centimetres: ``(-x, z, y) * 100``."""
    p = np.asarray(p, dtype=np.float32)
    return np.stack([-p[..., 0], p[..., 2], p[..., 1]], axis=-1) * 100.0


# --------------------------------------------------------------------------------------------------
# Live Link Face head and eye angles
# --------------------------------------------------------------------------------------------------
#: Share of the Live Link head rotation written into the neck joint (of its rotation angle, about the same
#: axis); the head joint gets the rest (:func:`split_neck_head`).
NECK_SHARE = 0.4


def livelink_angles_to_quat(yaw: np.ndarray, pitch: np.ndarray, roll: np.ndarray) -> np.ndarray:
    """Live Link yaw/pitch/roll (radians) -> our local rotation quaternions ``[..., 4]`` float32 xyzw.

    Axis mapping (ours: +Y up, facing +Z, +X = the face's left): Live Link's angles behave like a
    left-handed frame with X mirrored (as Unity's), so ``yaw_ours = -yaw`` about +Y (positive = turn to the
    face's left), ``pitch_ours = +pitch`` about +X (positive = look down), ``roll_ours = -roll`` about +Z.
    Yaw and pitch signs were measured on a real capture's eye columns against its eyeLook* blendshapes
    (:func:`motion.livelink.read_livelink_csv`); the roll sign follows from the same mirror and is not
    verified against data. Composition: intrinsic Y, then X, then Z.
    """
    from scipy.spatial.transform import Rotation

    e = np.stack([-np.asarray(yaw, np.float64), np.asarray(pitch, np.float64),
                  -np.asarray(roll, np.float64)], axis=-1)
    return Rotation.from_euler("YXZ", e.reshape(-1, 3)).as_quat().reshape(*e.shape[:-1], 4).astype(np.float32)


def quat_to_livelink_angles(q: np.ndarray) -> np.ndarray:
    """Our local rotation quaternions ``[..., 4]`` (xyzw) -> Live Link ``(yaw, pitch, roll)`` ``[..., 3]``
    float64 radians: the exact inverse of :func:`livelink_angles_to_quat` for pitch in [-pi/2, pi/2]."""
    from scipy.spatial.transform import Rotation

    q = np.asarray(q, np.float64)
    e = Rotation.from_quat(q.reshape(-1, 4)).as_euler("YXZ").reshape(*q.shape[:-1], 3)
    return np.stack([-e[..., 0], e[..., 1], -e[..., 2]], axis=-1)


def split_neck_head(head: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Live Link head angles -> ``(neck [T, 4], head [T, 4])`` float32 local quaternions xyzw whose product
    ``R_neck * R_head`` is exactly the Live Link head rotation (:func:`livelink_angles_to_quat`).

    ``head [T, 3]``: (yaw, pitch, roll) radians. The neck takes :data:`NECK_SHARE` of the rotation along
    its own axis (``R_neck = exp(NECK_SHARE * log R)``, the rotation vector scaled, i.e. slerp from identity;
    as :func:`motion.prepare` splits tracked heads) and the head the rest (``R_head = R_neck^-1 * R``), so
    :func:`livelink_head_eye_angles`, which composes the two, reads the same angles back
    (a linear split of the Euler angles drifted up to 7 degrees at +-20 degree turns).
    """
    from scipy.spatial.transform import Rotation

    h = np.asarray(head, np.float64).reshape(-1, 3)
    full = Rotation.from_quat(livelink_angles_to_quat(*h.T).astype(np.float64))
    neck = Rotation.from_rotvec(NECK_SHARE * full.as_rotvec())
    rest = neck.inv() * full
    return neck.as_quat().astype(np.float32), rest.as_quat().astype(np.float32)


def apply_livelink_head_eyes(rotations: np.ndarray, head: np.ndarray | None = None,
                             eyes: np.ndarray | None = None) -> None:
    """Write Live Link angles into ``rotations [T, 55, 4]`` in place.

    ``head [T, 3]`` (yaw, pitch, roll radians) is split exactly between neck (:data:`NECK_SHARE`) and head
    (:func:`split_neck_head`); ``eyes [T, 6]`` (left yaw, pitch, roll, right yaw, pitch, roll) go into the
    two eye joints.
    """
    if head is not None:
        neck, rest = split_neck_head(head)
        rotations[:, JOINT_INDEX["neck"]] = neck
        rotations[:, JOINT_INDEX["head"]] = rest
    if eyes is not None:
        e = np.asarray(eyes, np.float64)
        rotations[:, JOINT_INDEX["left_eye_smplhf"]] = livelink_angles_to_quat(*e[:, 0:3].T)
        rotations[:, JOINT_INDEX["right_eye_smplhf"]] = livelink_angles_to_quat(*e[:, 3:6].T)


def livelink_head_eye_angles(rotations: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The inverse of :func:`apply_livelink_head_eyes`: ``rotations [T, 55, 4]`` (xyzw) -> ``(head [T, 3],
    eyes [T, 6])`` float64 Live Link angles (radians; ``HeadYaw, HeadPitch, HeadRoll`` and ``LeftEyeYaw ..
    RightEyeRoll``). The head angles are those of the neck and head joints composed (``R_neck * R_head``: the
    head relative to the upper chest), the eye angles those of ``left_eye_smplhf``/``right_eye_smplhf``
    (:func:`quat_to_livelink_angles`). Only those four joints are read, frame by frame in float64, so a slice
    of frames gives the same numbers as the whole clip. The Live Link CSV exporter and UDP sender both call it.
    """
    from scipy.spatial.transform import Rotation

    def joint(name):
        return np.asarray(rotations[:, JOINT_INDEX[name]], np.float64)
    head = Rotation.from_quat(joint("neck")) * Rotation.from_quat(joint("head"))
    eyes = np.concatenate([quat_to_livelink_angles(joint("left_eye_smplhf")),
                           quat_to_livelink_angles(joint("right_eye_smplhf"))], axis=1)
    return quat_to_livelink_angles(head.as_quat()), eyes


def quat_to_unreal(q: np.ndarray) -> np.ndarray:
    """Our quaternion(s) -> Unreal, through Unity."""
    return unity_quat_to_unreal(quat_to_unity(q))


def position_to_unreal(p: np.ndarray) -> np.ndarray:
    """Our position(s) (metres) -> Unreal (centimetres), through Unity."""
    return unity_position_to_unreal(position_to_unity(p))
