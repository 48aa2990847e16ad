"""The Unity sample's C# scripts (unity_sample/Assets/ChatAnyone/Scripts), compiled with Debian's mono ``mcs``
against the stub UnityEngine/uOSC/UniVRM10 assemblies in ``stubs/`` and run with ``mono`` through
``harness/Harness.cs``:

* the msgpack reader and protocol decoder read the bytes of :mod:`bridge.protocol` (a real clip's frames)
  bit for bit, and any msgpack value as Python's ``msgpack`` does;
* ``VmcReceiver`` fed the real :class:`bridge.vmc.VMCSender` bundles (parsed from their bytes) poses the bones
  and sets blendshapes (x100) only on ``Apply``;
* ``ChatAnyoneWebSocketClient`` connected to the real :class:`bridge.ws_server.FrameBroadcaster` applies the
  frames; rest-relative rotations land on rigs whose rest rotations are not identity (and that lack bones)
  with every bone's orientation equal to forward kinematics of the stream.

``mcs`` knows C# up to 7.2, so the scripts are compiled with ``-langversion:7.2`` (a subset of Unity's 7.3).
"""
from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import msgpack
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from bridge import protocol
from bridge.vmc import VMCSender, blendshape_values
from bridge.ws_server import FrameBroadcaster
from motion.conventions import (
    ARKIT_INDEX, ARKIT_NAMES, SMPLX_JOINT_NAMES, SMPLX_PARENTS, SMPLX_TO_UNITY,
    position_to_unity, quat_to_unity, rest_offsets,
)
from motion.frames import MotionFrame, clip_frames

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SCRIPTS = REPO / "unity_sample" / "Assets" / "ChatAnyone" / "Scripts"
MCS, MONO = shutil.which("mcs"), shutil.which("mono")
pytestmark = pytest.mark.skipif(not (MCS and MONO), reason="needs Debian's mono-mcs and mono-runtime (installed by .ci/run)")
LANG = "-langversion:7.2"


def mcs(*args: str, cwd: Path) -> str:
    r = subprocess.run(["nice", "-n", "19", MCS, LANG, "-warn:4", *args], cwd=cwd, capture_output=True, text=True, timeout=300)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    return out


@pytest.fixture(scope="module")
def build(tmp_path_factory) -> dict:
    """Stubs, the scripts (without and with CHATANYONE_UNIVRM10) and the harness, compiled into a tmp dir."""
    d = tmp_path_factory.mktemp("unity_build")
    stubs = HERE / "stubs"
    mcs("-target:library", "-out:UnityEngine.dll", str(stubs / "UnityEngine.cs"), cwd=d)
    mcs("-target:library", "-r:UnityEngine.dll", "-out:uOSC.dll", str(stubs / "uOSC.cs"), cwd=d)
    mcs("-target:library", "-r:UnityEngine.dll", "-out:UniVRM10.dll", str(stubs / "UniVRM10.cs"), cwd=d)
    scripts = sorted(str(p) for p in SCRIPTS.glob("*.cs"))
    plain = mcs("-target:library", "-r:UnityEngine.dll", "-r:uOSC.dll", "-out:ChatAnyonePlain.dll", *scripts, cwd=d)
    vrm = mcs("-target:library", "-define:CHATANYONE_UNIVRM10", "-r:UnityEngine.dll", "-r:uOSC.dll", "-r:UniVRM10.dll",
              "-out:ChatAnyone.dll", *scripts, cwd=d)
    mcs("-r:UnityEngine.dll", "-r:uOSC.dll", "-r:UniVRM10.dll", "-r:ChatAnyone.dll", "-out:Harness.exe",
        str(HERE / "harness" / "Harness.cs"), cwd=d)
    return {"dir": d, "plain_output": plain, "vrm_output": vrm}


