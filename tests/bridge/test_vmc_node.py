"""VMC decoded independently in Node by the npm ``osc`` package (``tests/js/vmc_receive.mjs``)."""
import json
import math
import shutil
import subprocess

import numpy as np
import pytest

from bridge.vmc import BONE_NAMES, MAX_BUNDLE_BYTES, VRM0_PRESETS, VMCSender
from motion.clip import MotionClip
from motion.conventions import JOINT_INDEX, NUM_JOINTS
from motion.frames import clip_frames
from tests.bridge.helpers import free_port, synthetic_clip, virtual_pacer
from tests.conftest import REPO

SCRIPT = REPO / "tests" / "js" / "vmc_receive.mjs"
NODE = shutil.which("node")
pytestmark = pytest.mark.skipif(
    NODE is None or not (REPO / "tests/js/node_modules/osc").is_dir(),
    reason="node and tests/js/node_modules/osc are needed (npm ci --prefix tests/js)")

TYPES = {"/VMC/Ext/Root/Pos": "sfffffff", "/VMC/Ext/Bone/Pos": "sfffffff", "/VMC/Ext/Blend/Val": "sf",
         "/VMC/Ext/Blend/Apply": "", "/VMC/Ext/OK": "iii", "/VMC/Ext/T": "f"}


def receive_in_node(send) -> dict:
    port = free_port()
    proc = subprocess.Popen([NODE, str(SCRIPT), str(port), "800"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=REPO / "tests" / "js")
    try:
        assert json.loads(proc.stdout.readline()) == {"ready": port}
        send(port)
        out, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def node_stream():
    s = math.sin(math.pi / 4)
    clip = synthetic_clip(6)
    rot = clip.rotations.copy()
    rot[:, JOINT_INDEX["left_elbow"]] = [0, s, 0, s]          # known pose on every frame
    clip = MotionClip(clip.fps, clip.face, rot, clip.translation, {})

    def send(port):
        sender = VMCSender("127.0.0.1", port)
        stats = virtual_pacer([sender], source_fps=clip.fps).run(clip_frames(clip))
        sender.close()
        assert stats["vmc"].sent == 11
    return clip, receive_in_node(send)


def test_node_decodes_every_packet_as_a_bundle_within_1200_bytes(node_stream):
    _, got = node_stream
    assert got["errors"] == []
    assert len(got["packets"]) >= 11 * 5
    for p in got["packets"]:
        assert p["bundle"] and 0 < p["size"] <= MAX_BUNDLE_BYTES


def test_node_sees_every_address_with_the_right_typetags(node_stream):
    _, got = node_stream
    messages = [m for p in got["packets"] for m in p["messages"]]
    assert {m["address"] for m in messages} == set(TYPES)
    for m in messages:
        assert m["types"] == TYPES[m["address"]], m
        assert len(m["args"]) == len(TYPES[m["address"]])
    frames = [i for i, m in enumerate(messages) if m["address"] == "/VMC/Ext/Root/Pos"]
    assert len(frames) == 11
    for a, b in zip(frames, frames[1:] + [len(messages)]):
        frame = messages[a:b]
        names = [m["args"][0] for m in frame if m["address"] == "/VMC/Ext/Bone/Pos"]
        assert names == list(BONE_NAMES) and len(names) == NUM_JOINTS
        kinds = [m["address"] for m in frame]
        val = [i for i, k in enumerate(kinds) if k == "/VMC/Ext/Blend/Val"]
        assert len(val) == len(VRM0_PRESETS) and kinds[val[-1] + 1] == "/VMC/Ext/Blend/Apply"
        assert kinds.count("/VMC/Ext/Blend/Apply") == 1


def test_node_gets_unit_quaternions_and_the_known_pose_in_unity_axes(node_stream):
    clip, got = node_stream
    messages = [m for p in got["packets"] for m in p["messages"]]
    bones = [m["args"] for m in messages if m["address"] == "/VMC/Ext/Bone/Pos"]
    q = np.array([b[4:] for b in bones])
    assert np.allclose(np.linalg.norm(q, axis=1), 1, atol=1e-5)
    s = math.sin(math.pi / 4)
    elbows = [b for b in bones if b[0] == "LeftLowerArm"]
    assert len(elbows) == 11
    for b in elbows:      # +90 deg about our +Y = -90 deg about Unity's +Y (X mirrored): (0, -s, 0, s)
        assert np.allclose(b[4:], [0, -s, 0, s], atol=1e-6)
        assert b[1] < -0.1                                     # the left arm lies on Unity's -X
    def blend(name):
        return np.array([m["args"][1] for m in messages if m["address"] == "/VMC/Ext/Blend/Val"
                         and m["args"][0] == name][::2])
    # the left lid: Blink (shared by both lids) + Blink_L (the rest) = eyeBlinkLeft, never more
    from motion.conventions import ARKIT_INDEX
    assert np.allclose(blend("Blink") + blend("Blink_L"), clip.face[:, ARKIT_INDEX["eyeBlinkLeft"]], atol=1e-6)
    assert np.allclose(blend("Blink") + blend("Blink_R"), clip.face[:, ARKIT_INDEX["eyeBlinkRight"]], atol=1e-6)
