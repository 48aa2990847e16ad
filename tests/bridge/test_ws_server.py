"""WebSocket server: header then frames to many clients, slow clients, tokens, client audio, bad input."""
import base64
import contextlib
import os
import socket
import threading
import time

import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from bridge import protocol
from bridge.ws_server import FrameBroadcaster
from motion.conventions import ARKIT_NAMES, SMPLX_JOINT_NAMES
from motion.errors import ChatAnyoneError
from motion.frames import clip_frames
from tests.bridge.helpers import synthetic_clip


class Log(list):
    def __call__(self, msg):
        self.append(msg)


@pytest.fixture
def server():
    log = Log()
    ws = FrameBroadcaster("127.0.0.1", 0, fps=30.0, log=log).start()
    ws.logged = log
    yield ws
    ws.stop()


def url(ws, query=""):
    return f"ws://127.0.0.1:{ws.port}/{query}"


def wait_for(cond, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.01)
    return False


def test_header_then_frames_to_several_clients(server):
    clip = synthetic_clip(10)
    with contextlib.ExitStack() as stack:
        clients = [stack.enter_context(connect(url(server), compression=None, max_size=None)) for _ in range(3)]
        for c in clients:
            h = protocol.decode(c.recv(timeout=10), max_size=1 << 20)
            assert h["type"] == "header" and h["version"] == protocol.VERSION and h["fps"] == 30.0
            assert h["face_names"] == list(ARKIT_NAMES) and h["joint_names"] == list(SMPLX_JOINT_NAMES)
            assert h["rotation"] == "quat_xyzw_local_rest_relative"
        assert wait_for(lambda: sum(s.connected for s in server.stats.clients) == 3)
        for f in clip_frames(clip):
            server.publish(f)
            time.sleep(0.005)
        server.publish_end(clip.num_frames)
        for c in clients:
            got = [protocol.decode(c.recv(timeout=10), max_size=1 << 20) for _ in range(clip.num_frames + 1)]
            assert [g["type"] for g in got] == ["frame"] * clip.num_frames + ["end"]
            for i, g in enumerate(got[:-1]):
                assert g["seq"] == i and g["time"] == pytest.approx(i / 30)
                assert np.array_equal(g["face"], clip.face[i])
                assert np.array_equal(g["rotations"], clip.rotations[i])
                assert np.array_equal(g["translation"], clip.translation[i])
            assert got[-1]["frames"] == clip.num_frames