def harness(build: dict, *args: str, timeout: float = 120) -> object:
    r = subprocess.run(["nice", "-n", "19", MONO, str(build["dir"] / "Harness.exe"), *map(str, args)],
                       capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(r.stdout)


def write_files(tmp_path: Path, prefix: str, blobs: list[bytes]) -> list[Path]:
    paths = []
    for i, b in enumerate(blobs):
        p = tmp_path / f"{prefix}{i:04d}.bin"
        p.write_bytes(b)
        paths.append(p)
    return paths


def bits_to_f32(bits: list[int]) -> np.ndarray:
    return np.asarray(bits, dtype=np.uint32).view(np.float32)


# --------------------------------------------------------------------------------------------------
# Frames and rigs
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def clip():
    from tests.exporters.sample_clip import sample_clip
    return sample_clip()


def strong_frame(seed: int, index: int = 7) -> MotionFrame:
    """A frame with large rotations on every joint (up to ~100 degrees), spread face weights, a translation."""
    rng = np.random.default_rng(seed)
    rotvec = rng.normal(size=(55, 3)) * 0.6
    rot = Rotation.from_rotvec(rotvec).as_quat().astype(np.float32)
    face = rng.uniform(0, 1, 52).astype(np.float32)
    return MotionFrame(index, index / 30.0, face, rot, np.array([0.05, -0.02, 0.12], np.float32))


def unity_q(q: np.ndarray) -> np.ndarray:
    return np.asarray(quat_to_unity(q), np.float64)


def R(q) -> Rotation:
    return Rotation.from_quat(np.asarray(q, np.float64))


def angle(a, b) -> float:
    """Angle in radians between two rotations given as xyzw quaternions."""
    return float((R(a).inv() * R(b)).magnitude())


UNITY_NAMES = [SMPLX_TO_UNITY[n] for n in SMPLX_JOINT_NAMES]


class RigSpec:
    """A humanoid rig for the harness: our skeleton's hierarchy with chosen rest local rotations.

    ``twisted``: every bone's rest local rotation is a random rotation (a non-normalized avatar, e.g. an FBX
    rig), and the bones hang under an "Armature" node turned -90 degrees about X (as Blender exports).
    ``drop``: Unity bone names the avatar lacks (their children hang from the nearest present ancestor).
    """

    def __init__(self, twisted: bool = False, drop: tuple[str, ...] = (), seed: int = 0, meshes=None, vrm=None,
                 root_rotation=(0, 0, 0, 1)):
        rng = np.random.default_rng(seed)
        self.lines: list[str] = []
        self.root_rotation = np.asarray(root_rotation, np.float64)
        self.lines.append("root 1.5 0 -2 " + " ".join(f"{v:.9g}" for v in self.root_rotation))
        self.parent_transform: dict[str, str] = {}
        self.local: dict[str, np.ndarray] = {}
        self.local_position: dict[str, np.ndarray] = {}
        top = "-"
        self.node_rotation = np.array([0, 0, 0, 1.0])
        if twisted:
            self.node_rotation = Rotation.from_euler("x", -90, degrees=True).as_quat()
            self.lines.append("node Armature - 0 0 0 " + " ".join(f"{v:.9g}" for v in self.node_rotation))
            top = "Armature"
        offsets = position_to_unity(rest_offsets())
        self.present = [u for u in UNITY_NAMES if u not in drop]
        for j, name in enumerate(SMPLX_JOINT_NAMES):
            u = SMPLX_TO_UNITY[name]
            if u in drop:
                continue
            p = SMPLX_PARENTS[j]
            while p >= 0 and UNITY_NAMES[p] in drop:
                p = SMPLX_PARENTS[p]
            parent = UNITY_NAMES[p] if p >= 0 else top
            q = Rotation.random(random_state=rng.integers(1 << 31)).as_quat() if twisted else np.array([0, 0, 0, 1.0])
            pos = offsets[j]
            self.parent_transform[u] = parent
            self.local[u] = q
            self.local_position[u] = pos
            self.lines.append(f"bone {u} {parent} " + " ".join(f"{v:.9g}" for v in (*pos, *q)))
        for name, shapes in (meshes or {}).items():
            self.lines.append(f"mesh {name} {','.join(shapes)}")
        if vrm:
            self.lines.append("vrm " + ",".join(vrm))

    def write(self, path: Path) -> Path:
        path.write_text("\n".join(self.lines) + "\n")
        return path

    def rest_root_relative(self, u: str) -> Rotation:
        """The bone's rest rotation relative to the avatar root (W)."""
        r = R(self.local[u])
        parent = self.parent_transform[u]
        while parent not in ("-", "Armature"):
            r = R(self.local[parent]) * r
            parent = self.parent_transform[parent]
        if parent == "Armature":
            r = R(self.node_rotation) * r
        return r


def world_deltas(rotations: np.ndarray) -> list[Rotation]:
    """Forward kinematics of rest-relative local rotations: each joint's rotation in the avatar frame (D)."""
    out: list[Rotation] = []
    for j in range(len(SMPLX_JOINT_NAMES)):
        r = R(rotations[j])
        p = SMPLX_PARENTS[j]
        out.append(r if p < 0 else out[p] * r)
    return out


def expected_root_relative(rig: RigSpec, rotations: np.ndarray) -> dict[str, np.ndarray]:
    """W'_j = U(D_j) * W_j: the posed bone orientations (Unity axes, relative to the root) that retargeting
    rest-relative rotations must give, whatever the rig's rest rotations."""
    d = world_deltas(rotations)
    out = {}
    for j, name in enumerate(SMPLX_JOINT_NAMES):
        u = SMPLX_TO_UNITY[name]
        if u in rig.local:
            out[u] = (R(unity_q(d[j].as_quat())) * rig.rest_root_relative(u)).as_quat()
    return out


# --------------------------------------------------------------------------------------------------
# Compilation and conventions
# --------------------------------------------------------------------------------------------------
def test_scripts_compile_as_csharp_7_without_warnings(build):
    for key in ("plain_output", "vrm_output"):
        assert "warning" not in build[key].lower(), build[key]
        assert "error" not in build[key].lower(), build[key]
    assert (build["dir"] / "ChatAnyonePlain.dll").stat().st_size > 10_000


def test_mcs_rejects_syntax_newer_than_the_language_version(build, tmp_path):
    """The compile check is real: C# 8 syntax (a switch expression) in a script fails under our flags."""
    src = tmp_path / "Bad.cs"
    src.write_text("class Bad { static string F(int x) { return x switch { 1 => \"a\", _ => \"b\" }; } }\n")
    r = subprocess.run([MCS, LANG, "-target:library", "-out:" + str(tmp_path / "Bad.dll"), str(src)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0


def test_bone_table_and_axes_match_python(build):
    out = harness(build, "conventions")
    assert out["smplx_to_unity"] == dict(SMPLX_TO_UNITY)
    assert out["rejects"] == [False] * 6
    np.testing.assert_allclose(out["rotation"], quat_to_unity(np.array([0.1, 0.2, 0.3, 0.9], np.float32)), rtol=0, atol=1e-7)
    np.testing.assert_allclose(out["position"], position_to_unity(np.array([1, 2, 3], np.float32)), rtol=0, atol=0)


# --------------------------------------------------------------------------------------------------
# MessagePack and the stream protocol
# --------------------------------------------------------------------------------------------------
def test_decodes_protocol_bytes_of_a_real_clip_bit_for_bit(build, clip, tmp_path):
    frames = list(clip_frames(clip))
    blobs = [protocol.encode_header(clip.fps)] + [protocol.encode_frame(f) for f in frames] + [protocol.encode_end(len(frames))]
    out = harness(build, "decode", *write_files(tmp_path, "m", blobs))
    header, decoded, end = out[0], out[1:-1], out[-1]
    assert header["type"] == "header" and header["version"] == protocol.VERSION
    assert header["fps"] == clip.fps
    assert header["face_names"] == list(ARKIT_NAMES)
    assert header["joint_names"] == list(SMPLX_JOINT_NAMES)
    assert header["parents"] == list(SMPLX_PARENTS)
    assert (header["rotation"], header["axes"]) == (protocol.ROTATION_CONVENTION, protocol.AXES)
    assert end == {"type": "end", "frames": len(frames)}
    assert len(decoded) == len(frames) == clip.face.shape[0]
    for f, d in zip(frames, decoded):
        assert d["seq"] == f.index and d["time"] == pytest.approx(f.time_s, abs=0)
        np.testing.assert_array_equal(bits_to_f32(d["face_bits"]), f.face.astype(np.float32))
        np.testing.assert_array_equal(bits_to_f32(d["rotations_bits"]), f.rotations.astype(np.float32).reshape(-1))
        np.testing.assert_array_equal(bits_to_f32(d["translation_bits"]), f.translation.astype(np.float32))
    # the clip moves: a decoder returning one frame's values for all would fail above
    assert np.ptp(clip.face[:, ARKIT_INDEX["jawOpen"]]) > 0.1


def random_tree(rng: np.random.Generator, depth: int = 0):
    kind = rng.integers(0, 9 if depth < 3 else 6)
    if kind == 0:
        return None if rng.random() < 0.3 else bool(rng.integers(0, 2))
    if kind == 1:  # integers of every width, both signs
        bits = int(rng.choice([4, 7, 8, 15, 16, 31, 32, 63]))
        v = int(rng.integers(0, 1 << bits, dtype=np.uint64)) if bits < 63 else int(rng.integers(0, (1 << 63) - 1, dtype=np.int64))
        return -v if rng.random() < 0.5 else v
    if kind == 2:  # uint64 above the int64 range
        return (1 << 63) + int(rng.integers(0, 1 << 62))
    if kind == 3:
        return float(rng.normal() * 10.0 ** int(rng.integers(-30, 30)))
    if kind == 4:  # str of fix/8/16 lengths, non-ASCII included
        n = int(rng.choice([0, 5, 31, 32, 255, 256, 300]))
        return "".join(rng.choice(list("aZ09 é漢\U0001f600"), n))
    if kind == 5:
        return bytes(rng.integers(0, 256, int(rng.choice([0, 3, 255, 256, 500]))).astype(np.uint8))
    if kind in (6, 7):
        return [random_tree(rng, depth + 1) for _ in range(int(rng.choice([0, 2, 15, 16, 20])))]
    return {f"k{i}" + "é" * (i % 2): random_tree(rng, depth + 1) for i in range(int(rng.choice([0, 3, 15, 16, 17])))}


def to_tree(v):
    """Python msgpack values in the harness's generic JSON form."""
    if isinstance(v, bool) or v is None or isinstance(v, (int, str)):
        return v
    if isinstance(v, float):
        return {"f": v}
    if isinstance(v, bytes):
        return {"bin": v.hex()}
    if isinstance(v, list):
        return [to_tree(x) for x in v]
    return {"map": {k: to_tree(x) for k, x in v.items()}}


def from_harness(v):
    if isinstance(v, dict) and set(v) == {"f"}:
        return {"f": float(v["f"])}
    if isinstance(v, dict) and "map" in v:
        return {"map": {k: from_harness(x) for k, x in v["map"].items()}}
    if isinstance(v, list):
        return [from_harness(x) for x in v]
    return v


def test_msgpack_reader_reads_every_type_like_python_msgpack(build, tmp_path):
    rng = np.random.default_rng(11)
    values = [random_tree(rng) for _ in range(80)]
    values += [2 ** 64 - 1, -(2 ** 63), 1.5, {"single": 0.1}, [1.0e300, -0.0],
               "é" * 70000, bytes(range(256)) * 300, list(range(70000)), {f"k{i}": i for i in range(70000)}]  # 32-bit lengths
    blobs = [msgpack.packb(v, use_bin_type=True) for v in values]
    blobs.append(msgpack.packb({"single": 0.1, "x": [1.25, -3.0e-20]}, use_bin_type=True, use_single_float=True))
    out = harness(build, "msgpack", *write_files(tmp_path, "v", blobs))
    for blob, o in zip(blobs, out):
        assert "value" in o, o
        expected = to_tree(msgpack.unpackb(blob, raw=False, strict_map_key=False))
        assert from_harness(o["value"]) == expected
    # the single-float message was read as float32, like Python's msgpack
    assert from_harness(out[-1]["value"])["map"]["single"]["f"] == float(np.float32(0.1))
    # the str32/bin32/array32/map32 forms were exercised
    assert {b[0] for b in blobs} >= {0xdb, 0xc6, 0xdd, 0xdf}


@pytest.mark.parametrize("blob, message", [
    (b"", "truncated"),
    (msgpack.packb({"type": "frame", "seq": 1}), "missing 'time'"),
    (protocol.encode_header(30.0)[:-3], "truncated"),
    (protocol.encode_header(30.0) + b"\x00", "trailing"),
    (msgpack.packb([1, 2]), "must be a msgpack map"),
    (msgpack.packb({1: "type"}, use_bin_type=True), "keys must be strings"),
    (msgpack.packb({"type": 3}), "'type' must be a string"),
    (b"\xc1", "unsupported type byte 0xc1"),
    (b"\xd4\x01\x00", "unsupported type byte 0xd4"),
    (b"\xa2\xff\xfe", "not valid UTF-8"),
    (b"\xdf\xff\xff\xff\xff", "truncated"),
    (b"\x91" * 40 + b"\x00", "nested deeper"),
    (msgpack.packb({**msgpack.unpackb(protocol.encode_header(30.0)), "version": 2}, use_bin_type=True), "version 2 is not supported"),
    (msgpack.packb({**msgpack.unpackb(protocol.encode_header(30.0)), "rotation": "euler"}, use_bin_type=True), "unknown conventions"),
    (msgpack.packb({"type": "frame", "seq": 0, "time": 0.0, "face": b"\0" * 8, "rotations": b"\0" * 15,
                    "translation": b"\0" * 12}, use_bin_type=True), "not a multiple of 4"),
    (msgpack.packb({"type": "frame", "seq": 0, "time": 0.0, "face": "text", "rotations": b"", "translation": b""},
                   use_bin_type=True), "'face' must be binary"),
])
def test_malformed_messages_give_a_clear_error(build, tmp_path, blob, message):
    out = harness(build, "decode", *write_files(tmp_path, "bad", [blob]))
    assert message in out[0].get("error", ""), out[0]


def test_fuzzed_messages_never_crash_the_decoder(build, tmp_path):
    """Mutated protocol messages: each decodes or gives a protocol error, never another exception."""
    rng = np.random.default_rng(5)
    base = [protocol.encode_header(30.0), protocol.encode_frame(strong_frame(1)), protocol.encode_end(3)]
    blobs = []
    for i in range(300):
        b = bytearray(base[i % 3])
        for _ in range(int(rng.integers(1, 6))):
            op = rng.integers(0, 3)
            if not b:
                break
            pos = int(rng.integers(0, len(b)))
            if op == 0:
                b[pos] = int(rng.integers(0, 256))
            elif op == 1:
                del b[pos:pos + int(rng.integers(1, 40))]
            else:
                b[pos:pos] = bytes(rng.integers(0, 256, int(rng.integers(1, 9))).astype(np.uint8))
        blobs.append(bytes(b))
    blobs += [bytes(rng.integers(0, 256, int(n)).astype(np.uint8)) for n in rng.integers(1, 200, 50)]
    out = harness(build, "decode", *write_files(tmp_path, "fz", blobs))  # an uncaught exception fails here
    assert len(out) == len(blobs)
    assert all(("error" in o) != ("type" in o) for o in out)
    assert sum("error" in o for o in out) > 200


# --------------------------------------------------------------------------------------------------
# VMC: real VMCSender bundles -> VmcReceiver
# --------------------------------------------------------------------------------------------------
FACE_MESHES = {
    "Face": ["jawOpen", "EyeBlinkLeft", "blendShape1.mouthSmileLeft", "Angry", "Custom"],
    "Teeth": ["JawOpen"],
}


def vmc_packets(frames: list[MotionFrame], mode: str) -> list[bytes]:
    sender = VMCSender("127.0.0.1", 39539, blendshapes=mode)
    try:
        return [b for f in frames for b in sender.encode(f)]
    finally:
        sender.close()


def run_vmc(build, tmp_path, rig: RigSpec, packets: list[bytes], *flags: str) -> list[dict]:
    out = harness(build, "vmc", rig.write(tmp_path / "rig.txt"), *flags, *write_files(tmp_path, "p", packets))
    return out


def test_vmc_poses_bones_and_applies_blendshapes_only_on_apply(build, tmp_path):
    frames = [strong_frame(2, 0), strong_frame(3, 1)]
    packets = vmc_packets(frames, "perfectsync")
    apply_at = [i for i, p in enumerate(packets) if b"/VMC/Ext/Blend/Apply" in p]
    assert len(apply_at) == 2 and len(packets) > 4  # several bundles per frame; Apply once per frame
    rig = RigSpec(meshes=FACE_MESHES)
    snaps = run_vmc(build, tmp_path, rig, packets)
    final = snaps[len(packets) - 1]

    # identity-rest rig: localRotation is the received Unity-axes rotation, for all 55 bones
    for j, u in enumerate(UNITY_NAMES):
        assert angle(final["local_rotation"][u], unity_q(frames[1].rotations[j])) < 2e-6, u
    assert final["bones_applied"] == 2 * 55 and final["bones_unknown"] == 0 and final["malformed"] == 0
    # bone positions are left alone by default; the root (VMC "root" at the origin) stays where it was put
    np.testing.assert_allclose(final["local_position"]["Hips"], rig.local_position["Hips"], atol=1e-6)
    np.testing.assert_allclose(final["root_position"], [1.5, 0, -2], atol=1e-6)

    def weights(face):
        w = {n: 100 * np.float32(np.clip(face[ARKIT_INDEX[n]], 0, 1)) for n in ("jawOpen", "eyeBlinkLeft", "mouthSmileLeft")}
        return {"Face/jawOpen": w["jawOpen"], "Teeth/JawOpen": w["jawOpen"], "Face/EyeBlinkLeft": w["eyeBlinkLeft"],
                "Face/blendShape1.mouthSmileLeft": w["mouthSmileLeft"], "Face/Angry": 0.0, "Face/Custom": 0.0}

    for i, snap in enumerate(snaps[:-1]):
        applied = [k for k, a in enumerate(apply_at) if a <= i]
        expected = weights(frames[applied[-1]].face) if applied else {k: 0.0 for k in weights(frames[0].face)}
        for key, w in expected.items():
            assert snap["weights"][key] == pytest.approx(float(w), abs=1e-3), (i, key)
    assert final["blend_applies"] == 2
    assert final["blend_unknown"] == 2 * (52 - 3)  # 49 ARKit names this avatar has no blendshape for
    # the receiver unsubscribes from the server when disabled
    assert snaps[0]["listeners"] == 1 and snaps[-1]["listeners_after_disable"] == 0


def test_vmc_rest_relative_rotations_on_a_twisted_rig(build, tmp_path):
    """On a rig whose rest rotations are arbitrary, every bone ends at U(D) * W (forward kinematics of the
    stream applied to the rest pose); writing the rotations raw (--raw) would not."""
    frame = strong_frame(4)
    rig = RigSpec(twisted=True, seed=1, root_rotation=Rotation.from_euler("y", 120, degrees=True).as_quat())
    packets = vmc_packets([frame], "vrm0")
    expected = expected_root_relative(rig, frame.rotations)
    final = run_vmc(build, tmp_path, rig, packets)[-2]
    errors = [angle(final["root_relative_rotation"][u], q) for u, q in expected.items()]
    assert max(errors) < 1e-4, max(errors)
    raw = run_vmc(build, tmp_path, rig, packets, "--raw")[-2]
    for j, u in enumerate(UNITY_NAMES):
        assert angle(raw["local_rotation"][u], unity_q(frame.rotations[j])) < 2e-6
    raw_errors = [angle(raw["root_relative_rotation"][u], q) for u, q in expected.items()]
    assert np.median(raw_errors) > 0.3  # radians: the test tells the two apart


def test_vmc_bone_positions_option_and_bad_messages(build, tmp_path):
    from pythonosc.osc_message_builder import OscMessageBuilder

    def msg(address, *args):
        b = OscMessageBuilder(address=address)
        for v, t in args:
            b.add_arg(v, t)
        return b.build().dgram

    f = [(0.25, "f"), (1.0, "f"), (-0.5, "f"), (0.0, "f"), (0.0, "f"), (0.0, "f"), (1.0, "f")]
    packets = [
        msg("/VMC/Ext/Bone/Pos", ("Neck", "s"), *f),
        msg("/VMC/Ext/Bone/Pos", ("Neck", "s"), *f[:-1]),                    # 7 arguments
        msg("/VMC/Ext/Bone/Pos", ("Tail", "s"), *f),                         # not a HumanBodyBones name
        msg("/VMC/Ext/Bone/Pos", ("Jaw", "s"), *f),                          # a bone this avatar lacks
        msg("/VMC/Ext/Bone/Pos", ("Head", "s"), (0, "i"), (1, "i"), (0, "i"), (0, "i"), (0, "i"), (0, "i"), (2, "i")),
        msg("/VMC/Ext/Blend/Val", ("Custom", "s")),                          # no value
        msg("/VMC/Ext/Root/Pos", ("root", "s"), (0.5, "f"), (0.0, "f"), (0.0, "f"), (0.0, "f"), (0.0, "f"), (0.0, "f"), (1.0, "f")),
    ]
    rig = RigSpec(drop=("Jaw",), meshes=FACE_MESHES, root_rotation=Rotation.from_euler("y", 90, degrees=True).as_quat())
    snaps = run_vmc(build, tmp_path, rig, packets, "--bone-positions")
    last = snaps[len(packets) - 1]
    np.testing.assert_allclose(snaps[0]["local_position"]["Neck"], [0.25, 1.0, -0.5], atol=1e-6)
    # OSC ints are accepted as numbers; the quaternion (0, 0, 0, 2) is normalised
    np.testing.assert_allclose(last["local_position"]["Head"], [0, 1, 0], atol=1e-6)
    assert angle(last["local_rotation"]["Head"], [0, 0, 0, 1]) < 1e-6
    assert (last["bones_applied"], last["bones_unknown"], last["malformed"]) == (2, 2, 2)
    assert sum("/VMC/Ext/Bone/Pos needs a bone name and 7 numbers" in line for line in last["log"]) == 1
    # the root moves relative to where it stood, along its own (turned) axes: +X local is -Z world here
    np.testing.assert_allclose(last["root_position"], [1.5, 0, -2.5], atol=1e-6)


def test_vmc_vrm0_presets_drive_vrm10_expressions(build, tmp_path):
    frame = strong_frame(6)
    vrm = ["aa", "ih", "ou", "ee", "oh", "blink", "blinkLeft", "blinkRight", "happy", "custom:JawOpen"]
    rig = RigSpec(meshes=FACE_MESHES, vrm=vrm)
    final = run_vmc(build, tmp_path, rig, vmc_packets([frame], "vrm0"))[-2]
    sent = dict(blendshape_values(frame.face, "vrm0"))
    expected = {"aa": sent["A"], "ih": sent["I"], "ou": sent["U"], "ee": sent["E"], "oh": sent["O"], "blink": sent["Blink"],
                "blinkLeft": sent["Blink_L"], "blinkRight": sent["Blink_R"], "happy": sent["Joy"], "JawOpen": 0.0}
    assert final["expressions"] == pytest.approx(expected, abs=1e-6)
    assert max(expected.values()) > 0.2
    # "Angry" is no expression of this avatar: it falls through to the mesh blendshape of that name
    assert final["weights"]["Face/Angry"] == pytest.approx(100 * sent["Angry"], abs=1e-3)


# --------------------------------------------------------------------------------------------------
# WebSocket client
# --------------------------------------------------------------------------------------------------
def check_frame_applied(snap: dict, rig: RigSpec, frame: MotionFrame, tol: float = 1e-4) -> None:
    expected = expected_root_relative(rig, frame.rotations)
    errors = {u: angle(snap["root_relative_rotation"][u], q) for u, q in expected.items()}
    assert max(errors.values()) < tol, sorted(errors.items(), key=lambda kv: -kv[1])[:3]
    face = np.clip(frame.face, 0, 1).astype(np.float32)
    for mesh, shapes in FACE_MESHES.items():
        for shape in shapes:
            key = shape.split(".")[-1].lower()
            arkit = {n.lower(): n for n in ARKIT_NAMES}.get(key)
            want = 100 * np.float32(face[ARKIT_INDEX[arkit]]) if arkit else 0.0
            assert snap["weights"][f"{mesh}/{shape}"] == pytest.approx(float(want), abs=1e-3), shape


def test_ws_client_applies_frames_to_rigs_with_other_rest_poses_and_missing_bones(build, tmp_path):
    frames = [strong_frame(7, 0), strong_frame(8, 1)]
    blobs = [protocol.encode_frame(frames[0]), protocol.encode_header(30.0)] + [protocol.encode_frame(f) for f in frames]
    files = write_files(tmp_path, "w", blobs)
    drop = ("UpperChest", "Jaw", "LeftToes", "RightToes", "LeftEye", "RightEye", "LeftIndexIntermediate")
    for rig in (RigSpec(meshes=FACE_MESHES), RigSpec(twisted=True, seed=3, drop=drop, meshes=FACE_MESHES,
                                                    root_rotation=Rotation.from_euler("y", -60, degrees=True).as_quat())):
        snaps = harness(build, "ws-apply", rig.write(tmp_path / "rig.txt"), *files)
        assert snaps[0]["frames_applied"] == 0 and snaps[0]["frames_without_header"] == 1  # a frame before the header
        for snap, frame in zip(snaps[2:], frames):
            check_frame_applied(snap, rig, frame)
    # identity rig: localRotation is exactly the converted stream rotation; the hips move by the translation
    rig = RigSpec(meshes=FACE_MESHES)
    snap = harness(build, "ws-apply", rig.write(tmp_path / "rig.txt"), *files)[-1]
    for j, u in enumerate(UNITY_NAMES):
        assert angle(snap["local_rotation"][u], unity_q(frames[1].rotations[j])) < 2e-6
    np.testing.assert_allclose(snap["local_position"]["Hips"],
                               rig.local_position["Hips"] + position_to_unity(frames[1].translation), atol=1e-6)
    assert (snap["last_seq"], snap["frames_applied"]) == (1, 2)


def test_ws_client_missing_bone_rotation_is_carried_to_children(build, tmp_path):
    """Without UpperChest, Neck and the shoulders still reach FK of the full chain (spine3's rotation is
    carried down); dropping it instead would be off by spine3's angle."""
    frame = strong_frame(9)
    rig = RigSpec(drop=("UpperChest",), meshes=FACE_MESHES)
    files = write_files(tmp_path, "c", [protocol.encode_header(30.0), protocol.encode_frame(frame)])
    snap = harness(build, "ws-apply", rig.write(tmp_path / "rig.txt"), *files)[-1]
    check_frame_applied(snap, rig, frame)
    spine3 = R(frame.rotations[SMPLX_JOINT_NAMES.index("spine3")]).magnitude()
    assert spine3 > 0.2


def test_ws_client_perfect_sync_names_reach_vrm_expressions_first(build, tmp_path):
    frame = strong_frame(10)
    rig = RigSpec(meshes=FACE_MESHES, vrm=["aa", "custom:JawOpen"])
    files = write_files(tmp_path, "e", [protocol.encode_header(30.0), protocol.encode_frame(frame)])
    snap = harness(build, "ws-apply", rig.write(tmp_path / "rig.txt"), *files)[-1]
    jaw = float(np.float32(frame.face[ARKIT_INDEX["jawOpen"]]))
    assert snap["expressions"] == pytest.approx({"aa": 0.0, "JawOpen": jaw}, abs=1e-6)
    assert snap["weights"]["Face/jawOpen"] == 0.0 and snap["weights"]["Teeth/JawOpen"] == 0.0
    assert snap["weights"]["Face/EyeBlinkLeft"] == pytest.approx(100 * float(frame.face[ARKIT_INDEX["eyeBlinkLeft"]]), abs=1e-3)


def run_live(build, tmp_path, rig: RigSpec, url: str, token: str, publish=None, timeout_s: float = 60) -> dict:
    """Start the harness's live client and (optionally) publish while it runs; returns its snapshot."""
    cmd = ["nice", "-n", "19", MONO, str(build["dir"] / "Harness.exe"), "ws-live", str(rig.write(tmp_path / "rig.txt")),
           url, token or "-", str(timeout_s)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        if publish is not None:
            publish()
        out, err = proc.communicate(timeout=timeout_s + 30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out + err
    return json.loads(out)


def test_ws_client_receives_the_real_server_stream(build, clip, tmp_path):
    frames = list(clip_frames(clip))[:40]
    frames[-1] = strong_frame(12, frames[-1].index)  # a last pose far from rest
    rig = RigSpec(twisted=True, seed=5, drop=("UpperChest",), meshes=FACE_MESHES)
    log: list[str] = []
    server = FrameBroadcaster(port=0, token="unity-sample-secret", fps=clip.fps, log=log.append).start()

    def publish():
        deadline = time.monotonic() + 30
        while not any(c.connected and c.sent >= 1 for c in server.stats.clients):  # header sent to the client
            assert time.monotonic() < deadline, "the C# client did not connect"
            time.sleep(0.02)
        for f in frames:
            server.publish(f)
            time.sleep(1 / 60)
        server.publish_end(len(frames))
        server.stop(drain_s=5)  # closes the connection (1001): the client's task ends

    try:
        snap = run_live(build, tmp_path, rig, f"ws://127.0.0.1:{server.port}", "unity-sample-secret", publish)
    finally:
        server.stop()
    assert snap["error"] is None, snap["error"]
    assert snap["finished"] and snap["connections"] == 1 and snap["end_messages"] == 1
    assert snap["frames_received"] == len(frames)
    assert snap["frames_applied"] + snap["frames_skipped"] == len(frames)
    assert snap["frames_applied"] >= 1  # how many the polling loop caught depends on the machine's load
    seqs = [int(s) for s in snap["applied_seqs"]]
    assert seqs == sorted(seqs) and seqs[-1] == frames[-1].index
    assert (snap["last_seq"], snap["last_time"]) == (frames[-1].index, pytest.approx(frames[-1].time_s))
    check_frame_applied(snap, rig, frames[-1])
    assert server.stats.rejected == 0


def test_ws_client_reports_refusal_and_absent_server(build, tmp_path):
    rig = RigSpec(meshes=FACE_MESHES)
    server = FrameBroadcaster(port=0, token="right", log=lambda m: None).start()
    try:
        snap = run_live(build, tmp_path, rig, f"ws://127.0.0.1:{server.port}", "wrong", timeout_s=20)
    finally:
        server.stop()
    assert snap["finished"] and snap["connections"] == 0 and snap["frames_received"] == 0
    assert snap["error"].startswith(f"cannot receive from ws://127.0.0.1:{server.port}/"), snap["error"]
    assert server.stats.rejected == 1
    assert any("ChatAnyone: cannot receive" in line for line in snap["log"])  # logged once on the main thread
    # nothing listening on the (now closed) port
    snap = run_live(build, tmp_path, rig, f"ws://127.0.0.1:{server.port}", "", timeout_s=20)
    assert snap["finished"] and snap["connections"] == 0 and snap["error"].startswith("cannot receive from")
    # untouched pose
    assert all(angle(q, [0, 0, 0, 1]) < 1e-7 for q in snap["local_rotation"].values())
