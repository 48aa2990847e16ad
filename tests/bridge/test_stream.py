"""``chatanyone stream`` end to end on loopback, its WebSocket-audio mode, and its bad-input messages."""
import socket
import threading
import time

import msgpack
import numpy as np
import pytest
from websockets.sync.client import connect

from bridge import protocol, stream
from bridge.stream import StreamOptions, parse_hostport, run_stream
from chatanyone.cli import main
from motion.checkpoint import default_checkpoint_path
from motion.clip import MotionClip
from motion.conventions import ARKIT_INDEX, NUM_ARKIT
from motion.errors import ChatAnyoneError
from motion.frames import MotionFrame, clip_frames
from tests.bridge.helpers import OscCollector, UdpCollector, synthetic_clip
from tests.conftest import REPO

SAMPLE = REPO / "chatanyone" / "samples" / "cmu_arctic_a0007.wav"


def wait_for(cond, timeout=10.0) -> bool:
    """Poll ``cond()`` every 10 ms until it is true (True) or ``timeout`` seconds pass (False)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.01)
    return bool(cond())


@pytest.fixture
def clip_file(tmp_path):
    path = tmp_path / "clip.npz"
    synthetic_clip(15).save(path)
    return path


def test_parse_hostport():
    assert parse_hostport("10.0.0.5:39540", "127.0.0.1", "--vmc") == ("10.0.0.5", 39540)
    assert parse_hostport(":11111", "127.0.0.1", "--livelink") == ("127.0.0.1", 11111)
    assert parse_hostport("11111", "127.0.0.1", "--livelink") == ("127.0.0.1", 11111)
    assert parse_hostport("[::1]:9000", "127.0.0.1", "--vmc") == ("::1", 9000)
    with pytest.raises(ChatAnyoneError, match="expected HOST:PORT"):
        parse_hostport("localhost:vmc", "127.0.0.1", "--vmc")
    with pytest.raises(ChatAnyoneError, match="port must be 1..65535"):
        parse_hostport("localhost:0", "127.0.0.1", "--vmc")


def test_clip_streams_to_vmc_livelink_and_websocket_at_once(clip_file):
    clip = MotionClip.load(clip_file)
    ws_frames, vanished = [], []

    def ready(outputs):
        ws = next(o for o in outputs if o.name == "ws")

        def viewer():
            with connect(f"ws://127.0.0.1:{ws.port}/", max_size=None) as c:
                while True:
                    m = protocol.decode(c.recv(timeout=30), 1 << 20)
                    ws_frames.append(m)
                    if m["type"] == "end":
                        return

        def vanishing():                      # a second viewer that disappears mid-stream
            s = socket.create_connection(("127.0.0.1", ws.port))
            s.sendall(f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{ws.port}\r\nUpgrade: websocket\r\n".encode()
                      + b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
            s.recv(1000)
            time.sleep(0.1)
            s.close()
            vanished.append(True)

        threading.Thread(target=viewer, daemon=True).start()
        threading.Thread(target=vanishing, daemon=True).start()
        # both connected (the server registered them) before frame 0; the pre-roll is 0.6 s
        assert wait_for(lambda: len(ws.stats.clients) == 2)

    with OscCollector() as vmc, UdpCollector() as ll:
        opts = StreamOptions(input=str(clip_file), vmc=f"127.0.0.1:{vmc.port}", livelink=f"127.0.0.1:{ll.port}",
                             ws=0, delay=0.6)
        result = run_stream(opts, log=lambda m: None, ready=ready)
        vmc_msgs, ll_packets = vmc.wait_quiet(), ll.wait_quiet()
    lat = result.lateness
    assert set(lat) == {"vmc", "livelink", "ws"}
    assert lat["vmc"].sent + lat["vmc"].skipped == 2 * clip.num_frames - 1
    assert lat["ws"].sent + lat["ws"].skipped == clip.num_frames
    assert sum(1 for a, _ in vmc_msgs if a == "/VMC/Ext/Root/Pos") == lat["vmc"].sent
    assert len(ll_packets) == lat["livelink"].sent
    assert wait_for(lambda: vanished)
    assert [m["type"] for m in ws_frames][0] == "header" and ws_frames[-1]["type"] == "end"
    frames = [m for m in ws_frames if m["type"] == "frame"]
    assert len(frames) == lat["ws"].sent
    for m in frames:
        assert np.array_equal(m["face"], clip.face[m["seq"]])
    clients = result.ws.clients
    assert len(clients) == 2 and not any(c.connected for c in clients)


def test_cli_prints_a_summary_and_exits_0(clip_file, capsys):
    with UdpCollector() as ll:
        assert main(["stream", str(clip_file), "--livelink", f"127.0.0.1:{ll.port}", "--subject", "Face"]) == 0
    out = capsys.readouterr()
    assert "livelink: " in out.out and "sent" in out.out
    assert "streaming to livelink 127.0.0.1:" in out.err


def test_ws_audio_utterance_becomes_frames_then_end(monkeypatch):
    """A chat/TTS client pushes PCM16 chunks; the motion comes back as frames and an ``end``. The model is
    replaced by a stand-in whose jawOpen is each frame's audio RMS, so the test checks that the audio
    arrived intact and in order; the real model is exercised by the test below."""
    class FakeGenerator:
        def generate(self, audio, *, seed=0, style=None, intensity=None):
            T = int(round(len(audio) / 16000 * 30))
            face = np.zeros((T, NUM_ARKIT), np.float32)
            for i in range(T):
                seg = audio[int(i * 16000 / 30):int((i + 1) * 16000 / 30)]
                face[i, ARKIT_INDEX["jawOpen"]] = np.sqrt(np.mean(seg ** 2)) if len(seg) else 0
            return MotionClip(30.0, face, np.tile(np.float32([0, 0, 0, 1]), (T, 55, 1)), None, {})

    class WholeUtteranceStream:
        """Stand-in MotionStream: collects the pushed audio, makes every frame at flush."""

        def __init__(self, generator, **kwargs):
            self.generator, self.parts = generator, []

        def push(self, chunk):
            self.parts.append(chunk)
            return []

        def flush(self):
            return list(clip_frames(self.generator.generate(np.concatenate(self.parts))))

    monkeypatch.setattr(stream, "_motion_stream_class", lambda: WholeUtteranceStream)
    t = np.arange(16000) / 16000
    audio = (0.5 * np.sin(2 * np.pi * 220 * t) * np.minimum(1, t * 3)).astype(np.float32)
    pcm = (audio * 32767).astype("<i2")
    expected = FakeGenerator().generate(pcm.astype(np.float32) / 32768.0).face[:, ARKIT_INDEX["jawOpen"]]
    ports, got = [], []
    ready = threading.Event()

    def on_ready(outputs):
        ports.append(next(o for o in outputs if o.name == "ws").port)
        ready.set()

    with UdpCollector() as ll:
        opts = StreamOptions(ws_audio=True, ws=0, livelink=f"127.0.0.1:{ll.port}", delay=0.3, max_utterances=1)
        result_box = []
        runner = threading.Thread(target=lambda: result_box.append(
            run_stream(opts, generator=FakeGenerator(), log=lambda m: None, ready=on_ready)), daemon=True)
        runner.start()
        assert ready.wait(30)
        with connect(f"ws://127.0.0.1:{ports[0]}/", max_size=None) as c:
            assert protocol.decode(c.recv(timeout=10), 1 << 20)["type"] == "header"
            for i in range(0, len(pcm), 1600):                      # 0.1 s chunks
                c.send(msgpack.packb({"type": "audio", "pcm16": pcm[i:i + 1600].tobytes()}))
            c.send(msgpack.packb({"type": "audio_end"}))
            while True:
                m = protocol.decode(c.recv(timeout=60), 1 << 20)
                got.append(m)
                if m["type"] == "end":
                    break
        runner.join(30)
        packets = ll.wait_quiet()
    result = result_box[0]
    frames = [m for m in got if m["type"] == "frame"]
    lat = result.lateness["ws"]
    assert result.utterances == 1 and len(frames) == lat.sent and lat.sent + lat.skipped == 30
    for m in frames:
        assert m["face"][ARKIT_INDEX["jawOpen"]] == pytest.approx(expected[m["seq"]], abs=1e-6)
    assert got[-1]["frames"] == lat.sent
    assert len(packets) == result.lateness["livelink"].sent > 0


def test_speech_through_the_streaming_model_to_live_link(tmp_path, tiny_checkpoint):
    """The mechanics of an audio file streamed through the model (the tiny random-weight checkpoint) to Live
    Link on loopback: one packet per frame, every frame of the audio's length sent."""
    import soundfile as sf
    from motion.audio import load_audio
    short = tmp_path / "speech_1.5s.wav"
    sf.write(short, load_audio(SAMPLE)[:24000], 16000)
    with UdpCollector() as ll:
        result = run_stream(StreamOptions(input=str(short), livelink=f"127.0.0.1:{ll.port}", fps=30.0, delay=0.3,
                                          max_late_s=1e9, checkpoint=str(tiny_checkpoint)), log=lambda m: None)
        packets = ll.wait_quiet()
    lat = result.lateness["livelink"]
    assert lat.skipped == 0 and lat.sent == 45 and len(packets) == 45
    jaw = [np.frombuffer(p[-61 * 4:], ">f4")[ARKIT_INDEX["jawOpen"]] for p in packets]
    assert np.isfinite(jaw).all() and np.ptp(jaw) > 0


