"""Live Link Face sender: the iPhone app's UDP packet (version 6), for Unreal Engine / MetaHuman.

Unreal's ``LiveLinkFace`` source (Live Link window -> Source -> "Apple ARKit Face", port 11111 by default)
receives these packets and publishes a subject whose curves are the 61 ``EARFaceBlendShape`` values.

Layout (all multi-byte fields big-endian, "network byte order")::

    offset  size  field
    0       1     uint8   packet version = 6
    1       4     int32   device id length D (bytes)
    5       D     utf-8   device id (no terminator)
    5+D     4     int32   subject name length S
    9+D     S     utf-8   subject name
    9+D+S   4     int32   frame number           \\
    13+D+S  4     float32 sub-frame (0..1)        |  FQualifiedFrameTime
    17+D+S  4     int32   frame rate numerator    |  (FFrameTime + FFrameRate)
    21+D+S  4     int32   frame rate denominator /
    25+D+S  1     uint8   value count = 61
    26+D+S  244   float32 x 61: the 52 ARKit blendshapes (EARFaceBlendShape order = Apple's =
                  :data:`motion.conventions.ARKIT_NAMES`), then HeadYaw, HeadPitch, HeadRoll, LeftEyeYaw,
                  LeftEyePitch, LeftEyeRoll, RightEyeYaw, RightEyePitch, RightEyeRoll (radians)

Sources: Unreal Engine, ``Engine/Plugins/Runtime/AR/AppleAR/AppleARKitFaceSupport/.../
AppleARKitLiveLinkSource.cpp`` (``FAppleARKitLiveLinkRemoteListener::Tick`` reads, through
``FNboSerializeFromBuffer`` (network byte order; an ``FName``/``FString`` is an int32 length then the
characters): ``PacketVer``, ``DeviceId``, ``SubjectName``, ``FQualifiedFrameTime FrameTime``, ``uint8
BlendShapeCount`` (must equal ``EARFaceBlendShape::MAX`` = 61), then 61 floats); the ``EARFaceBlendShape``
enum (``AugmentedReality/Public/ARTrackable.h``: ``EyeBlinkLeft = 0`` ... ``TongueOut = 51``, ``HeadYaw =
52`` ... ``RightEyeRoll = 60``, ``MAX = 61``); and two independent implementations of the same packet:
``JimWest/PyLiveLinkFace`` (``PyLiveLinkFace.encode``: version, uuid, ``!i`` name length, name, ``!II``
frame/sub-frame, ``!II`` fps/denominator, ``!B61f``) and a C++ reader (``LiveLinkFrame``: byte version,
length-prefixed device id and subject, four 32-bit words, byte count 61, 61 byte-swapped floats). Note that
the UDP packet keeps Apple's order (``JawLeft`` before ``JawRight``), unlike the app's CSV takes
(:mod:`exporters.livelink_csv`).

Values:

* **Blendshapes**: the frame's ARKit weights, clipped to [0, 1].
* **Head and eyes**: exactly as the Live Link CSV exporter (:func:`motion.livelink.livelink_head_eye_angles`):
  ``Head*`` from the neck and head joints composed (``R_neck * R_head``), ``LeftEye*``/``RightEye*`` from
  ``left_eye_smplhf``/``right_eye_smplhf``, converted by :func:`motion.conventions.quat_to_livelink_angles`
  (yaw > 0 turns to the face's right, pitch > 0 looks down; radians).
* **Frame time**: frame number and sub-frame of ``frame.time_s`` at ``fps`` (numerator ``round(fps)``,
  denominator 1), counted from the start of the audio (timecode 00:00:00:00 at audio time 0, like the CSV
  exporter for a clip without offset).

:class:`LiveLinkSender` is a :class:`bridge.pacing.Output` (default 60 fps, the app's rate).
"""
from __future__ import annotations

import math
import struct
import uuid

import numpy as np

from motion.conventions import NUM_ARKIT
from motion.errors import ChatAnyoneError
from motion.frames import MotionFrame
from motion.livelink import LIVELINK_ANGLE_COLUMNS, LIVELINK_VALUE_COUNT, livelink_head_eye_angles

