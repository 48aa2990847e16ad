"""The default VRM 1.0 avatar: glTF validity, and VRMC_vrm checked against the VRM 1.0 specification
(vrm-c/vrm-specification, specification/VRMC_vrm-1.0: humanoid.md, tpose.md, meta.md, expressions.md,
lookAt.md). Loading it in three-vrm (and playing a .vrma on it) is tests/exporters/test_threejs.py."""
import numpy as np
import pygltflib
import pytest

from exporters import vrm_avatar
from exporters.vrma import ARKIT_TO_VRM_EXPRESSION
from exporters.vrm_avatar import write_vrm_avatar
from motion.conventions import ARKIT_INDEX, ARKIT_NAMES, SMPLX_TO_VRM
from motion.errors import ChatAnyoneError
from tests.exporters.gltf_validator import validate
from tests.exporters.test_glb import read_accessor

# VRM humanoid.md "Humanoid bone parent-child relationship" (parents of optional bones may be missing: then
# the nearest existing ancestor in this table is the parent).
_SPEC_PARENT = {
    "hips": None, "spine": "hips", "chest": "spine", "upperChest": "chest", "neck": "upperChest",
    "head": "neck", "leftEye": "head", "rightEye": "head", "jaw": "head",
    "leftUpperLeg": "hips", "leftLowerLeg": "leftUpperLeg", "leftFoot": "leftLowerLeg", "leftToes": "leftFoot",
    "rightUpperLeg": "hips", "rightLowerLeg": "rightUpperLeg", "rightFoot": "rightLowerLeg",
    "rightToes": "rightFoot", "leftShoulder": "upperChest", "leftUpperArm": "leftShoulder",
    "leftLowerArm": "leftUpperArm", "leftHand": "leftLowerArm", "rightShoulder": "upperChest",
    "rightUpperArm": "rightShoulder", "rightLowerArm": "rightUpperArm", "rightHand": "rightLowerArm",
}
for _side in ("left", "right"):
    _SPEC_PARENT |= {f"{_side}ThumbMetacarpal": f"{_side}Hand", f"{_side}ThumbProximal": f"{_side}ThumbMetacarpal",
                     f"{_side}ThumbDistal": f"{_side}ThumbProximal"}
    for _f in ("Index", "Middle", "Ring", "Little"):
        _SPEC_PARENT |= {f"{_side}{_f}Proximal": f"{_side}Hand", f"{_side}{_f}Intermediate": f"{_side}{_f}Proximal",
                         f"{_side}{_f}Distal": f"{_side}{_f}Intermediate"}
_REQUIRED = ("hips", "spine", "head", "leftUpperLeg", "leftLowerLeg", "leftFoot", "rightUpperLeg", "rightLowerLeg",
             "rightFoot", "leftUpperArm", "leftLowerArm", "leftHand", "rightUpperArm", "rightLowerArm", "rightHand")
_PRESETS = ("happy", "angry", "sad", "relaxed", "surprised", "aa", "ih", "ou", "ee", "oh", "blink", "blinkLeft",
            "blinkRight", "lookUp", "lookDown", "lookLeft", "lookRight", "neutral")


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    path = write_vrm_avatar(tmp_path_factory.mktemp("vrm") / "avatar.vrm")
    gltf = pygltflib.GLTF2.load_binary(str(path))
    return path, gltf, gltf.extensions["VRMC_vrm"]


def _world_positions(gltf) -> dict[int, np.ndarray]:
    parent = {c: p for p, n in enumerate(gltf.nodes) for c in (n.children or [])}
    out = {}
    for i in range(len(gltf.nodes)):
        p, j = np.zeros(3), i
        while j is not None:
            p += np.asarray(gltf.nodes[j].translation or [0, 0, 0])
            j = parent.get(j)
        out[i] = p
    return out


def test_khronos_validator(written):
    path, _, _ = written
    report = validate(path)
    assert report["issues"]["numErrors"] == 0
    assert report["info"]["hasSkins"] and report["info"]["hasMorphTargets"]
    assert report["info"]["animationCount"] == 0          # VRM README: animations are not used


