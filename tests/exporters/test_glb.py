"""GLB exporter: read the file back with pygltflib, check it against the clip, run the Khronos validator;
plus the atomic-output guarantees every exporter relies on."""
from pathlib import Path

import numpy as np
import pygltflib
import pytest
from scipy.spatial.transform import Rotation

from exporters import glb
from tests.exporters.gltf_validator import validate
from motion import MotionClip
from motion.conventions import ARKIT_INDEX, ARKIT_NAMES, JOINT_INDEX, SMPLX_JOINT_NAMES, SMPLX_PARENTS
from motion.errors import ChatAnyoneError


_NP = {pygltflib.FLOAT: np.float32, pygltflib.UNSIGNED_BYTE: np.uint8,
       pygltflib.UNSIGNED_SHORT: np.uint16, pygltflib.UNSIGNED_INT: np.uint32}
_NCOMP = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT4": 16}


def smooth_clip(T=45, fps=30.0, seed=0) -> MotionClip:
    """Smooth random motion: every joint rotates by up to ~0.5 rad, face in [0, 1], root moves."""
    rng = np.random.default_rng(seed)
    t = np.arange(T)[:, None] / fps
    freq = rng.uniform(0.3, 2.0, (1, 55 * 3))
    phase = rng.uniform(0, 2 * np.pi, (1, 55 * 3))
    aa = 0.3 * np.sin(2 * np.pi * freq * t + phase)
    rot = Rotation.from_rotvec(aa.reshape(-1, 3)).as_quat().reshape(T, 55, 4)
    face = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.2, 3, (1, 52)) * t + rng.uniform(0, 6, (1, 52)))
    trans = 0.05 * np.sin(2 * np.pi * t * np.array([0.5, 1.0, 0.25]))
    return MotionClip(fps, face, rot, trans, {"seed": seed})


def read_accessor(gltf: pygltflib.GLTF2, index: int) -> np.ndarray:
    """Dense accessor data ``[count, ncomp]`` (sparse accessors are expanded)."""
    acc = gltf.accessors[index]
    blob = gltf.binary_blob()
    n = _NCOMP[acc.type]
    if acc.bufferView is None:
        out = np.zeros((acc.count, n), _NP[acc.componentType])
    else:
        bv = gltf.bufferViews[acc.bufferView]
        start = (bv.byteOffset or 0) + (acc.byteOffset or 0)
        out = np.frombuffer(blob, _NP[acc.componentType], acc.count * n, start).reshape(acc.count, n).copy()
    if acc.sparse is not None:
        sp = acc.sparse
        ibv, vbv = gltf.bufferViews[sp.indices.bufferView], gltf.bufferViews[sp.values.bufferView]
        idx = np.frombuffer(blob, _NP[sp.indices.componentType], sp.count, ibv.byteOffset or 0)
        vals = np.frombuffer(blob, _NP[acc.componentType], sp.count * n, vbv.byteOffset or 0)
        out[idx] = vals.reshape(sp.count, n)
    return out


@pytest.fixture(scope="module")
def clip():
    return smooth_clip()


@pytest.fixture(scope="module")
def written(clip, tmp_path_factory):
    path = glb.write(clip, tmp_path_factory.mktemp("glb") / "clip.glb")
    return path, pygltflib.GLTF2.load_binary(str(path))


def _joint_nodes(gltf):
    return gltf.skins[0].joints


def test_skeleton_names_and_hierarchy(written):
    _, gltf = written
    joints = _joint_nodes(gltf)
    assert len(joints) == 55
    assert [gltf.nodes[j].name for j in joints] == list(SMPLX_JOINT_NAMES)
    parent_of = {c: p for p, node in enumerate(gltf.nodes) for c in (node.children or [])}
    for k, j in enumerate(joints):
        want = SMPLX_PARENTS[k]
        if want < 0:
            assert j not in parent_of and j in gltf.scenes[gltf.scene].nodes
        else:
            assert parent_of[j] == joints[want]
    # rest pose: identity local rotations; the mannequin's own bone offsets (its mesh is skinned to
    # them), jaw and eyes at the conventions' offsets from the head
    from importlib import resources

    from motion.conventions import _EXTRA_OFFSETS
    with resources.files("mannequin").joinpath("assets/wooden.npz").open("rb") as f:
        wooden = np.load(f)["local_offsets"]
    want = np.zeros((55, 3))
    want[:22], want[25:] = wooden[:22], wooden[24:]
    want[[25, 28, 31, 34, 37]] += wooden[22]           # L_Hand (zero length) folded into the wrist
    want[[40, 43, 46, 49, 52]] += wooden[23]
    for name, off in _EXTRA_OFFSETS.items():
        want[JOINT_INDEX[name]] = off
    for k, j in enumerate(joints):
        node = gltf.nodes[j]
        assert node.rotation is None or np.allclose(node.rotation, [0, 0, 0, 1])
        if k > 0:
            assert np.allclose(node.translation, want[k], atol=1e-5), SMPLX_JOINT_NAMES[k]
    assert gltf.nodes[joints[JOINT_INDEX["left_ankle"]]].translation[0] == pytest.approx(
        -gltf.nodes[joints[JOINT_INDEX["right_ankle"]]].translation[0], abs=5e-3)


