"""VMC sender, decoded on loopback by python-osc's server + dispatcher and by raw datagram parsing.

(The npm ``osc`` decoder in Node is in ``test_vmc_node.py``.)
"""
import math

import numpy as np
import pytest
from pythonosc import osc_bundle, osc_message, osc_packet
from pythonosc.parsing import osc_types

from bridge.vmc import (
    BONE_NAMES, MAX_BUNDLE_BYTES, VRM0_PRESETS, VMCSender, blendshape_values, vrm0_matrix,
)
from motion.clip import MotionClip
from motion.conventions import (
    ARKIT_INDEX, ARKIT_NAMES, JOINT_INDEX, NUM_ARKIT, NUM_JOINTS, SMPLX_JOINT_NAMES, SMPLX_TO_UNITY,
    rest_offsets,
)
from motion.errors import ChatAnyoneError
from motion.frames import MotionFrame, clip_frames
from tests.bridge.helpers import OscCollector, UdpCollector, synthetic_clip, virtual_pacer

EXPECTED_ARGS = {"/VMC/Ext/Root/Pos": 8, "/VMC/Ext/Bone/Pos": 8, "/VMC/Ext/Blend/Val": 2,
                 "/VMC/Ext/Blend/Apply": 0, "/VMC/Ext/OK": 3, "/VMC/Ext/T": 1}


def identity_rotations():
    q = np.zeros((NUM_JOINTS, 4), np.float32)
    q[:, 3] = 1
    return q


def split_frames(messages):
    """Group an arrival-ordered message list into frames (each starts with /VMC/Ext/Root/Pos)."""
    frames = []
    for address, args in messages:
        if address == "/VMC/Ext/Root/Pos":
            frames.append([])
        frames[-1].append((address, args))
    return frames


def stream(clip, **kw):
    """Send ``clip`` through the pacer at 60 fps to a python-osc server; the received messages."""
    with OscCollector() as rx:
        sender = VMCSender("127.0.0.1", rx.port, **kw)
        stats = virtual_pacer([sender], source_fps=clip.fps).run(clip_frames(clip))
        sender.close()
        msgs = rx.wait_quiet()
    return msgs, stats["vmc"]


@pytest.fixture(scope="module")
def received():
    clip = synthetic_clip(12)
    msgs, stats = stream(clip)
    return clip, msgs, stats


def test_every_address_typetag_and_argument_count(received):
    clip, msgs, stats = received
    assert stats.sent == 2 * clip.num_frames - 1 and stats.errors == 0     # 60 fps from 30 fps
    frames = split_frames(msgs)
    assert len(frames) == stats.sent
    for frame in frames:
        addresses = [a for a, _ in frame]
        assert set(addresses) == set(EXPECTED_ARGS)
        for address, args in frame:
            assert len(args) == EXPECTED_ARGS[address], address
            if address == "/VMC/Ext/OK":
                assert args == [1, 3, 0] and all(type(v) is int for v in args)   # the spec's ints
            elif address in ("/VMC/Ext/Root/Pos", "/VMC/Ext/Bone/Pos", "/VMC/Ext/Blend/Val"):
                assert type(args[0]) is str
                assert all(type(v) is float for v in args[1:]), (address, args)
            elif address == "/VMC/Ext/T":
                assert type(args[0]) is float
        bones = [args[0] for a, args in frame if a == "/VMC/Ext/Bone/Pos"]
        assert bones == list(BONE_NAMES) and len(bones) == NUM_JOINTS
        assert frame[0] == ("/VMC/Ext/Root/Pos", ["root", 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0])


def test_bone_names_are_unity_humanbodybones(received):
    assert set(BONE_NAMES) == set(SMPLX_TO_UNITY.values())
    for name in ("Hips", "Spine", "Chest", "UpperChest", "Neck", "Head", "LeftUpperArm", "RightLowerArm",
                 "LeftHand", "LeftThumbProximal", "RightLittleDistal", "LeftEye", "Jaw"):
        assert name in BONE_NAMES


