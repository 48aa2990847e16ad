"""Pin each convention table against its source."""
import csv

import numpy as np
from scipy.spatial.transform import Rotation as R

from motion import conventions as cv
from tests.conftest import DATA, needs_data

# Unity HumanBodyBones enum names (Unity scripting reference, HumanBodyBones), minus LastBone.
UNITY_HUMAN_BODY_BONES = {
    "Hips", "LeftUpperLeg", "RightUpperLeg", "LeftLowerLeg", "RightLowerLeg", "LeftFoot", "RightFoot",
    "Spine", "Chest", "UpperChest", "Neck", "Head", "LeftShoulder", "RightShoulder", "LeftUpperArm",
    "RightUpperArm", "LeftLowerArm", "RightLowerArm", "LeftHand", "RightHand", "LeftToes", "RightToes",
    "LeftEye", "RightEye", "Jaw",
} | {f"{s}{f}{k}" for s in ("Left", "Right") for f in ("Thumb", "Index", "Middle", "Ring", "Little")
     for k in ("Proximal", "Intermediate", "Distal")}
# VRM 1.0 humanoid bones (vrm-specification, VRMC_vrm-1.0/humanoid.md).
VRM1_BONES = {
    "hips", "spine", "chest", "upperChest", "neck", "head", "leftEye", "rightEye", "jaw",
    "leftUpperLeg", "leftLowerLeg", "leftFoot", "leftToes", "rightUpperLeg", "rightLowerLeg", "rightFoot",
    "rightToes", "leftShoulder", "leftUpperArm", "leftLowerArm", "leftHand", "rightShoulder",
    "rightUpperArm", "rightLowerArm", "rightHand",
} | {f"{s}Thumb{k}" for s in ("left", "right") for k in ("Metacarpal", "Proximal", "Distal")} \
  | {f"{s}{f}{k}" for s in ("left", "right") for f in ("Index", "Middle", "Ring", "Little")
     for k in ("Proximal", "Intermediate", "Distal")}


def test_smplx_joint_names_match_smplx_package():
    from smplx.joint_names import JOINT_NAMES
    assert list(cv.SMPLX_JOINT_NAMES) == list(JOINT_NAMES[:55])


def test_smplx_parents_match_mannequin_kinematic_tree():
    from importlib import resources
    with resources.files("mannequin").joinpath("assets/wooden.npz").open("rb") as f:
        w = np.load(f)
        names, parents = [str(n) for n in w["joint_names"]], w["parents"]
    # mannequin: SMPL-X body 0..21, L_Hand/R_Hand (22, 23) at the wrists, then the 30 finger joints.
    assert list(parents[:22]) == list(cv.SMPLX_PARENTS[:22])
    for k in range(30):
        ours = cv.SMPLX_PARENTS[25 + k]
        theirs = parents[24 + k]
        theirs = {22: 20, 23: 21}.get(int(theirs), int(theirs) + 1 if theirs >= 24 else int(theirs))
        assert ours == theirs, names[24 + k]
    # jaw and eyes hang from the head; parents precede children
    assert [cv.SMPLX_PARENTS[i] for i in (22, 23, 24)] == [15, 15, 15]
    assert all(p < i for i, p in enumerate(cv.SMPLX_PARENTS))


@needs_data
def test_arkit_order_matches_facegood_sheet_and_livelink_header():
    import openpyxl
    ws = openpyxl.load_workbook(DATA / "facegood/blendshape2ARKit.xlsx").active
    sheet = [r[0] for r in ws.iter_rows(min_row=3, max_row=54, values_only=True)]
    assert [s.lower() for s in sheet] == [n.lower() for n in cv.ARKIT_NAMES]  # sheet has 'browDownleft'
    with open(DATA / "neurosync_face_only/livelinkface_60fps_no_audio.csv") as f:
        header = next(csv.reader(f))
    ll = header[2:54]
    assert set(ll) == {cv.arkit_upper_camel(n) for n in cv.ARKIT_NAMES}


def test_arkit_mirror_is_involution_and_swaps_sides():
    perm = np.asarray(cv.ARKIT_MIRROR)
    assert (perm[perm] == np.arange(52)).all()
    assert cv.ARKIT_NAMES[perm[cv.ARKIT_INDEX["eyeBlinkLeft"]]] == "eyeBlinkRight"
    assert cv.ARKIT_NAMES[perm[cv.ARKIT_INDEX["jawLeft"]]] == "jawRight"
    assert perm[cv.ARKIT_INDEX["jawOpen"]] == cv.ARKIT_INDEX["jawOpen"]
    jm = np.asarray(cv.JOINT_MIRROR)
    assert (jm[jm] == np.arange(55)).all()
    assert cv.SMPLX_JOINT_NAMES[jm[cv.JOINT_INDEX["left_thumb3"]]] == "right_thumb3"


