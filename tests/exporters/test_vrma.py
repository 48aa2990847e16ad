"""VRM Animation exporter: the VRMC_vrm_animation extension's structure, the animated values against the
clip, the Khronos validator."""

import numpy as np
import pygltflib
import pytest
from scipy.spatial.transform import Rotation

from exporters import vrma
from tests.exporters.gltf_validator import validate
from motion import MotionClip
from motion.conventions import ARKIT_INDEX, ARKIT_NAMES, JOINT_INDEX, SMPLX_JOINT_NAMES, SMPLX_PARENTS, SMPLX_TO_VRM
from motion.errors import ChatAnyoneError
from tests.exporters.test_glb import read_accessor, smooth_clip

# VRMC_vrm_animation-1.0 schema, humanoid.humanBones (VRM 1.0 humanoid without leftEye/rightEye).
VRMA_BONES = (
    "hips spine chest upperChest neck head jaw leftUpperLeg leftLowerLeg leftFoot leftToes rightUpperLeg "
    "rightLowerLeg rightFoot rightToes leftShoulder leftUpperArm leftLowerArm leftHand rightShoulder "
    "rightUpperArm rightLowerArm rightHand").split() + [
    f"{side}{finger}{seg}" for side in ("left", "right")
    for finger, segs in (("Thumb", ("Metacarpal", "Proximal", "Distal")),) + tuple(
        (f, ("Proximal", "Intermediate", "Distal")) for f in ("Index", "Middle", "Ring", "Little"))
    for seg in segs]
VRM_REQUIRED = ("hips spine head leftUpperLeg leftLowerLeg leftFoot rightUpperLeg rightLowerLeg rightFoot "
                "leftUpperArm leftLowerArm leftHand rightUpperArm rightLowerArm rightHand").split()
PRESETS_ALLOWED = set(vrma.VRMA_PRESETS)


@pytest.fixture(scope="module")
def clip():
    return smooth_clip(T=60, seed=4)


@pytest.fixture(scope="module")
def written(clip, tmp_path_factory):
    path = vrma.write(clip, tmp_path_factory.mktemp("vrma") / "clip.vrma")
    return path, pygltflib.GLTF2.load_binary(str(path))


def _ext(gltf):
    return gltf.extensions["VRMC_vrm_animation"]


def _samplers(gltf):
    anim = gltf.animations[0]
    return {(c.target.node, c.target.path): anim.samplers[c.sampler] for c in anim.channels}


def test_extension_header(written):
    _, gltf = written
    assert gltf.extensionsUsed == ["VRMC_vrm_animation"]
    assert not gltf.extensionsRequired
    ext = _ext(gltf)
    assert ext["specVersion"] == "1.0"
    assert set(ext) == {"specVersion", "humanoid", "expressions", "lookAt"}
    assert len(gltf.animations) == 1


def test_human_bones(written):
    _, gltf = written
    bones = _ext(gltf)["humanoid"]["humanBones"]
    assert set(bones) <= set(VRMA_BONES)
    assert set(VRM_REQUIRED) <= set(bones)
    assert "leftEye" not in bones and "rightEye" not in bones          # VRMA: gaze is LookAt
    assert len(bones) == 53 and "leftLittleDistal" in bones and "rightThumbMetacarpal" in bones and "jaw" in bones
    node_of = {b: v["node"] for b, v in bones.items()}
    assert len(set(node_of.values())) == 53
    parent_of = {c: p for p, n in enumerate(gltf.nodes) for c in (n.children or [])}
    vrm_of = {n: SMPLX_TO_VRM[n] for n in SMPLX_JOINT_NAMES}
    for j, name in enumerate(SMPLX_JOINT_NAMES):
        if vrm_of[name] not in bones:
            continue
        node = gltf.nodes[node_of[vrm_of[name]]]
        assert node.name == vrm_of[name]
        assert node.rotation is None or np.allclose(node.rotation, [0, 0, 0, 1])   # VRM T-pose rest
        assert node.scale is None
        p = SMPLX_PARENTS[j]
        if p < 0:
            assert node_of["hips"] not in parent_of and node_of["hips"] in gltf.scenes[gltf.scene].nodes
        else:
            assert parent_of[node_of[vrm_of[name]]] == node_of[vrm_of[SMPLX_JOINT_NAMES[p]]]
    # T-pose, facing +Z: left arm along +X, head above the hips, feet near the floor
    world = {}
    for j, name in enumerate(SMPLX_JOINT_NAMES):
        if vrm_of[name] in bones:
            p = SMPLX_PARENTS[j]
            world[vrm_of[name]] = np.asarray(gltf.nodes[node_of[vrm_of[name]]].translation) + (
                world[vrm_of[SMPLX_JOINT_NAMES[p]]] if p >= 0 else 0)
    assert world["leftHand"][0] > world["leftUpperArm"][0] > 0.1
    assert world["head"][1] > world["hips"][1] > 0.8 and abs(world["leftFoot"][1]) < 0.15
    assert world["leftToes"][2] > world["leftFoot"][2]                                # toes point to +Z