def test_apply_follows_each_group_of_val(received):
    _, msgs, _ = received
    frames = split_frames(msgs)
    for frame in frames:
        addresses = [a for a, _ in frame]
        vals = [i for i, a in enumerate(addresses) if a == "/VMC/Ext/Blend/Val"]
        applies = [i for i, a in enumerate(addresses) if a == "/VMC/Ext/Blend/Apply"]
        assert len(applies) == 1 and len(vals) == len(VRM0_PRESETS)
        assert vals == list(range(vals[0], vals[0] + len(vals)))        # one contiguous group ...
        assert applies[0] == vals[-1] + 1                               # ... then Apply
        names = [frame[i][1][0] for i in vals]
        assert names == list(VRM0_PRESETS)


def test_quaternions_are_unit_and_match_the_clip_in_unity_axes(received):
    clip, msgs, _ = received
    frames = split_frames(msgs)
    for k, frame in enumerate(frames):
        bones = {args[0]: np.array(args[1:]) for a, args in frame if a == "/VMC/Ext/Bone/Pos"}
        for name, v in bones.items():
            assert abs(np.linalg.norm(v[3:]) - 1) < 1e-5
        if k % 2 == 0:                                                   # 60 fps tick on a 30 fps frame
            src = clip.rotations[k // 2]
            for j, joint in enumerate(SMPLX_JOINT_NAMES):
                x, y, z, w = src[j]
                got = bones[SMPLX_TO_UNITY[joint]][3:]
                assert np.allclose(got, [x, -y, -z, w], atol=1e-6) or np.allclose(got, [-x, y, z, -w], atol=1e-6)


def test_bone_positions_are_rest_offsets_in_unity_axes(received):
    clip, msgs, _ = received
    off = rest_offsets()
    frame = split_frames(msgs)[2]                                        # tick 2 = source frame 1
    bones = {args[0]: np.array(args[1:4]) for a, args in frame if a == "/VMC/Ext/Bone/Pos"}
    el = off[JOINT_INDEX["left_elbow"]]
    assert el[0] > 0.1                                                   # our +X is the avatar's left ...
    assert np.allclose(bones["LeftLowerArm"], [-el[0], el[1], el[2]], atol=1e-6)   # ... Unity's -X
    hips = off[JOINT_INDEX["pelvis"]] + clip.translation[1]
    assert np.allclose(bones["Hips"], [-hips[0], hips[1], hips[2]], atol=1e-6)


def test_known_pose_left_elbow_90_degrees_about_plus_y():
    """Left elbow rotated +90 deg about +Y (right-handed, ours). Unity mirrors X, so the same physical
    rotation is -90 deg about Unity's +Y: q = (0, -sin 45, 0, cos 45); the tick between the two source
    frames (60 fps) is the slerp half-way, -45 deg: (0, -sin 22.5, 0, cos 22.5)."""
    rot = np.stack([identity_rotations(), identity_rotations()])
    s = math.sin(math.pi / 4)
    rot[1, JOINT_INDEX["left_elbow"]] = [0, s, 0, s]
    clip = MotionClip(30.0, np.zeros((2, NUM_ARKIT), np.float32), rot, None, {})
    msgs, stats = stream(clip)
    frames = split_frames(msgs)
    assert len(frames) == 3
    elbow = [np.array(next(args[4:] for a, args in f if a == "/VMC/Ext/Bone/Pos" and args[0] == "LeftLowerArm"))
             for f in frames]
    h = math.radians(22.5)
    assert np.allclose(elbow[0], [0, 0, 0, 1], atol=1e-6)
    assert np.allclose(elbow[1], [0, -math.sin(h), 0, math.cos(h)], atol=1e-6)
    assert np.allclose(elbow[2], [0, -s, 0, s], atol=1e-6)
    other = [args for a, args in frames[2] if a == "/VMC/Ext/Bone/Pos" and args[0] == "RightLowerArm"][0]
    assert other[4:] == [0.0, 0.0, 0.0, 1.0]


def test_perfect_sync_sends_the_52_arkit_names_in_upper_camel():
    clip = synthetic_clip(3)
    msgs, _ = stream(clip, blendshapes="perfectsync")
    frame = split_frames(msgs)[0]
    vals = [(args[0], args[1]) for a, args in frame if a == "/VMC/Ext/Blend/Val"]
    assert [n for n, _ in vals] == [n[0].upper() + n[1:] for n in ARKIT_NAMES]
    assert vals[ARKIT_INDEX["jawOpen"]][0] == "JawOpen" and vals[0][0] == "EyeBlinkLeft"
    assert np.allclose([v for _, v in vals], clip.face[0], atol=1e-6)
    assert [a for a, _ in frame].count("/VMC/Ext/Blend/Apply") == 1


def test_vrm0_presets_follow_the_documented_mapping():
    face = np.zeros(NUM_ARKIT, np.float32)
    face[ARKIT_INDEX["jawOpen"]] = 0.8
    face[ARKIT_INDEX["eyeBlinkLeft"]] = 1.0
    face[ARKIT_INDEX["eyeLookUpLeft"]] = face[ARKIT_INDEX["eyeLookUpRight"]] = 0.6
    face[ARKIT_INDEX["eyeLookOutLeft"]] = face[ARKIT_INDEX["eyeLookInRight"]] = 0.4
    w = dict(blendshape_values(face, "vrm0"))
    assert w["A"] == pytest.approx(0.8)                 # aa = jawOpen (no funnel/pucker)
    assert w["O"] == pytest.approx(0.4 * 0.8)           # oh = 0.6 funnel + 0.4 jawOpen
    assert w["E"] == pytest.approx(0.3 * 0.8)
    # the lids split as the VRMA exporter splits them: a left wink is Blink_L alone (Blink would close it twice)
    assert w["Blink_L"] == pytest.approx(1.0) and w["Blink_R"] == 0.0 and w["Blink"] == 0.0
    face[ARKIT_INDEX["eyeBlinkRight"]] = 0.6
    w2 = dict(blendshape_values(face, "vrm0"))
    assert w2["Blink"] == pytest.approx(0.6) and w2["Blink_L"] == pytest.approx(0.4) and w2["Blink_R"] == 0.0
    assert w["LookUp"] == pytest.approx(0.6) and w["LookLeft"] == pytest.approx(0.4) and w["LookRight"] == 0
    assert w["Joy"] == 0 and w["Sorrow"] == 0 and "Fun" not in w
    names, m = vrm0_matrix()
    assert m.shape == (NUM_ARKIT, len(names))
    with pytest.raises(ChatAnyoneError, match="blendshape mode"):
        blendshape_values(face, "vrm1")


def test_bundles_fit_1200_bytes_and_parse_as_osc_bundles():
    clip = synthetic_clip(4)
    for mode in ("vrm0", "perfectsync"):
        with UdpCollector() as rx:
            sender = VMCSender("127.0.0.1", rx.port, blendshapes=mode)
            for f in clip_frames(clip):
                sender.send(f)
            sender.close()
            grams = rx.wait_quiet()
        assert len(grams) >= 4 * 5
        for g in grams:
            assert len(g) <= MAX_BUNDLE_BYTES
            assert osc_bundle.OscBundle.dgram_is_bundle(g)
            for m in osc_packet.OscPacket(g).messages:
                dgram = m.message.dgram
                address, i = osc_types.get_string(dgram, 0)
                typetag, _ = osc_types.get_string(dgram, i)
                expect = {"/VMC/Ext/Bone/Pos": ",sfffffff", "/VMC/Ext/Root/Pos": ",sfffffff",
                          "/VMC/Ext/Blend/Val": ",sf", "/VMC/Ext/Blend/Apply": ",",
                          "/VMC/Ext/OK": ",iii", "/VMC/Ext/T": ",f"}[address]
                assert typetag == expect, (address, typetag)


def test_integer_and_numpy_values_still_go_out_as_floats():
    """A face of Python ints / float64 and an integer-valued rotation array must not produce 'i' or 'd'."""
    frame = MotionFrame(0, 0.0, np.zeros(NUM_ARKIT, np.int64), identity_rotations().astype(np.float64),
                        np.zeros(3, np.int32))
    sender = VMCSender("127.0.0.1", 9)
    for b in sender.encode(frame):
        for m in osc_bundle.OscBundle(b):
            if isinstance(m, osc_message.OscMessage) and m.address != "/VMC/Ext/OK":
                assert all(isinstance(v, (str, float)) for v in m.params), m.address
    sender.close()


@pytest.mark.parametrize("mode", ["vrm0", "perfectsync"])
def test_encoding_is_byte_for_byte_what_python_osc_builders_make(mode):
    """The fast path (templates + numpy float32) against python-osc's OscMessageBuilder/OscBundleBuilder."""
    from pythonosc import osc_bundle_builder, osc_message_builder
    frame = next(clip_frames(synthetic_clip(1)))
    sender = VMCSender("127.0.0.1", 9, blendshapes=mode)
    ours = sender.messages(frame)
    t = osc_message.OscMessage(ours[-1]).params[0]
    rot = frame.rotations.astype(np.float64) * [1, -1, -1, 1]
    rot /= np.linalg.norm(rot, axis=-1, keepdims=True)
    off = rest_offsets().astype(np.float64) * [-1, 1, 1]
    off[0] += frame.translation * np.float32([-1, 1, 1])

    def build(address, args):
        b = osc_message_builder.OscMessageBuilder(address=address)
        for v, tag in args:
            b.add_arg(v, tag)
        return b.build()

    ref = [build("/VMC/Ext/Root/Pos", [("root", "s")] + [(v, "f") for v in (0.0,) * 6 + (1.0,)])]
    ref += [build("/VMC/Ext/Bone/Pos", [(SMPLX_TO_UNITY[n], "s")] + [(float(v), "f") for v in (*off[j], *rot[j])])
            for j, n in enumerate(SMPLX_JOINT_NAMES)]
    ref += [build("/VMC/Ext/Blend/Val", [(n, "s"), (float(w), "f")]) for n, w in blendshape_values(frame.face, mode)]
    ref += [build("/VMC/Ext/Blend/Apply", []), build("/VMC/Ext/OK", [(1, "i"), (3, "i"), (0, "i")]),
            build("/VMC/Ext/T", [(t, "f")])]
    assert [m.dgram for m in ref] == ours
    bundles = sender.encode(frame)
    t2 = [m for m in osc_bundle.OscBundle(bundles[-1])][-1].params[0]      # /VMC/Ext/T is the clock: re-read
    ref[-1] = build("/VMC/Ext/T", [(t2, "f")])
    k = 0
    for b in bundles:                    # the same messages, grouped, through OscBundleBuilder
        n = len(osc_bundle.OscBundle(b)._contents)
        builder = osc_bundle_builder.OscBundleBuilder(osc_bundle_builder.IMMEDIATELY)
        for m in ref[k:k + n]:
            builder.add_content(m)
        assert builder.build().dgram == b
        k += n
    assert k == len(ref)
    sender.close()


def test_bad_destinations_are_clear_errors():
    with pytest.raises(ChatAnyoneError, match="cannot resolve host 'no-such-host.invalid'"):
        VMCSender("no-such-host.invalid", 39539)
    with pytest.raises(ChatAnyoneError, match="port must be 1..65535"):
        VMCSender("127.0.0.1", 70000)
    with pytest.raises(ChatAnyoneError, match="unknown blendshape mode"):
        VMCSender("127.0.0.1", 39539, blendshapes="arkit")
