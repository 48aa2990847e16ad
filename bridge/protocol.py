"""The WebSocket stream's messages (DESIGN.md, "Wire formats"): msgpack maps, one per WebSocket binary
message.

* ``header`` (sent once, first): ``{"type": "header", "version": 1, "fps": float, "face_names": [52 str],
  "joint_names": [55 str], "parents": [55 int], "rotation": "quat_xyzw_local_rest_relative",
  "axes": "right_handed_y_up_facing_z_metres"}``.
* ``frame``: ``{"type": "frame", "seq": int, "time": float seconds, "face": bytes, "rotations": bytes,
  "translation": bytes}`` where ``face`` is 52 little-endian float32, ``rotations`` 55x4 little-endian
  float32 (x, y, z, w), ``translation`` 3 little-endian float32 metres.
* ``end`` (optional, last): ``{"type": "end", "frames": int}``.

Clients that push audio (``--ws-audio``) send ``{"type": "audio", "pcm16": bytes}`` with 16 kHz mono
little-endian int16 samples, and ``{"type": "audio_end"}``.
"""
from __future__ import annotations

from typing import Any

import msgpack
import numpy as np

from motion.conventions import ARKIT_NAMES, NUM_ARKIT, NUM_JOINTS, SMPLX_JOINT_NAMES, SMPLX_PARENTS
from motion.frames import MotionFrame

VERSION = 1
ROTATION_CONVENTION = "quat_xyzw_local_rest_relative"
AXES = "right_handed_y_up_facing_z_metres"
#: largest message a client may send to the server (bytes); audio chunks of 1 s PCM16 are 32 kB.
MAX_CLIENT_MESSAGE = 256 * 1024


class ProtocolError(ValueError):
    """A message that does not follow this protocol."""


def encode_header(fps: float) -> bytes:
    """The ``header`` message for a stream at ``fps`` frames per second."""
    return msgpack.packb({
        "type": "header", "version": VERSION, "fps": float(fps), "face_names": list(ARKIT_NAMES),
        "joint_names": list(SMPLX_JOINT_NAMES), "parents": [int(p) for p in SMPLX_PARENTS],
        "rotation": ROTATION_CONVENTION, "axes": AXES,
    }, use_bin_type=True)


def encode_frame(frame: MotionFrame) -> bytes:
    """The ``frame`` message for ``frame`` (float32 little-endian payloads)."""
    return msgpack.packb({
        "type": "frame", "seq": int(frame.index), "time": float(frame.time_s),
        "face": np.asarray(frame.face, "<f4").tobytes(),
        "rotations": np.asarray(frame.rotations, "<f4").tobytes(),
        "translation": np.asarray(frame.translation, "<f4").tobytes(),
    }, use_bin_type=True)


def encode_end(frames: int) -> bytes:
    return msgpack.packb({"type": "end", "frames": int(frames)}, use_bin_type=True)


def decode(data: bytes, max_size: int = MAX_CLIENT_MESSAGE) -> dict[str, Any]:
    """Decode one message into a dict; ``frame`` payloads become numpy arrays.

    Raises:
        ProtocolError: oversized, not msgpack, not a map, unknown type, or payloads of the wrong size.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ProtocolError("messages must be binary msgpack")
    if len(data) > max_size:
        raise ProtocolError(f"message of {len(data)} bytes exceeds the limit of {max_size}")
    try:
        msg = msgpack.unpackb(bytes(data), raw=False, strict_map_key=True)
    except Exception as e:  # msgpack raises several unrelated exception types
        raise ProtocolError(f"not a msgpack message: {e}") from None
    if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
        raise ProtocolError("a message must be a map with a string 'type'")
    t = msg["type"]
    if t == "frame":
        try:
            msg["face"] = np.frombuffer(msg["face"], "<f4")
            msg["rotations"] = np.frombuffer(msg["rotations"], "<f4").reshape(NUM_JOINTS, 4)
            msg["translation"] = np.frombuffer(msg["translation"], "<f4").reshape(3)
        except (KeyError, TypeError, ValueError) as e:
            raise ProtocolError(f"bad frame payload: {e}") from None
        if msg["face"].shape != (NUM_ARKIT,):
            raise ProtocolError("bad frame payload: face must be 52 float32")
    elif t == "audio":
        pcm = msg.get("pcm16")
        if not isinstance(pcm, bytes) or len(pcm) % 2:
            raise ProtocolError("audio messages carry 'pcm16': bytes of int16 samples")
        msg["samples"] = np.frombuffer(pcm, "<i2").astype(np.float32) / 32768.0
    elif t not in ("header", "end", "audio_end"):
        raise ProtocolError(f"unknown message type {t!r}")
    return msg