@pytest.mark.slow
@pytest.mark.skipif(not default_checkpoint_path().is_file(), reason="no shipped checkpoint")
def test_real_speech_through_the_model_to_live_link(tmp_path):
    """The shipped sample speech, the real model (streaming API when present), Live Link on loopback:
    the mouth moves with the speech."""
    with UdpCollector() as ll:
        # nothing is skipped as late: this test is about content, and this machine may be slower than real time
        result = run_stream(StreamOptions(input=str(SAMPLE), livelink=f"127.0.0.1:{ll.port}", fps=30.0,
                                          delay=1.0, max_late_s=1e9), log=lambda m: None)
        packets = ll.wait_quiet()
    lat = result.lateness["livelink"]
    import soundfile as sf
    n = sf.info(SAMPLE).duration * 30
    assert lat.skipped == 0 and abs(lat.sent - n) <= 1
    assert len(packets) == lat.sent
    jaw = [np.frombuffer(p[-61 * 4:], ">f4")[ARKIT_INDEX["jawOpen"]] for p in packets]
    assert max(jaw) > 0.2 and min(jaw) < max(jaw) / 2          # the mouth moves with the speech


# -- bad input: one line, exit 2 ---------------------------------------------------------------------
def run_cli(args, capsys):
    code = main(["stream", *args])
    err = capsys.readouterr().err
    return code, err


