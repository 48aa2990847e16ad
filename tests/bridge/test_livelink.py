"""Live Link Face UDP packets, decoded by a parser written here from the byte layout (big-endian)."""
import struct

import numpy as np
import pytest

from bridge.livelink import DEFAULT_SUBJECT, LiveLinkSender, encode_packet
from exporters.livelink_csv import head_eye_angles
from motion.clip import MotionClip
from motion.conventions import NUM_ARKIT, apply_livelink_head_eyes
from motion.errors import ChatAnyoneError
from motion.frames import clip_frames
from tests.bridge.helpers import UdpCollector, synthetic_clip, virtual_pacer
from tests.conftest import DATA, needs_data


def parse(packet: bytes) -> dict:
    """Unreal's FAppleARKitLiveLinkRemoteListener read order: uint8 version, int32-length-prefixed device id
    and subject name, int32 frame, float32 sub-frame, int32 rate numerator, int32 denominator, uint8 count,
    count x float32; all big-endian."""
    o = 0
    (version,) = struct.unpack_from(">B", packet, o); o += 1
    (n,) = struct.unpack_from(">i", packet, o); o += 4
    device = packet[o:o + n].decode("utf-8"); o += n
    (n,) = struct.unpack_from(">i", packet, o); o += 4
    subject = packet[o:o + n].decode("utf-8"); o += n
    frame, sub, num, den = struct.unpack_from(">ifii", packet, o); o += 16
    (count,) = struct.unpack_from(">B", packet, o); o += 1
    values = np.array(struct.unpack_from(f">{count}f", packet, o)); o += 4 * count
    assert o == len(packet), "trailing bytes"
    return dict(version=version, device=device, subject=subject, frame=frame, sub=sub, num=num, den=den,
                count=count, values=values)


def clip_with_head(frames: int = 12) -> MotionClip:
    """Synthetic clip whose neck/head/eyes carry known Live Link angles (within pitch +-pi/2)."""
    clip = synthetic_clip(frames)
    t = np.arange(frames) / clip.fps
    head = np.stack([0.3 * np.sin(3 * t), 0.2 * np.cos(2 * t), 0.1 * np.sin(t)], -1)
    eyes = np.concatenate([head * 0.5, head * -0.4], -1)
    rot = clip.rotations.copy()
    apply_livelink_head_eyes(rot, head, eyes)
    return MotionClip(clip.fps, clip.face, rot, clip.translation, {})


def test_packet_layout_byte_by_byte():
    clip = clip_with_head(2)
    frame = next(clip_frames(clip))
    pkt = encode_packet(frame, subject="Sub", device_id="$dev", fps=60)
    assert pkt[0] == 6
    assert pkt[1:5] == b"\x00\x00\x00\x04" and pkt[5:9] == b"$dev"
    assert pkt[9:13] == b"\x00\x00\x00\x03" and pkt[13:16] == b"Sub"
    assert pkt[16:20] == b"\x00\x00\x00\x00"                    # frame 0
    assert pkt[20:24] == struct.pack(">f", 0.0)                  # sub-frame
    assert pkt[24:32] == b"\x00\x00\x00\x3c\x00\x00\x00\x01"    # 60 / 1
    assert pkt[32] == 61
    assert len(pkt) == 33 + 61 * 4
    assert struct.unpack(">f", pkt[33:37])[0] == pytest.approx(clip.face[0, 0])   # eyeBlinkLeft first


def test_loopback_stream_values_equal_the_clip():
    clip = clip_with_head(12)
    head, eyes = head_eye_angles(clip)                    # the CSV exporter's angles, same convention
    with UdpCollector() as rx:
        sender = LiveLinkSender("127.0.0.1", rx.port, subject="MetaHumanFace", device_id="$test-device")
        stats = virtual_pacer([sender], source_fps=clip.fps).run(clip_frames(clip))
        sender.close()
        packets = [parse(p) for p in rx.wait_quiet()]
    assert stats["livelink"].sent == len(packets) == 2 * clip.num_frames - 1   # 60 fps from 30
    for k, p in enumerate(packets):
        assert (p["version"], p["count"], p["num"], p["den"]) == (6, 61, 60, 1)
        assert p["subject"] == "MetaHumanFace" and p["device"] == "$test-device"
        assert p["frame"] == k and p["sub"] == 0.0
        if k % 2 == 0:                                    # ticks on source frames: exact values
            i = k // 2
            assert np.allclose(p["values"][:NUM_ARKIT], clip.face[i], atol=1e-7)
            assert np.allclose(p["values"][52:55], head[i], atol=1e-5)
            assert np.allclose(p["values"][55:61], eyes[i], atol=1e-5)
        else:                                             # half-way ticks: linear face
            i = k // 2
            assert np.allclose(p["values"][:NUM_ARKIT], 0.5 * (clip.face[i] + clip.face[i + 1]), atol=1e-6)


def test_sub_frame_and_frame_number_follow_the_frame_time():
    clip = synthetic_clip(2)
    frame = next(clip_frames(clip))
    from motion.frames import MotionFrame
    p = parse(encode_packet(MotionFrame(0, 1.25 + 0.5 / 60, frame.face, frame.rotations, frame.translation),
                            fps=60))
    assert p["frame"] == 75 and p["sub"] == pytest.approx(0.5, abs=1e-5)
    assert p["subject"] == DEFAULT_SUBJECT


@needs_data
def test_real_live_link_capture_round_trips():
    """The NeuroSync capture (real ARKit weights and eye angles from the app) -> packets -> same values."""
    from exporters.livelink_csv import read
    take = read(DATA / "neurosync_face_only" / "livelinkface_60fps_no_audio.csv")
    n = 200
    rot = np.tile(np.float32([0, 0, 0, 1]), (n, 55, 1))
    apply_livelink_head_eyes(rot, take.head[:n], take.eyes[:n])
    clip = MotionClip(take.fps, take.face[:n], rot, None, {})
    head, eyes = head_eye_angles(clip)
    for f in clip_frames(clip):
        p = parse(encode_packet(f, fps=60))
        assert np.allclose(p["values"][:52], take.face[f.index], atol=1e-7)
        assert np.allclose(p["values"][55:61], take.eyes[f.index], atol=1e-5)
        assert np.allclose(p["values"][52:55], head[f.index], atol=1e-5)


def test_bad_options_are_clear_errors():
    with pytest.raises(ChatAnyoneError, match="subject name"):
        LiveLinkSender("127.0.0.1", 11111, subject="")
    with pytest.raises(ChatAnyoneError, match="cannot resolve host"):
        LiveLinkSender("no-such-host.invalid", 11111)
    with pytest.raises(ChatAnyoneError, match="port must be"):
        LiveLinkSender("127.0.0.1", 0)