from .udp import UdpDestination

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 11111                    # Live Link Face / Unreal's default
DEFAULT_FPS = 60.0
DEFAULT_SUBJECT = "ChatAnyone"
PACKET_VERSION = 6
VALUE_COUNT = LIVELINK_VALUE_COUNT      # 52 blendshapes + 9 head/eye angles
HEAD_EYE_NAMES = LIVELINK_ANGLE_COLUMNS
_VALUES = struct.Struct(f">B{VALUE_COUNT}f")


def head_eye_values(rotations: np.ndarray) -> np.ndarray:
    """``[9]`` float64 radians (:data:`HEAD_EYE_NAMES` order) for one frame's ``rotations [55, 4]``
    (:func:`motion.livelink.livelink_head_eye_angles`, as the CSV exporter)."""
    head, eyes = livelink_head_eye_angles(np.asarray(rotations)[None])
    return np.concatenate([head[0], eyes[0]])


def encode_packet(frame: MotionFrame, *, subject: str = DEFAULT_SUBJECT, device_id: str = "",
                  fps: float = DEFAULT_FPS) -> bytes:
    """The version-6 packet for ``frame`` (see the module docstring for the byte layout).

    Raises:
        ChatAnyoneError: an empty or over-long (> 255 bytes) subject name or device id, or a bad fps.
    """
    subj = subject.encode("utf-8")
    dev = device_id.encode("utf-8")
    if not subj or len(subj) > 255 or len(dev) > 255:
        raise ChatAnyoneError("Live Link: the subject name must be 1..255 bytes and the device id at most 255")
    if not math.isfinite(fps) or fps <= 0:
        raise ChatAnyoneError(f"Live Link: fps must be positive, got {fps}")
    rate = max(1, int(round(fps)))
    pos = float(frame.time_s) * rate
    number = int(math.floor(pos + 1e-9))
    sub = min(max(pos - number, 0.0), 0.999999)
    face = np.clip(np.asarray(frame.face, np.float64).reshape(NUM_ARKIT), 0.0, 1.0)
    values = np.concatenate([face, head_eye_values(frame.rotations)])
    return b"".join((
        struct.pack(">Bi", PACKET_VERSION, len(dev)), dev,
        struct.pack(">i", len(subj)), subj,
        struct.pack(">ifii", number, sub, rate, 1),
        _VALUES.pack(VALUE_COUNT, *values.tolist()),
    ))


class LiveLinkSender:
    """Send frames as Live Link Face packets over UDP.

    Args:
        host, port: the Unreal machine (default ``127.0.0.1:11111``).
        subject: the Live Link subject name Unreal shows (default ``ChatAnyone``).
        device_id: the device id string (default: a random ``$``-prefixed UUID, as PyLiveLinkFace).
        fps: output rate (default 60; the pacer slerps between 30 fps frames) and the packets' frame rate.
        name: the output's name in statistics.
    Raises:
        ChatAnyoneError: bad subject, port or host.
    """

    def __init__(self, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, *, subject: str = DEFAULT_SUBJECT,
                 device_id: str | None = None, fps: float = DEFAULT_FPS, name: str = "livelink"):
        self.name, self.fps, self.subject = name, float(fps), subject
        self.device_id = device_id if device_id is not None else "$" + str(uuid.uuid4())
        self.host, self.port = host, port
        encode_packet(MotionFrame(0, 0.0, np.zeros(NUM_ARKIT, np.float32),
                                  np.tile(np.float32([0, 0, 0, 1]), (55, 1)), np.zeros(3, np.float32)),
                      subject=subject, device_id=self.device_id, fps=self.fps)     # validates options
        self._udp = UdpDestination(host, port, "Live Link")

    def encode(self, frame: MotionFrame) -> bytes:
        return encode_packet(frame, subject=self.subject, device_id=self.device_id, fps=self.fps)

    @property
    def refused(self) -> int:
        """Datagrams the OS reported refused so far (nothing listening at the destination; counted by
        :class:`bridge.udp.UdpDestination`, shown in the stream's summary by the pacer)."""
        return self._udp.refused

    def transmit(self, packet: bytes) -> None:
        """Send one encoded packet. Raises ``OSError`` from the socket."""
        self._udp.sendto([packet])

    def send(self, frame: MotionFrame) -> None:
        """Encode and send one frame.

        Raises:
            ChatAnyoneError: the network refused the datagram.
        """
        self._udp.send([self.encode(frame)])

    def close(self) -> None:
        self._udp.close()