def test_vrm_extension_and_meta(written):
    _, gltf, ext = written
    assert "VRMC_vrm" in gltf.extensionsUsed and ext["specVersion"] == "1.0"
    meta = ext["meta"]
    assert meta["name"] and meta["authors"] and all(meta["authors"])
    assert meta["licenseUrl"] == "https://vrm.dev/licenses/1.0/"        # meta.md: the only accepted value
    assert meta["avatarPermission"] == "everyone"
    assert meta["commercialUsage"] == "corporation"
    assert meta["modification"] == "allowModificationRedistribution"
    assert meta["creditNotation"] in ("required", "unnecessary") and meta["allowRedistribution"] is True
    assert "Apache" in meta["thirdPartyLicenses"] and meta["otherLicenseUrl"].startswith("https://")
    assert "ICT-FaceKit" in meta["thirdPartyLicenses"] and "MIT" in meta["thirdPartyLicenses"]
    assert "ICT-FaceKit" in gltf.asset.copyright


def test_humanoid_bones_follow_the_spec(written):
    _, gltf, ext = written
    bones = {name: b["node"] for name, b in ext["humanoid"]["humanBones"].items()}
    assert set(bones) == set(SMPLX_TO_VRM.values()) and set(bones) <= set(_SPEC_PARENT)
    assert set(_REQUIRED) <= set(bones)
    assert len(set(bones.values())) == len(bones)                         # unique nodes
    parent = {c: p for p, n in enumerate(gltf.nodes) for c in (n.children or [])}
    bone_of = {v: k for k, v in bones.items()}
    for name, node in bones.items():
        want = _SPEC_PARENT[name]
        while want is not None and want not in bones:
            want = _SPEC_PARENT[want]
        up = parent.get(node)
        while up is not None and up not in bone_of:                      # non-bone nodes may sit between
            up = parent.get(up)
        assert (bone_of[up] if up is not None else None) == want, name


def test_rest_pose_is_the_vrm_t_pose(written):
    _, gltf, ext = written
    for n in gltf.nodes:                                                  # tpose.md 2.1, README: no rotations
        assert n.matrix is None
        assert n.rotation is None or np.allclose(n.rotation, [0, 0, 0, 1])
        assert n.scale is None or np.allclose(n.scale, [1, 1, 1])
    pos = _world_positions(gltf)
    at = {name: pos[b["node"]] for name, b in ext["humanoid"]["humanBones"].items()}

    def direction(a, b):
        d = at[b] - at[a]
        return d / np.linalg.norm(d)

    # 1.1 facing +Z, symmetric about X = 0; 1.2 toes along +Z; 1.3 grounded at Y = 0
    assert at["leftEye"][2] > at["head"][2] and at["leftToes"][2] > at["leftFoot"][2] + 0.05
    for name in at:                       # legs, torso, head, eyes (1.1); the mannequin's fingers differ by ~1 cm
        if name.startswith("left") and not any(f in name for f in ("Thumb", "Index", "Middle", "Ring", "Little")):
            mirror = at["right" + name[4:]] * [-1, 1, 1]
            assert np.allclose(at[name], mirror, atol=5e-3), name
    body = gltf.meshes[gltf.nodes[next(i for i, n in enumerate(gltf.nodes) if n.name == "mannequin")].mesh]
    floor = read_accessor(gltf, body.primitives[0].attributes.POSITION)[:, 1].min()
    assert abs(floor) < 1e-4
    # 1.4 / 1.6 / 1.7 arms, hands and fingers along +X (left) / -X (right), parallel to the ground
    for side, sx in (("left", 1), ("right", -1)):
        for a, b, max_deg in ((f"{side}UpperArm", f"{side}LowerArm", 5), (f"{side}LowerArm", f"{side}Hand", 5),
                              (f"{side}Hand", f"{side}MiddleProximal", 5),
                              (f"{side}IndexProximal", f"{side}IndexIntermediate", 10),
                              (f"{side}MiddleProximal", f"{side}MiddleIntermediate", 10),
                              # known deviation: the mannequin's relaxed hand fans its ring and little
                              # fingers out in the ground plane (16 and 33 degrees)
                              (f"{side}RingProximal", f"{side}RingIntermediate", 20),
                              (f"{side}LittleProximal", f"{side}LittleIntermediate", 35)):
            d = direction(a, b)
            assert np.degrees(np.arccos(d @ [sx, 0, 0])) < max_deg and abs(d[1]) < 0.15, (a, b)
        # 1.8 thumb between +-X and +Z, parallel to the ground
        thumb = direction(f"{side}ThumbMetacarpal", f"{side}ThumbProximal")
        assert np.degrees(np.arccos(thumb @ np.array([sx, 0, 1]) / np.sqrt(2))) < 15 and abs(thumb[1]) < 0.1


def test_expressions_bind_the_face_morph_targets(written):
    _, gltf, ext = written
    expr = ext["expressions"]
    face_nodes = {i for i, n in enumerate(gltf.nodes)
                  if n.mesh is not None and gltf.meshes[n.mesh].primitives[0].targets}
    assert len(face_nodes) == 1
    face = face_nodes.pop()
    assert gltf.meshes[gltf.nodes[face].mesh].extras["targetNames"] == list(ARKIT_NAMES)
    assert set(expr["preset"]) <= set(_PRESETS) and not set(expr["custom"]) & set(_PRESETS)
    for kind in ("preset", "custom"):
        for name, e in expr[kind].items():
            assert e["morphTargetBinds"], name
            for b in e["morphTargetBinds"]:
                assert b["node"] == face and 0 <= b["index"] < 52 and 0 < b["weight"] <= 1, name
    # ARKit names as custom expressions: one bind each, to the target of the same name, at weight 1
    assert list(expr["custom"]) == list(ARKIT_NAMES)
    for name, e in expr["custom"].items():
        assert [(b["index"], b["weight"]) for b in e["morphTargetBinds"]] == [(ARKIT_INDEX[name], 1.0)]
    # presets: the positive terms of the ARKit -> preset table, the largest at weight 1
    for name, mix in ARKIT_TO_VRM_EXPRESSION.items():
        binds = {ARKIT_NAMES[b["index"]]: b["weight"] for b in expr["preset"][name]["morphTargetBinds"]}
        assert set(binds) == {k for k, c in mix.items() if c > 0}, name
        assert max(binds.values()) == 1.0
    assert expr["preset"]["blink"]["morphTargetBinds"] == [
        {"node": face, "index": ARKIT_INDEX["eyeBlinkLeft"], "weight": 1.0},
        {"node": face, "index": ARKIT_INDEX["eyeBlinkRight"], "weight": 1.0}]


def test_one_expression_per_morph_in_each_set(written):
    """The binding scheme: the ARKit set binds every morph exactly once; no look* presets (gaze is bone)."""
    _, _, ext = written
    expr = ext["expressions"]
    custom = [b["index"] for e in expr["custom"].values() for b in e["morphTargetBinds"]]
    assert sorted(custom) == list(range(52))
    assert not {"lookUp", "lookDown", "lookLeft", "lookRight"} & set(expr["preset"])


def test_look_at_turns_the_eyeballs(written):
    _, gltf, ext = written
    look = ext["lookAt"]
    assert look["type"] == "bone"
    assert np.allclose(look["offsetFromHeadBone"], [0.0, 0.065, 0.085], atol=1e-6)   # between the eyes
    for key in ("rangeMapHorizontalInner", "rangeMapHorizontalOuter", "rangeMapVerticalDown", "rangeMapVerticalUp"):
        assert look[key]["inputMaxValue"] == look[key]["outputScale"] == vrm_avatar.GAZE_LIMIT_DEG   # identity
    # the eyeball vertices are skinned to the leftEye / rightEye bones only
    bones = ext["humanoid"]["humanBones"]
    prim = next(m for m in gltf.meshes if m.primitives[0].targets).primitives[0]
    j = read_accessor(gltf, prim.attributes.JOINTS_0)
    w = read_accessor(gltf, prim.attributes.WEIGHTS_0)
    skin = gltf.skins[0].joints
    for bone in ("leftEye", "rightEye"):
        k = skin.index(bones[bone]["node"])
        on = (j == k) & (w > 0)
        assert 1000 < on.any(1).sum() < 2000, bone                       # one eyeball: ~1,570 vertices
        assert np.allclose(w[on], 1), bone                                # rigidly


def test_first_person(written):
    _, gltf, ext = written
    kinds = {gltf.nodes[a["node"]].name: a["type"] for a in ext["firstPerson"]["meshAnnotations"]}
    assert kinds == {"mannequin": "auto", "face": "thirdPersonOnly"}


def test_bytes_are_deterministic(written):
    path, _, _ = written
    assert vrm_avatar.vrm_avatar_bytes() == path.read_bytes()
    assert path.read_bytes()[:4] == b"glTF"


def test_unwritable_destination_is_a_clear_error(tmp_path):
    with pytest.raises(ChatAnyoneError, match="does not exist"):
        write_vrm_avatar(tmp_path / "missing" / "avatar.vrm")
    (tmp_path / "avatar.vrm").mkdir()
    with pytest.raises(ChatAnyoneError, match="folder"):
        write_vrm_avatar(tmp_path / "avatar.vrm")
    assert [p.name for p in tmp_path.iterdir()] == ["avatar.vrm"]           # only the folder we made