def test_inverse_bind_matrices_match_rest(written):
    _, gltf = written
    joints = _joint_nodes(gltf)
    ibm = read_accessor(gltf, gltf.skins[0].inverseBindMatrices).reshape(55, 4, 4).transpose(0, 2, 1)
    world = np.zeros((55, 3))
    for k, j in enumerate(joints):
        p = SMPLX_PARENTS[k]
        world[k] = np.asarray(gltf.nodes[j].translation) + (world[p] if p >= 0 else 0)
    assert np.allclose(ibm[:, :3, 3], -world, atol=1e-5)
    assert np.allclose(ibm[:, :3, :3], np.eye(3))


def test_face_mesh_has_arkit_targets(written):
    _, gltf = written
    faces = [m for m in gltf.meshes if m.primitives[0].targets]
    assert len(faces) == 1
    mesh = faces[0]
    assert mesh.extras["targetNames"] == list(ARKIT_NAMES)
    targets = mesh.primitives[0].targets
    assert len(targets) == 52
    disp = np.stack([read_accessor(gltf, t["POSITION"] if isinstance(t, dict) else t.POSITION) for t in targets])
    assert (np.abs(disp).max(axis=(1, 2)) > 1e-3).all(), "every target moves the face"
    flat = disp.reshape(52, -1)
    diff = np.abs(flat[:, None] - flat[None]).max(-1) + np.eye(52)
    assert diff.min() > 1e-3, "targets are distinct"


def _face_prim(gltf):
    return next(m for m in gltf.meshes if m.primitives[0].targets).primitives[0]


@pytest.fixture(scope="module")
def head(written):
    """The head as the GLB holds it: rest positions [V, 3] and {ARKit name: displacement [V, 3]} (metres), and
    the asset's 68 landmark vertices (iBUG-300W order: 36-41 right eye, 42-47 left eye, 60-67 inner lips)."""
    _, gltf = written
    prim = _face_prim(gltf)
    base = read_accessor(gltf, prim.attributes.POSITION).astype(np.float64)
    disp = {n: read_accessor(gltf, prim.targets[i]["POSITION"]).astype(np.float64) for i, n in enumerate(ARKIT_NAMES)}
    return base, disp, glb.head_asset()["landmarks_ibug68"].astype(np.int64)


def _posed(head, name, weight=1.0):
    base, disp, lm = head
    return (base + weight * disp[name])[lm] if name else base[lm]


def _lid_gaps(p: np.ndarray, eye: str) -> np.ndarray:
    """Vertical distances (metres) between the upper and lower lid contours (landmarks) across the middle of
    one eye: both contours interpolated at 5 x positions between the eye's corners."""
    upper, lower = ([42, 43, 44, 45], [42, 47, 46, 45]) if eye == "left" else ([36, 37, 38, 39], [36, 41, 40, 39])
    xs = np.linspace(p[upper[0], 0], p[upper[-1], 0], 9)[2:-2]

    def y_at(ids):
        x, y = p[ids, 0], p[ids, 1]
        o = np.argsort(x)
        return np.interp(xs, x[o], y[o])
    return y_at(upper) - y_at(lower)


def test_jaw_open_parts_the_lips(head):
    rest, opened = _posed(head, None), _posed(head, "jawOpen")
    assert np.linalg.norm(rest[62] - rest[66]) < 0.002                  # closed at rest
    assert np.linalg.norm(opened[62] - opened[66]) >= 0.010              # inner-lip midpoints >= 10 mm apart
    assert opened[66, 1] < rest[66, 1] - 0.01                            # the lower lip goes down


def test_blinks_close_each_eye_and_only_that_eye(head):
    rest = _posed(head, None)
    for eye, name, other in (("left", "eyeBlinkLeft", "right"), ("right", "eyeBlinkRight", "left")):
        assert _lid_gaps(rest, eye).min() > 0.005                         # open at rest (> 5 mm)
        closed = _posed(head, name)
        assert np.abs(_lid_gaps(closed, eye)).max() <= 0.001, (name, _lid_gaps(closed, eye))
        assert _lid_gaps(closed, other).min() > 0.005, name                # the other eye stays open