def test_only_hips_translate_and_nothing_scales(written):
    _, gltf = written
    bones = {v["node"] for v in _ext(gltf)["humanoid"]["humanBones"].values()}
    s = _samplers(gltf)
    assert {n for (n, p) in s if p == "translation" and n in bones} == {_ext(gltf)["humanoid"]["humanBones"]["hips"]["node"]}
    assert not any(p == "scale" for (_, p) in s)
    assert all(sm.interpolation == "LINEAR" for sm in s.values())


def test_joint_rotation_matches_clip(written, clip):
    _, gltf = written
    bones = _ext(gltf)["humanoid"]["humanBones"]
    s = _samplers(gltf)
    times = read_accessor(gltf, s[(bones["hips"]["node"], "rotation")].input)[:, 0]
    assert np.allclose(times, np.arange(clip.num_frames) / clip.fps, atol=1e-6)
    for name, frame in (("left_elbow", 17), ("head", 3), ("right_thumb2", 44), ("pelvis", 0), ("jaw", 59)):
        q = read_accessor(gltf, s[(bones[SMPLX_TO_VRM[name]]["node"], "rotation")].output)[frame]
        ref = clip.rotations[frame, JOINT_INDEX[name]]
        assert min(np.abs(q - ref).max(), np.abs(q + ref).max()) < 1e-6, name
    hips = bones["hips"]["node"]
    root = read_accessor(gltf, s[(hips, "translation")].output)
    assert np.allclose(root - np.asarray(gltf.nodes[hips].translation), clip.translation, atol=1e-6)


def test_expression_weights(written, clip, tmp_path):
    _, gltf = written
    ex = _ext(gltf)["expressions"]
    assert set(ex) == {"custom"}                            # default: the ARKit set only (one set per file)
    assert list(ex["custom"]) == list(ARKIT_NAMES) and not set(ex["custom"]) & set(vrma.VRMA_PRESETS)
    s = _samplers(gltf)

    def x_of(g, kind, name):
        e = _ext(g)["expressions"]
        out = read_accessor(g, _samplers(g)[(e[kind][name]["node"], "translation")].output)
        assert np.all(out[:, 1:] == 0)
        return out[:, 0]

    for name in ARKIT_NAMES:
        assert np.allclose(x_of(gltf, "custom", name), clip.face[:, ARKIT_INDEX[name]], atol=1e-7), name
    for v in ex["custom"].values():
        node = gltf.nodes[v["node"]]
        assert node.translation == [0.0, 0.0, 0.0] and not node.children and node.mesh is None
    assert len(s) == 53 + 1 + 1 + 52                         # bones, hips translation, lookAt, expressions

    # the preset set, for avatars without ARKit expressions
    g = pygltflib.GLTF2.load_binary(str(vrma.write(clip, tmp_path / "p.vrma", expressions="preset")))
    pe = _ext(g)["expressions"]
    assert set(pe) == {"preset"} and set(pe["preset"]) <= PRESETS_ALLOWED
    assert not {"lookUp", "lookDown", "lookLeft", "lookRight"} & set(pe["preset"])
    assert {"aa", "ih", "ou", "ee", "oh", "blink", "blinkLeft", "blinkRight", "happy"} <= set(pe["preset"])
    f, frame = clip.face, 23
    aa = f[frame, ARKIT_INDEX["jawOpen"]] - 0.5 * f[frame, ARKIT_INDEX["mouthFunnel"]] - 0.5 * f[frame, ARKIT_INDEX["mouthPucker"]]
    assert x_of(g, "preset", "aa")[frame] == pytest.approx(np.clip(aa, 0, 1), abs=1e-6)
    # blink = min of the eyes, blinkLeft/Right the rest: each lid's total is its ARKit weight
    left, right = f[:, ARKIT_INDEX["eyeBlinkLeft"]], f[:, ARKIT_INDEX["eyeBlinkRight"]]
    blink = x_of(g, "preset", "blink")
    assert np.allclose(blink, np.minimum(left, right), atol=1e-6)
    assert np.allclose(blink + x_of(g, "preset", "blinkLeft"), left, atol=1e-6)
    assert np.allclose(blink + x_of(g, "preset", "blinkRight"), right, atol=1e-6)
    for name in pe["preset"]:
        w = x_of(g, "preset", name)
        assert w.min() >= 0 and w.max() <= 1, name


def test_look_at_is_the_gaze(tmp_path):
    clip = MotionClip.rest(5)
    gaze = Rotation.from_euler("YX", [[0.3, -0.1]] * 5)             # to the avatar's left (+X), up
    clip.rotations[:, JOINT_INDEX["left_eye_smplhf"]] = gaze.as_quat()
    clip.rotations[:, JOINT_INDEX["right_eye_smplhf"]] = gaze.as_quat()
    gltf = pygltflib.GLTF2.load_binary(str(vrma.write(MotionClip(30, clip.face, clip.rotations), tmp_path / "g.vrma")))
    look = _ext(gltf)["lookAt"]
    head = _ext(gltf)["humanoid"]["humanBones"]["head"]["node"]
    assert look["node"] in gltf.nodes[head].children
    assert np.allclose(look["offsetFromHeadBone"], gltf.nodes[look["node"]].translation)
    assert look["offsetFromHeadBone"][1] > 0 and look["offsetFromHeadBone"][2] > 0   # eyes up and in front
    q = read_accessor(gltf, _samplers(gltf)[(look["node"], "rotation")].output)
    assert (Rotation.from_quat(q).inv() * gaze).magnitude().max() < 1e-6
    dir_ = Rotation.from_quat(q[0]).apply([0, 0, 1])
    assert dir_[0] > 0 and dir_[1] > 0


def test_expression_options(tmp_path, clip):
    short = clip.slice(0, 4)
    g1 = pygltflib.GLTF2.load_binary(str(vrma.write(short, tmp_path / "p.vrma", expressions="preset")))
    assert set(_ext(g1)["expressions"]) == {"preset"}
    g2 = pygltflib.GLTF2.load_binary(str(vrma.write(short, tmp_path / "a.vrma", expressions="arkit")))
    assert set(_ext(g2)["expressions"]) == {"custom"}
    for bad in ("visemes", "all"):                       # "all" would drive the same morphs twice
        with pytest.raises(ChatAnyoneError, match="one set"):
            vrma.write(short, tmp_path / "x.vrma", expressions=bad)
    with pytest.raises(ChatAnyoneError, match="empty"):
        vrma.write(clip.slice(0, 0), tmp_path / "x.vrma")
    with pytest.raises(ChatAnyoneError):
        vrma.write("clip", tmp_path / "x.vrma")
    with pytest.raises(ChatAnyoneError, match="does not exist"):
        vrma.write(short, tmp_path / "nope" / "x.vrma")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.vrma", "p.vrma"]


def test_mapping_table_uses_real_names():
    for preset, mix in vrma.ARKIT_TO_VRM_EXPRESSION.items():
        assert preset in vrma.VRMA_PRESETS
        assert set(mix) <= set(ARKIT_NAMES), preset


def test_khronos_validator(written):
    path, _ = written
    report = validate(path)
    issues = report["issues"]
    assert issues["numErrors"] == 0 and issues["numWarnings"] == 0
    assert report["info"]["animationCount"] == 1
    codes = {m["code"] for m in issues["messages"]}
    assert codes <= {"UNSUPPORTED_EXTENSION", "NODE_EMPTY"}, codes   # VRMC_vrm_animation; expression nodes