@pytest.mark.parametrize("args, message", [
    (["{clip}"], "nothing to stream to"),
    (["{clip}", "--mic", "--ws", "0"], "exactly one input"),
    (["{clip}", "--vmc", "no-such-host.invalid:39539"], "VMC: cannot resolve host 'no-such-host.invalid'"),
    (["{clip}", "--livelink", "localhost:port"], "--livelink: expected HOST:PORT"),
    (["{clip}", "--vmc", "127.0.0.1:99999"], "--vmc: port must be 1..65535"),
    (["missing.wav", "--ws", "0"], "missing.wav: no such file"),
    (["--ws-audio", "--vmc", ":39539"], "--ws-audio receives audio on the WebSocket server: add --ws PORT"),
    (["{clip}", "--ws", "0", "--host", "0.0.0.0"], "without a token"),
    (["{clip}", "--livelink", ":11111", "--play"], "--play"),
    (["--mic", "--ws", "0"], "--mic"),
])
def test_bad_input_is_one_line_and_exit_2(args, message, clip_file, capsys):
    code, err = run_cli([a.replace("{clip}", str(clip_file)) for a in args], capsys)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert lines[-1].startswith("chatanyone: error: ") and message in lines[-1], err
    assert "Traceback" not in err


def test_websocket_port_in_use_is_one_line(clip_file, capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        code, err = run_cli([str(clip_file), "--ws", str(port)], capsys)
    assert code == 2 and f"chatanyone: error: WebSocket: port {port} on 127.0.0.1 is already in use" in err


def test_send_errors_are_one_warning_line_and_counted(clip_file, capsys):
    """A destination the network refuses (here: the broadcast address, which needs SO_BROADCAST) is
    reported once, the stream goes on, and the summary counts the failed sends."""
    code = main(["stream", str(clip_file), "--vmc", "255.255.255.255:39539"])
    out = capsys.readouterr()
    assert code == 0
    warnings = [l for l in out.err.splitlines() if "warning" in l]
    assert warnings == ["chatanyone: warning: vmc: cannot send (Permission denied); still trying, errors are counted"]
    assert "send errors (Permission denied)" in out.out


def test_bad_style_reference_fails_before_any_output_opens(tmp_path):
    from motion.errors import ChatAnyoneError
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    port = busy.getsockname()[1]
    busy.listen()
    try:
        # the WebSocket port is taken: were the outputs opened first, the error would be about the port
        with pytest.raises(ChatAnyoneError, match="style reference"):
            run_stream(StreamOptions(ws_audio=True, ws=port, style_reference=str(tmp_path / "none.npz")),
                       log=lambda m: None)
    finally:
        busy.close()


# -- --ws-audio queue bound ----------------------------------------------------------------------------
def test_audio_inbox_refuses_audio_too_far_ahead_and_drops_it_when_the_client_leaves():
    now = [100.0]
    inbox = stream.AudioInbox(max_ahead_s=2.0, clock=lambda: now[0])
    second = np.zeros(16000, np.float32)
    assert inbox.on_audio(second) is None and inbox.on_audio(second) is None      # 2 s ahead: accepted
    assert "ahead of real time" in inbox.on_audio(second)                          # 3 s: refused
    now[0] += 1.5                                                                  # 1.5 s later: 0.5 s ahead
    assert inbox.on_audio(second) is None and inbox.queued_samples == 3 * 16000
    assert inbox.get()[0] == "audio" and inbox.queued_samples == 2 * 16000        # the model took one
    inbox.on_abort()                                                               # the client left
    assert inbox.queued_samples == 0 and inbox.dropped_samples == 2 * 16000 and inbox.refused == 1
    assert inbox.get(timeout=0)[0] == "abort" and inbox.get(timeout=0) is None
    inbox.on_audio_end()                                                           # a new utterance starts afresh
    assert inbox.on_audio(second) is None and inbox.on_audio(second) is None


def test_ws_audio_client_too_far_ahead_is_closed_1013_and_an_empty_utterance_gets_its_end(monkeypatch):
    """Real websockets clients on 127.0.0.1: one pushes 5 s of audio at once against a 1 s bound and is
    closed with code 1013; its utterance stops at once (its queued audio dropped) and still ends with
    ``end``; a second client sends ``audio_end`` alone and gets ``end`` with 0 frames."""
    from websockets.exceptions import ConnectionClosed

    class ChunkStream:
        """Stand-in MotionStream: one rest frame per 1/30 s of audio pushed, slowly (a busy model)."""

        def __init__(self, generator, **kwargs):
            self.n, self.samples = 0, 0

        def _frames(self):
            out = []
            while self.n < self.samples * 30 // 16000:
                rot = np.tile(np.float32([0, 0, 0, 1]), (55, 1))
                out.append(MotionFrame(self.n, self.n / 30, np.zeros(NUM_ARKIT, np.float32), rot,
                                       np.zeros(3, np.float32)))
                self.n += 1
            return out

        def push(self, chunk):
            time.sleep(0.05)
            self.samples += len(chunk)
            return self._frames()

        def flush(self):
            return []

    monkeypatch.setattr(stream, "_motion_stream_class", lambda: ChunkStream)
    ports, ready = [], threading.Event()

    def on_ready(outputs):
        ports.append(next(o for o in outputs if o.name == "ws").port)
        ready.set()

    logs: list[str] = []
    opts = StreamOptions(ws_audio=True, ws=0, delay=0.2, max_utterances=2, max_audio_ahead_s=1.0)
    box = []
    runner = threading.Thread(target=lambda: box.append(run_stream(opts, generator=object(), log=logs.append,
                                                                   ready=on_ready)), daemon=True)
    runner.start()
    assert ready.wait(30)
    url = f"ws://127.0.0.1:{ports[0]}/"
    pcm = np.zeros(1600, "<i2").tobytes()                              # 0.1 s chunks
    with connect(url, max_size=None) as viewer:
        assert protocol.decode(viewer.recv(timeout=10), 1 << 20)["type"] == "header"
        with connect(url, max_size=None) as c:
            c.recv(timeout=10)
            with pytest.raises(ConnectionClosed) as closed:
                for _ in range(50):
                    c.send(msgpack.packb({"type": "audio", "pcm16": pcm}))
                for _ in range(50):
                    c.recv(timeout=10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
        t_closed = time.monotonic()
        ends = []
        while not ends:
            m = protocol.decode(viewer.recv(timeout=10), 1 << 20)
            if m["type"] == "end":
                ends.append(m)
        assert time.monotonic() - t_closed < 1.0                       # stopped at once, not after 1+ s of frames
        with connect(url, max_size=None) as c2:                        # an utterance without audio
            c2.recv(timeout=10)
            c2.send(msgpack.packb({"type": "audio_end"}))
            while True:
                m = protocol.decode(viewer.recv(timeout=10), 1 << 20)
                if m["type"] == "end":
                    break
        assert m["frames"] == 0
    runner.join(10)
    result = box[0]
    assert result.utterances == 2 and result.inbox.refused == 1 and result.inbox.queued_samples == 0
    assert any("ahead of real time" in line for line in logs)
    assert any("chunks refused" in line for line in result.summary_lines())


def test_a_stream_that_degrades_says_so_once_and_in_the_summary(monkeypatch):
    """The stream gets the pacer's schedule (``deadline``) and a warning callback; the warning is printed
    once however often the stream degrades, and the summary counts the degraded steps."""
    from motion.streaming import DegradePolicy, StreamStats
    seen = {}

    class DegradingStream:
        def __init__(self, generator, *, adaptive=False, deadline=None, on_degrade=None, **kw):
            seen.update(adaptive=adaptive, deadline=deadline)
            self.on_degrade, self.n, self.samples = on_degrade, 0, 0
            self.policy = DegradePolicy((4, 6), (2, 1), 0.2)
            self.stats = StreamStats()

        def push(self, chunk):
            self.samples += len(chunk)
            out = []
            while self.n < self.samples * 30 // 16000:
                out.append(MotionFrame(self.n, self.n / 30, np.zeros(NUM_ARKIT, np.float32),
                                       np.tile(np.float32([0, 0, 0, 1]), (55, 1)), np.zeros(3, np.float32)))
                self.n += 1
            self.stats.compute_s.append(0.3)
            if self.policy.update(0.3):
                self.stats.max_level = self.policy.level
                self.stats.degraded_steps += 1
                self.on_degrade(f"too slow: level {self.policy.level}")
            return out

        def flush(self):
            return []

    monkeypatch.setattr(stream, "_motion_stream_class", lambda: DegradingStream)
    logs = []
    result = run_stream(StreamOptions(input=str(SAMPLE), ws=0, delay=0.1), generator=object(), log=logs.append)
    assert seen["adaptive"] and callable(seen["deadline"])
    assert [m for m in logs if "too slow" in m] == ["warning: too slow: level 1"]
    line = next(l for l in result.summary_lines() if l.startswith("model:"))
    assert "2 of 40 steps with fewer denoising steps" in line and "face 1, body 1" in line