def test_pucker_narrows_and_smile_lifts_the_corners(head):
    rest = _posed(head, None)
    width = lambda p, a, b: abs(p[a, 0] - p[b, 0])                        # noqa: E731
    pucker = _posed(head, "mouthPucker")
    assert width(pucker, 60, 64) <= 0.8 * width(rest, 60, 64)            # commissures >= 20 % closer
    assert width(pucker, 48, 54) <= 0.85 * width(rest, 48, 54)           # outer lip corners (ICT scan: 18 %)
    for name, corners, sx in (("mouthSmileLeft", (54, 64), 1), ("mouthSmileRight", (48, 60), -1)):
        p = _posed(head, name)
        for c in corners:
            assert p[c, 1] - rest[c, 1] > 0.005, (name, c)              # up by more than 5 mm
            assert sx * (p[c, 0] - rest[c, 0]) > 0.002, (name, c)       # and outwards, on the face's own side
        other = 48 if sx > 0 else 54
        assert abs(p[other, 1] - rest[other, 1]) < 0.001, name             # the other corner stays


def test_targets_are_on_their_own_side_and_place(head):
    base, disp, _ = head
    center = (base.min(0) + base.max(0)) / 2

    def where(name):  # displacement-weighted centroid, relative to the head's centre
        w = np.linalg.norm(disp[name], axis=1)
        return (base * w[:, None]).sum(0) / w.sum() - center

    for side, sx in (("Left", 1), ("Right", -1)):  # the face's left is +X
        for name in ("eyeBlink", "mouthSmile", "browOuterUp", "cheekSquint", "noseSneer", "eyeSquint"):
            assert np.sign(where(name + side)[0]) == sx, name + side
    assert where("eyeBlinkLeft")[1] > where("jawOpen")[1]                 # eyes above the jaw
    assert disp["jawOpen"][:, 1].min() < -0.02                            # the chin drops more than 2 cm
    assert disp["browInnerUp"][:, 1].max() > 0.003 and abs(where("browInnerUp")[0]) < 0.002   # both brows
    assert disp["cheekPuff"][:, 0].max() > 0.005 and disp["cheekPuff"][:, 0].min() < -0.005   # both cheeks
    assert disp["tongueOut"][:, 2].max() > 0.03                           # the tongue comes out (> 3 cm)


def test_eyes_follow_the_eye_joints_and_the_head_sits_on_the_body(written):
    _, gltf = written
    prim = _face_prim(gltf)
    j = read_accessor(gltf, prim.attributes.JOINTS_0)
    w = read_accessor(gltf, prim.attributes.WEIGHTS_0)
    region = glb._face()["region"]
    for part, joint in (("sclera_left", "left_eye_smplhf"), ("iris_right", "right_eye_smplhf")):
        m = region == part
        assert (j[m, 0] == JOINT_INDEX[joint]).all() and np.allclose(w[m, 0], 1), part
    used = set(np.unique(j[w > 0]))
    assert {JOINT_INDEX[n] for n in ("head", "jaw", "neck")} <= used
    # eyeball centres on the eye joints
    base = read_accessor(gltf, prim.attributes.POSITION)
    joints = glb._body()["joints"]
    for part, joint in (("sclera_left", "left_eye_smplhf"), ("sclera_right", "right_eye_smplhf")):
        p = base[region == part]
        assert np.allclose((p.min(0) + p.max(0)) / 2, joints[JOINT_INDEX[joint]], atol=1e-3), part
    # the mannequin's own head is gone: no body vertex in the head's place (above the chin, within the skull)
    body = read_accessor(gltf, next(m for m in gltf.meshes if not m.primitives[0].targets).primitives[0]
                         .attributes.POSITION)
    chin_y = base[glb.head_asset()["landmarks_ibug68"][8], 1]
    assert not ((body[:, 1] > chin_y) & (np.abs(body[:, 0]) < 0.09)).any()


def test_licence_and_credit(written):
    _, gltf = written
    assert "ICT-FaceKit" in gltf.asset.copyright and "MIT" in gltf.asset.copyright
    assert "mannequin-x" in gltf.asset.copyright
    extras = next(m for m in gltf.meshes if m.primitives[0].targets).extras
    assert extras["license"] == "MIT" and "Institute for Creative Technologies" in extras["credit"]


def test_skin_weights(written):
    _, gltf = written
    for mesh in gltf.meshes:
        a = mesh.primitives[0].attributes
        w = read_accessor(gltf, a.WEIGHTS_0)
        j = read_accessor(gltf, a.JOINTS_0)
        assert np.allclose(w.sum(1), 1, atol=1e-6)
        assert (w >= 0).all() and j.max() < 55
    body = next(m for m in gltf.meshes if not m.primitives[0].targets).primitives[0]
    j = read_accessor(gltf, body.attributes.JOINTS_0)
    w = read_accessor(gltf, body.attributes.WEIGHTS_0)
    used = set(np.unique(j[w > 0]))
    assert JOINT_INDEX["left_index3"] in used and JOINT_INDEX["right_thumb3"] in used
    assert JOINT_INDEX["jaw"] not in used          # the mannequin has no jaw: the head carries it


