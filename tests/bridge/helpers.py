"""Shared pieces of the bridge tests: synthetic clips and loopback receivers built on real decoders."""
from __future__ import annotations

import socket
import threading
import time

import numpy as np
from pythonosc import dispatcher, osc_server
from scipy.spatial.transform import Rotation

from motion.clip import MotionClip
from motion.conventions import NUM_ARKIT, NUM_JOINTS


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def synthetic_clip(frames: int = 12, fps: float = 30.0, seed: int = 0) -> MotionClip:
    """A clip with smooth random rotations on every joint, random face weights and a root translation."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames) / fps
    rotvec = 0.4 * np.sin(2 * np.pi * (0.7 * t[:, None, None] + rng.random((1, NUM_JOINTS, 3))))
    rot = Rotation.from_rotvec(rotvec.reshape(-1, 3)).as_quat().reshape(frames, NUM_JOINTS, 4)
    face = rng.random((frames, NUM_ARKIT)).astype(np.float32)
    trans = np.stack([0.01 * np.sin(t), 0.02 * t, np.zeros_like(t)], -1)
    return MotionClip(fps, face, rot.astype(np.float32), trans.astype(np.float32), {"source": "synthetic"})


class OscCollector:
    """A python-osc ``BlockingOSCUDPServer`` (one thread: arrival order kept) + ``Dispatcher`` on loopback recording ``(address, args)``
    of every message in arrival order (bundles are unpacked by the server)."""

    def __init__(self):
        self.messages: list[tuple[str, list]] = []
        self._lock = threading.Lock()
        d = dispatcher.Dispatcher()
        d.set_default_handler(self._handle)
        self.server = osc_server.BlockingOSCUDPServer(("127.0.0.1", 0), d)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _handle(self, address, *args):
        with self._lock:
            self.messages.append((address, list(args)))

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def wait_quiet(self, idle_s: float = 0.3, timeout: float = 20.0) -> list[tuple[str, list]]:
        end = time.monotonic() + timeout
        n = -1
        while time.monotonic() < end:
            time.sleep(idle_s)
            with self._lock:
                if len(self.messages) == n:
                    break
                n = len(self.messages)
        with self._lock:
            return list(self.messages)


class UdpCollector:
    """A plain UDP socket on loopback collecting raw datagrams (for byte-level parsers)."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.datagrams: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        self.sock.settimeout(0.05)
        while not self._stop.is_set():
            try:
                self.datagrams.append(self.sock.recv(65536))
            except socket.timeout:
                continue
            except OSError:
                return

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.sock.close()

    def wait_quiet(self, idle_s: float = 0.3, timeout: float = 20.0) -> list[bytes]:
        end = time.monotonic() + timeout
        n = -1
        while time.monotonic() < end:
            time.sleep(idle_s)
            if len(self.datagrams) == n:
                break
            n = len(self.datagrams)
        return list(self.datagrams)


class VirtualClock:
    """A clock for :class:`bridge.pacing.Pacer` that advances only when the pacer sleeps, so tests of
    what is sent do not depend on the machine's load (timing itself is measured by benchmarks/)."""

    def __init__(self, start: float = 1000.0):
        self.t = start
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.t

    def sleep(self, dt: float) -> None:
        self.sleeps.append(dt)
        self.t += dt
        time.sleep(0.0005)            # let receivers keep up with the datagrams


def virtual_pacer(outputs, source_fps: float = 30.0, **kw):
    """A :class:`bridge.pacing.Pacer` on a :class:`VirtualClock` (nothing is ever skipped as late)."""
    from bridge.pacing import Pacer
    vc = VirtualClock()
    return Pacer(outputs, source_fps=source_fps, clock=vc.clock, sleep=vc.sleep, max_late_s=1e9, **kw)