def test_bone_maps_cover_every_joint_with_valid_names():
    assert set(cv.SMPLX_TO_UNITY) == set(cv.SMPLX_JOINT_NAMES)
    assert set(cv.SMPLX_TO_UNITY.values()) == UNITY_HUMAN_BODY_BONES
    assert set(cv.SMPLX_TO_VRM.values()) == VRM1_BONES
    assert cv.SMPLX_TO_VRM["left_thumb1"] == "leftThumbMetacarpal"
    assert cv.SMPLX_TO_UNITY["left_thumb1"] == "LeftThumbProximal"
    assert cv.SMPLX_TO_UNITY["left_pinky2"] == "LeftLittleIntermediate"
    assert cv.SMPLX_TO_MIXAMO["right_shoulder"] == "mixamorig:RightArm"
    assert cv.SMPLX_TO_MIXAMO["left_pinky3"] == "mixamorig:LeftHandPinky3"
    mix = [v for v in cv.SMPLX_TO_MIXAMO.values() if v]
    assert len(mix) == len(set(mix)) == 54


def test_rest_pose_is_a_t_pose_facing_plus_z():
    pos = cv.rest_joint_positions()
    J = cv.JOINT_INDEX
    assert pos.shape == (55, 3)
    assert pos[J["head"], 1] > pos[J["neck"], 1] > pos[J["pelvis"], 1]     # +Y up
    assert pos[J["left_wrist"], 0] > 0.5 and pos[J["right_wrist"], 0] < -0.5  # arms out, left = +X
    # T-pose: the arm is horizontal
    assert abs(pos[J["left_wrist"], 1] - pos[J["left_shoulder"], 1]) < 0.08
    assert pos[J["left_eye_smplhf"], 2] > pos[J["head"], 2]                # eyes in front (+Z)
    assert np.allclose(np.cumsum(cv.rest_offsets()[[0, 3, 6, 9]], 0)[-1], pos[J["spine3"]], atol=1e-6)


def test_axis_conversions_by_hand():
    # 90 degrees about +Y (ours) is -90 degrees about Y in Unity's left-handed frame.
    q = R.from_euler("y", 90, degrees=True).as_quat()
    u = cv.quat_to_unity(q)
    assert np.allclose(u, [0, -np.sin(np.pi / 4), 0, np.cos(np.pi / 4)], atol=1e-6)
    assert np.allclose(cv.position_to_unity([0.1, 0.2, 0.3]), [-0.1, 0.2, 0.3])
    # Unreal from Unity: rotation (-x, z, y, w), position (-x, z, y) * 100 (centimetres)
    assert np.allclose(cv.unity_quat_to_unreal([0.1, 0.2, 0.3, 0.9]), [-0.1, 0.3, 0.2, 0.9])
    assert np.allclose(cv.unity_position_to_unreal([1.0, 2.0, 3.0]), [-100.0, 300.0, 200.0])
    assert np.allclose(cv.position_to_unreal([0.1, 1.7, 0.0]), [10.0, 0.0, 170.0])
    # a rotation about our +X axis keeps its sign in Unity (mirroring X flips y and z only)
    qx = R.from_euler("x", 30, degrees=True).as_quat()
    assert np.allclose(cv.quat_to_unity(qx), qx, atol=1e-7)


def test_neck_head_split_composes_exactly_to_the_live_link_rotation():
    """The Live Link head rotation split into neck and head: neck * head is the whole rotation (to float32),
    the neck turns NECK_SHARE of the angle about the same axis, and a single-axis turn splits 40/60."""
    rng = np.random.default_rng(7)
    h = rng.uniform(-1, 1, (500, 3)) * np.radians([40, 40, 40])
    neck, head = cv.split_neck_head(h)
    full = R.from_quat(cv.livelink_angles_to_quat(*h.T))
    assert ((R.from_quat(neck) * R.from_quat(head)).inv() * full).magnitude().max() < 1e-6
    assert np.allclose(R.from_quat(neck).magnitude(), cv.NECK_SHARE * full.magnitude(), atol=1e-6)
    axis = full.as_rotvec() / full.magnitude()[:, None]
    assert np.allclose(R.from_quat(neck).as_rotvec(), cv.NECK_SHARE * full.magnitude()[:, None] * axis, atol=1e-6)
    yaw_only = np.array([[0.5, 0.0, 0.0]])
    n, hd = cv.split_neck_head(yaw_only)
    assert np.allclose(cv.quat_to_livelink_angles(n), [[0.2, 0, 0]], atol=1e-6)
    assert np.allclose(cv.quat_to_livelink_angles(hd), [[0.3, 0, 0]], atol=1e-6)
    rot = np.zeros((500, 55, 4), np.float32)
    rot[..., 3] = 1
    cv.apply_livelink_head_eyes(rot, h)
    assert np.array_equal(rot[:, cv.JOINT_INDEX["neck"]], neck) and np.array_equal(rot[:, cv.JOINT_INDEX["head"]], head)