def test_animation_matches_clip(written, clip):
    _, gltf = written
    anim = gltf.animations[0]
    joints = _joint_nodes(gltf)
    by_target = {(c.target.node, c.target.path): anim.samplers[c.sampler] for c in anim.channels}
    assert sum(p == "rotation" for _, p in by_target) == 55
    s = by_target[(joints[JOINT_INDEX["left_elbow"]], "rotation")]
    assert s.interpolation == "LINEAR"
    times = read_accessor(gltf, s.input)[:, 0]
    assert np.allclose(times, np.arange(clip.num_frames) / clip.fps, atol=1e-6)
    for name, frame in (("left_elbow", 17), ("head", 3), ("right_thumb2", 44), ("pelvis", 0)):
        q = read_accessor(gltf, by_target[(joints[JOINT_INDEX[name]], "rotation")].output)[frame]
        ref = clip.rotations[frame, JOINT_INDEX[name]]
        assert min(np.abs(q - ref).max(), np.abs(q + ref).max()) < 1e-6, name
    root = read_accessor(gltf, by_target[(joints[0], "translation")].output)
    assert np.allclose(root - np.asarray(gltf.nodes[joints[0]].translation), clip.translation, atol=1e-6)
    face_node = next(i for i, n in enumerate(gltf.nodes) if n.mesh is not None
                     and gltf.meshes[n.mesh].primitives[0].targets)
    w = read_accessor(gltf, by_target[(face_node, "weights")].output).reshape(clip.num_frames, 52)
    assert np.allclose(w[21], clip.face[21], atol=1e-7)
    assert np.allclose(w[:, ARKIT_INDEX["jawOpen"]], clip.face[:, ARKIT_INDEX["jawOpen"]])


def test_materials_render_without_environment(written):
    _, gltf = written
    assert len(gltf.materials) == 2
    for m in gltf.materials:
        assert m.pbrMetallicRoughness.metallicFactor == 0
    assert gltf.materials[0].pbrMetallicRoughness.baseColorFactor != gltf.materials[1].pbrMetallicRoughness.baseColorFactor


def test_mixamo_names(tmp_path, clip):
    gltf = pygltflib.GLTF2.load_binary(str(glb.write(clip.slice(0, 3), tmp_path / "m.glb", bone_names="mixamo")))
    names = [gltf.nodes[j].name for j in gltf.skins[0].joints]
    assert names[0] == "mixamorig:Hips"
    assert "mixamorig:LeftHandIndex1" in names and "jaw" in names
    assert len(set(names)) == 55


def test_bad_options(tmp_path, clip):
    with pytest.raises(ChatAnyoneError, match="bone_names"):
        glb.write(clip, tmp_path / "x.glb", bone_names="unreal")
    with pytest.raises(ChatAnyoneError, match="empty"):
        glb.write(clip.slice(0, 0), tmp_path / "x.glb")
    with pytest.raises(ChatAnyoneError):
        glb.write("not a clip", tmp_path / "x.glb")
    assert list(tmp_path.iterdir()) == []


def test_sixty_second_clip_is_small(tmp_path):
    path = glb.write(MotionClip.rest(1800, 30.0), tmp_path / "long.glb")
    assert path.stat().st_size < 10_000_000          # ~6.6 MB of avatar (the scanned head) + ~1.1 kB per frame


def test_khronos_validator(written):
    path, _ = written
    report = validate(path)
    issues = report["issues"]
    assert issues["numErrors"] == 0
    assert report["info"]["hasMorphTargets"] and report["info"]["hasSkins"]
    assert report["info"]["animationCount"] == 1


# --------------------------------------------------------------------------------------------------
# atomic output (motion.fileio, shared by every writer; its own tests are in tests/motion/test_fileio.py)
# --------------------------------------------------------------------------------------------------
def test_missing_directory_is_a_user_error(tmp_path, clip):
    with pytest.raises(ChatAnyoneError, match="does not exist"):
        glb.write(clip, tmp_path / "nope" / "clip.glb")


def test_failure_mid_write_leaves_nothing(tmp_path, clip, monkeypatch):
    import shutil

    def boom(src, dst, length=0):
        dst.write(src.read(100))              # a partial file...
        raise OSError("disk full")            # ...then the failure

    monkeypatch.setattr(shutil, "copyfileobj", boom)   # glb.write copies its spooled buffer into place
    with pytest.raises(OSError, match="disk full"):
        glb.write(clip, tmp_path / "clip.glb")
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []
