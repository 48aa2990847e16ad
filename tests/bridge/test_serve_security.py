"""``chatanyone serve`` and the WebSocket stream against hostile input (issue 15, item 1).

* a clip whose ``meta.audio_source`` names a non-audio file (``/etc/passwd``, a text file called ``.mp3``)
  never gets that file served: ``/audio`` is 404 and the clip plays without sound;
* ``--audio`` must be a decodable audio file (one-line error, exit 2);
* "local" is decided from resolved addresses: ``127.attacker.example`` and ``127.0.0.1.nip.io`` need a token;
* without a token, a request whose ``Host:`` is not a loopback name is refused (403), on HTTP and WebSocket;
* HTTP connections are bounded in number and time out when idle.
"""
from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from bridge import access, serve
from bridge.ws_server import FrameBroadcaster
from motion.clip import MotionClip


def _clip(tmp: Path, audio_source: str) -> Path:
    path = tmp / "clip.npz"
    rot = np.zeros((30, 55, 4), np.float32)
    rot[..., 3] = 1
    MotionClip(30.0, np.zeros((30, 52), np.float32), rot, None,
               {"audio_source": audio_source, "audio_offset_s": 0.0}).save(path)
    return path


def _raw_get(port: int, path: str, host: str | None) -> tuple[int, bytes]:
    """A raw HTTP/1.0 GET with exactly the Host header given; returns (status, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        head = f"GET {path} HTTP/1.0\r\n" + (f"Host: {host}\r\n" if host is not None else "") + "\r\n"
        s.sendall(head.encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    status = int(data.split(b" ", 2)[1])
    return status, data.split(b"\r\n\r\n", 1)[1]


def _wav(tmp: Path) -> Path:
    wav = tmp / "speech.wav"
    sf.write(wav, 0.1 * np.sin(np.arange(8000) / 8.0).astype(np.float32), 16000)
    return wav


@pytest.mark.parametrize("target", ["/etc/passwd", "text.mp3", "folder.wav", "missing.wav"])
def test_clip_audio_source_that_is_not_audio_is_never_served(tmp_path, capsys, target):
    (tmp_path / "text.mp3").write_text("root:x:0:0:root:/root:/bin/bash\n")
    (tmp_path / "folder.wav").mkdir()
    source = target if target.startswith("/") else str(tmp_path / target)
    src = serve.load_source(str(_clip(tmp_path, source)))
    assert src.audio is None
    err = capsys.readouterr().err
    assert "playing without sound" in err and err.count("\n") == 1
    site = serve.SiteContent(b"glTF", src.audio, serve.page_config(8765, False, 0.0))
    http = serve.ViewerHTTPServer(site, "127.0.0.1", 0).start()
    try:
        status, body = _raw_get(http.port, "/audio", f"127.0.0.1:{http.port}")
        assert status == 404 and b"root:" not in body
    finally:
        http.close()


def test_clip_audio_source_that_is_audio_is_served_from_the_descriptor_opened_at_start(tmp_path):
    wav = _wav(tmp_path)
    expected = wav.read_bytes()
    src = serve.load_source(str(_clip(tmp_path, str(wav))))
    assert src.audio is not None and src.audio_path == wav
    # replacing the path after the start changes nothing: the open descriptor is served
    wav.unlink()
    wav.symlink_to("/etc/passwd")
    site = serve.SiteContent(b"glTF", src.audio, serve.page_config(8765, True, 0.0))
    http = serve.ViewerHTTPServer(site, "127.0.0.1", 0).start()
    try:
        assert _raw_get(http.port, "/audio", f"localhost:{http.port}") == (200, expected)
    finally:
        http.close()
        src.audio.close()


def test_audio_option_must_be_audio(tmp_path, capsys):
    from chatanyone.cli import main
    clip = _clip(tmp_path, "")
    (tmp_path / "notes.wav").write_text("hello")
    for audio, message in (("/etc/passwd", "not an audio file"), (str(tmp_path / "notes.wav"), "not decodable"),
                           (str(tmp_path / "none.wav"), "No such file")):
        assert main(["serve", str(clip), "--audio", audio, "--port", "0", "--ws-port", "0"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("chatanyone: error:") and err.count("\n") == 1 and message in err, err


@pytest.mark.parametrize("host, local", [
    ("127.0.0.1", True), ("127.5.6.7", True), ("::1", True), ("[::1]", True), ("localhost", True),
    ("0.0.0.0", False), ("::", False), ("", False), ("192.0.2.7", False),
    ("127.attacker.example", False), ("127.0.0.1.nip.io", False), ("localhost.attacker.example", False),
])
def test_is_local_resolves_instead_of_reading_the_string(host, local):
    assert access.is_local(host) is local


@pytest.mark.parametrize("header, ok", [
    ("127.0.0.1:8000", True), ("localhost:8000", True), ("LOCALHOST", True), ("[::1]:8000", True),
    ("127.9.9.9", True), (None, True),
    ("evil.example", False), ("evil.example:8000", False), ("127.0.0.1.nip.io:8000", False),
    ("127.attacker.example", False), ("192.168.1.5:8000", False), ("", False),
])
def test_host_header_check(header, ok):
    assert access.host_header_allowed(header) is ok


def test_serve_refuses_a_rebinding_host_name_without_a_token(tmp_path, capsys):
    from chatanyone.cli import main
    clip = _clip(tmp_path, "")
    for host in ("127.attacker.example", "127.0.0.1.nip.io"):
        assert main(["serve", str(clip), "--host", host, "--port", "0", "--ws-port", "0"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("chatanyone: error:") and "--token" in err and err.count("\n") == 1, err


@pytest.mark.parametrize("token", [None, "s3cret"])
def test_http_host_header_is_checked_without_a_token(tmp_path, token):
    site = serve.SiteContent(b"glTF", _wav(tmp_path), serve.page_config(8765, True, 0.0), token)
    http = serve.ViewerHTTPServer(site, "127.0.0.1", 0).start()
    try:
        port = http.port
        assert _raw_get(port, "/avatar.vrm", f"127.0.0.1:{port}") == (200, b"glTF")
        status, body = _raw_get(port, "/avatar.vrm", "evil.example")
        if token is None:
            assert status == 403 and body != b"glTF"
            assert _raw_get(port, "/config.json", f"evil.example:{port}")[0] == 403
            assert _raw_get(port, "/audio", "attacker.example")[0] == 403
        else:   # the token protects the private routes; any Host may fetch the public ones
            assert status == 200
            assert _raw_get(port, "/audio", "evil.example")[0] == 403
            assert _raw_get(port, "/audio?token=s3cret", "evil.example")[0] == 200
    finally:
        http.close()


def test_websocket_handshake_with_a_foreign_host_is_refused():
    logs: list[str] = []
    with FrameBroadcaster("127.0.0.1", 0, log=logs.append) as ws:
        def handshake(host: str) -> bytes:
            with socket.create_connection(("127.0.0.1", ws.port), timeout=10) as s:
                s.sendall((f"GET / HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
                          .encode())
                return s.recv(200)
        assert handshake("evil.example").startswith(b"HTTP/1.1 403")
        assert handshake(f"127.0.0.1:{ws.port}").startswith(b"HTTP/1.1 101")
        assert ws.stats.rejected == 1 and any("evil.example" in line for line in logs)


def test_http_connections_are_bounded_and_idle_ones_time_out(tmp_path, monkeypatch):
    monkeypatch.setattr(serve, "HTTP_TIMEOUT_S", 3.0)
    monkeypatch.setattr(serve._BoundedHTTPServer, "max_connections", 4)
    site = serve.SiteContent(b"glTF", None, serve.page_config(8765, False, 0.0))
    http = serve.ViewerHTTPServer(site, "127.0.0.1", 0).start()
    idle = []
    try:
        before = threading.active_count()
        idle = [socket.create_connection(("127.0.0.1", http.port), timeout=10) for _ in range(12)]
        deadline = time.monotonic() + 2
        while http.refused < 8 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert http.refused == 8                       # 4 got a handler thread, 8 were closed at once
        assert threading.active_count() - before <= 4
        for s in idle[4:]:                             # the refused ones see EOF or a reset
            s.settimeout(5)
            try:
                assert s.recv(100) == b""
            except ConnectionResetError:
                pass
        # the idle ones are closed by the server after the timeout (recv sees EOF)
        for s in idle[:4]:
            s.settimeout(5)
            assert s.recv(100) == b""
        deadline = time.monotonic() + 5
        while threading.active_count() > before and time.monotonic() < deadline:
            time.sleep(0.02)
        assert _raw_get(http.port, "/avatar.vrm", "localhost") == (200, b"glTF")
    finally:
        for s in idle:
            s.close()
        http.close()