def _stalled_client(port):
    """A client that completes the handshake and then never reads (tiny receive buffer)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    assert head.startswith(b"HTTP/1.1 101")
    return s


def test_a_stalled_client_loses_frames_but_never_delays_the_others():
    ws = FrameBroadcaster("127.0.0.1", 0, queue_size=100, log=Log()).start()
    stalled = _stalled_client(ws.port)
    stack = contextlib.ExitStack()
    good = stack.enter_context(connect(url(ws), compression=None, max_size=None))
    received, last_at = [], []

    def read():
        try:
            while True:
                m = good.recv(timeout=10)
                received.append(m)
                last_at.append(time.monotonic())
        except (TimeoutError, ConnectionClosed):
            pass

    t = threading.Thread(target=read, daemon=True)
    t.start()
    try:
        assert wait_for(lambda: len(ws.stats.clients) == 2 and len(received) == 1)
        n, payload = 400, b"x" * 65536                   # 26 MB: far beyond the stalled socket's buffers
        for i in range(n):
            ws.publish_bytes(payload)
            time.sleep(0.005)
        published_at = time.monotonic()
        assert wait_for(lambda: len(received) == n + 1, timeout=30)
        stalled_stats, good_stats = ws.stats.clients
        assert good_stats.dropped == 0 and good_stats.sent == n + 1        # header + every message
        assert stalled_stats.dropped > 100                                 # counted, reported
        assert ws.stats.summary().count("1 slow clients") == 1
        assert last_at[-1] - published_at < 5.0        # generous bound: the good client was not held up
    finally:
        stack.close()
        stalled.close()
        ws.stop()


def test_non_local_bind_without_token_is_refused():
    with pytest.raises(ChatAnyoneError, match="without a token"):
        FrameBroadcaster("0.0.0.0", 0)
    with pytest.raises(ChatAnyoneError, match="without a token"):
        FrameBroadcaster("192.168.1.20", 8765)


def test_token_is_required_when_set():
    ws = FrameBroadcaster("127.0.0.1", 0, token="s3cret", log=Log()).start()
    try:
        with pytest.raises(InvalidStatus) as e:
            connect(url(ws))
        assert e.value.response.status_code == 401
        with pytest.raises(InvalidStatus):
            connect(url(ws, "?token=wrong"))
        with connect(url(ws, "?token=s3cret")) as c:
            assert protocol.decode(c.recv(timeout=10), 1 << 20)["type"] == "header"
        with connect(url(ws), additional_headers={"Authorization": "Bearer s3cret"}) as c:
            assert protocol.decode(c.recv(timeout=10), 1 << 20)["type"] == "header"
        assert ws.stats.rejected == 2
    finally:
        ws.stop()


def test_port_in_use_is_a_clear_error(server):
    with pytest.raises(ChatAnyoneError, match=f"port {server.port} on 127.0.0.1 is already in use"):
        FrameBroadcaster("127.0.0.1", server.port).start()


def test_too_many_clients_are_refused_with_503():
    ws = FrameBroadcaster("127.0.0.1", 0, max_clients=2, log=Log()).start()
    try:
        with connect(url(ws)), connect(url(ws)):
            with pytest.raises(InvalidStatus) as e:
                connect(url(ws))
            assert e.value.response.status_code == 503
    finally:
        ws.stop()


def test_client_audio_is_delivered_and_a_vanishing_audio_client_ends_the_utterance():
    chunks, ends, log = [], [], Log()
    ws = FrameBroadcaster("127.0.0.1", 0, on_audio=chunks.append, on_audio_end=lambda: ends.append(1),
                          log=log).start()
    try:
        pcm = (np.sin(np.arange(1600) / 10) * 20000).astype("<i2")
        with connect(url(ws)) as c:
            c.recv(timeout=10)
            c.send(msgpack.packb({"type": "audio", "pcm16": pcm.tobytes()}))
            c.send(msgpack.packb({"type": "audio_end"}))
            assert wait_for(lambda: len(ends) == 1)
        assert len(chunks) == 1 and np.allclose(chunks[0], pcm / 32768.0)
        # a second client may not send audio while the first one owns it
        stack = contextlib.ExitStack()
        owner = stack.enter_context(connect(url(ws)))
        owner.recv(timeout=10)
        owner.send(msgpack.packb({"type": "audio", "pcm16": pcm.tobytes()}))
        assert wait_for(lambda: len(chunks) == 2)
        with connect(url(ws)) as other:
            other.recv(timeout=10)
            other.send(msgpack.packb({"type": "audio", "pcm16": pcm.tobytes()}))
            with pytest.raises(ConnectionClosed) as e:
                other.recv(timeout=10)
            assert e.value.rcvd.code == 1008 and "another client" in e.value.rcvd.reason
        owner.socket.shutdown(socket.SHUT_RDWR)          # vanishes without audio_end or a close frame
        owner.socket.close()
        assert wait_for(lambda: len(ends) == 2)
        assert any("disconnected in the middle of its audio" in m for m in log)
        with contextlib.suppress(Exception):
            stack.close()
    finally:
        ws.stop()


def test_audio_is_refused_without_ws_audio(server):
    with connect(url(server)) as c:
        c.recv(timeout=10)
        c.send(msgpack.packb({"type": "audio", "pcm16": b"\0\0"}))
        with pytest.raises(ConnectionClosed) as e:
            c.recv(timeout=10)
    assert e.value.rcvd.code == 1008 and "--ws-audio" in e.value.rcvd.reason
    assert any("--ws-audio" in m for m in server.logged)


# -- fuzzing: whatever a client sends, the server keeps serving everyone else --------------------------
def _garbage():
    msgpack_values = st.recursive(
        st.none() | st.booleans() | st.integers(-2**63, 2**64 - 1) | st.floats() | st.text(max_size=20)
        | st.binary(max_size=64),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
        max_leaves=10)
    maps = st.fixed_dictionaries({"type": st.sampled_from(["audio", "audio_end", "frame", "header", "end",
                                                           "nope", ""])},
                                 optional={"pcm16": st.binary(max_size=33) | st.integers(-2**63, 2**64 - 1)
                                           | st.text(max_size=5),
                                           "face": st.binary(max_size=300)})
    return (st.binary(max_size=300).map(lambda b: ("bytes", b))
            | st.text(max_size=50).map(lambda t: ("text", t))
            | msgpack_values.map(lambda v: ("bytes", msgpack.packb(v)))
            | maps.map(lambda v: ("bytes", msgpack.packb(v)))
            | st.integers(protocol.MAX_CLIENT_MESSAGE + 1, protocol.MAX_CLIENT_MESSAGE + 5000)
              .map(lambda n: ("bytes", b"\x81" + b"\0" * (n - 1))))


@pytest.fixture(scope="module")
def fuzz_server():
    chunks = []
    ws = FrameBroadcaster("127.0.0.1", 0, on_audio=chunks.append, on_audio_end=lambda: None,
                          log=Log()).start()
    yield ws
    ws.stop()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(message=_garbage())
def test_fuzzed_client_messages_never_take_the_server_down(fuzz_server, message):
    kind, payload = message
    try:
        with connect(url(fuzz_server), max_size=None, open_timeout=20) as c:
            c.recv(timeout=10)                              # header
            try:
                c.send(payload)
                c.send(msgpack.packb({"type": "audio_end"}))
                c.recv(timeout=0.2)
            except (ConnectionClosed, TimeoutError):
                pass
            if c.close_code is not None:                     # refused: with a code and a reason
                assert c.close_code in (1003, 1008, 1009)
    except ConnectionClosed:
        pass
    # the server is still up and serves a fresh client
    with connect(url(fuzz_server), open_timeout=20) as probe:
        assert protocol.decode(probe.recv(timeout=10), 1 << 20)["type"] == "header"


def test_stop_closes_clients_with_going_away():
    ws = FrameBroadcaster("127.0.0.1", 0, log=Log()).start()
    with connect(url(ws)) as c:
        c.recv(timeout=10)
        ws.stop()
        with pytest.raises(ConnectionClosed) as e:
            c.recv(timeout=10)
    assert e.value.rcvd.code == 1001
    ws.stop()                                                # idempotent
